//! Signing users in: passwords, brute-force defence, browser sessions, TOTP and
//! recovery codes, remembered consent, and revoking everything a user holds.
//!
//! - **Passwords** are Argon2id ([`crate::passwords`]). Unknown users cost the same
//!   hash as known ones and get the same answer.
//! - **Throttling**: failures are counted per account (every username, existing or
//!   not, so a lockout tells nothing) and per client address. Past a threshold each
//!   further failure locks for twice as long as the last, up to a ceiling; a
//!   success clears the account's count. The `login` rate limits apply on top.
//! - **Sessions** are random cookies stored as keyed digests, with an absolute
//!   lifetime and an idle timeout. A new session id is issued at every sign-in
//!   (no fixation).
//! - **TOTP** (RFC 6238, SHA-1, 6 digits, 30 s, ±1 step) seeds are sealed under the
//!   master key; each time step is accepted once. Ten recovery codes, keyed digests, single use.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use portcullis_core::ids::TokenId;
use portcullis_core::scope::ScopeSet;
use portcullis_core::secret::{OpaqueSecret, SecretString, SESSION_PREFIX};
use portcullis_store::{ConsentRow, GrantScope, SessionRow, UserRow};
use serde::Serialize;

use crate::audit::{AuditEvent, Outcome};
use crate::passwords::{self, Argon2Params};
use crate::ratelimit::{Partition, RouteClass};
use crate::{Authority, ServiceError};

/// The `amr` value of a password (RFC 8176).
pub const AMR_PWD: &str = "pwd";
/// The `amr` value of a one-time password.
pub const AMR_OTP: &str = "otp";
/// `acr` of a password-only sign-in.
pub const ACR_PWD: &str = "urn:portcullis:acr:pwd";
/// `acr` of a sign-in with a second factor; ask for it with `acr_values` to step up.
pub const ACR_MFA: &str = "urn:portcullis:acr:mfa";

/// Sign-in settings.
#[derive(Debug, Clone)]
pub struct SignInConfig {
    /// Argon2id parameters for new hashes.
    pub argon2: Argon2Params,
    /// Absolute session lifetime.
    pub session_ttl: Duration,
    /// A session unused this long ends.
    pub session_idle: Duration,
    /// Authorization code lifetime (at most 60 s).
    pub code_ttl: Duration,
    /// Failures per account before lockouts start.
    pub lockout_threshold: u32,
    /// Failures per address before lockouts start.
    pub ip_lockout_threshold: u32,
    /// First lockout; each further failure doubles it.
    pub lockout_base: Duration,
    /// Longest lockout.
    pub lockout_max: Duration,
    /// Failures older than this are forgotten.
    pub failure_window: Duration,
    /// The issuer name shown in authenticator apps.
    pub totp_issuer: String,
}

impl Default for SignInConfig {
    fn default() -> Self {
        Self {
            argon2: Argon2Params::default(),
            session_ttl: Duration::from_secs(12 * 3_600),
            session_idle: Duration::from_secs(3_600),
            code_ttl: Duration::from_secs(60),
            lockout_threshold: 5,
            ip_lockout_threshold: 50,
            lockout_base: Duration::from_secs(30),
            lockout_max: Duration::from_secs(15 * 60),
            failure_window: Duration::from_secs(15 * 60),
            totp_issuer: "Portcullis".into(),
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Failures {
    count: u32,
    last: i64,
    locked_until: i64,
}

/// Failure counts per account and per address, bounded.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    map: Mutex<HashMap<String, Failures>>,
}

const THROTTLE_MAX: usize = 100_000;

impl Throttle {
    fn locked_until(&self, key: &str, now: i64) -> Option<i64> {
        let g = match self.map.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.get(key)
            .map(|f| f.locked_until)
            .filter(|until| *until > now)
    }

    fn fail(&self, key: String, now: i64, cfg: &SignInConfig, threshold: u32) {
        let mut g = match self.map.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if g.len() >= THROTTLE_MAX && !g.contains_key(&key) {
            let window = cfg.failure_window.as_secs() as i64;
            g.retain(|_, f| f.locked_until > now || now - f.last < window);
            if g.len() >= THROTTLE_MAX {
                g.clear();
            }
        }
        let f = g.entry(key).or_default();
        if now - f.last > cfg.failure_window.as_secs() as i64 {
            f.count = 0;
        }
        f.count += 1;
        f.last = now;
        if f.count >= threshold {
            let doublings = (f.count - threshold).min(20);
            let lock = (cfg.lockout_base.as_secs() << doublings).min(cfg.lockout_max.as_secs());
            f.locked_until = now + lock as i64;
        }
    }

    fn clear(&self, key: &str) {
        let mut g = match self.map.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.remove(key);
    }
}

/// Why a sign-in was refused. The message shown is the same for every reason but
/// a lockout, which applies to unknown usernames alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginRefusal {
    /// Wrong username or password (or a disabled user): one answer for all.
    Invalid,
    /// Too many failures: try again in this many seconds.
    Locked(i64),
}

impl LoginRefusal {
    /// The message a person sees.
    pub fn message(&self) -> &'static str {
        match self {
            Self::Invalid => "Invalid username or password.",
            Self::Locked(_) => "Too many failed attempts. Wait a few minutes and try again.",
        }
    }
}

