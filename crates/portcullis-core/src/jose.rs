//! JOSE: signing keys, their public JWKs, JWT signing and JWT verification.
//!
//! Signing uses `aws-lc-rs` key pairs parsed **once** and kept in memory
//! (re-parsing a PKCS#8 key per token would cost as much as the signature).
//! A compact JWS is only `b64url(header) . b64url(claims) . b64url(sig)`; the
//! header is `jsonwebtoken`'s `Header` type, serialized by serde.
//!
//! Verification splits the compact form, decodes base64url with `base64`, reads the
//! header and claims with serde (`JwsHeader`, the claim types) and checks the
//! signature with `aws-lc-rs` (no JSON or crypto is parsed by hand), with three
//! rules on top, after RFC 8725:
//! - the **key** decides the algorithm: the token's `alg` must equal the `alg`
//!   of the JWK its `kid` names, so `none`, HMAC and algorithm confusion cannot
//!   get through;
//! - `typ` must be `at+jwt` (RFC 9068), so an ID token or other JWT signed with
//!   the same key is not taken for an access token;
//! - time claims are checked against an injected clock with a leeway.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, ParsedPublicKey, RsaKeyPair, RsaPublicKeyComponents,
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, RSA_PKCS1_2048_8192_SHA256,
    RSA_PKCS1_SHA256, RSA_PSS_2048_8192_SHA256, RSA_PSS_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, RSAKeyParameters, RSAKeyType, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, Header};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::claims::{AccessTokenClaims, ACCESS_TOKEN_TYP};

/// Largest compact JWT we will even try to parse.
pub const MAX_JWT_LEN: usize = 8 * 1024;

/// The signature algorithms Portcullis signs with and accepts. Asymmetric only:
/// `none` and HMAC are not representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SigningAlg {
    /// Ed25519 (RFC 8037).
    EdDSA,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    RS256,
    /// RSASSA-PSS with SHA-256, 2048-bit keys.
    PS256,
}

impl SigningAlg {
    /// Every supported algorithm.
    pub const ALL: [SigningAlg; 4] = [Self::EdDSA, Self::ES256, Self::RS256, Self::PS256];

    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
        }
    }

    fn jwt_alg(self) -> Algorithm {
        match self {
            Self::EdDSA => Algorithm::EdDSA,
            Self::ES256 => Algorithm::ES256,
            Self::RS256 => Algorithm::RS256,
            Self::PS256 => Algorithm::PS256,
        }
    }

    fn key_alg(self) -> KeyAlgorithm {
        match self {
            Self::EdDSA => KeyAlgorithm::EdDSA,
            Self::ES256 => KeyAlgorithm::ES256,
            Self::RS256 => KeyAlgorithm::RS256,
            Self::PS256 => KeyAlgorithm::PS256,
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlg {
    type Err = JoseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| JoseError::UnsupportedAlgorithm(s.chars().take(16).collect()))
    }
}

/// Errors creating or using keys.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoseError {
    /// Not one of EdDSA, ES256, RS256, PS256.
    #[error("unsupported algorithm {0:?}: expected one of EdDSA, ES256, RS256, PS256")]
    UnsupportedAlgorithm(String),
    /// Key generation failed.
    #[error("key generation failed")]
    KeyGeneration,
    /// Stored key bytes are not a valid key of the stated algorithm.
    #[error("stored private key is not a valid {0} key")]
    InvalidPrivateKey(SigningAlg),
    /// A JWK is not usable for verification (no `alg`, symmetric, unsupported curve, bad encoding).
    #[error("unusable JWK: {0}")]
    InvalidJwk(String),
    /// Signing failed.
    #[error("signing failed")]
    Signing,
}

