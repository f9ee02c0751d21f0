//! DPoP (RFC 9449): proof-of-possession proofs, checked by the authorization
//! server at the token endpoint and by resource servers (forward-auth, the
//! `portcullis-verify` library) when a bound token is used.
//!
//! A proof is a JWS with `typ: dpop+jwt` whose header carries the public key
//! (`jwk`) that signs it. [`validate_proof`] checks, in order: size; strict
//! compact form (canonical base64url, no duplicate JSON members); `typ`; the
//! `alg` is one we accept and fits the embedded key, which must be public;
//! the signature; `htm` and `htu` (normalised: scheme and host lower-case,
//! default port dropped, no query or fragment); `iat` inside the window; and,
//! when a token is presented with it, `ath`. The caller then checks the
//! nonce (when it demands one), the `jti` against a [`ReplayCache`], and the
//! returned thumbprint against the token's `cnf.jkt`.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::jose::{typ_is, CompactJws, JwtError, SigningKey, VerifyingKey};

/// The `typ` of a DPoP proof.
pub const DPOP_TYP: &str = "dpop+jwt";

/// Largest proof we parse (an RSA-2048 proof is about 1.1 KB).
pub const MAX_PROOF_LEN: usize = 4 * 1024;

/// Longest `jti` accepted (RFC 9449 asks for 96 bits of randomness; 128 bytes is plenty).
const MAX_JTI_LEN: usize = 128;

/// Why a proof was refused. Every variant maps to the RFC's `invalid_dpop_proof`
/// except [`DpopError::UseNonce`] (`use_dpop_nonce`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpopError {
    /// Not a strict compact JWS, bad JSON, or claims of the wrong shape.
    #[error("malformed DPoP proof: {0}")]
    Malformed(String),
    /// `typ` is not `dpop+jwt`.
    #[error("DPoP proof typ must be dpop+jwt")]
    WrongType,
    /// `alg` not accepted, or the `jwk` header is missing, private, or does not fit it.
    #[error("DPoP proof key: {0}")]
    BadKey(String),
    /// The signature does not verify with the embedded key.
    #[error("DPoP proof signature is invalid")]
    BadSignature,
    /// `htm` differs from the request method.
    #[error("DPoP proof htm does not match the request method")]
    WrongMethod,
    /// `htu` differs from the request URI.
    #[error("DPoP proof htu does not match the request URI")]
    WrongUri,
    /// `iat` is too old or too far in the future.
    #[error("DPoP proof iat is outside the accepted window")]
    Stale,
    /// A token was presented but the proof has no `ath`, or the wrong one.
    #[error("DPoP proof ath does not match the access token")]
    WrongAth,
    /// The `jti` was seen before.
    #[error("DPoP proof was already used")]
    Replayed,
    /// The proof's key is not the key the token is bound to.
    #[error("DPoP proof key does not match the token's binding")]
    KeyMismatch,
    /// A nonce is required and the proof has none, or a stale one.
    #[error("a fresh DPoP nonce is required")]
    UseNonce,
}

/// What the request looked like, for the proof to be checked against.
#[derive(Debug, Clone, Copy)]
pub struct ProofContext<'a> {
    /// The HTTP method.
    pub htm: &'a str,
    /// The request URI (absolute; query and fragment are ignored).
    pub htu: &'a str,
    /// The access token sent with the proof, when there is one (then `ath` is required).
    pub access_token: Option<&'a str>,
    /// Now, seconds since the epoch.
    pub now: i64,
    /// How old `iat` may be, seconds.
    pub max_age: i64,
    /// How far in the future `iat` may be, seconds (clock skew).
    pub leeway: i64,
}

/// A proof that passed [`validate_proof`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidProof {
    /// RFC 7638 SHA-256 thumbprint of the proof's key: the `cnf.jkt` to bind or compare.
    pub jkt: String,
    /// The proof's unique id, for the replay cache.
    pub jti: String,
    /// When the proof was made.
    pub iat: i64,
    /// The server nonce the proof carries, if any.
    pub nonce: Option<String>,
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// JWK members that only a private key has: a proof carrying one is refused.
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

