//! `GET|POST /userinfo` (OpenID Connect Core §5.3): the claims of the user behind
//! a live access token granted `openid`, by scope (`profile`, `email`). Any other
//! token gets 401 with an RFC 6750 challenge.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::no_store;
use crate::state::AppState;

fn challenge(error: Option<&str>) -> Response {
    let v = match error {
        Some(e) => format!(r#"Bearer realm="portcullis", error="{e}""#),
        None => r#"Bearer realm="portcullis""#.to_owned(),
    };
    let mut res = StatusCode::UNAUTHORIZED.into_response();
    if let Ok(v) = HeaderValue::from_str(&v) {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The UserInfo endpoint.
pub async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return challenge(None);
    };
    match state.authority().userinfo(token).await {
        Ok(Some(claims)) => no_store(claims),
        Ok(None) => challenge(Some("invalid_token")),
        Err(e) => crate::error::OAuthError::from_service(e, false).into_response(),
    }
}
