//! Sign-in persistence: credentials on users, browser sessions, authorization
//! codes, refresh-token families, the access tokens issued from each grant,
//! remembered consent and TOTP recovery codes. Every secret is a keyed digest.
//!
//! The single-use rules (a code, a refresh token, a TOTP step) are enforced here
//! by conditional updates, so two concurrent redemptions cannot both win.

use async_trait::async_trait;

use crate::{StoreResult, UserRow};

/// A browser session.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRow {
    /// Id (the `sid` claim); not the cookie.
    pub id: String,
    /// Keyed digest of the cookie value.
    pub digest: String,
    /// The user.
    pub user_id: String,
    /// Methods passed, space-separated (`pwd`, `pwd otp`).
    pub amr: String,
    /// When the user last authenticated.
    pub auth_time: i64,
    /// Created at.
    pub created_at: i64,
    /// Last request seen (idle timeout).
    pub last_seen_at: i64,
    /// Absolute end.
    pub expires_at: i64,
    /// Logged out at.
    pub ended_at: Option<i64>,
}

/// An authorization code.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CodeRow {
    /// Id: also the id of the grant family it starts.
    pub id: String,
    /// Keyed digest of the code.
    pub digest: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The user.
    pub user_id: String,
    /// The session it came from.
    pub session_id: String,
    /// The redirect URI of the request (exact).
    pub redirect_uri: String,
    /// PKCE `S256` challenge.
    pub code_challenge: String,
    /// Granted scopes.
    pub scope: String,
    /// OIDC nonce.
    pub nonce: Option<String>,
    /// When the user authenticated.
    pub auth_time: i64,
    /// Methods passed, space-separated.
    pub amr: String,
    /// Created at.
    pub created_at: i64,
    /// Expiry.
    pub expires_at: i64,
    /// Redeemed at; a second redemption is a replay.
    pub used_at: Option<i64>,
}

/// A refresh token.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RefreshRow {
    /// Id.
    pub id: String,
    /// Keyed digest of the token.
    pub digest: String,
    /// Family (grant) id.
    pub family_id: String,
    /// Client.
    pub client_id: String,
    /// User.
    pub user_id: String,
    /// Session it descends from, if any.
    pub session_id: Option<String>,
    /// Granted scopes.
    pub scope: String,
    /// Original authentication time.
    pub auth_time: i64,
    /// Original authentication methods.
    pub amr: String,
    /// Issued at.
    pub issued_at: i64,
    /// Sliding expiry.
    pub expires_at: i64,
    /// Absolute expiry of the whole family.
    pub family_expires_at: i64,
    /// Rotated (used) at: a later use is a reuse.
    pub used_at: Option<i64>,
    /// Revoked at.
    pub revoked_at: Option<i64>,
    /// DPoP key thumbprint the token is bound to (public clients, RFC 9449 §5).
    pub jkt: Option<String>,
}

/// An access token issued to a user, remembered by grant so it can be revoked with it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct GrantTokenRow {
    /// The token id (`jti`, or the opaque token's id).
    pub jti: String,
    /// Grant family.
    pub family_id: String,
    /// User.
    pub user_id: String,
    /// Session, if any.
    pub session_id: Option<String>,
    /// Client.
    pub client_id: String,
    /// `jwt` or `opaque`.
    pub format: String,
    /// Expiry.
    pub expires_at: i64,
}

/// Remembered consent.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConsentRow {
    /// User.
    pub user_id: String,
    /// Client.
    pub client_id: String,
    /// Scopes granted, space-separated.
    pub scopes: String,
    /// When.
    pub granted_at: i64,
}

/// The refresh-token write of a grant.
#[derive(Debug, Clone)]
pub enum RefreshWrite {
    /// No refresh token.
    None,
    /// A new family's first token.
    Insert(RefreshRow),
    /// Rotation: mark `old_id` used at `now` and add `new`.
    Rotate {
        /// The token presented.
        old_id: String,
        /// When.
        now: i64,
        /// Its successor.
        new: RefreshRow,
    },
}

/// What one grant issued: its access token, and its refresh-token write.
#[derive(Debug, Clone)]
pub struct GrantWrite {
    /// The access token, remembered under its grant.
    pub token: GrantTokenRow,
    /// The refresh token write.
    pub refresh: RefreshWrite,
}