enum Pair {
    Ed(Ed25519KeyPair),
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A private signing key with its public JWK. `kid` is the RFC 7638 thumbprint.
pub struct SigningKey {
    kid: String,
    alg: SigningAlg,
    pair: Pair,
    jwk: Jwk,
    /// The header segment of an access token (`typ: at+jwt`), a function of the key:
    /// written once here instead of serialized and encoded for every token.
    at_header_b64: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl SigningKey {
    /// Generates a new key; returns it and its PKCS#8 DER encoding (to be sealed and stored).
    pub fn generate(alg: SigningAlg) -> Result<(Self, Vec<u8>), JoseError> {
        let rng = SystemRandom::new();
        let der = match alg {
            SigningAlg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| JoseError::KeyGeneration)?
                .as_ref()
                .to_vec(),
            SigningAlg::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| JoseError::KeyGeneration)?
                    .as_ref()
                    .to_vec()
            }
            SigningAlg::RS256 | SigningAlg::PS256 => {
                let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(|_| JoseError::KeyGeneration)?;
                let der: Pkcs8V1Der<'static> = kp.as_der().map_err(|_| JoseError::KeyGeneration)?;
                der.as_ref().to_vec()
            }
        };
        let key = Self::from_pkcs8(alg, &der)?;
        Ok((key, der))
    }

    /// Loads a key from PKCS#8 DER.
    pub fn from_pkcs8(alg: SigningAlg, der: &[u8]) -> Result<Self, JoseError> {
        let bad = || JoseError::InvalidPrivateKey(alg);
        let (pair, params) = match alg {
            SigningAlg::EdDSA => {
                let kp = Ed25519KeyPair::from_pkcs8(der).map_err(|_| bad())?;
                let x = b64(kp.public_key().as_ref());
                let params = AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                    key_type: OctetKeyPairType::OctetKeyPair,
                    curve: EllipticCurve::Ed25519,
                    x,
                });
                (Pair::Ed(kp), params)
            }
            SigningAlg::ES256 => {
                let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|_| bad())?;
                let point = kp.public_key().as_ref();
                // Uncompressed SEC1 point: 0x04 || x || y.
                if point.len() != 65 || point[0] != 4 {
                    return Err(bad());
                }
                let params = AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                    key_type: EllipticCurveKeyType::EC,
                    curve: EllipticCurve::P256,
                    x: b64(&point[1..33]),
                    y: b64(&point[33..]),
                });
                (Pair::Ec(kp), params)
            }
            SigningAlg::RS256 | SigningAlg::PS256 => {
                let kp = RsaKeyPair::from_pkcs8(der).map_err(|_| bad())?;
                if kp.public_modulus_len() < 256 {
                    return Err(bad());
                }
                let c = RsaPublicKeyComponents::<Vec<u8>>::from(kp.public_key());
                let params = AlgorithmParameters::RSA(RSAKeyParameters {
                    key_type: RSAKeyType::RSA,
                    n: b64(&c.n),
                    e: b64(&c.e),
                });
                (Pair::Rsa(kp), params)
            }
        };
        let mut jwk = Jwk {
            common: CommonParameters::default(),
            algorithm: params,
        };
        let kid = jwk.thumbprint(ThumbprintHash::SHA256);
        jwk.common = CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(alg.key_alg()),
            key_id: Some(kid.clone()),
            ..CommonParameters::default()
        };
        let mut at_header_b64 = String::new();
        write_header_b64(alg, ACCESS_TOKEN_TYP, &kid, &mut at_header_b64)?;
        Ok(Self {
            kid,
            alg,
            pair,
            jwk,
            at_header_b64,
        })
    }

    /// The key id (RFC 7638 SHA-256 thumbprint).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The public JWK (with `kid`, `alg`, `use: sig`).
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The raw signature over `msg`: what a JWS signature is, before base64url.
    pub fn sign_raw(&self, msg: &[u8]) -> Result<Vec<u8>, JoseError> {
        match &self.pair {
            Pair::Ed(kp) => Ok(kp.sign(msg).as_ref().to_vec()),
            Pair::Ec(kp) => Ok(kp
                .sign(&SystemRandom::new(), msg)
                .map_err(|_| JoseError::Signing)?
                .as_ref()
                .to_vec()),
            Pair::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                let pad = if self.alg == SigningAlg::PS256 {
                    &RSA_PSS_SHA256
                } else {
                    &RSA_PKCS1_SHA256
                };
                kp.sign(pad, &SystemRandom::new(), msg, &mut sig)
                    .map_err(|_| JoseError::Signing)?;
                Ok(sig)
            }
        }
    }

    /// Signs `claims` as a compact JWS with header `{alg, typ, kid}`.
    pub fn sign_jwt<C: Serialize>(&self, typ: &str, claims: &C) -> Result<String, JoseError> {
        let claims = serde_json::to_vec(claims).map_err(|_| JoseError::Signing)?;
        let mut out = String::with_capacity(claims.len() * 4 / 3 + 500);
        if typ == ACCESS_TOKEN_TYP {
            out.push_str(&self.at_header_b64);
        } else {
            write_header_b64(self.alg, typ, &self.kid, &mut out)?;
        }
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&claims, &mut out);
        let sig = self.sign_raw(out.as_bytes())?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&sig, &mut out);
        Ok(out)
    }
}

/// Appends the header segment Portcullis signs with, `b64url({"typ","alg","kid"})`
/// (`jsonwebtoken`'s `Header`, serialized by serde). The verifier computes the same
/// segment per key for access tokens (see [`JwtVerifier`]'s known headers).
fn write_header_b64(
    alg: SigningAlg,
    typ: &str,
    kid: &str,
    out: &mut String,
) -> Result<(), JoseError> {
    let mut header = Header::new(alg.jwt_alg());
    header.typ = Some(typ.to_owned());
    header.kid = Some(kid.to_owned());
    let header = serde_json::to_vec(&header).map_err(|_| JoseError::Signing)?;
    URL_SAFE_NO_PAD.encode_string(&header, out);
    Ok(())
}

/// A public key ready for verification; the JWK's `alg` pins the algorithm.
///
/// The key is parsed **once**, when the JWK is read (aws-lc-rs `ParsedPublicKey`):
/// verifying with an unparsed key would decode the JWK's members, build the key and,
/// for RSA, its Montgomery context again for every token.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: String,
    alg: SigningAlg,
    key: ParsedPublicKey,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

