//! PKCE (RFC 7636), `S256` only: OAuth 2.1 and RFC 9700 §2.1.1 require it, and
//! `plain` would let anyone who sees the authorization request redeem the code.

use aws_lc_rs::digest::{digest, SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use subtle::ConstantTimeEq;

/// Why a PKCE parameter is refused; the message names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PkceError {
    /// `code_challenge_method` is not `S256`.
    #[error("code_challenge_method must be S256 (plain is not accepted)")]
    Method,
    /// `code_challenge` is not 43 base64url characters (a SHA-256 digest).
    #[error("code_challenge must be the base64url SHA-256 of the code verifier (43 characters)")]
    Challenge,
    /// `code_verifier` is not 43 to 128 unreserved characters.
    #[error("code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~")]
    Verifier,
}

/// A validated `S256` code challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// Parses `code_challenge` and `code_challenge_method` (absent method means
    /// `plain` per RFC 7636 §4.3, and is refused).
    pub fn parse(challenge: &str, method: Option<&str>) -> Result<Self, PkceError> {
        if method != Some("S256") {
            return Err(PkceError::Method);
        }
        let decoded = URL_SAFE_NO_PAD
            .decode(challenge)
            .map_err(|_| PkceError::Challenge)?;
        if challenge.len() != 43 || decoded.len() != 32 {
            return Err(PkceError::Challenge);
        }
        Ok(Self(challenge.to_owned()))
    }

    /// A challenge as stored (trusted: it was parsed before it was stored).
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// The challenge text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The challenge of `verifier` (for clients and tests).
    pub fn of_verifier(verifier: &str) -> Self {
        Self(URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes())))
    }

    /// Checks a `code_verifier` against this challenge, in constant time.
    pub fn verify(&self, verifier: &str) -> Result<(), PkceError> {
        let ok_chars = verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if !(43..=128).contains(&verifier.len()) || !ok_chars {
            return Err(PkceError::Verifier);
        }
        let computed = Self::of_verifier(verifier);
        if bool::from(computed.0.as_bytes().ct_eq(self.0.as_bytes())) {
            Ok(())
        } else {
            Err(PkceError::Verifier)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7636_appendix_b_example_verifies() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let c = CodeChallenge::parse("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", Some("S256"))
            .expect("challenge");
        assert_eq!(CodeChallenge::of_verifier(verifier), c);
        assert!(c.verify(verifier).is_ok());
    }

    #[test]
    fn plain_missing_and_malformed_challenges_are_refused() {
        let good = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(
            CodeChallenge::parse(good, Some("plain")),
            Err(PkceError::Method)
        );
        assert_eq!(CodeChallenge::parse(good, None), Err(PkceError::Method));
        assert_eq!(
            CodeChallenge::parse(good, Some("s256")),
            Err(PkceError::Method)
        );
        assert_eq!(
            CodeChallenge::parse("short", Some("S256")),
            Err(PkceError::Challenge)
        );
        assert_eq!(
            CodeChallenge::parse(&format!("{good}A"), Some("S256")),
            Err(PkceError::Challenge)
        );
        assert_eq!(
            CodeChallenge::parse("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM", Some("S256")),
            Err(PkceError::Challenge)
        );
    }

    #[test]
    fn wrong_short_long_and_odd_verifiers_are_refused() {
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let c = CodeChallenge::of_verifier(v);
        assert_eq!(c.verify(&v.replace('d', "e")), Err(PkceError::Verifier));
        assert_eq!(c.verify("abc"), Err(PkceError::Verifier));
        assert_eq!(c.verify(&"a".repeat(129)), Err(PkceError::Verifier));
        assert_eq!(c.verify(&format!("{v} ")), Err(PkceError::Verifier));
        let long = "a".repeat(128);
        assert!(CodeChallenge::of_verifier(&long).verify(&long).is_ok());
    }
}
