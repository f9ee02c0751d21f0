//! Configuration: defaults → TOML file (`--config`) → `PORTCULLIS_<SECTION>_<KEY>`
//! environment variables, into one typed [`Settings`] that refuses unknown keys.
//!
//! The environment name is split at the first `_` after the prefix, because
//! section names have none: `PORTCULLIS_KEYS_MASTER_KEY_FILE` is `keys.master_key_file`.
//! `PORTCULLIS_TEST_*` is reserved for the test suite and ignored here.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use portcullis_core::duration::{format_duration, parse_duration};
use portcullis_core::jose::SigningAlg;
use portcullis_core::limits::{AllowList, RateLimit};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Every setting.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `[server]`
    pub server: ServerSettings,
    /// `[database]`
    pub database: DatabaseSettings,
    /// `[keys]`
    pub keys: KeySettings,
    /// `[tokens]`
    pub tokens: TokenSettings,
    /// `[log]`
    pub log: LogSettings,
    /// `[apikeys]`
    pub apikeys: ApiKeySettings,
    /// `[pats]`
    pub pats: PatSettings,
    /// `[redis]`
    pub redis: RedisSettings,
    /// `[ratelimit]`
    pub ratelimit: RateLimitSettings,
    /// `[ip]`
    pub ip: IpSettings,
    /// `[forwardauth]`
    pub forwardauth: ForwardAuthSettings,
    /// `[audit]`
    pub audit: AuditSettings,
    /// `[webhooks]`
    pub webhooks: WebhookSettings,
    /// `[anomaly]`
    pub anomaly: AnomalySettings,
    /// `[signin]`
    pub signin: SignInSettings,
    /// `[dpop]`
    pub dpop: DpopSettings,
}

/// `[dpop]`: proof-of-possession tokens (RFC 9449).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DpopSettings {
    /// Proofs must carry a server nonce (sent in `DPoP-Nonce`).
    pub require_nonce: bool,
    /// How long a nonce window lasts (a nonce is good for one to two of them).
    #[serde(with = "dur")]
    pub nonce_lifetime: Duration,
    /// How old a proof's `iat` may be.
    #[serde(with = "dur")]
    pub proof_max_age: Duration,
}

impl Default for DpopSettings {
    fn default() -> Self {
        let d = portcullis_service::dpop::DpopConfig::default();
        Self {
            require_nonce: d.require_nonce,
            nonce_lifetime: d.nonce_lifetime,
            proof_max_age: d.proof_max_age,
        }
    }
}

impl DpopSettings {
    /// The service-level settings.
    pub fn config(&self) -> portcullis_service::dpop::DpopConfig {
        portcullis_service::dpop::DpopConfig {
            require_nonce: self.require_nonce,
            nonce_lifetime: self.nonce_lifetime,
            proof_max_age: self.proof_max_age,
        }
    }
}

/// `[signin]`: browser sign-in, passwords and brute-force defence.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignInSettings {
    /// Argon2id memory, KiB (OWASP: 19456).
    pub argon2_memory_kib: u32,
    /// Argon2id passes (OWASP: 2).
    pub argon2_iterations: u32,
    /// Argon2id lanes (OWASP: 1).
    pub argon2_parallelism: u32,
    /// Absolute session lifetime.
    #[serde(with = "dur")]
    pub session_ttl: Duration,
    /// Idle timeout of a session.
    #[serde(with = "dur")]
    pub session_idle: Duration,
    /// Failed sign-ins per account before temporary lockouts start.
    pub lockout_threshold: u32,
    /// Failed sign-ins per client address before lockouts start.
    pub ip_lockout_threshold: u32,
    /// First lockout; it doubles with each further failure.
    #[serde(with = "dur")]
    pub lockout_base: Duration,
    /// Longest lockout.
    #[serde(with = "dur")]
    pub lockout_max: Duration,
    /// Name shown in authenticator apps.
    pub totp_issuer: String,
}

impl Default for SignInSettings {
    fn default() -> Self {
        let d = portcullis_service::signin::SignInConfig::default();
        Self {
            argon2_memory_kib: d.argon2.memory_kib,
            argon2_iterations: d.argon2.iterations,
            argon2_parallelism: d.argon2.parallelism,
            session_ttl: d.session_ttl,
            session_idle: d.session_idle,
            lockout_threshold: d.lockout_threshold,
            ip_lockout_threshold: d.ip_lockout_threshold,
            lockout_base: d.lockout_base,
            lockout_max: d.lockout_max,
            totp_issuer: d.totp_issuer,
        }
    }
}

impl SignInSettings {
    /// The service's view.
    pub fn config(&self) -> portcullis_service::signin::SignInConfig {
        portcullis_service::signin::SignInConfig {
            argon2: portcullis_service::passwords::Argon2Params {
                memory_kib: self.argon2_memory_kib,
                iterations: self.argon2_iterations,
                parallelism: self.argon2_parallelism,
            },
            session_ttl: self.session_ttl,
            session_idle: self.session_idle,
            lockout_threshold: self.lockout_threshold,
            ip_lockout_threshold: self.ip_lockout_threshold,
            lockout_base: self.lockout_base,
            lockout_max: self.lockout_max,
            totp_issuer: self.totp_issuer.clone(),
            ..portcullis_service::signin::SignInConfig::default()
        }
    }
}

