//! HTTP handlers, one file per action.
//!
//! - [`oauth`]: token, introspection, revocation endpoints.
//! - [`discovery`]: RFC 8414 / OpenID discovery and the JWKS.
//! - [`ops`]: health, readiness, metrics.
//! - [`forward_auth`]: `/auth/verify` for reverse proxies.
//! - [`ui`]: pages for people: sign-in, MFA, consent, account, logout.

pub mod admin;
pub mod discovery;
pub mod forward_auth;
pub mod oauth;
pub mod ops;
pub mod ui;

/// The headers of a JSON answer built by hand: `Content-Type`, with room for what the
/// handler and the edge add (caching, security headers, request id) without the map
/// growing on every answer.
pub(crate) fn json_headers() -> axum::http::HeaderMap {
    let mut h = axum::http::HeaderMap::with_capacity(12);
    h.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    h
}

/// A JSON answer that must not be cached (`Cache-Control: no-store`, and `Pragma:
/// no-cache` where RFC 6749 §5.1 asks for it): token, introspection and key
/// verification answers.
///
/// The body is written into one buffer sized for a typical answer, and the header map
/// has room for what the edge adds. axum's `Json` writes every piece of the document
/// (each name, quote and value) through a `BytesMut` writer that starts at 128 bytes
/// and grows, which cost an introspection answer more than its escaping did.
pub(crate) fn json_no_store<T: serde::Serialize + ?Sized>(
    body: &T,
    pragma: bool,
) -> axum::response::Response {
    use axum::http::{header, HeaderValue, StatusCode};
    use axum::response::IntoResponse;
    let mut buf = Vec::with_capacity(1024);
    if let Err(e) = serde_json::to_writer(&mut buf, body) {
        // What axum's `Json` answers when a value cannot be serialized.
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            e.to_string(),
        )
            .into_response();
    }
    let mut h = json_headers();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if pragma {
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
    let mut res = axum::response::Response::new(axum::body::Body::from(buf));
    *res.headers_mut() = h;
    res
}
