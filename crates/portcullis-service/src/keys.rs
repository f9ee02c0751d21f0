//! Signing keys: life cycle and the in-memory key ring.
//!
//! Each algorithm has one **active** key that signs. Rotation (scheduled every
//! `rotation_interval`, or asked for with `portcullis signing-key rotate`) first
//! creates a **next** key that is only published in the JWKS; once it has been
//! published for `publish_ahead` (at least the JWKS cache lifetime, so every
//! verifier has seen it) it becomes active and the old key is **retired**. A
//! retired key stays published until every token it can have signed has expired
//! (`max_access_token_ttl` + leeway), then it is deleted.
//!
//! Private keys are stored sealed (AES-256-GCM under the master key, bound to
//! their `kid`) and only unsealed into memory for active keys.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use portcullis_core::jose::{JwtVerifier, SigningAlg, SigningKey, VerifyingKey};
use portcullis_store::{SigningKeyRow, SigningKeyState};
use serde::Serialize;

use crate::{Authority, ServiceError};

/// The keys in use now: signers per algorithm, and every published key for verification.
#[derive(Debug)]
pub struct KeyRing {
    signers: HashMap<SigningAlg, Arc<SigningKey>>,
    verifier: JwtVerifier,
    jwks: Vec<jsonwebtoken::jwk::Jwk>,
    jwks_document: bytes::Bytes,
}

impl KeyRing {
    pub(crate) fn empty(issuer: &str, leeway: i64) -> Self {
        Self {
            signers: HashMap::new(),
            verifier: JwtVerifier::new(issuer, leeway, []),
            jwks: Vec::new(),
            jwks_document: bytes::Bytes::from_static(br#"{"keys":[]}"#),
        }
    }

    /// The JWK Set document, serialized once per key change (served as-is at
    /// `/jwks.json`; a shared buffer, so serving it copies nothing).
    pub fn jwks_document(&self) -> bytes::Bytes {
        self.jwks_document.clone()
    }

    /// The active key for `alg`.
    pub fn signer(&self, alg: SigningAlg) -> Option<&Arc<SigningKey>> {
        self.signers.get(&alg)
    }

    /// A verifier knowing every published key.
    pub fn verifier(&self) -> &JwtVerifier {
        &self.verifier
    }

    /// Every published public key (next, active, retired).
    pub fn jwks(&self) -> &[jsonwebtoken::jwk::Jwk] {
        &self.jwks
    }
}

/// A signing key as `signing-key list` shows it (never the private part).
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// Key id (RFC 7638 thumbprint).
    pub kid: String,
    /// Algorithm.
    pub alg: String,
    /// `next`, `active` or `retired`.
    pub state: String,
    /// Generated at.
    pub created_at: i64,
    /// Signs (or signed) from.
    pub activate_at: i64,
    /// Stopped signing at.
    pub retired_at: Option<i64>,
    /// Leaves the JWKS at (retired keys only).
    pub remove_at: Option<i64>,
}

/// What one rotation pass did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct RotationReport {
    /// Keys created (first keys and next keys).
    pub created: Vec<String>,
    /// Keys that became active.
    pub activated: Vec<String>,
    /// Retired keys deleted.
    pub removed: Vec<String>,
}

impl RotationReport {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.created.is_empty() && self.activated.is_empty() && self.removed.is_empty()
    }
}

/// The periodic job lock of signing-key creation and rotation.
const KEYS_JOB: &str = "signing-keys";

impl Authority {
    fn retired_lifetime(&self) -> i64 {
        self.config.max_access_token_ttl.as_secs() as i64 + self.config.leeway
    }

