//! Users (minimal: identity and roles), roles (named scope sets) and personal access
//! tokens (`pcpat_…`): a user's own bearer tokens for developer tools, scoped within
//! what the user's roles allow, expiring by policy, revocable one by one or all at
//! once (offboarding). The browser sign-in work adds credentials to users.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use portcullis_core::ids::TokenId;
use portcullis_core::scope::ScopeSet;
use portcullis_core::secret::{OpaqueSecret, PERSONAL_ACCESS_TOKEN_PREFIX};
use portcullis_store::{PatRow, RoleRow, UserRow};
use serde::Serialize;

use crate::{Authority, ServiceError};

/// Most PATs cached for introspection.
pub(crate) const PAT_CACHE_MAX: usize = 100_000;

/// A role as shown.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoleView {
    /// Name.
    pub name: String,
    /// Scopes it allows.
    pub scopes: Vec<String>,
}

/// A user as shown.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserView {
    /// Id.
    pub id: String,
    /// Username.
    pub username: String,
    /// Email.
    pub email: Option<String>,
    /// Roles.
    pub roles: Vec<String>,
    /// Enabled.
    pub enabled: bool,
    /// Created at.
    pub created_at: i64,
    /// The user can sign in with a password.
    pub has_password: bool,
    /// MFA is required at every sign-in.
    pub mfa_required: bool,
    /// An authenticator (TOTP) is enrolled.
    pub mfa_enrolled: bool,
}

fn words(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

impl From<UserRow> for UserView {
    fn from(u: UserRow) -> Self {
        Self {
            roles: words(&u.roles),
            id: u.id,
            username: u.username,
            email: u.email,
            enabled: u.enabled,
            created_at: u.created_at,
            has_password: u.password_hash.is_some(),
            mfa_required: u.mfa_required,
            mfa_enrolled: u.totp_confirmed_at.is_some(),
        }
    }
}

/// A personal access token as shown (never the token).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatView {
    /// Id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Display hint.
    pub hint: String,
    /// Name.
    pub name: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Created at.
    pub created_at: i64,
    /// Expires at (`null`: never).
    pub expires_at: Option<i64>,
    /// Last used at (flushed every few seconds).
    pub last_used_at: Option<i64>,
    /// Address it was last used from, when known.
    pub last_used_ip: Option<String>,
    /// Revoked at.
    pub revoked_at: Option<i64>,
}

impl From<PatRow> for PatView {
    fn from(t: PatRow) -> Self {
        Self {
            scopes: words(&t.scopes),
            id: t.id,
            user_id: t.user_id,
            hint: t.hint,
            name: t.name,
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            last_used_ip: t.last_used_ip,
            revoked_at: t.revoked_at,
        }
    }
}

/// A new personal access token, shown once.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedPat {
    /// The record.
    #[serde(flatten)]
    pub view: PatView,
    /// The token: shown once.
    pub token: String,
}

/// A user to create.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    /// 1 to 64 of `A-Z a-z 0-9 _ . @ -`.
    pub username: String,
    /// Email.
    pub email: Option<String>,
    /// Existing role names.
    pub roles: Vec<String>,
    /// Initial password (hashed with Argon2id; never stored in clear).
    pub password: Option<portcullis_core::secret::SecretString>,
    /// Require MFA at every sign-in.
    pub mfa_required: bool,
}

/// Lifetime of a new personal access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatLifetime {
    /// The policy maximum.
    Default,
    /// This long (at most the policy maximum).
    For(Duration),
    /// No expiry: only where policy allows it.
    Never,
}

/// What introspection needs of a PAT, cached.
#[derive(Debug)]
pub(crate) struct PatRecord {
    pub(crate) id: String,
    pub(crate) user_id: String,
    pub(crate) username: String,
    pub(crate) user_enabled: bool,
    pub(crate) scopes: String,
    pub(crate) created_at: i64,
    pub(crate) expires_at: Option<i64>,
    pub(crate) revoked_at: Option<i64>,
}

