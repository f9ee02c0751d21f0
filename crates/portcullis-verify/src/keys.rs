//! The JWK Set as the verifier holds it: parsed keys, plus the documents they
//! came from (so one key can be dropped when the feed says it was retired).

use jsonwebtoken::jwk::Jwk;
use portcullis_core::jose::{JwtVerifier, VerifyingKey};

use crate::error::Error;

/// Largest JWK Set document accepted.
pub(crate) const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// The usable keys of one JWK Set.
#[derive(Debug, Clone)]
pub(crate) struct KeySet {
    pub(crate) verifier: JwtVerifier,
    jwks: Vec<Jwk>,
    pub(crate) skipped: usize,
}

impl KeySet {
    pub(crate) fn parse(issuer: &str, leeway: i64, jwks: &str) -> Result<Self, Error> {
        if jwks.len() > MAX_JWKS_BYTES {
            return Err(Error::InvalidJwks("larger than 1 MiB".into()));
        }
        let set: jsonwebtoken::jwk::JwkSet =
            serde_json::from_str(jwks).map_err(|e| Error::InvalidJwks(e.to_string()))?;
        Self::from_jwks(issuer, leeway, set.keys)
    }

    fn from_jwks(issuer: &str, leeway: i64, all: Vec<Jwk>) -> Result<Self, Error> {
        let mut keys = Vec::new();
        let mut usable = Vec::new();
        let mut skipped = 0;
        for jwk in all {
            match VerifyingKey::from_jwk(&jwk) {
                Ok(k) => {
                    keys.push(k);
                    usable.push(jwk);
                }
                Err(_) => skipped += 1,
            }
        }
        if keys.is_empty() {
            return Err(Error::NoUsableKey);
        }
        Ok(Self {
            verifier: JwtVerifier::new(issuer, leeway, keys),
            jwks: usable,
            skipped,
        })
    }

    /// The same set without `kid` (possibly empty: then every token is refused);
    /// `None` when the set does not hold it.
    pub(crate) fn without(&self, issuer: &str, leeway: i64, kid: &str) -> Option<Self> {
        let rest: Vec<Jwk> = self
            .jwks
            .iter()
            .filter(|j| j.common.key_id.as_deref() != Some(kid))
            .cloned()
            .collect();
        if rest.len() == self.jwks.len() {
            return None;
        }
        let keys = rest.iter().filter_map(|j| VerifyingKey::from_jwk(j).ok());
        Some(Self {
            verifier: JwtVerifier::new(issuer, leeway, keys),
            jwks: rest,
            skipped: self.skipped,
        })
    }

    /// Key ids held.
    pub(crate) fn kids(&self) -> Vec<String> {
        self.jwks
            .iter()
            .filter_map(|j| j.common.key_id.clone())
            .collect()
    }
}
