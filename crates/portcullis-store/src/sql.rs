//! The queries both SQL backends run: one text per statement, written so SQLite
//! and PostgreSQL read it the same way (`$1`-style placeholders, which sqlx binds by
//! number on both, except the audit INSERT's hundreds, positional `?` on SQLite; `CASE` rather than SQLite's two-argument `MIN`/`MAX`; `CAST` where
//! PostgreSQL would widen a `SUM` to `NUMERIC`).
//!
//! [`sql_store!`] expands, inside a backend's module, to the `Store`, `WebhookStore`
//! and `SignInStore` implementations for that module's `Backend` type on its `Db`
//! (`sqlx::Sqlite` or `sqlx::Postgres`). A macro rather than generic code: each
//! backend gets concrete sqlx types (no higher-ranked `Executor` bounds through
//! `async_trait`'s boxed futures), and both run the very same statements, so the
//! contract tests check one text against two databases. The backend type provides
//! `pool` (reads) and `writer` (writes) pools and the methods `pool()` and `writer()`,
//! and its module a `lock_job` function and an `AUDIT_BINDS` constant (the two things
//! the backends do differently).

/// The `Store`, `WebhookStore` and `SignInStore` implementations for `Backend` on
/// `Db`, both type names resolved where the macro is invoked.
macro_rules! sql_store {
    () => {
        mod queries {
            use async_trait::async_trait;

            use super::{Backend, Db};
            use crate::{
                CodeRow, ConsentRow, GrantScope, GrantTokenRow, GrantWrite, RefreshRow, RefreshWrite, SessionRow, SignInStore,
                AdminTokenRow, ApiKeyRow, AttemptResult, AttemptRow, AuditAnchorRow, AuditFilter, AuditLinker,
                AuditRow, AuditSealer, ClientRow, DueDelivery, IpBlockRow, KeyspaceRow, NewSecurityEvent,
                OpaqueTokenRow, OutboxDraft, PatRow, RevokedJti, RoleRow, SecurityEventRow, SigningKeyRow,
                Store, StoreError, StoreResult, UsageRow, UseOutcome, UserRow, WebhookRow, WebhookStore,
            };

            async fn bump(tx: &mut sqlx::Transaction<'_, Db>) -> StoreResult<()> {
                sqlx::query("UPDATE change_counter SET seq = seq + 1 WHERE id = 1")
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            #[async_trait]
            impl Store for Backend {
                async fn ping(&self) -> StoreResult<()> {
                    sqlx::query("SELECT 1").execute(&self.pool).await?;
                    Ok(())
                }

                async fn lock_job(&self, job: &str, wait: bool) -> StoreResult<Option<crate::JobLock>> {
                    super::lock_job(self, job, wait).await
                }

                async fn insert_signing_key(&self, k: &SigningKeyRow) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO signing_keys (kid, alg, public_jwk, private_key_sealed, state, created_at, activate_at, retired_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
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
                    let alg: String = sqlx::query_scalar("SELECT alg FROM signing_keys WHERE kid = $1")
                        .bind(next_kid)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or(StoreError::NotFound)?;
                    sqlx::query("UPDATE signing_keys SET state = 'retired', retired_at = $1 WHERE alg = $2 AND state = 'active' AND kid <> $3")
                        .bind(now)
                        .bind(&alg)
                        .bind(next_kid)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("UPDATE signing_keys SET state = 'active', activate_at = CASE WHEN activate_at < $1 THEN activate_at ELSE $1 END WHERE kid = $2")
                        .bind(now)
                        .bind(next_kid)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn delete_signing_key(&self, kid: &str) -> StoreResult<()> {
                    sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
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
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)",
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
                        sqlx::query_as::<_, ClientRow>("SELECT * FROM clients WHERE id = $1")
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
                    sqlx::query("DELETE FROM opaque_tokens WHERE client_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    let n = sqlx::query("DELETE FROM clients WHERE id = $1")
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
                        "UPDATE clients SET secret_digest = $1, secret_hint = $2, updated_at = $3 WHERE id = $4",
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
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
                        sqlx::query_as::<_, OpaqueTokenRow>("SELECT * FROM opaque_tokens WHERE digest = $1")
                            .bind(digest)
                            .fetch_optional(&self.pool)
                            .await?,
                    )
                }

                async fn revoke_opaque_token(&self, id: &str, now: i64) -> StoreResult<bool> {
                    let mut tx = self.writer.begin().await?;
                    let revoked: Option<(String, i64)> = sqlx::query_as(
                        "UPDATE opaque_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL
                         RETURNING client_id, expires_at",
                    )
                    .bind(now)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some((client_id, expires_at)) = revoked else {
                        return Ok(false);
                    };
                    // Every node caches live opaque tokens: the event tells the others.
                    let event = NewSecurityEvent {
                        kind: "token_revoked",
                        subject: id.to_owned(),
                        details: serde_json::json!({"exp": expires_at, "client_id": client_id})
                            .to_string(),
                        at_ms: now * 1000,
                        expires_at,
                    };
                    append_event(&mut tx, &event).await?;
                    tx.commit().await?;
                    Ok(true)
                }

                async fn insert_revoked_jti(&self, e: &RevokedJti) -> StoreResult<()> {
                    let mut tx = self.writer.begin().await?;
                    let n = sqlx::query(
                        "INSERT INTO revoked_jtis (jti, client_id, expires_at, revoked_at) VALUES ($1, $2, $3, $4)
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
                        "SELECT * FROM security_events WHERE seq > $1 ORDER BY seq LIMIT $2",
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
                        sqlx::query_as::<_, RevokedJti>("SELECT * FROM revoked_jtis WHERE expires_at > $1")
                            .bind(now)
                            .fetch_all(&self.pool)
                            .await?,
                    )
                }

                async fn insert_admin_token(&self, t: &AdminTokenRow) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO admin_tokens (id, digest, hint, name, scopes, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
                        sqlx::query_as::<_, AdminTokenRow>("SELECT * FROM admin_tokens WHERE digest = $1")
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
                        "UPDATE admin_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
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
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
                        sqlx::query_as::<_, KeyspaceRow>("SELECT * FROM keyspaces WHERE id = $1 OR name = $2")
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
                        "UPDATE keyspaces SET name = $1, scopes = $2, default_scopes = $3, rate_limit = $4, default_ttl = $5, max_ttl = $6, updated_at = $7
                         WHERE id = $8",
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
                    let n = sqlx::query("DELETE FROM keyspaces WHERE id = $1")
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
                        sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE keyspace_id = $1")
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
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
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
                        sqlx::query_as::<_, ApiKeyRow>("SELECT * FROM api_keys WHERE id = $1")
                            .bind(id)
                            .fetch_optional(&self.pool)
                            .await?,
                    )
                }

                async fn find_api_key(&self, digest: &str) -> StoreResult<Option<ApiKeyRow>> {
                    Ok(sqlx::query_as::<_, ApiKeyRow>(
                        "SELECT * FROM api_keys WHERE digest = $1 OR previous_digest = $2",
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
                        "SELECT * FROM api_keys WHERE ($1 IS NULL OR keyspace_id = $2) AND ($3 IS NULL OR owner = $4) ORDER BY created_at, id",
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
                        "UPDATE api_keys SET name = $1, scopes = $2, meta = $3, remaining = $4, rate_limit = $5, allow_ips = $6, enabled = $7,
                                             expires_at = $8, updated_at = $9
                         WHERE id = $10",
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
                        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
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
                    sqlx::query("DELETE FROM key_usage WHERE key_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    let n = sqlx::query("DELETE FROM api_keys WHERE id = $1")
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
                        sqlx::query_scalar("UPDATE api_keys SET remaining = remaining - 1 WHERE id = $1 AND remaining > 0 RETURNING remaining")
                            .bind(id)
                            .fetch_optional(&self.writer)
                            .await?;
                    if let Some(left) = left {
                        return Ok(UseOutcome::Taken(Some(left)));
                    }
                    let current: Option<Option<i64>> =
                        sqlx::query_scalar("SELECT remaining FROM api_keys WHERE id = $1")
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
                        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)")
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
                        "UPDATE api_keys SET previous_digest = digest, previous_expires_at = $1, digest = $2, hint = $3, updated_at = $4
                         WHERE id = $5 AND revoked_at IS NULL",
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
                            "INSERT INTO key_usage (key_id, bucket_start, outcome, count) VALUES ($1, $2, $3, $4)
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
                        "SELECT (bucket_start / $1) * $1 AS bucket_start, outcome, CAST(SUM(count) AS BIGINT) AS count
                           FROM key_usage
                         WHERE key_id = $2 AND bucket_start >= $3 AND bucket_start < $4
                         GROUP BY (bucket_start / $1) * $1, outcome ORDER BY 1, 2",
                    )
                    .bind(granularity)
                    .bind(key_id)
                    .bind(from)
                    .bind(to)
                    .fetch_all(&self.pool)
                    .await?)
                }

                async fn purge_key_usage(&self, before: i64) -> StoreResult<u64> {
                    Ok(sqlx::query("DELETE FROM key_usage WHERE bucket_start < $1")
                        .bind(before)
                        .execute(&self.writer)
                        .await?
                        .rows_affected())
                }

                async fn upsert_role(&self, r: &RoleRow) -> StoreResult<()> {
                    let mut tx = self.writer.begin().await?;
                    sqlx::query(
                        "INSERT INTO roles (name, scopes, created_at) VALUES ($1, $2, $3)
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
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
                        sqlx::query_as::<_, UserRow>("SELECT * FROM users WHERE id = $1 OR username = $2")
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
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
                        sqlx::query_as::<_, PatRow>("SELECT * FROM personal_access_tokens WHERE digest = $1")
                            .bind(digest)
                            .fetch_optional(&self.pool)
                            .await?,
                    )
                }

                async fn get_pat(&self, id: &str) -> StoreResult<Option<PatRow>> {
                    Ok(
                        sqlx::query_as::<_, PatRow>("SELECT * FROM personal_access_tokens WHERE id = $1")
                            .bind(id)
                            .fetch_optional(&self.pool)
                            .await?,
                    )
                }

                async fn list_pats(&self, user_id: &str) -> StoreResult<Vec<PatRow>> {
                    Ok(sqlx::query_as::<_, PatRow>(
                        "SELECT * FROM personal_access_tokens WHERE user_id = $1 ORDER BY created_at, id",
                    )
                    .bind(user_id)
                    .fetch_all(&self.pool)
                    .await?)
                }

                async fn revoke_pat(&self, id: &str, now: i64) -> StoreResult<bool> {
                    let mut tx = self.writer.begin().await?;
                    let n = sqlx::query(
                        "UPDATE personal_access_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
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
                    let n = sqlx::query("UPDATE personal_access_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
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
                            "UPDATE personal_access_tokens SET last_used_at = $1, last_used_ip = COALESCE($2, last_used_ip)
                             WHERE id = $3 AND (last_used_at IS NULL OR last_used_at <= $4)",
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
                    let a = sqlx::query("DELETE FROM opaque_tokens WHERE expires_at < $1")
                        .bind(before)
                        .execute(&mut *tx)
                        .await?;
                    let b = sqlx::query("DELETE FROM revoked_jtis WHERE expires_at < $1")
                        .bind(before)
                        .execute(&mut *tx)
                        .await?;
                    let c = sqlx::query("DELETE FROM security_events WHERE expires_at < $1")
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
                    for chunk in crate::sql::audit_insert_chunks(&rows) {
                        // The statement text is written once per shape, not per commit: building
                        // it with `QueryBuilder` formatted a separator and a placeholder for
                        // every bind, which cost more than binding the values.
                        let mut q = sqlx::query(crate::sql::audit_insert_sql(chunk.len(), super::AUDIT_BINDS));
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
                             VALUES ($1, $2, $3, 0, $4, FALSE)",
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
                        sqlx::QueryBuilder::<Db>::new("SELECT * FROM audit_events WHERE 1 = 1");
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
                        "SELECT seq, hash FROM audit_events WHERE at_ms < $1
                           AND seq < (SELECT MAX(seq) FROM audit_events)
                         ORDER BY seq DESC LIMIT 1",
                    )
                    .bind(before_ms)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some((seq, hash)) = last else {
                        return Ok(0);
                    };
                    let n = sqlx::query("DELETE FROM audit_events WHERE seq <= $1")
                        .bind(seq)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    sqlx::query(
                        "UPDATE audit_anchor SET seq = $1, hash = $2, pruned_at_ms = $3, seal = $4 WHERE id = 1",
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
            impl WebhookStore for Backend {
                async fn insert_webhook(&self, w: &WebhookRow) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO webhooks (id, url, events, secret_sealed, enabled, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
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
                    Ok(sqlx::query("DELETE FROM webhooks WHERE id = $1")
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
                          WHERE o.delivered_ms IS NULL AND NOT o.failed AND w.enabled AND o.next_attempt_ms <= $1
                          ORDER BY o.next_attempt_ms, o.audit_seq LIMIT $2",
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
                        "UPDATE webhook_outbox SET next_attempt_ms = $1 WHERE id = $2 AND next_attempt_ms = $3 AND delivered_ms IS NULL",
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
                        "INSERT INTO webhook_attempts (outbox_id, attempt, at_ms, status, error, duration_ms) VALUES ($1, $2, $3, $4, $5, $6)",
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
                        "UPDATE webhook_outbox SET attempts = $1, last_status = $2, last_error = $3, next_attempt_ms = $4,
                                delivered_ms = $5, failed = $6 WHERE id = $7",
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
                          WHERE o.webhook_id = $1 ORDER BY a.at_ms DESC, a.attempt DESC LIMIT $2",
                    )
                    .bind(webhook_id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
                }

                async fn upsert_ip_block(&self, b: &IpBlockRow) -> StoreResult<()> {
                    let mut tx = self.writer.begin().await?;
                    sqlx::query(
                        "INSERT INTO ip_blocks (network, reason, created_at, expires_at) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (network) DO UPDATE SET reason = excluded.reason,
                             expires_at = CASE WHEN ip_blocks.expires_at > excluded.expires_at
                                              THEN ip_blocks.expires_at ELSE excluded.expires_at END",
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
                        "SELECT * FROM ip_blocks WHERE expires_at > $1 ORDER BY created_at, network",
                    )
                    .bind(now)
                    .fetch_all(&self.pool)
                    .await?)
                }

                async fn delete_ip_block(&self, network: &str) -> StoreResult<bool> {
                    let mut tx = self.writer.begin().await?;
                    let n = sqlx::query("DELETE FROM ip_blocks WHERE network = $1")
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
                        sqlx::query_as::<_, AuditRow>("SELECT * FROM audit_events WHERE seq = $1")
                            .bind(seq)
                            .fetch_optional(&self.pool)
                            .await?,
                    )
                }
            }

            #[async_trait]
            impl SignInStore for Backend {
                async fn update_user(&self, u: &UserRow) -> StoreResult<bool> {
                    let mut tx = self.writer().begin().await?;
                    let n = sqlx::query(
                        "UPDATE users SET email = $1, roles = $2, enabled = $3, mfa_required = $4, updated_at = $5 WHERE id = $6",
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
                    bump(&mut tx).await?;
                    tx.commit().await?;
                    Ok(n > 0)
                }

                async fn set_password_hash(
                    &self,
                    user_id: &str,
                    hash: Option<&str>,
                    now: i64,
                ) -> StoreResult<bool> {
                    let n = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
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
                        sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                            .bind(user_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    let n = sqlx::query("DELETE FROM users WHERE id = $1")
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    bump(&mut tx).await?;
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
                        "UPDATE users SET totp_secret_sealed = $1, totp_confirmed_at = $2,
                                totp_last_step = CASE WHEN $3 IS NULL THEN NULL ELSE totp_last_step END
                         WHERE id = $4",
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
                        "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $3)",
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
                    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                    for d in digests {
                        sqlx::query("INSERT INTO recovery_codes (user_id, digest) VALUES ($1, $2)")
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
                        "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND digest = $3 AND used_at IS NULL",
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
                        "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
                    )
                    .bind(user_id)
                    .fetch_one(self.pool())
                    .await?)
                }

                async fn insert_session(&self, s: &SessionRow) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO sessions (id, digest, user_id, amr, auth_time, created_at, last_seen_at, expires_at, ended_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
                        sqlx::query_as::<_, SessionRow>("SELECT * FROM sessions WHERE digest = $1")
                            .bind(digest)
                            .fetch_optional(self.pool())
                            .await?,
                    )
                }

                async fn get_session(&self, id: &str) -> StoreResult<Option<SessionRow>> {
                    Ok(
                        sqlx::query_as::<_, SessionRow>("SELECT * FROM sessions WHERE id = $1")
                            .bind(id)
                            .fetch_optional(self.pool())
                            .await?,
                    )
                }

                async fn touch_session(&self, id: &str, now: i64) -> StoreResult<()> {
                    sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $3")
                        .bind(now)
                        .bind(id)
                        .bind(now)
                        .execute(self.writer())
                        .await?;
                    Ok(())
                }

                async fn update_session_auth(&self, id: &str, amr: &str, auth_time: i64) -> StoreResult<()> {
                    sqlx::query("UPDATE sessions SET amr = $1, auth_time = $2 WHERE id = $3")
                        .bind(amr)
                        .bind(auth_time)
                        .bind(id)
                        .execute(self.writer())
                        .await?;
                    Ok(())
                }

                async fn end_session(&self, id: &str, now: i64) -> StoreResult<bool> {
                    let n = sqlx::query("UPDATE sessions SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL")
                        .bind(now)
                        .bind(id)
                        .execute(self.writer())
                        .await?
                        .rows_affected();
                    Ok(n > 0)
                }

                async fn end_user_sessions(&self, user_id: &str, now: i64) -> StoreResult<u64> {
                    Ok(
                        sqlx::query("UPDATE sessions SET ended_at = $1 WHERE user_id = $2 AND ended_at IS NULL")
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
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
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
                        sqlx::query_as::<_, CodeRow>("SELECT * FROM authorization_codes WHERE digest = $1")
                            .bind(digest)
                            .fetch_optional(self.pool())
                            .await?,
                    )
                }

                async fn use_code(&self, id: &str, now: i64) -> StoreResult<bool> {
                    let n = sqlx::query(
                        "UPDATE authorization_codes SET used_at = $1 WHERE id = $2 AND used_at IS NULL",
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
                         FROM refresh_tokens r LEFT JOIN users u ON u.id = r.user_id WHERE r.digest = $1",
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
                        sqlx::query_as::<_, RefreshRow>("SELECT * FROM refresh_tokens WHERE digest = $1")
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
                                    "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND enabled)
                                        AND NOT EXISTS (SELECT 1 FROM sessions WHERE id = $2 AND ended_at IS NOT NULL)",
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
                                    "UPDATE refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL",
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
                             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
                        "UPDATE refresh_tokens SET revoked_at = $1 WHERE {col} = $2 AND revoked_at IS NULL"
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
                        "SELECT * FROM grant_tokens WHERE {col} = $1 AND expires_at > $2"
                    ))
                    .bind(v)
                    .bind(now)
                    .fetch_all(self.pool())
                    .await?)
                }

                async fn get_consent(&self, user_id: &str, client_id: &str) -> StoreResult<Option<ConsentRow>> {
                    Ok(sqlx::query_as::<_, ConsentRow>(
                        "SELECT * FROM consents WHERE user_id = $1 AND client_id = $2",
                    )
                    .bind(user_id)
                    .bind(client_id)
                    .fetch_optional(self.pool())
                    .await?)
                }

                async fn upsert_consent(&self, c: &ConsentRow) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES ($1, $2, $3, $4)
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
                        "SELECT * FROM consents WHERE user_id = $1 ORDER BY granted_at, client_id",
                    )
                    .bind(user_id)
                    .fetch_all(self.pool())
                    .await?)
                }

                async fn delete_consent(&self, user_id: &str, client_id: &str) -> StoreResult<bool> {
                    Ok(
                        sqlx::query("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
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
                        "DELETE FROM authorization_codes WHERE expires_at < $1",
                        "DELETE FROM sessions WHERE expires_at < $1",
                        "DELETE FROM refresh_tokens WHERE family_expires_at < $1",
                        "DELETE FROM grant_tokens WHERE expires_at < $1",
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

            /// Appends one feed event inside `tx`: bumps the head, then inserts at the new `seq`.
            async fn append_event(
                tx: &mut sqlx::Transaction<'_, Db>,
                e: &NewSecurityEvent,
            ) -> StoreResult<i64> {
                let (seq,): (i64,) =
                    sqlx::query_as("UPDATE security_event_head SET seq = seq + 1 WHERE id = 1 RETURNING seq")
                        .fetch_one(&mut **tx)
                        .await?;
                sqlx::query(
                    "INSERT INTO security_events (seq, at_ms, kind, subject, details, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
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

            async fn insert_refresh_in<'e, E>(ex: E, r: &RefreshRow) -> StoreResult<()>
            where
                E: sqlx::Executor<'e, Database = Db>,
            {
                sqlx::query(
                    "INSERT INTO refresh_tokens (id, digest, family_id, client_id, user_id, session_id, scope, auth_time, amr,
                                                 issued_at, expires_at, family_expires_at, used_at, revoked_at, jkt)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
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

        }
    };
}
pub(crate) use sql_store;

/// How a backend writes bind placeholders in the audit INSERT, its one statement with
/// hundreds of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Binds {
    /// `?`: positional. SQLite keeps named and numbered parameters (`$N`, `?N`) in a
    /// list it scans for every bind sqlx makes by name, so 896 of them cost a scan of
    /// the list each: measured, 46 → 62 µs of server CPU per `client_credentials`
    /// token. Anonymous `?` are bound by position with no list at all.
    Positional,
    /// `$1`, `$2`, …: PostgreSQL's only form.
    Numbered,
}

/// The INSERT of `rows` audit records (one of [`audit_insert_chunks`]' sizes: 1, 2,
/// 4, … 64) with `binds` placeholders, built on first use and kept.
pub(crate) fn audit_insert_sql(rows: usize, binds: Binds) -> &'static str {
    static SQL: std::sync::OnceLock<[Vec<String>; 2]> = std::sync::OnceLock::new();
    let build = |binds: Binds| -> Vec<String> {
        (0..7)
            .map(|k| {
                let rows: Vec<String> = (0..1usize << k)
                    .map(|r| {
                        let row: Vec<String> = (1..=14)
                            .map(|c| match binds {
                                Binds::Positional => "?".to_owned(),
                                Binds::Numbered => format!("${}", r * 14 + c),
                            })
                            .collect();
                        format!("({})", row.join(", "))
                    })
                    .collect();
                format!(
                    "INSERT INTO audit_events (seq, at_ms, kind, outcome, actor, subject, \
                     credential_id, client_id, ip, user_agent, reason, details, prev_hash, hash) \
                     VALUES {}",
                    rows.join(", ")
                )
            })
            .collect()
    };
    let all = SQL.get_or_init(|| [build(Binds::Positional), build(Binds::Numbered)]);
    debug_assert!(rows.is_power_of_two() && rows <= 64, "{rows} rows");
    &all[usize::from(binds == Binds::Numbered)][(rows.trailing_zeros() as usize).min(6)]
}

/// The row counts of one batch's audit INSERTs: as many 64s as fit, then the
/// remainder by its binary digits (32, 16, 8, 4, 2, 1), so every statement has one of
/// seven shapes.
pub(crate) fn audit_insert_chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
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
    use super::{audit_insert_chunks, audit_insert_sql, Binds};

    #[test]
    fn each_audit_insert_shape_has_fourteen_binds_per_row() {
        for k in 0..7 {
            let rows = 1usize << k;
            let sql = audit_insert_sql(rows, Binds::Positional);
            assert_eq!(sql.matches('?').count(), 14 * rows, "{rows} rows");
            assert_eq!(sql.matches("(?,").count(), rows, "{rows} rows");
            assert!(!sql.contains('$'), "{rows} rows: anonymous binds only");
            assert!(sql.starts_with("INSERT INTO audit_events (seq, at_ms,"));
            assert!(sql.ends_with("?)"));

            let sql = audit_insert_sql(rows, Binds::Numbered);
            assert_eq!(sql.matches('$').count(), 14 * rows, "{rows} rows");
            assert_eq!(sql.matches("($").count(), rows, "{rows} rows");
            assert!(!sql.contains('?'), "{rows} rows: numbered binds only");
            // Every placeholder once, in order: $1 … $(14 × rows).
            let numbers: Vec<usize> = sql
                .split('$')
                .skip(1)
                .map(|p| {
                    let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
                    digits.parse().expect("placeholder number")
                })
                .collect();
            assert_eq!(numbers, (1..=14 * rows).collect::<Vec<_>>(), "{rows} rows");
            let same_columns = |s: &str| s.split(" VALUES ").next().map(str::to_owned);
            assert_eq!(
                same_columns(sql),
                same_columns(audit_insert_sql(rows, Binds::Positional))
            );
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
