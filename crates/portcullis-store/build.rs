//! `sqlx::migrate!` embeds the migration files at compile time; without this, a new
//! migration is not picked up by an incremental build (sqlx documents the same).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
