//! Argon2id with the OWASP parameters Portcullis uses by default: the raw
//! `argon2` crate (`Argon2::verify_password`, fresh memory each time) next to
//! the sign-in path's verification (`PasswordHasherCfg::verify_in`, reused memory),
//! in the same run, one thread. `cargo bench -p portcullis-service --bench passwords`.

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use criterion::{criterion_group, criterion_main, Criterion};
use portcullis_service::passwords::{Argon2Params, PasswordHasherCfg};

fn bench(c: &mut Criterion) {
    let pw = "bench-password-1";
    let hash = PasswordHasherCfg::hash_blocking(Argon2Params::default(), pw).expect("hash");
    let parsed = PasswordHash::new(&hash).expect("phc");
    let mut g = c.benchmark_group("argon2id_owasp");
    g.sample_size(20);
    g.bench_function("raw_verify", |b| {
        b.iter(|| {
            assert!(Argon2::default()
                .verify_password(pw.as_bytes(), &parsed)
                .is_ok())
        })
    });
    let mut memory = Vec::new();
    g.bench_function("portcullis_verify", |b| {
        b.iter(|| assert!(PasswordHasherCfg::verify_in(&hash, pw, &mut memory)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
