//! The authorization code flow (OAuth 2.1, RFC 9700) with OpenID Connect, and the
//! grants that turn its result into tokens: `authorization_code`, `refresh_token`
//! (rotated on every use) and the opt-in `password` grant.
//!
//! - [`AuthorizeRequest::validate`]-style checks live in [`Authority::validate_authorize`]:
//!   the client and redirect URI first (errors there are shown, never redirected),
//!   then everything else (errors redirect to the client with `error`, `state`, `iss`).
//! - [`Authority::authorize_step`] decides what the browser needs next: sign in,
//!   a second factor, enrolment, consent, or a code.
//! - Codes live ≤ 60 s, are single-use, and are bound to the client, the redirect
//!   URI and the PKCE challenge. A replayed code revokes every token issued from it.
//! - Refresh tokens (`pcrt_…`) form families; using a rotated one revokes the family.

use std::sync::Arc;

use anyhow::Context;
use portcullis_core::claims::{at_hash, Audience, IdTokenClaims, ID_TOKEN_TYP};
use portcullis_core::ids::TokenId;
use portcullis_core::jose::SigningAlg;
use portcullis_core::oauth::{ErrorCode, GrantType};
use portcullis_core::pkce::CodeChallenge;
use portcullis_core::scope::ScopeSet;
use portcullis_core::secret::{
    OpaqueSecret, SecretString, AUTHORIZATION_CODE_PREFIX, REFRESH_TOKEN_PREFIX,
};
use portcullis_store::{
    CodeRow, GrantScope, GrantTokenRow, GrantWrite, RefreshRow, RefreshWrite, UserRow,
};

use crate::audit::{AuditEvent, Outcome};
use crate::clients::Client;
use crate::signin::{LoginRefusal, Session, ACR_MFA, AMR_OTP, AMR_PWD};
use crate::tokens::IssuedToken;
use crate::{Authority, ServiceError};

/// Scopes of the protocol itself: granted whenever the client may ask for them,
/// whatever the user's roles.
pub const PROTOCOL_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// The ID-token signing algorithm: RS256, which OpenID Connect requires every
/// provider to support and every relying party to accept.
pub const ID_TOKEN_ALG: SigningAlg = SigningAlg::RS256;

/// The authorization request's parameters, as sent (the server fills this in).
#[derive(Debug, Clone, Default)]
pub struct AuthorizeParams {
    /// `response_type`
    pub response_type: Option<String>,
    /// `client_id`
    pub client_id: Option<String>,
    /// `redirect_uri`
    pub redirect_uri: Option<String>,
    /// `scope`
    pub scope: Option<String>,
    /// `state`
    pub state: Option<String>,
    /// `code_challenge`
    pub code_challenge: Option<String>,
    /// `code_challenge_method`
    pub code_challenge_method: Option<String>,
    /// `nonce`
    pub nonce: Option<String>,
    /// `prompt`
    pub prompt: Option<String>,
    /// `max_age`
    pub max_age: Option<String>,
    /// `acr_values`
    pub acr_values: Option<String>,
    /// `response_mode`
    pub response_mode: Option<String>,
    /// `request` / `request_uri` were sent (not supported).
    pub request_object: bool,
}

/// An error of the authorization endpoint.
#[derive(Debug)]
pub enum AuthorizeError {
    /// The client or the redirect URI cannot be trusted: show this, never redirect.
    Page(String),
    /// Send the browser back to the client with an error.
    Redirect(ErrorRedirect),
    /// We failed.
    Service(ServiceError),
}

impl From<ServiceError> for AuthorizeError {
    fn from(e: ServiceError) -> Self {
        Self::Service(e)
    }
}

impl From<portcullis_store::StoreError> for AuthorizeError {
    fn from(e: portcullis_store::StoreError) -> Self {
        Self::Service(e.into())
    }
}

/// An error response to a verified redirect URI (RFC 6749 §4.1.2.1, RFC 9207 `iss`).
#[derive(Debug, Clone)]
pub struct ErrorRedirect {
    /// Where to.
    pub redirect_uri: String,
    /// `state`, untouched.
    pub state: Option<String>,
    /// The error.
    pub error: ErrorCode,
    /// Why, for developers.
    pub description: String,
    /// The issuer.
    pub iss: String,
}

impl ErrorRedirect {
    /// The `Location` to send the browser to.
    pub fn location(&self) -> String {
        with_query(
            &self.redirect_uri,
            &[
                ("error", Some(self.error.as_str())),
                ("error_description", Some(&self.description)),
                ("state", self.state.as_deref()),
                ("iss", Some(&self.iss)),
            ],
        )
    }
}

