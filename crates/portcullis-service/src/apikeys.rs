//! Keyspaces and API keys, and the verification hot path.
//!
//! A keyspace groups keys under one prefix (`acme_live_…`) with allowed scopes,
//! default scopes, a default rate limit and lifetimes. A key is stored as
//! HMAC-SHA256 under the pepper plus a display hint; the secret is shown once.
//!
//! Verification (`verify_api_key`) refuses malformed keys and bad checksums before
//! any lookup, serves repeat verifications from a cache keyed by the digest
//! (revoke and update drop the entry at once; other processes' changes are seen at
//! the next change poll), writes to the database only to take a use of a
//! quota-limited key (atomically, so the quota is exact under concurrency), and
//! records last-use times in memory for a batched flush.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use portcullis_core::ids::TokenId;
use portcullis_core::keys::SecretDigest;
use portcullis_core::limits::{AllowList, RateLimit};
use portcullis_core::scope::ScopeSet;
use portcullis_core::secret::{validate_prefix, OpaqueSecret, RESERVED_PREFIXES};
use portcullis_store::{ApiKeyRow, KeyspaceRow, UseOutcome};
use serde::Serialize;
use serde_json::Value;

use crate::{Authority, ServiceError};

/// Largest metadata object, serialized.
pub const MAX_META_BYTES: usize = 4 * 1024;
/// Largest `uses` quota.
pub const MAX_USES: i64 = 1_000_000_000_000;
/// Most keys cached for verification.
pub(crate) const KEY_CACHE_MAX: usize = 200_000;

fn opt_secs(d: Option<Duration>) -> Option<i64> {
    d.map(|d| d.as_secs() as i64)
}

/// A keyspace as shown.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyspaceView {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Key prefix.
    pub prefix: String,
    /// Scopes keys may have.
    pub scopes: Vec<String>,
    /// Scopes of keys created without any.
    pub default_scopes: Vec<String>,
    /// Default rate limit of new keys.
    pub rate_limit: Option<String>,
    /// Default lifetime of new keys, seconds.
    pub default_ttl: Option<i64>,
    /// Longest lifetime, seconds.
    pub max_ttl: Option<i64>,
    /// Created at.
    pub created_at: i64,
    /// Updated at.
    pub updated_at: i64,
}

fn words(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

impl From<KeyspaceRow> for KeyspaceView {
    fn from(r: KeyspaceRow) -> Self {
        Self {
            scopes: words(&r.scopes),
            default_scopes: words(&r.default_scopes),
            id: r.id,
            name: r.name,
            prefix: r.prefix,
            rate_limit: r.rate_limit,
            default_ttl: r.default_ttl,
            max_ttl: r.max_ttl,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A keyspace to create.
#[derive(Debug, Clone, Default)]
pub struct NewKeyspace {
    /// Unique name: 1 to 64 of `A-Z a-z 0-9 _ . -`.
    pub name: String,
    /// Unique prefix: lowercase letters, digits, `_`, starting with a letter.
    pub prefix: String,
    /// Scopes keys may have.
    pub scopes: Vec<String>,
    /// Default scopes (a subset of `scopes`; empty when not given: least privilege).
    pub default_scopes: Vec<String>,
    /// Default rate limit (`N/second|minute|hour|day`).
    pub rate_limit: Option<String>,
    /// Default key lifetime.
    pub default_ttl: Option<Duration>,
    /// Maximum key lifetime.
    pub max_ttl: Option<Duration>,
}

/// Changes to a keyspace; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct KeyspaceUpdate {
    /// New scopes.
    pub scopes: Option<Vec<String>>,
    /// New default scopes.
    pub default_scopes: Option<Vec<String>>,
    /// New default rate limit; `Some(None)` removes it.
    pub rate_limit: Option<Option<String>>,
    /// New default lifetime; `Some(None)` removes it.
    pub default_ttl: Option<Option<Duration>>,
    /// New maximum lifetime; `Some(None)` removes it.
    pub max_ttl: Option<Option<Duration>>,
}

/// An API key as shown (never the secret).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyView {
    /// Id.
    pub id: String,
    /// Keyspace id.
    pub keyspace_id: String,
    /// Display hint (`acme_live_…wxyz`).
    pub hint: String,
    /// Owner.
    pub owner: String,
    /// Name.
    pub name: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Metadata.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub meta: Value,
    /// Uses left (`null`: unlimited).
    pub remaining: Option<i64>,
    /// Rate limit.
    pub rate_limit: Option<String>,
    /// IP allow list (empty: any).
    pub allow_ips: Vec<String>,
    /// Enabled.
    pub enabled: bool,
    /// Created at.
    pub created_at: i64,
    /// Updated at.
    pub updated_at: i64,
    /// Expires at.
    pub expires_at: Option<i64>,
    /// Last verified at (flushed every few seconds).
    pub last_used_at: Option<i64>,
    /// Revoked at.
    pub revoked_at: Option<i64>,
}

impl TryFrom<ApiKeyRow> for ApiKeyView {
    type Error = ServiceError;
    fn try_from(r: ApiKeyRow) -> Result<Self, ServiceError> {
        Ok(Self {
            meta: serde_json::from_str(&r.meta).context("stored key metadata")?,
            allow_ips: serde_json::from_str(&r.allow_ips).context("stored allow list")?,
            scopes: words(&r.scopes),
            id: r.id,
            keyspace_id: r.keyspace_id,
            hint: r.hint,
            owner: r.owner,
            name: r.name,
            remaining: r.remaining,
            rate_limit: r.rate_limit,
            enabled: r.enabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
        })
    }
}

/// An API key to create.
#[derive(Debug, Clone, Default)]
pub struct NewApiKey {
    /// Keyspace id or name.
    pub keyspace: String,
    /// Owner (free-form external id, 1 to 256 characters).
    pub owner: String,
    /// Name.
    pub name: Option<String>,
    /// Scopes (within the keyspace's); the keyspace's defaults when `None`.
    pub scopes: Option<Vec<String>>,
    /// Metadata: a JSON object of at most 4 KiB.
    pub meta: Option<Value>,
    /// Lifetime; the keyspace default when `None`.
    pub expires_in: Option<Duration>,
    /// Absolute expiry (seconds since the epoch), instead of `expires_in`.
    pub expires_at: Option<i64>,
    /// Uses allowed (quota).
    pub uses: Option<i64>,
    /// Rate limit; the keyspace default when `None`.
    pub rate_limit: Option<String>,
    /// IP allow list (CIDRs).
    pub allow_ips: Vec<String>,
}

/// Changes to a key; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ApiKeyUpdate {
    /// New name.
    pub name: Option<String>,
    /// New scopes.
    pub scopes: Option<Vec<String>>,
    /// New metadata.
    pub meta: Option<Value>,
    /// New remaining uses; `Some(None)` removes the quota.
    pub uses: Option<Option<i64>>,
    /// New rate limit; `Some(None)` removes it.
    pub rate_limit: Option<Option<String>>,
    /// New allow list.
    pub allow_ips: Option<Vec<String>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// A new API key, shown once.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedApiKey {
    /// The record.
    #[serde(flatten)]
    pub view: ApiKeyView,
    /// The key: shown once, stored only as a keyed hash.
    pub key: String,
}

/// Verification outcome codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VerifyCode {
    /// The key may be used.
    Valid,
    /// Unknown, malformed, or bad checksum.
    NotFound,
    /// Past its expiry.
    Expired,
    /// Revoked.
    Revoked,
    /// Disabled.
    Disabled,
    /// Over its rate limit.
    RateLimited,
    /// No uses left.
    UsageExceeded,
    /// The caller's IP is not on the key's allow list.
    ForbiddenIp,
    /// A required scope is missing.
    InsufficientScope,
}

