//! The library's costs, in one run (`cargo bench -p portcullis-verify`):
//! - `verify_at` of an access token of each algorithm (EdDSA, ES256, RS256, PS256)
//!   from a warm key set, next to the raw aws-lc-rs signature verification of the
//!   same token with the key parsed once (issue 6 S8, target ≥ 90%);
//! - DPoP proof validation (with the replay cache) per algorithm;
//! - memory per cached key, printed once (`memory per cached key`): what a verifier
//!   holding 4,000 keys (as many as a 1 MiB JWK Set holds) retains, divided by 4,000,
//!   as Rust heap bytes (a counting allocator) and as growth of the resident set
//!   (which also holds the keys aws-lc parsed into its own C heap).

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

/// Counts heap bytes (the bench binary only), so retained memory is measured
/// exactly rather than read off a noisy RSS.
#[global_allocator]
static GLOBAL: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

/// Resident memory of this process, in bytes (`/proc/self/statm`).
fn rss_bytes() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Set in the child process that measures resident memory: the path of a JWK Set.
const MEMORY_CHILD: &str = "PORTCULLIS_BENCH_JWKS_FILE";

/// In a fresh process (this binary again), the growth of the resident set while a
/// verifier takes in the JWK Set at `path`: it includes the keys aws-lc parsed into
/// its own C heap, which the counting allocator does not see. A fresh process, so
/// that memory freed earlier (generating the keys) is not simply reused.
fn resident_growth_child(path: &str) -> ! {
    let doc = std::fs::read_to_string(path).expect("jwks file");
    let before = rss_bytes();
    let v = Verifier::from_jwks_json(ISS, AUD, &doc).expect("verifier");
    let grown = rss_bytes() - before;
    println!("{} {grown}", v.key_ids().len());
    std::process::exit(0)
}

fn memory_per_key() {
    if let Ok(path) = std::env::var(MEMORY_CHILD) {
        resident_growth_child(&path);
    }
    for alg in [SigningAlg::ES256, SigningAlg::EdDSA] {
        // As many as fit in the 1 MiB a JWK Set may have.
        const N: usize = 4_000;
        let jwks: Vec<_> = (0..N)
            .map(|_| {
                SigningKey::generate(alg)
                    .expect("key")
                    .0
                    .public_jwk()
                    .clone()
            })
            .collect();
        let doc = serde_json::json!({ "keys": jwks }).to_string();
        drop(jwks);
        let region = stats_alloc::Region::new(GLOBAL);
        let v = Verifier::from_jwks_json(ISS, AUD, &doc).expect("verifier");
        let change = region.change();
        let retained = change.bytes_allocated as i64 - change.bytes_deallocated as i64;
        assert_eq!(v.key_ids().len(), N);
        drop(v);
        let file = std::env::temp_dir().join(format!("portcullis-bench-jwks-{alg}.json"));
        std::fs::write(&file, &doc).expect("write jwks");
        let child = std::process::Command::new(std::env::current_exe().expect("exe"))
            .env(MEMORY_CHILD, &file)
            .output()
            .expect("child");
        let _ = std::fs::remove_file(&file);
        let out = String::from_utf8_lossy(&child.stdout);
        let (keys, grown) = out.trim().split_once(' ').expect("child output");
        assert_eq!(keys, N.to_string());
        let grown: i64 = grown.parse().expect("bytes");
        println!(
            "memory per cached key ({alg}): {} bytes retained on the heap ({N} keys: {} KiB), {} bytes of resident memory",
            retained / N as i64,
            retained / 1024,
            grown / N as i64
        );
    }
}

fn bench(c: &mut Criterion) {
    memory_per_key();
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
