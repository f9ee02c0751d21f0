//! Portcullis domain core: the types every other crate speaks.
//!
//! Layout:
//! - [`clock`]: the `Clock` trait (system and manual clocks) so time is injectable.
//! - [`ids`]: typed identifiers (`ClientId`, `TokenId`).
//! - [`scope`]: OAuth scopes and scope sets (parsed, validated, subset checks).
//! - [`secret`]: the opaque secret format (`<prefix>_<random><crc32>`) and redacting secret types.
//! - [`keys`]: the master key, the pepper derived from it, and AEAD sealing of private keys.
//! - [`jose`]: signing keys (EdDSA, ES256, RS256, PS256), JWKs, JWT signing and verification.
//! - [`claims`]: RFC 9068 access-token claims and OpenID Connect ID-token claims.
//! - [`oauth`]: RFC 6749 error codes and grant types.
//! - [`pkce`]: PKCE `S256` challenges and verifiers (RFC 7636).
//! - [`dpop`]: DPoP proofs (RFC 9449): validation, replay cache, a client key that makes them.
//! - [`duration`]: human durations such as `15m` or `90d`.
//! - [`limits`]: rate limits (`100/minute`) and IP allow lists (CIDRs).
//! - [`webhook`]: the webhook signature scheme (`Portcullis-Signature: t=…,v1=…`).
//!
//! No I/O, no async, no HTTP types live here.
#![forbid(unsafe_code)]

pub mod claims;
pub mod clock;
pub mod dpop;
pub mod duration;
pub mod ids;
pub mod jose;
pub mod keys;
pub mod limits;
pub mod oauth;
pub mod pkce;
pub mod scope;
pub mod secret;
pub mod webhook;