/// `[anomaly]`: signals, thresholds and the actions each signal takes
/// (`log`, `alert`, `deny_ip`, `revoke`; an empty list turns a signal off).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalySettings {
    /// Master switch.
    pub enabled: bool,
    /// MaxMind-format City or Country database (`.mmdb`), for countries and travel.
    pub geoip_db: Option<PathBuf>,
    /// MaxMind-format ASN database (`.mmdb`).
    pub asn_db: Option<PathBuf>,
    /// Frequency: requests in a minute above this many times the credential's baseline…
    pub frequency_factor: f64,
    /// …and above this many.
    pub frequency_min: u32,
    /// Minutes of history before a baseline counts.
    pub frequency_warmup: u32,
    /// Impossible travel above this speed, km/h.
    pub travel_max_kmh: f64,
    /// Failed authentications per address per minute that make a burst.
    pub failures_per_ip: u32,
    /// Failed authentications per account per minute that make a burst.
    pub failures_per_account: u32,
    /// How long `deny_ip` refuses an address.
    #[serde(with = "dur")]
    pub deny_ip_for: Duration,
    /// Actions of the `frequency` signal.
    pub frequency_actions: Vec<portcullis_service::anomaly::Action>,
    /// Actions of the `new_country` signal.
    pub new_country_actions: Vec<portcullis_service::anomaly::Action>,
    /// Actions of the `new_asn` signal.
    pub new_asn_actions: Vec<portcullis_service::anomaly::Action>,
    /// Actions of the `impossible_travel` signal.
    pub impossible_travel_actions: Vec<portcullis_service::anomaly::Action>,
    /// Actions of the `failure_burst` signal.
    pub failure_burst_actions: Vec<portcullis_service::anomaly::Action>,
}

impl Default for AnomalySettings {
    fn default() -> Self {
        use portcullis_service::anomaly::{AnomalyConfig, Signal};
        let d = AnomalyConfig::default();
        let of = |s: Signal| d.actions.get(&s).cloned().unwrap_or_default();
        Self {
            enabled: d.enabled,
            geoip_db: None,
            asn_db: None,
            frequency_factor: d.frequency_factor,
            frequency_min: d.frequency_min,
            frequency_warmup: d.frequency_warmup,
            travel_max_kmh: d.travel_max_kmh,
            failures_per_ip: d.failures_per_ip,
            failures_per_account: d.failures_per_account,
            deny_ip_for: d.deny_ip_for,
            frequency_actions: of(Signal::Frequency),
            new_country_actions: of(Signal::NewCountry),
            new_asn_actions: of(Signal::NewAsn),
            impossible_travel_actions: of(Signal::ImpossibleTravel),
            failure_burst_actions: of(Signal::FailureBurst),
        }
    }
}

impl AnomalySettings {
    /// The service's view.
    pub fn config(&self) -> portcullis_service::anomaly::AnomalyConfig {
        use portcullis_service::anomaly::{AnomalyConfig, Signal};
        AnomalyConfig {
            enabled: self.enabled,
            frequency_factor: self.frequency_factor,
            frequency_min: self.frequency_min,
            frequency_warmup: self.frequency_warmup,
            travel_max_kmh: self.travel_max_kmh,
            failures_per_ip: self.failures_per_ip,
            failures_per_account: self.failures_per_account,
            deny_ip_for: self.deny_ip_for,
            actions: [
                (Signal::Frequency, self.frequency_actions.clone()),
                (Signal::NewCountry, self.new_country_actions.clone()),
                (Signal::NewAsn, self.new_asn_actions.clone()),
                (
                    Signal::ImpossibleTravel,
                    self.impossible_travel_actions.clone(),
                ),
                (Signal::FailureBurst, self.failure_burst_actions.clone()),
            ]
            .into_iter()
            .collect(),
            geoip_db: self.geoip_db.clone(),
            asn_db: self.asn_db.clone(),
        }
    }
}

/// `[webhooks]`: delivery of audit events to subscribers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// How often due deliveries are looked for.
    #[serde(with = "dur")]
    pub poll_interval: Duration,
    /// Delay after the first failed attempt; it doubles after each failure.
    #[serde(with = "dur")]
    pub retry_base: Duration,
    /// The longest delay between two attempts.
    #[serde(with = "dur")]
    pub retry_max: Duration,
    /// Attempts before a delivery is given up (and logged as failed).
    pub max_attempts: u32,
    /// Per-request timeout.
    #[serde(with = "dur")]
    pub timeout: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            retry_base: Duration::from_secs(10),
            retry_max: Duration::from_secs(3_600),
            max_attempts: 12,
            timeout: Duration::from_secs(10),
        }
    }
}

