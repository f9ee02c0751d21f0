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

/// A header value formatted on the stack: one allocation, the value's own (`format!`
/// would grow a string two or three times, then the value would copy or wrap it).
/// Values longer than 128 bytes are formatted on the heap.
pub(crate) fn header_value(args: std::fmt::Arguments<'_>) -> Option<axum::http::HeaderValue> {
    let mut buf = [0u8; 128];
    let mut cur = std::io::Cursor::new(&mut buf[..]);
    if std::io::Write::write_fmt(&mut cur, args).is_ok() {
        let n = usize::try_from(cur.position()).unwrap_or(0);
        axum::http::HeaderValue::from_bytes(&buf[..n]).ok()
    } else {
        axum::http::HeaderValue::from_str(&args.to_string()).ok()
    }
}

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
    let mut buf = Vec::with_capacity(512);
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

#[cfg(test)]
mod tests {
    #[test]
    fn header_values_are_formatted_whatever_their_length() {
        let short = super::header_value(format_args!("\"{}\";q={};w={}", "token-ip", 20, 1));
        assert_eq!(
            short.expect("short").to_str().ok(),
            Some("\"token-ip\";q=20;w=1")
        );
        let long = "x".repeat(300);
        let v = super::header_value(format_args!("{long};r={}", u64::MAX)).expect("long");
        assert_eq!(
            v.to_str().ok(),
            Some(format!("{long};r={}", u64::MAX).as_str())
        );
        // Not a valid header value: no value, not a panic.
        assert!(super::header_value(format_args!("a\nb")).is_none());
    }
}
