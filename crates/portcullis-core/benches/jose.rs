//! JWT sign and verify per algorithm, next to the raw aws-lc-rs signature operation
//! on a message of the same length, in the same run. `cargo bench -p portcullis-core`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion};

mod common;
use common::{claims, raw_key, raw_verify};
use portcullis_core::claims::ACCESS_TOKEN_TYP;
use portcullis_core::jose::{JwtVerifier, SigningAlg, SigningKey, VerifyingKey};

fn bench(c: &mut Criterion) {
    let now = 1_800_000_000;
    for alg in SigningAlg::ALL {
        let (key, _) = SigningKey::generate(alg).expect("key");
        let token = key.sign_jwt(ACCESS_TOKEN_TYP, &claims(now)).expect("sign");
        let (signing_input, sig_b64) = token.rsplit_once('.').expect("jws");
        let msg = signing_input.as_bytes().to_vec();
        let sig = URL_SAFE_NO_PAD.decode(sig_b64).expect("sig");
        let verifier = JwtVerifier::new(
            "http://127.0.0.1:8080",
            30,
            [VerifyingKey::from_jwk(key.public_jwk()).expect("jwk")],
        );
        let raw = raw_key(&key);
        assert!(raw_verify(&raw, &msg, &sig));
        assert!(verifier
            .verify_access_token(&token, now, Some("https://api.example.com"))
            .is_ok());

        let mut g = c.benchmark_group(alg.as_str());
        g.bench_function("raw_sign", |b| {
            b.iter(|| key.sign_raw(std::hint::black_box(&msg)).expect("sign"))
        });
        g.bench_function("jwt_sign", |b| {
            b.iter(|| {
                key.sign_jwt(ACCESS_TOKEN_TYP, std::hint::black_box(&claims(now)))
                    .expect("sign")
            })
        });
        g.bench_function("raw_verify", |b| {
            b.iter(|| assert!(raw_verify(&raw, std::hint::black_box(&msg), &sig)))
        });
        g.bench_function("jwt_verify", |b| {
            b.iter(|| {
                verifier
                    .verify_access_token(
                        std::hint::black_box(&token),
                        now,
                        Some("https://api.example.com"),
                    )
                    .expect("ok")
            })
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