/// Checks a DPoP proof against the request; see the module documentation.
pub fn validate_proof(proof: &str, ctx: &ProofContext<'_>) -> Result<ValidProof, DpopError> {
    let jws = CompactJws::parse(proof, MAX_PROOF_LEN).map_err(|e| match e {
        JwtError::TooLarge => DpopError::Malformed("proof too large".into()),
        other => DpopError::Malformed(other.to_string()),
    })?;
    if !typ_is(jws.header.typ.as_deref(), DPOP_TYP) {
        return Err(DpopError::WrongType);
    }
    if jws.header.has_crit() {
        return Err(DpopError::Malformed("crit is not accepted".into()));
    }
    let jwk = jws
        .header
        .jwk
        .as_ref()
        .ok_or_else(|| DpopError::BadKey("no jwk header".into()))?;
    let raw: serde_json::Value = serde_json::from_slice(&jws.header_json)
        .map_err(|e| DpopError::Malformed(e.to_string()))?;
    if let Some(obj) = raw.get("jwk").and_then(|j| j.as_object()) {
        if PRIVATE_MEMBERS.iter().any(|m| obj.contains_key(*m)) {
            return Err(DpopError::BadKey(
                "the jwk holds private key material".into(),
            ));
        }
    }
    let (key, jkt) = VerifyingKey::from_embedded_jwk(jwk, jws.header.alg)
        .map_err(|e| DpopError::BadKey(e.to_string()))?;
    let payload = jws.verify_with(&key).map_err(|e| match e {
        JwtError::BadSignature => DpopError::BadSignature,
        other => DpopError::Malformed(other.to_string()),
    })?;
    crate::jose::reject_duplicate_members(&payload).map_err(DpopError::Malformed)?;
    let claims: ProofClaims = serde_json::from_slice(&payload)
        .map_err(|e| DpopError::Malformed(format!("claims: {e}")))?;
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(DpopError::Malformed("jti must be 1 to 128 bytes".into()));
    }
    if claims.htm != ctx.htm {
        return Err(DpopError::WrongMethod);
    }
    match (normalize_htu(&claims.htu), normalize_htu(ctx.htu)) {
        (Some(a), Some(b)) if a == b => {}
        _ => return Err(DpopError::WrongUri),
    }
    if claims.iat < ctx.now - ctx.max_age || claims.iat > ctx.now + ctx.leeway {
        return Err(DpopError::Stale);
    }
    if let Some(token) = ctx.access_token {
        let want = access_token_hash(token);
        if claims.ath.as_deref() != Some(want.as_str()) {
            return Err(DpopError::WrongAth);
        }
    }
    Ok(ValidProof {
        jkt,
        jti: claims.jti,
        iat: claims.iat,
        nonce: claims.nonce,
    })
}

/// `ath`: base64url of the SHA-256 of the access token's ASCII (RFC 9449 §4.2).
pub fn access_token_hash(token: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    URL_SAFE_NO_PAD.encode(d.as_ref())
}

/// `htu` comparison form (RFC 9449 §4.3, RFC 3986 §6.2.2–6.2.3): `http`/`https`
/// only, scheme and host lower-cased, default port removed, dot segments resolved,
/// query and fragment dropped. `None` for anything that is not such a URI.
pub fn normalize_htu(u: &str) -> Option<String> {
    let url = url::Url::parse(u).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str()?;
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    Some(format!("{}://{host}{port}{}", url.scheme(), url.path()))
}

/// Remembers proof ids until they could no longer pass the `iat` window, so each
/// proof is accepted once. Bounded: when full, expired entries are dropped, and if
/// it is still full the proof is refused rather than the cache grown (a flood of
/// fresh proofs cannot exhaust memory; the server answers it with rate limits).
#[derive(Debug)]
pub struct ReplayCache {
    seen: Mutex<HashMap<String, i64>>,
    max: usize,
}

impl ReplayCache {
    /// A cache holding at most `max` live proof ids.
    pub fn new(max: usize) -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
            max,
        }
    }

    /// Records the proof; `Err(Replayed)` when its `jkt`/`jti` pair was seen and has
    /// not expired. `expires_at` is when the proof leaves the `iat` window.
    pub fn check(&self, proof: &ValidProof, expires_at: i64, now: i64) -> Result<(), DpopError> {
        let key = format!("{}.{}", proof.jkt, proof.jti);
        let mut g = match self.seen.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(exp) = g.get(&key) {
            if *exp >= now {
                return Err(DpopError::Replayed);
            }
        }
        if g.len() >= self.max {
            g.retain(|_, e| *e >= now);
            if g.len() >= self.max {
                return Err(DpopError::Replayed);
            }
        }
        g.insert(key, expires_at);
        Ok(())
    }

    /// Live entries now held.
    pub fn len(&self) -> usize {
        match self.seen.lock() {
            Ok(g) => g.len(),
            Err(p) => p.into_inner().len(),
        }
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Serialize)]
struct ProofHeader<'a> {
    typ: &'static str,
    alg: &'static str,
    jwk: &'a jsonwebtoken::jwk::Jwk,
}

#[derive(Serialize)]
struct ProofBody<'a> {
    jti: String,
    htm: &'a str,
    htu: &'a str,
    iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ath: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

