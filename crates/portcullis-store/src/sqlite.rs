//! The embedded SQLite backend.
//!
//! WAL journal so readers never wait for the writer; `synchronous = FULL` so a
//! commit is on disk before we answer (invariant 3: an acknowledged revocation
//! survives `kill -9` and power loss); a busy timeout instead of `SQLITE_BUSY`
//! errors when the CLI writes while the server runs.
//!
//! Writes go through a pool of **one** connection, reads through the others.
//! SQLite has one writer at a time anyway; with several writing connections they
//! meet at the file lock, and the loser sleeps in SQLite's busy handler (1, 2, 5,
//! 10 … ms) instead of queueing: under load most of a write's time was spent
//! asleep. One writer connection turns that into an async FIFO queue in sqlx.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::{
    AdminTokenRow, ApiKeyRow, AttemptResult, AttemptRow, AuditAnchorRow, AuditFilter, AuditLinker,
    AuditRow, AuditSealer, ClientRow, DueDelivery, IpBlockRow, KeyspaceRow, NewSecurityEvent,
    OpaqueTokenRow, OutboxDraft, PatRow, RevokedJti, RoleRow, SecurityEventRow, SigningKeyRow,
    Store, StoreError, StoreResult, UsageRow, UseOutcome, UserRow, WebhookRow, WebhookStore,
};

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating with `?mode=rwc`) the database at `url` and applies migrations.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::from_str(url)?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        // No ping before each acquire: a connection to a local file does not go
        // stale, and the ping was one more round trip to the connection's thread
        // (two context switches) in front of every query.
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts.clone())
            .await?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        let store = Self { pool, writer };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations (idempotent).
    pub async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.pool)
            .await
            .map_err(StoreError::Migrate)
    }

    /// The pool, for tests and integrity checks.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The single writing connection: every write goes through it.
    pub(crate) fn writer(&self) -> &SqlitePool {
        &self.writer
    }
}

