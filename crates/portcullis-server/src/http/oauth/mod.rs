//! OAuth 2.0 endpoints. Each handler: extract → authenticate the client → one
//! service call → map the result. Errors are RFC 6749 §5.2 JSON.

pub mod introspect;
pub mod revoke;
pub mod token;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// JSON with `Cache-Control: no-store` and `Pragma: no-cache`, as token responses require.
pub(crate) fn no_store<T: Serialize>(body: T) -> Response {
    let mut res = Json(body).into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

/// Shortens attacker-supplied text before it is echoed in an error description.
pub(crate) fn echo(s: &str) -> String {
    let t: String = s.chars().take(64).collect();
    format!("{t:?}")
}
