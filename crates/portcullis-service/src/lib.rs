//! Portcullis decisions, shared by the HTTP server and the CLI.
//!
//! - [`Authority`]: the root object (store, clock, pepper, key ring, config) that
//!   every use case hangs off. Built once at start, passed in, never global.
//! - [`keys`]: signing-key life cycle: first keys, scheduled rotation with the next
//!   key published ahead of use, retirement and removal; the in-memory key ring.
//! - [`clients`]: OAuth client registration and client authentication.
//! - [`tokens`]: `client_credentials` issuance, introspection, revocation.
//! - [`passwords`], [`users`], [`signin`]: Argon2id passwords, user management,
//!   sign-in with throttling, sessions, TOTP, consent.
//! - [`authorize`]: the authorization code flow, OpenID Connect, and the
//!   `authorization_code`, `refresh_token` and `password` grants.
//! - [`error`]: [`ServiceError`], which the server maps to HTTP and the CLI to exit codes.
#![forbid(unsafe_code)]

pub mod admin;
pub mod anomaly;
pub mod apikeys;
pub mod audit;
pub mod authorize;
mod cache;
pub mod clients;
pub mod dpop;
pub mod error;
pub mod events;
pub mod gate;
mod grant_writer;
mod ipfmt;
pub mod keys;
pub mod passwords;
pub mod pats;
pub mod ratelimit;
pub mod signin;
pub mod tokens;
pub mod users;
pub mod webhooks;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use portcullis_core::clock::Clock;
use portcullis_core::jose::SigningAlg;
use portcullis_core::keys::{MasterKey, Pepper, Sealer};
use portcullis_store::Store;

pub use error::ServiceError;
pub use keys::KeyRing;

/// Service-level settings (a projection of the server's config).
#[derive(Debug, Clone)]
pub struct AuthorityConfig {
    /// The issuer URL, exactly as it appears in `iss`.
    pub issuer: String,
    /// Clock skew tolerated on `exp`/`iat`, seconds.
    pub leeway: i64,
    /// Algorithm of new clients' JWT access tokens when none is given.
    pub default_alg: SigningAlg,
    /// Access-token lifetime of new clients when none is given.
    pub default_access_token_ttl: Duration,
    /// Longest access-token lifetime a client may have; retired keys stay published this long.
    pub max_access_token_ttl: Duration,
    /// How long a signing key signs before the next one takes over.
    pub rotation_interval: Duration,
    /// How long a next key is published before it signs (at least the JWKS cache lifetime).
    pub publish_ahead: Duration,
    /// How long API-key usage counts are kept.
    pub usage_retention: Duration,
    /// Longest lifetime of a personal access token (and the default).
    pub pat_max_ttl: Duration,
    /// Whether personal access tokens may be created without expiry.
    pub pat_allow_no_expiry: bool,
    /// Rate-limit policies.
    pub rate_policies: ratelimit::RatePolicies,
    /// How long audit records are kept.
    pub audit_retention: Duration,
    /// Token responses wait for their `token.issued` record to be committed.
    pub audit_wait_for_issuance: bool,
    /// Anomaly detection.
    pub anomaly: anomaly::AnomalyConfig,
    /// Sign-in: passwords, sessions, lockout.
    pub signin: signin::SignInConfig,
    /// DPoP proofs (RFC 9449).
    pub dpop: dpop::DpopConfig,
}

impl AuthorityConfig {
    /// Defaults for `issuer`, as `portcullis serve` uses them.
    pub fn with_issuer(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            leeway: 30,
            default_alg: SigningAlg::ES256,
            default_access_token_ttl: Duration::from_secs(15 * 60),
            max_access_token_ttl: Duration::from_secs(24 * 3600),
            rotation_interval: Duration::from_secs(90 * 86_400),
            publish_ahead: Duration::from_secs(86_400),
            usage_retention: Duration::from_secs(90 * 86_400),
            pat_max_ttl: Duration::from_secs(90 * 86_400),
            pat_allow_no_expiry: false,
            rate_policies: ratelimit::RatePolicies::defaults(),
            audit_retention: Duration::from_secs(365 * 86_400),
            audit_wait_for_issuance: false,
            anomaly: anomaly::AnomalyConfig::default(),
            signin: signin::SignInConfig::default(),
            dpop: dpop::DpopConfig::default(),
        }
    }
}

