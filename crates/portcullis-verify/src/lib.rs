//! Verify Portcullis access tokens in any Rust service.
//!
//! A resource server builds one [`Verifier`] for its issuer and audience and
//! checks every request locally:
//!
//! - **JWT access tokens** offline against the JWK Set (RFC 8725, RFC 9068): size
//!   before parsing; strict compact form (canonical base64url, no duplicate JSON
//!   members); `typ` is `at+jwt`; no `jwk`/`jku`/`x5u`/`x5c`/`crit` header; the
//!   `kid` names a published key and the token's `alg` equals that key's own
//!   (the key pins the algorithm, so `none`, HMAC and key confusion fail); the
//!   signature; `iss` exactly; `aud` contains ours; `exp`, `nbf`, `iat` with a
//!   leeway. No call to the server per request.
//! - **The JWK Set** comes from the server's discovery document, is cached as its
//!   `Cache-Control` says, refreshed in the background before it expires, and
//!   re-fetched on an unknown `kid` at most once per
//!   [`VerifierBuilder::unknown_kid_interval`] (random `kid`s cannot make it hammer
//!   the server).
//! - **Revocation** arrives on the server's security event feed (Server-Sent
//!   Events, resumed by `Last-Event-ID`): a revoked JWT is refused as soon as its
//!   event arrives, a retired signing key is dropped. When the feed has been down
//!   longer than [`VerifierBuilder::feed_grace`] (or has not caught up since start),
//!   every JWT is also introspected (cached briefly), and refused when the server
//!   cannot be asked: fail closed.
//! - **Opaque tokens, API keys and personal access tokens** are introspected
//!   (RFC 7662) with a short, bounded cache.
//! - **DPoP** (RFC 9449): a token bound to a key (`cnf.jkt`) is accepted only with
//!   the `DPoP` scheme and a fresh proof by that key over this request and this
//!   token (`htm`, `htu`, `iat`, `ath`, one use per `jti`); a bound token sent as
//!   `Bearer` is refused. [`DpopKey`] makes proofs for clients.
//! - With the `axum` feature (default): the [`axum::Authenticated`] extractor and
//!   the [`axum::RequireToken`] tower layer, answering with RFC 6750 / RFC 9449
//!   `WWW-Authenticate` challenges.
//!
//! Offline use, without a server connection:
//!
//! ```
//! use portcullis_core::claims::{AccessTokenClaims, Audience};
//! use portcullis_core::jose::{SigningAlg, SigningKey};
//! use portcullis_verify::Verifier;
//!
//! // The server side (normally Portcullis itself): a key and a token.
//! let (key, _) = SigningKey::generate(SigningAlg::ES256).unwrap();
//! let jwks = serde_json::json!({ "keys": [key.public_jwk()] }).to_string();
//! let now = 1_800_000_000;
//! let claims = AccessTokenClaims {
//!     iss: "https://auth.example.com".into(), sub: "svc".into(),
//!     aud: Audience::One("https://api.example.com".into()), exp: now + 900, iat: now,
//!     jti: "1".into(), client_id: "svc".into(), scope: "read".into(), nbf: None, cnf: None,
//! };
//! let token = key.sign_jwt("at+jwt", &claims).unwrap();
//!
//! // The resource server.
//! let verifier = Verifier::from_jwks_json("https://auth.example.com", "https://api.example.com", &jwks).unwrap();
//! let got = verifier.verify_at(&token, now).unwrap();
//! assert!(got.has_scopes(&["read"]));
//! assert!(!got.has_scopes(&["write"]));
//! ```
//!
//! Against a running server: `Verifier::builder(issuer, audience)
//! .client_credentials(id, secret).resource_url("https://api.example.com")
//! .build().await?` (see `examples/protected_api.rs`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use portcullis_core::claims::{AccessTokenClaims, Audience, Confirmation};
use portcullis_core::dpop::{validate_proof, ProofContext, ReplayCache};
pub use portcullis_core::dpop::{DpopError, DpopKey};
pub use portcullis_core::jose::JwtError;

