//! Rate limiting: GCRA state in one of two stores, and the policies that use it.
//!
//! - [`MemoryRateStore`]: sharded in-process maps, for one node. Entries whose
//!   state has fully drained are dropped when a shard grows past its bound, so an
//!   attacker rotating addresses cannot grow memory without limit.
//! - [`RedisRateStore`]: the same algorithm as one atomic Lua script, so every node
//!   of a cluster shares one budget per key. When Redis cannot be reached the
//!   check falls back to the in-process store (still limited per node) and logs.
//!
//! Both stores call [`portcullis_core::limits::GcraDecision::from_state`], so they
//! give the same answers for the same sequence of requests; a test runs one body
//! against each.
//!
//! Policies ([`RatePolicies`]) name a limit per route class and partition (per IP,
//! per credential); a credential's own limit overrides the class default.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use portcullis_core::limits::{gcra, GcraDecision, RateLimit};

use crate::{Authority, ServiceError};

/// Where GCRA state lives.
#[async_trait]
pub trait RateStore: std::fmt::Debug + Send + Sync {
    /// Admits or refuses one request against `key` under `rl` at `now_us`.
    async fn check(&self, key: &str, rl: RateLimit, now_us: u64) -> GcraDecision;
    /// Forgets `key` (its budget starts full again).
    async fn forget(&self, key: &str);
    /// A short name for logs and metrics.
    fn name(&self) -> &'static str;
}

const SHARDS: usize = 16;
/// Most keys one shard of the in-process store holds before it sweeps drained entries.
pub const MEMORY_SHARD_MAX: usize = 65_536;

/// GCRA state in process memory.
#[derive(Debug)]
pub struct MemoryRateStore {
    shards: Vec<Mutex<HashMap<String, u64>>>,
    shard_max: usize,
}

impl Default for MemoryRateStore {
    fn default() -> Self {
        Self::with_bound(MEMORY_SHARD_MAX)
    }
}

impl MemoryRateStore {
    /// A store whose shards sweep when they hold more than `shard_max` keys.
    pub fn with_bound(shard_max: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            shard_max: shard_max.max(1),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, u64>> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// Keys held, over all shards.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| match s.lock() {
                Ok(g) => g.len(),
                Err(p) => p.into_inner().len(),
            })
            .sum()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The synchronous check (the trait method wraps it).
    pub fn check_now(&self, key: &str, rl: RateLimit, now_us: u64) -> GcraDecision {
        let mut g = match self.shard(key).lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        // A key seen before (the usual case) is hashed once: looked up and updated
        // in place.
        if let Some(tat) = g.get_mut(key) {
            let d = gcra(rl, Some(*tat), now_us);
            if d.allowed {
                *tat = d.tat_us;
            }
            return d;
        }
        let d = gcra(rl, None, now_us);
        if d.allowed {
            if g.len() >= self.shard_max {
                // A drained entry (tat in the past) is the same as no entry.
                g.retain(|_, tat| *tat > now_us);
                if g.len() >= self.shard_max {
                    // Every entry is live: refuse to grow. The request still passes
                    // (its own state is kept) but the oldest budgets are forgotten.
                    let victim = g.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone());
                    if let Some(v) = victim {
                        g.remove(&v);
                    }
                }
            }
            g.insert(key.to_owned(), d.tat_us);
        }
        d
    }
}

#[async_trait]
impl RateStore for MemoryRateStore {
    async fn check(&self, key: &str, rl: RateLimit, now_us: u64) -> GcraDecision {
        self.check_now(key, rl, now_us)
    }

