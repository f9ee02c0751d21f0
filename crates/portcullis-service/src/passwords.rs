//! Password hashing with Argon2id (RFC 9106), OWASP's parameters by default
//! (19 MiB, 2 passes, 1 lane), off the async runtime (`spawn_blocking`): one hash
//! takes tens of milliseconds of CPU and must not stall other requests.
//!
//! An unknown user is checked against a dummy hash made with the same
//! parameters, so the time of an answer does not tell whether the user exists.
//!
//! At most one hash per core runs at a time (the rest wait their turn), and each
//! runs in one of a fixed set of reusable Argon2 memory buffers: a flood of
//! sign-ins uses at most cores × `memory_kib` of memory and does not thrash the
//! caches of the cores it shares. (Allocating 19 MiB per hash on whichever
//! blocking thread runs it left ~500 MB resident after ten seconds of logins:
//! each thread's malloc arena kept its own freed blocks.)

use std::sync::{Arc, OnceLock};

use anyhow::Context;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use portcullis_core::secret::SecretString;

use crate::ServiceError;

/// Argon2id parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory, KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// OWASP Password Storage Cheat Sheet: m=19456 (19 MiB), t=2, p=1.
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Shortest and longest password accepted (NIST SP 800-63B: at least 8; a cap
/// keeps a megabyte "password" from costing a megabyte of hashing).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// See [`MIN_PASSWORD_CHARS`].
pub const MAX_PASSWORD_BYTES: usize = 1_024;

/// The hasher: parameters and the dummy hash for unknown users.
#[derive(Debug)]
pub struct PasswordHasherCfg {
    params: Argon2Params,
    dummy: OnceLock<String>,
    /// One permit per core: the hashes that may run at once.
    permits: Arc<tokio::sync::Semaphore>,
    /// Argon2 memory, reused: at most one buffer per permit.
    buffers: std::sync::Mutex<Vec<Vec<Block>>>,
}

/// Hashes that may run at once: the number of cores.
pub fn hash_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl PasswordHasherCfg {
    /// A hasher with `params` (validated).
    pub fn new(params: Argon2Params) -> Result<Self, ServiceError> {
        Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| {
            ServiceError::invalid("argon2", format!("invalid Argon2id parameters: {e}"))
        })?;
        Ok(Self {
            params,
            dummy: OnceLock::new(),
            permits: Arc::new(tokio::sync::Semaphore::new(hash_concurrency())),
            buffers: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The parameters.
    pub fn params(&self) -> Argon2Params {
        self.params
    }

    fn argon2(p: Argon2Params) -> anyhow::Result<Argon2<'static>> {
        let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None)
            .map_err(|e| anyhow::anyhow!("argon2 params: {e}"))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Hashes on the calling thread (use [`hash`] from async code).
    pub fn hash_blocking(p: Argon2Params, password: &str) -> anyhow::Result<String> {
        let mut salt = [0u8; 16];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| anyhow::anyhow!("no randomness"))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
        Ok(Self::argon2(p)?
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
            .to_string())
    }

    /// Verifies on the calling thread: the parameters come from the stored hash.
    pub fn verify_blocking(hash: &str, password: &str) -> bool {
        match PasswordHash::new(hash) {
            Ok(parsed) => Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    }

    /// Verifies like [`Self::verify_blocking`], computing in `memory` (grown to
    /// the stored hash's block count when it is smaller) instead of a fresh
    /// allocation. The comparison is constant-time.
    pub fn verify_in(hash: &str, password: &str, memory: &mut Vec<Block>) -> bool {
        let mut check = || -> Option<bool> {
            let parsed = PasswordHash::new(hash).ok()?;
            let alg = Algorithm::try_from(parsed.algorithm).ok()?;
            let version = match parsed.version {
                Some(v) => Version::try_from(v).ok()?,
                None => Version::default(),
            };
            let params = Params::try_from(&parsed).ok()?;
            let expected = parsed.hash?;
            let mut salt = [0u8; 64];
            let salt = parsed.salt?.decode_b64(&mut salt).ok()?;
            let blocks = params.block_count();
            if memory.len() < blocks {
                memory.resize(blocks, Block::default());
            }
            let mut out = vec![0u8; expected.len()];
            Argon2::new(alg, version, params)
                .hash_password_into_with_memory(
                    password.as_bytes(),
                    salt,
                    &mut out,
                    &mut memory[..blocks],
                )
                .ok()?;
            Some(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), out.as_slice()).into())
        };
        check().unwrap_or(false)
    }

    fn take_buffer(&self) -> Vec<Block> {
        match self.buffers.lock() {
            Ok(mut g) => g.pop(),
            Err(p) => p.into_inner().pop(),
        }
        .unwrap_or_default()
    }

    fn give_buffer(&self, b: Vec<Block>) {
        let mut g = match self.buffers.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if g.len() < hash_concurrency() {
            g.push(b);
        }
    }

    /// True when `hash` was made with other parameters than the configured ones
    /// (it is then re-hashed at the next successful sign-in).
    pub fn needs_rehash(&self, hash: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(hash) else {
            return true;
        };
        let Ok(p) = Params::try_from(&parsed) else {
            return true;
        };
        parsed.algorithm.as_str() != "argon2id"
            || p.m_cost() != self.params.memory_kib
            || p.t_cost() != self.params.iterations
            || p.p_cost() != self.params.parallelism
    }
}

