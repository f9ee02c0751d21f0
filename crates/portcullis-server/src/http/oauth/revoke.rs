//! `POST /oauth/revoke` (RFC 7009). Unknown tokens answer 200; a token of another
//! client is refused. The revocation is committed before the 200 is sent.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_service::tokens::Revoked;

use super::{authenticate_any, Authenticated};
use crate::error::OAuthError;
use crate::extract::OAuthForm;
use crate::state::AppState;

/// The revocation endpoint.
#[utoipa::path(post, path = "/oauth/revoke", tag = "oauth",
    request_body(content = crate::http::oauth::doc::TokenForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_basic" = []), ()),
    responses(
        (status = 200, description = "Revoked, or unknown (RFC 7009 §2.2); empty body"),
        (status = 400, description = "invalid_request, unsupported_token_type", body = crate::http::oauth::doc::OAuthErrorBody),
        (status = 401, description = "invalid_client", body = crate::http::oauth::doc::OAuthErrorBody),
        (status = 413, description = "Body over server.max_body_bytes", body = crate::http::oauth::doc::OAuthErrorBody),
        (status = 415, description = "Not application/x-www-form-urlencoded", body = crate::http::oauth::doc::OAuthErrorBody),
        (status = 429, description = "Rate limited (Retry-After)", body = crate::http::oauth::doc::OAuthErrorBody),
        (status = 503, description = "Overloaded or unavailable (Retry-After)", body = crate::http::oauth::doc::OAuthErrorBody),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    mut form: OAuthForm,
) -> Result<Response, OAuthError> {
    let Authenticated {
        client: caller,
        basic,
    } = authenticate_any(&state, &headers, &mut form).await?;
    let auth = state.authority();
    let token = form.require("token")?;
    let fail = |e| OAuthError::from_service(e, basic);
    // Refresh tokens revoke their whole grant; everything else is an access token.
    let outcome = match auth
        .revoke_refresh_token(&caller, token)
        .await
        .map_err(fail)?
    {
        Some(o) => o,
        None => auth.revoke(&caller, token).await.map_err(fail)?,
    };
    if outcome == Revoked::Nothing {
        tracing::debug!(client_id = %caller.id, "revocation of an unknown or inactive token");
    }
    let mut res = StatusCode::OK.into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}