/// A live browser session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Session id (`sid`).
    pub id: String,
    /// The user.
    pub user: Arc<UserRow>,
    /// Methods passed.
    pub amr: Vec<String>,
    /// When the user last authenticated.
    pub auth_time: i64,
}

impl Session {
    /// The session passed a second factor.
    pub fn has_otp(&self) -> bool {
        self.amr.iter().any(|m| m == AMR_OTP)
    }

    /// The user has a confirmed authenticator.
    pub fn mfa_enrolled(&self) -> bool {
        self.user.totp_confirmed_at.is_some()
    }

    /// The session is complete: a user with an authenticator has used it.
    pub fn complete(&self) -> bool {
        !self.mfa_enrolled() || self.has_otp()
    }

    /// `acr` of this session.
    pub fn acr(&self) -> &'static str {
        if self.has_otp() {
            ACR_MFA
        } else {
            ACR_PWD
        }
    }
}

/// A pending TOTP enrolment: what the page shows.
#[derive(Debug)]
pub struct Enrolment {
    /// `otpauth://` URL (the QR code's content).
    pub url: String,
    /// The seed in base32, for typing in by hand.
    pub secret_base32: String,
    /// The QR code as an SVG document.
    pub qr_svg: String,
}

/// A consent as shown to its user.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentView {
    /// Client id.
    pub client_id: String,
    /// Client name (empty when the client is gone).
    pub client_name: String,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// When.
    pub granted_at: i64,
}

fn totp(secret: Vec<u8>, issuer: &str, account: &str) -> Result<totp_rs::TOTP, ServiceError> {
    totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        secret,
        Some(issuer.to_owned()),
        account.to_owned(),
    )
    .map_err(|e| ServiceError::Unexpected(anyhow::anyhow!("totp: {e}")))
}

