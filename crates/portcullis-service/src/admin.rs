//! Admin API tokens (`pcadm_…`): bearer credentials for `/api/v1`, each with
//! admin scopes. Stored as HMAC-SHA256 under the pepper; shown once.

use std::sync::Arc;

use portcullis_core::ids::TokenId;
use portcullis_core::secret::{OpaqueSecret, SecretString, ADMIN_TOKEN_PREFIX};
use portcullis_store::AdminTokenRow;
use serde::Serialize;

use crate::{Authority, ServiceError};

/// Every admin scope. `admin` implies all others.
pub const ADMIN_SCOPES: &[&str] = &[
    "admin",
    "keyspaces:read",
    "keyspaces:write",
    "keys:read",
    "keys:write",
    "keys:verify",
    "users:read",
    "users:write",
    "audit:read",
    "webhooks:read",
    "webhooks:write",
    "ipblocks:read",
    "ipblocks:write",
];

/// Most admin tokens cached.
pub(crate) const ADMIN_CACHE_MAX: usize = 10_000;

/// An authenticated admin caller.
#[derive(Debug, Clone)]
pub struct AdminPrincipal {
    /// Token id.
    pub id: String,
    /// Its scopes.
    pub scopes: Vec<String>,
}

impl AdminPrincipal {
    /// True when the principal holds `scope` (or `admin`).
    pub fn allows(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope || s == "admin")
    }
}

/// An admin token as listed (never the token).
#[derive(Debug, Clone, Serialize)]
pub struct AdminTokenView {
    /// Token id.
    pub id: String,
    /// What it is for.
    pub name: String,
    /// Display hint.
    pub hint: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Created at.
    pub created_at: i64,
    /// Revoked at.
    pub revoked_at: Option<i64>,
}

impl From<AdminTokenRow> for AdminTokenView {
    fn from(r: AdminTokenRow) -> Self {
        Self {
            scopes: r
                .scopes
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            id: r.id,
            name: r.name,
            hint: r.hint,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// A new admin token, shown once.
#[derive(Debug, Serialize)]
pub struct CreatedAdminToken {
    /// The token's record.
    #[serde(flatten)]
    pub view: AdminTokenView,
    /// The bearer token: shown once.
    pub token: String,
}

impl Authority {
    /// Creates an admin token with `scopes` (default: `admin`).
    pub async fn create_admin_token(
        &self,
        name: &str,
        scopes: &[String],
    ) -> Result<CreatedAdminToken, ServiceError> {
        let name = name.trim();
        if name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(ServiceError::invalid(
                "name",
                "must be at most 200 characters without control characters",
            ));
        }
        let mut list: Vec<String> = Vec::new();
        for s in scopes {
            if !ADMIN_SCOPES.contains(&s.as_str()) {
                return Err(ServiceError::invalid(
                    "scope",
                    format!("{s:?} is not one of {}", ADMIN_SCOPES.join(", ")),
                ));
            }
            if !list.contains(s) {
                list.push(s.clone());
            }
        }
        if list.is_empty() {
            list.push("admin".into());
        }
        let secret = OpaqueSecret::generate(ADMIN_TOKEN_PREFIX);
        let row = AdminTokenRow {
            id: TokenId::new().to_string(),
            digest: self.pepper.digest(secret.expose()).as_str().to_owned(),
            hint: secret.hint(),
            name: if name.is_empty() {
                "admin token".into()
            } else {
                name.to_owned()
            },
            scopes: list.join(" "),
            created_at: self.now(),
            revoked_at: None,
        };
        self.store.insert_admin_token(&row).await?;
        tracing::info!(admin_token_id = %row.id, scopes = %row.scopes, "admin token created");
        self.audit(
            crate::audit::AuditEvent::new("admin_token.created")
                .credential(row.id.clone())
                .details(serde_json::json!({"scopes": row.scopes})),
        )
        .await?;
        Ok(CreatedAdminToken {
            view: row.into(),
            token: secret.expose().to_owned(),
        })
    }

    /// All admin tokens.
    pub async fn list_admin_tokens(&self) -> Result<Vec<AdminTokenView>, ServiceError> {
        Ok(self
            .store
            .list_admin_tokens()
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Revokes an admin token at once (here) and within the change poll interval elsewhere.
    pub async fn revoke_admin_token(&self, id: &str) -> Result<(), ServiceError> {
        let exists = self
            .store
            .list_admin_tokens()
            .await?
            .into_iter()
            .any(|t| t.id == id);
        if !exists {
            return Err(ServiceError::NotFound(format!("admin token {id}")));
        }
        self.store.revoke_admin_token(id, self.now()).await?;
        self.admin_cache.clear();
        tracing::info!(admin_token_id = %id, "admin token revoked");
        self.audit(crate::audit::AuditEvent::new("admin_token.revoked").credential(id))
            .await?;
        Ok(())
    }

    /// Authenticates a bearer admin token; `None` for anything unknown, malformed or revoked.
    pub async fn authenticate_admin(
        &self,
        token: &SecretString,
    ) -> Result<Option<Arc<AdminPrincipal>>, ServiceError> {
        let Ok(secret) = OpaqueSecret::parse(token.expose(), ADMIN_TOKEN_PREFIX) else {
            return Ok(None);
        };
        let digest = self.pepper.digest(secret.expose());
        let generation = match self.admin_cache.get(digest.as_str()) {
            Ok(hit) => return Ok(Some(hit)),
            Err(g) => g,
        };
        let Some(row) = self.store.find_admin_token(digest.as_str()).await? else {
            return Ok(None);
        };
        if row.revoked_at.is_some() {
            return Ok(None);
        }
        let view = AdminTokenView::from(row);
        let p = Arc::new(AdminPrincipal {
            id: view.id,
            scopes: view.scopes,
        });
        self.admin_cache
            .insert(generation, digest.as_str().to_owned(), p.clone());
        Ok(Some(p))
    }
}