    async fn create_key(
        &self,
        alg: SigningAlg,
        state: SigningKeyState,
        activate_at: i64,
    ) -> Result<String, ServiceError> {
        // RSA generation takes a while: keep it off the async executor's threads.
        let (key, der) = tokio::task::spawn_blocking(move || SigningKey::generate(alg))
            .await
            .context("key generation task")?
            .context("generating a signing key")?;
        let sealed = self
            .sealer
            .seal(&der, key.kid())
            .context("sealing a signing key")?;
        let row = SigningKeyRow {
            kid: key.kid().to_owned(),
            alg: alg.as_str().to_owned(),
            public_jwk: serde_json::to_string(key.public_jwk()).context("serializing a JWK")?,
            private_key_sealed: sealed,
            state: state.as_str().to_owned(),
            created_at: self.now(),
            activate_at,
            retired_at: None,
        };
        self.store.insert_signing_key(&row).await?;
        tracing::info!(kid = key.kid(), alg = %alg, state = %state, activate_at, "signing key created");
        self.audit(crate::audit::AuditEvent::new("signing_key.created").credential(row.kid.clone()).details(serde_json::json!({"alg": alg.as_str(), "state": state.as_str(), "activate_at": activate_at}))).await?;
        Ok(row.kid)
    }

    /// Creates an active key for every algorithm that has none (first start).
    pub async fn ensure_signing_keys(&self) -> Result<Vec<String>, ServiceError> {
        // Nodes starting together on an empty database: the first creates the keys,
        // the others wait for it and then find them.
        let lock = self.store.lock_job(KEYS_JOB, true).await?;
        let created = self.ensure_signing_keys_locked().await;
        if let Some(lock) = lock {
            lock.release().await;
        }
        created
    }

    async fn ensure_signing_keys_locked(&self) -> Result<Vec<String>, ServiceError> {
        let rows = self.store.list_signing_keys().await?;
        let mut created = Vec::new();
        for alg in SigningAlg::ALL {
            let has_active = rows
                .iter()
                .any(|r| r.alg == alg.as_str() && r.state == SigningKeyState::Active.as_str());
            if !has_active {
                created.push(
                    self.create_key(alg, SigningKeyState::Active, self.now())
                        .await?,
                );
            }
        }
        if !created.is_empty() {
            self.reload_keyring().await?;
        }
        Ok(created)
    }

    /// One pass of scheduled rotation at the current time; reloads the key ring after.
    pub async fn rotate_due(&self) -> Result<RotationReport, ServiceError> {
        // One node at a time: two reaching a due rotation together would each publish
        // a next key. A node that finds the job taken only reloads what the other
        // node wrote.
        let Some(lock) = self.store.lock_job(KEYS_JOB, false).await? else {
            self.reload_keyring().await?;
            return Ok(RotationReport::default());
        };
        let report = self.rotate_due_locked().await;
        lock.release().await;
        report
    }

    async fn rotate_due_locked(&self) -> Result<RotationReport, ServiceError> {
        let now = self.now();
        let interval = self.config.rotation_interval.as_secs() as i64;
        let ahead = self.config.publish_ahead.as_secs() as i64;
        let rows = self.store.list_signing_keys().await?;
        let mut report = RotationReport::default();
        for alg in SigningAlg::ALL {
            let of_alg = || rows.iter().filter(move |r| r.alg == alg.as_str());
            let active = of_alg()
                .filter(|r| r.state == "active")
                .max_by_key(|r| r.activate_at);
            let next = of_alg()
                .filter(|r| r.state == "next")
                .min_by_key(|r| r.activate_at);
            match (active, next) {
                (_, Some(n)) if n.activate_at <= now => {
                    self.store.activate_signing_key(&n.kid, now).await?;
                    tracing::info!(kid = %n.kid, alg = %alg, "signing key activated");
                    self.audit(
                        crate::audit::AuditEvent::new("signing_key.activated")
                            .credential(n.kid.clone()),
                    )
                    .await?;
                    report.activated.push(n.kid.clone());
                }
                (Some(a), None) if now >= a.activate_at + interval - ahead => {
                    let at = (a.activate_at + interval).max(now + ahead);
                    report
                        .created
                        .push(self.create_key(alg, SigningKeyState::Next, at).await?);
                }
                (None, None) => {
                    report
                        .created
                        .push(self.create_key(alg, SigningKeyState::Active, now).await?);
                }
                _ => {}
            }
        }
        let lifetime = self.retired_lifetime();
        for r in rows.iter().filter(|r| r.state == "retired") {
            if r.retired_at.is_some_and(|t| t + lifetime < now) {
                self.store.delete_signing_key(&r.kid).await?;
                tracing::info!(kid = %r.kid, alg = %r.alg, "retired signing key removed from the JWKS");
                self.audit(
                    crate::audit::AuditEvent::new("signing_key.removed").credential(r.kid.clone()),
                )
                .await?;
                self.security_event(
                    crate::events::SIGNING_KEY_RETIRED,
                    &r.kid,
                    serde_json::json!({"alg": r.alg}),
                )
                .await?;
                report.removed.push(r.kid.clone());
            }
        }
        self.reload_keyring().await?;
        Ok(report)
    }

