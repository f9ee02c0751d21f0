//! `/.well-known/oauth-authorization-server` (RFC 8414), `/.well-known/openid-configuration`
//! and `/jwks.json`. Discovery lists only what this server really supports.

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::Response;
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
/// Authorization endpoint path.
pub const AUTHORIZE_PATH: &str = "/oauth/authorize";
/// UserInfo endpoint path.
pub const USERINFO_PATH: &str = "/userinfo";
/// RP-initiated logout (`end_session_endpoint`) path.
pub const LOGOUT_PATH: &str = "/oauth/logout";

/// The metadata document for `issuer` (RFC 8414 and OpenID Connect Discovery 1.0).
pub fn document(issuer: &str) -> Value {
    use portcullis_service::signin::{ACR_MFA, ACR_PWD};
    let auth_methods = ["client_secret_basic", "client_secret_post"];
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}{AUTHORIZE_PATH}"),
        "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
        "userinfo_endpoint": format!("{issuer}{USERINFO_PATH}"),
        "end_session_endpoint": format!("{issuer}{LOGOUT_PATH}"),
        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "introspection_endpoint": format!("{issuer}{INTROSPECT_PATH}"),
        "revocation_endpoint": format!("{issuer}{REVOKE_PATH}"),
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", "password"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "scopes_supported": portcullis_service::authorize::PROTOCOL_SCOPES,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [portcullis_service::authorize::ID_TOKEN_ALG.as_str()],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid", "at_hash", "preferred_username", "name", "updated_at", "email", "email_verified"],
        "acr_values_supported": [ACR_PWD, ACR_MFA],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "access_token_signing_alg_values_supported": ["EdDSA", "ES256", "RS256", "PS256"],
        "dpop_signing_alg_values_supported": ["EdDSA", "ES256", "RS256", "PS256"],
        "portcullis_security_events_endpoint": format!("{issuer}{}", crate::http::oauth::events::PATH),
    })
}

/// CORS for the public documents (discovery and the JWKS): any origin may read them.
/// Static headers rather than tower-http's CORS layer, which on these routes cost
/// more than serving the document (a clone of its configuration and a header map of
/// its own per request); the answers are the same as the token endpoint's layer gives.
static ANY_ORIGIN: HeaderValue = HeaderValue::from_static("*");
static PREFLIGHT: [(HeaderName, HeaderValue); 4] = [
    (
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    ),
    (
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET,POST"),
    ),
    (
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization,content-type,dpop"),
    ),
    (
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("3600"),
    ),
];

/// The CORS preflight (`OPTIONS`) of a public document.
pub async fn preflight() -> Response {
    let mut res = Response::new(axum::body::Body::empty());
    res.headers_mut().extend(PREFLIGHT.iter().cloned());
    res
}

fn json_response(body: axum::body::Bytes, cache: HeaderValue) -> Response {
    let mut h = super::json_headers();
    h.insert(header::CACHE_CONTROL, cache);
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN.clone());
    let mut res = Response::new(axum::body::Body::from(body));
    *res.headers_mut() = h;
    res
}

/// `GET /.well-known/oauth-authorization-server` and `/.well-known/openid-configuration`.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "metadata",
    responses((status = 200, description = "RFC 8414 metadata", body = Object)))]
pub async fn metadata(State(state): State<AppState>) -> Response {
    json_response(
        state.discovery(),
        HeaderValue::from_static("public, max-age=3600"),
    )
}

/// `GET /jwks.json`: every published key (next, active, retired).
#[utoipa::path(get, path = "/jwks.json", tag = "metadata",
    responses((status = 200, description = "RFC 7517 key set: every published signing key", body = Object)))]
pub async fn jwks(State(state): State<AppState>) -> Response {
    json_response(
        state.authority().keyring().jwks_document(),
        state.jwks_cache_control(),
    )
}
