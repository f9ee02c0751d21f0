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