/// The token authority: everything a decision needs.
#[derive(Debug)]
pub struct Authority {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    pepper: Pepper,
    sealer: Sealer,
    config: AuthorityConfig,
    keyring: RwLock<Arc<KeyRing>>,
    /// Revoked JWT ids and their expiry: checked on every JWT introspection.
    revoked_jtis: RwLock<HashMap<String, i64>>,
    /// Clients by id, so authentication costs no database read; see [`clients`].
    client_cache: cache::Cache<portcullis_core::ids::ClientId, clients::Client>,
    /// The store's change counter as last seen.
    seen_change_seq: AtomicI64,
    /// Tokens already verified, for repeated introspection; see [`tokens`].
    jwt_cache: cache::Cache<String, portcullis_core::claims::AccessTokenClaims>,
    /// Opaque access tokens by digest, as issued.
    opaque_cache: cache::Cache<[u8; 32], tokens::LiveOpaque>,
    /// Admin principals by token digest.
    admin_cache: cache::Cache<String, admin::AdminPrincipal>,
    /// API keys by digest, for verification.
    key_cache: cache::Cache<[u8; 32], apikeys::KeyRecord>,
    /// GCRA state for every rate limit (in process, or Redis in a cluster).
    rate_store: Arc<dyn ratelimit::RateStore>,
    rate_policies: ratelimit::RatePolicies,
    /// The audit chain key and the group-commit writer.
    audit_key: portcullis_core::keys::ChainKey,
    audit_writer: audit::AuditWriter,
    /// Anomaly detection state and geolocation databases.
    detector: anomaly::Detector,
    /// Temporary denies of client networks, with their expiry.
    ip_blocks: RwLock<Vec<(ipnet::IpNet, i64)>>,
    /// Sampling state for refusal records.
    audit_sampler: ratelimit::MemoryRateStore,
    /// Last-use times waiting for the batched flush.
    key_usage: std::sync::Mutex<HashMap<String, i64>>,
    /// Personal access tokens by digest, for introspection.
    pat_cache: cache::Cache<String, pats::PatRecord>,
    /// PAT last-use times waiting for the batched flush.
    pat_usage: std::sync::Mutex<HashMap<String, (i64, Option<String>)>>,
    /// Verification counts per (key, minute, outcome) waiting for the batched flush.
    usage_counts: std::sync::Mutex<HashMap<(String, i64, apikeys::VerifyCode), i64>>,
    /// Argon2id parameters and the dummy hash for unknown users.
    hasher: Arc<passwords::PasswordHasherCfg>,
    /// Sign-in failure counts per account and address.
    throttle: signin::Throttle,
    /// Group commit of what user grants issued.
    grant_writer: grant_writer::GrantWriter,
    /// DPoP proof ids seen, so each proof is used once.
    dpop_replay: portcullis_core::dpop::ReplayCache,
    /// Wakes the security event feed's readers after an append.
    events: events::EventSignal,
    /// The feed position this process has applied to its own deny list.
    events_applied: AtomicI64,
}