impl VerifyingKey {
    /// Accepts a JWK only if it names a supported asymmetric `alg` that fits its key type,
    /// and has a `kid`.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, JoseError> {
        let alg = match jwk.common.key_algorithm {
            Some(KeyAlgorithm::EdDSA) => SigningAlg::EdDSA,
            Some(KeyAlgorithm::ES256) => SigningAlg::ES256,
            Some(KeyAlgorithm::RS256) => SigningAlg::RS256,
            Some(KeyAlgorithm::PS256) => SigningAlg::PS256,
            Some(other) => {
                return Err(JoseError::InvalidJwk(format!(
                    "alg {other:?} is not accepted"
                )))
            }
            None => {
                return Err(JoseError::InvalidJwk(
                    "no alg: the key must pin its algorithm".into(),
                ))
            }
        };
        let kid = jwk
            .common
            .key_id
            .clone()
            .ok_or_else(|| JoseError::InvalidJwk("no kid".into()))?;
        Self::with_alg(jwk, alg, kid)
    }

    /// A key from a JWK that came with a JWS rather than from a key set (a DPoP
    /// proof's `jwk` header): the header's `alg` must be one we accept and fit the
    /// key type, and a JWK `alg`, when present, must agree. Returns the key and its
    /// RFC 7638 SHA-256 thumbprint.
    pub fn from_embedded_jwk(jwk: &Jwk, alg: Algorithm) -> Result<(Self, String), JoseError> {
        let alg = SigningAlg::ALL
            .into_iter()
            .find(|a| a.jwt_alg() == alg)
            .ok_or_else(|| JoseError::UnsupportedAlgorithm(format!("{alg:?}")))?;
        if let Some(ka) = jwk.common.key_algorithm {
            if ka != alg.key_alg() {
                return Err(JoseError::InvalidJwk(
                    "the JWK's alg differs from the header's".into(),
                ));
            }
        }
        let key = Self::with_alg(jwk, alg, String::new())?;
        // Only after the key type is known to fit: the thumbprint of a mismatched
        // curve is not defined.
        let jkt = jwk.thumbprint(ThumbprintHash::SHA256);
        Ok((key, jkt))
    }

    fn with_alg(jwk: &Jwk, alg: SigningAlg, kid: String) -> Result<Self, JoseError> {
        let fits = matches!(
            (&jwk.algorithm, alg),
            (
                AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                    curve: EllipticCurve::Ed25519,
                    ..
                }),
                SigningAlg::EdDSA
            ) | (
                AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                    curve: EllipticCurve::P256,
                    ..
                }),
                SigningAlg::ES256
            ) | (
                AlgorithmParameters::RSA(_),
                SigningAlg::RS256 | SigningAlg::PS256
            )
        );
        if !fits {
            return Err(JoseError::InvalidJwk(format!(
                "key type does not fit alg {alg}"
            )));
        }
        if let Some("enc") = jwk.common.public_key_use.as_ref().map(|u| match u {
            PublicKeyUse::Encryption => "enc",
            _ => "sig",
        }) {
            return Err(JoseError::InvalidJwk("key is for encryption".into()));
        }
        let key = parse_public_key(&jwk.algorithm, alg)?;
        Ok(Self { kid, alg, key })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The pinned algorithm.
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// Verifies a raw signature over `message` with this key and its pinned algorithm.
    pub fn verify_signature(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }

    /// Verifies a JWS signature (canonical unpadded base64url) over `message`.
    fn verify_b64(&self, message: &[u8], signature_b64: &str) -> Result<bool, JwtError> {
        // The largest signature a JWK we accept can make: RSA-8192, 1,024 bytes.
        let mut sig = [0u8; 1024];
        let n = URL_SAFE_NO_PAD
            .decode_slice(signature_b64, &mut sig)
            .map_err(|e| JwtError::Malformed(format!("signature: {e}")))?;
        Ok(self.verify_signature(message, &sig[..n]))
    }
}

/// The JWK's key material as an aws-lc-rs key for `alg` (whose fit to the key type the
/// caller has checked). The members are canonical unpadded base64url; an EC point must
/// be on the curve and an RSA modulus 2,048 to 8,192 bits, or the key is refused here
/// rather than at each verification.
fn parse_public_key(
    params: &AlgorithmParameters,
    alg: SigningAlg,
) -> Result<ParsedPublicKey, JoseError> {
    let member = |name: &str, v: &str| {
        URL_SAFE_NO_PAD
            .decode(v)
            .map_err(|e| JoseError::InvalidJwk(format!("{name}: {e}")))
    };
    let rejected = |e: aws_lc_rs::error::KeyRejected| JoseError::InvalidJwk(format!("key: {e}"));
    match (params, alg) {
        (AlgorithmParameters::OctetKeyPair(p), SigningAlg::EdDSA) => {
            ParsedPublicKey::new(&ED25519, member("x", &p.x)?).map_err(rejected)
        }
        (AlgorithmParameters::EllipticCurve(p), SigningAlg::ES256) => {
            let (x, y) = (member("x", &p.x)?, member("y", &p.y)?);
            if x.len() != 32 || y.len() != 32 {
                return Err(JoseError::InvalidJwk(
                    "x and y of a P-256 key are 32 bytes each".into(),
                ));
            }
            // Uncompressed SEC1 point: 0x04 || x || y.
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).map_err(rejected)
        }
        (AlgorithmParameters::RSA(p), SigningAlg::RS256 | SigningAlg::PS256) => {
            let c = RsaPublicKeyComponents {
                n: member("n", &p.n)?,
                e: member("e", &p.e)?,
            };
            let verification = if alg == SigningAlg::PS256 {
                &RSA_PSS_2048_8192_SHA256
            } else {
                &RSA_PKCS1_2048_8192_SHA256
            };
            let n =
                c.n.iter()
                    .position(|b| *b != 0)
                    .map_or(&[][..], |i| &c.n[i..]);
            let bits = n
                .first()
                .map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize);
            if !(2048..=8192).contains(&bits) {
                return Err(JoseError::InvalidJwk(
                    "an RSA modulus is 2,048 to 8,192 bits".into(),
                ));
            }
            c.to_parsed_public_key(verification).map_err(rejected)
        }
        _ => Err(JoseError::InvalidJwk(format!(
            "key type does not fit alg {alg}"
        ))),
    }
}

/// Why a JWT was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtError {
    /// Over [`MAX_JWT_LEN`].
    #[error("token too large")]
    TooLarge,
    /// Not a compact JWS, bad base64 or JSON, or claims of the wrong shape.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// `typ` is not `at+jwt`.
    #[error("wrong token type: expected at+jwt")]
    WrongType,
    /// No key with this `kid`, or no `kid` at all.
    #[error("unknown signing key")]
    UnknownKey,
    /// The header's `alg` differs from the key's.
    #[error("algorithm does not match the key")]
    AlgorithmMismatch,
    /// The signature does not verify.
    #[error("invalid signature")]
    BadSignature,
    /// `iss` is not the expected issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not contain the expected audience.
    #[error("wrong audience")]
    WrongAudience,
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `iat` is in the future (beyond the leeway).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// A header parameter we refuse: `jwk`, `jku`, `x5u`, `x5c` (keys come from the
    /// published set only) or `crit` (no extension is understood).
    #[error("header parameter {0:?} is not accepted")]
    ForbiddenHeader(&'static str),
}

/// The verifier's maps are looked up once or twice per token with names from the
/// token: foldhash (randomly seeded per map) instead of SipHash, whose cost showed
/// next to an RSA verification. The maps are built from the key set, never from
/// what a client sends, so collisions cannot be forced into them.
type FastHash = foldhash::fast::RandomState;

