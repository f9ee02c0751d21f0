//! The service's errors. Each variant says what the caller did wrong (or that we
//! failed); the server maps them to OAuth or problem+json envelopes, the CLI to a
//! one-line message.

use portcullis_store::StoreError;

/// What went wrong in a decision.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// Client authentication failed (unknown client, wrong secret). Deliberately vague.
    #[error("client authentication failed")]
    InvalidClient,
    /// The request is malformed; the message names the parameter.
    #[error("{0}")]
    InvalidRequest(String),
    /// The requested scope is not allowed.
    #[error("{0}")]
    InvalidScope(String),
    /// The requested resource (audience) is not allowed.
    #[error("{0}")]
    InvalidTarget(String),
    /// The grant (code, refresh token, password) is invalid, expired, revoked or
    /// not this client's.
    #[error("{0}")]
    InvalidGrant(String),
    /// The client may not do this (grant type not allowed, token not its own).
    #[error("{0}")]
    UnauthorizedClient(String),
    /// An input to an administrative operation is invalid; names the field.
    #[error("invalid {field}: {message}")]
    Invalid {
        /// The field (CLI flag / JSON member) at fault.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A DPoP proof is missing, malformed, or does not fit the request (RFC 9449 §7.1).
    #[error("{0}")]
    InvalidDpopProof(String),
    /// A DPoP proof must carry the server's nonce: this is the fresh one to use.
    #[error("a DPoP nonce is required")]
    UseDpopNonce(String),
    /// The thing named does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The operation conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// Storage is unreachable.
    #[error("database unavailable")]
    Unavailable(#[source] StoreError),
    /// Anything else: a bug or an environment failure. Never shown to clients.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl ServiceError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Self::Unavailable(e),
            StoreError::NotFound => Self::NotFound("record".into()),
            other => Self::Unexpected(anyhow::Error::new(other)),
        }
    }
}
