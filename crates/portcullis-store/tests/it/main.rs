//! Store contract tests: one body per behaviour, run on every backend available.
//! SQLite always runs (a temp file); PostgreSQL needs `PORTCULLIS_TEST_DATABASE_URL`.

mod contract;
mod migrations;
mod postgres_nodes;
mod postgres_schema;

use portcullis_store::{PgStore, SqliteStore};
use portcullis_testkit::PgSchema;

/// An audit record with values derived from `seq` (the store assigns `seq` and the
/// links itself on append).
pub(crate) fn audit_row(
    seq: i64,
    kind: &str,
    credential: Option<&str>,
) -> portcullis_store::AuditRow {
    portcullis_store::AuditRow {
        seq,
        at_ms: 1_700_000_000_000 + seq,
        kind: kind.to_owned(),
        outcome: "success".to_owned(),
        actor: Some("cli".to_owned()),
        subject: Some(format!("subject-{seq}")),
        credential_id: credential.map(str::to_owned),
        client_id: None,
        ip: Some("192.0.2.1".to_owned()),
        user_agent: None,
        reason: (seq == 2).then(|| "why".to_owned()),
        details: format!("{{\"n\":{seq}}}"),
        prev_hash: format!("{:064x}", seq - 1),
        hash: format!("{seq:064x}"),
    }
}

/// A store on a fresh SQLite file; the directory guard must outlive the store.
pub(crate) async fn sqlite() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    (SqliteStore::connect(&url, 4).await.expect("connect"), dir)
}

/// A store on a fresh PostgreSQL schema of `PORTCULLIS_TEST_DATABASE_URL`, or `None`
/// (with a `skipped:` line on stderr) when the variable is unset. `.ci/run` sets it,
/// so there a missing or unreachable server fails the test instead.
pub(crate) async fn postgres(test: &str) -> Option<Pg> {
    let schema = PgSchema::create(test).await?;
    let store = PgStore::connect_with(schema.options(), 8)
        .await
        .expect("connect and migrate");
    Some(Pg { store, schema })
}

/// A PostgreSQL store on its own schema; [`Pg::drop`] removes the schema.
pub(crate) struct Pg {
    pub(crate) store: PgStore,
    schema: PgSchema,
}

impl Pg {
    /// Another store on the same schema: a second node of one cluster.
    pub(crate) async fn another_node(&self) -> PgStore {
        PgStore::connect_with(self.schema.options(), 8)
            .await
            .expect("second node")
    }

    /// Closes the store and drops its schema (left behind when the test panicked,
    /// for a look at what it held).
    pub(crate) async fn drop(self) {
        self.store.pool().close().await;
        self.schema.drop().await;
    }
}

/// Runs one test body against each backend: `NAME::sqlite` always, `NAME::postgres`
/// when `PORTCULLIS_TEST_DATABASE_URL` is set (otherwise it prints `skipped:` and
/// passes). The body sees `store: &dyn Store`.
#[macro_export]
macro_rules! store_test {
    ($name:ident, |$store:ident| $body:block) => {
        mod $name {
            #[allow(
                unused_imports,
                reason = "a body may use none of the contract module's helpers"
            )]
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                let (owned, _dir) = $crate::sqlite().await;
                let $store: &dyn portcullis_store::Store = &owned;
                $body
            }

            #[tokio::test]
            async fn postgres() {
                let Some(pg) = $crate::postgres(stringify!($name)).await else {
                    return;
                };
                {
                    let $store: &dyn portcullis_store::Store = &pg.store;
                    $body
                }
                pg.drop().await;
            }
        }
    };
}