/// Verifies JWT access tokens against a set of public keys, an issuer and a clock.
#[derive(Debug, Clone)]
pub struct JwtVerifier {
    keys: HashMap<String, VerifyingKey, FastHash>,
    /// For each key, the header segment Portcullis writes on an access token signed
    /// with it (base64url of `{"typ":"at+jwt","alg":…,"kid":…}`), mapped to the kid.
    /// A token whose header segment is byte for byte one of these has a header already
    /// judged (when the verifier was built, through the same parse as any other), so it
    /// skips decoding, the duplicate-member walk and the header parse: a quarter of
    /// what verification costs besides the signature. Any other header takes the full
    /// path.
    known_headers: HashMap<Box<str>, Box<str>, FastHash>,
    issuer: String,
    leeway: i64,
}

impl JwtVerifier {
    /// A verifier for tokens from `issuer`, with `leeway` seconds of clock skew allowed.
    pub fn new(
        issuer: impl Into<String>,
        leeway: i64,
        keys: impl IntoIterator<Item = VerifyingKey>,
    ) -> Self {
        let keys: HashMap<String, VerifyingKey, FastHash> =
            keys.into_iter().map(|k| (k.kid.clone(), k)).collect();
        let known_headers = keys
            .values()
            .filter_map(|k| {
                let mut b64 = String::new();
                write_header_b64(k.alg, ACCESS_TOKEN_TYP, &k.kid, &mut b64).ok()?;
                let (header, _) = parse_header(&b64).ok()?;
                let judged = header.forbidden_member().is_none()
                    && header.typ.as_deref() == Some(ACCESS_TOKEN_TYP)
                    && header.kid.as_deref() == Some(k.kid.as_str())
                    && header.alg == k.alg.jwt_alg();
                judged.then(|| (b64.into_boxed_str(), k.kid.clone().into_boxed_str()))
            })
            .collect();
        Self {
            keys,
            known_headers,
            issuer: issuer.into(),
            leeway,
        }
    }

    /// The same verifier with another clock-skew leeway (seconds).
    pub fn with_leeway(mut self, leeway: i64) -> Self {
        self.leeway = leeway;
        self
    }

    /// The number of keys known.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Verifies an RFC 9068 access token at time `now`. When `audience` is given the
    /// token's `aud` must contain it.
    pub fn verify_access_token(
        &self,
        token: &str,
        now: i64,
        audience: Option<&str>,
    ) -> Result<AccessTokenClaims, JwtError> {
        let payload = self.verify_jws(token, Some(ACCESS_TOKEN_TYP))?;
        let claims = access_token_claims(&payload)
            .map_err(|e| JwtError::Malformed(format!("claims: {e}")))?;
        if claims.iss != self.issuer {
            return Err(JwtError::WrongIssuer);
        }
        if let Some(aud) = audience {
            if !claims.aud.contains(aud) {
                return Err(JwtError::WrongAudience);
            }
        }
        if claims.exp <= now - self.leeway {
            return Err(JwtError::Expired);
        }
        if claims.iat > now + self.leeway {
            return Err(JwtError::IssuedInFuture);
        }
        if claims.nbf.is_some_and(|nbf| nbf > now + self.leeway) {
            return Err(JwtError::NotYetValid);
        }
        Ok(claims)
    }

    /// Checks size, `typ`, `kid`, pinned `alg` and signature; returns the claims unchecked
    /// for time, issuer and audience.
    pub fn verify_typed<C: DeserializeOwned>(&self, token: &str, typ: &str) -> Result<C, JwtError> {
        let payload = self.verify_jws(token, Some(typ))?;
        reject_duplicate_members(&payload)
            .map_err(|e| JwtError::Malformed(format!("claims: {e}")))?;
        serde_json::from_slice(&payload).map_err(|e| JwtError::Malformed(format!("claims: {e}")))
    }

    /// Verifies a compact JWS against the known keys and returns its payload: size,
    /// `typ` (when required), `kid`, the key-pinned `alg`, the signature. This is the
    /// path every token takes; the Wycheproof and RFC 7520 vectors run through it.
    pub fn verify_jws(&self, token: &str, typ: Option<&str>) -> Result<Vec<u8>, JwtError> {
        let parts = JwsParts::split(token, MAX_JWT_LEN)?;
        if typ.is_none_or(|t| typ_is(Some(ACCESS_TOKEN_TYP), t)) {
            if let Some(key) = self
                .known_headers
                .get(parts.header_b64)
                .and_then(|kid| self.keys.get(&**kid))
            {
                return parts.verify_with(key);
            }
        }
        let jws = CompactJws::from_parts(parts)?;
        let header = &jws.header;
        if let Some(name) = header.forbidden_member() {
            return Err(JwtError::ForbiddenHeader(name));
        }
        if let Some(typ) = typ {
            if !typ_is(header.typ.as_deref(), typ) {
                return Err(JwtError::WrongType);
            }
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or(JwtError::UnknownKey)?;
        if header.alg != key.alg.jwt_alg() {
            return Err(JwtError::AlgorithmMismatch);
        }
        jws.verify_with(key)
    }
}

/// True when a `typ` header names `expected`, with or without `application/`.
pub(crate) fn typ_is(typ: Option<&str>, expected: &str) -> bool {
    typ.is_some_and(|t| {
        t.eq_ignore_ascii_case(expected)
            || t.strip_prefix("application/")
                .is_some_and(|s| s.eq_ignore_ascii_case(expected))
    })
}

/// The JOSE header members verification reads (RFC 7515 §4.1), by serde. The members
/// whose presence alone refuses a token are kept as "present" and not decoded; other
/// members are ignored. (jsonwebtoken's `Header` collects unknown members into a
/// flattened map, which makes serde buffer the whole header first: a tenth of an RS256
/// verification's time.)
#[derive(Debug, Deserialize)]
pub(crate) struct JwsHeader {
    pub(crate) alg: Algorithm,
    #[serde(default)]
    pub(crate) typ: Option<String>,
    #[serde(default)]
    pub(crate) kid: Option<String>,
    /// An embedded public key (DPoP proofs carry one; access tokens must not).
    #[serde(default)]
    pub(crate) jwk: Option<Jwk>,
    #[serde(default)]
    jku: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    x5u: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    x5c: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

impl JwsHeader {
    /// The first member present that names a key or an extension by reference
    /// (`jwk`, `jku`, `x5u`, `x5c`, `crit`): none of them is accepted on a token.
    pub(crate) fn forbidden_member(&self) -> Option<&'static str> {
        [
            (self.jwk.is_some(), "jwk"),
            (self.jku.is_some(), "jku"),
            (self.x5u.is_some(), "x5u"),
            (self.x5c.is_some(), "x5c"),
            (self.crit.is_some(), "crit"),
        ]
        .into_iter()
        .find_map(|(present, name)| present.then_some(name))
    }

