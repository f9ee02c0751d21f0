//! DPoP at the authorization server (RFC 9449): proof checks for the token
//! endpoint and forward-auth, server nonces, and the replay cache.
//!
//! Nonces are stateless and the same on every node: `<window>.<mac>`, where the
//! window is `now / nonce_lifetime` and the MAC is the pepper's keyed digest of
//! it. The current and the previous window are accepted, so a nonce lives
//! between one and two lifetimes.

use std::time::Duration;

use portcullis_core::dpop::{validate_proof, DpopError, ProofContext, ValidProof};

use crate::{Authority, ServiceError};

/// Most proof ids remembered at once (about 100 bytes each).
pub(crate) const REPLAY_CACHE_MAX: usize = 200_000;

/// DPoP settings.
#[derive(Debug, Clone)]
pub struct DpopConfig {
    /// Proofs must carry a server nonce (`DPoP-Nonce`, RFC 9449 §8).
    pub require_nonce: bool,
    /// How long one nonce window lasts.
    pub nonce_lifetime: Duration,
    /// How old a proof's `iat` may be.
    pub proof_max_age: Duration,
}

impl Default for DpopConfig {
    fn default() -> Self {
        Self {
            require_nonce: false,
            nonce_lifetime: Duration::from_secs(300),
            proof_max_age: Duration::from_secs(60),
        }
    }
}

impl Authority {
    /// The nonce clients should use now, when nonces are required.
    pub fn dpop_nonce(&self) -> Option<String> {
        self.config
            .dpop
            .require_nonce
            .then(|| self.nonce_for(self.nonce_window()))
    }

    fn nonce_window(&self) -> i64 {
        self.now() / (self.config.dpop.nonce_lifetime.as_secs().max(1) as i64)
    }

    fn nonce_for(&self, window: i64) -> String {
        let mac = self.pepper.digest(&format!("dpop-nonce:{window}"));
        format!("{window}.{}", &mac.as_str()[..32])
    }

    fn nonce_ok(&self, nonce: Option<&str>) -> bool {
        let w = self.nonce_window();
        nonce.is_some_and(|n| {
            [w, w - 1].into_iter().any(|win| {
                bool::from(subtle::ConstantTimeEq::ct_eq(
                    n.as_bytes(),
                    self.nonce_for(win).as_bytes(),
                ))
            })
        })
    }

    /// Checks a DPoP proof for a request `htm` `htu` (with the access token it
    /// accompanies, if any): the proof itself, the nonce when required, and that its
    /// `jti` was not used before. Returns the key thumbprint to bind or compare.
    pub fn check_dpop_proof(
        &self,
        proof: &str,
        htm: &str,
        htu: &str,
        access_token: Option<&str>,
    ) -> Result<ValidProof, ServiceError> {
        let now = self.now();
        let max_age = self.config.dpop.proof_max_age.as_secs() as i64;
        let ctx = ProofContext {
            htm,
            htu,
            access_token,
            now,
            max_age,
            leeway: self.config.leeway.min(max_age),
        };
        let proof = validate_proof(proof, &ctx).map_err(dpop_error)?;
        if self.config.dpop.require_nonce && !self.nonce_ok(proof.nonce.as_deref()) {
            return Err(ServiceError::UseDpopNonce(
                self.nonce_for(self.nonce_window()),
            ));
        }
        self.dpop_replay
            .check(&proof, proof.iat + max_age + ctx.leeway, now)
            .map_err(dpop_error)?;
        Ok(proof)
    }
}

fn dpop_error(e: DpopError) -> ServiceError {
    ServiceError::InvalidDpopProof(e.to_string())
}