/// Appends parameters to a URI's query (keeping any it has).
fn with_query(uri: &str, params: &[(&str, Option<&str>)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in params {
                    if let Some(v) = v {
                        q.append_pair(k, v);
                    }
                }
            }
            u.to_string()
        }
        Err(_) => uri.to_owned(),
    }
}

/// `prompt` values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// `none`: no page may be shown.
    pub none: bool,
    /// `login`: sign in again.
    pub login: bool,
    /// `consent`: ask again.
    pub consent: bool,
}

/// A validated authorization request.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    /// The client.
    pub client: Arc<Client>,
    /// The redirect URI (one of the client's, exactly).
    pub redirect_uri: String,
    /// `state`.
    pub state: Option<String>,
    /// Requested scopes (within the client's).
    pub scope: ScopeSet,
    /// `nonce`.
    pub nonce: Option<String>,
    /// `prompt`.
    pub prompt: Prompt,
    /// `max_age`, seconds.
    pub max_age: Option<i64>,
    /// `acr_values` asked for MFA (step-up).
    pub wants_mfa: bool,
    /// PKCE challenge.
    pub challenge: CodeChallenge,
}

/// What the browser needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Sign in with a password.
    Login,
    /// Enter a TOTP or recovery code.
    SecondFactor,
    /// Enrol an authenticator (MFA is required but none is enrolled).
    Enrol,
    /// Ask for consent to these scopes.
    Consent(ScopeSet),
    /// Issue a code for these scopes.
    Issue(ScopeSet),
}

/// Tokens from a user grant.
#[derive(Debug)]
pub struct UserTokens {
    /// The access token.
    pub access: IssuedToken,
    /// A refresh token, when `offline_access` was granted to a client allowed them.
    pub refresh_token: Option<SecretString>,
    /// An ID token, when `openid` was granted.
    pub id_token: Option<String>,
}

/// Everything known about a grant when tokens are minted from it.
struct GrantContext<'a> {
    client: &'a Client,
    user: &'a UserRow,
    family_id: String,
    session_id: Option<String>,
    scope: ScopeSet,
    auth_time: i64,
    amr: Vec<String>,
    nonce: Option<String>,
    grant: GrantType,
    /// The DPoP key proven with this token request, if any.
    jkt: Option<String>,
}

/// The user a grant is for, if they still exist and are enabled.
fn live(user: Option<UserRow>) -> Result<UserRow, ServiceError> {
    match user {
        Some(u) if u.enabled => Ok(u),
        _ => Err(invalid_grant("the user is disabled or gone")),
    }
}

fn invalid_grant(m: impl Into<String>) -> ServiceError {
    ServiceError::InvalidGrant(m.into())
}

