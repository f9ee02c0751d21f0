//! The OpenAPI 3.1 document of the protocol endpoints (token, introspection,
//! revocation, metadata, JWKS, probes), served at `GET /oauth/openapi.json`. It is
//! what API fuzzing (schemathesis) checks these endpoints against, and what client
//! generators read. The admin API has its own at `/api/v1/openapi.json`.
//!
//! The schemas here describe the wire format; the handlers parse with the strict
//! form reader ([`crate::extract::OAuthForm`]), not with these types.

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::ToSchema;

/// A token request (RFC 6749 §4, RFC 8707 `resource`). Which fields are required
/// depends on `grant_type`; client credentials go in `Authorization: Basic` or, for
/// `client_secret_post`, in `client_id` / `client_secret`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenRequest {
    /// The grant.
    pub grant_type: GrantTypeName,
    /// Space-separated scopes.
    pub scope: Option<String>,
    /// Authorization code (`authorization_code`).
    pub code: Option<String>,
    /// The redirect URI the code was issued for.
    pub redirect_uri: Option<String>,
    /// PKCE verifier (RFC 7636).
    pub code_verifier: Option<String>,
    /// Refresh token (`refresh_token`).
    pub refresh_token: Option<String>,
    /// Resource owner (`password`).
    pub username: Option<String>,
    /// Resource owner's password (`password`).
    pub password: Option<String>,
    /// Target resource (RFC 8707), an absolute URI.
    pub resource: Option<String>,
    /// Client id (`client_secret_post` or a public client).
    pub client_id: Option<String>,
    /// Client secret (`client_secret_post`).
    pub client_secret: Option<String>,
}

/// The grants the token endpoint knows (`password` only for clients allowed it).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantTypeName {
    /// RFC 6749 §4.4.
    ClientCredentials,
    /// RFC 6749 §4.1, with PKCE.
    AuthorizationCode,
    /// RFC 6749 §6, rotating.
    RefreshToken,
    /// RFC 6749 §4.3 (legacy, opt-in per client).
    Password,
}

/// The token kinds a hint may name (RFC 7009 §2.1).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenTypeHint {
    /// An access token.
    AccessToken,
    /// A refresh token.
    RefreshToken,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// The access token (a JWT or an opaque `pc_at_…` token).
    pub access_token: String,
    /// `Bearer`, or `DPoP` for a key-bound token (RFC 9449).
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: i64,
    /// Granted scopes, when any.
    #[schema(required = false)]
    pub scope: Option<String>,
    /// Refresh token, when the grant issues one.
    #[schema(required = false)]
    pub refresh_token: Option<String>,
    /// OpenID Connect ID token, when `openid` was granted.
    #[schema(required = false)]
    pub id_token: Option<String>,
}

/// An OAuth error (RFC 6749 §5.2), also used for 429 `too_many_requests` and 503
/// `temporarily_unavailable`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthErrorBody {
    /// The error code, e.g. `invalid_request`, `invalid_client`, `invalid_grant`.
    pub error: String,
    /// What was wrong, for the developer.
    #[schema(required = false)]
    pub error_description: Option<String>,
}

/// An introspection or revocation request: the token, and an optional hint.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenForm {
    /// The token.
    pub token: String,
    /// What the token is, if the caller knows.
    pub token_type_hint: Option<TokenTypeHint>,
    /// Client id (`client_secret_post`).
    pub client_id: Option<String>,
    /// Client secret (`client_secret_post`).
    pub client_secret: Option<String>,
}

/// An introspection answer (RFC 7662 §2.2). Inactive answers carry only `active`.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntrospectionBody {
    /// Whether the token is usable now.
    pub active: bool,
    /// Granted scopes.
    #[schema(required = false)]
    pub scope: Option<String>,
    /// The client the token was issued to.
    #[schema(required = false)]
    pub client_id: Option<String>,
    /// Subject.
    #[schema(required = false)]
    pub sub: Option<String>,
    /// User name (personal access tokens).
    #[schema(required = false)]
    pub username: Option<String>,
    /// Expiry, seconds since the epoch.
    #[schema(required = false)]
    pub exp: Option<i64>,
    /// Issue time, seconds since the epoch.
    #[schema(required = false)]
    pub iat: Option<i64>,
    /// Issuer.
    #[schema(required = false)]
    pub iss: Option<String>,
    /// Audience: one string or a list.
    #[schema(required = false, value_type = Option<Object>)]
    pub aud: Option<serde_json::Value>,
    /// Token id.
    #[schema(required = false)]
    pub jti: Option<String>,
    /// `Bearer`, `DPoP`, `personal_access_token` or `api_key`.
    #[schema(required = false)]
    pub token_type: Option<String>,
    /// Key confirmation (RFC 7800): `{"jkt": …}` for a DPoP-bound token.
    #[schema(required = false, value_type = Option<Object>)]
    pub cnf: Option<serde_json::Value>,
}

/// The protocol document.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Portcullis OAuth 2.0 endpoints", description = "Token, introspection and revocation endpoints, metadata and keys. Errors are RFC 6749 JSON: {\"error\", \"error_description\"}."),
    paths(
        crate::http::oauth::token::token,
        crate::http::oauth::introspect::introspect,
        crate::http::oauth::revoke::revoke,
        crate::http::discovery::metadata,
        crate::http::discovery::jwks,
        crate::http::ops::healthz,
    ),
    components(schemas(TokenRequest, GrantTypeName, TokenTypeHint, TokenResponse, OAuthErrorBody, TokenForm, IntrospectionBody)),
    modifiers(&ClientBasic)
)]
#[derive(Debug)]
pub struct OAuthDoc;

struct ClientBasic;

impl utoipa::Modify for ClientBasic {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
            "client_basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "client_secret_basic: client id and secret, form-urlencoded, then Basic",
                    ))
                    .build(),
            ),
        );
    }
}

/// `GET /oauth/openapi.json`.
pub async fn openapi() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(<OAuthDoc as utoipa::OpenApi>::openapi())
}
