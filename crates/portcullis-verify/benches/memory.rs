//! Memory per cached key (`cargo bench -p portcullis-verify --bench memory`), printed
//! as `memory per cached key (ALG): …` lines: what a verifier holding 4,000 keys (as
//! many as a 1 MiB JWK Set holds) retains, divided by 4,000, as Rust heap bytes (a
//! counting allocator) and as growth of the resident set (which also holds the keys
//! aws-lc parsed into its own C heap). A binary of its own, so that the counting
//! allocator does not slow the timed verifications of the `verify` bench.

use portcullis_core::jose::{SigningAlg, SigningKey};
use portcullis_verify::Verifier;

const ISS: &str = "http://127.0.0.1:8080";
const AUD: &str = "https://api.example.com";

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

fn main() {
    memory_per_key();
}
