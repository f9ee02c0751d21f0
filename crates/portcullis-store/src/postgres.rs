//! The PostgreSQL backend: the same statements as SQLite (see `sql`), for several
//! Portcullis nodes on one database.
//!
//! - **Migrations** are `migrations/sqlite` mapped by [`crate::postgres_migration_sql`]
//!   (64-bit integers), embedded at build time like SQLite's. sqlx takes a
//!   PostgreSQL advisory lock around them, so nodes starting together migrate once.
//! - **Durability**: PostgreSQL's default `synchronous_commit = on`; a commit is in
//!   the WAL on disk before sqlx returns, as with SQLite's `synchronous = FULL`.
//! - **Concurrency**: every conditional update the single-use rules rely on (a code,
//!   a refresh token, a TOTP step, an API key's remaining uses, a webhook lease) is
//!   one `UPDATE … WHERE <still unused>`, which PostgreSQL's row locks make atomic
//!   under its default READ COMMITTED isolation; the audit chain and the security
//!   feed take a row lock on their head (`audit_anchor`, `security_event_head`)
//!   before reading it, so concurrent writers queue instead of forking the chain.
//!   Reads and writes share one pool (PostgreSQL has no single-writer rule).
//! - **Periodic jobs** take a session advisory lock ([`crate::JobLock`]) so one node
//!   at a time runs each.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::{JobLock, StoreError, StoreResult};

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The same pool as `pool`: the shared statements name a pool for writes.
    writer: PgPool,
    /// For the job locks' own sessions.
    options: PgConnectOptions,
}

impl PgStore {
    /// Connects to `url` (`postgres://…`) and applies migrations.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        Self::connect_with(PgConnectOptions::from_str(url)?, max_connections).await
    }

    /// Connects with `options` (for example a `search_path` per test schema) and
    /// applies migrations.
    pub async fn connect_with(
        options: PgConnectOptions,
        max_connections: u32,
    ) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await?;
        let store = Self {
            writer: pool.clone(),
            pool,
            options,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations (idempotent; under sqlx's advisory lock).
    pub async fn migrate(&self) -> StoreResult<()> {
        Migrator::new(PgMigrations)
            .await
            .map_err(StoreError::Migrate)?
            .run(&self.pool)
            .await
            .map_err(StoreError::Migrate)
    }

    /// The pool, for tests and integrity checks.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The pool writes go through (the same pool: see the struct).
    pub(crate) fn writer(&self) -> &PgPool {
        &self.writer
    }
}

/// The embedded SQLite migrations, each mapped for PostgreSQL. The version and
/// description stay the same, so both databases list the same history.
#[derive(Debug)]
struct PgMigrations;

impl MigrationSource<'static> for PgMigrations {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        Box::pin(async move {
            Ok(sqlx::migrate!("./migrations/sqlite")
                .iter()
                .map(|m| {
                    Migration::new(
                        m.version,
                        m.description.clone(),
                        m.migration_type,
                        Cow::Owned(crate::postgres_migration_sql(&m.sql)),
                        m.no_tx,
                    )
                })
                .collect())
        })
    }
}

/// The advisory lock's two keys: a constant for Portcullis ("PC") and the job's name
/// hashed with the schema, so Portcullis installations in two schemas of one database
/// do not wait for each other.
async fn lock_job(store: &PgStore, job: &str, wait: bool) -> StoreResult<Option<JobLock>> {
    let mut conn = PgConnection::connect_with(&store.options).await?;
    let key = "hashtext(current_schema() || ':' || $1)";
    if wait {
        sqlx::query(&format!("SELECT pg_advisory_lock(20547, {key})::text"))
            .bind(job)
            .execute(&mut conn)
            .await?;
    } else {
        let took: bool = sqlx::query_scalar(&format!("SELECT pg_try_advisory_lock(20547, {key})"))
            .bind(job)
            .fetch_one(&mut conn)
            .await?;
        if !took {
            if let Err(e) = conn.close().await {
                tracing::debug!(error = %e, "closing an unneeded lock session");
            }
            return Ok(None);
        }
    }
    Ok(Some(JobLock::session(conn)))
}

/// How the audit INSERT writes its placeholders (see [`crate::sql::Binds`]).
const AUDIT_BINDS: crate::sql::Binds = crate::sql::Binds::Numbered;

/// The backend [`crate::sql::sql_store!`] implements the store traits for.
type Backend = PgStore;
/// Its database.
type Db = sqlx::Postgres;

crate::sql::sql_store!();
