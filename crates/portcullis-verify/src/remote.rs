//! The connection to the authorization server: discovery, the JWK Set (cached by
//! `Cache-Control`, refreshed before expiry, re-fetched on unknown `kid`s at a
//! bounded rate) and introspection.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::introspection::{Cache, Introspection};
use crate::keys::{KeySet, MAX_JWKS_BYTES};
use crate::{alive, Inner, Options};

/// Bounds on how long a fetched JWK Set is trusted without a refresh.
const MIN_JWKS_TTL: Duration = Duration::from_secs(5);
const MAX_JWKS_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug)]
pub(crate) struct Remote {
    pub(crate) http: reqwest::Client,
    jwks_uri: String,
    introspection_endpoint: Option<String>,
    pub(crate) events_endpoint: Option<String>,
    pub(crate) client: Option<(String, String)>,
    default_ttl: Duration,
    /// When the last unknown-`kid` fetch happened (single flight behind the lock).
    last_refetch: tokio::sync::Mutex<Option<Instant>>,
    cache: Cache,
}

/// `max-age` of a `Cache-Control` header, when it has one (and no `no-store`/`no-cache`).
fn max_age(v: Option<&reqwest::header::HeaderValue>) -> Option<Duration> {
    let s = v?.to_str().ok()?;
    let mut age = None;
    for d in s.split(',').map(str::trim) {
        let lower = d.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(n) = lower.strip_prefix("max-age=") {
            age = n
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    age
}

fn http_error(url: &str, e: impl std::fmt::Display) -> Error {
    Error::Http {
        url: url.to_owned(),
        message: e.to_string(),
    }
}

async fn body_limited(url: &str, res: reqwest::Response, max: usize) -> Result<String, Error> {
    if res.content_length().is_some_and(|n| n as usize > max) {
        return Err(http_error(url, "response too large"));
    }
    let bytes = res.bytes().await.map_err(|e| http_error(url, e))?;
    if bytes.len() > max {
        return Err(http_error(url, "response too large"));
    }
    String::from_utf8(bytes.to_vec()).map_err(|e| http_error(url, e))
}

impl Remote {
    /// Reads discovery and the JWK Set; returns the connection, the set's text and
    /// how long it may be trusted.
    pub(crate) async fn connect(
        issuer: &str,
        client: Option<(String, String)>,
        opts: &Options,
    ) -> Result<(Self, String, Duration), Error> {
        let http = reqwest::Client::builder()
            .timeout(opts.http_timeout)
            .connect_timeout(opts.http_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| http_error(issuer, e))?;
        let url = format!("{issuer}/.well-known/oauth-authorization-server");
        let res = http
            .get(&url)
            .send()
            .await
            .map_err(|e| http_error(&url, e))?;
        if !res.status().is_success() {
            return Err(http_error(&url, format!("status {}", res.status())));
        }
        let text = body_limited(&url, res, 256 * 1024).await?;
        let doc: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::Discovery(e.to_string()))?;
        // RFC 8414 §3.3: the document must name exactly the issuer we asked.
        if doc["issuer"].as_str() != Some(issuer) {
            return Err(Error::Discovery(format!(
                "issuer is {:?}, expected {issuer:?}",
                doc["issuer"]
            )));
        }
        let field = |name: &str| doc[name].as_str().map(str::to_owned);
        let jwks_uri = field("jwks_uri").ok_or_else(|| Error::Discovery("no jwks_uri".into()))?;
        let remote = Self {
            http,
            jwks_uri,
            introspection_endpoint: field("introspection_endpoint"),
            events_endpoint: field("portcullis_security_events_endpoint"),
            client,
            default_ttl: opts.default_jwks_ttl,
            last_refetch: tokio::sync::Mutex::new(None),
            cache: Cache::new(opts.introspection_cache_ttl, opts.introspection_cache_max),
        };
        let (jwks, ttl) = remote.fetch_jwks().await?;
        Ok((remote, jwks, ttl))
    }

    async fn fetch_jwks(&self) -> Result<(String, Duration), Error> {
        let url = &self.jwks_uri;
        let res = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| http_error(url, e))?;
        if !res.status().is_success() {
            return Err(http_error(url, format!("status {}", res.status())));
        }
        let ttl = max_age(res.headers().get(reqwest::header::CACHE_CONTROL))
            .unwrap_or(self.default_ttl)
            .clamp(MIN_JWKS_TTL, MAX_JWKS_TTL);
        Ok((body_limited(url, res, MAX_JWKS_BYTES).await?, ttl))
    }

    /// Fetches and installs the JWK Set; returns its lifetime.
    async fn refresh(&self, inner: &Inner) -> Result<Duration, Error> {
        let (text, ttl) = self.fetch_jwks().await?;
        inner.jwks_fetches.fetch_add(1, Ordering::Relaxed);
        inner.set_keys(KeySet::parse(&inner.issuer, inner.leeway, &text)?);
        Ok(ttl)
    }

    /// One fetch for an unknown `kid`, unless another happened within `interval`.
    pub(crate) async fn refetch_if_due(&self, inner: &Inner, interval: Duration) -> bool {
        let mut last = self.last_refetch.lock().await;
        if last.is_some_and(|t| t.elapsed() < interval) {
            return false;
        }
        *last = Some(Instant::now());
        match self.refresh(inner).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "JWK Set re-fetch for an unknown kid failed");
                false
            }
        }
    }

    /// RFC 7662 introspection, cached.
    pub(crate) async fn introspect(
        &self,
        inner: &Inner,
        token: &str,
    ) -> Result<Arc<Introspection>, Error> {
        if let Some(hit) = self.cache.get(token) {
            return Ok(hit);
        }
        let (Some(url), Some((id, secret))) = (&self.introspection_endpoint, &self.client) else {
            return Err(Error::Config(
                "introspection needs client credentials and an introspection endpoint".into(),
            ));
        };
        inner.introspections.fetch_add(1, Ordering::Relaxed);
        let res = self
            .http
            .post(url)
            .basic_auth(form_encode(id), Some(form_encode(secret)))
            .form(&[("token", token)])
            .send()
            .await
            .map_err(|e| http_error(url, e))?;
        if !res.status().is_success() {
            return Err(http_error(url, format!("status {}", res.status())));
        }
        let text = body_limited(url, res, 64 * 1024).await?;
        let answer: Introspection = serde_json::from_str(&text).map_err(|e| http_error(url, e))?;
        Ok(self.cache.put(token, answer))
    }

    pub(crate) fn forget_credential(&self, id: &str) {
        self.cache.forget(id);
    }

    pub(crate) fn forget_subject(&self, sub: &str) {
        self.cache.forget_subject(sub);
    }
}

