//! Who is calling: the client IP (believing `Forwarded` / `X-Forwarded-For` only
//! from configured trusted proxies) and the global allow/deny lists.
//!
//! The address is resolved once per request by [`IpRules::client_ip`] (in
//! [`crate::edge`]) and stored as a [`ClientIp`] extension that handlers, rate limits
//! and forward-auth read, and the rest of the request runs inside an audit context
//! carrying it.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use forwarded_header_value::ForwardedStanza;
use portcullis_core::limits::{AllowList, LimitError};

use crate::config::IpSettings;

/// The client address of a request: the connection's peer, as the listener puts it
/// there, until [`crate::edge`] replaces it with the address resolved through trusted
/// proxies ([`IpRules::client_ip`]) before any handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ClientIp>()
            .copied()
            .unwrap_or(Self(IpAddr::V4(Ipv4Addr::UNSPECIFIED))))
    }
}

/// The IP rules, parsed once.
#[derive(Debug, Clone, Default)]
pub struct IpRules {
    trusted: AllowList,
    allow: AllowList,
    deny: AllowList,
}

impl IpRules {
    /// Parses `[ip]` (already validated by [`crate::config::Settings::validate`]).
    pub fn from_settings(s: &IpSettings) -> Result<Self, LimitError> {
        Ok(Self {
            trusted: AllowList::parse(&s.trusted_proxies)?,
            allow: AllowList::parse(&s.allow)?,
            deny: AllowList::parse(&s.deny)?,
        })
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        !self.trusted.is_empty() && self.trusted.allows(ip)
    }

    /// The client address: the direct peer, unless the peer is a trusted proxy, in
    /// which case the forwarding chain is walked from the nearest hop outwards and
    /// the first address that is not itself a trusted proxy wins. A malformed hop
    /// ends the walk (everything further out is what the client claimed).
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.is_trusted(peer) {
            return peer;
        }
        let hops = forwarded_hops(headers);
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop {
                Some(ip) => {
                    client = *ip;
                    if !self.is_trusted(*ip) {
                        return client;
                    }
                }
                None => return client,
            }
        }
        client
    }

    /// True when `ip` may call the server at all.
    pub fn permits(&self, ip: IpAddr) -> bool {
        if !self.deny.is_empty() && self.deny.allows(ip) {
            return false;
        }
        self.allow.allows(ip)
    }
}

/// The forwarding chain, outermost first; `None` marks an unparsable hop. RFC 7239
/// `Forwarded` wins over `X-Forwarded-For` when a proxy sent both.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let joined = |name: &str| -> Option<String> {
        let vals: Vec<&str> = headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("\u{0}"))
            .collect();
        (!vals.is_empty()).then(|| vals.join(","))
    };
    if let Some(f) = joined("forwarded") {
        return f
            .split(',')
            .map(|stanza| {
                ForwardedStanza::from_str(stanza.trim())
                    .ok()
                    .and_then(|s| s.forwarded_for_ip())
            })
            .collect();
    }
    if let Some(x) = joined("x-forwarded-for") {
        return x
            .split(',')
            .map(|h| {
                let h = h.trim();
                IpAddr::from_str(h)
                    .ok()
                    .or_else(|| SocketAddr::from_str(h).ok().map(|s| s.ip()))
            })
            .collect();
    }
    Vec::new()
}

/// Paths load balancers and orchestrators probe; never refused by IP rules.
pub(crate) fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn rules(trusted: &[&str], allow: &[&str], deny: &[&str]) -> IpRules {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        IpRules::from_settings(&IpSettings {
            trusted_proxies: v(trusted),
            allow: v(allow),
            deny: v(deny),
        })
        .expect("rules")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
        let r = rules(&["10.0.0.0/8"], &[], &[]);
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(r.client_ip(ip("198.51.100.1"), &h), ip("198.51.100.1"));
        let none = rules(&[], &[], &[]);
        assert_eq!(none.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn the_nearest_untrusted_hop_is_the_client() {
        let r = rules(&["10.0.0.0/8", "2001:db8:ffff::/48"], &[], &[]);
        // The client claimed 1.1.1.1; the edge proxy 10.0.0.2 appended the real address.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.2")]);
        assert_eq!(r.client_ip(ip("10.0.0.1"), &h), ip("203.0.113.9"));
        let h = headers(&[
            ("forwarded", "for=1.1.1.1"),
            ("forwarded", r#"for="[2001:db8:cafe::17]:4711";proto=https"#),
        ]);
        assert_eq!(r.client_ip(ip("10.0.0.1"), &h), ip("2001:db8:cafe::17"));
        let h = headers(&[("x-forwarded-for", "198.51.100.4:5555")]);
        assert_eq!(r.client_ip(ip("10.0.0.1"), &h), ip("198.51.100.4"));
    }

    #[test]
    fn junk_ends_the_walk_and_a_missing_header_means_the_peer() {
        let r = rules(&["10.0.0.0/8"], &[], &[]);
        let h = headers(&[("x-forwarded-for", "203.0.113.9, not-an-ip, 10.0.0.3")]);
        assert_eq!(
            r.client_ip(ip("10.0.0.1"), &h),
            ip("10.0.0.3"),
            "nothing beyond junk is believed"
        );
        assert_eq!(
            r.client_ip(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn deny_beats_allow_and_an_empty_allow_list_allows_all() {
        let r = rules(&[], &["192.0.2.0/24", "2001:db8::/32"], &["192.0.2.66"]);
        assert!(r.permits(ip("192.0.2.1")));
        assert!(r.permits(ip("2001:db8::5")));
        assert!(!r.permits(ip("192.0.2.66")));
        assert!(!r.permits(ip("198.51.100.1")));
        let open = rules(&[], &[], &["203.0.113.0/24"]);
        assert!(open.permits(ip("8.8.8.8")));
        assert!(!open.permits(ip("203.0.113.200")));
        assert!(!open.permits(ip("::ffff:203.0.113.200")), "mapped v4");
    }
}