pub(crate) async fn bump(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>) -> StoreResult<()> {
    sqlx::query("UPDATE change_counter SET seq = seq + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_signing_key(&self, k: &SigningKeyRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, public_jwk, private_key_sealed, state, created_at, activate_at, retired_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&k.kid)
        .bind(&k.alg)
        .bind(&k.public_jwk)
        .bind(&k.private_key_sealed)
        .bind(&k.state)
        .bind(k.created_at)
        .bind(k.activate_at)
        .bind(k.retired_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRow>> {
        Ok(sqlx::query_as::<_, SigningKeyRow>(
            "SELECT * FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn activate_signing_key(&self, next_kid: &str, now: i64) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        let alg: String = sqlx::query_scalar("SELECT alg FROM signing_keys WHERE kid = ?")
            .bind(next_kid)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        sqlx::query("UPDATE signing_keys SET state = 'retired', retired_at = ? WHERE alg = ? AND state = 'active' AND kid <> ?")
            .bind(now)
            .bind(&alg)
            .bind(next_kid)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE signing_keys SET state = 'active', activate_at = MIN(activate_at, ?) WHERE kid = ?")
            .bind(now)
            .bind(next_kid)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_signing_key(&self, kid: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM signing_keys WHERE kid = ?")
            .bind(kid)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn insert_client(&self, c: &ClientRow) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO clients (id, name, secret_digest, secret_hint, grant_types, redirect_uris, scopes, default_scopes,
                                  audiences, default_audience, token_format, access_token_alg, access_token_ttl, created_at, updated_at, rate_limit,
                                  post_logout_redirect_uris, refresh_token_ttl, refresh_token_max_ttl, require_mfa, first_party, require_dpop)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.id)
        .bind(&c.name)
        .bind(&c.secret_digest)
        .bind(&c.secret_hint)
        .bind(&c.grant_types)
        .bind(&c.redirect_uris)
        .bind(&c.scopes)
        .bind(&c.default_scopes)
        .bind(&c.audiences)
        .bind(&c.default_audience)
        .bind(&c.token_format)
        .bind(&c.access_token_alg)
        .bind(c.access_token_ttl)
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(&c.rate_limit)
        .bind(&c.post_logout_redirect_uris)
        .bind(c.refresh_token_ttl)
        .bind(c.refresh_token_max_ttl)
        .bind(c.require_mfa)
        .bind(c.first_party)
        .bind(c.require_dpop)
        .execute(&mut *tx)
        .await?;
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_client(&self, id: &str) -> StoreResult<Option<ClientRow>> {
        Ok(
            sqlx::query_as::<_, ClientRow>("SELECT * FROM clients WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn list_clients(&self) -> StoreResult<Vec<ClientRow>> {
        Ok(
            sqlx::query_as::<_, ClientRow>("SELECT * FROM clients ORDER BY created_at, id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn delete_client(&self, id: &str) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM opaque_tokens WHERE client_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query("DELETE FROM clients WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn set_client_secret(
        &self,
        id: &str,
        digest: &str,
        hint: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let n = sqlx::query(
            "UPDATE clients SET secret_digest = ?, secret_hint = ?, updated_at = ? WHERE id = ?",
        )
        .bind(digest)
        .bind(hint)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn change_seq(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT seq FROM change_counter WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn insert_opaque_token(&self, t: &OpaqueTokenRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO opaque_tokens (id, digest, kind, client_id, subject, scope, audience, issued_at, expires_at, revoked_at, jkt)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&t.id)
        .bind(&t.digest)
        .bind(&t.kind)
        .bind(&t.client_id)
        .bind(&t.subject)
        .bind(&t.scope)
        .bind(&t.audience)
        .bind(t.issued_at)
        .bind(t.expires_at)
        .bind(t.revoked_at)
        .bind(&t.jkt)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn find_opaque_token(&self, digest: &str) -> StoreResult<Option<OpaqueTokenRow>> {
        Ok(
            sqlx::query_as::<_, OpaqueTokenRow>("SELECT * FROM opaque_tokens WHERE digest = ?")
                .bind(digest)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn revoke_opaque_token(&self, id: &str, now: i64) -> StoreResult<bool> {
        let n = sqlx::query(
            "UPDATE opaque_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    async fn insert_revoked_jti(&self, e: &RevokedJti) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        let n = sqlx::query(
            "INSERT INTO revoked_jtis (jti, client_id, expires_at, revoked_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (jti) DO NOTHING",
        )
        .bind(&e.jti)
        .bind(&e.client_id)
        .bind(e.expires_at)
        .bind(e.revoked_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            let event = NewSecurityEvent {
                kind: "token_revoked",
                subject: e.jti.clone(),
                details: serde_json::json!({"exp": e.expires_at, "client_id": e.client_id})
                    .to_string(),
                at_ms: e.revoked_at * 1000,
                expires_at: e.expires_at,
            };
            append_event(&mut tx, &event).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn append_security_event(&self, e: &NewSecurityEvent) -> StoreResult<i64> {
        let mut tx = self.writer.begin().await?;
        let seq = append_event(&mut tx, e).await?;
        tx.commit().await?;
        Ok(seq)
    }

    async fn security_events_after(
        &self,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<SecurityEventRow>> {
        Ok(sqlx::query_as::<_, SecurityEventRow>(
            "SELECT * FROM security_events WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn security_event_head(&self) -> StoreResult<i64> {
        let (seq,): (i64,) = sqlx::query_as("SELECT seq FROM security_event_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(seq)
    }

    async fn list_revoked_jtis(&self, now: i64) -> StoreResult<Vec<RevokedJti>> {
        Ok(
            sqlx::query_as::<_, RevokedJti>("SELECT * FROM revoked_jtis WHERE expires_at > ?")
                .bind(now)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn insert_admin_token(&self, t: &AdminTokenRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO admin_tokens (id, digest, hint, name, scopes, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&t.id)
        .bind(&t.digest)
        .bind(&t.hint)
        .bind(&t.name)
        .bind(&t.scopes)
        .bind(t.created_at)
        .bind(t.revoked_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn find_admin_token(&self, digest: &str) -> StoreResult<Option<AdminTokenRow>> {
        Ok(
            sqlx::query_as::<_, AdminTokenRow>("SELECT * FROM admin_tokens WHERE digest = ?")
                .bind(digest)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn list_admin_tokens(&self) -> StoreResult<Vec<AdminTokenRow>> {
        Ok(
            sqlx::query_as::<_, AdminTokenRow>(
                "SELECT * FROM admin_tokens ORDER BY created_at, id",
            )
            .fetch_all(&self.pool)
            .await?,
        )
    }

    async fn revoke_admin_token(&self, id: &str, now: i64) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let n = sqlx::query(
            "UPDATE admin_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn insert_keyspace(&self, k: &KeyspaceRow) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO keyspaces (id, name, prefix, scopes, default_scopes, rate_limit, default_ttl, max_ttl, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&k.id)
        .bind(&k.name)
        .bind(&k.prefix)
        .bind(&k.scopes)
        .bind(&k.default_scopes)
        .bind(&k.rate_limit)
        .bind(k.default_ttl)
        .bind(k.max_ttl)
        .bind(k.created_at)
        .bind(k.updated_at)
        .execute(&mut *tx)
        .await?;
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_keyspace(&self, id_or_name: &str) -> StoreResult<Option<KeyspaceRow>> {
        Ok(
            sqlx::query_as::<_, KeyspaceRow>("SELECT * FROM keyspaces WHERE id = ? OR name = ?")
                .bind(id_or_name)
                .bind(id_or_name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn list_keyspaces(&self) -> StoreResult<Vec<KeyspaceRow>> {
        Ok(
            sqlx::query_as::<_, KeyspaceRow>("SELECT * FROM keyspaces ORDER BY created_at, id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn update_keyspace(&self, k: &KeyspaceRow) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let n = sqlx::query(
            "UPDATE keyspaces SET name = ?, scopes = ?, default_scopes = ?, rate_limit = ?, default_ttl = ?, max_ttl = ?, updated_at = ?
             WHERE id = ?",
        )
        .bind(&k.name)
        .bind(&k.scopes)
        .bind(&k.default_scopes)
        .bind(&k.rate_limit)
        .bind(k.default_ttl)
        .bind(k.max_ttl)
        .bind(k.updated_at)
        .bind(&k.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn delete_keyspace(&self, id: &str) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let n = sqlx::query("DELETE FROM keyspaces WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn count_keys(&self, keyspace_id: &str) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE keyspace_id = ?")
                .bind(keyspace_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn insert_api_key(&self, k: &ApiKeyRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, keyspace_id, digest, hint, owner, name, scopes, meta, remaining, rate_limit, allow_ips,
                                   enabled, created_at, updated_at, expires_at, last_used_at, revoked_at,
                                   previous_digest, previous_expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&k.id)
        .bind(&k.keyspace_id)
        .bind(&k.digest)
        .bind(&k.hint)
        .bind(&k.owner)
        .bind(&k.name)
        .bind(&k.scopes)
        .bind(&k.meta)
        .bind(k.remaining)
        .bind(&k.rate_limit)
        .bind(&k.allow_ips)
        .bind(k.enabled)
        .bind(k.created_at)
        .bind(k.updated_at)
        .bind(k.expires_at)
        .bind(k.last_used_at)
        .bind(k.revoked_at)
        .bind(&k.previous_digest)
        .bind(k.previous_expires_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn get_api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRow>> {
        Ok(
            sqlx::query_as::<_, ApiKeyRow>("SELECT * FROM api_keys WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn find_api_key(&self, digest: &str) -> StoreResult<Option<ApiKeyRow>> {
        Ok(sqlx::query_as::<_, ApiKeyRow>(
            "SELECT * FROM api_keys WHERE digest = ? OR previous_digest = ?",
        )
        .bind(digest)
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn list_api_keys(
        &self,
        keyspace_id: Option<&str>,
        owner: Option<&str>,
    ) -> StoreResult<Vec<ApiKeyRow>> {
        Ok(sqlx::query_as::<_, ApiKeyRow>(
            "SELECT * FROM api_keys WHERE (? IS NULL OR keyspace_id = ?) AND (? IS NULL OR owner = ?) ORDER BY created_at, id",
        )
        .bind(keyspace_id)
        .bind(keyspace_id)
        .bind(owner)
        .bind(owner)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn update_api_key(&self, k: &ApiKeyRow) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let n = sqlx::query(
            "UPDATE api_keys SET name = ?, scopes = ?, meta = ?, remaining = ?, rate_limit = ?, allow_ips = ?, enabled = ?,
                                 expires_at = ?, updated_at = ?
             WHERE id = ?",
        )
        .bind(&k.name)
        .bind(&k.scopes)
        .bind(&k.meta)
        .bind(k.remaining)
        .bind(&k.rate_limit)
        .bind(&k.allow_ips)
        .bind(k.enabled)
        .bind(k.expires_at)
        .bind(k.updated_at)
        .bind(&k.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn revoke_api_key(&self, id: &str, now: i64) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let n =
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn delete_api_key(&self, id: &str) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM key_usage WHERE key_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query("DELETE FROM api_keys WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn take_api_key_use(&self, id: &str) -> StoreResult<UseOutcome> {
        let left: Option<i64> =
            sqlx::query_scalar("UPDATE api_keys SET remaining = remaining - 1 WHERE id = ? AND remaining > 0 RETURNING remaining")
                .bind(id)
                .fetch_optional(&self.writer)
                .await?;
        if let Some(left) = left {
            return Ok(UseOutcome::Taken(Some(left)));
        }
        let current: Option<Option<i64>> =
            sqlx::query_scalar("SELECT remaining FROM api_keys WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        match current {
            Some(None) => Ok(UseOutcome::Taken(None)),
            Some(Some(_)) => Ok(UseOutcome::Exhausted),
            None => Err(StoreError::NotFound),
        }
    }

    async fn touch_api_keys(&self, last_used: &[(String, i64)]) -> StoreResult<()> {
        if last_used.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        for (id, at) in last_used {
            sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)")
                .bind(at)
                .bind(id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn roll_api_key(
        &self,
        id: &str,
        digest: &str,
        hint: &str,
        previous_expires_at: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let n = sqlx::query(
            "UPDATE api_keys SET previous_digest = digest, previous_expires_at = ?, digest = ?, hint = ?, updated_at = ?
             WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(previous_expires_at)
        .bind(digest)
        .bind(hint)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn add_key_usage(&self, rows: &[(String, i64, String, i64)]) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        for (key_id, bucket, outcome, count) in rows {
            sqlx::query(
                "INSERT INTO key_usage (key_id, bucket_start, outcome, count) VALUES (?, ?, ?, ?)
                 ON CONFLICT (key_id, bucket_start, outcome) DO UPDATE SET count = key_usage.count + excluded.count",
            )
            .bind(key_id)
            .bind(bucket)
            .bind(outcome)
            .bind(count)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn key_usage(
        &self,
        key_id: &str,
        from: i64,
        to: i64,
        granularity: i64,
    ) -> StoreResult<Vec<UsageRow>> {
        Ok(sqlx::query_as::<_, UsageRow>(
            "SELECT (bucket_start / ?) * ? AS bucket_start, outcome, SUM(count) AS count FROM key_usage
             WHERE key_id = ? AND bucket_start >= ? AND bucket_start < ?
             GROUP BY (bucket_start / ?) * ?, outcome ORDER BY 1, 2",
        )
        .bind(granularity)
        .bind(granularity)
        .bind(key_id)
        .bind(from)
        .bind(to)
        .bind(granularity)
        .bind(granularity)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn purge_key_usage(&self, before: i64) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM key_usage WHERE bucket_start < ?")
            .bind(before)
            .execute(&self.writer)
            .await?
            .rows_affected())
    }

    async fn upsert_role(&self, r: &RoleRow) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO roles (name, scopes, created_at) VALUES (?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET scopes = excluded.scopes",
        )
        .bind(&r.name)
        .bind(&r.scopes)
        .bind(r.created_at)
        .execute(&mut *tx)
        .await?;
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_roles(&self) -> StoreResult<Vec<RoleRow>> {
        Ok(
            sqlx::query_as::<_, RoleRow>("SELECT * FROM roles ORDER BY name")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn insert_user(&self, u: &UserRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO users (id, username, email, roles, enabled, created_at, updated_at, password_hash, mfa_required)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&u.id)
        .bind(&u.username)
        .bind(&u.email)
        .bind(&u.roles)
        .bind(u.enabled)
        .bind(u.created_at)
        .bind(u.updated_at)
        .bind(&u.password_hash)
        .bind(u.mfa_required)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn get_user(&self, id_or_username: &str) -> StoreResult<Option<UserRow>> {
        Ok(
            sqlx::query_as::<_, UserRow>("SELECT * FROM users WHERE id = ? OR username = ?")
                .bind(id_or_username)
                .bind(id_or_username)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn list_users(&self) -> StoreResult<Vec<UserRow>> {
        Ok(
            sqlx::query_as::<_, UserRow>("SELECT * FROM users ORDER BY created_at, id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn insert_pat(&self, t: &PatRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO personal_access_tokens (id, user_id, digest, hint, name, scopes, created_at, expires_at, last_used_at, revoked_at, last_used_ip)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&t.id)
        .bind(&t.user_id)
        .bind(&t.digest)
        .bind(&t.hint)
        .bind(&t.name)
        .bind(&t.scopes)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(t.last_used_at)
        .bind(t.revoked_at)
        .bind(&t.last_used_ip)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn find_pat(&self, digest: &str) -> StoreResult<Option<PatRow>> {
        Ok(
            sqlx::query_as::<_, PatRow>("SELECT * FROM personal_access_tokens WHERE digest = ?")
                .bind(digest)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn get_pat(&self, id: &str) -> StoreResult<Option<PatRow>> {
        Ok(
            sqlx::query_as::<_, PatRow>("SELECT * FROM personal_access_tokens WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn list_pats(&self, user_id: &str) -> StoreResult<Vec<PatRow>> {
        Ok(sqlx::query_as::<_, PatRow>(
            "SELECT * FROM personal_access_tokens WHERE user_id = ? ORDER BY created_at, id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn revoke_pat(&self, id: &str, now: i64) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let n = sqlx::query(
            "UPDATE personal_access_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn revoke_user_pats(&self, user_id: &str, now: i64) -> StoreResult<u64> {
        let mut tx = self.writer.begin().await?;
        let n = sqlx::query("UPDATE personal_access_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL")
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn touch_pats(&self, last_used: &[(String, i64, Option<String>)]) -> StoreResult<()> {
        if last_used.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        for (id, at, ip) in last_used {
            sqlx::query(
                "UPDATE personal_access_tokens SET last_used_at = ?, last_used_ip = COALESCE(?, last_used_ip)
                 WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)",
            )
            .bind(at)
            .bind(ip)
            .bind(id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn purge_expired(&self, before: i64) -> StoreResult<u64> {
        let mut tx = self.writer.begin().await?;
        let a = sqlx::query("DELETE FROM opaque_tokens WHERE expires_at < ?")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        let b = sqlx::query("DELETE FROM revoked_jtis WHERE expires_at < ?")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        let c = sqlx::query("DELETE FROM security_events WHERE expires_at < ?")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(a.rows_affected() + b.rows_affected() + c.rows_affected())
    }

    async fn append_audit(
        &self,
        mut rows: Vec<AuditRow>,
        outbox: &[OutboxDraft],
        link: &AuditLinker,
    ) -> StoreResult<Vec<i64>> {
        let mut tx = self.writer.begin().await?;
        // Take the write lock before reading the head, so concurrent writers
        // (another process) queue instead of forking the chain.
        sqlx::query("UPDATE audit_anchor SET id = id WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        let last: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let (mut seq, mut prev) = match last {
            Some(l) => l,
            None => {
                sqlx::query_as("SELECT seq, hash FROM audit_anchor WHERE id = 1")
                    .fetch_one(&mut *tx)
                    .await?
            }
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in &mut rows {
            seq += 1;
            r.seq = seq;
            r.prev_hash = std::mem::take(&mut prev);
            r.hash = link(r);
            prev = r.hash.clone();
            out.push(seq);
        }
        // Multi-row INSERTs of 64, 32, 16, 8, 4, 2 or 1 records (14 binds each, far
        // under SQLite's limit): a large group commit costs a few statements, not
        // hundreds, and only seven statement texts ever reach the connection, so each
        // is prepared once and found in its statement cache afterwards (one statement
        // per batch's remainder, 1 to 63 rows, was a new text to parse on most commits).
        for chunk in audit_insert_chunks(&rows) {
            // The statement text is written once per shape, not per commit: building
            // it with `QueryBuilder` formatted a separator and a placeholder for
            // every bind, which cost more than binding the values.
            let mut q = sqlx::query(audit_insert_sql(chunk.len()));
            for r in chunk {
                q = q
                    .bind(r.seq)
                    .bind(r.at_ms)
                    .bind(&r.kind)
                    .bind(&r.outcome)
                    .bind(&r.actor)
                    .bind(&r.subject)
                    .bind(&r.credential_id)
                    .bind(&r.client_id)
                    .bind(&r.ip)
                    .bind(&r.user_agent)
                    .bind(&r.reason)
                    .bind(&r.details)
                    .bind(&r.prev_hash)
                    .bind(&r.hash);
            }
            q.execute(&mut *tx).await?;
        }
        for o in outbox {
            let Some(seq) = out.get(o.row_index) else {
                continue;
            };
            sqlx::query(
                "INSERT INTO webhook_outbox (id, webhook_id, audit_seq, attempts, next_attempt_ms, failed)
                 VALUES (?, ?, ?, 0, ?, FALSE)",
            )
            .bind(&o.id)
            .bind(&o.webhook_id)
            .bind(seq)
            .bind(rows[o.row_index].at_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn list_audit(&self, f: &AuditFilter) -> StoreResult<Vec<AuditRow>> {
        let mut q =
            sqlx::QueryBuilder::<sqlx::Sqlite>::new("SELECT * FROM audit_events WHERE 1 = 1");
        if let Some(v) = f.after_seq {
            if f.newest_first {
                q.push(" AND seq < ").push_bind(v);
            } else {
                q.push(" AND seq > ").push_bind(v);
            }
        }
        if let Some(v) = f.since_ms {
            q.push(" AND at_ms >= ").push_bind(v);
        }
        if let Some(v) = f.until_ms {
            q.push(" AND at_ms < ").push_bind(v);
        }
        if let Some(k) = &f.kind {
            if let Some(prefix) = k.strip_suffix('.') {
                q.push(" AND substr(kind, 1, ")
                    .push_bind(prefix.len() as i64 + 1)
                    .push(") = ")
                    .push_bind(format!("{prefix}."));
            } else {
                q.push(" AND kind = ").push_bind(k.clone());
            }
        }
        for (col, v) in [
            ("outcome", &f.outcome),
            ("actor", &f.actor),
            ("subject", &f.subject),
            ("credential_id", &f.credential_id),
            ("ip", &f.ip),
        ] {
            if let Some(v) = v {
                q.push(format!(" AND {col} = ")).push_bind(v.clone());
            }
        }
        q.push(if f.newest_first {
            " ORDER BY seq DESC LIMIT "
        } else {
            " ORDER BY seq ASC LIMIT "
        })
        .push_bind(f.limit.clamp(1, 10_000));
        Ok(q.build_query_as::<AuditRow>().fetch_all(&self.pool).await?)
    }

    async fn audit_anchor(&self) -> StoreResult<AuditAnchorRow> {
        Ok(sqlx::query_as::<_, AuditAnchorRow>(
            "SELECT seq, hash, pruned_at_ms, seal FROM audit_anchor WHERE id = 1",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    async fn prune_audit(
        &self,
        before_ms: i64,
        now_ms: i64,
        seal: &AuditSealer,
    ) -> StoreResult<u64> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("UPDATE audit_anchor SET id = id WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        // Never prune the newest record: the chain head must stay readable.
        let last: Option<(i64, String)> = sqlx::query_as(
            "SELECT seq, hash FROM audit_events WHERE at_ms < ?
               AND seq < (SELECT MAX(seq) FROM audit_events)
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(before_ms)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((seq, hash)) = last else {
            return Ok(0);
        };
        let n = sqlx::query("DELETE FROM audit_events WHERE seq <= ?")
            .bind(seq)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "UPDATE audit_anchor SET seq = ?, hash = ?, pruned_at_ms = ?, seal = ? WHERE id = 1",
        )
        .bind(seq)
        .bind(&hash)
        .bind(now_ms)
        .bind(seal(seq, &hash, now_ms))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(n)
    }
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn insert_webhook(&self, w: &WebhookRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO webhooks (id, url, events, secret_sealed, enabled, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&w.id)
        .bind(&w.url)
        .bind(&w.events)
        .bind(&w.secret_sealed)
        .bind(w.enabled)
        .bind(w.created_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn list_webhooks(&self) -> StoreResult<Vec<WebhookRow>> {
        Ok(
            sqlx::query_as::<_, WebhookRow>("SELECT * FROM webhooks ORDER BY created_at, id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn delete_webhook(&self, id: &str) -> StoreResult<bool> {
        Ok(sqlx::query("DELETE FROM webhooks WHERE id = ?")
            .bind(id)
            .execute(&self.writer)
            .await?
            .rows_affected()
            == 1)
    }

    async fn due_deliveries(&self, now_ms: i64, limit: i64) -> StoreResult<Vec<DueDelivery>> {
        Ok(sqlx::query_as::<_, DueDelivery>(
            "SELECT o.id, o.webhook_id, w.url, w.secret_sealed, o.attempts, o.next_attempt_ms, o.audit_seq
               FROM webhook_outbox o JOIN webhooks w ON w.id = o.webhook_id
              WHERE o.delivered_ms IS NULL AND NOT o.failed AND w.enabled AND o.next_attempt_ms <= ?
              ORDER BY o.next_attempt_ms, o.audit_seq LIMIT ?",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn claim_delivery(
        &self,
        id: &str,
        due_ms: i64,
        lease_until_ms: i64,
    ) -> StoreResult<bool> {
        Ok(sqlx::query(
            "UPDATE webhook_outbox SET next_attempt_ms = ? WHERE id = ? AND next_attempt_ms = ? AND delivered_ms IS NULL",
        )
        .bind(lease_until_ms)
        .bind(id)
        .bind(due_ms)
        .execute(&self.writer)
        .await?
        .rows_affected()
            == 1)
    }

    async fn record_attempt(&self, a: &AttemptResult) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (outbox_id, attempt, at_ms, status, error, duration_ms) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&a.outbox_id)
        .bind(a.attempt)
        .bind(a.at_ms)
        .bind(a.status)
        .bind(&a.error)
        .bind(a.duration_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE webhook_outbox SET attempts = ?, last_status = ?, last_error = ?, next_attempt_ms = ?,
                    delivered_ms = ?, failed = ? WHERE id = ?",
        )
        .bind(a.attempt)
        .bind(a.status)
        .bind(&a.error)
        .bind(a.next_attempt_ms)
        .bind(a.delivered.then_some(a.at_ms))
        .bind(a.failed)
        .bind(&a.outbox_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_attempts(&self, webhook_id: &str, limit: i64) -> StoreResult<Vec<AttemptRow>> {
        Ok(sqlx::query_as::<_, AttemptRow>(
            "SELECT a.outbox_id, o.audit_seq, a.attempt, a.at_ms, a.status, a.error, a.duration_ms
               FROM webhook_attempts a JOIN webhook_outbox o ON o.id = a.outbox_id
              WHERE o.webhook_id = ? ORDER BY a.at_ms DESC, a.attempt DESC LIMIT ?",
        )
        .bind(webhook_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn upsert_ip_block(&self, b: &IpBlockRow) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO ip_blocks (network, reason, created_at, expires_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (network) DO UPDATE SET reason = excluded.reason,
                 expires_at = MAX(ip_blocks.expires_at, excluded.expires_at)",
        )
        .bind(&b.network)
        .bind(&b.reason)
        .bind(b.created_at)
        .bind(b.expires_at)
        .execute(&mut *tx)
        .await?;
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_ip_blocks(&self, now: i64) -> StoreResult<Vec<IpBlockRow>> {
        Ok(sqlx::query_as::<_, IpBlockRow>(
            "SELECT * FROM ip_blocks WHERE expires_at > ? ORDER BY created_at, network",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn delete_ip_block(&self, network: &str) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let n = sqlx::query("DELETE FROM ip_blocks WHERE network = ?")
            .bind(network)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    async fn audit_record(&self, seq: i64) -> StoreResult<Option<AuditRow>> {
        Ok(
            sqlx::query_as::<_, AuditRow>("SELECT * FROM audit_events WHERE seq = ?")
                .bind(seq)
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}

/// Appends one feed event inside `tx`: bumps the head, then inserts at the new `seq`.
async fn append_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    e: &NewSecurityEvent,
) -> StoreResult<i64> {
    let (seq,): (i64,) =
        sqlx::query_as("UPDATE security_event_head SET seq = seq + 1 WHERE id = 1 RETURNING seq")
            .fetch_one(&mut **tx)
            .await?;
    sqlx::query(
        "INSERT INTO security_events (seq, at_ms, kind, subject, details, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(seq)
    .bind(e.at_ms)
    .bind(e.kind)
    .bind(&e.subject)
    .bind(&e.details)
    .bind(e.expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(seq)
}

/// The INSERT of `rows` audit records (one of [`audit_insert_chunks`]' sizes: 1, 2,
/// 4, … 64), built on first use and kept.
fn audit_insert_sql(rows: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        (0..7)
            .map(|k| {
                let row = format!("({})", vec!["?"; 14].join(", "));
                format!(
                    "INSERT INTO audit_events (seq, at_ms, kind, outcome, actor, subject, \
                     credential_id, client_id, ip, user_agent, reason, details, prev_hash, hash) \
                     VALUES {}",
                    vec![row; 1 << k].join(", ")
                )
            })
            .collect()
    });
    debug_assert!(rows.is_power_of_two() && rows <= 64, "{rows} rows");
    &all[(rows.trailing_zeros() as usize).min(6)]
}

/// The row counts of one batch's audit INSERTs: as many 64s as fit, then the
/// remainder by its binary digits (32, 16, 8, 4, 2, 1), so every statement has one of
/// seven shapes.
fn audit_insert_chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = if rest.len() >= 64 {
            64
        } else {
            1 << rest.len().ilog2()
        };
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::{audit_insert_chunks, audit_insert_sql};

    #[test]
    fn each_audit_insert_shape_has_fourteen_binds_per_row() {
        for k in 0..7 {
            let rows = 1usize << k;
            let sql = audit_insert_sql(rows);
            assert_eq!(sql.matches('?').count(), 14 * rows, "{rows} rows");
            assert_eq!(sql.matches("(?,").count(), rows, "{rows} rows");
            assert!(sql.starts_with("INSERT INTO audit_events (seq, at_ms,"));
            assert!(sql.ends_with("?)"));
        }
    }

    #[test]
    fn audit_inserts_come_in_seven_shapes_and_keep_every_row_in_order() {
        let mut shapes = std::collections::BTreeSet::new();
        for n in 0..=300usize {
            let rows: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = audit_insert_chunks(&rows).collect();
            let flat: Vec<usize> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
            assert_eq!(flat, rows, "{n} rows");
            // 64s first, then strictly shrinking powers of two.
            let sizes: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
            let tail = &sizes[sizes.iter().take_while(|s| **s == 64).count()..];
            assert!(tail.windows(2).all(|w| w[0] > w[1]), "{n}: {sizes:?}");
            assert!(
                tail.iter().all(|s| s.is_power_of_two() && *s < 64),
                "{n}: {sizes:?}"
            );
            shapes.extend(sizes);
        }
        assert_eq!(
            shapes.into_iter().collect::<Vec<_>>(),
            [1, 2, 4, 8, 16, 32, 64]
        );
    }
}