    /// Starts a rotation for `alg` now: a next key that signs after `publish_ahead`,
    /// or at once with `immediate` (for a compromised key: verifiers with a cached
    /// JWKS will refetch on the unknown `kid`).
    pub async fn rotate_now(
        &self,
        alg: SigningAlg,
        immediate: bool,
    ) -> Result<String, ServiceError> {
        let rows = self.store.list_signing_keys().await?;
        let pending = rows
            .iter()
            .find(|r| r.alg == alg.as_str() && r.state == "next");
        let now = self.now();
        let kid = match (pending, immediate) {
            (Some(p), false) => {
                return Err(ServiceError::Conflict(format!(
                    "a rotation for {alg} is already scheduled (next key {} signs from {}); use --immediate to switch now",
                    p.kid, p.activate_at
                )))
            }
            (Some(p), true) => p.kid.clone(),
            (None, false) => {
                let at = now + self.config.publish_ahead.as_secs() as i64;
                return self.create_key(alg, SigningKeyState::Next, at).await;
            }
            (None, true) => self.create_key(alg, SigningKeyState::Next, now).await?,
        };
        self.store.activate_signing_key(&kid, now).await?;
        self.reload_keyring().await?;
        Ok(kid)
    }

    /// All keys, for `signing-key list`.
    pub async fn list_signing_keys(&self) -> Result<Vec<KeyInfo>, ServiceError> {
        let lifetime = self.retired_lifetime();
        Ok(self
            .store
            .list_signing_keys()
            .await?
            .into_iter()
            .map(|r| KeyInfo {
                remove_at: r.retired_at.map(|t| t + lifetime),
                kid: r.kid,
                alg: r.alg,
                state: r.state,
                created_at: r.created_at,
                activate_at: r.activate_at,
                retired_at: r.retired_at,
            })
            .collect())
    }

    /// Rebuilds the key ring from the store: unseals active keys, publishes all.
    pub async fn reload_keyring(&self) -> Result<(), ServiceError> {
        let rows = self.store.list_signing_keys().await?;
        let mut signers = HashMap::new();
        let mut verifying = Vec::new();
        let mut jwks = Vec::new();
        for r in &rows {
            let alg = SigningAlg::from_str(&r.alg)
                .with_context(|| format!("signing key {} has unknown alg", r.kid))?;
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(&r.public_jwk)
                .with_context(|| format!("signing key {} has a bad JWK", r.kid))?;
            verifying.push(
                VerifyingKey::from_jwk(&jwk).with_context(|| format!("signing key {}", r.kid))?,
            );
            jwks.push(jwk);
            if r.state == "active" {
                let der = self
                    .sealer
                    .open(&r.private_key_sealed, &r.kid)
                    .with_context(|| format!("unsealing signing key {} (is this the master key it was created with?)", r.kid))?;
                let key = SigningKey::from_pkcs8(alg, &der)
                    .with_context(|| format!("loading signing key {}", r.kid))?;
                // If two are active (a race between nodes), the newest signs.
                signers.insert(alg, Arc::new(key));
            }
        }
        let jwks_document = serde_json::to_vec(&serde_json::json!({ "keys": &jwks }))
            .context("serializing the JWKS")?
            .into();
        let ring = KeyRing {
            signers,
            verifier: JwtVerifier::new(self.config.issuer.clone(), self.config.leeway, verifying),
            jwks,
            jwks_document,
        };
        match self.keyring.write() {
            Ok(mut g) => *g = Arc::new(ring),
            Err(p) => *p.into_inner() = Arc::new(ring),
        }
        Ok(())
    }
}
