//! Key material held by the server.
//!
//! One 256-bit **master key** (from a file the operator supplies, or one created
//! on first start) is the root. From it HKDF-SHA256 derives, with distinct labels:
//! - the **pepper**, the HMAC-SHA256 key under which every opaque secret is stored;
//! - the **key-encryption key**, AES-256-GCM, which seals signing private keys at rest;
//! - the **audit chain key**, HMAC-SHA256, which links audit records so that an edit,
//!   deletion or reordering is detected and cannot be re-chained without this key.
//!
//! Deriving both from one root means one file to protect and back up; the labels
//! keep the two uses cryptographically independent.

use std::fmt;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::{hkdf, hmac};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Why key material could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The master key text is not 32 bytes in base64.
    #[error("invalid master key: expected 32 bytes, base64-encoded (44 characters)")]
    InvalidMasterKey,
    /// A sealed blob failed to decrypt: wrong master key, or tampered data.
    #[error("sealed key material could not be opened (wrong master key or tampered data)")]
    Unseal,
    /// The system random generator or the AEAD failed.
    #[error("cryptographic operation failed")]
    Crypto,
}

/// The root secret. `Debug` is redacted.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    /// A fresh random master key.
    pub fn generate() -> Result<Self, KeyError> {
        let mut k = [0u8; 32];
        aws_lc_rs::rand::fill(&mut k).map_err(|_| KeyError::Crypto)?;
        Ok(Self(k))
    }

    /// Reads the file format: base64 of 32 bytes, surrounding whitespace ignored.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| KeyError::InvalidMasterKey)?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| KeyError::InvalidMasterKey)?;
        Ok(Self(arr))
    }

    /// The file format.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    fn derive(&self, label: &[u8]) -> Result<[u8; 32], KeyError> {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"portcullis/v1");
        let prk = salt.extract(&self.0);
        let labels = [label];
        let okm = prk
            .expand(&labels, hkdf::HKDF_SHA256)
            .map_err(|_| KeyError::Crypto)?;
        let mut out = [0u8; 32];
        okm.fill(&mut out).map_err(|_| KeyError::Crypto)?;
        Ok(out)
    }

    /// The pepper for storing opaque secrets.
    pub fn pepper(&self) -> Result<Pepper, KeyError> {
        let k = self.derive(b"pepper")?;
        Ok(Pepper(hmac::Key::new(hmac::HMAC_SHA256, &k)))
    }

    /// The key that seals private keys at rest.
    pub fn sealer(&self) -> Result<Sealer, KeyError> {
        let k = self.derive(b"signing-key-encryption")?;
        let key = UnboundKey::new(&AES_256_GCM, &k).map_err(|_| KeyError::Crypto)?;
        Ok(Sealer(LessSafeKey::new(key)))
    }
}

impl MasterKey {
    /// The key that links the audit chain.
    pub fn audit_chain_key(&self) -> Result<ChainKey, KeyError> {
        let k = self.derive(b"audit-chain")?;
        Ok(ChainKey(hmac::Key::new(hmac::HMAC_SHA256, &k)))
    }
}

/// HMAC-SHA256 key of the audit hash chain.
#[derive(Clone)]
pub struct ChainKey(hmac::Key);

impl fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChainKey([redacted])")
    }
}

impl ChainKey {
    /// The link for a record: lowercase hex of HMAC(key, domain ‖ 0 ‖ prev ‖ 0 ‖ body).
    /// `domain` separates uses (record links, anchors) so one cannot stand for another.
    pub fn link(&self, domain: &str, prev: &str, body: &[u8]) -> String {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(domain.as_bytes());
        ctx.update(&[0]);
        ctx.update(prev.as_bytes());
        ctx.update(&[0]);
        ctx.update(body);
        lower_hex_32(ctx.sign().as_ref())
    }

    /// Checks a stored link in constant time.
    pub fn check(&self, domain: &str, prev: &str, body: &[u8], stored: &str) -> bool {
        let want = self.link(domain, prev, body);
        want.len() == stored.len()
            && subtle::ConstantTimeEq::ct_eq(want.as_bytes(), stored.as_bytes()).into()
    }
}

/// HMAC-SHA256 under the server pepper: how opaque secrets are stored.
#[derive(Clone)]
pub struct Pepper(hmac::Key);

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper([redacted])")
    }
}

impl Pepper {
    /// The stored form of `secret`: lowercase hex of HMAC-SHA256(pepper, secret).
    ///
    /// A fast keyed hash is right for opaque secrets: they carry 256 bits of
    /// entropy, so there is nothing for a slow hash to protect against.
    pub fn digest(&self, secret: &str) -> SecretDigest {
        let tag = hmac::sign(&self.0, secret.as_bytes());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(tag.as_ref());
        SecretDigest {
            hex: lower_hex_32(&bytes),
            bytes,
        }
    }
}

/// Lowercase hex of a 32-byte tag (an audit link, a secret digest), written into a
/// buffer of its size (`hex::encode` collects a `String` one `char` at a time: a
/// quarter of an audit link's cost).
fn lower_hex_32(tag: &[u8]) -> String {
    let mut text = [0u8; 64];
    // Neither can fail for a 32-byte tag: 64 is twice 32, and hex digits are ASCII.
    let _ = hex::encode_to_slice(tag, &mut text);
    std::str::from_utf8(&text)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// A stored secret digest (hex, and its bytes). Compare with [`SecretDigest::ct_eq`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SecretDigest {
    hex: String,
    bytes: [u8; 32],
}

