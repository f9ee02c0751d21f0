//! Extractors of the admin API: the bearer admin principal and a JSON body whose
//! rejections are problem+json.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use portcullis_core::secret::SecretString;
use portcullis_service::admin::AdminPrincipal;
use serde::de::DeserializeOwned;

use crate::error::Problem;
use crate::state::AppState;

/// An authenticated admin caller. Handlers then call [`Admin::require`] with the
/// scope the action needs: authorization is explicit in every handler.
#[derive(Debug)]
pub struct Admin(pub Arc<AdminPrincipal>);

impl Admin {
    /// Refuses with 403 unless the token holds `scope`.
    pub fn require(&self, scope: &str) -> Result<(), Problem> {
        if self.0.allows(scope) {
            Ok(())
        } else {
            Err(Problem::forbidden(scope))
        }
    }
}

/// The credential of an `Authorization: Bearer …` header (scheme case-insensitive).
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)
            .ok_or_else(|| Problem::unauthorized("an admin bearer token is required"))?;
        match state
            .authority()
            .authenticate_admin(&SecretString::new(token))
            .await
            .map_err(Problem::from_service)?
        {
            Some(p) => {
                portcullis_service::audit::set_actor(&format!("admin:{}", p.id));
                Ok(Self(p))
            }
            None => Err(Problem::unauthorized(
                "the admin token is invalid or revoked",
            )),
        }
    }
}

/// A JSON body; malformed JSON, a wrong content type or an oversized body become problem+json.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(e) => {
                let status = match &e {
                    JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    JsonRejection::JsonDataError(_) => StatusCode::UNPROCESSABLE_ENTITY,
                    JsonRejection::BytesRejection(_) => StatusCode::PAYLOAD_TOO_LARGE,
                    _ => StatusCode::BAD_REQUEST,
                };
                Err(Problem::new(status, e.body_text()))
            }
        }
    }
}

/// A user authenticated by one of their personal access tokens (self-service endpoints).
#[derive(Debug)]
pub struct Me(pub portcullis_service::pats::PatPrincipal);

impl FromRequestParts<AppState> for Me {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)
            .ok_or_else(|| Problem::unauthorized("a personal access token is required"))?;
        let ip = parts.extensions.get::<crate::net::ClientIp>().map(|c| c.0);
        match state
            .authority()
            .authenticate_pat(&SecretString::new(token), ip)
            .await
            .map_err(Problem::from_service)?
        {
            Some(p) => {
                portcullis_service::audit::set_actor(&format!("user:{}", p.user_id));
                Ok(Self(p))
            }
            None => Err(Problem::unauthorized(
                "the personal access token is invalid, expired or revoked",
            )),
        }
    }
}

/// Query parameters; an unknown or malformed parameter becomes problem+json (400).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(e) => Err(Problem::new(StatusCode::BAD_REQUEST, e.body_text())),
        }
    }
}
