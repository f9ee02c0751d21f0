//! RFC 7662 answers and their short, bounded cache. Keyed by the SHA-256 of the
//! token (the token itself is not kept), each entry lives at most the configured
//! TTL and never past the token's `exp`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portcullis_core::claims::{Audience, Confirmation};
use serde::Deserialize;

/// An introspection answer (the members Portcullis sends).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Introspection {
    /// Usable now.
    pub active: bool,
    /// Granted scopes.
    #[serde(default)]
    pub scope: Option<String>,
    /// The client it was issued to.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Subject.
    #[serde(default)]
    pub sub: Option<String>,
    /// Username (personal access tokens).
    #[serde(default)]
    pub username: Option<String>,
    /// Expiry.
    #[serde(default)]
    pub exp: Option<i64>,
    /// Issued at.
    #[serde(default)]
    pub iat: Option<i64>,
    /// Issuer.
    #[serde(default)]
    pub iss: Option<String>,
    /// Audiences.
    #[serde(default)]
    pub aud: Option<Audience>,
    /// Token id.
    #[serde(default)]
    pub jti: Option<String>,
    /// `Bearer`, `DPoP`, `api_key`, `personal_access_token`.
    #[serde(default)]
    pub token_type: Option<String>,
    /// The DPoP binding.
    #[serde(default)]
    pub cnf: Option<Confirmation>,
}

#[derive(Debug)]
pub(crate) struct Cache {
    ttl: Duration,
    max: usize,
    map: Mutex<HashMap<String, (Instant, Arc<Introspection>)>>,
}

impl Cache {
    pub(crate) fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Arc<Introspection>)>> {
        match self.map.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub(crate) fn get(&self, token: &str) -> Option<Arc<Introspection>> {
        let key = portcullis_core::dpop::access_token_hash(token);
        let g = self.lock();
        let (until, v) = g.get(&key)?;
        (Instant::now() < *until).then(|| v.clone())
    }

    pub(crate) fn put(&self, token: &str, answer: Introspection) -> Arc<Introspection> {
        let answer = Arc::new(answer);
        if self.ttl.is_zero() || self.max == 0 {
            return answer;
        }
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let left = answer
            .exp
            .filter(|_| answer.active)
            .map(|e| Duration::from_secs((e - now_unix).max(0) as u64))
            .unwrap_or(self.ttl);
        let until = Instant::now() + self.ttl.min(left);
        let key = portcullis_core::dpop::access_token_hash(token);
        let mut g = self.lock();
        if g.len() >= self.max {
            let now = Instant::now();
            g.retain(|_, (u, _)| *u > now);
            if g.len() >= self.max {
                g.clear();
            }
        }
        g.insert(key, (until, answer.clone()));
        answer
    }

    /// Drops every cached answer about credential `id` (the feed said it was revoked).
    pub(crate) fn forget(&self, id: &str) {
        self.lock().retain(|_, (_, v)| v.jti.as_deref() != Some(id));
    }

    /// Drops every cached answer about tokens of subject `sub` (all of a user's PATs
    /// were revoked).
    pub(crate) fn forget_subject(&self, sub: &str) {
        self.lock()
            .retain(|_, (_, v)| v.sub.as_deref() != Some(sub));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(jti: &str) -> Introspection {
        Introspection {
            active: true,
            scope: None,
            client_id: None,
            sub: None,
            username: None,
            exp: None,
            iat: None,
            iss: None,
            aud: None,
            jti: Some(jti.into()),
            token_type: None,
            cnf: None,
        }
    }

    #[test]
    fn entries_are_bounded_expire_and_can_be_forgotten_by_id() {
        let c = Cache::new(Duration::from_secs(60), 2);
        c.put("t1", answer("a"));
        c.put("t2", answer("b"));
        assert!(c.get("t1").is_some());
        c.put("t3", answer("c"));
        assert!(c.len() <= 2, "bounded");
        c.forget("c");
        assert!(c.get("t3").is_none());
        let mut of_ada = answer("d");
        of_ada.sub = Some("ada".into());
        c.put("t4", of_ada);
        c.forget_subject("ada");
        assert!(c.get("t4").is_none());
        let none = Cache::new(Duration::ZERO, 10);
        none.put("t", answer("a"));
        assert!(none.get("t").is_none(), "a zero TTL caches nothing");
    }
}