/// RFC 6749 §2.3.1: client id and secret are form-encoded inside Basic.
pub(crate) fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Refreshes the JWK Set before it expires (at 80% of its lifetime), for as long as
/// the verifier exists. Failures keep the old set and retry sooner.
pub(crate) async fn refresh_loop(inner: Weak<Inner>, first_ttl: Duration) {
    let mut ttl = first_ttl;
    loop {
        let wait = ttl.mul_f64(0.8).max(Duration::from_secs(1));
        tokio::time::sleep(wait).await;
        let Some(i) = alive(&inner) else {
            return;
        };
        let Some(remote) = &i.remote else {
            return;
        };
        match remote.refresh(&i).await {
            Ok(t) => ttl = t,
            Err(e) => {
                tracing::warn!(error = %e, "JWK Set refresh failed; keeping the current set");
                ttl = MIN_JWKS_TTL;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn cache_control_max_age_is_read_and_no_store_means_zero() {
        let v = |s: &'static str| Some(HeaderValue::from_static(s));
        assert_eq!(
            max_age(v("public, max-age=600").as_ref()),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age(v("no-store").as_ref()), Some(Duration::ZERO));
        assert_eq!(max_age(v("public").as_ref()), None);
        assert_eq!(max_age(None), None);
        assert_eq!(form_encode("a b:c"), "a+b%3Ac");
    }
}
