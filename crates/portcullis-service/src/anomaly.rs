//! Anomaly detection per credential and per address, with automatic response.
//!
//! Signals, each explained in its audit record (`details`: what was seen, the
//! baseline or threshold it crossed):
//! - **frequency**: a credential's requests this minute exceed `frequency_factor` ×
//!   its own EWMA of requests per minute (and at least `frequency_min`), once it has
//!   `frequency_warmup` minutes of history;
//! - **new_country** / **new_asn**: a credential with history is used from a
//!   country (or autonomous system) it was never used from, per the configured
//!   MaxMind-format databases (`anomaly.geoip_db`, `anomaly.asn_db`);
//! - **impossible_travel**: two consecutive uses further apart than
//!   `travel_max_kmh` allows (City databases carry coordinates);
//! - **failure_burst**: at least `failures_per_ip` failed authentications from one
//!   address, or `failures_per_account` against one account, within a minute.
//!
//! Actions per signal: `log` (a warning and an `anomaly.detected` audit record),
//! `alert` (the record is `anomaly.alert`, which webhooks subscribe to),
//! `deny_ip` (the address is refused for `deny_ip_for`; the deny lifts itself) and
//! `revoke` (the credential used is revoked at once). Defaults: log + alert.
//!
//! State lives in process memory, bounded; in a cluster each node judges what it
//! sees (the deny list and revocations are shared through the database).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;

use ipnet::IpNet;
use portcullis_core::limits::parse_network;
use portcullis_store::IpBlockRow;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::audit::{AuditEvent, Outcome};
use crate::{Authority, ServiceError};

/// Most credentials (and addresses) tracked; past it the oldest half is dropped.
const TRACKED_MAX: usize = 100_000;

/// What to do about a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Warn in the log and record `anomaly.detected`.
    Log,
    /// Record `anomaly.alert` (webhooks).
    Alert,
    /// Refuse the address for `deny_ip_for`.
    DenyIp,
    /// Revoke the credential used.
    Revoke,
}

/// A signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Rate far above the credential's own baseline.
    Frequency,
    /// A country never seen for the credential.
    NewCountry,
    /// An autonomous system never seen for the credential.
    NewAsn,
    /// Faster than anyone travels.
    ImpossibleTravel,
    /// Many failed authentications.
    FailureBurst,
}

impl Signal {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Frequency => "frequency",
            Self::NewCountry => "new_country",
            Self::NewAsn => "new_asn",
            Self::ImpossibleTravel => "impossible_travel",
            Self::FailureBurst => "failure_burst",
        }
    }
}

/// Detection settings.
#[derive(Debug, Clone)]
pub struct AnomalyConfig {
    /// Master switch.
    pub enabled: bool,
    /// Frequency: this many times the baseline…
    pub frequency_factor: f64,
    /// …and at least this many requests in the minute.
    pub frequency_min: u32,
    /// Minutes of history before the baseline is trusted.
    pub frequency_warmup: u32,
    /// Impossible travel above this speed.
    pub travel_max_kmh: f64,
    /// Failed authentications per address per minute.
    pub failures_per_ip: u32,
    /// Failed authentications per account per minute.
    pub failures_per_account: u32,
    /// How long `deny_ip` refuses an address.
    pub deny_ip_for: std::time::Duration,
    /// Actions per signal (a signal with none is off).
    pub actions: HashMap<Signal, Vec<Action>>,
    /// MaxMind-format City or Country database (countries, coordinates).
    pub geoip_db: Option<std::path::PathBuf>,
    /// MaxMind-format ASN database.
    pub asn_db: Option<std::path::PathBuf>,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        let safe = vec![Action::Log, Action::Alert];
        Self {
            enabled: true,
            frequency_factor: 10.0,
            frequency_min: 100,
            frequency_warmup: 10,
            travel_max_kmh: 1_000.0,
            failures_per_ip: 20,
            failures_per_account: 10,
            deny_ip_for: std::time::Duration::from_secs(3_600),
            actions: [
                (Signal::Frequency, safe.clone()),
                (Signal::NewCountry, safe.clone()),
                (Signal::NewAsn, vec![Action::Log]),
                (Signal::ImpossibleTravel, safe.clone()),
                (Signal::FailureBurst, safe),
            ]
            .into_iter()
            .collect(),
            geoip_db: None,
            asn_db: None,
        }
    }
}

/// Where an address is, per the configured databases.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Place {
    /// ISO country code.
    pub country: Option<String>,
    /// Latitude, longitude.
    pub coords: Option<(f64, f64)>,
    /// Autonomous system number.
    pub asn: Option<u32>,
}