    async fn forget(&self, key: &str) {
        let mut g = match self.shard(key).lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.remove(key);
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

/// GCRA in one Lua script: read the theoretical arrival time, decide, write it
/// back with an expiry of when it drains. Returns `{allowed, tat_us}`.
const GCRA_LUA: &str = r#"
local now = tonumber(ARGV[1])
local t = tonumber(ARGV[2])
local tau = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat > now + tau then
  return {0, tostring(tat)}
end
local new = tat + t
local ttl = math.ceil((new - now) / 1000) + 1000
redis.call('SET', KEYS[1], tostring(new), 'PX', ttl)
return {1, tostring(new)}
"#;

/// GCRA state in Redis, shared by every node.
pub struct RedisRateStore {
    conn: redis::aio::ConnectionManager,
    script: redis::Script,
    prefix: String,
    fallback: MemoryRateStore,
}

impl std::fmt::Debug for RedisRateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRateStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisRateStore {
    /// Connects to `url` (`redis://host:port/db`). Keys are written under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, ServiceError> {
        let client = redis::Client::open(url)
            .map_err(|e| ServiceError::invalid("redis.url", e.to_string()))?;
        let conn = client
            .get_connection_manager()
            .await
            .map_err(|e| ServiceError::Unexpected(anyhow::anyhow!("redis unreachable: {e}")))?;
        Ok(Self {
            conn,
            script: redis::Script::new(GCRA_LUA),
            prefix: prefix.to_owned(),
            fallback: MemoryRateStore::default(),
        })
    }

    async fn eval(
        &self,
        key: &str,
        rl: RateLimit,
        now_us: u64,
    ) -> redis::RedisResult<(i64, String)> {
        let mut conn = self.conn.clone();
        self.script
            .key(format!("{}{key}", self.prefix))
            .arg(now_us)
            .arg(rl.emission_us())
            .arg(rl.tolerance_us())
            .invoke_async(&mut conn)
            .await
    }
}

#[async_trait]
impl RateStore for RedisRateStore {
    async fn check(&self, key: &str, rl: RateLimit, now_us: u64) -> GcraDecision {
        match self.eval(key, rl, now_us).await {
            Ok((allowed, tat)) => match tat.parse::<u64>() {
                Ok(tat) => GcraDecision::from_state(rl, allowed == 1, tat, now_us),
                Err(_) => {
                    tracing::warn!(value = %tat, "redis rate limit: bad state; using the in-process store");
                    self.fallback.check_now(key, rl, now_us)
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "redis rate limit unavailable; using the in-process store");
                self.fallback.check_now(key, rl, now_us)
            }
        }
    }

    async fn forget(&self, key: &str) {
        let mut conn = self.conn.clone();
        let r: redis::RedisResult<i64> = redis::cmd("DEL")
            .arg(format!("{}{key}", self.prefix))
            .query_async(&mut conn)
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "redis rate limit: forget failed");
        }
        self.fallback.forget(key).await;
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}

/// A route class: each has its own limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    /// `/oauth/token`.
    Token,
    /// `/oauth/introspect` and `/oauth/revoke`.
    Introspect,
    /// `POST /api/v1/keys/verify`.
    Verify,
    /// `GET /auth/verify`.
    ForwardAuth,
    /// Password sign-in (browser login, password grant).
    Login,
    /// The rest of the admin API.
    Admin,
}

impl RouteClass {
    /// The name used in keys, headers and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Introspect => "introspect",
            Self::Verify => "verify",
            Self::ForwardAuth => "forward_auth",
            Self::Login => "login",
            Self::Admin => "admin",
        }
    }
}

/// What a limit is counted per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Partition {
    /// The client IP (IPv6 counted per /64: one host usually holds a whole /64).
    Ip,
    /// The credential (client, API key, PAT, token, account).
    Credential,
}

impl Partition {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::Credential => "credential",
        }
    }
}

/// Class defaults; `None` means unlimited.
#[derive(Debug, Clone, Default)]
pub struct RatePolicies {
    /// Master switch.
    pub enabled: bool,
    /// Limits by (class, partition).
    pub limits: HashMap<(RouteClass, Partition), RateLimit>,
}

impl RatePolicies {
    /// The defaults `portcullis serve` uses: the token endpoint and login are limited.
    pub fn defaults() -> Self {
        let mut limits = HashMap::new();
        let rl = |s: &str| s.parse::<RateLimit>().ok();
        for (class, part, limit) in [
            (RouteClass::Token, Partition::Ip, "6000/minute"),
            (RouteClass::Token, Partition::Credential, "3000/minute"),
            (RouteClass::Login, Partition::Ip, "30/minute"),
            (RouteClass::Login, Partition::Credential, "10/minute"),
        ] {
            if let Some(r) = rl(limit) {
                limits.insert((class, part), r);
            }
        }
        Self {
            enabled: true,
            limits,
        }
    }

    /// The limit for (class, partition), if any.
    pub fn get(&self, class: RouteClass, part: Partition) -> Option<RateLimit> {
        if !self.enabled {
            return None;
        }
        self.limits.get(&(class, part)).copied()
    }
}

