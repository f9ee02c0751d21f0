//! Public test vectors through our own verification path (`VerifyingKey::verify_signature`
//! and `JwtVerifier::verify_jws`): Wycheproof (Ed25519, ECDSA P-256 in the IEEE P1363
//! encoding JWS uses, RSA PKCS#1 v1.5 and PSS 2048/SHA-256, and the JOSE-level JWS
//! attacks) and the RFC 7520 / RFC 8037 examples. Read from `../shared/testdata`;
//! without it the test says it skipped.

use std::io::Write;
use std::path::PathBuf;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use portcullis_core::jose::{JwtVerifier, VerifyingKey};
use serde_json::{json, Value};

fn testdata() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata");
    if p.is_dir() {
        Some(p)
    } else {
        let _ = writeln!(
            std::io::stderr(),
            "skipped: test vectors ({} not found)",
            p.display()
        );
        None
    }
}

fn load(rel: &str) -> Option<Value> {
    let path = testdata()?.join(rel);
    Some(
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read vectors")).expect("json"),
    )
}

fn key(mut jwk: Value, alg: &str) -> Option<VerifyingKey> {
    jwk["alg"] = json!(alg);
    jwk["kid"] = json!("wycheproof");
    let jwk: Jwk = serde_json::from_value(jwk).ok()?;
    VerifyingKey::from_jwk(&jwk).ok()
}

