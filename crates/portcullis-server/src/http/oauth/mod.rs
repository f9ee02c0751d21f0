//! OAuth 2.0 endpoints. Each handler: extract → authenticate the client → one
//! service call → map the result. Errors are RFC 6749 §5.2 JSON.

pub mod doc;
pub mod events;
pub mod introspect;
pub mod revoke;
pub mod token;
pub mod userinfo;

use std::sync::Arc;

use axum::http::{header, HeaderMap};
use axum::response::Response;
use portcullis_service::clients::Client;
use serde::Serialize;

use crate::error::OAuthError;
use crate::extract::{client_credentials, OAuthForm};
use crate::state::AppState;

/// The client calling an OAuth endpoint, authenticated.
pub(crate) struct Authenticated {
    pub(crate) client: Arc<Client>,
    /// It used `client_secret_basic` (errors then challenge Basic).
    pub(crate) basic: bool,
}

/// Authenticates the calling client with `client_secret_basic` or `client_secret_post`.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    form: &mut OAuthForm,
) -> Result<Authenticated, OAuthError> {
    let creds = client_credentials(headers, form)?;
    let client = state
        .authority()
        .authenticate_client(&creds.client_id, &creds.secret)
        .await
        .map_err(|e| OAuthError::from_service(e, creds.basic))?;
    Ok(Authenticated {
        client,
        basic: creds.basic,
    })
}

/// Authenticates the caller of the token endpoint: a confidential client with its
/// secret, or a public client by `client_id` alone (`token_endpoint_auth_method`
/// `none`, RFC 6749 §2.1) when it sent no credentials at all.
pub(crate) async fn authenticate_any(
    state: &AppState,
    headers: &HeaderMap,
    form: &mut OAuthForm,
) -> Result<Authenticated, OAuthError> {
    let has_header = headers.contains_key(header::AUTHORIZATION);
    if !has_header && form.get("client_secret").is_none() {
        if let Some(id) = form.get("client_id") {
            let client = state
                .authority()
                .authenticate_public_client(id)
                .await
                .map_err(|e| OAuthError::from_service(e, false))?;
            return Ok(Authenticated {
                client,
                basic: false,
            });
        }
    }
    authenticate(state, headers, form).await
}

/// JSON with `Cache-Control: no-store` and `Pragma: no-cache`, as token responses require.
pub(crate) fn no_store<T: Serialize>(body: T) -> Response {
    super::json_no_store(&body, true)
}

/// Shortens attacker-supplied text before it is echoed in an error description.
pub(crate) fn echo(s: &str) -> String {
    let t: String = s.chars().take(64).collect();
    format!("{t:?}")
}