impl Authority {
    /// Builds the authority and loads keys and the deny list from the store.
    /// Does not create keys: call [`Authority::ensure_signing_keys`] where that is wanted.
    pub async fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        master_key: &MasterKey,
        config: AuthorityConfig,
    ) -> Result<Self, ServiceError> {
        let pepper = master_key.pepper().map_err(anyhow::Error::from)?;
        let sealer = master_key.sealer().map_err(anyhow::Error::from)?;
        let audit_key = master_key.audit_chain_key().map_err(anyhow::Error::from)?;
        let audit_writer = audit::AuditWriter::start(store.clone(), audit_key.clone());
        let geo = anomaly::Geo::open(
            config.anomaly.geoip_db.as_deref(),
            config.anomaly.asn_db.as_deref(),
        )?;
        let keyring = RwLock::new(Arc::new(KeyRing::empty(&config.issuer, config.leeway)));
        let seq = store.change_seq().await?;
        let rate_policies = config.rate_policies.clone();
        let hasher = Arc::new(passwords::PasswordHasherCfg::new(config.signin.argon2)?);
        let me = Self {
            hasher,
            throttle: signin::Throttle::default(),
            grant_writer: grant_writer::GrantWriter::start(store.clone()),
            store,
            clock,
            pepper,
            sealer,
            config,
            keyring,
            revoked_jtis: RwLock::new(HashMap::new()),
            client_cache: cache::Cache::new(clients::CLIENT_CACHE_MAX),
            seen_change_seq: AtomicI64::new(seq),
            jwt_cache: cache::Cache::new(tokens::LIVE_CACHE_MAX),
            opaque_cache: cache::Cache::new(tokens::LIVE_CACHE_MAX),
            admin_cache: cache::Cache::new(admin::ADMIN_CACHE_MAX),
            key_cache: cache::Cache::new(apikeys::KEY_CACHE_MAX),
            rate_store: Arc::new(ratelimit::MemoryRateStore::default()),
            rate_policies,
            audit_key,
            audit_writer,
            audit_sampler: ratelimit::MemoryRateStore::with_bound(4_096),
            detector: anomaly::Detector::new(geo),
            ip_blocks: RwLock::new(Vec::new()),
            key_usage: std::sync::Mutex::new(HashMap::new()),
            usage_counts: std::sync::Mutex::new(HashMap::new()),
            pat_cache: cache::Cache::new(pats::PAT_CACHE_MAX),
            pat_usage: std::sync::Mutex::new(HashMap::new()),
            dpop_replay: portcullis_core::dpop::ReplayCache::new(dpop::REPLAY_CACHE_MAX),
            events: events::EventSignal::default(),
            events_applied: AtomicI64::new(0),
        };
        // The deny list below is loaded whole; feed events up to here are in it.
        me.events_applied
            .store(me.store.security_event_head().await?, Ordering::SeqCst);
        me.reload_keyring().await?;
        me.reload_revocations().await?;
        me.reload_ip_blocks().await?;
        Ok(me)
    }

    /// Uses `store` for rate-limit state (Redis in a cluster) instead of process memory.
    pub fn with_rate_store(mut self, store: Arc<dyn ratelimit::RateStore>) -> Self {
        self.rate_store = store;
        self
    }

    /// The settings.
    pub fn config(&self) -> &AuthorityConfig {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The current time.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The key ring now in use.
    pub fn keyring(&self) -> Arc<KeyRing> {
        match self.keyring.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Database reachable?
    pub async fn ready(&self) -> Result<(), ServiceError> {
        Ok(self.store.ping().await?)
    }

    /// Reloads the deny list of revoked JWT ids from the store.
    pub async fn reload_revocations(&self) -> Result<(), ServiceError> {
        let now = self.now();
        let rows = self.store.list_revoked_jtis(now).await?;
        let map = rows.into_iter().map(|r| (r.jti, r.expires_at)).collect();
        match self.revoked_jtis.write() {
            Ok(mut g) => *g = map,
            Err(p) => *p.into_inner() = map,
        }
        Ok(())
    }

    fn is_jti_revoked(&self, jti: &str) -> bool {
        match self.revoked_jtis.read() {
            Ok(g) => g.contains_key(jti),
            Err(p) => p.into_inner().contains_key(jti),
        }
    }

    fn remember_revoked_jti(&self, jti: String, exp: i64) {
        let now = self.now();
        let mut g = match self.revoked_jtis.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.retain(|_, e| *e > now);
        g.insert(jti, exp);
    }

    /// Notices changes other processes (the CLI, other nodes) made to clients, by
    /// reading the store's change counter; drops the client cache when it moved.
    /// Returns true when it did. The server calls this every `database.change_poll_interval`.
    pub async fn sync_changes(&self) -> Result<bool, ServiceError> {
        let seq = self.store.change_seq().await?;
        if self.seen_change_seq.swap(seq, Ordering::SeqCst) != seq {
            self.invalidate_clients();
            self.admin_cache.clear();
            self.key_cache.clear();
            self.pat_cache.clear();
            self.reload_ip_blocks().await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Housekeeping: removes expired tokens and deny-list entries, and usage counts past retention.
    /// On a shared database one node at a time purges (the others skip the tick);
    /// each node still drops its own expired deny-list entries.
    pub async fn purge_expired(&self) -> Result<u64, ServiceError> {
        let now = self.now();
        let n = match self.store.lock_job("cleanup", false).await? {
            Some(lock) => {
                let n = self.purge_store(now).await;
                lock.release().await;
                n?
            }
            None => 0,
        };
        {
            let mut g = match self.revoked_jtis.write() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            g.retain(|_, e| *e > now);
        }
        Ok(n)
    }

    async fn purge_store(&self, now: i64) -> Result<u64, ServiceError> {
        let mut n = self.store.purge_expired(now - self.config.leeway).await?;
        n += self
            .store
            .purge_key_usage(now - self.config.usage_retention.as_secs() as i64)
            .await?;
        n += self.store.purge_signin(now - self.config.leeway).await?;
        n += self
            .audit_prune(self.config.audit_retention.as_millis() as i64)
            .await?;
        Ok(n)
    }
}