/// Runs a primitive signature file; returns (valid accepted, invalid rejected) counts.
fn primitive(file: &str, alg: &str, jwk_of: impl Fn(&Value) -> Value) -> Option<(usize, usize)> {
    let doc = load(&format!("wycheproof/{file}"))?;
    let (mut ok_valid, mut ok_invalid) = (0, 0);
    for g in doc["testGroups"].as_array().expect("groups") {
        let k = key(jwk_of(g), alg);
        for t in g["tests"].as_array().expect("tests") {
            let msg = hex::decode(t["msg"].as_str().expect("msg")).expect("hex");
            let sig = hex::decode(t["sig"].as_str().expect("sig")).expect("hex");
            let accepted = k.as_ref().is_some_and(|k| k.verify_signature(&msg, &sig));
            match t["result"].as_str().expect("result") {
                "valid" => {
                    assert!(
                        accepted,
                        "{file} tcId {} ({}) must verify",
                        t["tcId"], t["comment"]
                    );
                    ok_valid += 1;
                }
                "invalid" => {
                    assert!(
                        !accepted,
                        "{file} tcId {} ({}) must be rejected",
                        t["tcId"], t["comment"]
                    );
                    ok_invalid += 1;
                }
                _ => {} // "acceptable": either answer is allowed
            }
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "{file}: {ok_valid} valid accepted, {ok_invalid} invalid rejected"
    );
    Some((ok_valid, ok_invalid))
}

fn hex_to_b64(h: &str) -> String {
    let mut bytes = hex::decode(h).expect("hex");
    while bytes.len() > 1 && bytes[0] == 0 {
        bytes.remove(0);
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn wycheproof_ed25519() {
    if let Some((v, i)) = primitive("ed25519_test.json", "EdDSA", |g| g["publicKeyJwk"].clone()) {
        assert!(v > 50 && i > 50);
    }
}

/// A P-256 coordinate as a JWK wants it: exactly 32 bytes, big-endian.
fn coord(h: &str) -> String {
    let bytes = hex::decode(h).expect("hex");
    let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    let mut out = vec![0u8; 32usize.saturating_sub(trimmed.len())];
    out.extend(trimmed);
    URL_SAFE_NO_PAD.encode(out)
}

#[test]
fn wycheproof_ecdsa_p256_p1363() {
    // Some groups carry no JWK: build it from the raw coordinates.
    let jwk = |g: &Value| match g.get("publicKeyJwk") {
        Some(j) => j.clone(),
        None => json!({"kty": "EC", "crv": "P-256",
            "x": coord(g["publicKey"]["wx"].as_str().expect("wx")), "y": coord(g["publicKey"]["wy"].as_str().expect("wy"))}),
    };
    if let Some((v, i)) = primitive("ecdsa_secp256r1_sha256_p1363_test.json", "ES256", jwk) {
        assert!(v > 100 && i > 50);
    }
}

#[test]
fn wycheproof_rsa_pkcs1_2048_sha256() {
    let jwk = |g: &Value| {
        let pk = &g["publicKey"];
        json!({"kty": "RSA", "n": hex_to_b64(pk["modulus"].as_str().expect("n")), "e": hex_to_b64(pk["publicExponent"].as_str().expect("e"))})
    };
    if let Some((v, i)) = primitive("rsa_signature_2048_sha256_test.json", "RS256", jwk) {
        assert!(v >= 9 && i > 200);
    }
}

#[test]
fn wycheproof_rsa_pss_2048_sha256() {
    if let Some((v, i)) = primitive("rsa_pss_2048_sha256_mgf1_32_test.json", "PS256", |g| {
        g["publicKeyJwk"].clone()
    }) {
        assert!(v > 50 && i > 30);
    }
}

/// The JOSE-level Wycheproof cases: for the asymmetric algorithms we accept, our
/// verdict equals Wycheproof's. Refused by policy whatever Wycheproof says: groups
/// keyed for HMAC (never accepted), and tokens whose `alg` is not the key's own or not
/// one we accept (RFC 8725 §3.1: the key pins the algorithm).
#[test]
fn wycheproof_json_web_signature() {
    let Some(doc) = load("wycheproof/json_web_signature_test.json") else {
        return;
    };
    let (mut agreed, mut hmac_refused) = (0, 0);
    for g in doc["testGroups"].as_array().expect("groups") {
        let jwk = g
            .get("public")
            .cloned()
            .unwrap_or_else(|| g["private"].clone());
        let jwk: Option<Jwk> = serde_json::from_value(jwk).ok();
        let vk = jwk.as_ref().and_then(|j| VerifyingKey::from_jwk(j).ok());
        for t in g["tests"].as_array().expect("tests") {
            let jws = t["jws"].as_str().unwrap_or("");
            let accepted = vk.as_ref().is_some_and(|k| {
                JwtVerifier::new("i", 0, [k.clone()])
                    .verify_jws(jws, None)
                    .is_ok()
            });
            let header_alg = jsonwebtoken::decode_header(jws)
                .ok()
                .map(|h| format!("{:?}", h.alg));
            let pinned = vk.as_ref().map(|k| k.alg().as_str().to_owned());
            let policy_refusal = vk.is_none() || header_alg != pinned;
            match (!policy_refusal, t["result"].as_str()) {
                (false, _) => {
                    assert!(!accepted);
                    hmac_refused += 1;
                }
                (true, Some("valid")) => {
                    assert!(
                        accepted,
                        "tcId {} ({}) must verify",
                        t["tcId"], t["comment"]
                    );
                    agreed += 1;
                }
                (true, Some("invalid")) => {
                    assert!(
                        !accepted,
                        "tcId {} ({}) must be rejected",
                        t["tcId"], t["comment"]
                    );
                    agreed += 1;
                }
                _ => {}
            }
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "json_web_signature_test.json: {agreed} agreed with Wycheproof, {hmac_refused} refused by policy (HMAC or alg not the key's)"
    );
    assert!(agreed > 200);
}

/// RFC 7520 §4.1 (RS256), §4.3 (ES512, not accepted: refused) and RFC 8037 §A.4 (Ed25519)
/// signatures verify through the same path.
#[test]
fn rfc7520_and_rfc8037_examples_verify() {
    let Some(dir) = testdata() else { return };
    let cookbook = dir.join("jose-cookbook");
    let mut checked = 0;
    for entry in walk(&cookbook) {
        let Ok(text) = std::fs::read_to_string(&entry) else {
            continue;
        };
        let Ok(doc) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let (Some(jwk), Some(compact)) = (
            doc["input"]["key"].as_object(),
            doc["output"]["compact"].as_str(),
        ) else {
            continue;
        };
        let alg = doc["input"]["alg"].as_str().unwrap_or("");
        let mut jwk = Value::Object(jwk.clone());
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            jwk.as_object_mut().map(|o| o.remove(private));
        }
        let Some(vk) = key(jwk, alg) else {
            assert!(
                !["RS256", "PS256", "ES256", "EdDSA"].contains(&alg),
                "{}: a supported key must load",
                entry.display()
            );
            continue;
        };
        // The cookbook's kid differs from ours; re-sign nothing, just verify the signature bytes.
        let (message, sig) = compact.rsplit_once('.').expect("compact");
        let sig = URL_SAFE_NO_PAD.decode(sig).expect("b64");
        assert!(
            vk.verify_signature(message.as_bytes(), &sig),
            "{} ({alg}) must verify",
            entry.display()
        );
        checked += 1;
    }
    let _ = writeln!(
        std::io::stderr(),
        "jose-cookbook: {checked} signatures verified"
    );
    assert!(
        checked >= 1,
        "at least one cookbook example in a supported algorithm"
    );
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else if p.extension().is_some_and(|x| x == "json") {
                out.push(p);
            }
        }
    }
    out
}
