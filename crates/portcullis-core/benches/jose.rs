//! JWT sign and verify per algorithm, next to the raw aws-lc-rs signature operation
//! on a message of the same length, in the same run. `cargo bench -p portcullis-core`.

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::jwk::AlgorithmParameters;
use portcullis_core::claims::{AccessTokenClaims, Audience, ACCESS_TOKEN_TYP};
use portcullis_core::jose::{JwtVerifier, SigningAlg, SigningKey, VerifyingKey};

fn claims(now: i64) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: "http://127.0.0.1:8080".into(),
        sub: "01a201b3-8a34-704d-b45f-0029cc282ea6".into(),
        aud: Audience::One("https://api.example.com".into()),
        exp: now + 900,
        iat: now,
        jti: "01a201b3-8b29-7708-a7af-eefe42753527".into(),
        client_id: "01a201b3-8a34-704d-b45f-0029cc282ea6".into(),
        scope: "read write".into(),
        nbf: None,
        cnf: None,
    }
}

fn raw_verify(key: &SigningKey, msg: &[u8], sig: &[u8]) -> bool {
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
        assert!(raw_verify(&key, &msg, &sig));
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
            b.iter(|| assert!(raw_verify(&key, std::hint::black_box(&msg), &sig)))
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
