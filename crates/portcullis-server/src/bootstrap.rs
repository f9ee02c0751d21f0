//! Opening the authority from settings: database, master key, keys. Shared by
//! `portcullis serve` and the admin CLI commands, so both act on the same state
//! through the same service layer.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use portcullis_core::clock::Clock;
use portcullis_core::keys::MasterKey;
use portcullis_service::ratelimit::RedisRateStore;
use portcullis_service::{Authority, AuthorityConfig};
use portcullis_store::{PgStore, SqliteStore, Store};

use crate::config::{DatabaseBackend, DatabaseSettings, Settings};

/// The service settings derived from the server settings.
pub fn authority_config(s: &Settings) -> AuthorityConfig {
    AuthorityConfig {
        issuer: s.server.issuer.clone(),
        leeway: s.tokens.leeway.as_secs() as i64,
        default_alg: s.keys.access_token_alg,
        default_access_token_ttl: s.tokens.access_token_ttl,
        max_access_token_ttl: s.tokens.max_access_token_ttl,
        rotation_interval: s.keys.rotation_interval,
        publish_ahead: s.keys.publish_ahead,
        usage_retention: s.apikeys.usage_retention,
        pat_max_ttl: s.pats.max_ttl,
        pat_allow_no_expiry: s.pats.allow_no_expiry,
        rate_policies: s.ratelimit.policies(),
        audit_retention: s.audit.retention,
        audit_wait_for_issuance: s.audit.wait_for_issuance,
        anomaly: s.anomaly.config(),
        signin: s.signin.config(),
        dpop: s.dpop.config(),
    }
}

/// Opens the database (creating and migrating it) and the authority over it.
pub async fn open(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<Authority>> {
    let store = open_store(&settings.database).await?;
    let master = load_or_create_master_key(&settings.keys.master_key_file, store.as_ref()).await?;
    let mut auth = Authority::new(store, clock, &master, authority_config(settings)).await?;
    if let Some(url) = &settings.redis.url {
        let redis = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            RedisRateStore::connect(url, "portcullis:rl:"),
        )
        .await
        .map_err(|_| anyhow::anyhow!("redis.url: no answer from Redis within 5 s"))?
        .context("redis.url")?;
        auth = auth.with_rate_store(Arc::new(redis));
    }
    Ok(Arc::new(auth))
}

/// Opens the store `database.url` names (SQLite or PostgreSQL), migrating it. The
/// backend is chosen here, once; everything above sees `dyn Store`.
pub async fn open_store(db: &DatabaseSettings) -> anyhow::Result<Arc<dyn Store>> {
    let opened: Result<Arc<dyn Store>, _> = match db.backend() {
        Some(DatabaseBackend::Postgres) => PgStore::connect(&db.url, db.max_connections)
            .await
            .map(|s| Arc::new(s) as Arc<dyn Store>),
        Some(DatabaseBackend::Sqlite) => SqliteStore::connect(&db.url, db.max_connections)
            .await
            .map(|s| Arc::new(s) as Arc<dyn Store>),
        None => bail!(db.unsupported()),
    };
    opened.with_context(|| format!("opening database {}", db.redacted_url()))
}

/// Reads the master key file, or creates one (mode 0600) when it does not exist and
/// the database holds nothing sealed under an earlier key.
pub async fn load_or_create_master_key(
    path: &Path,
    store: &dyn Store,
) -> anyhow::Result<MasterKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_readable_by_others(path);
            MasterKey::from_base64(&text)
                .with_context(|| format!("keys.master_key_file {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let sealed = !store.list_signing_keys().await?.is_empty()
                || !store.list_clients().await?.is_empty();
            if sealed {
                bail!(
                    "keys.master_key_file {} does not exist, but the database already holds keys and secrets made under a master key; \
                     restore that file (or point keys.master_key_file / PORTCULLIS_KEYS_MASTER_KEY_FILE at it)",
                    path.display()
                );
            }
            let key = MasterKey::generate()?;
            write_private(path, key.to_base64().as_bytes())
                .with_context(|| format!("creating master key file {}", path.display()))?;
            tracing::warn!(
                path = %path.display(),
                "CREATED A NEW MASTER KEY. Every signing key and client secret depends on it: back it up. \
                 Production should supply its own key file (keys.master_key_file / PORTCULLIS_KEYS_MASTER_KEY_FILE) from a secret store."
            );
            Ok(key)
        }
        Err(e) => {
            Err(e).with_context(|| format!("reading keys.master_key_file {}", path.display()))
        }
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.write_all(b"\n")?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path) {
        if m.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the master key file is readable by group or others; chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}
