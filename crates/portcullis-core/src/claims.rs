//! RFC 9068 JWT access-token claims.

use serde::{Deserialize, Serialize};

/// The `typ` header of JWT access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// `aud`: one audience or several (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience, serialized as a string.
    One(String),
    /// Several audiences, serialized as an array.
    Many(Vec<String>),
}

/// A string or an array of strings, read in one pass (`#[serde(untagged)]` would
/// first copy the value into serde's buffer, then try each form in turn).
impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Audience;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Audience, E> {
                Ok(Audience::One(s.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Audience, E> {
                Ok(Audience::One(s))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Audience, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
                while let Some(a) = seq.next_element::<String>()? {
                    v.push(a);
                }
                Ok(Audience::Many(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl Audience {
    /// True when `aud` is among the audiences.
    pub fn contains(&self, aud: &str) -> bool {
        match self {
            Self::One(a) => a == aud,
            Self::Many(v) => v.iter().any(|a| a == aud),
        }
    }

    /// A list of audiences as a token carries it: a single one as a string, any
    /// other number as an array.
    pub fn from_list(mut list: Vec<String>) -> Self {
        if list.len() == 1 {
            Self::One(list.remove(0))
        } else {
            Self::Many(list)
        }
    }

    /// The audiences as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Self::One(a) => vec![a.clone()],
            Self::Many(v) => v.clone(),
        }
    }
}

/// The claims Portcullis puts in (and requires of) a JWT access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer: the server's issuer URL, exactly.
    pub iss: String,
    /// Subject: the client id for `client_credentials`, the user otherwise.
    pub sub: String,
    /// Audience: the resource server(s) the token is for.
    pub aud: Audience,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Unique id; revocation of JWTs goes by it.
    pub jti: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scopes, space-separated; absent when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// Not before, seconds since the epoch (Portcullis does not set it; others may).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Confirmation (RFC 7800): the DPoP key the token is bound to (RFC 9449 §6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// The `cnf` claim of a sender-constrained token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// RFC 7638 SHA-256 thumbprint of the DPoP public key, base64url.
    pub jkt: String,
}

impl AccessTokenClaims {
    /// The thumbprint of the DPoP key the token is bound to, if any.
    pub fn jkt(&self) -> Option<&str> {
        self.cnf.as_ref().map(|c| c.jkt.as_str())
    }

    /// True when the token grants every scope in `required`.
    pub fn has_scopes(&self, required: &[&str]) -> bool {
        required
            .iter()
            .all(|r| self.scope.split(' ').any(|s| s == *r))
    }
}

/// The `typ` header of ID tokens: plain `JWT`, so an ID token is never taken for an
/// access token (which must be `at+jwt`).
pub const ID_TOKEN_TYP: &str = "JWT";

/// OpenID Connect Core §2 ID-token claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    /// Issuer.
    pub iss: String,
    /// The user.
    pub sub: String,
    /// The client.
    pub aud: String,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// When the user authenticated.
    pub auth_time: i64,
    /// The `nonce` of the authorization request, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Left half of the access token's hash (§3.1.3.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    /// Authentication methods (RFC 8176): `pwd`, `otp`.
    pub amr: Vec<String>,
    /// Authentication context class.
    pub acr: String,
    /// Authorized party: the client.
    pub azp: String,
    /// Session id (OIDC front/back-channel logout's `sid`).
    pub sid: String,
}

/// `at_hash` for an access token signed with `alg` (OIDC Core §3.1.3.6): the
/// base64url of the left half of its hash, SHA-256 for every algorithm we sign
/// ID tokens with except EdDSA (Ed25519 uses SHA-512, as OpenID's EdDSA guidance says).
pub fn at_hash(access_token: &str, alg: crate::jose::SigningAlg) -> String {
    use aws_lc_rs::digest::{digest, SHA256, SHA512};
    use base64::Engine;
    let algo = match alg {
        crate::jose::SigningAlg::EdDSA => &SHA512,
        _ => &SHA256,
    };
    let d = digest(algo, access_token.as_bytes());
    let half = &d.as_ref()[..d.as_ref().len() / 2];
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(half)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_is_the_left_half_of_sha256_in_base64url() {
        // OpenID Connect Core, Appendix A.3 (RS256).
        let token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
        assert_eq!(
            at_hash(token, crate::jose::SigningAlg::RS256),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
    }
}