/// Rate-limit state reported with a verification.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RateLimitState {
    /// Requests per period.
    pub limit: u32,
    /// The period, seconds.
    pub window: u32,
    /// Requests that could still pass now.
    pub remaining: u32,
    /// Unix time (ms) when the limit is replenished (or the next request passes).
    pub reset: u64,
}

/// A verification request.
#[derive(Debug, Clone, Default)]
pub struct VerifyRequest {
    /// The presented key.
    pub key: String,
    /// Scopes the caller requires.
    pub scopes: Vec<String>,
    /// The end client's IP, for keys with an allow list.
    pub ip: Option<IpAddr>,
}

/// A verification answer.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyResponse {
    /// True only for `VALID`.
    pub valid: bool,
    /// Why.
    pub code: VerifyCode,
    /// Key id (absent for `NOT_FOUND`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Owner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The key's scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub meta: Option<Value>,
    /// Expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
    /// Uses left after this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<i64>,
    /// Rate-limit state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratelimit: Option<RateLimitState>,
}

impl VerifyResponse {
    fn not_found() -> Self {
        Self {
            valid: false,
            code: VerifyCode::NotFound,
            key_id: None,
            owner: None,
            scopes: None,
            meta: None,
            expires: None,
            remaining: None,
            ratelimit: None,
        }
    }
}

/// What verification needs of a key, parsed once and cached.
#[derive(Debug)]
pub(crate) struct KeyRecord {
    pub(crate) id: String,
    digest: [u8; 32],
    previous_digest: Option<[u8; 32]>,
    previous_expires_at: Option<i64>,
    pub(crate) owner: String,
    pub(crate) scope_list: Vec<String>,
    meta: Value,
    quota: bool,
    pub(crate) remaining: Option<i64>,
    rate_limit: Option<RateLimit>,
    allow: AllowList,
    pub(crate) enabled: bool,
    pub(crate) expires_at: Option<i64>,
    pub(crate) revoked_at: Option<i64>,
    pub(crate) created_at: i64,
}

impl KeyRecord {
    /// The secret presented is the one replaced by a roll, and its grace period is over.
    pub(crate) fn is_stale_previous(&self, digest: &[u8; 32], now: i64) -> bool {
        self.digest != *digest
            && self.previous_digest.as_ref() == Some(digest)
            && self.previous_expires_at.is_none_or(|t| t <= now)
    }
}

