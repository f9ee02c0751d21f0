//! Per-credential limits as administrators write them: rate limits (`100/minute`)
//! and IP allow lists (CIDRs, IPv4 and IPv6).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Highest request count a rate limit may name.
pub const MAX_RATE: u32 = 1_000_000_000;
/// Most CIDRs in one allow list.
pub const MAX_CIDRS: usize = 256;

/// Why a limit was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitError {
    /// Not `N/PERIOD`.
    #[error("invalid rate limit {0:?}: expected N/PERIOD with N from 1 to 1000000000 and PERIOD second, minute, hour or day")]
    RateLimit(String),
    /// Not a CIDR or IP address.
    #[error(
        "invalid CIDR {0:?}: expected an IPv4 or IPv6 network like 203.0.113.0/24 or 2001:db8::/32"
    )]
    Cidr(String),
    /// Too many entries.
    #[error("too many CIDRs: at most {MAX_CIDRS}")]
    TooManyCidrs,
}

/// `limit` requests per `period_secs`, enforced with GCRA (a smooth rate with a
/// burst of up to `limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    /// Requests allowed per period.
    pub limit: u32,
    /// The period, seconds.
    pub period_secs: u32,
}

impl RateLimit {
    fn period_name(&self) -> &'static str {
        match self.period_secs {
            1 => "second",
            60 => "minute",
            3_600 => "hour",
            _ => "day",
        }
    }
}

impl FromStr for RateLimit {
    type Err = LimitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || LimitError::RateLimit(s.chars().take(40).collect());
        let (n, period) = s.trim().split_once('/').ok_or_else(bad)?;
        let limit: u32 = n.trim().parse().map_err(|_| bad())?;
        if limit == 0 || limit > MAX_RATE {
            return Err(bad());
        }
        let period_secs = match period.trim() {
            "second" | "s" => 1,
            "minute" | "m" => 60,
            "hour" | "h" => 3_600,
            "day" | "d" => 86_400,
            _ => return Err(bad()),
        };
        Ok(Self { limit, period_secs })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.limit, self.period_name())
    }
}

impl Serialize for RateLimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An IP allow list. Empty means "any address".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<IpNet>);

/// Parses one network as administrators write it: a CIDR, or a bare address (its
/// /32 or /128), host bits cleared (`10.1.2.3/8` is `10.0.0.0/8`).
pub fn parse_network(s: &str) -> Result<IpNet, LimitError> {
    let t = s.trim();
    IpNet::from_str(t)
        .or_else(|_| IpAddr::from_str(t).map(IpNet::from))
        .map(|n| ipv4_form(n.trunc()))
        .map_err(|_| LimitError::Cidr(t.chars().take(64).collect()))
}

/// An IPv4-mapped IPv6 network of a /96 or narrower (`::ffff:10.0.0.0/104`) as the
/// IPv4 network it names (`10.0.0.0/8`): allow lists and address blocks compare a
/// client in its IPv4 form, so a network kept in the mapped form would match nothing.
fn ipv4_form(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(n) if n.prefix_len() >= 96 => n
            .network()
            .to_ipv4_mapped()
            .and_then(|a| ipnet::Ipv4Net::new(a, n.prefix_len() - 96).ok())
            .map_or(net, IpNet::V4),
        other => other,
    }
}

impl AllowList {
    /// Parses CIDRs (a bare address is its /32 or /128).
    pub fn parse<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> Result<Self, LimitError> {
        let mut nets = Vec::new();
        for item in items {
            let net = parse_network(item.as_ref())?;
            if !nets.contains(&net) {
                nets.push(net);
            }
            if nets.len() > MAX_CIDRS {
                return Err(LimitError::TooManyCidrs);
            }
        }
        Ok(Self(nets))
    }

