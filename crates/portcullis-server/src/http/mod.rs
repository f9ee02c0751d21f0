//! HTTP handlers, one file per action.
//!
//! - [`oauth`]: token, introspection, revocation endpoints.
//! - [`discovery`]: RFC 8414 / OpenID discovery and the JWKS.
//! - [`ops`]: health, readiness, metrics.
//! - [`forward_auth`]: `/auth/verify` for reverse proxies.

pub mod admin;
pub mod discovery;
pub mod forward_auth;
pub mod oauth;
pub mod ops;
