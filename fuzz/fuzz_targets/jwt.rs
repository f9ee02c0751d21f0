//! JWT / JWS compact parsing and validation: any string through the access-token
//! verifier (one key of each algorithm). Must never panic; anything accepted must
//! be a token the key really signed (impossible without the private key), so an
//! `Ok` here is itself a finding.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portcullis_core::jose::{JwtVerifier, SigningAlg, SigningKey, VerifyingKey};

fn verifier() -> &'static JwtVerifier {
    static V: OnceLock<JwtVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let keys = SigningAlg::ALL.map(|alg| {
            let (k, _) = SigningKey::generate(alg).expect("key");
            VerifyingKey::from_jwk(k.public_jwk()).expect("jwk")
        });
        JwtVerifier::new("https://issuer.test", 30, keys)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let v = verifier();
    assert!(v
        .verify_access_token(token, 1_800_000_000, Some("https://api.test"))
        .is_err());
    assert!(v.verify_jws(token, None).is_err());
});
