//! `POST /oauth/introspect` (RFC 7662). The caller authenticates as a client;
//! anything it may not see is `{"active": false}`, exactly like an unknown token.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::{authenticate, no_store, Authenticated};
use crate::error::OAuthError;
use crate::extract::OAuthForm;
use crate::state::AppState;

/// The introspection endpoint.
#[utoipa::path(post, path = "/oauth/introspect", tag = "oauth",
    request_body(content = crate::http::oauth::doc::TokenForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_basic" = [])),
    responses(
        (status = 200, description = "The answer; unknown and foreign tokens are inactive", body = crate::http::oauth::doc::IntrospectionBody),
        (status = 400, description = "invalid_request", body = crate::http::oauth::doc::OAuthErrorBody),
        (status = 401, description = "invalid_client", body = crate::http::oauth::doc::OAuthErrorBody),
        (status = 413, description = "Body over server.max_body_bytes", body = crate::http::oauth::doc::OAuthErrorBody),
        (status = 415, description = "Not application/x-www-form-urlencoded", body = crate::http::oauth::doc::OAuthErrorBody),
        (status = 429, description = "Rate limited (Retry-After)", body = crate::http::oauth::doc::OAuthErrorBody),
        (status = 503, description = "Overloaded or unavailable (Retry-After)", body = crate::http::oauth::doc::OAuthErrorBody),
    ))]
pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    mut form: OAuthForm,
) -> Result<Response, OAuthError> {
    let Authenticated {
        client: caller,
        basic,
    } = authenticate(&state, &headers, &mut form).await?;
    let auth = state.authority();
    let token = form.require("token")?;
    let answer = auth
        .introspect(&caller, token)
        .await
        .map_err(|e| OAuthError::from_service(e, basic))?;
    Ok(no_store(answer))
}
