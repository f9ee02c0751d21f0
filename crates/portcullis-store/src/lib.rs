//! Portcullis persistence.
//!
//! - [`Store`]: the repository trait the service layer talks to (`Arc<dyn Store>`);
//!   the backend is chosen once, at connect time, never per method.
//! - [`rows`]: plain records as stored. No policy lives here: the service decides,
//!   the store remembers.
//! - [`signin`]: sessions, codes, refresh-token families, consent, TOTP state.
//! - [`sqlite`]: the embedded default (WAL, `synchronous=FULL`, so an acknowledged
//!   write survives `kill -9` and power loss alike).
//! - [`postgres`]: the same statements on PostgreSQL, for several nodes on one
//!   database.
//! - [`StoreError`]: every backend error converted once.
//!
//! Migrations live in `migrations/sqlite` in SQL that PostgreSQL also accepts once
//! [`postgres_migration_sql`] has mapped SQLite's 64-bit `INTEGER` to `BIGINT`; the
//! statements (`sql`) are one text for both backends.
#![forbid(unsafe_code)]

use std::fmt::Debug;

use async_trait::async_trait;

pub mod postgres;
pub mod rows;
pub mod signin;
mod sql;
pub mod sqlite;

pub use postgres::PgStore;
pub use rows::{
    AdminTokenRow, ApiKeyRow, AttemptResult, AttemptRow, AuditAnchorRow, AuditFilter, AuditRow,
    ClientRow, DueDelivery, IpBlockRow, KeyspaceRow, NewSecurityEvent, OpaqueTokenRow, OutboxDraft,
    PatRow, RevokedJti, RoleRow, SecurityEventRow, SigningKeyRow, SigningKeyState, UsageRow,
    UseOutcome, UserRow, WebhookRow,
};
pub use signin::{
    CodeRow, ConsentRow, GrantScope, GrantTokenRow, GrantWrite, RefreshRow, RefreshWrite,
    SessionRow, SignInStore,
};
pub use sqlite::SqliteStore;

/// A migration of `migrations/sqlite` as PostgreSQL must run it. The files are
/// portable SQL but for one word: SQLite's `INTEGER` is 64 bits (and an `INTEGER
/// PRIMARY KEY` column is the table's own rowid: no second B-tree, no separate
/// index; only that exact type name does it), while PostgreSQL's `INTEGER` is 32
/// bits. Every `INTEGER` column becomes `BIGINT`, the same range on both, which is
/// also what the rows decode (`i64`).
pub fn postgres_migration_sql(sqlite_sql: &str) -> String {
    let mut out = String::with_capacity(sqlite_sql.len() + 16);
    let mut rest = sqlite_sql;
    while let Some(at) = rest.find("INTEGER") {
        let (head, tail) = rest.split_at(at);
        let word_before = head.chars().next_back().is_some_and(is_word_char);
        let word_after = tail["INTEGER".len()..]
            .chars()
            .next()
            .is_some_and(is_word_char);
        out.push_str(head);
        out.push_str(if word_before || word_after {
            "INTEGER"
        } else {
            "BIGINT"
        });
        rest = &tail["INTEGER".len()..];
    }
    out.push_str(rest);
    out
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// A periodic job's lock (see [`Store::lock_job`]). On PostgreSQL it is a session
/// advisory lock on a connection of its own (not one of the pool's, so the job's own
/// queries never wait for it); releasing it, or dropping the guard, ends that
/// session and so frees the lock, also when the job failed half-way.
#[derive(Debug)]
pub struct JobLock {
    conn: Option<sqlx::PgConnection>,
}

impl JobLock {
    /// A lock that nothing else contends for (SQLite: one node).
    pub(crate) fn local() -> Self {
        Self { conn: None }
    }

    /// Holds `conn`, whose session took the advisory lock.
    pub(crate) fn session(conn: sqlx::PgConnection) -> Self {
        Self { conn: Some(conn) }
    }

    /// Frees the lock (closes its session cleanly).
    pub async fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            use sqlx::Connection;
            if let Err(e) = conn.close().await {
                tracing::warn!(error = %e, "closing a job lock's session failed; the server frees the lock when it notices");
            }
        }
    }
}

