//! The SQLite migrations are written in portable SQL; this proves PostgreSQL accepts
//! them (after `postgres_migration_sql`) with 64-bit keys where SQLite has them.

use sqlx::postgres::PgPoolOptions;

use portcullis_testkit::PgSchema;

#[tokio::test]
async fn the_migrations_apply_on_postgres() {
    let Some(schema) = PgSchema::create("the_migrations_apply_on_postgres").await else {
        return;
    };
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(schema.options())
        .await
        .expect("postgres reachable");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut result = Ok(());
    for f in &files {
        let sql =
            portcullis_store::postgres_migration_sql(&std::fs::read_to_string(f).expect("read"));
        if let Err(e) = sqlx::raw_sql(&sql).execute(&pool).await {
            result = Err(format!("{}: {e}", f.display()));
            break;
        }
    }
    // 64-bit wherever SQLite is: every integer column, the audit chain's `seq` (a rowid
    // alias on SQLite) among them.
    let narrow: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
          WHERE table_schema = current_schema() AND data_type IN ('integer', 'smallint')",
    )
    .fetch_all(&pool)
    .await
    .expect("columns");
    let seq_type: Option<(String,)> = sqlx::query_as(
        "SELECT data_type::text FROM information_schema.columns
          WHERE table_schema = current_schema() AND table_name = 'audit_events' AND column_name = 'seq'",
    )
    .fetch_optional(&pool)
    .await
    .expect("columns");
    pool.close().await;
    schema.drop().await;
    assert!(!files.is_empty());
    result.expect("postgres accepts the migration");
    assert_eq!(seq_type, Some(("bigint".to_owned(),)));
    assert_eq!(narrow, [], "32-bit integer columns on PostgreSQL");
}
