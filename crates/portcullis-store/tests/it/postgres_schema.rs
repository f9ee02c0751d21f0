//! The SQLite migrations are written in portable SQL; this proves PostgreSQL accepts
//! them (after `postgres_migration_sql`) with 64-bit keys where SQLite has them.

use sqlx::postgres::PgPoolOptions;
use std::io::Write;

use sqlx::Executor;

#[tokio::test]
async fn the_migrations_apply_on_postgres() {
    let Ok(url) = std::env::var("PORTCULLIS_TEST_DATABASE_URL") else {
        // Straight to the process's stderr: libtest captures eprintln!, and a skip
        // must be visible in a plain `cargo test` run.
        let _ = writeln!(std::io::stderr(), "skipped: postgres (set PORTCULLIS_TEST_DATABASE_URL to run the_migrations_apply_on_postgres)");
        return;
    };
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("postgres reachable");
    let schema = format!("pc_mig_{}", uuid::Uuid::new_v4().simple());
    pool.execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .expect("schema");
    pool.execute(format!("SET search_path TO {schema}").as_str())
        .await
        .expect("search_path");
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
    // The audit chain's `seq` is a rowid alias on SQLite (64-bit): the same range here.
    let seq_type: Option<(String,)> = sqlx::query_as(
        "SELECT data_type::text FROM information_schema.columns
          WHERE table_schema = $1 AND table_name = 'audit_events' AND column_name = 'seq'",
    )
    .bind(&schema)
    .fetch_optional(&pool)
    .await
    .expect("columns");
    pool.execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await
        .expect("drop");
    assert!(!files.is_empty());
    result.expect("postgres accepts the migration");
    assert_eq!(seq_type, Some(("bigint".to_owned(),)));
}