fn normalise_recovery(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl Authority {
    fn account_key(username: &str) -> String {
        format!("acct:{}", username.trim().to_ascii_lowercase())
    }

    /// Checks a username and password, with throttling, lockout, rate limits and an
    /// audit record for every failure. `Ok(Err(_))` is a refusal to show the user.
    pub async fn login(
        &self,
        username: &str,
        password: &SecretString,
        ip: Option<IpAddr>,
        client_id: Option<&str>,
    ) -> Result<Result<Arc<UserRow>, LoginRefusal>, ServiceError> {
        let now = self.now();
        let cfg = &self.config.signin;
        let username: String = username.trim().chars().take(128).collect();
        let acct = Self::account_key(&username);
        let ip_key = ip.map(|i| format!("ip:{}", crate::ratelimit::ip_partition(i)));
        let locked = self
            .throttle
            .locked_until(&acct, now)
            .into_iter()
            .chain(
                ip_key
                    .as_deref()
                    .and_then(|k| self.throttle.locked_until(k, now)),
            )
            .max();
        let mut limited = self
            .rate_check(RouteClass::Login, Partition::Credential, &acct, None)
            .await
            .filter(|o| !o.decision.allowed);
        if let Some(ip) = ip {
            if limited.is_none() {
                limited = self
                    .rate_check_ip(RouteClass::Login, ip)
                    .await
                    .filter(|o| !o.decision.allowed);
            }
        }
        if let Some(until) = locked {
            self.login_failed(&username, ip, client_id, "locked out", None)
                .await?;
            return Ok(Err(LoginRefusal::Locked(until - now)));
        }
        if let Some(o) = limited {
            self.login_failed(&username, ip, client_id, "rate limited", None)
                .await?;
            return Ok(Err(LoginRefusal::Locked(o.retry_after_secs() as i64)));
        }
        let user = if password.expose().len() <= passwords::MAX_PASSWORD_BYTES {
            self.store.get_user(&username).await?
        } else {
            None
        };
        let hash = user.as_ref().and_then(|u| u.password_hash.clone());
        let ok = passwords::verify(&self.hasher, hash.as_deref(), password).await?;
        match user {
            Some(u) if ok && u.enabled => {
                self.throttle.clear(&acct);
                if self
                    .hasher
                    .needs_rehash(hash.as_deref().unwrap_or_default())
                {
                    let h = passwords::hash(&self.hasher, password).await?;
                    self.store.set_password_hash(&u.id, Some(&h), now).await?;
                }
                Ok(Ok(Arc::new(u)))
            }
            u => {
                self.throttle.fail(acct, now, cfg, cfg.lockout_threshold);
                if let Some(k) = ip_key {
                    self.throttle.fail(k, now, cfg, cfg.ip_lockout_threshold);
                }
                let reason = match &u {
                    None => "unknown user",
                    Some(u) if !u.enabled && ok => "user disabled",
                    Some(_) => "wrong password",
                };
                self.login_failed(&username, ip, client_id, reason, u.map(|u| u.id))
                    .await?;
                Ok(Err(LoginRefusal::Invalid))
            }
        }
    }

    async fn login_failed(
        &self,
        username: &str,
        ip: Option<IpAddr>,
        client_id: Option<&str>,
        reason: &str,
        user_id: Option<String>,
    ) -> Result<(), ServiceError> {
        let mut e = AuditEvent::new("login.failed")
            .outcome(Outcome::Failure, reason)
            .actor(format!("user:{username}"))
            .details(serde_json::json!({"username": username}));
        if let Some(id) = user_id {
            e = e.subject(id);
        }
        if let Some(c) = client_id {
            e = e.client(c);
        }
        // Awaited: every failure is on record before the answer (they are rate limited).
        self.audit(e).await?;
        self.observe_failure(ip.or_else(crate::audit::current_ip), Some(username))
            .await?;
        Ok(())
    }

    /// Starts a session for `user` after it passed `amr`; returns the cookie value.
    pub async fn start_session(
        &self,
        user: &UserRow,
        amr: &[&str],
    ) -> Result<(SecretString, Session), ServiceError> {
        let now = self.now();
        let secret = OpaqueSecret::generate(SESSION_PREFIX);
        let row = SessionRow {
            id: TokenId::new().to_string(),
            digest: self.pepper.digest(secret.expose()).as_str().to_owned(),
            user_id: user.id.clone(),
            amr: amr.join(" "),
            auth_time: now,
            created_at: now,
            last_seen_at: now,
            expires_at: now + self.config.signin.session_ttl.as_secs() as i64,
            ended_at: None,
        };
        self.store.insert_session(&row).await?;
        self.audit(
            AuditEvent::new("login.succeeded")
                .subject(user.id.clone())
                .credential(row.id.clone())
                .actor(format!("user:{}", user.username))
                .details(serde_json::json!({"amr": amr})),
        )
        .await?;
        Ok((
            SecretString::new(secret.expose()),
            Session {
                id: row.id,
                user: Arc::new(user.clone()),
                amr: amr.iter().map(|s| (*s).to_owned()).collect(),
                auth_time: now,
            },
        ))
    }

    /// The live session behind a cookie value; `None` when unknown, ended,
    /// expired, idle too long, or its user is disabled or gone.
    pub async fn session(&self, cookie: &str) -> Result<Option<Session>, ServiceError> {
        let Ok(secret) = OpaqueSecret::parse(cookie, SESSION_PREFIX) else {
            return Ok(None);
        };
        let digest = self.pepper.digest(secret.expose());
        let Some(row) = self.store.find_session(digest.as_str()).await? else {
            return Ok(None);
        };
        let now = self.now();
        let idle = self.config.signin.session_idle.as_secs() as i64;
        if row.ended_at.is_some() || row.expires_at <= now || now - row.last_seen_at > idle {
            return Ok(None);
        }
        let Some(user) = self.store.get_user(&row.user_id).await? else {
            return Ok(None);
        };
        if !user.enabled {
            return Ok(None);
        }
        // One write a minute at most per session.
        if now - row.last_seen_at >= 60 {
            self.store.touch_session(&row.id, now).await?;
        }
        Ok(Some(Session {
            id: row.id,
            user: Arc::new(user),
            amr: row.amr.split(' ').map(str::to_owned).collect(),
            auth_time: row.auth_time,
        }))
    }

    /// Checks a TOTP code or a recovery code for the session's user and, when it is
    /// good, records the second factor on the session. Failures count toward the
    /// account's lockout like wrong passwords. Returns whether it passed.
    pub async fn verify_second_factor(
        &self,
        session: &Session,
        code: &str,
    ) -> Result<Result<(), LoginRefusal>, ServiceError> {
        let now = self.now();
        let cfg = &self.config.signin;
        let acct = Self::account_key(&session.user.username);
        if let Some(until) = self.throttle.locked_until(&acct, now) {
            return Ok(Err(LoginRefusal::Locked(until - now)));
        }
        let code = code.trim();
        let ok = if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
            self.check_totp(&session.user, code, now).await?
        } else {
            let digest = self
                .pepper
                .digest(&format!("recovery:{}", normalise_recovery(code)));
            let used = self
                .store
                .use_recovery_code(&session.user.id, digest.as_str(), now)
                .await?;
            if used {
                self.audit(
                    AuditEvent::new("mfa.recovery_code_used").subject(session.user.id.clone()),
                )
                .await?;
            }
            used
        };
        if !ok {
            self.throttle.fail(acct, now, cfg, cfg.lockout_threshold);
            self.audit(
                AuditEvent::new("mfa.failed")
                    .outcome(Outcome::Failure, "wrong code")
                    .subject(session.user.id.clone()),
            )
            .await?;
            self.observe_failure(crate::audit::current_ip(), Some(&session.user.username))
                .await?;
            return Ok(Err(LoginRefusal::Invalid));
        }
        self.throttle.clear(&acct);
        let mut amr = session.amr.clone();
        if !amr.iter().any(|m| m == AMR_OTP) {
            amr.push(AMR_OTP.into());
        }
        self.store
            .update_session_auth(&session.id, &amr.join(" "), now)
            .await?;
        self.audit(AuditEvent::new("mfa.succeeded").subject(session.user.id.clone()))
            .await?;
        Ok(Ok(()))
    }

    fn open_totp_seed(&self, user: &UserRow) -> Result<Option<Vec<u8>>, ServiceError> {
        let Some(sealed) = &user.totp_secret_sealed else {
            return Ok(None);
        };
        Ok(Some(
            self.sealer
                .open(sealed, &format!("totp:{}", user.id))
                .context("opening a TOTP seed")?,
        ))
    }

    async fn check_totp(&self, user: &UserRow, code: &str, now: i64) -> Result<bool, ServiceError> {
        let Some(seed) = self.open_totp_seed(user)? else {
            return Ok(false);
        };
        let t = totp(seed, &self.config.signin.totp_issuer, &user.username)?;
        let step_now = now.div_euclid(30);
        for step in [step_now - 1, step_now, step_now + 1] {
            let expected = t.generate((step * 30) as u64);
            let same: bool =
                subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), code.as_bytes()).into();
            if same {
                // Each step once: a code seen by a shoulder-surfer is already spent.
                return Ok(self.store.take_totp_step(&user.id, step).await?);
            }
        }
        Ok(false)
    }

    /// Begins (or resumes) TOTP enrolment for a user without a confirmed authenticator.
    pub async fn begin_totp_enrolment(&self, user: &UserRow) -> Result<Enrolment, ServiceError> {
        if user.totp_confirmed_at.is_some() {
            return Err(ServiceError::Conflict(
                "an authenticator is already enrolled".into(),
            ));
        }
        let seed = match self.open_totp_seed(user)? {
            Some(s) => s,
            None => {
                let mut seed = vec![0u8; 20];
                aws_lc_rs::rand::fill(&mut seed).map_err(|_| anyhow::anyhow!("no randomness"))?;
                let sealed = self
                    .sealer
                    .seal(&seed, &format!("totp:{}", user.id))
                    .context("sealing a TOTP seed")?;
                self.store.set_totp(&user.id, Some(&sealed), None).await?;
                seed
            }
        };
        let t = totp(seed, &self.config.signin.totp_issuer, &user.username)?;
        let url = t.get_url();
        let qr = qrcode::QrCode::new(url.as_bytes()).context("QR code")?;
        let qr_svg = qr
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build();
        Ok(Enrolment {
            url,
            secret_base32: t.get_secret_base32(),
            qr_svg,
        })
    }

    /// Confirms enrolment with a first code; returns the ten recovery codes (shown once).
    pub async fn confirm_totp_enrolment(
        &self,
        session: &Session,
        code: &str,
    ) -> Result<Option<Vec<String>>, ServiceError> {
        let user = self
            .store
            .get_user(&session.user.id)
            .await?
            .ok_or_else(|| ServiceError::NotFound("user".into()))?;
        if user.totp_confirmed_at.is_some() {
            return Err(ServiceError::Conflict(
                "an authenticator is already enrolled".into(),
            ));
        }
        let now = self.now();
        if !self.check_totp(&user, code.trim(), now).await? {
            self.audit_enqueue(
                AuditEvent::new("mfa.enrolment_failed")
                    .outcome(Outcome::Failure, "wrong code")
                    .subject(user.id.clone()),
            )
            .await;
            return Ok(None);
        }
        self.store
            .set_totp(&user.id, user.totp_secret_sealed.as_deref(), Some(now))
            .await?;
        let codes = self.new_recovery_codes(&user.id).await?;
        let mut amr = session.amr.clone();
        if !amr.iter().any(|m| m == AMR_OTP) {
            amr.push(AMR_OTP.into());
        }
        self.store
            .update_session_auth(&session.id, &amr.join(" "), now)
            .await?;
        self.audit(AuditEvent::new("mfa.enrolled").subject(user.id.clone()))
            .await?;
        Ok(Some(codes))
    }

    async fn new_recovery_codes(&self, user_id: &str) -> Result<Vec<String>, ServiceError> {
        let mut codes = Vec::with_capacity(10);
        let mut digests = Vec::with_capacity(10);
        for _ in 0..10 {
            let mut raw = [0u8; 8];
            aws_lc_rs::rand::fill(&mut raw).map_err(|_| anyhow::anyhow!("no randomness"))?;
            let h = hex::encode(raw);
            let code = format!("{}-{}-{}-{}", &h[0..4], &h[4..8], &h[8..12], &h[12..16]);
            digests.push(
                self.pepper
                    .digest(&format!("recovery:{}", normalise_recovery(&code)))
                    .as_str()
                    .to_owned(),
            );
            codes.push(code);
        }
        self.store.replace_recovery_codes(user_id, &digests).await?;
        Ok(codes)
    }

    /// Removes a user's authenticator and recovery codes (an administrator's reset).
    pub async fn reset_mfa(&self, user: &str) -> Result<(), ServiceError> {
        let u = self.user_row(user).await?;
        self.store.set_totp(&u.id, None, None).await?;
        self.store.replace_recovery_codes(&u.id, &[]).await?;
        self.revoke_everything_of(&u.id, "mfa reset").await?;
        self.audit(AuditEvent::new("mfa.reset").subject(u.id.clone()))
            .await?;
        Ok(())
    }

    /// Remembered consent of `user` to `client`.
    pub async fn consented(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<ScopeSet>, ServiceError> {
        Ok(match self.store.get_consent(user_id, client_id).await? {
            Some(c) => Some(ScopeSet::parse(&c.scopes).context("stored consent")?),
            None => None,
        })
    }

    /// Remembers that `user` granted `scopes` to `client` (merged with earlier grants).
    pub async fn remember_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scopes: &ScopeSet,
    ) -> Result<(), ServiceError> {
        let mut all: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        if let Some(old) = self.consented(user_id, client_id).await? {
            all.extend(old.iter().map(|s| s.to_string()));
        }
        let merged = ScopeSet::from_tokens(&all).context("merged consent")?;
        self.store
            .upsert_consent(&ConsentRow {
                user_id: user_id.to_owned(),
                client_id: client_id.to_owned(),
                scopes: merged.to_string(),
                granted_at: self.now(),
            })
            .await?;
        self.audit(
            AuditEvent::new("consent.granted")
                .subject(user_id.to_owned())
                .client(client_id.to_owned())
                .details(serde_json::json!({"scope": scopes.to_string()})),
        )
        .await?;
        Ok(())
    }

    /// A user's consents.
    pub async fn list_consents(&self, user_id: &str) -> Result<Vec<ConsentView>, ServiceError> {
        let mut out = Vec::new();
        for c in self.store.list_consents(user_id).await? {
            let name = match c.client_id.parse() {
                Ok(id) => self
                    .cached_client(&id)
                    .await?
                    .map(|c| c.name.clone())
                    .unwrap_or_default(),
                Err(_) => String::new(),
            };
            out.push(ConsentView {
                client_name: name,
                scopes: c.scopes.split(' ').map(str::to_owned).collect(),
                client_id: c.client_id,
                granted_at: c.granted_at,
            });
        }
        Ok(out)
    }

    /// Withdraws consent and revokes the client's tokens for this user.
    pub async fn revoke_consent(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<bool, ServiceError> {
        let removed = self.store.delete_consent(user_id, client_id).await?;
        if removed {
            for t in self
                .store
                .list_grant_tokens(GrantScope::User(user_id), self.now())
                .await?
                .into_iter()
                .filter(|t| t.client_id == client_id)
            {
                self.revoke_grant_token(&t).await?;
                self.store
                    .revoke_refresh(GrantScope::Family(&t.family_id), self.now())
                    .await?;
            }
            self.audit(
                AuditEvent::new("consent.revoked")
                    .subject(user_id.to_owned())
                    .client(client_id.to_owned()),
            )
            .await?;
        }
        Ok(removed)
    }

    /// The CSRF token of forms shown to the browser holding `browser_id` (a random
    /// cookie): a keyed digest, so it cannot be made without the server's pepper.
    pub fn csrf_token(&self, browser_id: &str) -> String {
        self.pepper
            .digest(&format!("csrf:{browser_id}"))
            .as_str()
            .to_owned()
    }

    /// Checks a form's CSRF token against the browser's cookie, in constant time.
    pub fn csrf_ok(&self, browser_id: &str, token: &str) -> bool {
        let expected = self.csrf_token(browser_id);
        !browser_id.is_empty()
            && bool::from(subtle::ConstantTimeEq::ct_eq(
                expected.as_bytes(),
                token.as_bytes(),
            ))
    }

    /// Ends a session: its refresh tokens and access tokens are revoked with it.
    pub async fn end_session(&self, session_id: &str) -> Result<bool, ServiceError> {
        let now = self.now();
        let ended = self.store.end_session(session_id, now).await?;
        self.revoke_grants(GrantScope::Session(session_id)).await?;
        if ended {
            self.audit(AuditEvent::new("session.ended").credential(session_id.to_owned()))
                .await?;
            self.security_event(
                crate::events::SESSION_ENDED,
                session_id,
                serde_json::json!({}),
            )
            .await?;
        }
        Ok(ended)
    }

    /// Revokes every session, refresh token, access token issued to a user and
    /// personal access token of `user_id`, at once (password change, disable, reset).
    pub async fn revoke_everything_of(&self, user_id: &str, why: &str) -> Result<(), ServiceError> {
        let now = self.now();
        let sessions = self.store.end_user_sessions(user_id, now).await?;
        let (refresh, access) = self.revoke_grants(GrantScope::User(user_id)).await?;
        let pats = self.store.revoke_user_pats(user_id, now).await?;
        self.pat_cache.clear();
        if pats > 0 {
            self.all_pats_revoked_event(user_id).await?;
        }
        tracing::info!(
            user_id,
            sessions,
            refresh,
            access,
            pats,
            why,
            "revoked everything of a user"
        );
        self.audit(
            AuditEvent::new("user.credentials_revoked")
                .subject(user_id.to_owned())
                .details(serde_json::json!({
                    "why": why, "sessions": sessions, "refresh_tokens": refresh,
                    "access_tokens": access, "personal_access_tokens": pats,
                })),
        )
        .await
    }

    /// Revokes the refresh tokens and access tokens of grants in `scope`; returns
    /// (refresh tokens, access tokens) revoked.
    pub(crate) async fn revoke_grants(
        &self,
        scope: GrantScope<'_>,
    ) -> Result<(u64, u64), ServiceError> {
        let now = self.now();
        let refresh = self.store.revoke_refresh(scope, now).await?;
        let tokens = self.store.list_grant_tokens(scope, now).await?;
        for t in &tokens {
            self.revoke_grant_token(t).await?;
        }
        Ok((refresh, tokens.len() as u64))
    }

    async fn revoke_grant_token(
        &self,
        t: &portcullis_store::GrantTokenRow,
    ) -> Result<(), ServiceError> {
        if t.format == "opaque" {
            self.revoke_opaque_by_id(&t.jti).await
        } else {
            self.deny_jti(&t.jti, &t.client_id, t.expires_at).await
        }
    }
}