/// `[audit]`: the tamper-evident audit trail.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// How long records are kept; older ones are pruned (the chain stays verifiable).
    #[serde(with = "dur")]
    pub retention: Duration,
    /// Make token responses wait until their `token.issued` record is committed
    /// (every other security event always waits). Off: the record follows within
    /// one group commit (within about 10 ms), and a crash in that window can lose it.
    pub wait_for_issuance: bool,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(365 * 86_400),
            wait_for_issuance: false,
        }
    }
}

/// `[forwardauth]`: `GET /auth/verify` for reverse proxies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwardAuthSettings {
    /// When not empty, an access token's `aud` must name one of these.
    pub audiences: Vec<String>,
    /// A header that may carry an API key instead of `Authorization: Bearer`.
    pub api_key_header: String,
    /// Scopes required per route of the protected service (longest prefix wins).
    pub routes: Vec<ForwardAuthRoute>,
}

impl Default for ForwardAuthSettings {
    fn default() -> Self {
        Self {
            audiences: Vec::new(),
            api_key_header: "x-api-key".into(),
            routes: Vec::new(),
        }
    }
}

/// One `[[forwardauth.routes]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthRoute {
    /// Path prefix of the original request, e.g. `/admin/`.
    pub prefix: String,
    /// Methods it applies to (any when empty), e.g. `["POST", "DELETE"]`.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Scopes a bearer needs.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// `[redis]`: shared state for a cluster.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// `redis://host:port/db`; when set, rate-limit budgets are shared through Redis.
    pub url: Option<String>,
}

/// `[ratelimit]`: GCRA limits per route class, counted per client IP and per
/// credential. Each value is `N/PERIOD` (`second`, `minute`, `hour`, `day`) or `off`.
/// A credential's own limit (a client's or API key's `rate_limit`) overrides the
/// `*_per_client` / `*_per_credential` default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Master switch.
    pub enabled: bool,
    /// `/oauth/token`, per client IP (failed authentications count too).
    #[serde(with = "opt_rate")]
    pub token_per_ip: Option<RateLimit>,
    /// `/oauth/token`, per authenticated client.
    #[serde(with = "opt_rate")]
    pub token_per_client: Option<RateLimit>,
    /// `/oauth/introspect` and `/oauth/revoke`, per client IP.
    #[serde(with = "opt_rate")]
    pub introspect_per_ip: Option<RateLimit>,
    /// `POST /api/v1/keys/verify`, per client IP.
    #[serde(with = "opt_rate")]
    pub verify_per_ip: Option<RateLimit>,
    /// `GET /auth/verify`, per end-client IP.
    #[serde(with = "opt_rate")]
    pub forward_auth_per_ip: Option<RateLimit>,
    /// `GET /auth/verify`, per credential (token, API key, PAT) without its own limit.
    #[serde(with = "opt_rate")]
    pub forward_auth_per_credential: Option<RateLimit>,
    /// Password sign-in, per client IP.
    #[serde(with = "opt_rate")]
    pub login_per_ip: Option<RateLimit>,
    /// Password sign-in, per account.
    #[serde(with = "opt_rate")]
    pub login_per_account: Option<RateLimit>,
    /// The rest of `/api/v1`, per client IP.
    #[serde(with = "opt_rate")]
    pub admin_per_ip: Option<RateLimit>,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        let p = portcullis_service::ratelimit::RatePolicies::defaults();
        use portcullis_service::ratelimit::{Partition as P, RouteClass as C};
        Self {
            enabled: true,
            token_per_ip: p.get(C::Token, P::Ip),
            token_per_client: p.get(C::Token, P::Credential),
            introspect_per_ip: p.get(C::Introspect, P::Ip),
            verify_per_ip: p.get(C::Verify, P::Ip),
            forward_auth_per_ip: p.get(C::ForwardAuth, P::Ip),
            forward_auth_per_credential: p.get(C::ForwardAuth, P::Credential),
            login_per_ip: p.get(C::Login, P::Ip),
            login_per_account: p.get(C::Login, P::Credential),
            admin_per_ip: p.get(C::Admin, P::Ip),
        }
    }
}

impl RateLimitSettings {
    /// The service's view.
    pub fn policies(&self) -> portcullis_service::ratelimit::RatePolicies {
        use portcullis_service::ratelimit::{Partition as P, RouteClass as C};
        let mut limits = std::collections::HashMap::new();
        for (k, v) in [
            ((C::Token, P::Ip), self.token_per_ip),
            ((C::Token, P::Credential), self.token_per_client),
            ((C::Introspect, P::Ip), self.introspect_per_ip),
            ((C::Verify, P::Ip), self.verify_per_ip),
            ((C::ForwardAuth, P::Ip), self.forward_auth_per_ip),
            (
                (C::ForwardAuth, P::Credential),
                self.forward_auth_per_credential,
            ),
            ((C::Login, P::Ip), self.login_per_ip),
            ((C::Login, P::Credential), self.login_per_account),
            ((C::Admin, P::Ip), self.admin_per_ip),
        ] {
            if let Some(v) = v {
                limits.insert(k, v);
            }
        }
        portcullis_service::ratelimit::RatePolicies {
            enabled: self.enabled,
            limits,
        }
    }
}