impl KeyRecord {
    fn from_row(r: &ApiKeyRow) -> Result<Self, ServiceError> {
        let ips: Vec<String> = serde_json::from_str(&r.allow_ips).context("stored allow list")?;
        Ok(Self {
            id: r.id.clone(),
            digest: SecretDigest::from_stored(r.digest.clone()).to_bytes(),
            previous_digest: r
                .previous_digest
                .clone()
                .map(|d| SecretDigest::from_stored(d).to_bytes()),
            previous_expires_at: r.previous_expires_at,
            owner: r.owner.clone(),
            scope_list: words(&r.scopes),
            meta: serde_json::from_str(&r.meta).context("stored key metadata")?,
            quota: r.remaining.is_some(),
            remaining: r.remaining,
            rate_limit: r
                .rate_limit
                .as_deref()
                .map(str::parse)
                .transpose()
                .context("stored rate limit")?,
            allow: AllowList::parse(&ips).context("stored allow list")?,
            enabled: r.enabled,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            created_at: r.created_at,
        })
    }
}

fn parse_scopes(field: &'static str, s: &[String]) -> Result<ScopeSet, ServiceError> {
    ScopeSet::from_tokens(s).map_err(|e| ServiceError::invalid(field, e.to_string()))
}

fn parse_rate(field: &'static str, s: &str) -> Result<RateLimit, ServiceError> {
    s.parse::<RateLimit>()
        .map_err(|e| ServiceError::invalid(field, e.to_string()))
}

fn parse_meta(meta: Option<Value>) -> Result<String, ServiceError> {
    let meta = meta.unwrap_or_else(|| Value::Object(Default::default()));
    if !meta.is_object() {
        return Err(ServiceError::invalid("meta", "must be a JSON object"));
    }
    let text = serde_json::to_string(&meta).context("json")?;
    if text.len() > MAX_META_BYTES {
        return Err(ServiceError::invalid(
            "meta",
            format!("must be at most {MAX_META_BYTES} bytes as JSON"),
        ));
    }
    Ok(text)
}

fn parse_uses(uses: i64) -> Result<i64, ServiceError> {
    if !(1..=MAX_USES).contains(&uses) {
        return Err(ServiceError::invalid(
            "uses",
            format!("must be between 1 and {MAX_USES}"),
        ));
    }
    Ok(uses)
}

fn check_text(
    field: &'static str,
    s: &str,
    max: usize,
    allow_empty: bool,
) -> Result<String, ServiceError> {
    let t = s.trim();
    if (!allow_empty && t.is_empty()) || t.chars().count() > max || t.chars().any(char::is_control)
    {
        let min = if allow_empty { 0 } else { 1 };
        return Err(ServiceError::invalid(
            field,
            format!("must be {min} to {max} characters without control characters"),
        ));
    }
    Ok(t.to_owned())
}