/// A client's DPoP key, making proofs (RFC 9449 §4). Used by clients of Portcullis
/// and by the tests.
#[derive(Debug)]
pub struct DpopKey {
    key: SigningKey,
}

impl DpopKey {
    /// A new key pair for `alg`.
    pub fn generate(alg: crate::jose::SigningAlg) -> Result<Self, crate::jose::JoseError> {
        Ok(Self {
            key: SigningKey::generate(alg)?.0,
        })
    }

    /// The RFC 7638 thumbprint a bound token's `cnf.jkt` will carry.
    pub fn jkt(&self) -> String {
        self.key
            .public_jwk()
            .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
    }

    /// A proof for one request: `htm` and `htu` of the request, the access token it
    /// accompanies (for `ath`), and the server's nonce when it asked for one.
    pub fn proof(
        &self,
        htm: &str,
        htu: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
        iat: i64,
    ) -> Result<String, crate::jose::JoseError> {
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti).map_err(|_| crate::jose::JoseError::Signing)?;
        let body = ProofBody {
            jti: URL_SAFE_NO_PAD.encode(jti),
            htm,
            htu,
            iat,
            ath: access_token.map(access_token_hash),
            nonce,
        };
        self.sign(&body)
    }

    /// Signs any claims as a proof with this key's header: for tests that build
    /// deliberately wrong proofs.
    pub fn sign<C: Serialize>(&self, claims: &C) -> Result<String, crate::jose::JoseError> {
        let header = ProofHeader {
            typ: DPOP_TYP,
            alg: self.key.alg().as_str(),
            jwk: self.key.public_jwk(),
        };
        let sign_err = |_| crate::jose::JoseError::Signing;
        let mut out = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).map_err(sign_err)?);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(claims).map_err(sign_err)?, &mut out);
        let sig = self.key.sign_raw(out.as_bytes())?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(sig, &mut out);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::SigningAlg;

    const HTU: &str = "https://as.test/oauth/token";
    const NOW: i64 = 1_800_000_000;

    fn ctx(token: Option<&str>) -> ProofContext<'_> {
        ProofContext {
            htm: "POST",
            htu: HTU,
            access_token: token,
            now: NOW,
            max_age: 60,
            leeway: 5,
        }
    }

    #[test]
    fn every_algorithm_makes_proofs_that_validate_and_bind_its_thumbprint() {
        for alg in SigningAlg::ALL {
            let k = DpopKey::generate(alg).expect("key");
            let p = k
                .proof("POST", HTU, Some("tok"), Some("n1"), NOW)
                .expect("proof");
            let v = validate_proof(&p, &ctx(Some("tok"))).expect("valid");
            assert_eq!(v.jkt, k.jkt(), "{alg}");
            assert_eq!(v.nonce.as_deref(), Some("n1"));
        }
    }

    #[test]
    fn wrong_method_uri_time_and_ath_are_refused() {
        let k = DpopKey::generate(SigningAlg::ES256).expect("key");
        let p = |htm: &str, htu: &str, iat: i64, tok: Option<&str>| {
            k.proof(htm, htu, tok, None, iat).expect("proof")
        };
        assert_eq!(
            validate_proof(&p("GET", HTU, NOW, None), &ctx(None)),
            Err(DpopError::WrongMethod)
        );
        assert_eq!(
            validate_proof(&p("post", HTU, NOW, None), &ctx(None)),
            Err(DpopError::WrongMethod),
            "htm is case-sensitive"
        );
        for htu in [
            "https://as.test/oauth/token2",
            "https://as.test:8443/oauth/token",
            "http://as.test/oauth/token",
            "https://evil.test/oauth/token",
            "as.test/oauth/token",
        ] {
            assert_eq!(
                validate_proof(&p("POST", htu, NOW, None), &ctx(None)),
                Err(DpopError::WrongUri),
                "{htu}"
            );
        }
        for htu in [
            "HTTPS://AS.TEST/oauth/token",
            "https://as.test:443/oauth/token",
            "https://as.test/oauth/token?x=1#f",
            "https://as.test/oauth/./token",
        ] {
            assert!(
                validate_proof(&p("POST", htu, NOW, None), &ctx(None)).is_ok(),
                "{htu}"
            );
        }
        assert_eq!(
            validate_proof(&p("POST", HTU, NOW - 61, None), &ctx(None)),
            Err(DpopError::Stale)
        );
        assert_eq!(
            validate_proof(&p("POST", HTU, NOW + 6, None), &ctx(None)),
            Err(DpopError::Stale)
        );
        assert_eq!(
            validate_proof(&p("POST", HTU, NOW, None), &ctx(Some("tok"))),
            Err(DpopError::WrongAth),
            "ath missing"
        );
        assert_eq!(
            validate_proof(&p("POST", HTU, NOW, Some("other")), &ctx(Some("tok"))),
            Err(DpopError::WrongAth)
        );
    }

    #[test]
    fn forged_proofs_are_refused() {
        let k = DpopKey::generate(SigningAlg::EdDSA).expect("key");
        let good = k.proof("POST", HTU, None, None, NOW).expect("proof");
        let (h, rest) = good.split_once('.').expect("parts");
        let (body, _sig) = rest.split_once('.').expect("parts");
        // Stripped signature, and one from another key over the same bytes.
        assert!(validate_proof(&format!("{h}.{body}."), &ctx(None)).is_err());
        let other = DpopKey::generate(SigningAlg::EdDSA).expect("key");
        let theirs = other.proof("POST", HTU, None, None, NOW).expect("proof");
        let their_sig = theirs.rsplit_once('.').expect("sig").1;
        assert_eq!(
            validate_proof(&format!("{h}.{body}.{their_sig}"), &ctx(None)),
            Err(DpopError::BadSignature)
        );
        // Wrong typ, alg none, HS256, a private key in the header, no jwk.
        let jwk = serde_json::to_value(k.key.public_jwk()).expect("jwk");
        let mut private = jwk.clone();
        private["d"] = "AAAA".into();
        for (header, want) in [
            (
                serde_json::json!({"typ":"JWT","alg":"EdDSA","jwk":jwk}),
                "typ",
            ),
            (
                serde_json::json!({"typ":"dpop+jwt","alg":"none","jwk":jwk}),
                "none",
            ),
            (
                serde_json::json!({"typ":"dpop+jwt","alg":"HS256","jwk":jwk}),
                "hs",
            ),
            (
                serde_json::json!({"typ":"dpop+jwt","alg":"ES256","jwk":jwk}),
                "alg vs key",
            ),
            (
                serde_json::json!({"typ":"dpop+jwt","alg":"EdDSA","jwk":private}),
                "private",
            ),
            (
                serde_json::json!({"typ":"dpop+jwt","alg":"EdDSA"}),
                "no jwk",
            ),
        ] {
            let h = URL_SAFE_NO_PAD.encode(header.to_string());
            let msg = format!("{h}.{body}");
            let sig = URL_SAFE_NO_PAD.encode(k.key.sign_raw(msg.as_bytes()).expect("sign"));
            assert!(
                validate_proof(&format!("{msg}.{sig}"), &ctx(None)).is_err(),
                "{want}"
            );
        }
        // Duplicate claim names, and a proof over the size limit.
        let dup = r#"{"jti":"a","htm":"GET","htm":"POST","htu":"https://as.test/oauth/token","iat":1800000000}"#;
        let msg = format!("{h}.{}", URL_SAFE_NO_PAD.encode(dup));
        let sig = URL_SAFE_NO_PAD.encode(k.key.sign_raw(msg.as_bytes()).expect("sign"));
        assert!(matches!(
            validate_proof(&format!("{msg}.{sig}"), &ctx(None)),
            Err(DpopError::Malformed(_))
        ));
        assert!(validate_proof(&"a".repeat(MAX_PROOF_LEN + 1), &ctx(None)).is_err());
    }

    #[test]
    fn replay_cache_accepts_each_proof_once_and_stays_bounded() {
        let k = DpopKey::generate(SigningAlg::ES256).expect("key");
        let cache = ReplayCache::new(2);
        let v1 = validate_proof(
            &k.proof("POST", HTU, None, None, NOW).expect("p"),
            &ctx(None),
        )
        .expect("valid");
        assert_eq!(cache.check(&v1, NOW + 60, NOW), Ok(()));
        assert_eq!(cache.check(&v1, NOW + 60, NOW), Err(DpopError::Replayed));
        let v2 = validate_proof(
            &k.proof("POST", HTU, None, None, NOW).expect("p"),
            &ctx(None),
        )
        .expect("valid");
        assert_eq!(cache.check(&v2, NOW + 60, NOW), Ok(()));
        let v3 = validate_proof(
            &k.proof("POST", HTU, None, None, NOW).expect("p"),
            &ctx(None),
        )
        .expect("valid");
        assert_eq!(
            cache.check(&v3, NOW + 60, NOW),
            Err(DpopError::Replayed),
            "full"
        );
        // Later, the old entries have expired and make room.
        assert_eq!(cache.check(&v3, NOW + 200, NOW + 61), Ok(()));
        assert_eq!(cache.len(), 1);
    }
}