/// MaxMind-format readers (GeoLite2/GeoIP2 City or Country, and ASN).
#[derive(Default)]
pub struct Geo {
    city: Option<maxminddb::Reader<Vec<u8>>>,
    asn: Option<maxminddb::Reader<Vec<u8>>>,
}

impl std::fmt::Debug for Geo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Geo")
            .field("city", &self.city.is_some())
            .field("asn", &self.asn.is_some())
            .finish()
    }
}

impl Geo {
    /// Opens the databases that are configured.
    pub fn open(city: Option<&Path>, asn: Option<&Path>) -> Result<Self, ServiceError> {
        let open = |field: &'static str, p: Option<&Path>| {
            p.map(|p| {
                maxminddb::Reader::open_readfile(p)
                    .map_err(|e| ServiceError::invalid(field, format!("{}: {e}", p.display())))
            })
            .transpose()
        };
        Ok(Self {
            city: open("anomaly.geoip_db", city)?,
            asn: open("anomaly.asn_db", asn)?,
        })
    }

    /// Looks `ip` up.
    pub fn locate(&self, ip: IpAddr) -> Place {
        let mut place = Place::default();
        if let Some(r) = &self.city {
            if let Ok(Some(c)) = r
                .lookup(ip)
                .and_then(|l| l.decode::<maxminddb::geoip2::City<'_>>())
            {
                place.country = c.country.iso_code.map(str::to_owned);
                if let (Some(lat), Some(lon)) = (c.location.latitude, c.location.longitude) {
                    place.coords = Some((lat, lon));
                }
            }
        }
        if let Some(r) = &self.asn {
            if let Ok(Some(a)) = r
                .lookup(ip)
                .and_then(|l| l.decode::<maxminddb::geoip2::Asn<'_>>())
            {
                place.asn = a.autonomous_system_number;
            }
        }
        place
    }
}

/// Great-circle distance, km.
pub fn haversine_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let r = 6_371.0_f64;
    let (la1, lo1, la2, lo2) = (
        a.0.to_radians(),
        a.1.to_radians(),
        b.0.to_radians(),
        b.1.to_radians(),
    );
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * r * h.sqrt().asin()
}

#[derive(Debug, Default)]
struct CredState {
    minute: i64,
    count: u32,
    ewma: f64,
    minutes_seen: u32,
    flagged_minute: i64,
    countries: Vec<String>,
    asns: Vec<u32>,
    last_place: Option<(i64, (f64, f64))>,
}

#[derive(Debug, Default)]
struct FailState {
    minute: i64,
    count: u32,
    flagged_minute: i64,
}

/// Detector state.
#[derive(Debug, Default)]
pub struct Detector {
    geo: Geo,
    creds: Mutex<HashMap<String, CredState>>,
    fails: Mutex<HashMap<String, FailState>>,
}

impl Detector {
    /// A detector over `geo`.
    pub fn new(geo: Geo) -> Self {
        Self {
            geo,
            ..Self::default()
        }
    }
}

fn bound<V>(m: &mut HashMap<String, V>) {
    if m.len() >= TRACKED_MAX {
        let drop: Vec<String> = m.keys().take(TRACKED_MAX / 2).cloned().collect();
        for k in drop {
            m.remove(&k);
        }
    }
}

/// A credential in use, as the detector and the `revoke` action see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialRef {
    /// An OAuth client (tracked by client id; `token` is the access token's id).
    Client {
        /// Client id.
        client_id: String,
        /// The token presented, if any (revoked by `revoke`).
        token: Option<TokenRef>,
    },
    /// An API key.
    ApiKey(String),
    /// A personal access token.
    Pat(String),
}

/// An access token to revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRef {
    /// A JWT: its jti, client and expiry.
    Jwt {
        /// jti
        jti: String,
        /// Client.
        client_id: String,
        /// Expiry.
        exp: i64,
    },
    /// An opaque token id.
    Opaque(String),
}

impl CredentialRef {
    fn key(&self) -> String {
        match self {
            Self::Client { client_id, .. } => format!("client:{client_id}"),
            Self::ApiKey(id) => format!("key:{id}"),
            Self::Pat(id) => format!("pat:{id}"),
        }
    }

    fn id(&self) -> String {
        match self {
            Self::Client { client_id, .. } => client_id.clone(),
            Self::ApiKey(id) | Self::Pat(id) => id.clone(),
        }
    }
}

/// One detection, before actions run.
#[derive(Debug, Clone)]
struct Finding {
    signal: Signal,
    details: Value,
}