impl Authority {
    /// Creates a keyspace.
    pub async fn create_keyspace(&self, req: NewKeyspace) -> Result<KeyspaceView, ServiceError> {
        let name = check_text("name", &req.name, 64, false)?;
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(ServiceError::invalid(
                "name",
                "use only A-Z, a-z, 0-9, '_', '.' and '-'",
            ));
        }
        validate_prefix(&req.prefix).map_err(|e| ServiceError::invalid("prefix", e.to_string()))?;
        if RESERVED_PREFIXES.contains(&req.prefix.as_str()) {
            return Err(ServiceError::invalid(
                "prefix",
                format!("{:?} is reserved by Portcullis", req.prefix),
            ));
        }
        let scopes = parse_scopes("scope", &req.scopes)?;
        let default_scopes = parse_scopes("default_scope", &req.default_scopes)?;
        if !default_scopes.is_subset(&scopes) {
            return Err(ServiceError::invalid(
                "default_scope",
                "default scopes must be among the keyspace's scopes",
            ));
        }
        let rate_limit = req
            .rate_limit
            .as_deref()
            .map(|r| parse_rate("rate_limit", r))
            .transpose()?;
        if let (Some(d), Some(m)) = (req.default_ttl, req.max_ttl) {
            if d > m {
                return Err(ServiceError::invalid(
                    "default_ttl",
                    "must not exceed max_ttl",
                ));
            }
        }
        if self.store.get_keyspace(&name).await?.is_some() {
            return Err(ServiceError::Conflict(format!(
                "a keyspace named {name:?} exists"
            )));
        }
        if self
            .store
            .list_keyspaces()
            .await?
            .iter()
            .any(|k| k.prefix == req.prefix)
        {
            return Err(ServiceError::Conflict(format!(
                "prefix {:?} is taken by another keyspace",
                req.prefix
            )));
        }
        let now = self.now();
        let row = KeyspaceRow {
            id: TokenId::new().to_string(),
            name,
            prefix: req.prefix,
            scopes: scopes.to_string(),
            default_scopes: default_scopes.to_string(),
            rate_limit: rate_limit.map(|r| r.to_string()),
            default_ttl: opt_secs(req.default_ttl),
            max_ttl: opt_secs(req.max_ttl),
            created_at: now,
            updated_at: now,
        };
        self.store
            .insert_keyspace(&row)
            .await
            .map_err(|e| match e {
                portcullis_store::StoreError::Conflict { .. } => {
                    ServiceError::Conflict("keyspace name or prefix taken".into())
                }
                other => other.into(),
            })?;
        tracing::info!(keyspace_id = %row.id, prefix = %row.prefix, "keyspace created");
        self.audit(
            crate::audit::AuditEvent::new("keyspace.created")
                .subject(row.id.clone())
                .details(serde_json::json!({"name": row.name, "prefix": row.prefix})),
        )
        .await?;
        Ok(row.into())
    }

    async fn keyspace_row(&self, id_or_name: &str) -> Result<KeyspaceRow, ServiceError> {
        self.store
            .get_keyspace(id_or_name)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("keyspace {id_or_name}")))
    }

    /// One keyspace by id or name.
    pub async fn get_keyspace(&self, id_or_name: &str) -> Result<KeyspaceView, ServiceError> {
        Ok(self.keyspace_row(id_or_name).await?.into())
    }

    /// All keyspaces.
    pub async fn list_keyspaces(&self) -> Result<Vec<KeyspaceView>, ServiceError> {
        Ok(self
            .store
            .list_keyspaces()
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Changes a keyspace's scopes, defaults and lifetimes (not its name or prefix).
    pub async fn update_keyspace(
        &self,
        id_or_name: &str,
        u: KeyspaceUpdate,
    ) -> Result<KeyspaceView, ServiceError> {
        let mut row = self.keyspace_row(id_or_name).await?;
        if let Some(s) = &u.scopes {
            row.scopes = parse_scopes("scope", s)?.to_string();
        }
        if let Some(s) = &u.default_scopes {
            row.default_scopes = parse_scopes("default_scope", s)?.to_string();
        }
        let scopes = ScopeSet::parse(&row.scopes).context("scopes")?;
        if !ScopeSet::parse(&row.default_scopes)
            .context("scopes")?
            .is_subset(&scopes)
        {
            return Err(ServiceError::invalid(
                "default_scope",
                "default scopes must be among the keyspace's scopes",
            ));
        }
        if let Some(r) = u.rate_limit {
            row.rate_limit = r
                .as_deref()
                .map(|r| parse_rate("rate_limit", r))
                .transpose()?
                .map(|r| r.to_string());
        }
        if let Some(d) = u.default_ttl {
            row.default_ttl = opt_secs(d);
        }
        if let Some(m) = u.max_ttl {
            row.max_ttl = opt_secs(m);
        }
        if let (Some(d), Some(m)) = (row.default_ttl, row.max_ttl) {
            if d > m {
                return Err(ServiceError::invalid(
                    "default_ttl",
                    "must not exceed max_ttl",
                ));
            }
        }
        row.updated_at = self.now();
        self.store.update_keyspace(&row).await?;
        Ok(row.into())
    }

    /// Deletes a keyspace that holds no keys.
    pub async fn delete_keyspace(&self, id_or_name: &str) -> Result<(), ServiceError> {
        let row = self.keyspace_row(id_or_name).await?;
        let n = self.store.count_keys(&row.id).await?;
        if n > 0 {
            return Err(ServiceError::Conflict(format!(
                "keyspace {} still holds {n} keys; delete or revoke them first",
                row.name
            )));
        }
        self.store.delete_keyspace(&row.id).await?;
        tracing::info!(keyspace_id = %row.id, "keyspace deleted");
        self.audit(crate::audit::AuditEvent::new("keyspace.deleted").subject(row.id.clone()))
            .await?;
        Ok(())
    }

    /// Creates an API key; the key is returned once.
    pub async fn create_api_key(&self, req: NewApiKey) -> Result<CreatedApiKey, ServiceError> {
        let ks = self.keyspace_row(&req.keyspace).await?;
        let owner = check_text("owner", &req.owner, 256, false)?;
        let name = check_text("name", req.name.as_deref().unwrap_or(""), 200, true)?;
        let allowed = ScopeSet::parse(&ks.scopes).context("keyspace scopes")?;
        let scopes = match &req.scopes {
            Some(s) => parse_scopes("scope", s)?,
            None => ScopeSet::parse(&ks.default_scopes).context("keyspace scopes")?,
        };
        if !scopes.is_subset(&allowed) {
            return Err(ServiceError::invalid(
                "scope",
                format!("scopes must be among the keyspace's: {allowed}"),
            ));
        }
        let meta = parse_meta(req.meta)?;
        let now = self.now();
        let expires_at = match (req.expires_in, req.expires_at) {
            (Some(_), Some(_)) => {
                return Err(ServiceError::invalid(
                    "expires_at",
                    "give expires_in or expires_at, not both",
                ))
            }
            (Some(d), None) => Some(now + d.as_secs() as i64),
            (None, Some(at)) if at <= now => {
                return Err(ServiceError::invalid("expires_at", "is in the past"))
            }
            (None, Some(at)) => Some(at),
            (None, None) => ks.default_ttl.map(|t| now + t),
        };
        if let Some(max) = ks.max_ttl {
            match expires_at {
                Some(at) if at - now <= max => {}
                _ => {
                    return Err(ServiceError::invalid(
                        "expires_in",
                        format!("keys of keyspace {} must expire within {max} s", ks.name),
                    ))
                }
            }
        }
        let remaining = req.uses.map(parse_uses).transpose()?;
        let rate_limit = match req.rate_limit.as_deref() {
            Some(r) => Some(parse_rate("rate_limit", r)?),
            None => ks
                .rate_limit
                .as_deref()
                .map(|r| parse_rate("rate_limit", r))
                .transpose()?,
        };
        let allow = AllowList::parse(&req.allow_ips)
            .map_err(|e| ServiceError::invalid("allow_ip", e.to_string()))?;
        let secret = OpaqueSecret::generate(&ks.prefix);
        let row = ApiKeyRow {
            id: TokenId::new().to_string(),
            keyspace_id: ks.id.clone(),
            digest: self.pepper.digest(secret.expose()).as_str().to_owned(),
            hint: secret.hint(),
            owner,
            name,
            scopes: scopes.to_string(),
            meta,
            remaining,
            rate_limit: rate_limit.map(|r| r.to_string()),
            allow_ips: serde_json::to_string(&allow.to_strings()).context("json")?,
            enabled: true,
            created_at: now,
            updated_at: now,
            expires_at,
            last_used_at: None,
            revoked_at: None,
            previous_digest: None,
            previous_expires_at: None,
        };
        self.store.insert_api_key(&row).await?;
        tracing::info!(key_id = %row.id, keyspace_id = %ks.id, "api key created");
        self.audit(
            crate::audit::AuditEvent::new("apikey.created")
                .credential(row.id.clone())
                .subject(row.owner.clone())
                .details(serde_json::json!({"keyspace_id": ks.id})),
        )
        .await?;
        Ok(CreatedApiKey {
            view: row.try_into()?,
            key: secret.expose().to_owned(),
        })
    }

    async fn api_key_row(&self, id: &str) -> Result<ApiKeyRow, ServiceError> {
        self.store
            .get_api_key(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("api key {id}")))
    }

    /// One key.
    pub async fn get_api_key(&self, id: &str) -> Result<ApiKeyView, ServiceError> {
        self.api_key_row(id).await?.try_into()
    }

    /// Keys, optionally of one keyspace (id or name) and/or owner. Never the secrets.
    pub async fn list_api_keys(
        &self,
        keyspace: Option<&str>,
        owner: Option<&str>,
    ) -> Result<Vec<ApiKeyView>, ServiceError> {
        let ks = match keyspace {
            Some(k) => Some(self.keyspace_row(k).await?.id),
            None => None,
        };
        self.store
            .list_api_keys(ks.as_deref(), owner)
            .await?
            .into_iter()
            .map(TryInto::try_into)
            .collect()
    }

    /// Updates a key; effective at once for verification.
    pub async fn update_api_key(
        &self,
        id: &str,
        u: ApiKeyUpdate,
    ) -> Result<ApiKeyView, ServiceError> {
        let mut row = self.api_key_row(id).await?;
        if row.revoked_at.is_some() {
            return Err(ServiceError::Conflict(format!("api key {id} is revoked")));
        }
        let ks = self.keyspace_row(&row.keyspace_id).await?;
        if let Some(n) = &u.name {
            row.name = check_text("name", n, 200, true)?;
        }
        if let Some(s) = &u.scopes {
            let scopes = parse_scopes("scope", s)?;
            if !scopes.is_subset(&ScopeSet::parse(&ks.scopes).context("keyspace scopes")?) {
                return Err(ServiceError::invalid(
                    "scope",
                    "scopes must be among the keyspace's",
                ));
            }
            row.scopes = scopes.to_string();
        }
        if let Some(m) = u.meta {
            row.meta = parse_meta(Some(m))?;
        }
        if let Some(uses) = u.uses {
            row.remaining = uses.map(parse_uses).transpose()?;
        }
        if let Some(r) = u.rate_limit {
            row.rate_limit = r
                .as_deref()
                .map(|r| parse_rate("rate_limit", r))
                .transpose()?
                .map(|r| r.to_string());
        }
        if let Some(ips) = &u.allow_ips {
            let allow = AllowList::parse(ips)
                .map_err(|e| ServiceError::invalid("allow_ip", e.to_string()))?;
            row.allow_ips = serde_json::to_string(&allow.to_strings()).context("json")?;
        }
        if let Some(e) = u.enabled {
            row.enabled = e;
        }
        row.updated_at = self.now();
        self.store.update_api_key(&row).await?;
        self.key_cache
            .remove(&SecretDigest::from_stored(row.digest.clone()).to_bytes());
        self.forget_rate_state(&row.id).await;
        tracing::info!(key_id = %row.id, "api key updated");
        self.audit(
            crate::audit::AuditEvent::new("apikey.updated")
                .credential(row.id.clone())
                .subject(row.owner.clone()),
        )
        .await?;
        row.try_into()
    }

    async fn key_revoked_event(&self, id: &str) -> Result<(), ServiceError> {
        self.security_event(
            crate::events::KEY_REVOKED,
            id,
            serde_json::json!({"credential_type": "api_key"}),
        )
        .await
    }

    /// Revokes a key at once. Revoking a revoked key is a no-op.
    pub async fn revoke_api_key(&self, id: &str) -> Result<ApiKeyView, ServiceError> {
        let row = self.api_key_row(id).await?;
        if self.store.revoke_api_key(id, self.now()).await? {
            tracing::info!(key_id = %id, "api key revoked");
            self.audit(
                crate::audit::AuditEvent::new("apikey.revoked")
                    .credential(id)
                    .subject(row.owner.clone()),
            )
            .await?;
            self.key_revoked_event(id).await?;
        }
        self.key_cache
            .remove(&SecretDigest::from_stored(row.digest.clone()).to_bytes());
        self.get_api_key(id).await
    }

    /// Deletes a key for good (and its usage counts); it stops verifying at once.
    pub async fn delete_api_key(&self, id: &str) -> Result<(), ServiceError> {
        let row = self.api_key_row(id).await?;
        self.store.delete_api_key(id).await?;
        self.key_cache.clear();
        self.forget_rate_state(&row.id).await;
        tracing::info!(key_id = %id, "api key deleted");
        self.audit(
            crate::audit::AuditEvent::new("apikey.deleted")
                .credential(id)
                .subject(row.owner.clone()),
        )
        .await?;
        self.key_revoked_event(id).await?;
        Ok(())
    }

    async fn forget_rate_state(&self, key_id: &str) {
        self.rate_store.forget(&format!("key:{key_id}")).await;
    }

    async fn check_rate(&self, key_id: &str, rl: RateLimit) -> (bool, RateLimitState) {
        let now = crate::ratelimit::now_us();
        let d = self
            .rate_store
            .check(&format!("key:{key_id}"), rl, now)
            .await;
        (
            d.allowed,
            RateLimitState {
                limit: rl.limit,
                window: rl.period_secs,
                remaining: d.remaining,
                reset: now / 1_000 + d.reset_after_ms,
            },
        )
    }

    fn note_use(&self, key_id: &str, now: i64) {
        let mut g = match self.key_usage.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.insert(key_id.to_owned(), now);
    }

    /// Writes last-use times and verification counts gathered since the previous
    /// flush (each in one transaction). Returns the number of keys touched.
    pub async fn flush_key_usage(&self) -> Result<usize, ServiceError> {
        let batch: Vec<(String, i64)> = {
            let mut g = match self.key_usage.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            std::mem::take(&mut *g).into_iter().collect()
        };
        let counts: Vec<(String, i64, String, i64)> = {
            let mut g = match self.usage_counts.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            std::mem::take(&mut *g)
                .into_iter()
                .map(|((id, bucket, code), n)| (id, bucket, code.as_str().to_owned(), n))
                .collect()
        };
        self.store.touch_api_keys(&batch).await?;
        self.store.add_key_usage(&counts).await?;
        Ok(batch.len())
    }

    fn count_usage(&self, key_id: &str, now: i64, code: VerifyCode) {
        let mut g = match self.usage_counts.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *g.entry((key_id.to_owned(), now - now.rem_euclid(60), code))
            .or_insert(0) += 1;
    }

    /// The verification hot path.
    pub async fn verify_api_key(
        &self,
        req: &VerifyRequest,
    ) -> Result<VerifyResponse, ServiceError> {
        // Format and checksum first: junk never reaches the cache or the database.
        let Ok(secret) = OpaqueSecret::parse_any(req.key.trim()) else {
            self.observe_failure(req.ip, None).await?;
            return Ok(VerifyResponse::not_found());
        };
        let digest = self.pepper.digest(secret.expose());
        let Some(rec) = self.key_record(&digest).await? else {
            self.observe_failure(req.ip, None).await?;
            return Ok(VerifyResponse::not_found());
        };
        self.verify_found_key(&rec, &digest.to_bytes(), req).await
    }

    /// [`Self::verify_api_key`] once the key's record is found by the digest of the
    /// presented secret: every check, usage counting, anomaly bookkeeping and the
    /// audit of refusals.
    pub(crate) async fn verify_found_key(
        &self,
        rec: &Arc<KeyRecord>,
        digest: &[u8; 32],
        req: &VerifyRequest,
    ) -> Result<VerifyResponse, ServiceError> {
        let now = self.now();
        let answer = self.verify_record(rec, digest, req, now).await?;
        self.count_usage(&rec.id, now, answer.code);
        if answer.code == VerifyCode::Valid {
            self.observe_use(
                &crate::anomaly::CredentialRef::ApiKey(rec.id.clone()),
                req.ip,
            )
            .await?;
        } else {
            // Successes are counted in key_usage; refusals are also audited (sampled).
            self.audit_refusal(
                crate::audit::AuditEvent::new("apikey.verify_refused")
                    .credential(rec.id.clone())
                    .subject(rec.owner.clone())
                    .outcome(crate::audit::Outcome::Refused, answer.code.as_str()),
                &rec.id,
            );
        }
        Ok(answer)
    }

    /// A key's verification record by the digest of a presented secret (current or rolled-over).
    pub(crate) async fn key_record(
        &self,
        digest: &SecretDigest,
    ) -> Result<Option<Arc<KeyRecord>>, ServiceError> {
        let raw = digest.to_bytes();
        match self.key_cache.get(&raw) {
            Ok(hit) => Ok(Some(hit)),
            Err(generation) => {
                let Some(row) = self.store.find_api_key(digest.as_str()).await? else {
                    return Ok(None);
                };
                let rec = Arc::new(KeyRecord::from_row(&row)?);
                self.key_cache.insert(generation, raw, rec.clone());
                Ok(Some(rec))
            }
        }
    }

    async fn verify_record(
        &self,
        rec: &KeyRecord,
        digest: &[u8; 32],
        req: &VerifyRequest,
        now: i64,
    ) -> Result<VerifyResponse, ServiceError> {
        let mut answer = VerifyResponse {
            valid: false,
            code: VerifyCode::Valid,
            key_id: Some(rec.id.clone()),
            owner: Some(rec.owner.clone()),
            scopes: Some(rec.scope_list.clone()),
            meta: Some(rec.meta.clone()),
            expires: rec.expires_at,
            remaining: rec.remaining,
            ratelimit: None,
        };
        let refuse = |mut a: VerifyResponse, code| {
            a.code = code;
            Ok(a)
        };
        if rec.revoked_at.is_some() {
            return refuse(answer, VerifyCode::Revoked);
        }
        if rec.expires_at.is_some_and(|e| e <= now) || rec.is_stale_previous(digest, now) {
            return refuse(answer, VerifyCode::Expired);
        }
        if !rec.enabled {
            return refuse(answer, VerifyCode::Disabled);
        }
        if !rec.allow.is_empty() && !req.ip.is_some_and(|ip| rec.allow.allows(ip)) {
            return refuse(answer, VerifyCode::ForbiddenIp);
        }
        if !req.scopes.iter().all(|s| rec.scope_list.contains(s)) {
            return refuse(answer, VerifyCode::InsufficientScope);
        }
        if let Some(rl) = rec.rate_limit {
            let (ok, state) = self.check_rate(&rec.id, rl).await;
            answer.ratelimit = Some(state);
            if !ok {
                return refuse(answer, VerifyCode::RateLimited);
            }
        }
        if rec.quota {
            match self.store.take_api_key_use(&rec.id).await? {
                UseOutcome::Taken(left) => answer.remaining = left,
                UseOutcome::Exhausted => {
                    answer.remaining = Some(0);
                    return refuse(answer, VerifyCode::UsageExceeded);
                }
            }
        }
        self.note_use(&rec.id, now);
        answer.valid = true;
        Ok(answer)
    }
}

