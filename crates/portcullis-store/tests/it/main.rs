//! Store contract tests: one body per behaviour, run on every backend available.
//! SQLite always runs (a temp file); PostgreSQL needs `PORTCULLIS_TEST_DATABASE_URL`.

mod contract;
mod migrations;
mod postgres_schema;

use portcullis_store::SqliteStore;

/// A store on a fresh SQLite file; the directory guard must outlive the store.
pub(crate) async fn sqlite() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    (SqliteStore::connect(&url, 4).await.expect("connect"), dir)
}

/// Runs one test body against each backend. Only SQLite has a store so far: the
/// PostgreSQL store arrives with the cluster issue, and `postgres_schema` already
/// proves the migrations are PostgreSQL-compatible.
#[macro_export]
macro_rules! store_test {
    ($name:ident, |$store:ident| $body:block) => {
        #[tokio::test]
        async fn $name() {
            let ($store, _dir) = $crate::sqlite().await;
            let $store: &dyn portcullis_store::Store = &$store;
            $body
        }
    };
}
