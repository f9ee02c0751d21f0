//! Error envelopes. One place maps errors to HTTP.
//!
//! - [`OAuthError`]: RFC 6749 §5.2 JSON (`error`, `error_description`) for the
//!   OAuth endpoints; `invalid_client` is 401 with `WWW-Authenticate`.
//! - [`Problem`]: RFC 9457 `application/problem+json` for the admin API.
//! - 5xx bodies are opaque (`server_error`); the cause is logged once, here.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_core::oauth::ErrorCode;
use portcullis_service::ServiceError;
use serde::Serialize;

mod problem;
pub use problem::Problem;

/// An OAuth error response.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    code: ErrorCode,
    description: Option<String>,
    /// Set when the client tried HTTP Basic: the 401 then challenges Basic (RFC 6749 §5.2).
    basic_challenge: bool,
    /// A fresh `DPoP-Nonce` to send (RFC 9449 §8).
    dpop_nonce: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'a str>,
}

impl OAuthError {
    /// An error with the status RFC 6749 gives its code.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        let status = match code {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
            ErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            code,
            description: Some(description.into()),
            basic_challenge: false,
            dpop_nonce: None,
        }
    }

    /// Sends `DPoP-Nonce: nonce` with the error.
    pub fn with_dpop_nonce(mut self, nonce: Option<String>) -> Self {
        self.dpop_nonce = nonce;
        self
    }

    /// `invalid_request`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// `invalid_client`, challenging Basic when the client used it.
    pub fn invalid_client(basic: bool) -> Self {
        let mut e = Self::new(ErrorCode::InvalidClient, "client authentication failed");
        e.basic_challenge = basic;
        e
    }

    /// Overrides the status (413 for an oversized body, 415 …).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Records that the client authenticated with Basic (affects the 401 challenge).
    pub fn with_basic(mut self, basic: bool) -> Self {
        self.basic_challenge = basic;
        self
    }

    /// The wire code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// Maps a service error. 5xx causes are logged here, once, and never sent.
    pub fn from_service(e: ServiceError, basic: bool) -> Self {
        match e {
            ServiceError::InvalidClient => Self::invalid_client(basic),
            ServiceError::InvalidRequest(m) | ServiceError::Invalid { message: m, .. } => {
                Self::invalid_request(m)
            }
            ServiceError::InvalidScope(m) => Self::new(ErrorCode::InvalidScope, m),
            ServiceError::InvalidGrant(m) => Self::new(ErrorCode::InvalidGrant, m),
            ServiceError::InvalidTarget(m) => Self::new(ErrorCode::InvalidTarget, m),
            ServiceError::UnauthorizedClient(m) => Self::new(ErrorCode::UnauthorizedClient, m),
            ServiceError::InvalidDpopProof(m) => Self::new(ErrorCode::InvalidDpopProof, m),
            ServiceError::UseDpopNonce(nonce) => Self::new(
                ErrorCode::UseDpopNonce,
                "the DPoP proof must carry the server's nonce (DPoP-Nonce header)",
            )
            .with_dpop_nonce(Some(nonce)),
            ServiceError::Unavailable(cause) => {
                tracing::error!(error = %format!("{:#}", anyhow::Error::new(cause)), "storage unavailable");
                Self::new(
                    ErrorCode::TemporarilyUnavailable,
                    "the server is temporarily unavailable",
                )
            }
            other => {
                tracing::error!(error = %format!("{:#}", anyhow::Error::new(other)), "request failed");
                let mut e = Self::new(ErrorCode::ServerError, "internal error");
                e.description = None;
                e
            }
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = Body {
            error: self.code.as_str(),
            error_description: self.description.as_deref(),
        };
        let mut res = (self.status, axum::Json(body)).into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(v) = self
            .dpop_nonce
            .as_deref()
            .and_then(|n| HeaderValue::from_str(n).ok())
        {
            h.insert("dpop-nonce", v);
        }
        if self.status == StatusCode::UNAUTHORIZED && self.code == ErrorCode::InvalidClient {
            let challenge = if self.basic_challenge {
                r#"Basic realm="portcullis", charset="UTF-8""#
            } else {
                r#"Basic realm="portcullis""#
            };
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_store::StoreError;

    fn database_down() -> ServiceError {
        ServiceError::Unavailable(StoreError::Unavailable(sqlx::Error::PoolTimedOut))
    }

    async fn json(res: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(res.into_body(), 4096)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn an_unreachable_database_is_503_with_retry_after_in_either_envelope() {
        let res = OAuthError::from_service(database_down(), true).into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());
        let v = json(res).await;
        assert_eq!(v["error"], "temporarily_unavailable", "{v}");
        assert_eq!(
            v["error_description"], "the server is temporarily unavailable",
            "the cause stays in the log: {v}"
        );

        let res = Problem::from_service(database_down()).into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let v = json(res).await;
        assert_eq!(v["status"], 503, "{v}");
        assert_eq!(v["detail"], "the server is temporarily unavailable", "{v}");
    }

    #[tokio::test]
    async fn only_a_503_says_when_to_retry() {
        for res in [
            OAuthError::invalid_request("bad").into_response(),
            OAuthError::invalid_client(true).into_response(),
            OAuthError::from_service(ServiceError::InvalidGrant("used".into()), false)
                .into_response(),
            Problem::new(StatusCode::NOT_FOUND, "no such key").into_response(),
            Problem::from_service(ServiceError::Conflict("taken".into())).into_response(),
        ] {
            assert_ne!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(
                res.headers().get(header::RETRY_AFTER).is_none(),
                "{}",
                res.status()
            );
        }
    }
}