impl VerifyCode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "VALID",
            Self::NotFound => "NOT_FOUND",
            Self::Expired => "EXPIRED",
            Self::Revoked => "REVOKED",
            Self::Disabled => "DISABLED",
            Self::RateLimited => "RATE_LIMITED",
            Self::UsageExceeded => "USAGE_EXCEEDED",
            Self::ForbiddenIp => "FORBIDDEN_IP",
            Self::InsufficientScope => "INSUFFICIENT_SCOPE",
        }
    }
}

/// Usage buckets: `minute`, `hour` or `day`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// 60 s buckets.
    Minute,
    /// 3,600 s buckets.
    Hour,
    /// 86,400 s buckets.
    Day,
}

impl Granularity {
    /// Parses `minute`, `hour`, `day`.
    pub fn parse(s: &str) -> Result<Self, ServiceError> {
        match s {
            "minute" => Ok(Self::Minute),
            "hour" => Ok(Self::Hour),
            "day" => Ok(Self::Day),
            _ => Err(ServiceError::invalid(
                "granularity",
                format!("{s:?} is not one of minute, hour, day"),
            )),
        }
    }

    fn secs(self) -> i64 {
        match self {
            Self::Minute => 60,
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }
}

/// One bucket of a key's usage.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageBucket {
    /// Bucket start, seconds since the epoch.
    pub start: i64,
    /// Count per outcome code.
    pub counts: std::collections::BTreeMap<String, i64>,
}