    /// True when the header has a `crit` member.
    pub(crate) fn has_crit(&self) -> bool {
        self.crit.is_some()
    }
}

/// A compact JWS split into its three parts, nothing decoded or verified yet.
pub(crate) struct JwsParts<'a> {
    header_b64: &'a str,
    message: &'a str,
    payload: &'a str,
    signature: &'a str,
}

impl<'a> JwsParts<'a> {
    /// Exactly three parts, and no longer than `max_len`.
    pub(crate) fn split(token: &'a str, max_len: usize) -> Result<Self, JwtError> {
        if token.len() > max_len {
            return Err(JwtError::TooLarge);
        }
        let malformed = || JwtError::Malformed("not a compact JWS".into());
        let (message, signature) = token.rsplit_once('.').ok_or_else(malformed)?;
        let (header_b64, payload) = message.split_once('.').ok_or_else(malformed)?;
        if payload.contains('.') {
            return Err(malformed());
        }
        Ok(Self {
            header_b64,
            message,
            payload,
            signature,
        })
    }

    /// Checks the signature with `key` (whose pinned algorithm the caller has matched
    /// to the header), then decodes the payload, once. A JWS payload need not be JSON;
    /// callers that read claims check them with [`reject_duplicate_members`].
    fn verify_with(&self, key: &VerifyingKey) -> Result<Vec<u8>, JwtError> {
        if !key.verify_b64(self.message.as_bytes(), self.signature)? {
            return Err(JwtError::BadSignature);
        }
        URL_SAFE_NO_PAD
            .decode(self.payload)
            .map_err(|e| JwtError::Malformed(format!("payload: {e}")))
    }
}

/// Decodes and reads a header segment: canonical unpadded base64url, a JSON object
/// without duplicate member names, then the members `JwsHeader` keeps.
fn parse_header(header_b64: &str) -> Result<(JwsHeader, Vec<u8>), JwtError> {
    let header_json = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|e| JwtError::Malformed(format!("header: {e}")))?;
    reject_duplicate_members(&header_json)
        .map_err(|e| JwtError::Malformed(format!("header: {e}")))?;
    let header: JwsHeader = serde_json::from_slice(&header_json)
        .map_err(|e| JwtError::Malformed(format!("header: {e}")))?;
    Ok((header, header_json))
}

/// A compact JWS split and its header decoded, nothing verified yet. Parsing is
/// strict: exactly three parts, canonical unpadded base64url, JSON objects without
/// duplicate member names (RFC 7515 §4 says a parser must reject or take the last;
/// we reject, so no two parsers can read different claims from one token).
pub(crate) struct CompactJws<'a> {
    pub(crate) header: JwsHeader,
    /// The raw header JSON, for checks `JwsHeader` does not keep.
    pub(crate) header_json: Vec<u8>,
    parts: JwsParts<'a>,
}

impl<'a> CompactJws<'a> {
    pub(crate) fn parse(token: &'a str, max_len: usize) -> Result<Self, JwtError> {
        Self::from_parts(JwsParts::split(token, max_len)?)
    }

    fn from_parts(parts: JwsParts<'a>) -> Result<Self, JwtError> {
        let (header, header_json) = parse_header(parts.header_b64)?;
        Ok(Self {
            header,
            header_json,
            parts,
        })
    }

    /// See [`JwsParts::verify_with`].
    pub(crate) fn verify_with(&self, key: &VerifyingKey) -> Result<Vec<u8>, JwtError> {
        self.parts.verify_with(key)
    }
}

/// Reads access-token claims, refusing a member name repeated in any object, in one
/// pass unless the claims hold members Portcullis does not read. `AccessTokenClaims`
/// and everything in it are serde-derived structs (which refuse a repeated member of
/// their own: "duplicate field"), strings, numbers and arrays of strings. Only members
/// serde skips unread could repeat unseen, so when `serde_ignored` reports one, the
/// whole document also goes through [`reject_duplicate_members`].
fn access_token_claims(json: &[u8]) -> Result<AccessTokenClaims, String> {
    let mut skipped = false;
    let mut de = serde_json::Deserializer::from_slice(json);
    let claims: AccessTokenClaims =
        serde_ignored::deserialize(&mut de, |_| skipped = true).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    if skipped {
        reject_duplicate_members(json)?;
    }
    Ok(claims)
}

/// Fails when `json` is not JSON, or any object in it (at any depth) names a member twice.
pub(crate) fn reject_duplicate_members(json: &[u8]) -> Result<(), String> {
    serde_json::from_slice::<NoDuplicates>(json)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Walks a JSON value with serde (the parsing is serde_json's) and fails on a
/// repeated member name.
struct NoDuplicates;

impl<'de> Deserialize<'de> for NoDuplicates {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicatesVisitor)
    }
}

struct NoDuplicatesVisitor;

