//! Rate limits at the HTTP edge: route classes, and the headers every limited
//! response carries (the per-IP check runs in [`crate::edge`]).
//!
//! Headers follow draft-ietf-httpapi-ratelimit-headers-09: `RateLimit-Policy:
//! "token-ip";q=6000;w=60` names the policy, its quota and window (seconds);
//! `RateLimit: "token-ip";r=5999;t=1` gives what remains and the seconds until the
//! budget is full again. A refusal is `429` with `Retry-After` in the envelope of
//! the route: RFC 6749-style JSON on `/oauth/*`, problem+json elsewhere.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_core::oauth::ErrorCode;
use portcullis_service::ratelimit::{RateOutcome, RouteClass};
use serde_json::json;

use crate::error::{OAuthError, Problem};
use crate::state::AppState;

/// Load shedding, the first thing [`crate::edge`] does: at most
/// `server.max_inflight_requests` requests run at once; one more is answered `503`
/// with `Retry-After: 1` straight away, in the envelope of its route, instead of
/// queueing behind the others until everything times out. Health probes and the
/// event stream are not counted (`Ok(None)`). A shed request costs no IP resolution
/// or rate-limit check.
pub fn admit<'a>(
    state: &'a AppState,
    path: &str,
) -> Result<Option<tokio::sync::SemaphorePermit<'a>>, Overloaded> {
    if matches!(path, "/healthz" | "/readyz") || path == crate::http::oauth::events::PATH {
        return Ok(None);
    }
    let Ok(permit) = state.inflight().try_acquire() else {
        state.metrics().refused("overload");
        return Err(Overloaded);
    };
    Ok(Some(permit))
}

/// A request [`admit`] turned away.
#[derive(Debug)]
pub struct Overloaded;

impl Overloaded {
    /// The `503` for a request on a route of `class`.
    pub fn response(class: Option<RouteClass>) -> Response {
        unavailable(class, "the server is at its request limit; retry after 1 s")
    }
}

/// A `503` with `Retry-After: 1` saying `detail`, in the envelope of a route of
/// `class`: RFC 6749-style JSON (`temporarily_unavailable`) on the OAuth endpoints,
/// problem+json elsewhere. Load shedding and `server.request_timeout` answer with it.
pub fn unavailable(class: Option<RouteClass>, detail: &str) -> Response {
    match class {
        Some(RouteClass::Token | RouteClass::Introspect) => {
            OAuthError::new(ErrorCode::TemporarilyUnavailable, detail).into_response()
        }
        _ => Problem::new(StatusCode::SERVICE_UNAVAILABLE, detail).into_response(),
    }
}

/// The route class of a path, for per-IP limits.
pub fn class_of(path: &str) -> Option<RouteClass> {
    match path {
        crate::http::discovery::TOKEN_PATH => Some(RouteClass::Token),
        crate::http::discovery::INTROSPECT_PATH | crate::http::discovery::REVOKE_PATH => {
            Some(RouteClass::Introspect)
        }
        "/api/v1/keys/verify" => Some(RouteClass::Verify),
        crate::http::forward_auth::PATH => Some(RouteClass::ForwardAuth),
        p if p.starts_with("/api/v1/") => Some(RouteClass::Admin),
        _ => None,
    }
}

static RATELIMIT_POLICY: header::HeaderName = header::HeaderName::from_static("ratelimit-policy");
static RATELIMIT: header::HeaderName = header::HeaderName::from_static("ratelimit");

/// Adds the `RateLimit-Policy` and `RateLimit` headers for `o` (appending, so
/// several policies on one response form a list).
pub fn add_headers(res: &mut Response, o: &RateOutcome) {
    let policy = list_member(
        o.policy,
        ("q", u64::from(o.limit.limit)),
        ("w", u64::from(o.limit.period_secs)),
    );
    let state = list_member(
        o.policy,
        ("r", u64::from(o.decision.remaining)),
        ("t", o.decision.reset_after_ms.div_ceil(1_000)),
    );
    let h = res.headers_mut();
    for (name, v) in [(&RATELIMIT_POLICY, policy), (&RATELIMIT, state)] {
        if let Some(v) = v {
            h.append(name.clone(), v);
        }
    }
}

/// `"<name>";<k1>=<v1>;<k2>=<v2>`, one member of a structured-field list, written
/// byte by byte into the value's own buffer: every limited answer carries two of
/// these per policy, and formatting them through `core::fmt` cost more than the
/// rate-limit check itself.
fn list_member(name: &str, (k1, v1): (&str, u64), (k2, v2): (&str, u64)) -> Option<HeaderValue> {
    let (mut a, mut b) = (itoa::Buffer::new(), itoa::Buffer::new());
    let (v1, v2) = (a.format(v1), b.format(v2));
    let mut buf = Vec::with_capacity(name.len() + k1.len() + v1.len() + k2.len() + v2.len() + 6);
    for part in ["\"", name, "\";", k1, "=", v1, ";", k2, "=", v2] {
        buf.extend_from_slice(part.as_bytes());
    }
    HeaderValue::from_maybe_shared(axum::body::Bytes::from(buf)).ok()
}

/// The 429 answer for a refused `o` on a route of `class`.
pub fn refused(state: &AppState, class: RouteClass, o: &RateOutcome) -> Response {
    state.metrics().refused(&format!("rate_limit:{}", o.policy));
    let detail = format!(
        "rate limit {} ({}) exceeded; retry after {} s",
        o.policy,
        o.limit,
        o.retry_after_secs()
    );
    let mut res = match class {
        RouteClass::Token | RouteClass::Introspect => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(json!({"error": "too_many_requests", "error_description": detail})),
        )
            .into_response(),
        _ => Problem::new(StatusCode::TOO_MANY_REQUESTS, detail).into_response(),
    };
    add_headers(&mut res, o);
    if let Ok(v) = HeaderValue::from_str(&o.retry_after_secs().to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::list_member;

    #[test]
    fn list_members_read_as_the_draft_writes_them() {
        let v = list_member("token-ip", ("q", 6000), ("w", 60)).expect("value");
        assert_eq!(v.to_str().ok(), Some("\"token-ip\";q=6000;w=60"));
        let v = list_member("api-key", ("r", 0), ("t", u64::MAX)).expect("value");
        assert_eq!(
            v.to_str().ok(),
            Some(format!("\"api-key\";r=0;t={}", u64::MAX).as_str())
        );
        // Not a valid header value: no value, not a panic.
        assert!(list_member("a\nb", ("q", 1), ("w", 1)).is_none());
    }
}