    /// True when the list is empty (no restriction).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `ip` may use the credential. IPv4-mapped IPv6 addresses count as IPv4.
    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The CIDRs as text.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_in_ipv4_mapped_form_matches_its_address_in_either_form() {
        // Found by the cidr fuzz target: `::ffff:ff:f` (= ::ffff:0.255.0.15) did not
        // allow itself, since addresses were only compared in their IPv4 form.
        let list = AllowList::parse(["::FFFF:FF:F", "::ffff:10.0.0.0/104"]).expect("parse");
        for ok in [
            "::ffff:0.255.0.15",
            "0.255.0.15",
            "10.1.2.3",
            "::ffff:10.1.2.3",
        ] {
            assert!(list.allows(ok.parse().expect("ip")), "{ok}");
        }
        for no in ["0.255.0.16", "11.0.0.1", "::ffff:11.0.0.1", "::1", "10::1"] {
            assert!(!list.allows(no.parse().expect("ip")), "{no}");
        }
        assert_eq!(list.to_strings(), ["0.255.0.15/32", "10.0.0.0/8"]);
        // The shared parser does it, so an address block typed by an administrator
        // (`block`, `unblock_ip`) is kept in the same form as the addresses it judges.
        assert_eq!(
            parse_network("::ffff:192.0.2.7").expect("net").to_string(),
            "192.0.2.7/32"
        );
        assert_eq!(
            parse_network("::ffff:0:0/96").expect("net").to_string(),
            "0.0.0.0/0"
        );
        // Wider than the mapped range: it stays IPv6, and IPv4 clients are judged as IPv4.
        assert_eq!(
            parse_network("::ffff:0:0/95").expect("net").to_string(),
            "::fffe:0:0/95"
        );
        let wide = AllowList::parse(["::ffff:0:0/95"]).expect("parse");
        assert!(!wide.allows("::ffff:10.1.2.3".parse().expect("ip")));
        assert!(wide.allows("::fffe:0:1".parse().expect("ip")));
        // A plain IPv4 entry still takes a client that arrives IPv4-mapped.
        let v4 = AllowList::parse(["192.0.2.0/24"]).expect("parse");
        assert!(v4.allows("::ffff:192.0.2.7".parse().expect("ip")));
        assert!(!v4.allows("::ffff:198.51.100.7".parse().expect("ip")));
    }

    #[test]
    fn rate_limits_parse_and_print() {
        for (s, limit, period, back) in [
            ("100/minute", 100, 60, "100/minute"),
            ("5/s", 5, 1, "5/second"),
            (" 7 / day ", 7, 86_400, "7/day"),
        ] {
            let r: RateLimit = s.parse().expect(s);
            assert_eq!((r.limit, r.period_secs), (limit, period));
            assert_eq!(r.to_string(), back);
        }
    }

    #[test]
    fn bad_rate_limits_are_refused() {
        for s in [
            "",
            "100",
            "0/minute",
            "-1/minute",
            "100/fortnight",
            "1000000001/second",
            "x/minute",
            "1/2/3",
        ] {
            assert!(s.parse::<RateLimit>().is_err(), "{s}");
        }
    }

    #[test]
    fn allow_lists_match_v4_v6_and_mapped_addresses() {
        let l =
            AllowList::parse(["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]).expect("valid");
        assert!(l.allows("203.0.113.99".parse().expect("ip")));
        assert!(l.allows("198.51.100.7".parse().expect("ip")));
        assert!(!l.allows("198.51.100.8".parse().expect("ip")));
        assert!(l.allows("2001:db8::1".parse().expect("ip")));
        assert!(
            l.allows("::ffff:203.0.113.5".parse().expect("ip")),
            "IPv4-mapped"
        );
        assert!(!l.allows("10.0.0.1".parse().expect("ip")));
        assert!(
            AllowList::default().allows("10.0.0.1".parse().expect("ip")),
            "empty = any"
        );
        assert_eq!(l.to_strings()[2], "198.51.100.7/32");
    }

    #[test]
    fn bad_cidrs_are_refused() {
        for s in [
            "",
            "300.0.0.0/8",
            "10.0.0.0/33",
            "banana",
            "10.0.0.0/8; DROP TABLE",
        ] {
            assert!(AllowList::parse([s]).is_err(), "{s}");
        }
        let many: Vec<String> = (0..=MAX_CIDRS)
            .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256))
            .collect();
        assert_eq!(AllowList::parse(&many), Err(LimitError::TooManyCidrs));
    }
}

