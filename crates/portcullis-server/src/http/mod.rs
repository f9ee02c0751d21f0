//! HTTP handlers, one file per action.
//!
//! - [`oauth`]: token, introspection, revocation endpoints.
//! - [`discovery`]: RFC 8414 / OpenID discovery and the JWKS.
//! - [`ops`]: health, readiness, metrics.

pub mod admin;
pub mod discovery;
pub mod oauth;
pub mod ops;