/// A key found in a leak report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeakedKey {
    /// Key id.
    pub key_id: String,
    /// Display hint.
    pub hint: String,
    /// Owner (to notify).
    pub owner: String,
}

/// What a leak report did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeakReport {
    /// Candidates received.
    pub checked: usize,
    /// Dropped without lookup: not a well-formed key with a valid checksum.
    pub dropped: usize,
    /// Live keys revoked now.
    pub revoked: Vec<LeakedKey>,
    /// Matching keys that were already revoked.
    pub already_revoked: Vec<LeakedKey>,
}

/// Most candidates in one leak report.
pub const MAX_LEAK_CANDIDATES: usize = 1_000;
/// Longest rolled-key grace period.
pub const MAX_ROLL_GRACE: Duration = Duration::from_secs(30 * 86_400);

impl Authority {
    /// Usage of one key from `from` to `to` (seconds since the epoch), by bucket and outcome.
    /// Counts reach the database every few seconds (the usage flush).
    pub async fn api_key_usage(
        &self,
        id: &str,
        from: Option<i64>,
        to: Option<i64>,
        granularity: Granularity,
    ) -> Result<Vec<UsageBucket>, ServiceError> {
        self.api_key_row(id).await?;
        let now = self.now();
        let to = to.unwrap_or(now + 1);
        let from = from.unwrap_or(to - 86_400);
        if from >= to {
            return Err(ServiceError::invalid("from", "must be before to"));
        }
        if to - from > 400 * 86_400 {
            return Err(ServiceError::invalid(
                "from",
                "the range may span at most 400 days",
            ));
        }
        let g = granularity.secs();
        let rows = self
            .store
            .key_usage(id, from - from.rem_euclid(g), to, g)
            .await?;
        let mut out: Vec<UsageBucket> = Vec::new();
        for r in rows {
            match out.last_mut() {
                Some(b) if b.start == r.bucket_start => {
                    b.counts.insert(r.outcome, r.count);
                }
                _ => out.push(UsageBucket {
                    start: r.bucket_start,
                    counts: [(r.outcome, r.count)].into_iter().collect(),
                }),
            }
        }
        Ok(out)
    }

