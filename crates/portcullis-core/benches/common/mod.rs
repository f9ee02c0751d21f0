//! Shared by the JOSE benchmarks of portcullis-core and portcullis-verify (the
//! latter includes this file by path): the access-token claims both sign, and the
//! raw aws-lc-rs verification that is their baseline (the key parsed once, as a
//! careful hand-written verifier would keep it).
#![allow(dead_code)]

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::AlgorithmParameters;
use portcullis_core::claims::{AccessTokenClaims, Audience};
use portcullis_core::jose::{SigningAlg, SigningKey};

/// The issuer and audience the benchmark tokens carry.
pub(crate) const ISS: &str = "http://127.0.0.1:8080";
pub(crate) const AUD: &str = "https://api.example.com";

pub(crate) fn claims(now: i64) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: ISS.into(),
        sub: "01a201b3-8a34-704d-b45f-0029cc282ea6".into(),
        aud: Audience::One(AUD.into()),
        exp: now + 900,
        iat: now,
        jti: "01a201b3-8b29-7708-a7af-eefe42753527".into(),
        client_id: "01a201b3-8a34-704d-b45f-0029cc282ea6".into(),
        scope: "read write".into(),
        nbf: None,
        cnf: None,
    }
}

/// What a careful service would do by hand with aws-lc-rs: the public key decoded
/// from the JWK and parsed **once** (outside any timing), then one signature check
/// over the signing input per token. The baseline is the bare verification.
pub(crate) fn raw_key(key: &SigningKey) -> ParsedPublicKey {
    let b = |s: &str| URL_SAFE_NO_PAD.decode(s).expect("b64");
    match (&key.public_jwk().algorithm, key.alg()) {
        (AlgorithmParameters::OctetKeyPair(p), _) => {
            ParsedPublicKey::new(&signature::ED25519, b(&p.x)).expect("ed25519 key")
        }
        (AlgorithmParameters::EllipticCurve(p), _) => {
            let mut point = vec![4u8];
            point.extend(b(&p.x));
            point.extend(b(&p.y));
            ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).expect("p-256 key")
        }
        (AlgorithmParameters::RSA(p), alg) => {
            let c = RsaPublicKeyComponents {
                n: b(&p.n),
                e: b(&p.e),
            };
            let params = if alg == SigningAlg::PS256 {
                &signature::RSA_PSS_2048_8192_SHA256
            } else {
                &signature::RSA_PKCS1_2048_8192_SHA256
            };
            c.to_parsed_public_key(params).expect("rsa key")
        }
        _ => panic!("unexpected key type"),
    }
}

/// One raw signature check with a key parsed once.
pub(crate) fn raw_verify(key: &ParsedPublicKey, msg: &[u8], sig: &[u8]) -> bool {
    key.verify_sig(msg, sig).is_ok()
}
