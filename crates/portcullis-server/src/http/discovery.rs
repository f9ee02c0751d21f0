//! `/.well-known/oauth-authorization-server` (RFC 8414), `/.well-known/openid-configuration`
//! and `/jwks.json`. Discovery lists only what this server really supports.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::state::AppState;

/// Paths of the endpoints, relative to the issuer.
pub const TOKEN_PATH: &str = "/oauth/token";
/// Introspection endpoint path.
pub const INTROSPECT_PATH: &str = "/oauth/introspect";
/// Revocation endpoint path.
pub const REVOKE_PATH: &str = "/oauth/revoke";
/// JWKS path.
pub const JWKS_PATH: &str = "/jwks.json";

/// The metadata document for `issuer`.
pub fn document(issuer: &str) -> Value {
    let auth_methods = ["client_secret_basic", "client_secret_post"];
    json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "introspection_endpoint": format!("{issuer}{INTROSPECT_PATH}"),
        "revocation_endpoint": format!("{issuer}{REVOKE_PATH}"),
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "access_token_signing_alg_values_supported": ["EdDSA", "ES256", "RS256", "PS256"],
    })
}

fn json_response(body: String, cache: HeaderValue) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, cache);
    res
}

/// `GET /.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.
pub async fn metadata(State(state): State<AppState>) -> Response {
    json_response(
        state.discovery().to_owned(),
        HeaderValue::from_static("public, max-age=3600"),
    )
}

/// `GET /jwks.json`: every published key (next, active, retired).
pub async fn jwks(State(state): State<AppState>) -> Response {
    let ring = state.authority().keyring();
    let max_age = state.settings().keys.jwks_max_age.as_secs();
    let cache = HeaderValue::from_str(&format!("public, max-age={max_age}"))
        .unwrap_or(HeaderValue::from_static("no-cache"));
    json_response(ring.jwks_document().to_owned(), cache)
}