#[cfg(feature = "axum")]
pub mod axum;
mod error;
mod feed;
mod introspection;
mod keys;
mod remote;

pub use error::{AuthError, AuthErrorKind, Error, VerifyError};
pub use feed::FeedStatus;
pub use introspection::Introspection;

use keys::KeySet;

/// Who a verified request stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Subject: the client (client credentials), user, or key owner.
    pub subject: String,
    /// The OAuth client the token was issued to, if any.
    pub client_id: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Token, key or PAT id (`jti`).
    pub token_id: Option<String>,
    /// Expiry, seconds since the epoch.
    pub expires_at: Option<i64>,
    /// `Bearer`, `DPoP`, `api_key`, `personal_access_token`.
    pub token_type: String,
    /// The verified claims, for a JWT checked offline.
    pub claims: Option<AccessTokenClaims>,
    /// The DPoP key the request proved possession of, for a bound token.
    pub dpop_jkt: Option<String>,
}

impl Principal {
    /// True when every scope in `required` was granted.
    pub fn has_scopes(&self, required: &[&str]) -> bool {
        required.iter().all(|r| self.scopes.iter().any(|s| s == r))
    }

    /// `Err(insufficient_scope)` unless every scope in `required` was granted.
    pub fn require_scopes(&self, required: &[&str]) -> Result<(), AuthError> {
        if self.has_scopes(required) {
            return Ok(());
        }
        let mut e = AuthError::new(
            AuthErrorKind::InsufficientScope,
            "the token lacks a required scope",
        )
        .via_dpop(self.dpop_jkt.is_some());
        e.scope = Some(required.join(" "));
        Err(e)
    }
}

/// A request as the verifier needs to see it.
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a str>,
    /// Every `DPoP` header (more than one is an error).
    pub dpop: &'a [&'a str],
    /// The request method.
    pub method: &'a str,
    /// The request's path (and query, which is ignored).
    pub path: &'a str,
}

/// Settings, with their defaults.
#[derive(Debug, Clone)]
struct Options {
    leeway: Duration,
    default_jwks_ttl: Duration,
    unknown_kid_interval: Duration,
    introspection_cache_ttl: Duration,
    introspection_cache_max: usize,
    revocation_feed: bool,
    feed_grace: Duration,
    dpop_max_age: Duration,
    resource_url: Option<String>,
    http_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            leeway: Duration::from_secs(30),
            default_jwks_ttl: Duration::from_secs(300),
            unknown_kid_interval: Duration::from_secs(30),
            introspection_cache_ttl: Duration::from_secs(10),
            introspection_cache_max: 10_000,
            revocation_feed: true,
            feed_grace: Duration::from_secs(10),
            dpop_max_age: Duration::from_secs(60),
            resource_url: None,
            http_timeout: Duration::from_secs(5),
        }
    }
}

/// Builds a [`Verifier`] connected to a Portcullis server.
#[derive(Debug, Clone)]
pub struct VerifierBuilder {
    issuer: String,
    audience: String,
    client: Option<(String, String)>,
    opts: Options,
}

impl VerifierBuilder {
    /// The resource server's own client credentials: needed for introspection
    /// (opaque tokens, API keys, PATs) and the revocation feed.
    pub fn client_credentials(mut self, id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.client = Some((id.into(), secret.into()));
        self
    }