/// One limit applied to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateOutcome {
    /// Policy name for the `RateLimit-Policy` / `RateLimit` headers (`token-ip`, …).
    pub policy: &'static str,
    /// The limit applied.
    pub limit: RateLimit,
    /// The decision.
    pub decision: GcraDecision,
}

impl RateOutcome {
    /// Seconds until the next request would pass (for `Retry-After`), at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.decision.reset_after_ms.div_ceil(1_000).max(1)
    }
}

/// The policy name in headers: `<class>-<partition>`.
fn policy_name(class: RouteClass, part: Partition) -> &'static str {
    use Partition::{Credential as C, Ip as I};
    use RouteClass::*;
    match (class, part) {
        (Token, I) => "token-ip",
        (Token, C) => "token-credential",
        (Introspect, I) => "introspect-ip",
        (Introspect, C) => "introspect-credential",
        (Verify, I) => "verify-ip",
        (Verify, C) => "verify-credential",
        (ForwardAuth, I) => "forward-auth-ip",
        (ForwardAuth, C) => "forward-auth-credential",
        (Login, I) => "login-ip",
        (Login, C) => "login-credential",
        (Admin, I) => "admin-ip",
        (Admin, C) => "admin-credential",
    }
}

/// The key an IP is counted under: IPv4 (and IPv4-mapped) as is, IPv6 by /64.
pub fn ip_partition(ip: IpAddr) -> String {
    IpPartition(ip).to_string()
}

/// [`ip_partition`] written straight into a rate-limit key (no string of its own).
struct IpPartition(IpAddr);

impl std::fmt::Display for IpPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => f.write_str(crate::ipfmt::V4Text::new(v4).as_str()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => f.write_str(crate::ipfmt::V4Text::new(v4).as_str()),
                None => {
                    let s = v6.segments();
                    write!(f, "{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
                }
            },
        }
    }
}

pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl Authority {
    /// The rate-limit store in use.
    pub fn rate_store(&self) -> &dyn RateStore {
        self.rate_store.as_ref()
    }

    /// The configured policies.
    pub fn rate_policies(&self) -> &RatePolicies {
        &self.rate_policies
    }

    /// Counts one request of `class` against `who` (an IP partition or a credential
    /// id), under `own` when the credential carries its own limit, else the class
    /// default. `None` when nothing limits it.
    pub async fn rate_check(
        &self,
        class: RouteClass,
        part: Partition,
        who: impl std::fmt::Display,
        own: Option<RateLimit>,
    ) -> Option<RateOutcome> {
        if !self.rate_policies.enabled {
            return None;
        }
        let limit = own.or_else(|| self.rate_policies.get(class, part))?;
        // Sized once: `format!` would grow the string two or three times per request.
        let mut key = String::with_capacity(96);
        let _ = std::fmt::Write::write_fmt(
            &mut key,
            format_args!("{}:{}:{who}", class.as_str(), part.as_str()),
        );
        let decision = self.rate_store.check(&key, limit, now_us()).await;
        Some(RateOutcome {
            policy: policy_name(class, part),
            limit,
            decision,
        })
    }

    /// Counts one request of `class` from `ip`.
    pub async fn rate_check_ip(&self, class: RouteClass, ip: IpAddr) -> Option<RateOutcome> {
        self.rate_check(class, Partition::Ip, IpPartition(ip), None)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_counted_per_64_and_mapped_v4_as_v4() {
        let a = ip_partition("2001:db8:1:2:aaaa::1".parse().expect("ip"));
        let b = ip_partition("2001:db8:1:2:bbbb::9".parse().expect("ip"));
        let c = ip_partition("2001:db8:1:3::1".parse().expect("ip"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            ip_partition("::ffff:192.0.2.1".parse().expect("ip")),
            "192.0.2.1"
        );
    }

    #[test]
    fn the_memory_store_stays_bounded_and_keeps_live_budgets() {
        let store = MemoryRateStore::with_bound(4);
        let rl: RateLimit = "1/minute".parse().expect("rl");
        for i in 0..1_000 {
            assert!(store.check_now(&format!("k{i}"), rl, 1_000_000 + i).allowed);
        }
        assert!(store.len() <= 4 * SHARDS, "{} keys held", store.len());
        // The most recent key is still limited.
        assert!(!store.check_now("k999", rl, 1_000_999).allowed);
    }
}
