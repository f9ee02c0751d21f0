//! axum integration: the [`Authenticated`] extractor and the [`RequireToken`]
//! tower layer. Refusals are RFC 6750 / RFC 9449 answers: the status,
//! `WWW-Authenticate` challenges for `Bearer` and `DPoP`, and a JSON body
//! `{"error", "error_description"}`.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use portcullis_verify::axum::{Authenticated, RequireToken};
//! use portcullis_verify::Verifier;
//!
//! async fn hello(Authenticated(who): Authenticated) -> String {
//!     format!("hello {}", who.subject)
//! }
//!
//! fn app(verifier: Verifier) -> Router {
//!     Router::new()
//!         .route("/admin", get(hello))
//!         .layer(RequireToken::new(verifier.clone()).scopes(["admin"]))
//!         .route("/hello", get(hello))
//!         .with_state(verifier)
//! }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::axum::extract::{FromRef, FromRequestParts, Request};
use ::axum::http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use ::axum::response::{IntoResponse, Response};
use ::axum::Json;

use crate::{AuthError, Presented, Principal, Verifier};

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::UNAUTHORIZED);
        let body = match self.code() {
            Some(code) => serde_json::json!({"error": code, "error_description": self.description}),
            None => serde_json::json!({"error_description": self.description}),
        };
        let mut res = (status, Json(body)).into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        for c in self.challenges("api") {
            if let Ok(v) = HeaderValue::from_str(&c) {
                h.append(header::WWW_AUTHENTICATE, v);
            }
        }
        res
    }
}

impl Verifier {
    /// Authenticates a request from its method, URI and headers.
    pub async fn authenticate_http(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Principal, AuthError> {
        let authorization = match headers.get(header::AUTHORIZATION).map(|v| v.to_str()) {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(_)) => {
                return Err(AuthError::new(
                    crate::AuthErrorKind::InvalidRequest,
                    "the Authorization header is not ASCII",
                ))
            }
        };
        let mut proofs = Vec::new();
        for v in headers.get_all("dpop") {
            proofs.push(v.to_str().map_err(|_| {
                AuthError::new(
                    crate::AuthErrorKind::InvalidRequest,
                    "the DPoP header is not ASCII",
                )
            })?);
        }
        self.authenticate(&Presented {
            authorization,
            dpop: &proofs,
            method: method.as_str(),
            path: uri.path(),
        })
        .await
    }
}

/// The caller, authenticated. Takes the [`Principal`] a [`RequireToken`] layer
/// already verified, or verifies the request itself with the state's [`Verifier`].
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl<S> FromRequestParts<S> for Authenticated
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(Self(p.clone()));
        }
        let v = Verifier::from_ref(state);
        let p = v
            .authenticate_http(&parts.method, &parts.uri, &parts.headers)
            .await?;
        parts.extensions.insert(p.clone());
        Ok(Self(p))
    }
}

/// A tower layer that lets through only requests with a valid token carrying the
/// required scopes; the [`Principal`] is put in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequireToken {
    verifier: Verifier,
    scopes: Arc<[String]>,
}

impl RequireToken {
    /// Any valid token.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            scopes: Arc::from(Vec::new()),
        }
    }

    /// Tokens must also grant every one of `scopes`.
    pub fn scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }
}

impl<S> tower::Layer<S> for RequireToken {
    type Service = RequireTokenService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireTokenService {
            inner,
            verifier: self.verifier.clone(),
            scopes: self.scopes.clone(),
        }
    }
}

/// The service [`RequireToken`] wraps around a route.
#[derive(Debug, Clone)]
pub struct RequireTokenService<S> {
    inner: S,
    verifier: Verifier,
    scopes: Arc<[String]>,
}

impl<S> tower::Service<Request> for RequireTokenService<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The clone that was polled ready does the work (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let scopes = self.scopes.clone();
        Box::pin(async move {
            let p = match verifier
                .authenticate_http(req.method(), req.uri(), req.headers())
                .await
            {
                Ok(p) => p,
                Err(e) => return Ok(e.into_response()),
            };
            let need: Vec<&str> = scopes.iter().map(String::as_str).collect();
            if let Err(e) = p.require_scopes(&need) {
                return Ok(e.into_response());
            }
            req.extensions_mut().insert(p);
            inner.call(req).await
        })
    }
}
