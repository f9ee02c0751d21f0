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

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::{StoreError, StoreResult};

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

/// One node per SQLite database: every job lock is granted at once.
async fn lock_job(_: &SqliteStore, _job: &str, _wait: bool) -> StoreResult<Option<crate::JobLock>> {
    Ok(Some(crate::JobLock::local()))
}

/// How the audit INSERT writes its placeholders (see [`crate::sql::Binds`]).
const AUDIT_BINDS: crate::sql::Binds = crate::sql::Binds::Positional;

/// The backend [`crate::sql::sql_store!`] implements the store traits for.
type Backend = SqliteStore;
/// Its database.
type Db = sqlx::Sqlite;

crate::sql::sql_store!();
