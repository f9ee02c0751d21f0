//! Migrations that rebuild a table keep what it held.

use portcullis_store::{AuditFilter, AuditRow, SqliteStore, Store, WebhookStore};
use sqlx::sqlite::SqlitePoolOptions;

use crate::audit_row as row;

async fn index_names(pool: &sqlx::SqlitePool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_events' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .expect("indexes")
}

/// 0013 turns `audit_events.seq` into the table's rowid: a database written before
/// it keeps every record byte for byte, loses the separate index on `seq`, keeps
/// the two others, and the next append continues the chain from the old head.
#[tokio::test]
async fn the_audit_table_rebuilt_on_its_rowid_keeps_every_record_and_the_chain_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    let old: Vec<AuditRow> = vec![
        row(1, "client.created", None),
        row(2, "token.revoked", Some("tok-2")),
        row(3, "apikey.created", Some("key-3")),
    ];
    {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .expect("open");
        let mut before = sqlx::migrate!("./migrations/sqlite");
        let all = before.migrations.to_vec();
        before.migrations = all
            .into_iter()
            .filter(|m| m.version < 13)
            .collect::<Vec<_>>()
            .into();
        assert_eq!(before.migrations.len(), 12);
        before.run(&pool).await.expect("migrations 1-12");
        for r in &old {
            sqlx::query(
                "INSERT INTO audit_events (seq, at_ms, kind, outcome, actor, subject, credential_id, client_id, \
                 ip, user_agent, reason, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
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
            .bind(&r.hash)
            .execute(&pool)
            .await
            .expect("old insert");
        }
        assert_eq!(
            index_names(&pool).await,
            [
                "audit_events_at",
                "audit_events_credential",
                "sqlite_autoindex_audit_events_1"
            ]
        );
        pool.close().await;
    }

    let store = SqliteStore::connect(&url, 2).await.expect("migrate");
    let kept = store
        .list_audit(&AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(kept, old);
    let by_credential = store
        .list_audit(&AuditFilter {
            credential_id: Some("key-3".into()),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .expect("by credential");
    assert_eq!(by_credential, vec![old[2].clone()]);

    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("reopen");
    assert_eq!(
        index_names(&pool).await,
        ["audit_events_at", "audit_events_credential"]
    );
    // `seq` is the rowid now: the same value under both names.
    let same: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE rowid = seq")
        .fetch_one(&pool)
        .await
        .expect("rowid");
    assert_eq!(same, 3);
    pool.close().await;

    let link = |r: &AuditRow| format!("link({},{})", r.seq, r.prev_hash);
    let next = row(0, "token.issued", Some("tok-4"));
    let seqs = store
        .append_audit(vec![next], &[], &link)
        .await
        .expect("append");
    assert_eq!(seqs, [4]);
    let head = store.audit_record(4).await.expect("read").expect("row 4");
    assert_eq!(head.prev_hash, old[2].hash);
    assert_eq!(head.hash, format!("link(4,{})", old[2].hash));
}