    /// Rolls a key: a new secret for the same key (same id, owner, scopes, limits);
    /// the old secret keeps working for `grace`, then verifies as `EXPIRED`.
    pub async fn roll_api_key(
        &self,
        id: &str,
        grace: Duration,
    ) -> Result<CreatedApiKey, ServiceError> {
        if grace > MAX_ROLL_GRACE {
            return Err(ServiceError::invalid("grace", "must be at most 30d"));
        }
        let row = self.api_key_row(id).await?;
        if row.revoked_at.is_some() {
            return Err(ServiceError::Conflict(format!(
                "api key {id} is revoked and cannot be rolled"
            )));
        }
        let ks = self.keyspace_row(&row.keyspace_id).await?;
        let secret = OpaqueSecret::generate(&ks.prefix);
        let now = self.now();
        let digest = self.pepper.digest(secret.expose());
        if !self
            .store
            .roll_api_key(
                id,
                digest.as_str(),
                &secret.hint(),
                now + grace.as_secs() as i64,
                now,
            )
            .await?
        {
            return Err(ServiceError::Conflict(format!(
                "api key {id} is revoked and cannot be rolled"
            )));
        }
        self.key_cache.clear();
        tracing::info!(key_id = %id, grace_secs = grace.as_secs(), "api key rolled");
        self.audit(
            crate::audit::AuditEvent::new("apikey.rolled")
                .credential(id)
                .details(serde_json::json!({"grace_secs": grace.as_secs()})),
        )
        .await?;
        Ok(CreatedApiKey {
            view: self.get_api_key(id).await?,
            key: secret.expose().to_owned(),
        })
    }