/// The outcome of one GCRA check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraDecision {
    /// The request may proceed.
    pub allowed: bool,
    /// The state to keep (theoretical arrival time, µs); unchanged when refused.
    pub tat_us: u64,
    /// Requests that could still be admitted right now.
    pub remaining: u32,
    /// Milliseconds until the limit is fully replenished (allowed) or until the next
    /// request would be admitted (refused).
    pub reset_after_ms: u64,
}

impl RateLimit {
    /// GCRA emission interval (µs between requests at the sustained rate).
    pub fn emission_us(&self) -> u64 {
        (u64::from(self.period_secs) * 1_000_000 / u64::from(self.limit)).max(1)
    }

    /// GCRA tolerance (µs of burst allowed ahead of the sustained rate).
    pub fn tolerance_us(&self) -> u64 {
        u64::from(self.period_secs) * 1_000_000 - self.emission_us()
    }
}

impl GcraDecision {
    /// Rebuilds the full decision from what a remote store (Redis) returns: whether
    /// the request passed and the theoretical arrival time it left behind. Shares
    /// the arithmetic with [`gcra`], so both stores answer alike.
    pub fn from_state(rl: RateLimit, allowed: bool, tat_us: u64, now_us: u64) -> Self {
        let (t, tau) = (rl.emission_us(), rl.tolerance_us());
        if !allowed {
            return Self {
                allowed,
                tat_us,
                remaining: 0,
                reset_after_ms: tat_us.saturating_sub(tau + now_us).div_ceil(1_000),
            };
        }
        let ahead = tat_us.saturating_sub(now_us);
        let remaining = if ahead <= tau {
            ((tau - ahead) / t + 1).min(u64::from(rl.limit)) as u32
        } else {
            0
        };
        Self {
            allowed,
            tat_us,
            remaining,
            reset_after_ms: ahead.div_ceil(1_000),
        }
    }
}

/// Generic cell rate algorithm: a smooth rate of `limit` per period with a burst of
/// up to `limit`. `tat_us` is the state left by the previous call (`None` at first).
pub fn gcra(rl: RateLimit, tat_us: Option<u64>, now_us: u64) -> GcraDecision {
    let tat = tat_us.unwrap_or(now_us).max(now_us);
    if tat > now_us + rl.tolerance_us() {
        return GcraDecision::from_state(rl, false, tat, now_us);
    }
    GcraDecision::from_state(rl, true, tat + rl.emission_us(), now_us)
}

#[cfg(test)]
mod gcra_tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_burst_of_limit_then_refusal_then_recovery() {
        let rl: RateLimit = "5/second".parse().expect("rl");
        let mut tat = None;
        for i in 0..5 {
            let d = gcra(rl, tat, 1_000_000);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 4 - i);
            tat = Some(d.tat_us);
        }
        let d = gcra(rl, tat, 1_000_000);
        assert!(!d.allowed);
        assert_eq!(d.reset_after_ms, 200, "one emission interval");
        assert!(!gcra(rl, tat, 1_199_999).allowed, "not a microsecond early");
        assert!(gcra(rl, tat, 1_200_000).allowed, "one more after 200 ms");
    }

    proptest! {
        #[test]
        fn never_admits_more_than_the_burst_in_any_window(limit in 1u32..50, gaps in proptest::collection::vec(0u64..40, 1..300)) {
            let rl = RateLimit { limit, period_secs: 1 };
            let mut tat = None;
            let mut now = 10_000u64;
            let mut admitted: Vec<u64> = Vec::new();
            for g in gaps {
                now += g;
                let d = gcra(rl, tat, now * 1_000);
                if d.allowed {
                    admitted.push(now);
                    tat = Some(d.tat_us);
                }
            }
            // Burst: never more than `limit` at one instant. Rate: from any admitted
            // request on, never more than the burst plus what the rate refilled since.
            for (i, start) in admitted.iter().enumerate() {
                let same_instant = admitted[i..].iter().take_while(|t| **t == *start).count();
                prop_assert!(same_instant as u32 <= limit, "{} at one instant, limit {}", same_instant, limit);
                let last = *admitted.last().unwrap_or(start);
                let refilled = (last - start) * u64::from(limit) / 1_000;
                let count = (admitted.len() - i) as u64;
                prop_assert!(count <= u64::from(limit) + refilled + 1, "{} admitted from {}, bound {}", count, start, u64::from(limit) + refilled + 1);
            }
        }
    }
}