impl SecretDigest {
    /// Wraps a digest read from storage.
    pub fn from_stored(hex: String) -> Self {
        let mut bytes = [0u8; 32];
        if hex::decode_to_slice(&hex, &mut bytes).is_err() {
            bytes = [0u8; 32];
        }
        Self { hex, bytes }
    }

    /// The hex text, for storage and indexed lookup.
    pub fn as_str(&self) -> &str {
        &self.hex
    }

    /// The 32 digest bytes (a compact in-memory cache key); zeros if the stored text
    /// is not 64 hex digits.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.bytes
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &SecretDigest) -> bool {
        use subtle::ConstantTimeEq;
        self.hex.as_bytes().ct_eq(other.hex.as_bytes()).into()
    }
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A digest is not the secret, but it still identifies it; keep it out of logs.
        f.write_str("SecretDigest(..)")
    }
}

/// AES-256-GCM sealing of private keys. The associated data binds a blob to its key id,
/// so a sealed key copied onto another row will not open.
pub struct Sealer(LessSafeKey);

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer([redacted])")
    }
}

impl Sealer {
    /// Encrypts `plaintext`; returns base64 of `nonce || ciphertext || tag`.
    pub fn seal(&self, plaintext: &[u8], aad: &str) -> Result<String, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| KeyError::Crypto)?;
        let mut buf = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut buf,
            )
            .map_err(|_| KeyError::Crypto)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(STANDARD.encode(out))
    }

    /// Decrypts what [`Sealer::seal`] produced with the same `aad`.
    pub fn open(&self, sealed: &str, aad: &str) -> Result<Vec<u8>, KeyError> {
        let raw = STANDARD.decode(sealed).map_err(|_| KeyError::Unseal)?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(KeyError::Unseal);
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Unseal)?;
        let mut buf = ct.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut buf)
            .map_err(|_| KeyError::Unseal)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_key_text_round_trips_and_bad_text_is_refused() {
        let k = MasterKey::generate().expect("rng");
        let k2 = MasterKey::from_base64(&format!("  {}\n", k.to_base64())).expect("parse");
        assert_eq!(
            k.pepper().expect("p").digest("x"),
            k2.pepper().expect("p").digest("x")
        );
        assert_eq!(
            MasterKey::from_base64("c2hvcnQ=").err(),
            Some(KeyError::InvalidMasterKey)
        );
        assert_eq!(
            MasterKey::from_base64("not base64!").err(),
            Some(KeyError::InvalidMasterKey)
        );
        assert_eq!(format!("{k:?}"), "MasterKey([redacted])");
    }

    #[test]
    fn an_audit_link_is_the_lowercase_hex_hmac_of_domain_prev_and_body() {
        let master = MasterKey::generate().expect("rng");
        let key = master.audit_chain_key().expect("k");
        let raw = hmac::Key::new(
            hmac::HMAC_SHA256,
            &master.derive(b"audit-chain").expect("d"),
        );
        let want = hex::encode(hmac::sign(&raw, b"audit\0prev\0body").as_ref());
        assert_eq!(key.link("audit", "prev", b"body"), want);
        assert!(key.check("audit", "prev", b"body", &want));
        assert!(!key.check("audit", "prev", b"bodY", &want));
        assert!(!key.check("anchor", "prev", b"body", &want));
    }

    #[test]
    fn the_pepper_is_keyed_and_digests_compare_exactly() {
        let a = MasterKey::generate().expect("rng").pepper().expect("p");
        let b = MasterKey::generate().expect("rng").pepper().expect("p");
        assert!(a.digest("secret").ct_eq(&a.digest("secret")));
        assert!(!a.digest("secret").ct_eq(&a.digest("secreT")));
        assert!(
            !a.digest("secret").ct_eq(&b.digest("secret")),
            "another pepper, another digest"
        );
        assert_eq!(a.digest("s").as_str().len(), 64);
        // The stored text and the bytes are the same digest, both ways round.
        let d = a.digest("s");
        assert!(d
            .as_str()
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(hex::encode(d.to_bytes()), d.as_str());
        let stored = SecretDigest::from_stored(d.as_str().to_owned());
        assert_eq!(stored, d);
        assert_eq!(
            SecretDigest::from_stored("not hex".into()).to_bytes(),
            [0u8; 32]
        );
    }

    #[test]
    fn sealed_keys_open_only_with_the_same_key_and_label() {
        let mk = MasterKey::generate().expect("rng");
        let s = mk.sealer().expect("sealer");
        let blob = s.seal(b"private key bytes", "kid-1").expect("seal");
        assert!(!blob.contains("private"));
        assert_eq!(s.open(&blob, "kid-1").expect("open"), b"private key bytes");
        assert_eq!(s.open(&blob, "kid-2"), Err(KeyError::Unseal));
        let other = MasterKey::generate()
            .expect("rng")
            .sealer()
            .expect("sealer");
        assert_eq!(other.open(&blob, "kid-1"), Err(KeyError::Unseal));
        let mut raw = STANDARD.decode(&blob).expect("b64");
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert_eq!(
            s.open(&STANDARD.encode(raw), "kid-1"),
            Err(KeyError::Unseal)
        );
        assert_eq!(s.open("!!", "kid-1"), Err(KeyError::Unseal));
    }
}
