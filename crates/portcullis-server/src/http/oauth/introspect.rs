//! `POST /oauth/introspect` (RFC 7662). The caller authenticates as a client;
//! anything it may not see is `{"active": false}`, exactly like an unknown token.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::no_store;
use crate::error::OAuthError;
use crate::extract::{client_credentials, OAuthForm};
use crate::state::AppState;

/// The introspection endpoint.
pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    mut form: OAuthForm,
) -> Result<Response, OAuthError> {
    let creds = client_credentials(&headers, &mut form)?;
    let basic = creds.basic;
    let auth = state.authority();
    let caller = auth
        .authenticate_client(&creds.client_id, &creds.secret)
        .await
        .map_err(|e| OAuthError::from_service(e, basic))?;
    let token = form.require("token")?;
    let answer = auth
        .introspect(&caller, token)
        .await
        .map_err(|e| OAuthError::from_service(e, basic))?;
    Ok(no_store(answer))
}
