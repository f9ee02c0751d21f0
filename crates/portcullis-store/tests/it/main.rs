//! Store contract tests: one body per behaviour, run on every backend available.
//! SQLite always runs (a temp file); PostgreSQL needs `PORTCULLIS_TEST_DATABASE_URL`.

mod contract;
mod migrations;
mod postgres_schema;

use portcullis_store::SqliteStore;

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