/// Storage failures, converted once from the backend's errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The row asked for does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness or check constraint refused the write.
    #[error("conflict on {constraint}")]
    Conflict {
        /// What was violated, as the database names it.
        constraint: String,
    },
    /// The database could not be reached or timed out.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Any other backend failure.
    #[error("database error")]
    Backend(#[source] sqlx::Error),
    /// Migrations failed to apply.
    #[error("database migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Database(ref db)
                if db.is_unique_violation() || db.is_check_violation() =>
            {
                Self::Conflict {
                    constraint: db.constraint().unwrap_or(db.message()).to_owned(),
                }
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable(e)
            }
            other => Self::Backend(other),
        }
    }
}

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// Everything the service layer persists.
#[async_trait]
pub trait Store: WebhookStore + SignInStore + Send + Sync + Debug + 'static {
    /// Cheap round trip, for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    /// Takes the lock of periodic job `job` (key rotation, say) for as long as the
    /// returned guard lives, so that nodes sharing one database run the job one at a
    /// time. With `wait` it blocks until the lock is free; without, `None` means
    /// another node holds it. SQLite serves one node: granted at once.
    async fn lock_job(&self, job: &str, wait: bool) -> StoreResult<Option<JobLock>>;

    /// Adds a signing key.
    async fn insert_signing_key(&self, key: &SigningKeyRow) -> StoreResult<()>;
    /// All signing keys, oldest first.
    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRow>>;
    /// Atomically makes `next` the active key for its algorithm and retires whatever was active.
    async fn activate_signing_key(&self, next_kid: &str, now: i64) -> StoreResult<()>;
    /// Deletes a (retired) key.
    async fn delete_signing_key(&self, kid: &str) -> StoreResult<()>;

    /// Adds a client.
    async fn insert_client(&self, client: &ClientRow) -> StoreResult<()>;
    /// One client by id.
    async fn get_client(&self, id: &str) -> StoreResult<Option<ClientRow>>;
    /// All clients, oldest first.
    async fn list_clients(&self) -> StoreResult<Vec<ClientRow>>;
    /// Deletes a client and every opaque token issued to it; false when it did not exist.
    async fn delete_client(&self, id: &str) -> StoreResult<bool>;
    /// Replaces a client's secret digest; false when the client does not exist.
    async fn set_client_secret(
        &self,
        id: &str,
        digest: &str,
        hint: &str,
        now: i64,
    ) -> StoreResult<bool>;

    /// The change counter: bumped by every write to clients (in the same transaction).
    async fn change_seq(&self) -> StoreResult<i64>;

    /// Records an issued opaque token (its digest, never the token).
    async fn insert_opaque_token(&self, token: &OpaqueTokenRow) -> StoreResult<()>;
    /// Looks an opaque token up by digest.
    async fn find_opaque_token(&self, digest: &str) -> StoreResult<Option<OpaqueTokenRow>>;
    /// Marks an opaque token revoked and, in the same transaction, appends its
    /// `token_revoked` event (subject: the token's id), so every node drops the token
    /// from its cache; false (and no event) when it was unknown or already revoked.
    async fn revoke_opaque_token(&self, id: &str, now: i64) -> StoreResult<bool>;

    /// Puts a JWT's `jti` on the deny list until its expiry (idempotent) and, in the
    /// same transaction, appends its `token_revoked` event to the security feed.
    async fn insert_revoked_jti(&self, entry: &RevokedJti) -> StoreResult<()>;
    /// Appends an event to the security feed; returns its `seq`.
    async fn append_security_event(&self, e: &NewSecurityEvent) -> StoreResult<i64>;
    /// Feed events after `after` (exclusive), oldest first, at most `limit`.
    async fn security_events_after(
        &self,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<SecurityEventRow>>;
    /// The newest `seq` assigned (0 before any event).
    async fn security_event_head(&self) -> StoreResult<i64>;
    /// Deny-listed `jti`s that have not expired at `now`.
    async fn list_revoked_jtis(&self, now: i64) -> StoreResult<Vec<RevokedJti>>;

    /// Adds an admin token.
    async fn insert_admin_token(&self, t: &AdminTokenRow) -> StoreResult<()>;
    /// An admin token by digest.
    async fn find_admin_token(&self, digest: &str) -> StoreResult<Option<AdminTokenRow>>;
    /// All admin tokens.
    async fn list_admin_tokens(&self) -> StoreResult<Vec<AdminTokenRow>>;
    /// Revokes an admin token (bumps the change counter); false when unknown or already revoked.
    async fn revoke_admin_token(&self, id: &str, now: i64) -> StoreResult<bool>;

    /// Adds a keyspace.
    async fn insert_keyspace(&self, k: &KeyspaceRow) -> StoreResult<()>;
    /// A keyspace by id or by name.
    async fn get_keyspace(&self, id_or_name: &str) -> StoreResult<Option<KeyspaceRow>>;
    /// All keyspaces.
    async fn list_keyspaces(&self) -> StoreResult<Vec<KeyspaceRow>>;
    /// Replaces a keyspace's settings (not its prefix); false when unknown.
    async fn update_keyspace(&self, k: &KeyspaceRow) -> StoreResult<bool>;
    /// Deletes a keyspace that has no keys; false when unknown.
    async fn delete_keyspace(&self, id: &str) -> StoreResult<bool>;
    /// Number of keys in a keyspace.
    async fn count_keys(&self, keyspace_id: &str) -> StoreResult<i64>;

    /// Adds an API key.
    async fn insert_api_key(&self, k: &ApiKeyRow) -> StoreResult<()>;
    /// An API key by id.
    async fn get_api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRow>>;
    /// An API key by digest (the verification lookup).
    async fn find_api_key(&self, digest: &str) -> StoreResult<Option<ApiKeyRow>>;
    /// API keys, optionally of one keyspace and/or owner, oldest first.
    async fn list_api_keys(
        &self,
        keyspace_id: Option<&str>,
        owner: Option<&str>,
    ) -> StoreResult<Vec<ApiKeyRow>>;
    /// Replaces a key's mutable fields (scopes, meta, limits, enabled, name); false when unknown.
    async fn update_api_key(&self, k: &ApiKeyRow) -> StoreResult<bool>;
    /// Revokes a key; false when unknown or already revoked.
    async fn revoke_api_key(&self, id: &str, now: i64) -> StoreResult<bool>;
    /// Deletes a key and its usage counts (bumps the change counter); false when unknown.
    async fn delete_api_key(&self, id: &str) -> StoreResult<bool>;
    /// Takes one use of a quota-limited key atomically (exact under concurrency).
    async fn take_api_key_use(&self, id: &str) -> StoreResult<UseOutcome>;
    /// Records last use times in one batch.
    async fn touch_api_keys(&self, last_used: &[(String, i64)]) -> StoreResult<()>;

    /// Gives a key a new secret digest; the old one stays valid until `previous_expires_at`.
    async fn roll_api_key(
        &self,
        id: &str,
        digest: &str,
        hint: &str,
        previous_expires_at: i64,
        now: i64,
    ) -> StoreResult<bool>;
    /// Adds verification counts: (key id, minute bucket start, outcome, count).
    async fn add_key_usage(&self, rows: &[(String, i64, String, i64)]) -> StoreResult<()>;
    /// Counts of one key between `from` and `to` (seconds), summed into buckets of `granularity` seconds.
    async fn key_usage(
        &self,
        key_id: &str,
        from: i64,
        to: i64,
        granularity: i64,
    ) -> StoreResult<Vec<UsageRow>>;
    /// Deletes usage buckets older than `before`.
    async fn purge_key_usage(&self, before: i64) -> StoreResult<u64>;

    /// Adds or replaces a role.
    async fn upsert_role(&self, r: &RoleRow) -> StoreResult<()>;
    /// All roles.
    async fn list_roles(&self) -> StoreResult<Vec<RoleRow>>;
    /// Adds a user.
    async fn insert_user(&self, u: &UserRow) -> StoreResult<()>;
    /// A user by id or username.
    async fn get_user(&self, id_or_username: &str) -> StoreResult<Option<UserRow>>;
    /// All users.
    async fn list_users(&self) -> StoreResult<Vec<UserRow>>;
    /// Adds a personal access token.
    async fn insert_pat(&self, t: &PatRow) -> StoreResult<()>;
    /// A personal access token by digest.
    async fn find_pat(&self, digest: &str) -> StoreResult<Option<PatRow>>;
    /// A personal access token by id.
    async fn get_pat(&self, id: &str) -> StoreResult<Option<PatRow>>;
    /// A user's personal access tokens.
    async fn list_pats(&self, user_id: &str) -> StoreResult<Vec<PatRow>>;
    /// Revokes one token (bumps the change counter); false when unknown or already revoked.
    async fn revoke_pat(&self, id: &str, now: i64) -> StoreResult<bool>;
    /// Revokes every live token of a user in one transaction; returns how many.
    async fn revoke_user_pats(&self, user_id: &str, now: i64) -> StoreResult<u64>;
    /// Records last use times (and addresses, when known) of personal access tokens in one batch.
    async fn touch_pats(&self, last_used: &[(String, i64, Option<String>)]) -> StoreResult<()>;

    /// Deletes tokens and deny-list entries that expired before `before`; returns rows removed.
    async fn purge_expired(&self, before: i64) -> StoreResult<u64>;

    /// Appends audit records in one transaction (group commit). The store assigns
    /// `seq` and `prev_hash` from the chain head under a write lock and asks `link`
    /// for each record's `hash`; the fields of `rows` other than those are kept.
    /// `outbox` entries (webhook deliveries of some of these records) are written
    /// in the same transaction.
    async fn append_audit(
        &self,
        rows: Vec<AuditRow>,
        outbox: &[OutboxDraft],
        link: &AuditLinker,
    ) -> StoreResult<Vec<i64>>;
    /// Audit records matching `filter`.
    async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditRow>>;
    /// The verification anchor.
    async fn audit_anchor(&self) -> StoreResult<AuditAnchorRow>;
    /// Deletes records older than `before_ms`, moving the anchor to the last one
    /// deleted, sealed by `seal(seq, hash, pruned_at_ms)`, in one transaction.
    async fn prune_audit(
        &self,
        before_ms: i64,
        now_ms: i64,
        seal: &AuditSealer,
    ) -> StoreResult<u64>;
}

