//! Sign-in persistence: credentials on users, browser sessions, authorization
//! codes, refresh-token families, the access tokens issued from each grant,
//! remembered consent and TOTP recovery codes. Every secret is a keyed digest.
//!
//! The single-use rules (a code, a refresh token, a TOTP step) are enforced here
//! by conditional updates, so two concurrent redemptions cannot both win.

use async_trait::async_trait;

use crate::sqlite::SqliteStore;
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
    fn column(&self) -> (&'static str, &str) {
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

#[async_trait]
impl SignInStore for SqliteStore {
    async fn update_user(&self, u: &UserRow) -> StoreResult<bool> {
        let mut tx = self.writer().begin().await?;
        let n = sqlx::query(
            "UPDATE users SET email = ?, roles = ?, enabled = ?, mfa_required = ?, updated_at = ? WHERE id = ?",
        )
        .bind(&u.email)
        .bind(&u.roles)
        .bind(u.enabled)
        .bind(u.mfa_required)
        .bind(u.updated_at)
        .bind(&u.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        crate::sqlite::bump(&mut tx).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn set_password_hash(
        &self,
        user_id: &str,
        hash: Option<&str>,
        now: i64,
    ) -> StoreResult<bool> {
        let n = sqlx::query("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?")
            .bind(hash)
            .bind(now)
            .bind(user_id)
            .execute(self.writer())
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    async fn delete_user(&self, user_id: &str) -> StoreResult<bool> {
        let mut tx = self.writer().begin().await?;
        for table in ["personal_access_tokens", "grant_tokens"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE user_id = ?"))
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        let n = sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        crate::sqlite::bump(&mut tx).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn set_totp(
        &self,
        user_id: &str,
        sealed: Option<&str>,
        confirmed_at: Option<i64>,
    ) -> StoreResult<()> {
        // Confirming keeps the step the confirming code used; anything else starts over.
        sqlx::query(
            "UPDATE users SET totp_secret_sealed = ?, totp_confirmed_at = ?,
                    totp_last_step = CASE WHEN ? IS NULL THEN NULL ELSE totp_last_step END
             WHERE id = ?",
        )
        .bind(sealed)
        .bind(confirmed_at)
        .bind(confirmed_at)
        .bind(user_id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn take_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool> {
        let n = sqlx::query(
            "UPDATE users SET totp_last_step = ? WHERE id = ? AND (totp_last_step IS NULL OR totp_last_step < ?)",
        )
        .bind(step)
        .bind(user_id)
        .bind(step)
        .execute(self.writer())
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    async fn replace_recovery_codes(&self, user_id: &str, digests: &[String]) -> StoreResult<()> {
        let mut tx = self.writer().begin().await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for d in digests {
            sqlx::query("INSERT INTO recovery_codes (user_id, digest) VALUES (?, ?)")
                .bind(user_id)
                .bind(d)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn use_recovery_code(&self, user_id: &str, digest: &str, now: i64) -> StoreResult<bool> {
        let n = sqlx::query(
            "UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND digest = ? AND used_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(digest)
        .execute(self.writer())
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    async fn count_recovery_codes(&self, user_id: &str) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL",
        )
        .bind(user_id)
        .fetch_one(self.pool())
        .await?)
    }

    async fn insert_session(&self, s: &SessionRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (id, digest, user_id, amr, auth_time, created_at, last_seen_at, expires_at, ended_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id)
        .bind(&s.digest)
        .bind(&s.user_id)
        .bind(&s.amr)
        .bind(s.auth_time)
        .bind(s.created_at)
        .bind(s.last_seen_at)
        .bind(s.expires_at)
        .bind(s.ended_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn find_session(&self, digest: &str) -> StoreResult<Option<SessionRow>> {
        Ok(
            sqlx::query_as::<_, SessionRow>("SELECT * FROM sessions WHERE digest = ?")
                .bind(digest)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    async fn get_session(&self, id: &str) -> StoreResult<Option<SessionRow>> {
        Ok(
            sqlx::query_as::<_, SessionRow>("SELECT * FROM sessions WHERE id = ?")
                .bind(id)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    async fn touch_session(&self, id: &str, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = ? WHERE id = ? AND last_seen_at < ?")
            .bind(now)
            .bind(id)
            .bind(now)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn update_session_auth(&self, id: &str, amr: &str, auth_time: i64) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET amr = ?, auth_time = ? WHERE id = ?")
            .bind(amr)
            .bind(auth_time)
            .bind(id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn end_session(&self, id: &str, now: i64) -> StoreResult<bool> {
        let n = sqlx::query("UPDATE sessions SET ended_at = ? WHERE id = ? AND ended_at IS NULL")
            .bind(now)
            .bind(id)
            .execute(self.writer())
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    async fn end_user_sessions(&self, user_id: &str, now: i64) -> StoreResult<u64> {
        Ok(
            sqlx::query("UPDATE sessions SET ended_at = ? WHERE user_id = ? AND ended_at IS NULL")
                .bind(now)
                .bind(user_id)
                .execute(self.writer())
                .await?
                .rows_affected(),
        )
    }

    async fn insert_code(&self, c: &CodeRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO authorization_codes (id, digest, client_id, user_id, session_id, redirect_uri, code_challenge,
                                              scope, nonce, auth_time, amr, created_at, expires_at, used_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.id)
        .bind(&c.digest)
        .bind(&c.client_id)
        .bind(&c.user_id)
        .bind(&c.session_id)
        .bind(&c.redirect_uri)
        .bind(&c.code_challenge)
        .bind(&c.scope)
        .bind(&c.nonce)
        .bind(c.auth_time)
        .bind(&c.amr)
        .bind(c.created_at)
        .bind(c.expires_at)
        .bind(c.used_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn find_code(&self, digest: &str) -> StoreResult<Option<CodeRow>> {
        Ok(
            sqlx::query_as::<_, CodeRow>("SELECT * FROM authorization_codes WHERE digest = ?")
                .bind(digest)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    async fn use_code(&self, id: &str, now: i64) -> StoreResult<bool> {
        let n = sqlx::query(
            "UPDATE authorization_codes SET used_at = ? WHERE id = ? AND used_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(self.writer())
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    async fn find_refresh_with_user(
        &self,
        digest: &str,
    ) -> StoreResult<Option<(RefreshRow, Option<UserRow>)>> {
        use sqlx::{FromRow, Row};
        let Some(row) = sqlx::query(
            "SELECT r.*, u.id AS u_id, u.username AS u_username, u.email AS u_email, \
             u.roles AS u_roles, u.enabled AS u_enabled, u.created_at AS u_created_at, \
             u.updated_at AS u_updated_at, u.password_hash AS u_password_hash, \
             u.mfa_required AS u_mfa_required, u.totp_secret_sealed AS u_totp_secret_sealed, \
             u.totp_confirmed_at AS u_totp_confirmed_at, u.totp_last_step AS u_totp_last_step \
             FROM refresh_tokens r LEFT JOIN users u ON u.id = r.user_id WHERE r.digest = ?",
        )
        .bind(digest)
        .fetch_optional(self.pool())
        .await?
        else {
            return Ok(None);
        };
        let token = RefreshRow::from_row(&row)?;
        let user = match row.try_get::<Option<String>, _>("u_id")? {
            None => None,
            Some(id) => Some(UserRow {
                id,
                username: row.try_get("u_username")?,
                email: row.try_get("u_email")?,
                roles: row.try_get("u_roles")?,
                enabled: row.try_get("u_enabled")?,
                created_at: row.try_get("u_created_at")?,
                updated_at: row.try_get("u_updated_at")?,
                password_hash: row.try_get("u_password_hash")?,
                mfa_required: row.try_get("u_mfa_required")?,
                totp_secret_sealed: row.try_get("u_totp_secret_sealed")?,
                totp_confirmed_at: row.try_get("u_totp_confirmed_at")?,
                totp_last_step: row.try_get("u_totp_last_step")?,
            }),
        };
        Ok(Some((token, user)))
    }

    async fn find_refresh(&self, digest: &str) -> StoreResult<Option<RefreshRow>> {
        Ok(
            sqlx::query_as::<_, RefreshRow>("SELECT * FROM refresh_tokens WHERE digest = ?")
                .bind(digest)
                .fetch_optional(self.pool())
                .await?,
        )
    }

    async fn record_grants(&self, items: &[GrantWrite]) -> StoreResult<Vec<bool>> {
        let mut tx = self.writer().begin().await?;
        let mut done = Vec::with_capacity(items.len());
        for GrantWrite { token: t, refresh } in items {
            match refresh {
                RefreshWrite::None | RefreshWrite::Insert(_) => {
                    // A rotation needs no such check: its old token is revoked by
                    // the same logout or disable, and the UPDATE below sees that.
                    let may_start: bool = sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM users WHERE id = ? AND enabled)
                            AND NOT EXISTS (SELECT 1 FROM sessions WHERE id = ? AND ended_at IS NOT NULL)",
                    )
                    .bind(&t.user_id)
                    .bind(&t.session_id)
                    .fetch_one(&mut *tx)
                    .await?;
                    if !may_start {
                        done.push(false);
                        continue;
                    }
                    if let RefreshWrite::Insert(r) = refresh {
                        insert_refresh_in(&mut *tx, r).await?;
                    }
                }
                RefreshWrite::Rotate { old_id, now, new } => {
                    let n = sqlx::query(
                        "UPDATE refresh_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL",
                    )
                    .bind(now)
                    .bind(old_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if n == 0 {
                        done.push(false);
                        continue;
                    }
                    insert_refresh_in(&mut *tx, new).await?;
                }
            }
            sqlx::query(
                "INSERT INTO grant_tokens (jti, family_id, user_id, session_id, client_id, format, expires_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&t.jti)
            .bind(&t.family_id)
            .bind(&t.user_id)
            .bind(&t.session_id)
            .bind(&t.client_id)
            .bind(&t.format)
            .bind(t.expires_at)
            .execute(&mut *tx)
            .await?;
            done.push(true);
        }
        tx.commit().await?;
        Ok(done)
    }

    async fn revoke_refresh(&self, scope: GrantScope<'_>, now: i64) -> StoreResult<u64> {
        let (col, v) = scope.column();
        Ok(sqlx::query(&format!(
            "UPDATE refresh_tokens SET revoked_at = ? WHERE {col} = ? AND revoked_at IS NULL"
        ))
        .bind(now)
        .bind(v)
        .execute(self.writer())
        .await?
        .rows_affected())
    }

    async fn list_grant_tokens(
        &self,
        scope: GrantScope<'_>,
        now: i64,
    ) -> StoreResult<Vec<GrantTokenRow>> {
        let (col, v) = scope.column();
        Ok(sqlx::query_as::<_, GrantTokenRow>(&format!(
            "SELECT * FROM grant_tokens WHERE {col} = ? AND expires_at > ?"
        ))
        .bind(v)
        .bind(now)
        .fetch_all(self.pool())
        .await?)
    }

    async fn get_consent(&self, user_id: &str, client_id: &str) -> StoreResult<Option<ConsentRow>> {
        Ok(sqlx::query_as::<_, ConsentRow>(
            "SELECT * FROM consents WHERE user_id = ? AND client_id = ?",
        )
        .bind(user_id)
        .bind(client_id)
        .fetch_optional(self.pool())
        .await?)
    }

    async fn upsert_consent(&self, c: &ConsentRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at",
        )
        .bind(&c.user_id)
        .bind(&c.client_id)
        .bind(&c.scopes)
        .bind(c.granted_at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn list_consents(&self, user_id: &str) -> StoreResult<Vec<ConsentRow>> {
        Ok(sqlx::query_as::<_, ConsentRow>(
            "SELECT * FROM consents WHERE user_id = ? ORDER BY granted_at, client_id",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?)
    }

    async fn delete_consent(&self, user_id: &str, client_id: &str) -> StoreResult<bool> {
        Ok(
            sqlx::query("DELETE FROM consents WHERE user_id = ? AND client_id = ?")
                .bind(user_id)
                .bind(client_id)
                .execute(self.writer())
                .await?
                .rows_affected()
                > 0,
        )
    }

    async fn purge_signin(&self, before: i64) -> StoreResult<u64> {
        let mut tx = self.writer().begin().await?;
        let mut n = 0;
        for sql in [
            "DELETE FROM authorization_codes WHERE expires_at < ?",
            "DELETE FROM sessions WHERE expires_at < ?",
            "DELETE FROM refresh_tokens WHERE family_expires_at < ?",
            "DELETE FROM grant_tokens WHERE expires_at < ?",
        ] {
            n += sqlx::query(sql)
                .bind(before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }
}

async fn insert_refresh_in<'e, E>(ex: E, r: &RefreshRow) -> StoreResult<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    sqlx::query(
        "INSERT INTO refresh_tokens (id, digest, family_id, client_id, user_id, session_id, scope, auth_time, amr,
                                     issued_at, expires_at, family_expires_at, used_at, revoked_at, jkt)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&r.id)
    .bind(&r.digest)
    .bind(&r.family_id)
    .bind(&r.client_id)
    .bind(&r.user_id)
    .bind(&r.session_id)
    .bind(&r.scope)
    .bind(r.auth_time)
    .bind(&r.amr)
    .bind(r.issued_at)
    .bind(r.expires_at)
    .bind(r.family_expires_at)
    .bind(r.used_at)
    .bind(r.revoked_at)
    .bind(&r.jkt)
    .execute(ex)
    .await?;
    Ok(())
}
