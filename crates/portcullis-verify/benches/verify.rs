//! The library's costs, in one run (`cargo bench -p portcullis-verify`):
//! - `verify_at` of an access token of each algorithm (EdDSA, ES256, RS256, PS256)
//!   from a warm key set, next to the raw aws-lc-rs signature verification of the
//!   same token with the key parsed once (issue 6 S8, target ≥ 90%);
//! - DPoP proof validation (with the replay cache) per algorithm.
//!
//! Memory per cached key is measured by the `memory` bench, in its own binary: its
//! counting allocator (two atomic additions per allocation and per release) would
//! otherwise slow every allocation of the library's path here, and none of the raw
//! verification's, which aws-lc makes in its own C heap.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion};
use portcullis_core::claims::ACCESS_TOKEN_TYP;
use portcullis_core::dpop::{validate_proof, DpopKey, ProofContext, ReplayCache};
use portcullis_core::jose::{SigningAlg, SigningKey};
use portcullis_verify::Verifier;

#[path = "../../portcullis-core/benches/common/mod.rs"]
mod common;
use common::{claims, raw_key, raw_verify, AUD, ISS};

fn bench(c: &mut Criterion) {
    let now = 1_800_000_000;
    for alg in SigningAlg::ALL {
        let (key, _) = SigningKey::generate(alg).expect("key");
        let token = key.sign_jwt(ACCESS_TOKEN_TYP, &claims(now)).expect("sign");
        let (signing_input, sig_b64) = token.rsplit_once('.').expect("jws");
        let msg = signing_input.as_bytes().to_vec();
        let sig = URL_SAFE_NO_PAD.decode(sig_b64).expect("sig");
        let jwks = serde_json::json!({ "keys": [key.public_jwk()] }).to_string();
        let verifier = Verifier::from_jwks_json(ISS, AUD, &jwks).expect("verifier");
        let raw = raw_key(&key);
        assert!(raw_verify(&raw, &msg, &sig));
        assert!(verifier.verify_at(&token, now).is_ok());

        let mut g = c.benchmark_group(format!("verify/{alg}"));
        g.bench_function("raw_verify", |b| {
            b.iter(|| assert!(raw_verify(&raw, std::hint::black_box(&msg), &sig)))
        });
        g.bench_function("library_verify", |b| {
            b.iter(|| {
                verifier
                    .verify_at(std::hint::black_box(&token), now)
                    .expect("ok")
            })
        });
        g.finish();

        let dk = DpopKey::generate(alg).expect("dpop key");
        let htu = "https://api.example.com/v1/things";
        let cache = ReplayCache::new(1_000_000);
        let mut g = c.benchmark_group(format!("dpop/{alg}"));
        g.bench_function("make_proof", |b| {
            b.iter(|| {
                dk.proof("GET", htu, Some(&token), None, now)
                    .expect("proof")
            })
        });
        // Fresh proofs each round (a replayed one would be refused), made outside the timing.
        g.bench_function("validate_proof", |b| {
            b.iter_batched(
                || {
                    dk.proof("GET", htu, Some(&token), None, now)
                        .expect("proof")
                },
                |proof| {
                    let ctx = ProofContext {
                        htm: "GET",
                        htu,
                        access_token: Some(&token),
                        now,
                        max_age: 60,
                        leeway: 5,
                    };
                    let v = validate_proof(&proof, &ctx).expect("valid");
                    cache.check(&v, now + 65, now).expect("fresh");
                },
                criterion::BatchSize::SmallInput,
            )
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