impl Authority {
    /// The anomaly settings.
    pub fn anomaly_config(&self) -> &AnomalyConfig {
        &self.config.anomaly
    }

    /// A credential was used successfully from `ip`: update its baselines and act on
    /// any signal. Returns the signals raised (for tests and logs).
    pub async fn observe_use(
        &self,
        cred: &CredentialRef,
        ip: Option<IpAddr>,
    ) -> Result<Vec<Signal>, ServiceError> {
        let cfg = &self.config.anomaly;
        if !cfg.enabled {
            return Ok(Vec::new());
        }
        let now = self.now();
        let minute = now.div_euclid(60);
        let place = ip
            .map(|ip| self.detector.geo.locate(ip))
            .unwrap_or_default();
        let findings = {
            let mut g = match self.detector.creds.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            let key = cred.key();
            if !g.contains_key(&key) {
                bound(&mut g);
            }
            let st = g.entry(key).or_default();
            judge_use(cfg, st, minute, now, &place)
        };
        let mut raised = Vec::new();
        for f in findings {
            raised.push(f.signal);
            self.respond(f, Some(cred), ip, &place).await?;
        }
        Ok(raised)
    }

    /// An authentication failed from `ip` (against `account` when one was named).
    pub async fn observe_failure(
        &self,
        ip: Option<IpAddr>,
        account: Option<&str>,
    ) -> Result<Vec<Signal>, ServiceError> {
        let cfg = &self.config.anomaly;
        if !cfg.enabled {
            return Ok(Vec::new());
        }
        let minute = self.now().div_euclid(60);
        let mut findings = Vec::new();
        {
            let mut g = match self.detector.fails.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            let mut count = |key: String, threshold: u32, what: &str| {
                if !g.contains_key(&key) {
                    bound(&mut g);
                }
                let st = g.entry(key).or_default();
                if st.minute != minute {
                    st.minute = minute;
                    st.count = 0;
                }
                st.count += 1;
                if st.count >= threshold && st.flagged_minute != minute {
                    st.flagged_minute = minute;
                    findings.push(Finding {
                        signal: Signal::FailureBurst,
                        details: json!({
                            "per": what,
                            "failures_this_minute": st.count,
                            "threshold": threshold,
                        }),
                    });
                }
            };
            if let Some(ip) = ip {
                count(
                    format!("ip:{}", crate::ratelimit::ip_partition(ip)),
                    cfg.failures_per_ip,
                    "ip",
                );
            }
            if let Some(a) = account {
                let a: String = a.chars().take(128).collect();
                count(format!("account:{a}"), cfg.failures_per_account, "account");
            }
        }
        let mut raised = Vec::new();
        for f in findings {
            raised.push(f.signal);
            self.respond(f, None, ip, &Place::default()).await?;
        }
        Ok(raised)
    }

    async fn respond(
        &self,
        f: Finding,
        cred: Option<&CredentialRef>,
        ip: Option<IpAddr>,
        place: &Place,
    ) -> Result<(), ServiceError> {
        let actions = self
            .config
            .anomaly
            .actions
            .get(&f.signal)
            .cloned()
            .unwrap_or_default();
        if actions.is_empty() {
            return Ok(());
        }
        let alert = actions.contains(&Action::Alert);
        let mut details = f.details.clone();
        if let Value::Object(m) = &mut details {
            m.insert("signal".into(), json!(f.signal.as_str()));
            m.insert("actions".into(), json!(actions));
            if let Some(c) = &place.country {
                m.insert("country".into(), json!(c));
            }
            if let Some(ip) = ip {
                m.insert("observed_ip".into(), json!(ip.to_string()));
            }
        }
        tracing::warn!(signal = f.signal.as_str(), credential = cred.map(CredentialRef::id).as_deref().unwrap_or("-"), ip = ?ip, details = %details, "anomaly detected");
        let mut e = AuditEvent::new(if alert {
            "anomaly.alert"
        } else {
            "anomaly.detected"
        })
        .actor("anomaly-detector")
        .outcome(Outcome::Refused, f.signal.as_str())
        .details(details);
        if let Some(c) = cred {
            e = e.credential(c.id());
        }
        self.audit(e).await?;
        if actions.contains(&Action::DenyIp) {
            if let Some(ip) = ip {
                self.block_ip(ip, f.signal.as_str(), self.config.anomaly.deny_ip_for)
                    .await?;
            }
        }
        if actions.contains(&Action::Revoke) {
            if let Some(c) = cred {
                self.revoke_credential(c, f.signal.as_str()).await?;
            }
        }
        Ok(())
    }

