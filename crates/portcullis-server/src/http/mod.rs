//! HTTP handlers, one file per action.
//!
//! - [`oauth`]: token, introspection, revocation endpoints.
//! - [`discovery`]: RFC 8414 / OpenID discovery and the JWKS.
//! - [`ops`]: health, readiness, metrics.
//! - [`forward_auth`]: `/auth/verify` for reverse proxies.
//! - [`ui`]: pages for people: sign-in, MFA, consent, account, logout.

pub mod admin;
pub mod discovery;
pub mod forward_auth;
pub mod oauth;
pub mod ops;
pub mod ui;