    /// This resource server's external base URL (`https://api.example.com`), which
    /// DPoP proofs name in `htu`. Without it, DPoP-bound tokens are refused.
    pub fn resource_url(mut self, url: impl Into<String>) -> Self {
        self.opts.resource_url = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// Clock-skew leeway for `exp`, `nbf`, `iat` (default 30 s).
    pub fn leeway(mut self, d: Duration) -> Self {
        self.opts.leeway = d;
        self
    }

    /// At most one JWK Set fetch per this interval for unknown `kid`s (default 30 s).
    pub fn unknown_kid_interval(mut self, d: Duration) -> Self {
        self.opts.unknown_kid_interval = d;
        self
    }

    /// JWK Set lifetime when the server sends no `max-age` (default 5 min).
    pub fn default_jwks_ttl(mut self, d: Duration) -> Self {
        self.opts.default_jwks_ttl = d;
        self
    }

    /// How long an introspection answer is reused (default 10 s), and how many are kept
    /// (default 10,000).
    pub fn introspection_cache(mut self, ttl: Duration, max_entries: usize) -> Self {
        self.opts.introspection_cache_ttl = ttl;
        self.opts.introspection_cache_max = max_entries;
        self
    }

    /// Subscribe to the revocation feed (default on when client credentials are set).
    pub fn revocation_feed(mut self, on: bool) -> Self {
        self.opts.revocation_feed = on;
        self
    }

    /// How long the feed may be down before JWTs are introspected too (default 10 s).
    pub fn feed_grace(mut self, d: Duration) -> Self {
        self.opts.feed_grace = d;
        self
    }

    /// How old a DPoP proof may be (default 60 s).
    pub fn dpop_max_age(mut self, d: Duration) -> Self {
        self.opts.dpop_max_age = d;
        self
    }

    /// Timeout of each call to the server (default 5 s).
    pub fn http_timeout(mut self, d: Duration) -> Self {
        self.opts.http_timeout = d;
        self
    }

    /// Fetches discovery and the JWK Set, then starts the background JWK Set
    /// refresh and (with client credentials) the revocation feed.
    pub async fn build(self) -> Result<Verifier, Error> {
        if let Some(u) = &self.opts.resource_url {
            if portcullis_core::dpop::normalize_htu(&format!("{u}/")).is_none() {
                return Err(Error::Config(format!(
                    "resource_url {u:?} is not an http(s) URL"
                )));
            }
        }
        let (remote, jwks_text, ttl) =
            remote::Remote::connect(&self.issuer, self.client.clone(), &self.opts).await?;
        let leeway = self.opts.leeway.as_secs() as i64;
        let keys = KeySet::parse(&self.issuer, leeway, &jwks_text)?;
        let feed_on =
            self.opts.revocation_feed && self.client.is_some() && remote.events_endpoint.is_some();
        let inner = Arc::new(Inner::new(
            self.issuer,
            self.audience,
            keys,
            self.opts,
            Some(remote),
            feed_on,
        ));
        let weak = Arc::downgrade(&inner);
        let mut tasks = vec![tokio::spawn(remote::refresh_loop(weak.clone(), ttl))];
        if feed_on {
            tasks.push(tokio::spawn(feed::run(weak)));
        }
        match inner.tasks.lock() {
            Ok(mut g) => g.extend(tasks),
            Err(p) => p.into_inner().extend(tasks),
        }
        Ok(Verifier { inner })
    }
}

/// Checks access tokens for one issuer and one audience. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    issuer: String,
    audience: String,
    leeway: i64,
    keys: RwLock<Arc<KeySet>>,
    /// Revoked JWT ids (from the feed) and their expiry.
    revoked: RwLock<HashMap<String, i64>>,
    replay: ReplayCache,
    opts: Options,
    remote: Option<remote::Remote>,
    feed: feed::FeedState,
    jwks_fetches: AtomicU64,
    introspections: AtomicU64,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let tasks = match self.tasks.get_mut() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        for t in tasks.drain(..) {
            t.abort();
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn read<T: Clone>(l: &RwLock<T>) -> T {
    match l.read() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

fn write<T>(l: &RwLock<T>, v: T) {
    match l.write() {
        Ok(mut g) => *g = v,
        Err(p) => *p.into_inner() = v,
    }
}

impl Inner {
    fn new(
        issuer: String,
        audience: String,
        keys: KeySet,
        opts: Options,
        remote: Option<remote::Remote>,
        feed_on: bool,
    ) -> Self {
        Self {
            leeway: opts.leeway.as_secs() as i64,
            issuer,
            audience,
            keys: RwLock::new(Arc::new(keys)),
            revoked: RwLock::new(HashMap::new()),
            replay: ReplayCache::new(100_000),
            opts,
            remote,
            feed: feed::FeedState::new(feed_on),
            jwks_fetches: AtomicU64::new(0),
            introspections: AtomicU64::new(0),
            tasks: Mutex::new(Vec::new()),
        }
    }

    fn set_keys(&self, keys: KeySet) {
        write(&self.keys, Arc::new(keys));
    }

    fn is_revoked(&self, jti: &str) -> bool {
        match self.revoked.read() {
            Ok(g) => g.contains_key(jti),
            Err(p) => p.into_inner().contains_key(jti),
        }
    }

    fn revoke(&self, jti: String, exp: i64) {
        let now = unix_now();
        let mut g = match self.revoked.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if g.len() > 1_000 {
            g.retain(|_, e| *e + self.leeway > now);
        }
        g.insert(jti, exp);
    }

    fn retire_key(&self, kid: &str) {
        let cur = read(&self.keys);
        if let Some(next) = cur.without(&self.issuer, self.leeway, kid) {
            self.set_keys(next);
        }
    }
}

impl Verifier {
    /// A verifier connected to the server at `issuer` (see [`VerifierBuilder`]).
    pub fn builder(issuer: impl Into<String>, audience: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            audience: audience.into(),
            client: None,
            opts: Options::default(),
        }
    }

    /// An offline verifier from a JWK Set document: no refresh, no feed, no
    /// introspection. Keys that are not usable for verification (symmetric, no
    /// `alg`, unsupported curve) are skipped and counted.
    pub fn from_jwks_json(issuer: &str, audience: &str, jwks: &str) -> Result<Self, Error> {
        let opts = Options::default();
        let keys = KeySet::parse(issuer, opts.leeway.as_secs() as i64, jwks)?;
        Ok(Self {
            inner: Arc::new(Inner::new(
                issuer.to_owned(),
                audience.to_owned(),
                keys,
                opts,
                None,
                false,
            )),
        })
    }

    /// The same offline verifier with another clock-skew leeway (seconds).
    pub fn with_leeway(self, secs: i64) -> Self {
        let keys = read(&self.inner.keys);
        let mut opts = self.inner.opts.clone();
        opts.leeway = Duration::from_secs(secs.max(0) as u64);
        let mut set = (*keys).clone();
        set.verifier = set.verifier.with_leeway(secs);
        Self {
            inner: Arc::new(Inner::new(
                self.inner.issuer.clone(),
                self.inner.audience.clone(),
                set,
                opts,
                None,
                false,
            )),
        }
    }

    /// Keys in the set that were skipped as unusable.
    pub fn skipped_keys(&self) -> usize {
        read(&self.inner.keys).skipped
    }

    /// The key ids currently trusted.
    pub fn key_ids(&self) -> Vec<String> {
        read(&self.inner.keys).kids()
    }

    /// Offline check of `token` at time `now` (seconds since the epoch): signature,
    /// claims, and the revocations the feed delivered. No network.
    pub fn verify_at(&self, token: &str, now: i64) -> Result<AccessTokenClaims, VerifyError> {
        let keys = read(&self.inner.keys);
        let claims = keys
            .verifier
            .verify_access_token(token, now, Some(&self.inner.audience))?;
        if self.inner.is_revoked(&claims.jti) {
            return Err(VerifyError::Revoked);
        }
        Ok(claims)
    }

    /// Checks a JWT access token now: offline, plus one JWK Set re-fetch on an unknown
    /// `kid` (rate-limited), plus introspection while the revocation feed is not
    /// healthy.
    pub async fn verify(&self, token: &str) -> Result<AccessTokenClaims, VerifyError> {
        let now = unix_now();
        let claims = match self.verify_at(token, now) {
            Err(VerifyError::Jwt(JwtError::UnknownKey)) if self.refetch_for_unknown_kid().await => {
                self.verify_at(token, now)?
            }
            other => other?,
        };
        if !self.inner.feed.healthy(self.inner.opts.feed_grace) {
            let Some(remote) = &self.inner.remote else {
                return Ok(claims);
            };
            let answer = remote
                .introspect(&self.inner, token)
                .await
                .map_err(|e| VerifyError::Unavailable(e.to_string()))?;
            if !answer.active {
                return Err(VerifyError::Revoked);
            }
        }
        Ok(claims)
    }

    /// Re-fetches the JWK Set for an unknown `kid`, unless one such fetch happened
    /// within the interval. True when the set was replaced.
    async fn refetch_for_unknown_kid(&self) -> bool {
        let Some(remote) = &self.inner.remote else {
            return false;
        };
        remote
            .refetch_if_due(&self.inner, self.inner.opts.unknown_kid_interval)
            .await
    }

    /// Introspects any token (RFC 7662) with the configured client credentials; answers
    /// are cached briefly. Needs [`VerifierBuilder::client_credentials`].
    pub async fn introspect(&self, token: &str) -> Result<Arc<Introspection>, Error> {
        match &self.inner.remote {
            Some(r) => r.introspect(&self.inner, token).await,
            None => Err(Error::Config(
                "introspection needs a connected verifier".into(),
            )),
        }
    }

    /// Authenticates a request: the `Authorization` header (`Bearer` or `DPoP`), the
    /// token (offline for JWTs, introspected otherwise), and the DPoP proof for a
    /// bound token.
    pub async fn authenticate(&self, req: &Presented<'_>) -> Result<Principal, AuthError> {
        let Some(header) = req.authorization.map(str::trim).filter(|h| !h.is_empty()) else {
            return Err(AuthError::new(
                AuthErrorKind::Missing,
                "an access token is required",
            ));
        };
        let (scheme, token) = header.split_once(' ').unwrap_or((header, ""));
        let dpop_scheme = if scheme.eq_ignore_ascii_case("bearer") {
            false
        } else if scheme.eq_ignore_ascii_case("dpop") {
            true
        } else {
            return Err(AuthError::new(
                AuthErrorKind::InvalidRequest,
                "the Authorization scheme must be Bearer or DPoP",
            ));
        };
        let token = token.trim();
        if token.is_empty() || token.len() > portcullis_core::jose::MAX_JWT_LEN {
            return Err(
                AuthError::new(AuthErrorKind::InvalidToken, "malformed token")
                    .via_dpop(dpop_scheme),
            );
        }
        if req.dpop.len() > 1 {
            return Err(AuthError::new(
                AuthErrorKind::InvalidRequest,
                "exactly one DPoP header is allowed",
            )
            .via_dpop(dpop_scheme));
        }
        let invalid =
            |m: String| AuthError::new(AuthErrorKind::InvalidToken, m).via_dpop(dpop_scheme);
        let mut principal = if token.bytes().filter(|b| *b == b'.').count() == 2 {
            let claims = self.verify(token).await.map_err(|e| match e {
                VerifyError::Unavailable(m) => AuthError::new(AuthErrorKind::Unavailable, m),
                other => invalid(other.to_string()),
            })?;
            Principal {
                subject: claims.sub.clone(),
                client_id: Some(claims.client_id.clone()),
                scopes: words(&claims.scope),
                token_id: Some(claims.jti.clone()),
                expires_at: Some(claims.exp),
                token_type: if claims.cnf.is_some() {
                    "DPoP"
                } else {
                    "Bearer"
                }
                .into(),
                dpop_jkt: claims.jkt().map(str::to_owned),
                claims: Some(claims),
            }
        } else {
            let answer = self.introspect(token).await.map_err(|e| match e {
                Error::Config(m) => invalid(format!("cannot check this token: {m}")),
                other => AuthError::new(AuthErrorKind::Unavailable, other.to_string()),
            })?;
            if !answer.active {
                return Err(invalid("unknown, expired or revoked token".into()));
            }
            if let Some(aud) = &answer.aud {
                if !aud.contains(&self.inner.audience) {
                    return Err(invalid("the token is meant for another audience".into()));
                }
            }
            Principal {
                subject: answer.sub.clone().unwrap_or_default(),
                client_id: answer.client_id.clone(),
                scopes: words(answer.scope.as_deref().unwrap_or("")),
                token_id: answer.jti.clone(),
                expires_at: answer.exp,
                token_type: answer.token_type.clone().unwrap_or_else(|| "Bearer".into()),
                dpop_jkt: answer.cnf.as_ref().map(|c| c.jkt.clone()),
                claims: None,
            }
        };
        match principal.dpop_jkt.clone() {
            Some(jkt) => {
                let proven = self.check_proof(req, token, dpop_scheme, &jkt)?;
                principal.dpop_jkt = Some(proven);
            }
            None if dpop_scheme => {
                return Err(invalid(
                    "the token is not bound to a DPoP key: use the Bearer scheme".into(),
                ))
            }
            None => {}
        }
        Ok(principal)
    }

    fn check_proof(
        &self,
        req: &Presented<'_>,
        token: &str,
        dpop_scheme: bool,
        jkt: &str,
    ) -> Result<String, AuthError> {
        let bad = |m: &str| AuthError::new(AuthErrorKind::InvalidDpopProof, m).via_dpop(true);
        if !dpop_scheme {
            return Err(AuthError::new(
                AuthErrorKind::InvalidToken,
                "the token is bound to a DPoP key: send it with the DPoP scheme and a proof",
            )
            .via_dpop(true));
        }
        let Some(proof) = req.dpop.first() else {
            return Err(bad("a DPoP proof is required with this token"));
        };
        let Some(base) = &self.inner.opts.resource_url else {
            return Err(bad(
                "this resource server is not configured for DPoP (resource_url)",
            ));
        };
        let path = if req.path.starts_with('/') {
            req.path
        } else {
            "/"
        };
        let htu = format!("{base}{path}");
        let now = unix_now();
        let max_age = self.inner.opts.dpop_max_age.as_secs() as i64;
        let leeway = self.inner.leeway.min(max_age);
        let ctx = ProofContext {
            htm: req.method,
            htu: &htu,
            access_token: Some(token),
            now,
            max_age,
            leeway,
        };
        let valid = validate_proof(proof, &ctx).map_err(|e| bad(&e.to_string()))?;
        if valid.jkt != jkt {
            return Err(bad(&DpopError::KeyMismatch.to_string()));
        }
        self.inner
            .replay
            .check(&valid, valid.iat + max_age + leeway, now)
            .map_err(|e| bad(&e.to_string()))?;
        Ok(valid.jkt)
    }

    /// The revocation feed's state.
    pub fn feed_status(&self) -> FeedStatus {
        self.inner.feed.status(self.inner.opts.feed_grace)
    }

    /// How many times the JWK Set was fetched (the first fetch included).
    pub fn jwks_fetches(&self) -> u64 {
        self.inner.jwks_fetches.load(Ordering::Relaxed)
    }

    /// How many introspection calls reached the server.
    pub fn introspection_calls(&self) -> u64 {
        self.inner.introspections.load(Ordering::Relaxed)
    }
}

fn words(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Upgrades a background task's handle; `None` once the verifier is gone.
fn alive(w: &Weak<Inner>) -> Option<Arc<Inner>> {
    w.upgrade()
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::jose::{SigningAlg, SigningKey};

    fn setup() -> (SigningKey, String) {
        let (key, _) = SigningKey::generate(SigningAlg::EdDSA).expect("key");
        let hmac = serde_json::json!({"kty": "oct", "k": "c2VjcmV0", "alg": "HS256", "kid": "h"});
        let jwks = serde_json::json!({ "keys": [key.public_jwk(), hmac] }).to_string();
        (key, jwks)
    }

    fn token(key: &SigningKey, aud: &str, now: i64) -> String {
        let c = AccessTokenClaims {
            iss: "https://as.test".into(),
            sub: "s".into(),
            aud: Audience::One(aud.into()),
            exp: now + 60,
            iat: now,
            jti: "j".into(),
            client_id: "s".into(),
            scope: "a b".into(),
            nbf: None,
            cnf: None,
        };
        key.sign_jwt("at+jwt", &c).expect("sign")
    }

    #[test]
    fn symmetric_keys_are_skipped_and_a_set_of_only_those_is_refused() {
        let (_, jwks) = setup();
        let v = Verifier::from_jwks_json("https://as.test", "https://api.test", &jwks)
            .expect("verifier");
        assert_eq!(v.skipped_keys(), 1);
        let only_hmac = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"HS256","kid":"h"}]}"#;
        assert!(matches!(
            Verifier::from_jwks_json("i", "a", only_hmac),
            Err(Error::NoUsableKey)
        ));
        assert!(matches!(
            Verifier::from_jwks_json("i", "a", "nope"),
            Err(Error::InvalidJwks(_))
        ));
    }

