//! The edge: what every request passes before and after its route, as one service.
//!
//! In order, for each request:
//! 1. its request id: the client's `x-request-id` when it sent one, else a new one
//!    ([`RequestIds`]); echoed on the response;
//! 2. the request timeout (`server.request_timeout`): `503` when it runs out;
//! 3. load shedding ([`crate::ratelimit::admit`]);
//! 4. the client address ([`crate::net::IpRules::client_ip`]) and the request's audit
//!    context (address, user agent, and the request line every log line written
//!    meanwhile shows: no tracing span per request);
//! 5. IP rules and temporary denies (`403`), then the per-IP rate limit of the route
//!    class (`429`, and `RateLimit` headers on the answer);
//! 6. the route;
//! 7. the security headers every response carries unless its handler set its own.
//!
//! This was a tower layer each (tower-http's request-id, propagation and timeout
//! layers, two `map_response`s and an axum `from_fn`). On a light request (JWKS,
//! forward-auth) the layers themselves cost more than the work: the whole stack was
//! cloned for every request, each layer moved the request into a future of its own,
//! `from_fn` boxed the rest of the stack again, and the request id travelled through
//! two extension maps. One service holding an `Arc` does the same work once.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_service::audit::{with_context, AuditContext, RequestLine};
use portcullis_service::ratelimit::RouteClass;
use tower::ServiceExt;

use crate::error::Problem;
use crate::net::{is_probe, ClientIp};
use crate::state::AppState;

/// The request-id header, kept when the client sent one, set otherwise, and echoed
/// on the response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Request ids: a random per-process prefix and a counter, `<prefix as 16 hex
/// digits>-<counter in hex>`. Unique across restarts and nodes without a system call
/// per request (a UUIDv4 reads the OS RNG each time); the prefix is rendered once and
/// the counter written in hex by hand (`format!` was a tenth of a JWKS answer's edge).
#[derive(Debug)]
pub struct RequestIds {
    /// The prefix and its `-`.
    prefix: [u8; 17],
    next: AtomicU64,
}

impl RequestIds {
    /// A generator with a fresh random prefix.
    pub fn new() -> Self {
        let mut prefix = [b'-'; 17];
        hex_into(uuid::Uuid::new_v4().as_u64_pair().0, &mut prefix[..16]);
        Self {
            prefix,
            next: AtomicU64::new(0),
        }
    }

    /// The next id.
    pub fn next(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let digits = ((64 - n.leading_zeros() as usize).div_ceil(4)).max(1);
        let mut buf = [0u8; 33];
        buf[..17].copy_from_slice(&self.prefix);
        hex_into(n, &mut buf[17..17 + digits]);
        HeaderValue::from_bytes(&buf[..17 + digits]).unwrap_or(HeaderValue::from_static("-"))
    }
}

/// Writes the low `out.len()` hex digits of `n` into `out`, most significant first.
fn hex_into(mut n: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in out.iter_mut().rev() {
        *b = DIGITS[(n & 0xf) as usize];
        n >>= 4;
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

/// Headers every response carries unless its handler set its own. The values are
/// built once: `HeaderValue::from_static` called at run time checks every byte again.
static SECURITY_HEADERS: [(HeaderName, HeaderValue); 4] = [
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
    (
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    ),
    // Anything that does not say otherwise (discovery and JWKS do) is not cached:
    // many responses carry a secret shown once.
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
];

/// `Strict-Transport-Security`, sent when this server terminates TLS itself.
static HSTS: HeaderValue = HeaderValue::from_static("max-age=63072000; includeSubDomains");

fn security_headers(res: &mut Response, hsts: bool) {
    let h = res.headers_mut();
    for (name, value) in &SECURITY_HEADERS {
        h.entry(name.clone()).or_insert_with(|| value.clone());
    }
    if hsts {
        h.entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert_with(|| HSTS.clone());
    }
}

/// The edge around the routes `R` (see the module documentation). Cloning it, which
/// the listener does for every request, is one reference count.
#[derive(Debug)]
pub struct Edge<R> {
    shared: Arc<Shared<R>>,
}

impl<R> Clone for Edge<R> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

#[derive(Debug)]
struct Shared<R> {
    state: AppState,
    routes: R,
    ids: RequestIds,
    timeout: Duration,
    /// HSTS only when this server terminates TLS itself.
    hsts: bool,
}

impl<R> Edge<R> {
    /// The edge of `state`'s server around `routes`.
    pub fn new(state: AppState, routes: R) -> Self {
        let server = &state.settings().server;
        let (timeout, hsts) = (server.request_timeout, server.tls_cert_file.is_some());
        Self {
            shared: Arc::new(Shared {
                state,
                routes,
                ids: RequestIds::new(),
                timeout,
                hsts,
            }),
        }
    }
}

impl<R> tower::Service<Request> for Edge<R>
where
    R: tower::Service<Request, Response = Response, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    R::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The routes are called with `oneshot`, which waits for their readiness.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move { Ok(shared.serve(req).await) })
    }
}