impl<'de> serde::de::Visitor<'de> for NoDuplicatesVisitor {
    type Value = NoDuplicates;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_str<E>(self, _: &str) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_unit<E>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<NoDuplicates, A::Error> {
        while seq.next_element::<NoDuplicates>()?.is_some() {}
        Ok(NoDuplicates)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<NoDuplicates, A::Error> {
        // Objects in tokens have a handful of members: a linear scan of the names
        // seen beats hashing them, and past `LINEAR` names a set keeps it linear time.
        const LINEAR: usize = 24;
        let mut few: Vec<MemberName<'de>> = Vec::with_capacity(8);
        let mut many = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<MemberName<'de>>()? {
            if many.is_empty() && few.len() == LINEAR {
                many.extend(few.drain(..));
            }
            let repeated = if many.is_empty() {
                few.contains(&key)
            } else {
                many.contains(&key)
            };
            if repeated {
                return Err(serde::de::Error::custom(format!(
                    "duplicate member {:?}",
                    key.0.chars().take(32).collect::<String>()
                )));
            }
            if many.is_empty() {
                few.push(key);
            } else {
                many.insert(key);
            }
            map.next_value::<NoDuplicates>()?;
        }
        Ok(NoDuplicates)
    }
}

/// A member name, borrowed from the input unless it had escapes to decode (serde's
/// own `Cow<str>` always copies).
#[derive(PartialEq, Eq, Hash)]
struct MemberName<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for MemberName<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl<'de> serde::de::Visitor<'de> for Name {
            type Value = MemberName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<MemberName<'de>, E> {
                Ok(MemberName(std::borrow::Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<MemberName<'de>, E> {
                Ok(MemberName(std::borrow::Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<MemberName<'de>, E> {
                Ok(MemberName(std::borrow::Cow::Owned(s)))
            }
        }
        d.deserialize_str(Name)
    }
}

/// A JWK Set document (RFC 7517 §5).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JwkSet {
    /// The keys.
    pub keys: Vec<Jwk>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::Audience;