/// Webhooks and their durable outbox.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Adds a subscription.
    async fn insert_webhook(&self, w: &WebhookRow) -> StoreResult<()>;
    /// All subscriptions.
    async fn list_webhooks(&self) -> StoreResult<Vec<WebhookRow>>;
    /// Deletes one (and its pending deliveries); false when unknown.
    async fn delete_webhook(&self, id: &str) -> StoreResult<bool>;
    /// Deliveries due at `now_ms` (enabled subscriptions, not delivered, not failed).
    async fn due_deliveries(&self, now_ms: i64, limit: i64) -> StoreResult<Vec<DueDelivery>>;
    /// Claims a due delivery until `lease_until_ms`; false when another worker has it.
    async fn claim_delivery(&self, id: &str, due_ms: i64, lease_until_ms: i64)
        -> StoreResult<bool>;
    /// Records an attempt and its consequence.
    async fn record_attempt(&self, a: &AttemptResult) -> StoreResult<()>;
    /// The latest attempts of a subscription, newest first.
    async fn list_attempts(&self, webhook_id: &str, limit: i64) -> StoreResult<Vec<AttemptRow>>;
    /// One audit record by seq.
    async fn audit_record(&self, seq: i64) -> StoreResult<Option<AuditRow>>;

    /// Adds or extends a temporary deny (bumps the change counter).
    async fn upsert_ip_block(&self, b: &IpBlockRow) -> StoreResult<()>;
    /// Denies still in force at `now`.
    async fn list_ip_blocks(&self, now: i64) -> StoreResult<Vec<IpBlockRow>>;
    /// Lifts a deny (bumps the change counter); false when unknown.
    async fn delete_ip_block(&self, network: &str) -> StoreResult<bool>;
}

