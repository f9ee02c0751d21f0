//! Service tests on a real SQLite file with a manual clock (and, where nodes share a
//! database, on PostgreSQL when `PORTCULLIS_TEST_DATABASE_URL` is set).

mod anomaly;
mod apikeys;
mod audit;
mod clients;
mod pats;
mod ratelimit;
mod rotation;
mod tokens;

use std::sync::Arc;

use portcullis_core::clock::ManualClock;
use portcullis_core::keys::MasterKey;
use portcullis_service::clients::NewClient;
use portcullis_service::{Authority, AuthorityConfig};
use portcullis_store::SqliteStore;

pub(crate) struct Env {
    pub(crate) auth: Authority,
    pub(crate) clock: ManualClock,
    pub(crate) mk: MasterKey,
    pub(crate) dir: tempfile::TempDir,
}

pub(crate) async fn env() -> Env {
    env_with(|_| {}).await
}

/// An environment with adjusted settings.
pub(crate) async fn env_with(tweak: impl FnOnce(&mut AuthorityConfig)) -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_800_000_000);
    let mk = MasterKey::generate().expect("master key");
    let mut config = AuthorityConfig::with_issuer("https://issuer.test");
    tweak(&mut config);
    let auth = authority_with(dir.path(), &clock, &mk, config).await;
    auth.ensure_signing_keys().await.expect("keys");
    Env {
        auth,
        clock,
        mk,
        dir,
    }
}

/// Another authority over the same database, as a second process (the CLI) opens it.
pub(crate) async fn authority_on(
    dir: &std::path::Path,
    clock: &ManualClock,
    mk: &MasterKey,
) -> Authority {
    authority_with(
        dir,
        clock,
        mk,
        AuthorityConfig::with_issuer("https://issuer.test"),
    )
    .await
}

async fn authority_with(
    dir: &std::path::Path,
    clock: &ManualClock,
    mk: &MasterKey,
    config: AuthorityConfig,
) -> Authority {
    let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
    let store = SqliteStore::connect(&url, 4).await.expect("store");
    Authority::new(Arc::new(store), Arc::new(clock.clone()), mk, config)
        .await
        .expect("authority")
}

/// An authority on a PostgreSQL schema: one node of several sharing the database.
pub(crate) async fn authority_on_postgres(
    schema: &portcullis_testkit::PgSchema,
    clock: &ManualClock,
    mk: &MasterKey,
) -> Authority {
    let store = portcullis_store::PgStore::connect_with(schema.options(), 4)
        .await
        .expect("store");
    Authority::new(
        Arc::new(store),
        Arc::new(clock.clone()),
        mk,
        AuthorityConfig::with_issuer("https://issuer.test"),
    )
    .await
    .expect("authority")
}

pub(crate) fn cc_client(name: &str) -> NewClient {
    NewClient {
        name: name.into(),
        grant_types: vec!["client_credentials".into()],
        scopes: vec!["read".into(), "write".into()],
        audiences: vec!["https://api.test".into()],
        ..NewClient::default()
    }
}