    #[test]
    fn a_repeated_member_name_is_refused_at_any_depth_and_in_any_object_size() {
        assert!(reject_duplicate_members(br#"{"a":1,"b":{"c":[{"d":1,"e":2}]}}"#).is_ok());
        for bad in [
            r#"{"a":1,"a":2}"#,
            r#"{"x-unknown":1,"y":2,"x-unknown":3}"#,
            r#"{"cnf":{"jkt":"a","jkt":"b"}}"#,
            r#"[{"k":1},{"k":1,"k":2}]"#,
            r#"{"a\u0062":1,"ab":2}"#,
        ] {
            let e = reject_duplicate_members(bad.as_bytes()).expect_err(bad);
            assert!(e.contains("duplicate member"), "{bad}: {e}");
        }
        // Past the linear scan's size the set takes over, and still sees every name.
        let wide = |n: usize, repeat: Option<usize>| {
            let mut members: Vec<String> = (0..n).map(|i| format!(r#""m{i}":{i}"#)).collect();
            if let Some(r) = repeat {
                members.push(format!(r#""m{r}":0"#));
            }
            format!("{{{}}}", members.join(","))
        };
        assert!(reject_duplicate_members(wide(60, None).as_bytes()).is_ok());
        for r in [0, 23, 24, 25, 59] {
            assert!(
                reject_duplicate_members(wide(60, Some(r)).as_bytes()).is_err(),
                "repeat of member {r}"
            );
        }
        assert!(reject_duplicate_members(b"{\"a\":").is_err(), "not JSON");
    }

    fn claims(now: i64) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://issuer.test".into(),
            sub: "client-1".into(),
            aud: Audience::One("https://api.test".into()),
            exp: now + 900,
            iat: now,
            jti: "jti-1".into(),
            client_id: "client-1".into(),
            scope: "read write".into(),
            nbf: None,
            cnf: None,
        }
    }

    fn verifier_for(keys: &[&SigningKey]) -> JwtVerifier {
        JwtVerifier::new(
            "https://issuer.test",
            30,
            keys.iter()
                .map(|k| VerifyingKey::from_jwk(k.public_jwk()).expect("jwk")),
        )
    }

    /// A token over `claims_json` exactly as written (repeated members and all), with
    /// the header Portcullis writes, or `header_json` when given.
    fn token_over(key: &SigningKey, header_json: Option<&str>, claims_json: &str) -> String {
        let mut out = String::new();
        match header_json {
            Some(h) => URL_SAFE_NO_PAD.encode_string(h, &mut out),
            None => {
                write_header_b64(key.alg(), ACCESS_TOKEN_TYP, key.kid(), &mut out).expect("header")
            }
        }
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(claims_json, &mut out);
        let sig = key.sign_raw(out.as_bytes()).expect("sign");
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(sig, &mut out);
        out
    }

    #[test]
    fn a_repeated_claim_is_refused_wherever_it_is_and_whether_or_not_it_is_read() {
        let (key, _) = SigningKey::generate(SigningAlg::EdDSA).expect("key");
        let v = verifier_for(&[&key]);
        let now = 1_700_000_000;
        let base = serde_json::to_string(&claims(now)).expect("json");
        let with = |extra: &str| format!("{},{extra}}}", base.trim_end_matches('}'));
        // Accepted: members Portcullis does not read, a cnf, an audience list.
        for ok in [
            with(r#""ext":{"a":1,"b":[{"a":1},{"a":2}]},"acr":"1""#),
            with(r#""cnf":{"jkt":"abc","x5t#S256":"def"}"#),
            base.replace(
                r#""aud":"https://api.test""#,
                r#""aud":["x","https://api.test"]"#,
            ),
        ] {
            let t = token_over(&key, None, &ok);
            assert!(
                v.verify_access_token(&t, now, Some("https://api.test"))
                    .is_ok(),
                "{ok}"
            );
        }
        // Refused: a claim it reads, one it skips, and repeats inside objects of either kind.
        for bad in [
            with(r#""scope":"admin""#),
            with(r#""ext":1,"ext":2"#),
            with(r#""cnf":{"jkt":"a","jkt":"b"}"#),
            with(r#""cnf":{"jkt":"a","x":1,"x":2}"#),
            with(r#""ext":{"deep":[{"a":1,"a":2}]}"#),
            with(r#""aud":"https://api.test""#),
        ] {
            let t = token_over(&key, None, &bad);
            match v.verify_access_token(&t, now, Some("https://api.test")) {
                Err(JwtError::Malformed(m)) => {
                    assert!(m.starts_with("claims: duplicate"), "{bad}: {m}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        // An audience that is neither a string nor a list of strings.
        for aud in [r#"{"a":"https://api.test"}"#, "[1]", "7"] {
            let bad = base.replace(r#""https://api.test""#, aud);
            let t = token_over(&key, None, &bad);
            assert!(
                matches!(
                    v.verify_access_token(&t, now, None),
                    Err(JwtError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_header_is_judged_the_same_whether_or_not_it_is_one_portcullis_writes() {
        let (key, _) = SigningKey::generate(SigningAlg::ES256).expect("key");
        let v = verifier_for(&[&key]);
        assert_eq!(
            v.known_headers.len(),
            1,
            "the access-token header of the key"
        );
        let now = 1_700_000_000;
        let body = serde_json::to_string(&claims(now)).expect("json");
        let kid = key.kid();
        // Portcullis's own header (the known segment) and the same members written
        // another way (the full parse) are both accepted.
        for h in [
            None,
            Some(format!(r#"{{"alg":"ES256","kid":"{kid}","typ":"at+jwt"}}"#)),
            Some(format!(
                r#"{{"kid":"{kid}", "typ":"application/at+jwt","alg":"ES256"}}"#
            )),
        ] {
            let t = token_over(&key, h.as_deref(), &body);
            assert!(v.verify_access_token(&t, now, None).is_ok(), "{h:?}");
        }
        // The known segment still needs the right typ for the caller and a signature.
        let t = token_over(&key, None, &body);
        assert!(matches!(
            v.verify_jws(&t, Some("JWT")),
            Err(JwtError::WrongType)
        ));
        let forged = format!("{}.{}", t.rsplit_once('.').expect("jws").0, "A".repeat(86));
        assert!(matches!(
            v.verify_access_token(&forged, now, None),
            Err(JwtError::BadSignature)
        ));
        // Other headers take the full path and its refusals.
        for (h, want) in [
            (
                format!(r#"{{"typ":"at+jwt","alg":"ES256","kid":"{kid}","kid":"x"}}"#),
                "duplicate",
            ),
            (
                format!(r#"{{"typ":"at+jwt","alg":"ES256","kid":"{kid}","jku":"https://e.test"}}"#),
                "jku",
            ),
            (
                format!(r#"{{"typ":"at+jwt","alg":"EdDSA","kid":"{kid}"}}"#),
                "alg",
            ),
        ] {
            let t = token_over(&key, Some(&h), &body);
            let e = v.verify_access_token(&t, now, None).expect_err(&h);
            let got = format!("{e:?}");
            assert!(
                match want {
                    "duplicate" =>
                        matches!(e, JwtError::Malformed(ref m) if m.contains("duplicate")),
                    "jku" => matches!(e, JwtError::ForbiddenHeader("jku")),
                    _ => matches!(e, JwtError::AlgorithmMismatch),
                },
                "{h}: {got}"
            );
        }
    }

    #[test]
    fn every_algorithm_signs_tokens_that_verify() {
        for alg in SigningAlg::ALL {
            let (key, der) = SigningKey::generate(alg).expect("generate");
            let reloaded = SigningKey::from_pkcs8(alg, &der).expect("reload");
            assert_eq!(
                reloaded.kid(),
                key.kid(),
                "kid is a function of the public key"
            );
            let now = 1_700_000_000;
            let token = key.sign_jwt(ACCESS_TOKEN_TYP, &claims(now)).expect("sign");
            let got = verifier_for(&[&reloaded]).verify_access_token(
                &token,
                now,
                Some("https://api.test"),
            );
            assert_eq!(got, Ok(claims(now)), "{alg}");
            let header = jsonwebtoken::decode_header(&token).expect("header");
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
            assert_eq!(header.kid.as_deref(), Some(key.kid()));
            // Any other typ is written for its token, not taken from the access
            // token's header kept by the key.
            let id_token = key.sign_jwt("JWT", &claims(now)).expect("sign");
            let header = jsonwebtoken::decode_header(&id_token).expect("header");
            assert_eq!(header.typ.as_deref(), Some("JWT"), "{alg}");
            assert_eq!(header.kid.as_deref(), Some(key.kid()));
            assert_ne!(id_token.split('.').next(), token.split('.').next());
        }
    }

    #[test]
    fn time_issuer_and_audience_are_enforced_with_leeway() {
        let (key, _) = SigningKey::generate(SigningAlg::ES256).expect("generate");
        let v = verifier_for(&[&key]);
        let now = 1_700_000_000;
        let t = key.sign_jwt(ACCESS_TOKEN_TYP, &claims(now)).expect("sign");
        assert!(
            v.verify_access_token(&t, now + 900 + 29, None).is_ok(),
            "inside leeway"
        );
        assert_eq!(
            v.verify_access_token(&t, now + 900 + 30, None),
            Err(JwtError::Expired)
        );
        assert_eq!(
            v.verify_access_token(&t, now - 31, None),
            Err(JwtError::IssuedInFuture)
        );
        assert_eq!(
            v.verify_access_token(&t, now, Some("https://other.test")),
            Err(JwtError::WrongAudience)
        );
        let other_iss = JwtVerifier::new(
            "https://evil.test",
            30,
            [VerifyingKey::from_jwk(key.public_jwk()).expect("jwk")],
        );
        assert_eq!(
            other_iss.verify_access_token(&t, now, None),
            Err(JwtError::WrongIssuer)
        );
    }

    #[test]
    fn forged_and_confused_tokens_are_refused() {
        let (key, _) = SigningKey::generate(SigningAlg::ES256).expect("generate");
        let (other, _) = SigningKey::generate(SigningAlg::ES256).expect("generate");
        let v = verifier_for(&[&key]);
        let now = 1_700_000_000;
        // Signed by a key the verifier does not know.
        let t = other
            .sign_jwt(ACCESS_TOKEN_TYP, &claims(now))
            .expect("sign");
        assert_eq!(
            v.verify_access_token(&t, now, None),
            Err(JwtError::UnknownKey)
        );
        // A different typ (e.g. an ID token) is not an access token.
        let t = key.sign_jwt("JWT", &claims(now)).expect("sign");
        assert_eq!(
            v.verify_access_token(&t, now, None),
            Err(JwtError::WrongType)
        );
        // alg=none with our kid.
        let h = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"none","typ":"at+jwt","kid":"{}"}}"#,
            key.kid()
        ));
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(now)).expect("json"));
        assert!(v
            .verify_access_token(&format!("{h}.{p}."), now, None)
            .is_err());
        // HS256 using the public key as the secret (the classic confusion attack).
        let h = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"HS256","typ":"at+jwt","kid":"{}"}}"#,
            key.kid()
        ));
        assert!(v
            .verify_access_token(&format!("{h}.{p}.AAAA"), now, None)
            .is_err());
        // A flipped payload byte breaks the signature.
        let t = key.sign_jwt(ACCESS_TOKEN_TYP, &claims(now)).expect("sign");
        let parts: Vec<&str> = t.split('.').collect();
        let mut c = claims(now);
        c.scope = "admin".into();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).expect("json")),
            parts[2]
        );
        assert_eq!(
            v.verify_access_token(&forged, now, None),
            Err(JwtError::BadSignature)
        );
        // Extra parts, and a valid token with a part appended.
        let good = key.sign_jwt(ACCESS_TOKEN_TYP, &claims(now)).expect("sign");
        assert!(matches!(
            v.verify_access_token(&format!("{good}.x"), now, None),
            Err(JwtError::Malformed(_))
        ));
        let (hd, rest) = good.split_once('.').expect("parts");
        assert!(v
            .verify_access_token(&format!("{hd}.{hd}.{rest}"), now, None)
            .is_err());
        // Garbage and oversize.
        assert!(matches!(
            v.verify_access_token("a.b.c", now, None),
            Err(JwtError::Malformed(_))
        ));
        assert_eq!(
            v.verify_access_token(&"a".repeat(MAX_JWT_LEN + 1), now, None),
            Err(JwtError::TooLarge)
        );
    }

    /// The header struct refuses a key or extension named by reference whatever the
    /// member's value, refuses a missing `alg` or a `kid` that is not a string, and
    /// ignores an unknown member of any type.
    #[test]
    fn header_members_are_judged_by_presence_and_type() {
        let (key, _) = SigningKey::generate(SigningAlg::ES256).expect("generate");
        let v = verifier_for(&[&key]);
        let now = 1_700_000_000;
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(now)).expect("json"));
        let signed = |header: serde_json::Value| {
            let msg = format!("{}.{payload}", URL_SAFE_NO_PAD.encode(header.to_string()));
            let sig = key.sign_raw(msg.as_bytes()).expect("sign");
            format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig))
        };
        let base = || serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": key.kid()});
        assert!(v.verify_access_token(&signed(base()), now, None).is_ok());
        for member in ["jwk", "jku", "x5u", "x5c", "crit"] {
            for value in [
                serde_json::json!("https://evil.example/k"),
                serde_json::json!(["b64"]),
                serde_json::json!({"kty": "EC"}),
                serde_json::json!(5),
            ] {
                let mut h = base();
                h[member] = value.clone();
                let r = v.verify_access_token(&signed(h), now, None);
                assert!(
                    matches!(
                        r,
                        Err(JwtError::ForbiddenHeader(_) | JwtError::Malformed(_))
                    ),
                    "{member}={value}: {r:?}"
                );
            }
            // A well-formed value of the member's own type is refused by name.
            let mut h = base();
            h[member] = match member {
                "x5c" | "crit" => serde_json::json!(["x"]),
                "jwk" => serde_json::to_value(key.public_jwk()).expect("jwk"),
                _ => serde_json::json!("https://evil.example/k"),
            };
            assert_eq!(
                v.verify_access_token(&signed(h), now, None),
                Err(JwtError::ForbiddenHeader(member)),
                "{member}"
            );
        }
        let mut h = base();
        h["x-extra"] = serde_json::json!({"n": 1, "b": false});
        assert!(
            v.verify_access_token(&signed(h), now, None).is_ok(),
            "unknown member"
        );
        let mut h = base();
        h["kid"] = serde_json::json!(7);
        assert!(matches!(
            v.verify_access_token(&signed(h), now, None),
            Err(JwtError::Malformed(_))
        ));
        let mut h = base();
        h.as_object_mut().expect("object").remove("alg");
        assert!(matches!(
            v.verify_access_token(&signed(h), now, None),
            Err(JwtError::Malformed(_))
        ));
    }

    #[test]
    fn unusable_jwks_are_refused() {
        let (key, _) = SigningKey::generate(SigningAlg::RS256).expect("generate");
        let mut jwk = key.public_jwk().clone();
        jwk.common.key_algorithm = None;
        assert!(VerifyingKey::from_jwk(&jwk).is_err(), "no alg");
        jwk.common.key_algorithm = Some(KeyAlgorithm::HS256);
        assert!(VerifyingKey::from_jwk(&jwk).is_err(), "symmetric alg");
        jwk.common.key_algorithm = Some(KeyAlgorithm::ES256);
        assert!(
            VerifyingKey::from_jwk(&jwk).is_err(),
            "alg does not fit an RSA key"
        );
        assert!("HS256".parse::<SigningAlg>().is_err());
        assert!("none".parse::<SigningAlg>().is_err());
    }
}