/// `[ip]`: where requests may come from, and whom to believe about it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IpSettings {
    /// Reverse proxies (CIDRs) whose `Forwarded` / `X-Forwarded-For` is believed.
    /// Requests from anywhere else are attributed to the connecting address.
    pub trusted_proxies: Vec<String>,
    /// When not empty, only these client networks may call the server (health
    /// checks excepted).
    pub allow: Vec<String>,
    /// Client networks always refused (403), health checks excepted.
    pub deny: Vec<String>,
}

/// `[pats]`: personal access token policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PatSettings {
    /// Longest lifetime (and the default).
    #[serde(with = "dur")]
    pub max_ttl: Duration,
    /// Allow tokens that never expire.
    pub allow_no_expiry: bool,
}

impl Default for PatSettings {
    fn default() -> Self {
        Self {
            max_ttl: Duration::from_secs(90 * 86_400),
            allow_no_expiry: false,
        }
    }
}

/// `[apikeys]`: API-key analytics.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiKeySettings {
    /// How long per-minute verification counts are kept.
    #[serde(with = "dur")]
    pub usage_retention: Duration,
}

impl Default for ApiKeySettings {
    fn default() -> Self {
        Self {
            usage_retention: Duration::from_secs(90 * 86_400),
        }
    }
}

/// `[server]`: where and how to listen.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Issuer URL: `iss` of every token and the base of every endpoint URL.
    pub issuer: String,
    /// PEM certificate chain; TLS is on when this and `tls_key_file` are set.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key.
    pub tls_key_file: Option<PathBuf>,
    /// Largest request body accepted, bytes.
    pub max_body_bytes: usize,
    /// A request taking longer is answered 503.
    #[serde(with = "dur")]
    pub request_timeout: Duration,
    /// On SIGTERM/Ctrl-C, in-flight requests get this long to finish.
    #[serde(with = "dur")]
    pub shutdown_grace: Duration,
    /// A client has this long to finish the TLS handshake, and then to send each
    /// request head (counted from when the connection is ready for the next request,
    /// so an idle keep-alive connection is closed after it too).
    #[serde(with = "dur")]
    pub header_read_timeout: Duration,
    /// Largest request head (request line and header fields), bytes; larger is 431.
    pub max_header_bytes: usize,
    /// Connections open at once; past this, new ones wait in the kernel backlog.
    pub max_connections: usize,
    /// Requests handled at once; past this, requests are answered 503 at once with
    /// `Retry-After` (load shedding) instead of queueing. Health probes and the
    /// event stream (which has its own bound) are not counted.
    pub max_inflight_requests: usize,
    /// Security event streams (`GET /oauth/events`) open at once; one more is
    /// answered 503 with `Retry-After`. Each holds a connection and a task.
    pub max_event_streams: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            issuer: "http://127.0.0.1:8080".into(),
            tls_cert_file: None,
            tls_key_file: None,
            max_body_bytes: 16 * 1024,
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_connections: 10_000,
            max_inflight_requests: 1_024,
            max_event_streams: 1_024,
        }
    }
}

/// `[database]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://path?mode=rwc` (the embedded default) or `postgres://user@host/db`
    /// (`postgresql://` too; several nodes may share one PostgreSQL database).
    pub url: String,
    /// Connection pool size.
    pub max_connections: u32,
    /// How often the server looks for client changes made by other processes (the CLI).
    #[serde(with = "dur")]
    pub change_poll_interval: Duration,
}

/// Which store `database.url` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseBackend {
    /// `sqlite:`
    Sqlite,
    /// `postgres:` or `postgresql:`
    Postgres,
}

impl DatabaseSettings {
    /// The backend the URL's scheme names, or `None` for any other scheme.
    pub fn backend(&self) -> Option<DatabaseBackend> {
        let scheme = self
            .url
            .split_once(':')
            .map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("sqlite") => Some(DatabaseBackend::Sqlite),
            Some("postgres" | "postgresql") => Some(DatabaseBackend::Postgres),
            _ => None,
        }
    }

    /// The error message for a URL of neither backend.
    pub fn unsupported(&self) -> String {
        format!(
            "database.url: {:?} is neither sqlite://PATH?mode=rwc nor postgres://USER@HOST/DB",
            self.redacted_url()
        )
    }

    /// The URL with any password replaced, for messages.
    pub fn redacted_url(&self) -> String {
        if self.backend() == Some(DatabaseBackend::Sqlite) {
            // A path, not a URL the `url` crate reads the same way; no credentials.
            return self.url.clone();
        }
        redact_url(&self.url)
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://portcullis.db?mode=rwc".into(),
            max_connections: 8,
            change_poll_interval: Duration::from_secs(1),
        }
    }
}