/// Checks a new password against the policy; the message names the field.
pub fn check_policy(password: &SecretString) -> Result<(), ServiceError> {
    let p = password.expose();
    if p.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ServiceError::invalid(
            "password",
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if p.len() > MAX_PASSWORD_BYTES {
        return Err(ServiceError::invalid(
            "password",
            format!("must be at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    if p.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            "password",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Runs `work` (one Argon2 computation) on the blocking pool under one of the hash
/// permits. The permit moves into the blocking job, so it is given back when the
/// computation ends, not when the caller stops waiting: a request dropped halfway
/// (the client hung up, the request timed out) cannot hand its permit to the next
/// one while its hash still runs. Otherwise clients that disconnect right after
/// sending a sign-in would start hash after hash, each with its own 19 MiB, up to the
/// blocking pool's 512 threads.
async fn run_limited<T: Send + 'static>(
    permits: &Arc<tokio::sync::Semaphore>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServiceError> {
    let permit = permits
        .clone()
        .acquire_owned()
        .await
        .context("hash permits")?;
    Ok(tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .context("password hashing task")?)
}

/// Hashes `password` off the runtime, one hash per core at a time like
/// verification.
pub async fn hash(
    cfg: &PasswordHasherCfg,
    password: &SecretString,
) -> Result<String, ServiceError> {
    let p = cfg.params;
    let pw = password.clone();
    Ok(run_limited(&cfg.permits, move || {
        PasswordHasherCfg::hash_blocking(p, pw.expose())
    })
    .await??)
}

/// Verifies `password` against `hash`, or against the dummy hash when there is none,
/// off the runtime. Always costs one Argon2id computation.
pub async fn verify(
    cfg: &Arc<PasswordHasherCfg>,
    hash: Option<&str>,
    password: &SecretString,
) -> Result<bool, ServiceError> {
    let job = {
        let cfg = cfg.clone();
        let stored = hash.map(str::to_owned);
        let pw = password.clone();
        move || -> anyhow::Result<bool> {
            let real = stored.is_some();
            let h = match stored {
                Some(h) => h,
                None => match cfg.dummy.get() {
                    Some(d) => d.clone(),
                    None => {
                        let d = PasswordHasherCfg::hash_blocking(cfg.params, "portcullis-dummy")?;
                        cfg.dummy.get_or_init(|| d).clone()
                    }
                },
            };
            let mut memory = cfg.take_buffer();
            let ok = PasswordHasherCfg::verify_in(&h, pw.expose(), &mut memory);
            cfg.give_buffer(memory);
            Ok(ok && real)
        }
    };
    Ok(run_limited(&cfg.permits, job).await??)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> Argon2Params {
        Argon2Params {
            memory_kib: 1_024,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn a_hash_verifies_its_password_only_and_is_argon2id() {
        let h = PasswordHasherCfg::hash_blocking(fast(), "correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{h}");
        assert!(PasswordHasherCfg::verify_blocking(&h, "correct horse"));
        assert!(!PasswordHasherCfg::verify_blocking(&h, "correct horsE"));
        assert!(!PasswordHasherCfg::verify_blocking("not a hash", "x"));
        // The pooled-memory path agrees with the crate's own verifier, and reuses
        // (and grows) its buffer.
        let mut memory = Vec::new();
        assert!(PasswordHasherCfg::verify_in(
            &h,
            "correct horse",
            &mut memory
        ));
        assert_eq!(memory.len(), 1_024);
        assert!(!PasswordHasherCfg::verify_in(
            &h,
            "correct horsE",
            &mut memory
        ));
        assert!(!PasswordHasherCfg::verify_in(
            "not a hash",
            "x",
            &mut memory
        ));
        let big = PasswordHasherCfg::hash_blocking(
            Argon2Params {
                memory_kib: 2_048,
                iterations: 1,
                parallelism: 2,
            },
            "pw two lanes",
        )
        .expect("hash");
        assert!(PasswordHasherCfg::verify_in(
            &big,
            "pw two lanes",
            &mut memory
        ));
        assert_eq!(memory.len(), 2_048);
        let cfg = PasswordHasherCfg::new(fast()).expect("cfg");
        assert!(!cfg.needs_rehash(&h));
        let other = PasswordHasherCfg::new(Argon2Params::default()).expect("cfg");
        assert!(other.needs_rehash(&h));
    }

    #[test]
    fn the_policy_names_the_field() {
        for bad in ["short", "\u{7}bell-in-it", &"x".repeat(2_000)] {
            let e = check_policy(&SecretString::new(bad)).expect_err(bad);
            assert!(e.to_string().starts_with("invalid password:"), "{e}");
        }
        assert!(check_policy(&SecretString::new("long enough")).is_ok());
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert!(PasswordHasherCfg::new(Argon2Params {
            memory_kib: 1,
            iterations: 1,
            parallelism: 1
        })
        .is_err());
    }

    #[tokio::test]
    async fn unknown_users_cost_a_verification_and_never_pass() {
        let cfg = Arc::new(PasswordHasherCfg::new(fast()).expect("cfg"));
        let pw = SecretString::new("portcullis-dummy");
        assert!(!verify(&cfg, None, &pw).await.expect("verify"));
        let h = hash(&cfg, &pw).await.expect("hash");
        assert!(verify(&cfg, Some(&h), &pw).await.expect("verify"));
    }

    /// A request dropped while its hash runs (client gone, request timeout) keeps
    /// its permit until the hash ends: the next request waits instead of starting a
    /// second computation beside the orphaned one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_request_keeps_its_permit_until_its_hash_ends() {
        let permits = Arc::new(tokio::sync::Semaphore::new(1));
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let first = tokio::spawn({
            let permits = permits.clone();
            async move {
                run_limited(&permits, move || {
                    started_tx.send(()).expect("started");
                    // Stands in for an Argon2 computation still running.
                    release_rx.recv().expect("released");
                })
                .await
            }
        });
        tokio::task::spawn_blocking(move || started_rx.recv())
            .await
            .expect("join")
            .expect("the job started");
        first.abort();
        assert!(first.await.expect_err("aborted").is_cancelled());
        assert_eq!(
            permits.available_permits(),
            0,
            "the running job still holds the permit"
        );
        let second = tokio::spawn({
            let permits = permits.clone();
            async move { run_limited(&permits, || 7).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!second.is_finished(), "the second job waits for the permit");
        release_tx.send(()).expect("release");
        assert_eq!(second.await.expect("join").expect("ran"), 7);
        assert_eq!(permits.available_permits(), 1);
    }
}