    /// Leak response: revokes every live key among `candidates` (for instance what a
    /// secret scanner found in a public repository) and reports them. Candidates that
    /// are not well-formed keys with a valid checksum are dropped without a lookup.
    pub async fn report_leaked(&self, candidates: &[String]) -> Result<LeakReport, ServiceError> {
        if candidates.len() > MAX_LEAK_CANDIDATES {
            return Err(ServiceError::invalid(
                "candidates",
                format!("at most {MAX_LEAK_CANDIDATES} per request"),
            ));
        }
        let mut report = LeakReport {
            checked: candidates.len(),
            dropped: 0,
            revoked: vec![],
            already_revoked: vec![],
        };
        let mut seen = std::collections::HashSet::new();
        for c in candidates {
            let Ok(secret) = OpaqueSecret::parse_any(c.trim()) else {
                report.dropped += 1;
                continue;
            };
            let digest = self.pepper.digest(secret.expose());
            let Some(row) = self.store.find_api_key(digest.as_str()).await? else {
                continue;
            };
            if !seen.insert(row.id.clone()) {
                continue;
            }
            let found = LeakedKey {
                key_id: row.id.clone(),
                hint: row.hint.clone(),
                owner: row.owner.clone(),
            };
            if row.revoked_at.is_some() {
                report.already_revoked.push(found);
                continue;
            }
            self.store.revoke_api_key(&row.id, self.now()).await?;
            tracing::warn!(key_id = %row.id, owner = %row.owner, "api key revoked: reported leaked");
            self.audit(
                crate::audit::AuditEvent::new("apikey.revoked")
                    .credential(row.id.clone())
                    .subject(row.owner.clone())
                    .outcome(crate::audit::Outcome::Success, "reported leaked"),
            )
            .await?;
            self.key_revoked_event(&row.id).await?;
            report.revoked.push(found);
        }
        if !report.revoked.is_empty() {
            self.key_cache.clear();
        }
        Ok(report)
    }
}
