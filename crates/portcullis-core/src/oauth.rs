//! OAuth 2.0 error codes (RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 6750 §3.1).

use std::fmt;

/// An error code from the OAuth registries. `Display` is the exact wire code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Missing, repeated, or malformed parameter; or otherwise malformed request.
    InvalidRequest,
    /// Client authentication failed.
    InvalidClient,
    /// The grant (code, refresh token, credentials) is invalid, expired or revoked.
    InvalidGrant,
    /// The client may not use this grant type (or act on this token).
    UnauthorizedClient,
    /// The grant type is not supported by the server.
    UnsupportedGrantType,
    /// The requested scope is invalid, unknown, or exceeds what the client may have.
    InvalidScope,
    /// RFC 8707: the requested `resource` is invalid, unknown, or not allowed to the client.
    InvalidTarget,
    /// RFC 7009: the server does not revoke this kind of token.
    UnsupportedTokenType,
    /// RFC 6750: the access token is invalid.
    InvalidToken,
    /// RFC 6750: the token lacks a required scope.
    InsufficientScope,
    /// The server failed; details are in its logs, not the response.
    ServerError,
    /// The server is overloaded or in maintenance.
    TemporarilyUnavailable,
    /// The resource owner or the server denied the request (authorization endpoint).
    AccessDenied,
    /// The server does not support `response_type` (authorization endpoint).
    UnsupportedResponseType,
    /// OIDC: `prompt=none` but the user must sign in.
    LoginRequired,
    /// OIDC: `prompt=none` but the user must consent.
    ConsentRequired,
    /// OIDC: `prompt=none` but the user must interact (MFA enrolment or step-up).
    InteractionRequired,
    /// RFC 9449: the DPoP proof is missing, invalid, or does not fit the request.
    InvalidDpopProof,
    /// RFC 9449 §8: the proof must carry the nonce in the `DPoP-Nonce` header.
    UseDpopNonce,
}

impl ErrorCode {
    /// The wire code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::InteractionRequired => "interaction_required",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Grant types Portcullis supports (RFC 6749 §4). Later grants join as they are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum GrantType {
    /// `client_credentials` (RFC 6749 §4.4).
    ClientCredentials,
    /// `authorization_code` with PKCE (RFC 6749 §4.1, RFC 7636, OAuth 2.1).
    AuthorizationCode,
    /// `refresh_token` (RFC 6749 §6), rotated on every use.
    RefreshToken,
    /// `password` (RFC 6749 §4.3): off unless a client opts in.
    Password,
}

impl GrantType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::Password => "password",
        }
    }

    /// Every supported grant, for messages and discovery.
    pub const ALL: [GrantType; 4] = [
        Self::ClientCredentials,
        Self::AuthorizationCode,
        Self::RefreshToken,
        Self::Password,
    ];

    /// Parses a wire name; `None` for grants this server does not support.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client_credentials" => Some(Self::ClientCredentials),
            "authorization_code" => Some(Self::AuthorizationCode),
            "refresh_token" => Some(Self::RefreshToken),
            "password" => Some(Self::Password),
            _ => None,
        }
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