/// `[keys]`: the master key and signing-key rotation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeySettings {
    /// File holding the base64 master key; created (0600) on first start when missing.
    pub master_key_file: PathBuf,
    /// Algorithm of JWT access tokens for clients that do not choose one.
    pub access_token_alg: SigningAlg,
    /// How long a signing key signs before the next takes over.
    #[serde(with = "dur")]
    pub rotation_interval: Duration,
    /// How long the next key is published before it signs (≥ `jwks_max_age`).
    #[serde(with = "dur")]
    pub publish_ahead: Duration,
    /// `Cache-Control: max-age` of the JWKS.
    #[serde(with = "dur")]
    pub jwks_max_age: Duration,
    /// How often the server checks for due rotations and reloads keys.
    #[serde(with = "dur")]
    pub check_interval: Duration,
}

impl Default for KeySettings {
    fn default() -> Self {
        Self {
            master_key_file: PathBuf::from("portcullis.master.key"),
            access_token_alg: SigningAlg::ES256,
            rotation_interval: Duration::from_secs(90 * 86_400),
            publish_ahead: Duration::from_secs(86_400),
            jwks_max_age: Duration::from_secs(300),
            check_interval: Duration::from_secs(60),
        }
    }
}

/// `[tokens]`: lifetimes and clock skew.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSettings {
    /// Default access-token lifetime for new clients.
    #[serde(with = "dur")]
    pub access_token_ttl: Duration,
    /// Longest access-token lifetime any client may have.
    #[serde(with = "dur")]
    pub max_access_token_ttl: Duration,
    /// Clock skew tolerated on `exp`/`iat`.
    #[serde(with = "dur_or_zero")]
    pub leeway: Duration,
    /// How often expired tokens and deny-list entries are purged.
    #[serde(with = "dur")]
    pub cleanup_interval: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(15 * 60),
            max_access_token_ttl: Duration::from_secs(86_400),
            leeway: Duration::from_secs(30),
            cleanup_interval: Duration::from_secs(3_600),
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `tracing` filter, e.g. `info` or `portcullis=debug,info`.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

mod opt_rate {
    use super::*;
    pub(super) fn serialize<S: Serializer>(r: &Option<RateLimit>, s: S) -> Result<S::Ok, S::Error> {
        match r {
            Some(r) => s.collect_str(r),
            None => s.serialize_str("off"),
        }
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<RateLimit>, D::Error> {
        let s = String::deserialize(d)?;
        match s.trim() {
            "off" | "" => Ok(None),
            t => t.parse().map(Some).map_err(serde::de::Error::custom),
        }
    }
}

mod dur {
    use super::*;
    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

mod dur_or_zero {
    use super::*;
    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        if matches!(s.trim(), "0" | "0s") {
            return Ok(Duration::ZERO);
        }
        parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

/// Maps an environment variable name (already stripped of `PORTCULLIS_` and lowercased)
/// to a dotted key: the section is everything before the first `_`.
pub fn env_key(name: &str) -> String {
    name.replacen('_', ".", 1)
}

impl Settings {
    /// Loads defaults, then `file` (if given), then the process environment, and validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, Env::prefixed("PORTCULLIS_"))
    }