/// Computes a record's link from its `prev_hash` and content.
pub type AuditLinker = dyn Fn(&AuditRow) -> String + Send + Sync;
/// Seals an anchor: (seq, hash, pruned_at_ms) → seal.
pub type AuditSealer = dyn Fn(i64, &str, i64) -> String + Send + Sync;

#[cfg(test)]
mod tests {
    use super::postgres_migration_sql;

    /// The mapping is a plain text replacement, so an integer column written in
    /// another case would reach PostgreSQL as a 32-bit `integer`: none may be left.
    #[test]
    fn every_integer_column_of_the_migrations_reaches_postgres_as_bigint() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
        let mut read = 0;
        for entry in std::fs::read_dir(dir).expect("migrations") {
            let path = entry.expect("entry").path();
            let sql = std::fs::read_to_string(&path).expect("read");
            let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
            let pg = words(&postgres_migration_sql(&sql)).to_ascii_uppercase();
            assert!(
                !pg.contains("INTEGER PRIMARY KEY")
                    && !pg.contains(" INTEGER NOT NULL")
                    && !pg.contains(" INTEGER,"),
                "{}: an integer column the PostgreSQL mapping misses",
                path.display()
            );
            read += 1;
        }
        assert!(read >= 13, "{read} migrations read");
        assert_eq!(
            postgres_migration_sql(
                "seq INTEGER PRIMARY KEY,\nn INTEGER NOT NULL, n_INTEGER TEXT, INTEGERS"
            ),
            "seq BIGINT PRIMARY KEY,\nn BIGINT NOT NULL, n_INTEGER TEXT, INTEGERS"
        );
    }
}