/// Which grants an operation covers.
#[derive(Debug, Clone, Copy)]
pub enum GrantScope<'a> {
    /// One family (code or refresh-token reuse).
    Family(&'a str),
    /// Everything descended from one browser session (logout).
    Session(&'a str),
    /// Everything of a user (password change, disable).
    User(&'a str),
}

impl GrantScope<'_> {
    pub(crate) fn column(&self) -> (&'static str, &str) {
        match self {
            Self::Family(v) => ("family_id", v),
            Self::Session(v) => ("session_id", v),
            Self::User(v) => ("user_id", v),
        }
    }
}

/// Sign-in persistence.
#[async_trait]
pub trait SignInStore: Send + Sync {
    /// Replaces a user's email, roles, enabled flag and MFA requirement; false when unknown.
    async fn update_user(&self, u: &UserRow) -> StoreResult<bool>;
    /// Sets (or clears) a user's password hash.
    async fn set_password_hash(
        &self,
        user_id: &str,
        hash: Option<&str>,
        now: i64,
    ) -> StoreResult<bool>;
    /// Deletes a user and everything of theirs; false when unknown.
    async fn delete_user(&self, user_id: &str) -> StoreResult<bool>;
    /// Sets the TOTP seed and its confirmation time (both `None`: TOTP off). The
    /// last accepted step is kept when confirming and cleared otherwise.
    async fn set_totp(
        &self,
        user_id: &str,
        sealed: Option<&str>,
        confirmed_at: Option<i64>,
    ) -> StoreResult<()>;
    /// Accepts TOTP time step `step` once: false when it (or a later one) was used.
    async fn take_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool>;
    /// Replaces a user's recovery codes.
    async fn replace_recovery_codes(&self, user_id: &str, digests: &[String]) -> StoreResult<()>;
    /// Uses a recovery code once; false when unknown or used.
    async fn use_recovery_code(&self, user_id: &str, digest: &str, now: i64) -> StoreResult<bool>;
    /// Recovery codes not used yet.
    async fn count_recovery_codes(&self, user_id: &str) -> StoreResult<i64>;

    /// Adds a session.
    async fn insert_session(&self, s: &SessionRow) -> StoreResult<()>;
    /// A session by cookie digest.
    async fn find_session(&self, digest: &str) -> StoreResult<Option<SessionRow>>;
    /// A session by id.
    async fn get_session(&self, id: &str) -> StoreResult<Option<SessionRow>>;
    /// Records activity on a session.
    async fn touch_session(&self, id: &str, now: i64) -> StoreResult<()>;
    /// Records a further authentication (MFA, re-login) on a session.
    async fn update_session_auth(&self, id: &str, amr: &str, auth_time: i64) -> StoreResult<()>;
    /// Ends one session; false when unknown or already ended.
    async fn end_session(&self, id: &str, now: i64) -> StoreResult<bool>;
    /// Ends every session of a user; returns how many.
    async fn end_user_sessions(&self, user_id: &str, now: i64) -> StoreResult<u64>;

    /// Adds an authorization code.
    async fn insert_code(&self, c: &CodeRow) -> StoreResult<()>;
    /// A code by digest.
    async fn find_code(&self, digest: &str) -> StoreResult<Option<CodeRow>>;
    /// Marks a code used; false when it already was (a replay).
    async fn use_code(&self, id: &str, now: i64) -> StoreResult<bool>;

    /// A refresh token by digest.
    async fn find_refresh(&self, digest: &str) -> StoreResult<Option<RefreshRow>>;
    /// A refresh token by digest, with its user (one read).
    async fn find_refresh_with_user(
        &self,
        digest: &str,
    ) -> StoreResult<Option<(RefreshRow, Option<UserRow>)>>;
    /// Records what several grants issued, in one transaction (group commit): for
    /// each, the refresh-token write and the access token. An item whose rotation
    /// finds its old token already used or revoked writes nothing and is `false`;
    /// so does a new grant (no rotation) whose user is disabled or gone, or whose
    /// session has ended, by the time it is written: a logout or a disable that
    /// ran between the grant's checks and this write revokes what it can find,
    /// and this grant's tokens would not have been among them.
    async fn record_grants(&self, items: &[GrantWrite]) -> StoreResult<Vec<bool>>;
    /// Revokes every live refresh token in `scope`; returns how many.
    async fn revoke_refresh(&self, scope: GrantScope<'_>, now: i64) -> StoreResult<u64>;

    /// Access tokens in `scope` not expired at `now`.
    async fn list_grant_tokens(
        &self,
        scope: GrantScope<'_>,
        now: i64,
    ) -> StoreResult<Vec<GrantTokenRow>>;

    /// A user's consent to a client.
    async fn get_consent(&self, user_id: &str, client_id: &str) -> StoreResult<Option<ConsentRow>>;
    /// Adds or replaces consent.
    async fn upsert_consent(&self, c: &ConsentRow) -> StoreResult<()>;
    /// A user's consents.
    async fn list_consents(&self, user_id: &str) -> StoreResult<Vec<ConsentRow>>;
    /// Withdraws consent; false when there was none.
    async fn delete_consent(&self, user_id: &str, client_id: &str) -> StoreResult<bool>;

    /// Deletes expired codes, sessions, refresh tokens and grant records; returns rows removed.
    async fn purge_signin(&self, before: i64) -> StoreResult<u64>;
}