    async fn revoke_credential(&self, c: &CredentialRef, why: &str) -> Result<(), ServiceError> {
        match c {
            CredentialRef::ApiKey(id) => {
                self.revoke_api_key(id).await?;
            }
            CredentialRef::Pat(id) => {
                self.revoke_pat(id).await?;
            }
            CredentialRef::Client { token: None, .. } => {}
            CredentialRef::Client {
                token:
                    Some(TokenRef::Jwt {
                        jti,
                        client_id,
                        exp,
                    }),
                ..
            } => {
                self.deny_jti(jti, client_id, *exp).await?;
            }
            CredentialRef::Client {
                token: Some(TokenRef::Opaque(id)),
                ..
            } => {
                self.revoke_opaque_by_id(id).await?;
            }
        }
        self.audit(
            AuditEvent::new("anomaly.credential_revoked")
                .actor("anomaly-detector")
                .credential(c.id())
                .outcome(Outcome::Success, why),
        )
        .await
    }

    /// Refuses `ip` (its /32, or the /64 for IPv6) for `for_` (the deny lifts itself).
    pub async fn block_ip(
        &self,
        ip: IpAddr,
        reason: &str,
        for_: std::time::Duration,
    ) -> Result<(), ServiceError> {
        let net = match ip {
            IpAddr::V4(_) => IpNet::from(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpNet::from(IpAddr::V4(v4)),
                None => IpNet::new(ip, 64).map_err(anyhow::Error::from)?.trunc(),
            },
        };
        self.block_network(net, reason, for_).await
    }

    /// Refuses an address or CIDR as an administrator types it, for `for_`.
    pub async fn block(
        &self,
        network: &str,
        reason: &str,
        for_: std::time::Duration,
    ) -> Result<IpBlockView, ServiceError> {
        let net = parse_network(network)
            .map_err(|_| ServiceError::invalid("network", "not an address or CIDR"))?;
        if for_.as_secs() < 1 || for_.as_secs() > 365 * 86_400 {
            return Err(ServiceError::invalid("duration", "must be from 1s to 365d"));
        }
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 200 || reason.chars().any(char::is_control)
        {
            return Err(ServiceError::invalid(
                "reason",
                "must be 1 to 200 characters without control characters",
            ));
        }
        self.block_network(net, reason, for_).await?;
        self.list_ip_blocks()
            .await?
            .into_iter()
            .find(|b| b.network == net.to_string())
            .ok_or_else(|| ServiceError::Unexpected(anyhow::anyhow!("block vanished")))
    }

    async fn block_network(
        &self,
        net: IpNet,
        reason: &str,
        for_: std::time::Duration,
    ) -> Result<(), ServiceError> {
        let now = self.now();
        self.store
            .upsert_ip_block(&IpBlockRow {
                network: net.to_string(),
                reason: reason.chars().take(200).collect(),
                created_at: now,
                expires_at: now + for_.as_secs() as i64,
            })
            .await?;
        self.reload_ip_blocks().await?;
        self.audit(
            AuditEvent::new("ip.blocked")
                .subject(net.to_string())
                .outcome(Outcome::Success, reason)
                .details(json!({"expires_at": now + for_.as_secs() as i64})),
        )
        .await
    }

    /// Lifts a deny.
    pub async fn unblock_ip(&self, network: &str) -> Result<(), ServiceError> {
        let net = parse_network(network)
            .map_err(|_| ServiceError::invalid("network", "not an address or CIDR"))?;
        if !self.store.delete_ip_block(&net.to_string()).await? {
            return Err(ServiceError::NotFound(format!("ip block {net}")));
        }
        self.reload_ip_blocks().await?;
        self.audit(AuditEvent::new("ip.unblocked").subject(net.to_string()))
            .await
    }

    /// Denies in force.
    pub async fn list_ip_blocks(&self) -> Result<Vec<IpBlockView>, ServiceError> {
        Ok(self
            .store
            .list_ip_blocks(self.now())
            .await?
            .into_iter()
            .map(|b| IpBlockView {
                network: b.network,
                reason: b.reason,
                created_at: b.created_at,
                expires_at: b.expires_at,
            })
            .collect())
    }

    /// Reloads the denies from the store (after a change here or elsewhere).
    pub async fn reload_ip_blocks(&self) -> Result<(), ServiceError> {
        let rows = self.store.list_ip_blocks(self.now()).await?;
        let list: Vec<(IpNet, i64)> = rows
            .iter()
            .filter_map(|r| IpNet::from_str(&r.network).ok().map(|n| (n, r.expires_at)))
            .collect();
        match self.ip_blocks.write() {
            Ok(mut g) => *g = list,
            Err(p) => *p.into_inner() = list,
        }
        Ok(())
    }

