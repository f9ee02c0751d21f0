//! Shared by the JOSE benchmarks of portcullis-core and portcullis-verify (the
//! latter includes this file by path): the access-token claims both sign, and the
//! raw aws-lc-rs verification that is their baseline.
#![allow(dead_code)]

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
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

/// What a service would do by hand with aws-lc-rs: the public key from the JWK and
/// one signature check over the signing input.
pub(crate) fn raw_verify(key: &SigningKey, msg: &[u8], sig: &[u8]) -> bool {
    let b = |s: &str| URL_SAFE_NO_PAD.decode(s).expect("b64");
    match (&key.public_jwk().algorithm, key.alg()) {
        (AlgorithmParameters::OctetKeyPair(p), _) => {
            UnparsedPublicKey::new(&signature::ED25519, b(&p.x))
                .verify(msg, sig)
                .is_ok()
        }
        (AlgorithmParameters::EllipticCurve(p), _) => {
            let mut point = vec![4u8];
            point.extend(b(&p.x));
            point.extend(b(&p.y));
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(msg, sig)
                .is_ok()
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
            c.verify(params, msg, sig).is_ok()
        }
        _ => false,
    }
}