fn words(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Authority {
    fn redirect_error(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        error: ErrorCode,
        description: impl Into<String>,
    ) -> AuthorizeError {
        AuthorizeError::Redirect(ErrorRedirect {
            redirect_uri: redirect_uri.to_owned(),
            state: state.map(str::to_owned),
            error,
            description: description.into(),
            iss: self.config.issuer.clone(),
        })
    }

    /// Validates an authorization request. The client and redirect URI are checked
    /// first and their errors are [`AuthorizeError::Page`]; the redirect URI must be
    /// one of the client's, byte for byte.
    pub async fn validate_authorize(
        &self,
        p: &AuthorizeParams,
    ) -> Result<AuthorizeRequest, AuthorizeError> {
        let page = |m: &str| AuthorizeError::Page(m.to_owned());
        let client_id = p
            .client_id
            .as_deref()
            .ok_or_else(|| page("The request has no client_id."))?;
        let client = match client_id.parse() {
            Ok(id) => self.cached_client(&id).await?,
            Err(_) => None,
        }
        .ok_or_else(|| page("The application that sent you here is not registered."))?;
        if !client.grant_types.contains(&GrantType::AuthorizationCode) {
            return Err(page(
                "The application that sent you here may not sign users in.",
            ));
        }
        let redirect_uri = match p.redirect_uri.as_deref() {
            Some(u) if client.redirect_uris.iter().any(|r| r == u) => u.to_owned(),
            Some(_) => {
                return Err(page(
                    "The redirect_uri does not match any registered for this application.",
                ))
            }
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            None => {
                return Err(page(
                    "The request has no redirect_uri and the application registered several.",
                ))
            }
        };
        let state = p.state.clone();
        // Checked before any error is redirected: a huge state must not ride along.
        if state.as_deref().is_some_and(|s| s.len() > 2_048) {
            return Err(AuthorizeError::Page(
                "The state parameter is longer than 2048 characters.".into(),
            ));
        }
        let err = |code: ErrorCode, m: &str| {
            self.redirect_error(&redirect_uri, state.as_deref(), code, m)
        };
        if p.request_object {
            return Err(err(
                ErrorCode::InvalidRequest,
                "request objects (request, request_uri) are not supported",
            ));
        }
        match p.response_type.as_deref() {
            Some("code") => {}
            None => return Err(err(ErrorCode::InvalidRequest, "response_type is required")),
            Some(_) => {
                return Err(err(
                    ErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                ))
            }
        }
        if let Some(m) = p.response_mode.as_deref() {
            if m != "query" {
                return Err(err(
                    ErrorCode::InvalidRequest,
                    "only response_mode=query is supported",
                ));
            }
        }
        let challenge = match (
            p.code_challenge.as_deref(),
            p.code_challenge_method.as_deref(),
        ) {
            (None, _) => {
                return Err(err(
                    ErrorCode::InvalidRequest,
                    "code_challenge is required (PKCE S256)",
                ))
            }
            (Some(c), m) => CodeChallenge::parse(c, m)
                .map_err(|e| err(ErrorCode::InvalidRequest, &e.to_string()))?,
        };
        let scope = match p.scope.as_deref() {
            Some(s) => {
                ScopeSet::parse(s).map_err(|e| err(ErrorCode::InvalidScope, &e.to_string()))?
            }
            None => client.default_scopes.clone(),
        };
        if !scope.is_subset(&client.scopes) {
            return Err(err(
                ErrorCode::InvalidScope,
                "the requested scope exceeds what this application may be granted",
            ));
        }
        let mut prompt = Prompt::default();
        for v in p
            .prompt
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|v| !v.is_empty())
        {
            match v {
                "none" => prompt.none = true,
                "login" => prompt.login = true,
                "consent" => prompt.consent = true,
                "select_account" => {}
                _ => {
                    return Err(err(
                        ErrorCode::InvalidRequest,
                        "prompt must be none, login, consent or select_account",
                    ))
                }
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err(err(
                ErrorCode::InvalidRequest,
                "prompt=none cannot be combined with other values",
            ));
        }
        let max_age = match p.max_age.as_deref() {
            None => None,
            Some(v) => Some(v.parse::<u32>().map_err(|_| {
                err(
                    ErrorCode::InvalidRequest,
                    "max_age must be a number of seconds",
                )
            })? as i64),
        };
        // max_age=0 means "authenticate now" (as prompt=login).
        if max_age == Some(0) {
            prompt.login = true;
        }
        if p.nonce.as_deref().is_some_and(|n| n.len() > 512) {
            return Err(err(
                ErrorCode::InvalidRequest,
                "nonce is longer than 512 characters",
            ));
        }
        let wants_mfa = p
            .acr_values
            .as_deref()
            .is_some_and(|a| a.split(' ').any(|v| v == ACR_MFA));
        Ok(AuthorizeRequest {
            client,
            redirect_uri,
            state,
            scope,
            nonce: p.nonce.clone(),
            prompt,
            max_age,
            wants_mfa,
            challenge,
        })
    }

    /// The scopes a user may be given of `requested`: protocol scopes, and others
    /// only when the user's roles allow them.
    pub async fn grantable(
        &self,
        user: &UserRow,
        requested: &ScopeSet,
    ) -> Result<ScopeSet, ServiceError> {
        let roles = self.role_scopes(user).await?;
        let kept: Vec<String> = requested
            .iter()
            .map(|s| s.to_string())
            .filter(|s| PROTOCOL_SCOPES.contains(&s.as_str()) || roles.contains(s))
            .collect();
        Ok(ScopeSet::from_tokens(&kept).context("granted scopes")?)
    }

    fn needs_mfa(client: &Client, user: &UserRow, wants_mfa: bool) -> bool {
        wants_mfa || client.require_mfa || user.mfa_required || user.totp_confirmed_at.is_some()
    }

    /// What the browser needs next for `req`, given the session (if any).
    pub async fn authorize_step(
        &self,
        req: &AuthorizeRequest,
        session: Option<&Session>,
    ) -> Result<Step, AuthorizeError> {
        let now = self.now();
        let err = |code: ErrorCode, m: &str| {
            self.redirect_error(&req.redirect_uri, req.state.as_deref(), code, m)
        };
        let fresh_enough = |s: &Session| req.max_age.is_none_or(|m| now - s.auth_time <= m);
        let Some(s) = session.filter(|s| !req.prompt.login && fresh_enough(s)) else {
            if req.prompt.none {
                return Err(err(ErrorCode::LoginRequired, "the user must sign in"));
            }
            return Ok(Step::Login);
        };
        if Self::needs_mfa(&req.client, &s.user, req.wants_mfa) && !s.has_otp() {
            if req.prompt.none {
                return Err(err(
                    ErrorCode::InteractionRequired,
                    "the user must pass a second factor",
                ));
            }
            return Ok(if s.mfa_enrolled() {
                Step::SecondFactor
            } else {
                Step::Enrol
            });
        }
        let granted = self.grantable(&s.user, &req.scope).await?;
        if req.client.first_party && !req.prompt.consent {
            return Ok(Step::Issue(granted));
        }
        let remembered = self
            .consented(&s.user.id, &req.client.id.to_string())
            .await?;
        let covered = remembered.is_some_and(|c| granted.is_subset(&c));
        if covered && !req.prompt.consent {
            return Ok(Step::Issue(granted));
        }
        if req.prompt.none {
            return Err(err(ErrorCode::ConsentRequired, "the user must consent"));
        }
        Ok(Step::Consent(granted))
    }

    /// Issues a code for `granted` and returns the `Location` that carries it
    /// (with `state` and `iss`, RFC 9207).
    pub async fn issue_code(
        &self,
        req: &AuthorizeRequest,
        session: &Session,
        granted: &ScopeSet,
    ) -> Result<String, ServiceError> {
        let now = self.now();
        let secret = OpaqueSecret::generate(AUTHORIZATION_CODE_PREFIX);
        let row = CodeRow {
            id: TokenId::new().to_string(),
            digest: self.pepper.digest(secret.expose()).as_str().to_owned(),
            client_id: req.client.id.to_string(),
            user_id: session.user.id.clone(),
            session_id: session.id.clone(),
            redirect_uri: req.redirect_uri.clone(),
            code_challenge: req.challenge.as_str().to_owned(),
            scope: granted.to_string(),
            nonce: req.nonce.clone(),
            auth_time: session.auth_time,
            amr: session.amr.join(" "),
            created_at: now,
            expires_at: now + self.config.signin.code_ttl.as_secs().min(60) as i64,
            used_at: None,
        };
        self.store.insert_code(&row).await?;
        self.audit_enqueue(
            AuditEvent::new("code.issued")
                .credential(row.id.clone())
                .client(row.client_id.clone())
                .subject(row.user_id.clone())
                .details(serde_json::json!({"scope": row.scope})),
        )
        .await;
        Ok(with_query(
            &req.redirect_uri,
            &[
                ("code", Some(secret.expose())),
                ("state", req.state.as_deref()),
                ("iss", Some(&self.config.issuer)),
            ],
        ))
    }

    /// Authenticates a public client (no secret) by id; confidential clients must
    /// use their secret, so naming one here is `invalid_client`.
    pub async fn authenticate_public_client(
        &self,
        client_id: &str,
    ) -> Result<Arc<Client>, ServiceError> {
        let client = match client_id.parse() {
            Ok(id) => self.cached_client(&id).await?,
            Err(_) => None,
        };
        match client {
            Some(c) if c.is_public() => Ok(c),
            _ => Err(ServiceError::InvalidClient),
        }
    }

    /// `grant_type=authorization_code`.
    pub async fn exchange_code(
        &self,
        client: &Client,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        jkt: Option<&str>,
    ) -> Result<UserTokens, ServiceError> {
        if !client.grant_types.contains(&GrantType::AuthorizationCode) {
            return Err(ServiceError::UnauthorizedClient(
                "this client may not use the authorization_code grant".into(),
            ));
        }
        let now = self.now();
        let Ok(secret) = OpaqueSecret::parse(code, AUTHORIZATION_CODE_PREFIX) else {
            return Err(invalid_grant("the code is invalid"));
        };
        let digest = self.pepper.digest(secret.expose());
        let Some(row) = self.store.find_code(digest.as_str()).await? else {
            return Err(invalid_grant("the code is invalid"));
        };
        if row.client_id != client.id.to_string() {
            self.refuse_grant("code.refused", &row.id, client, "code of another client");
            return Err(invalid_grant("the code was not issued to this client"));
        }
        if row.used_at.is_some() {
            return Err(self.code_replayed(&row, client).await?);
        }
        if row.expires_at <= now {
            return Err(invalid_grant("the code has expired"));
        }
        match redirect_uri {
            Some(u) if u == row.redirect_uri => {}
            None if client.redirect_uris.len() == 1 => {}
            _ => {
                return Err(invalid_grant(
                    "redirect_uri does not match the authorization request",
                ))
            }
        }
        let Some(verifier) = verifier else {
            return Err(invalid_grant("code_verifier is required (PKCE)"));
        };
        if CodeChallenge::from_stored(row.code_challenge.clone())
            .verify(verifier)
            .is_err()
        {
            self.refuse_grant("code.refused", &row.id, client, "PKCE verifier mismatch");
            return Err(invalid_grant(
                "code_verifier does not match the code_challenge",
            ));
        }
        if !self.store.use_code(&row.id, now).await? {
            return Err(self.code_replayed(&row, client).await?);
        }
        // Signed out since the code was issued: its tokens would outlive the logout.
        let session = self.store.get_session(&row.session_id).await?;
        if session.is_none_or(|s| s.ended_at.is_some()) {
            return Err(invalid_grant("the session the code came from has ended"));
        }
        let user = self.live_user(&row.user_id).await?;
        self.mint_user_tokens(
            GrantContext {
                client,
                user: &user,
                family_id: row.id.clone(),
                session_id: Some(row.session_id.clone()),
                scope: ScopeSet::parse(&row.scope).context("stored code scope")?,
                auth_time: row.auth_time,
                amr: words(&row.amr),
                nonce: row.nonce.clone(),
                grant: GrantType::AuthorizationCode,
                jkt: jkt.map(str::to_owned),
            },
            None,
        )
        .await?
        // Signed out or disabled between the checks above and the write.
        .ok_or_else(|| {
            invalid_grant("the session the code came from has ended, or its user is disabled")
        })
    }

    fn refuse_grant(&self, kind: &'static str, id: &str, client: &Client, why: &str) {
        self.audit_refusal(
            AuditEvent::new(kind)
                .credential(id.to_owned())
                .client(client.id.to_string())
                .outcome(Outcome::Refused, why),
            id,
        );
    }

    async fn code_replayed(
        &self,
        row: &CodeRow,
        client: &Client,
    ) -> Result<ServiceError, ServiceError> {
        let (refresh, access) = self.revoke_grants(GrantScope::Family(&row.id)).await?;
        tracing::warn!(code_id = %row.id, client_id = %client.id, "authorization code replayed: its tokens are revoked");
        self.audit(
            AuditEvent::new("code.replayed")
                .credential(row.id.clone())
                .client(client.id.to_string())
                .subject(row.user_id.clone())
                .outcome(Outcome::Refused, "code used twice")
                .details(serde_json::json!({"revoked_refresh_tokens": refresh, "revoked_access_tokens": access})),
        )
        .await?;
        Ok(invalid_grant("the code has already been used"))
    }

    async fn live_user(&self, id: &str) -> Result<UserRow, ServiceError> {
        live(self.store.get_user(id).await?)
    }

    /// `grant_type=refresh_token`: rotates the token; a rotated token used again
    /// revokes its whole family.
    pub async fn refresh(
        &self,
        client: &Client,
        token: &str,
        scope: Option<ScopeSet>,
        jkt: Option<&str>,
    ) -> Result<UserTokens, ServiceError> {
        if !client.grant_types.contains(&GrantType::RefreshToken) {
            return Err(ServiceError::UnauthorizedClient(
                "this client may not use the refresh_token grant".into(),
            ));
        }
        let now = self.now();
        let Ok(secret) = OpaqueSecret::parse(token, REFRESH_TOKEN_PREFIX) else {
            return Err(invalid_grant("the refresh token is invalid"));
        };
        let digest = self.pepper.digest(secret.expose());
        let Some((row, user)) = self.store.find_refresh_with_user(digest.as_str()).await? else {
            return Err(invalid_grant("the refresh token is invalid"));
        };
        if row.client_id != client.id.to_string() {
            self.refuse_grant(
                "refresh_token.refused",
                &row.id,
                client,
                "token of another client",
            );
            return Err(invalid_grant(
                "the refresh token was not issued to this client",
            ));
        }
        if row.revoked_at.is_some() {
            return Err(invalid_grant("the refresh token has been revoked"));
        }
        if row.used_at.is_some() {
            return Err(self.refresh_reused(&row, client).await?);
        }
        if row.expires_at <= now || row.family_expires_at <= now {
            return Err(invalid_grant("the refresh token has expired"));
        }
        // RFC 9449 §5: a bound refresh token needs a proof by the same key.
        if let Some(bound) = row.jkt.as_deref() {
            if jkt != Some(bound) {
                self.refuse_grant(
                    "refresh_token.refused",
                    &row.id,
                    client,
                    "DPoP key does not match the binding",
                );
                return Err(ServiceError::InvalidDpopProof(
                    "the refresh token is bound to a DPoP key: a proof by that key is required"
                        .into(),
                ));
            }
        }
        let granted = ScopeSet::parse(&row.scope).context("stored refresh scope")?;
        let scope = match scope {
            Some(s) if !s.is_empty() => {
                if !s.is_subset(&granted) {
                    return Err(ServiceError::InvalidScope(
                        "the requested scope exceeds the original grant".into(),
                    ));
                }
                s
            }
            _ => granted.clone(),
        };
        let user = live(user)?;
        // The successor keeps the original grant's scope (RFC 6749 §6), whatever
        // this access token was narrowed to.
        let (new_secret, new_row) = self.refresh_row(
            client,
            &row.user_id,
            &row.family_id,
            row.session_id.clone(),
            &granted,
            row.auth_time,
            &row.amr,
            row.family_expires_at,
            row.jkt.clone(),
        );
        let tokens = self
            .mint_user_tokens(
                GrantContext {
                    client,
                    user: &user,
                    family_id: row.family_id.clone(),
                    session_id: row.session_id.clone(),
                    scope,
                    auth_time: row.auth_time,
                    amr: words(&row.amr),
                    nonce: None,
                    grant: GrantType::RefreshToken,
                    jkt: jkt.map(str::to_owned),
                },
                Some((&row.id, &new_row, new_secret)),
            )
            .await?;
        match tokens {
            Some(t) => Ok(t),
            // Another request rotated it first: this one is a reuse.
            None => Err(self.refresh_reused(&row, client).await?),
        }
    }

    async fn refresh_reused(
        &self,
        row: &RefreshRow,
        client: &Client,
    ) -> Result<ServiceError, ServiceError> {
        let (refresh, access) = self
            .revoke_grants(GrantScope::Family(&row.family_id))
            .await?;
        tracing::warn!(family_id = %row.family_id, client_id = %client.id, "refresh token reused: its family is revoked");
        self.audit(
            AuditEvent::new("refresh_token.reused")
                .credential(row.id.clone())
                .client(client.id.to_string())
                .subject(row.user_id.clone())
                .outcome(Outcome::Refused, "rotated refresh token used again")
                .details(serde_json::json!({
                    "family_id": row.family_id,
                    "revoked_refresh_tokens": refresh,
                    "revoked_access_tokens": access,
                })),
        )
        .await?;
        Ok(invalid_grant("the refresh token has already been used"))
    }

    /// `grant_type=password`, for clients that opted in. Same throttling as the
    /// sign-in page; users who must pass MFA cannot use it.
    pub async fn password_grant(
        &self,
        client: &Client,
        username: &str,
        password: &SecretString,
        scope: Option<ScopeSet>,
        jkt: Option<&str>,
    ) -> Result<UserTokens, ServiceError> {
        if !client.grant_types.contains(&GrantType::Password) {
            return Err(ServiceError::UnauthorizedClient(
                "this client may not use the password grant".into(),
            ));
        }
        let requested = match scope {
            Some(s) if !s.is_empty() => s,
            _ => client.default_scopes.clone(),
        };
        if !requested.is_subset(&client.scopes) {
            return Err(ServiceError::InvalidScope(
                "the requested scope exceeds what this client may be granted".into(),
            ));
        }
        let user = match self
            .login(
                username,
                password,
                crate::audit::current_ip(),
                Some(&client.id.to_string()),
            )
            .await?
        {
            Ok(u) => u,
            Err(LoginRefusal::Invalid) => {
                return Err(invalid_grant("invalid username or password"))
            }
            Err(LoginRefusal::Locked(_)) => {
                return Err(invalid_grant("too many failed attempts; try again later"))
            }
        };
        if Self::needs_mfa(client, &user, false) {
            return Err(invalid_grant(
                "this user must sign in with a second factor, through the browser",
            ));
        }
        let scope = self.grantable(&user, &requested).await?;
        self.mint_user_tokens(
            GrantContext {
                client,
                user: &user,
                family_id: TokenId::new().to_string(),
                session_id: None,
                scope,
                auth_time: self.now(),
                amr: vec![AMR_PWD.into()],
                nonce: None,
                grant: GrantType::Password,
                jkt: jkt.map(str::to_owned),
            },
            None,
        )
        .await?
        // Disabled between the sign-in and the write.
        .ok_or_else(|| invalid_grant("the user is disabled or gone"))
    }

    #[expect(clippy::too_many_arguments, reason = "a row's worth of fields")]
    fn refresh_row(
        &self,
        client: &Client,
        user_id: &str,
        family_id: &str,
        session_id: Option<String>,
        scope: &ScopeSet,
        auth_time: i64,
        amr: &str,
        family_expires_at: i64,
        jkt: Option<String>,
    ) -> (SecretString, RefreshRow) {
        let now = self.now();
        let secret = OpaqueSecret::generate(REFRESH_TOKEN_PREFIX);
        let row = RefreshRow {
            id: TokenId::new().to_string(),
            digest: self.pepper.digest(secret.expose()).as_str().to_owned(),
            family_id: family_id.to_owned(),
            client_id: client.id.to_string(),
            user_id: user_id.to_owned(),
            session_id,
            scope: scope.to_string(),
            auth_time,
            amr: amr.to_owned(),
            issued_at: now,
            expires_at: (now + client.refresh_token_ttl.as_secs() as i64).min(family_expires_at),
            family_expires_at,
            used_at: None,
            revoked_at: None,
            jkt,
        };
        (SecretString::new(secret.expose()), row)
    }

    /// Mints the tokens of a grant and records them in one transaction. With
    /// `rotate` (the presented refresh token's id and its successor) the rotation is
    /// part of that transaction; `Ok(None)` then means the old token was already
    /// used (a reuse) and nothing was issued. Without `rotate`, `Ok(None)` means the
    /// user was disabled or the session ended before the write (see
    /// `SignInStore::record_grants`): nothing was issued either.
    async fn mint_user_tokens(
        &self,
        g: GrantContext<'_>,
        rotate: Option<(&str, &RefreshRow, SecretString)>,
    ) -> Result<Option<UserTokens>, ServiceError> {
        let now = self.now();
        let aud = Audience::One(
            g.client
                .default_audience
                .clone()
                .unwrap_or_else(|| self.config.issuer.clone()),
        );
        let (access_token, jti, ttl) = self
            .mint_access(g.client, &g.user.id, &g.scope, aud, g.jkt.as_deref())
            .await?;
        let grant_row = GrantTokenRow {
            jti: jti.clone(),
            family_id: g.family_id.clone(),
            user_id: g.user.id.clone(),
            session_id: g.session_id.clone(),
            client_id: g.client.id.to_string(),
            format: g.client.token_format.as_str().to_owned(),
            expires_at: now + ttl,
        };
        // A refresh token for offline_access when the client may refresh.
        let fresh = (rotate.is_none()
            && g.scope.contains("offline_access")
            && g.client.grant_types.contains(&GrantType::RefreshToken))
        .then(|| {
            self.refresh_row(
                g.client,
                &g.user.id,
                &g.family_id,
                g.session_id.clone(),
                &g.scope,
                g.auth_time,
                &g.amr.join(" "),
                now + g.client.refresh_token_max_ttl.as_secs() as i64,
                // RFC 9449 §5: refresh tokens of public clients are bound to the key;
                // a confidential client's are bound by its authentication already.
                g.jkt.clone().filter(|_| g.client.is_public()),
            )
        });
        let (write, refresh_token) = match (rotate, fresh) {
            (Some((old_id, new, secret)), _) => (
                RefreshWrite::Rotate {
                    old_id: old_id.to_owned(),
                    now,
                    new: new.clone(),
                },
                Some(secret),
            ),
            (None, Some((secret, row))) => (RefreshWrite::Insert(row), Some(secret)),
            (None, None) => (RefreshWrite::None, None),
        };
        let recorded = self
            .grant_writer
            .write(GrantWrite {
                token: grant_row,
                refresh: write,
            })
            .await?;
        if !recorded {
            return Ok(None);
        }
        let id_token = if g.scope.contains("openid") {
            let ring = self.keyring();
            let key = ring
                .signer(ID_TOKEN_ALG)
                .with_context(|| format!("no active {ID_TOKEN_ALG} signing key"))?;
            let claims = IdTokenClaims {
                iss: self.config.issuer.clone(),
                sub: g.user.id.clone(),
                aud: g.client.id.to_string(),
                exp: now + ttl,
                iat: now,
                auth_time: g.auth_time,
                nonce: g.nonce.clone(),
                at_hash: Some(at_hash(access_token.expose(), ID_TOKEN_ALG)),
                acr: if g.amr.iter().any(|m| m == AMR_OTP) {
                    ACR_MFA.into()
                } else {
                    crate::signin::ACR_PWD.into()
                },
                amr: g.amr.clone(),
                azp: g.client.id.to_string(),
                sid: g.session_id.clone().unwrap_or_default(),
            };
            Some(
                key.sign_jwt(ID_TOKEN_TYP, &claims)
                    .context("signing an ID token")?,
            )
        } else {
            None
        };
        let record = AuditEvent::new("token.issued")
            .credential(jti.clone())
            .client(g.client.id.to_string())
            .subject(g.user.id.clone())
            .details(serde_json::json!({
                "grant_type": g.grant.as_str(),
                "scope": g.scope.to_string(),
                "format": g.client.token_format.as_str(),
                "family_id": g.family_id,
                "refresh_token": refresh_token.is_some(),
                "id_token": id_token.is_some(),
            }));
        if self.config.audit_wait_for_issuance {
            self.audit(record).await?;
        } else {
            self.audit_enqueue(record).await;
        }
        Ok(Some(UserTokens {
            access: IssuedToken {
                access_token,
                expires_in: ttl,
                scope: g.scope,
                token_id: jti,
                format: g.client.token_format,
            },
            refresh_token,
            id_token,
        }))
    }

    /// Revokes a refresh token presented to `/oauth/revoke` by its client, with
    /// every token of its grant (RFC 7009 §2.1). `None` when it is not a refresh token.
    pub async fn revoke_refresh_token(
        &self,
        caller: &Client,
        token: &str,
    ) -> Result<Option<crate::tokens::Revoked>, ServiceError> {
        if !token.starts_with("pcrt_") {
            return Ok(None);
        }
        let Ok(secret) = OpaqueSecret::parse(token, REFRESH_TOKEN_PREFIX) else {
            return Ok(Some(crate::tokens::Revoked::Nothing));
        };
        let digest = self.pepper.digest(secret.expose());
        let Some(row) = self.store.find_refresh(digest.as_str()).await? else {
            return Ok(Some(crate::tokens::Revoked::Nothing));
        };
        if row.client_id != caller.id.to_string() {
            return Err(ServiceError::UnauthorizedClient(
                "the token was not issued to this client".into(),
            ));
        }
        self.revoke_grants(GrantScope::Family(&row.family_id))
            .await?;
        self.audit(
            AuditEvent::new("refresh_token.revoked")
                .credential(row.id.clone())
                .client(row.client_id.clone())
                .subject(row.user_id.clone()),
        )
        .await?;
        Ok(Some(crate::tokens::Revoked::Now))
    }

    /// OpenID Connect UserInfo for a live user access token with `openid`; `None`
    /// for anything else (the endpoint answers `invalid_token`).
    pub async fn userinfo(&self, token: &str) -> Result<Option<serde_json::Value>, ServiceError> {
        let (sub, scope) = match self.find_live(token).await? {
            Some(crate::tokens::Known::Jwt(c)) => (c.sub.clone(), c.scope.clone()),
            Some(crate::tokens::Known::Opaque(r)) => (r.subject.clone(), r.scope.clone()),
            _ => return Ok(None),
        };
        let scopes = words(&scope);
        if !scopes.iter().any(|s| s == "openid") {
            return Ok(None);
        }
        let Some(user) = self
            .store
            .get_user(&sub)
            .await?
            .filter(|u| u.enabled && u.id == sub)
        else {
            return Ok(None);
        };
        let mut out = serde_json::json!({"sub": user.id});
        if scopes.iter().any(|s| s == "profile") {
            out["preferred_username"] = user.username.clone().into();
            out["name"] = user.username.clone().into();
            out["updated_at"] = user.updated_at.into();
        }
        if scopes.iter().any(|s| s == "email") {
            if let Some(e) = &user.email {
                out["email"] = e.clone().into();
                out["email_verified"] = false.into();
            }
        }
        Ok(Some(out))
    }

    /// The client and session an `id_token_hint` names, when it is an ID token we
    /// signed (its expiry does not matter here: logout comes after it).
    pub fn id_token_hint(&self, hint: &str) -> Option<IdTokenClaims> {
        let claims: IdTokenClaims = self
            .keyring()
            .verifier()
            .verify_typed(hint, ID_TOKEN_TYP)
            .ok()?;
        (claims.iss == self.config.issuer).then_some(claims)
    }
}