    #[test]
    fn audience_and_leeway_are_enforced() {
        let (key, jwks) = setup();
        let v = Verifier::from_jwks_json("https://as.test", "https://api.test", &jwks)
            .expect("verifier");
        let now = 1_800_000_000;
        assert!(v
            .verify_at(&token(&key, "https://api.test", now), now)
            .is_ok());
        assert_eq!(
            v.verify_at(&token(&key, "https://other.test", now), now),
            Err(VerifyError::Jwt(JwtError::WrongAudience))
        );
        let t = token(&key, "https://api.test", now);
        assert!(v.verify_at(&t, now + 60 + 29).is_ok());
        let strict = v.clone().with_leeway(0);
        assert_eq!(
            strict.verify_at(&t, now + 60),
            Err(VerifyError::Jwt(JwtError::Expired))
        );
    }

    #[test]
    fn a_retired_key_stops_verifying_and_a_revoked_jti_is_refused() {
        let (key, jwks) = setup();
        let v = Verifier::from_jwks_json("https://as.test", "https://api.test", &jwks)
            .expect("verifier");
        let now = 1_800_000_000;
        let t = token(&key, "https://api.test", now);
        v.inner.revoke("j".into(), now + 60);
        assert_eq!(v.verify_at(&t, now), Err(VerifyError::Revoked));
        v.inner.retire_key(key.kid());
        assert!(v.key_ids().is_empty());
        assert_eq!(
            v.verify_at(&t, now),
            Err(VerifyError::Jwt(JwtError::UnknownKey))
        );
    }

    #[test]
    fn challenges_follow_rfc_6750_and_9449() {
        let e = AuthError::new(AuthErrorKind::InvalidToken, "expired \"x\"");
        assert_eq!(e.status(), 401);
        let c = e.challenges("api");
        assert_eq!(
            c[0],
            r#"Bearer realm="api", error="invalid_token", error_description="expired x""#
        );
        assert!(c[1].starts_with(r#"DPoP realm="api", algs="#));
        let d = AuthError::new(AuthErrorKind::InvalidDpopProof, "stale");
        let c = d.challenges("api");
        assert_eq!(c[0], r#"Bearer realm="api""#);
        assert!(c[1].contains(r#"error="invalid_dpop_proof""#));
        let m = AuthError::new(AuthErrorKind::Missing, "x");
        assert_eq!(m.challenges("api")[0], r#"Bearer realm="api""#);
        assert_eq!(
            AuthError::new(AuthErrorKind::Unavailable, "x").status(),
            503
        );
    }
}