impl<R> Shared<R>
where
    R: tower::Service<Request, Response = Response, Error = Infallible> + Clone,
{
    async fn serve(&self, req: Request) -> Response {
        let id = match req.headers().get(&REQUEST_ID) {
            Some(v) => v.clone(),
            None => self.ids.next(),
        };
        let class = crate::ratelimit::class_of(req.uri().path());
        let mut res = match tokio::time::timeout(self.timeout, self.admit(&id, req, class)).await {
            Ok(res) => res,
            Err(_) => {
                self.state.metrics().refused("timeout");
                crate::ratelimit::unavailable(
                    class,
                    "the request did not finish within the server's request timeout",
                )
            }
        };
        security_headers(&mut res, self.hsts);
        res.headers_mut().entry(REQUEST_ID).or_insert(id);
        res
    }

    /// Sheds load beyond `server.max_inflight_requests`, resolves the client address
    /// and runs the rest of the request in its audit context.
    async fn admit(&self, id: &HeaderValue, req: Request, class: Option<RouteClass>) -> Response {
        let state = &self.state;
        let _permit = match crate::ratelimit::admit(state, req.uri().path()) {
            Ok(p) => p,
            Err(crate::ratelimit::Overloaded) => {
                return crate::ratelimit::Overloaded::response(class)
            }
        };
        let peer = req
            .extensions()
            .get::<ClientIp>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0);
        let ip = state.ip_rules().client_ip(peer, req.headers());
        let ua = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        let line = RequestLine {
            method: crate::metrics::method_name(req.method()),
            path: req.uri().path().into(),
            id: id.to_str().unwrap_or("-").into(),
        };
        let ctx = Arc::new(AuditContext::new(Some(ip), ua).serving(line));
        with_context(ctx, self.checked(ip, req, class)).await
    }

    /// The edge's checks once the request has its context, then the route.
    async fn checked(&self, ip: IpAddr, mut req: Request, class: Option<RouteClass>) -> Response {
        let state = &self.state;
        let started = tracing::enabled!(tracing::Level::DEBUG).then(std::time::Instant::now);
        let rules = state.ip_rules();
        let path = req.uri().path();
        if !is_probe(path) && (!rules.permits(ip) || state.authority().is_ip_blocked(ip)) {
            tracing::info!(client_ip = %ip, "request refused by ip rules");
            state.metrics().refused("ip_rule");
            return Problem::new(
                StatusCode::FORBIDDEN,
                "requests from this network are not allowed",
            )
            .into_response();
        }
        let limited = match class {
            Some(class) => match state.authority().rate_check_ip(class, ip).await {
                Some(o) if !o.decision.allowed => {
                    tracing::info!(client_ip = %ip, policy = %o.policy, "rate limited");
                    return crate::ratelimit::refused(state, class, &o);
                }
                other => other,
            },
            None => None,
        };
        // The listener put the peer's address there; the client's replaces it in place.
        match req.extensions_mut().get_mut::<ClientIp>() {
            Some(c) => c.0 = ip,
            None => {
                req.extensions_mut().insert(ClientIp(ip));
            }
        }
        let Ok(mut res) = self.routes.clone().oneshot(req).await;
        if let Some(o) = limited {
            crate::ratelimit::add_headers(&mut res, &o);
        }
        if let Some(t) = started {
            tracing::debug!(
                status = res.status().as_u16(),
                latency_us = t.elapsed().as_micros() as u64,
                "request finished"
            );
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_and_share_the_process_prefix() {
        let ids = RequestIds::new();
        let (a, b) = (ids.next(), ids.next());
        let (a, b) = (a.to_str().expect("ascii"), b.to_str().expect("ascii"));
        assert_ne!(a, b);
        assert_eq!(
            a.split_once('-').map(|p| p.0),
            b.split_once('-').map(|p| p.0)
        );
        assert_eq!(a.split_once('-').map(|p| p.0.len()), Some(16));
        assert!(b.ends_with("-1"), "{b}");
        let digits = |v: HeaderValue| {
            v.to_str()
                .expect("ascii")
                .split_once('-')
                .map(|p| p.1.to_owned())
        };
        let late = RequestIds {
            next: AtomicU64::new(0xab_cdef),
            ..RequestIds::new()
        };
        assert_eq!(digits(late.next()).as_deref(), Some("abcdef"));
        let last = RequestIds {
            next: AtomicU64::new(u64::MAX),
            ..RequestIds::new()
        };
        assert_eq!(digits(last.next()).as_deref(), Some("ffffffffffffffff"));
        let other = RequestIds::new().next();
        assert_ne!(
            other.to_str().expect("ascii"),
            a,
            "a new process has a new prefix"
        );
    }
}