impl Authority {
    /// Creates or replaces a role.
    pub async fn put_role(&self, name: &str, scopes: &[String]) -> Result<RoleView, ServiceError> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
        if !ok {
            return Err(ServiceError::invalid(
                "name",
                "1 to 64 of A-Z, a-z, 0-9, '_', '-', '.', ':'",
            ));
        }
        let set = ScopeSet::from_tokens(scopes)
            .map_err(|e| ServiceError::invalid("scope", e.to_string()))?;
        self.store
            .upsert_role(&RoleRow {
                name: name.to_owned(),
                scopes: set.to_string(),
                created_at: self.now(),
            })
            .await?;
        self.pat_cache.clear();
        Ok(RoleView {
            name: name.to_owned(),
            scopes: words(&set.to_string()),
        })
    }

    /// All roles.
    pub async fn list_roles(&self) -> Result<Vec<RoleView>, ServiceError> {
        Ok(self
            .store
            .list_roles()
            .await?
            .into_iter()
            .map(|r| RoleView {
                scopes: words(&r.scopes),
                name: r.name,
            })
            .collect())
    }

    /// Creates a user.
    pub async fn create_user(&self, req: NewUser) -> Result<UserView, ServiceError> {
        let username = req.username.trim().to_owned();
        let ok = !username.is_empty()
            && username.chars().count() <= 64
            && username
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'));
        if !ok {
            return Err(ServiceError::invalid(
                "username",
                "1 to 64 of A-Z, a-z, 0-9, '_', '.', '@', '-'",
            ));
        }
        if let Some(e) = &req.email {
            crate::users::check_email(e)?;
        }
        self.check_roles(&req.roles).await?;
        let password_hash = match &req.password {
            Some(p) => {
                crate::passwords::check_policy(p)?;
                Some(crate::passwords::hash(&self.hasher, p).await?)
            }
            None => None,
        };
        if self.store.get_user(&username).await?.is_some() {
            return Err(ServiceError::Conflict(format!(
                "username {username:?} is taken"
            )));
        }
        let now = self.now();
        let row = UserRow {
            id: TokenId::new().to_string(),
            username,
            email: req.email,
            roles: req.roles.join(" "),
            enabled: true,
            created_at: now,
            updated_at: now,
            password_hash,
            mfa_required: req.mfa_required,
            totp_secret_sealed: None,
            totp_confirmed_at: None,
            totp_last_step: None,
        };
        self.store.insert_user(&row).await?;
        tracing::info!(user_id = %row.id, "user created");
        self.audit(
            crate::audit::AuditEvent::new("user.created")
                .subject(row.id.clone())
                .details(serde_json::json!({"username": row.username})),
        )
        .await?;
        Ok(row.into())
    }

    pub(crate) async fn user_row(&self, id_or_username: &str) -> Result<UserRow, ServiceError> {
        self.store
            .get_user(id_or_username)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("user {id_or_username}")))
    }

    /// One user.
    pub async fn get_user(&self, id_or_username: &str) -> Result<UserView, ServiceError> {
        Ok(self.user_row(id_or_username).await?.into())
    }

    /// All users.
    pub async fn list_users(&self) -> Result<Vec<UserView>, ServiceError> {
        Ok(self
            .store
            .list_users()
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// The scopes a user's roles allow.
    pub(crate) async fn role_scopes(&self, user: &UserRow) -> Result<ScopeSet, ServiceError> {
        let roles = words(&user.roles);
        let mut all = Vec::new();
        for r in self.store.list_roles().await? {
            if roles.contains(&r.name) {
                all.extend(words(&r.scopes));
            }
        }
        Ok(ScopeSet::from_tokens(&all).context("stored role scopes")?)
    }

    /// Creates a personal access token for a user; shown once.
    pub async fn create_pat(
        &self,
        user: &str,
        name: &str,
        scopes: &[String],
        lifetime: PatLifetime,
    ) -> Result<CreatedPat, ServiceError> {
        let user = self.user_row(user).await?;
        if !user.enabled {
            return Err(ServiceError::Conflict(format!(
                "user {} is disabled",
                user.username
            )));
        }
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(ServiceError::invalid(
                "name",
                "must be 1 to 200 characters without control characters",
            ));
        }
        let wanted = ScopeSet::from_tokens(scopes)
            .map_err(|e| ServiceError::invalid("scope", e.to_string()))?;
        let allowed = self.role_scopes(&user).await?;
        if !wanted.is_subset(&allowed) {
            return Err(ServiceError::invalid(
                "scope",
                format!("the user's roles allow only: {allowed}"),
            ));
        }
        let now = self.now();
        let max = self.config.pat_max_ttl;
        let expires_at = match lifetime {
            PatLifetime::Default => Some(now + max.as_secs() as i64),
            PatLifetime::For(d) if d > max => {
                return Err(ServiceError::invalid(
                    "expires_in",
                    format!("must be at most {}s (policy)", max.as_secs()),
                ))
            }
            PatLifetime::For(d) => Some(now + d.as_secs() as i64),
            PatLifetime::Never if self.config.pat_allow_no_expiry => None,
            PatLifetime::Never => {
                return Err(ServiceError::invalid(
                    "expires_in",
                    "tokens without expiry are not allowed by policy",
                ))
            }
        };
        let secret = OpaqueSecret::generate(PERSONAL_ACCESS_TOKEN_PREFIX);
        let row = PatRow {
            id: TokenId::new().to_string(),
            user_id: user.id.clone(),
            digest: self.pepper.digest(secret.expose()).as_str().to_owned(),
            hint: secret.hint(),
            name: name.to_owned(),
            scopes: wanted.to_string(),
            created_at: now,
            expires_at,
            last_used_at: None,
            revoked_at: None,
            last_used_ip: None,
        };
        self.store.insert_pat(&row).await?;
        tracing::info!(pat_id = %row.id, user_id = %user.id, "personal access token created");
        self.audit(
            crate::audit::AuditEvent::new("pat.created")
                .credential(row.id.clone())
                .subject(user.id.clone()),
        )
        .await?;
        Ok(CreatedPat {
            view: row.into(),
            token: secret.expose().to_owned(),
        })
    }

    /// A user's tokens (never the tokens themselves).
    pub async fn list_pats(&self, user: &str) -> Result<Vec<PatView>, ServiceError> {
        let user = self.user_row(user).await?;
        Ok(self
            .store
            .list_pats(&user.id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Revokes one token, at once (idempotent).
    pub async fn revoke_pat(&self, id: &str) -> Result<PatView, ServiceError> {
        if self.store.get_pat(id).await?.is_none() {
            return Err(ServiceError::NotFound(format!(
                "personal access token {id}"
            )));
        }
        self.store.revoke_pat(id, self.now()).await?;
        self.pat_cache.clear();
        tracing::info!(pat_id = %id, "personal access token revoked");
        self.audit(crate::audit::AuditEvent::new("pat.revoked").credential(id))
            .await?;
        self.security_event(
            crate::events::KEY_REVOKED,
            id,
            serde_json::json!({"credential_type": "personal_access_token"}),
        )
        .await?;
        Ok(self
            .store
            .get_pat(id)
            .await?
            .context("revoked token vanished")?
            .into())
    }

    /// The feed event for "every personal access token of this user": verifiers drop
    /// every cached answer about the user's tokens.
    pub(crate) async fn all_pats_revoked_event(&self, user_id: &str) -> Result<(), ServiceError> {
        self.security_event(
            crate::events::KEY_REVOKED,
            user_id,
            serde_json::json!({"credential_type": "personal_access_token", "all_of_subject": true}),
        )
        .await
    }

    /// Offboarding: revokes every token of a user in one call, at once. Returns how many.
    pub async fn revoke_all_pats(&self, user: &str) -> Result<u64, ServiceError> {
        let user = self.user_row(user).await?;
        let n = self.store.revoke_user_pats(&user.id, self.now()).await?;
        self.pat_cache.clear();
        if n > 0 {
            self.all_pats_revoked_event(&user.id).await?;
        }
        tracing::info!(user_id = %user.id, revoked = n, "all personal access tokens of a user revoked");
        self.audit(
            crate::audit::AuditEvent::new("pat.revoked_all")
                .subject(user.id.clone())
                .details(serde_json::json!({"revoked": n})),
        )
        .await?;
        Ok(n)
    }

    /// A PAT's record by digest, from the cache or the store.
    pub(crate) async fn pat_record(
        &self,
        digest: &str,
    ) -> Result<Option<Arc<PatRecord>>, ServiceError> {
        let generation = match self.pat_cache.get(digest) {
            Ok(hit) => return Ok(Some(hit)),
            Err(g) => g,
        };
        let Some(t) = self.store.find_pat(digest).await? else {
            return Ok(None);
        };
        let Some(user) = self.store.get_user(&t.user_id).await? else {
            return Ok(None);
        };
        let rec = Arc::new(PatRecord {
            id: t.id,
            user_id: user.id,
            username: user.username,
            user_enabled: user.enabled,
            scopes: t.scopes,
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
        });
        self.pat_cache
            .insert(generation, digest.to_owned(), rec.clone());
        Ok(Some(rec))
    }

    pub(crate) fn note_pat_use(&self, id: &str, now: i64, ip: Option<std::net::IpAddr>) {
        let mut g = match self.pat_usage.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let entry = g.entry(id.to_owned()).or_insert((now, None));
        entry.0 = now;
        if let Some(ip) = ip {
            entry.1 = Some(ip.to_string());
        }
    }

    /// Writes PAT last-use times gathered since the previous flush.
    pub async fn flush_pat_usage(&self) -> Result<(), ServiceError> {
        let batch: Vec<(String, i64, Option<String>)> = {
            let mut g = match self.pat_usage.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            std::mem::take(&mut *g)
                .into_iter()
                .map(|(id, (at, ip))| (id, at, ip))
                .collect()
        };
        Ok(self.store.touch_pats(&batch).await?)
    }
}

/// The user behind a live personal access token (self-service calls).
#[derive(Debug, Clone)]
pub struct PatPrincipal {
    /// User id.
    pub user_id: String,
    /// The token used.
    pub token_id: String,
}

impl Authority {
    /// Authenticates a bearer personal access token; `None` unless it is live.
    pub async fn authenticate_pat(
        &self,
        token: &portcullis_core::secret::SecretString,
        ip: Option<std::net::IpAddr>,
    ) -> Result<Option<PatPrincipal>, ServiceError> {
        let Ok(secret) = OpaqueSecret::parse(token.expose(), PERSONAL_ACCESS_TOKEN_PREFIX) else {
            return Ok(None);
        };
        let digest = self.pepper.digest(secret.expose());
        let Some(rec) = self.pat_record(digest.as_str()).await? else {
            return Ok(None);
        };
        let now = self.now();
        if rec.revoked_at.is_some() || !rec.user_enabled || rec.expires_at.is_some_and(|e| e <= now)
        {
            return Ok(None);
        }
        self.note_pat_use(&rec.id, now, ip);
        Ok(Some(PatPrincipal {
            user_id: rec.user_id.clone(),
            token_id: rec.id.clone(),
        }))
    }

    /// Self-service: revokes one of the caller's own tokens. Another user's token is
    /// "not found", exactly like an unknown id.
    pub async fn revoke_own_pat(
        &self,
        me: &PatPrincipal,
        id: &str,
    ) -> Result<PatView, ServiceError> {
        match self.store.get_pat(id).await? {
            Some(t) if t.user_id == me.user_id => self.revoke_pat(id).await,
            _ => Err(ServiceError::NotFound(format!(
                "personal access token {id}"
            ))),
        }
    }
}