    /// True when `ip` is under a deny still in force.
    pub fn is_ip_blocked(&self, ip: IpAddr) -> bool {
        let now = self.now();
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let g = match self.ip_blocks.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.iter().any(|(n, exp)| *exp > now && n.contains(&ip))
    }
}

/// A deny as shown.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IpBlockView {
    /// CIDR.
    pub network: String,
    /// Why.
    pub reason: String,
    /// Created (unix seconds).
    pub created_at: i64,
    /// Lifted at (unix seconds).
    pub expires_at: i64,
}

fn judge_use(
    cfg: &AnomalyConfig,
    st: &mut CredState,
    minute: i64,
    now: i64,
    place: &Place,
) -> Vec<Finding> {
    let mut out = Vec::new();
    // Frequency: roll the minute window into the EWMA (empty minutes decay it).
    const ALPHA: f64 = 0.3;
    if st.minute != minute {
        if st.minute != 0 {
            st.ewma = ALPHA * f64::from(st.count) + (1.0 - ALPHA) * st.ewma;
            st.minutes_seen += 1;
            let idle = (minute - st.minute - 1).clamp(0, 1_000) as i32;
            st.ewma *= (1.0 - ALPHA).powi(idle);
            st.minutes_seen += idle as u32;
        }
        st.minute = minute;
        st.count = 0;
    }
    st.count += 1;
    let threshold = (cfg.frequency_factor * st.ewma).max(f64::from(cfg.frequency_min));
    if st.minutes_seen >= cfg.frequency_warmup
        && f64::from(st.count) > threshold
        && st.flagged_minute != minute
    {
        st.flagged_minute = minute;
        out.push(Finding {
            signal: Signal::Frequency,
            details: json!({
                "requests_this_minute": st.count,
                "baseline_per_minute": (st.ewma * 100.0).round() / 100.0,
                "threshold": (threshold * 100.0).round() / 100.0,
                "factor": cfg.frequency_factor,
            }),
        });
    }
    if let Some(c) = &place.country {
        if !st.countries.is_empty() && !st.countries.contains(c) {
            out.push(Finding {
                signal: Signal::NewCountry,
                details: json!({"new_country": c, "seen_before": st.countries.clone()}),
            });
        }
        if !st.countries.contains(c) && st.countries.len() < 64 {
            st.countries.push(c.clone());
        }
    }
    if let Some(a) = place.asn {
        if !st.asns.is_empty() && !st.asns.contains(&a) {
            out.push(Finding {
                signal: Signal::NewAsn,
                details: json!({"new_asn": a, "seen_before": st.asns.clone()}),
            });
        }
        if !st.asns.contains(&a) && st.asns.len() < 64 {
            st.asns.push(a);
        }
    }
    if let Some(here) = place.coords {
        if let Some((then, there)) = st.last_place {
            let km = haversine_km(there, here);
            let hours = ((now - then).max(1) as f64) / 3_600.0;
            let kmh = km / hours;
            // Nearby moves are noise (databases place addresses roughly).
            if km > 500.0 && kmh > cfg.travel_max_kmh {
                out.push(Finding {
                    signal: Signal::ImpossibleTravel,
                    details: json!({
                        "distance_km": km.round(),
                        "seconds_between_uses": now - then,
                        "speed_kmh": kmh.round(),
                        "max_kmh": cfg.travel_max_kmh,
                    }),
                });
            }
        }
        st.last_place = Some((now, here));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_are_great_circle() {
        let berlin = (52.52, 13.405);
        let sydney = (-33.868, 151.209);
        let km = haversine_km(berlin, sydney);
        assert!((16_000.0..16_200.0).contains(&km), "{km}");
        assert!(haversine_km(berlin, berlin) < 1e-6);
    }

    #[test]
    fn a_steady_credential_builds_a_baseline_and_a_spike_is_flagged_once() {
        let cfg = AnomalyConfig {
            frequency_min: 20,
            frequency_warmup: 3,
            ..AnomalyConfig::default()
        };
        let mut st = CredState::default();
        let place = Place::default();
        let mut t: i64 = 1_800_000_000; // a whole minute
        for _ in 0..5 {
            for _ in 0..5 {
                assert!(judge_use(&cfg, &mut st, t / 60, t, &place).is_empty());
            }
            t += 60;
        }
        let mut flagged = 0;
        for _ in 0..200 {
            flagged += judge_use(&cfg, &mut st, t / 60, t, &place).len();
        }
        assert_eq!(flagged, 1, "once per minute");
    }
}
