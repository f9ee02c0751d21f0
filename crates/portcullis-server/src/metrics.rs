//! Prometheus metrics: requests by endpoint and status, latency histograms, tokens
//! issued by grant. Owned by [`crate::state::AppState`], not a global registry.

use std::fmt;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: Endpoint,
    method: MethodLabel,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: Endpoint,
}

/// A route template as a label value: the router's own shared string (`MatchedPath`
/// clones by reference count), so counting a request allocates nothing.
#[derive(Clone, Debug)]
struct Endpoint(Option<MatchedPath>);

impl Endpoint {
    fn as_str(&self) -> &str {
        self.0.as_ref().map_or("unmatched", MatchedPath::as_str)
    }
}

impl PartialEq for Endpoint {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Endpoint {}

impl std::hash::Hash for Endpoint {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_str().hash(h)
    }
}

impl EncodeLabelValue for Endpoint {
    fn encode(&self, e: &mut LabelValueEncoder<'_>) -> fmt::Result {
        fmt::Write::write_str(e, self.as_str())
    }
}

/// The request method as a label value: one of the standard methods, or `other` (a
/// client may send any token as a method; each would otherwise be a new series).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct MethodLabel(&'static str);

impl MethodLabel {
    fn of(m: &axum::http::Method) -> Self {
        Self(method_name(m))
    }
}

/// A standard method's name, or `other`: the method of a metric label or a log line.
pub(crate) fn method_name(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    STANDARD
        .iter()
        .find(|s| *s == m)
        .map_or("other", |s| s.as_str())
}

impl EncodeLabelValue for MethodLabel {
    fn encode(&self, e: &mut LabelValueEncoder<'_>) -> fmt::Result {
        fmt::Write::write_str(e, self.0)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuedLabels {
    grant_type: String,
    format: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    reason: String,
}

type HistogramFamily = Family<EndpointLabels, Histogram, fn() -> Histogram>;

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    issued: Family<IssuedLabels, Counter>,
    refused: Family<RefusedLabels, Counter>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    // 50 µs … ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

impl Metrics {
    /// A fresh registry.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let issued = Family::<IssuedLabels, Counter>::default();
        let refused = Family::<RefusedLabels, Counter>::default();
        registry.register(
            "requests_refused",
            "Requests the edge answered itself, by reason: refused before a handler's decision (ip_rule, rate_limit:<policy>, overload) or cut off by server.request_timeout (timeout)",
            refused.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by endpoint, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by endpoint",
            latency.clone(),
        );
        registry.register(
            "tokens_issued",
            "Access tokens issued by grant type and format",
            issued.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            issued,
            refused,
        }
    }

    /// Counts one issued token.
    pub fn token_issued(&self, grant_type: &str, format: &str) {
        self.issued
            .get_or_create(&IssuedLabels {
                grant_type: grant_type.into(),
                format: format.into(),
            })
            .inc();
    }

    /// Counts one refusal (IP rule, rate limit).
    pub fn refused(&self, reason: &str) {
        self.refused
            .get_or_create(&RefusedLabels {
                reason: reason.into(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            tracing::error!("metrics encoding failed");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The route layer that counts and times every request by its route template (never
/// the raw path, so label cardinality stays bounded).
#[derive(Debug, Clone)]
pub struct TrackLayer(AppState);

impl TrackLayer {
    /// Records into `state`'s metrics.
    pub fn new(state: AppState) -> Self {
        Self(state)
    }
}

impl<S> tower::Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track {
            state: self.0.clone(),
            inner,
        }
    }
}

/// [`TrackLayer`]'s service. Hand-written rather than `middleware::from_fn`, which
/// splits and rebuilds the request, clones the state for its extractor and boxes the
/// rest of the stack again on every call; axum clones a route's service for every
/// request it serves, so this one is a reference count and the route.
#[derive(Debug, Clone)]
pub struct Track<S> {
    state: AppState,
    inner: S,
}

impl<S> tower::Service<Request> for Track<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response, std::convert::Infallible>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let endpoint = Endpoint(req.extensions().get::<MatchedPath>().cloned());
        let method = MethodLabel::of(req.method());
        let start = Instant::now();
        let response = self.inner.call(req);
        let state = self.state.clone();
        Box::pin(async move {
            let res = response.await?;
            state
                .metrics()
                .record(endpoint, method, res.status().as_u16(), start);
            Ok(res)
        })
    }
}

impl Metrics {
    /// Counts one answered request and its latency.
    fn record(&self, endpoint: Endpoint, method: MethodLabel, status: u16, start: Instant) {
        self.latency
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.clone(),
            })
            .observe(start.elapsed().as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                endpoint,
                method,
                status,
            })
            .inc();
    }
}
