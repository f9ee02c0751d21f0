//! The library's errors: building a verifier ([`Error`]) and refusing a request
//! ([`AuthError`], which knows its RFC 6750 / RFC 9449 status and challenge).

use portcullis_core::jose::JwtError;

/// Why a verifier could not be built or refreshed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The JWK Set is not valid JSON of the right shape.
    #[error("invalid JWK Set: {0}")]
    InvalidJwks(String),
    /// No key in the set is usable (asymmetric, with `kid` and a supported `alg`).
    #[error("the JWK Set has no usable signing key")]
    NoUsableKey,
    /// The discovery document is unusable (not JSON, wrong issuer, no `jwks_uri`).
    #[error("invalid discovery document: {0}")]
    Discovery(String),
    /// The server could not be reached or answered with an error.
    #[error("request to {url} failed: {message}")]
    Http {
        /// What was fetched.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A setting is invalid.
    #[error("invalid setting: {0}")]
    Config(String),
}

/// Why a JWT was refused by [`crate::Verifier::verify`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Signature, type, issuer, audience or time checks failed.
    #[error(transparent)]
    Jwt(#[from] JwtError),
    /// The token was revoked (by the feed, or introspection said inactive).
    #[error("token revoked")]
    Revoked,
    /// The revocation state cannot be known (feed down and introspection failing):
    /// refused rather than trusted.
    #[error("revocation state unavailable: {0}")]
    Unavailable(String),
}

/// What kind of refusal, which decides the status code and challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// No credential at all: 401 with bare challenges (RFC 6750 §3.1).
    Missing,
    /// Malformed `Authorization` or `DPoP` headers: 400 `invalid_request`.
    InvalidRequest,
    /// Unknown, forged, expired, revoked, wrong audience: 401 `invalid_token`.
    InvalidToken,
    /// A DPoP proof is missing or wrong for a bound token: 401 `invalid_dpop_proof`.
    InvalidDpopProof,
    /// Genuine but lacking scopes: 403 `insufficient_scope`.
    InsufficientScope,
    /// The authorization server could not be asked when it had to be: 503.
    Unavailable,
}

/// A refused request, ready to become an RFC 6750 / RFC 9449 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {description}")]
pub struct AuthError {
    /// The kind of refusal.
    pub kind: AuthErrorKind,
    /// Human-readable reason (never contains the token).
    pub description: String,
    /// Scopes the route needed (for `insufficient_scope`).
    pub scope: Option<String>,
    /// The client used the DPoP scheme (the error goes in the DPoP challenge).
    pub dpop: bool,
}

impl AuthError {
    pub(crate) fn new(kind: AuthErrorKind, description: impl Into<String>) -> Self {
        Self {
            kind,
            description: description.into(),
            scope: None,
            dpop: false,
        }
    }

    pub(crate) fn via_dpop(mut self, dpop: bool) -> Self {
        self.dpop = dpop;
        self
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self.kind {
            AuthErrorKind::Missing
            | AuthErrorKind::InvalidToken
            | AuthErrorKind::InvalidDpopProof => 401,
            AuthErrorKind::InvalidRequest => 400,
            AuthErrorKind::InsufficientScope => 403,
            AuthErrorKind::Unavailable => 503,
        }
    }

    /// The `error` code, when the refusal has one.
    pub fn code(&self) -> Option<&'static str> {
        match self.kind {
            AuthErrorKind::Missing | AuthErrorKind::Unavailable => None,
            AuthErrorKind::InvalidRequest => Some("invalid_request"),
            AuthErrorKind::InvalidToken => Some("invalid_token"),
            AuthErrorKind::InvalidDpopProof => Some("invalid_dpop_proof"),
            AuthErrorKind::InsufficientScope => Some("insufficient_scope"),
        }
    }

    /// The `WWW-Authenticate` values: the scheme the client used carries the error;
    /// the other scheme is offered bare, so a client learns both are accepted.
    pub fn challenges(&self, realm: &str) -> Vec<String> {
        if self.kind == AuthErrorKind::Unavailable {
            return Vec::new();
        }
        let clean = |s: &str| -> String { s.chars().filter(|c| *c != '"' && *c != '\\').collect() };
        let realm = clean(realm);
        let mut detail = String::new();
        if let Some(code) = self.code() {
            detail.push_str(&format!(
                r#", error="{code}", error_description="{}""#,
                clean(&self.description)
            ));
        }
        if let Some(scope) = &self.scope {
            detail.push_str(&format!(r#", scope="{}""#, clean(scope)));
        }
        let algs = r#"algs="EdDSA ES256 RS256 PS256""#;
        let dpop_error = self.dpop || self.kind == AuthErrorKind::InvalidDpopProof;
        let (bearer, dpop) = if dpop_error {
            (
                format!(r#"Bearer realm="{realm}""#),
                format!(r#"DPoP realm="{realm}"{detail}, {algs}"#),
            )
        } else {
            (
                format!(r#"Bearer realm="{realm}"{detail}"#),
                format!(r#"DPoP realm="{realm}", {algs}"#),
            )
        };
        vec![bearer, dpop]
    }
}