    /// Defaults, then the TOML `text` (no environment), validated: what a config file
    /// with this content would give. Used by the config fuzz target.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let fig =
            Figment::from(Serialized::defaults(Settings::default())).merge(Toml::string(text));
        let settings: Settings = fig.extract().map_err(|e| ConfigError(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    fn load_from(file: Option<&Path>, env: Env) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(f) = file {
            if !f.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    f.display()
                )));
            }
            fig = fig.merge(Toml::file_exact(f));
        }
        // PORTCULLIS_TEST_* belong to the test suite (database and Redis URLs), not to
        // the server. figment hands the filter the key as the environment spells it
        // (upper case), so the comparison ignores case.
        let env = env
            .filter(|k| {
                !k.as_str()
                    .get(..5)
                    .is_some_and(|p| p.eq_ignore_ascii_case("test_"))
            })
            .map(|k| env_key(k.as_str()).into());
        let settings: Settings = fig.merge(env).extract().map_err(|e| {
            let msgs: Vec<String> = e
                .into_iter()
                .map(|e| {
                    let key = e.path.join(".");
                    let kind = e.kind.to_string();
                    if key.is_empty() {
                        kind
                    } else {
                        format!("{key}: {kind}")
                    }
                })
                .collect();
            ConfigError(msgs.join("; "))
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Cross-field checks that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        let iss = url::Url::parse(&self.server.issuer).map_err(|e| {
            ConfigError(format!(
                "server.issuer: {:?} is not an absolute URL ({e})",
                self.server.issuer
            ))
        })?;
        if !matches!(iss.scheme(), "https" | "http") || iss.host().is_none() {
            return err("server.issuer: must be an http(s) URL with a host".into());
        }
        if iss.query().is_some() || iss.fragment().is_some() {
            return err("server.issuer: must not have a query or fragment (RFC 8414 §2)".into());
        }
        if self.server.issuer.ends_with('/') {
            return err(
                "server.issuer: must not end with '/' (endpoint URLs are appended to it)".into(),
            );
        }
        if iss.scheme() == "http" && !is_loopback_host(&iss) {
            return err(
                "server.issuer: plain http is only allowed for a loopback host; use https".into(),
            );
        }
        match (&self.server.tls_cert_file, &self.server.tls_key_file) {
            (Some(_), None) => {
                return err("server.tls_key_file: required when server.tls_cert_file is set".into())
            }
            (None, Some(_)) => {
                return err("server.tls_cert_file: required when server.tls_key_file is set".into())
            }
            _ => {}
        }
        if self.server.max_body_bytes < 1024 || self.server.max_body_bytes > 10 * 1024 * 1024 {
            return err("server.max_body_bytes: must be between 1024 and 10485760".into());
        }
        if self.server.header_read_timeout.is_zero() {
            return err("server.header_read_timeout: must be more than 0".into());
        }
        if !(8 * 1024..=1024 * 1024).contains(&self.server.max_header_bytes) {
            return err("server.max_header_bytes: must be between 8192 and 1048576".into());
        }
        if self.server.max_connections == 0 {
            return err("server.max_connections: must be at least 1".into());
        }
        // Each is a semaphore's permit count (a larger one would abort at start-up).
        for (key, n) in [
            ("max_inflight_requests", self.server.max_inflight_requests),
            ("max_event_streams", self.server.max_event_streams),
        ] {
            if !(1..=1_000_000).contains(&n) {
                return err(format!("server.{key}: must be between 1 and 1000000"));
            }
        }
        if self.database.backend().is_none() {
            return err(self.database.unsupported());
        }
        if self.database.max_connections == 0 {
            return err("database.max_connections: must be at least 1".into());
        }
        if self.keys.publish_ahead < self.keys.jwks_max_age {
            return err("keys.publish_ahead: must be at least keys.jwks_max_age, so verifiers see a key before it signs".into());
        }
        if self.keys.rotation_interval <= self.keys.publish_ahead {
            return err("keys.rotation_interval: must be longer than keys.publish_ahead".into());
        }
        if self.tokens.access_token_ttl > self.tokens.max_access_token_ttl {
            return err(
                "tokens.access_token_ttl: must not exceed tokens.max_access_token_ttl".into(),
            );
        }
        if self.tokens.access_token_ttl < Duration::from_secs(60) {
            return err("tokens.access_token_ttl: must be at least 1m".into());
        }
        if !(self.anomaly.frequency_factor >= 1.0 && self.anomaly.frequency_factor <= 1_000.0) {
            return err("anomaly.frequency_factor: must be between 1 and 1000".into());
        }
        if !(self.anomaly.travel_max_kmh >= 100.0 && self.anomaly.travel_max_kmh <= 100_000.0) {
            return err("anomaly.travel_max_kmh: must be between 100 and 100000".into());
        }
        if self.anomaly.failures_per_ip == 0 || self.anomaly.failures_per_account == 0 {
            return err(
                "anomaly.failures_per_ip / failures_per_account: must be at least 1".into(),
            );
        }
        for (key, path) in [
            ("anomaly.geoip_db", &self.anomaly.geoip_db),
            ("anomaly.asn_db", &self.anomaly.asn_db),
        ] {
            if let Some(p) = path {
                if !p.is_file() {
                    return err(format!("{key}: {} is not a readable file", p.display()));
                }
            }
        }
        if portcullis_service::passwords::PasswordHasherCfg::new(self.signin.config().argon2)
            .is_err()
            || self.signin.argon2_memory_kib < 8 * 1024
        {
            return err(
                "signin.argon2_*: Argon2id needs at least 8192 KiB of memory, 1 pass and 1 lane"
                    .into(),
            );
        }
        if self.dpop.nonce_lifetime < Duration::from_secs(10)
            || self.dpop.proof_max_age < Duration::from_secs(5)
            || self.dpop.proof_max_age > Duration::from_secs(600)
        {
            return err(
                "dpop: nonce_lifetime must be at least 10s and proof_max_age between 5s and 10m"
                    .into(),
            );
        }
        if self.signin.lockout_threshold == 0 || self.signin.ip_lockout_threshold == 0 {
            return err(
                "signin.lockout_threshold / ip_lockout_threshold: must be at least 1".into(),
            );
        }
        if self.signin.session_idle > self.signin.session_ttl
            || self.signin.session_idle < Duration::from_secs(60)
        {
            return err(
                "signin.session_idle: must be at least 1m and at most signin.session_ttl".into(),
            );
        }
        if self.signin.totp_issuer.is_empty() || self.signin.totp_issuer.contains(':') {
            return err("signin.totp_issuer: must be non-empty without ':'".into());
        }
        if !(1..=50).contains(&self.webhooks.max_attempts) {
            return err("webhooks.max_attempts: must be between 1 and 50".into());
        }
        if self.webhooks.retry_base > self.webhooks.retry_max {
            return err("webhooks.retry_base: must not exceed webhooks.retry_max".into());
        }
        if self.audit.retention < Duration::from_secs(86_400) {
            return err("audit.retention: must be at least 1d".into());
        }
        if self.tokens.leeway > Duration::from_secs(300) {
            return err("tokens.leeway: must be at most 5m".into());
        }
        for (key, list) in [
            ("ip.trusted_proxies", &self.ip.trusted_proxies),
            ("ip.allow", &self.ip.allow),
            ("ip.deny", &self.ip.deny),
        ] {
            AllowList::parse(list).map_err(|e| ConfigError(format!("{key}: {e}")))?;
        }
        if axum::http::HeaderName::from_bytes(self.forwardauth.api_key_header.as_bytes()).is_err() {
            return err("forwardauth.api_key_header: not a valid header name".into());
        }
        for r in &self.forwardauth.routes {
            if !r.prefix.starts_with('/') {
                return err(format!(
                    "forwardauth.routes: prefix {:?} must start with '/'",
                    r.prefix
                ));
            }
            if let Err(e) = portcullis_core::scope::ScopeSet::from_tokens(&r.scopes) {
                return err(format!("forwardauth.routes: {e}"));
            }
            if let Some(m) = r
                .methods
                .iter()
                .find(|m| axum::http::Method::from_bytes(m.as_bytes()).is_err() || m.is_empty())
            {
                return err(format!("forwardauth.routes: method {m:?} is not valid"));
            }
        }
        if let Some(u) = &self.redis.url {
            match url::Url::parse(u) {
                Ok(p) if matches!(p.scheme(), "redis" | "rediss") => {}
                _ => {
                    return err(format!(
                        "redis.url: {:?} is not a redis:// or rediss:// URL",
                        redact_url(u)
                    ))
                }
            }
        }
        Ok(())
    }
}

fn is_loopback_host(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Strips credentials from a URL for messages.
fn redact_url(s: &str) -> String {
    match url::Url::parse(s) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("redacted"));
            }
            u.to_string()
        }
        Err(_) => "<unparsable url>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env_of(vars: &[(&str, &str)]) -> Env {
        // figment reads the real environment; use a unique prefix per test so tests stay hermetic.
        let prefix = format!("PCTEST{}_", uuid::Uuid::new_v4().simple());
        for (k, v) in vars {
            std::env::set_var(format!("{prefix}{k}"), v);
        }
        Env::prefixed(Box::leak(prefix.into_boxed_str()))
    }

    #[test]
    fn env_names_split_at_the_first_underscore() {
        for (name, key) in [
            ("server_listen", "server.listen"),
            ("server_issuer", "server.issuer"),
            ("database_url", "database.url"),
            ("keys_master_key_file", "keys.master_key_file"),
            ("redis_url", "redis.url"),
            ("tokens_max_access_token_ttl", "tokens.max_access_token_ttl"),
        ] {
            assert_eq!(env_key(name), key);
        }
    }

    #[test]
    fn toml_text_loads_like_a_file_and_dpop_settings_are_checked() {
        let s = Settings::from_toml_str("[dpop]\nrequire_nonce = true\nproof_max_age = \"30s\"\n")
            .expect("valid");
        assert!(s.dpop.require_nonce);
        assert_eq!(s.dpop.proof_max_age, Duration::from_secs(30));
        for bad in [
            "[dpop]\nproof_max_age = \"1h\"\n",
            "[dpop]\nnonce_lifetime = \"1s\"\n",
            "[dpop]\nbogus = 1\n",
            "[server\n",
        ] {
            assert!(Settings::from_toml_str(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_test_suites_variables_are_not_settings() {
        let env = env_of(&[
            ("TEST_DATABASE_URL", "postgres://x"),
            ("TEST_REDIS_URL", "redis://x"),
            ("LOG_LEVEL", "debug"),
        ]);
        let s = Settings::load_from(None, env).expect("PORTCULLIS_TEST_* are ignored");
        assert_eq!(s.log.level, "debug", "other variables still apply");
    }

    #[test]
    fn defaults_match_the_design() {
        let s = Settings::load_from(None, env_of(&[])).expect("defaults");
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.server.issuer, "http://127.0.0.1:8080");
        assert_eq!(s.database.url, "sqlite://portcullis.db?mode=rwc");
        assert_eq!(s.keys.access_token_alg, SigningAlg::ES256);
        assert_eq!(s.tokens.access_token_ttl, Duration::from_secs(900));
        assert_eq!(s.keys.rotation_interval, Duration::from_secs(90 * 86_400));
        assert!(s.ratelimit.enabled);
        assert_eq!(
            s.ratelimit.token_per_ip.map(|r| r.to_string()).as_deref(),
            Some("6000/minute"),
            "the token endpoint is limited by default"
        );
        assert!(
            s.ratelimit.login_per_ip.is_some(),
            "login is limited by default"
        );
        assert!(s.redis.url.is_none());
    }

    #[test]
    fn rate_limits_read_off_and_n_per_period_from_the_environment() {
        let s = Settings::load_from(
            None,
            env_of(&[
                ("RATELIMIT_TOKEN_PER_IP", "off"),
                ("RATELIMIT_VERIFY_PER_IP", "50/second"),
                ("IP_TRUSTED_PROXIES", "[\"127.0.0.1/32\", \"::1\"]"),
                ("REDIS_URL", "redis://127.0.0.1:6379/0"),
            ]),
        )
        .expect("load");
        assert_eq!(s.ratelimit.token_per_ip, None);
        assert_eq!(
            s.ratelimit.verify_per_ip.map(|r| r.to_string()).as_deref(),
            Some("50/second")
        );
        assert_eq!(s.ip.trusted_proxies.len(), 2);
        assert_eq!(s.redis.url.as_deref(), Some("redis://127.0.0.1:6379/0"));
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let mut f = tempfile::NamedTempFile::new().expect("tmp");
        writeln!(
            f,
            "[server]\nlisten = \"127.0.0.1:9000\"\n[tokens]\naccess_token_ttl = \"10m\""
        )
        .expect("write");
        let s = Settings::load_from(
            Some(f.path()),
            env_of(&[
                ("SERVER_LISTEN", "127.0.0.1:9100"),
                ("KEYS_MASTER_KEY_FILE", "/tmp/mk"),
            ]),
        )
        .expect("load");
        assert_eq!(s.server.listen.port(), 9100);
        assert_eq!(s.tokens.access_token_ttl, Duration::from_secs(600));
        assert_eq!(s.keys.master_key_file, PathBuf::from("/tmp/mk"));
    }

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("SERVER_LISTEN", "nope")], "server.listen"),
            (&[("SERVER_BOGUS", "1")], "bogus"),
            (
                &[("TOKENS_ACCESS_TOKEN_TTL", "soon")],
                "tokens.access_token_ttl",
            ),
            (
                &[("KEYS_ACCESS_TOKEN_ALG", "HS256")],
                "keys.access_token_alg",
            ),
            (&[("SERVER_ISSUER", "not a url")], "server.issuer"),
            (
                &[("SERVER_ISSUER", "http://auth.example.com")],
                "server.issuer",
            ),
            (
                &[("SERVER_ISSUER", "https://auth.example.com/")],
                "server.issuer",
            ),
            (&[("SERVER_TLS_CERT_FILE", "/x.pem")], "server.tls_key_file"),
            (&[("DATABASE_URL", "mysql://u:pw@h/db")], "database.url"),
            (&[("KEYS_PUBLISH_AHEAD", "1m")], "keys.publish_ahead"),
            (
                &[("TOKENS_ACCESS_TOKEN_TTL", "2d")],
                "tokens.access_token_ttl",
            ),
            (&[("LOG_FORMAT", "xml")], "log.format"),
            (
                &[("RATELIMIT_TOKEN_PER_IP", "lots")],
                "ratelimit.token_per_ip",
            ),
            (&[("IP_DENY", "[\"10.0.0.0/33\"]")], "ip.deny"),
            (&[("REDIS_URL", "http://u:pw@h")], "redis.url"),
            (
                &[("SERVER_MAX_INFLIGHT_REQUESTS", "0")],
                "server.max_inflight_requests",
            ),
            (
                &[("SERVER_MAX_EVENT_STREAMS", "0")],
                "server.max_event_streams",
            ),
            (
                &[("SERVER_MAX_EVENT_STREAMS", "18446744073709551615")],
                "server.max_event_streams",
            ),
            (
                &[("SERVER_MAX_INFLIGHT_REQUESTS", "2305843009213693952")],
                "server.max_inflight_requests",
            ),
        ];
        for (vars, key) in cases {
            let e = Settings::load_from(None, env_of(vars))
                .expect_err(key)
                .to_string();
            assert!(e.contains(key), "{key}: {e}");
            assert!(!e.contains("pw@"), "credentials never echoed: {e}");
        }
        let e = Settings::load_from(Some(Path::new("/nonexistent/portcullis.toml")), env_of(&[]))
            .expect_err("missing");
        // Both store schemes are taken, in either case, with their backend named once.
        for (url, backend) in [
            ("sqlite://x.db?mode=rwc", DatabaseBackend::Sqlite),
            (
                "postgres://u:pw@db.internal/portcullis",
                DatabaseBackend::Postgres,
            ),
            (
                "PostgreSQL://u@db/p?options[search_path]=auth",
                DatabaseBackend::Postgres,
            ),
        ] {
            let s = Settings::load_from(None, env_of(&[("DATABASE_URL", url)])).expect(url);
            assert_eq!(s.database.backend(), Some(backend), "{url}");
        }
        let pg = DatabaseSettings {
            url: "postgres://u:pw@db.internal/portcullis".into(),
            ..DatabaseSettings::default()
        };
        assert_eq!(
            pg.redacted_url(),
            "postgres://u:redacted@db.internal/portcullis"
        );
        for url in ["postgres", "file:x.db", "", "mysql://u:pw@h/db"] {
            let s = DatabaseSettings {
                url: url.into(),
                ..DatabaseSettings::default()
            };
            assert_eq!(s.backend(), None, "{url}");
        }
        assert!(e.to_string().contains("does not exist"));
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let mut f = tempfile::NamedTempFile::new().expect("tmp");
        writeln!(f, "[server]\nlisten_addr = \"127.0.0.1:9000\"").expect("write");
        let e = Settings::load_from(Some(f.path()), env_of(&[]))
            .expect_err("unknown")
            .to_string();
        assert!(e.contains("listen_addr"), "{e}");
    }
}
