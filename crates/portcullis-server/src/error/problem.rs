//! RFC 9457 `application/problem+json` for the admin API (`/api/v1`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_service::ServiceError;
use serde::Serialize;

/// A problem response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    /// The request member at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'static str>,
    #[serde(skip)]
    #[schema(ignore)]
    challenge: Option<&'static str>,
}

impl Problem {
    /// A problem with a status and a detail.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: Some(detail.into()),
            field: None,
            challenge: None,
        }
    }

    /// 401 with `WWW-Authenticate: Bearer` (RFC 6750).
    pub fn unauthorized(detail: &str) -> Self {
        let mut p = Self::new(StatusCode::UNAUTHORIZED, detail);
        p.challenge = Some(r#"Bearer realm="portcullis-admin", error="invalid_token""#);
        p
    }

    /// 403: the token lacks `scope`.
    pub fn forbidden(scope: &str) -> Self {
        let mut p = Self::new(
            StatusCode::FORBIDDEN,
            format!("this token lacks the {scope:?} scope"),
        );
        p.challenge = Some(r#"Bearer realm="portcullis-admin", error="insufficient_scope""#);
        p
    }

    /// Maps a service error; 5xx causes are logged here, once, and never sent.
    pub fn from_service(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid { field, message } => {
                let mut p = Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("invalid {field}: {message}"),
                );
                p.field = Some(field);
                p
            }
            ServiceError::InvalidRequest(m) => Self::new(StatusCode::BAD_REQUEST, m),
            ServiceError::NotFound(m) => Self::new(StatusCode::NOT_FOUND, format!("{m} not found")),
            ServiceError::Conflict(m) => Self::new(StatusCode::CONFLICT, m),
            ServiceError::Unavailable(cause) => {
                tracing::error!(error = %format!("{:#}", anyhow::Error::new(cause)), "storage unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the server is temporarily unavailable",
                )
            }
            other => {
                tracing::error!(error = %format!("{:#}", anyhow::Error::new(other)), "request failed");
                let mut p = Self::new(StatusCode::INTERNAL_SERVER_ERROR, "");
                p.detail = None;
                p
            }
        }
    }
}

impl From<ServiceError> for Problem {
    fn from(e: ServiceError) -> Self {
        Self::from_service(e)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let challenge = self.challenge;
        let mut res = (status, axum::Json(self)).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(c) = challenge {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        res
    }
}
