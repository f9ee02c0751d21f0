//! Verify Portcullis JWT access tokens offline, in any Rust service.
//!
//! A resource server fetches the JWK Set once (from `jwks_uri` in the server's
//! discovery document), builds a [`Verifier`] for its issuer and audience, and
//! then checks every bearer token locally in microseconds: no call to the
//! authorization server per request.
//!
//! What is checked (RFC 8725, RFC 9068): size before parsing; `typ` is `at+jwt`;
//! the `kid` names a published key and the token's `alg` equals that key's `alg`
//! (the key pins the algorithm, so `none`, HMAC and algorithm confusion fail);
//! the signature; `iss` exactly; `aud` contains the expected audience; `exp` and
//! `iat` with a leeway; required scopes.
//!
//! ```
//! use portcullis_core::claims::{AccessTokenClaims, Audience};
//! use portcullis_core::jose::{SigningAlg, SigningKey};
//! use portcullis_verify::Verifier;
//!
//! // The server side (normally Portcullis itself): a key and a token.
//! let (key, _) = SigningKey::generate(SigningAlg::ES256).unwrap();
//! let jwks = serde_json::json!({ "keys": [key.public_jwk()] }).to_string();
//! let now = 1_800_000_000;
//! let claims = AccessTokenClaims {
//!     iss: "https://auth.example.com".into(), sub: "svc".into(),
//!     aud: Audience::One("https://api.example.com".into()), exp: now + 900, iat: now,
//!     jti: "1".into(), client_id: "svc".into(), scope: "read".into(), nbf: None, cnf: None,
//! };
//! let token = key.sign_jwt("at+jwt", &claims).unwrap();
//!
//! // The resource server.
//! let verifier = Verifier::from_jwks_json("https://auth.example.com", "https://api.example.com", &jwks).unwrap();
//! let got = verifier.verify_at(&token, now).unwrap();
//! assert!(Verifier::has_scopes(&got, &["read"]));
//! assert!(!Verifier::has_scopes(&got, &["write"]));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::time::{SystemTime, UNIX_EPOCH};

pub use portcullis_core::claims::AccessTokenClaims;
pub use portcullis_core::jose::JwtError;
use portcullis_core::jose::{JwtVerifier, VerifyingKey};

/// Why a verifier could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The JWK Set is not valid JSON of the right shape.
    #[error("invalid JWK Set: {0}")]
    InvalidJwks(String),
    /// No key in the set is usable (asymmetric, with `kid` and a supported `alg`).
    #[error("the JWK Set has no usable signing key")]
    NoUsableKey,
}

/// Offline verifier for one issuer and one audience.
#[derive(Debug, Clone)]
pub struct Verifier {
    inner: JwtVerifier,
    audience: String,
    skipped: usize,
}

impl Verifier {
    /// Builds a verifier from a JWK Set document. Keys that are not usable for
    /// verification (symmetric, no `alg`, unsupported curve) are skipped and counted.
    pub fn from_jwks_json(issuer: &str, audience: &str, jwks: &str) -> Result<Self, Error> {
        let set: jsonwebtoken::jwk::JwkSet =
            serde_json::from_str(jwks).map_err(|e| Error::InvalidJwks(e.to_string()))?;
        let mut keys = Vec::new();
        let mut skipped = 0;
        for jwk in &set.keys {
            match VerifyingKey::from_jwk(jwk) {
                Ok(k) => keys.push(k),
                Err(_) => skipped += 1,
            }
        }
        if keys.is_empty() {
            return Err(Error::NoUsableKey);
        }
        Ok(Self {
            inner: JwtVerifier::new(issuer, 30, keys),
            audience: audience.to_owned(),
            skipped,
        })
    }

    /// Clock-skew leeway in seconds (default 30).
    pub fn with_leeway(mut self, secs: i64) -> Self {
        self.inner = self.inner.with_leeway(secs);
        self
    }

    /// Keys in the set that were skipped as unusable.
    pub fn skipped_keys(&self) -> usize {
        self.skipped
    }

    /// Verifies `token` at the current system time.
    pub fn verify(&self, token: &str) -> Result<AccessTokenClaims, JwtError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        self.verify_at(token, now)
    }

    /// Verifies `token` at time `now` (seconds since the epoch).
    pub fn verify_at(&self, token: &str, now: i64) -> Result<AccessTokenClaims, JwtError> {
        self.inner
            .verify_access_token(token, now, Some(&self.audience))
    }

    /// True when the token grants every scope in `required`.
    pub fn has_scopes(claims: &AccessTokenClaims, required: &[&str]) -> bool {
        required
            .iter()
            .all(|r| claims.scope.split(' ').any(|s| s == *r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::claims::Audience;
    use portcullis_core::jose::{SigningAlg, SigningKey};

    fn setup() -> (SigningKey, String) {
        let (key, _) = SigningKey::generate(SigningAlg::EdDSA).expect("key");
        let hmac = serde_json::json!({"kty": "oct", "k": "c2VjcmV0", "alg": "HS256", "kid": "h"});
        let jwks = serde_json::json!({ "keys": [key.public_jwk(), hmac] }).to_string();
        (key, jwks)
    }

    fn token(key: &SigningKey, aud: &str, now: i64) -> String {
        let c = AccessTokenClaims {
            iss: "https://as.test".into(),
            sub: "s".into(),
            aud: Audience::One(aud.into()),
            exp: now + 60,
            iat: now,
            jti: "j".into(),
            client_id: "s".into(),
            scope: "a b".into(),
            nbf: None,
            cnf: None,
        };
        key.sign_jwt("at+jwt", &c).expect("sign")
    }

    #[test]
    fn symmetric_keys_are_skipped_and_a_set_of_only_those_is_refused() {
        let (_, jwks) = setup();
        let v = Verifier::from_jwks_json("https://as.test", "https://api.test", &jwks)
            .expect("verifier");
        assert_eq!(v.skipped_keys(), 1);
        let only_hmac = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"HS256","kid":"h"}]}"#;
        assert!(matches!(
            Verifier::from_jwks_json("i", "a", only_hmac),
            Err(Error::NoUsableKey)
        ));
        assert!(matches!(
            Verifier::from_jwks_json("i", "a", "nope"),
            Err(Error::InvalidJwks(_))
        ));
    }

    #[test]
    fn audience_and_leeway_are_enforced() {
        let (key, jwks) = setup();
        let v = Verifier::from_jwks_json("https://as.test", "https://api.test", &jwks)
            .expect("verifier");
        let now = 1_800_000_000;
        assert!(v
            .verify_at(&token(&key, "https://api.test", now), now)
            .is_ok());
        assert_eq!(
            v.verify_at(&token(&key, "https://other.test", now), now),
            Err(JwtError::WrongAudience)
        );
        let t = token(&key, "https://api.test", now);
        assert!(v.verify_at(&t, now + 60 + 29).is_ok());
        let strict = v.clone().with_leeway(0);
        assert_eq!(strict.verify_at(&t, now + 60), Err(JwtError::Expired));
        assert!(v.verify(&t).is_err(), "real time is far from the token's");
    }
}
