//! OAuth clients: registration, listing, deletion, secret rotation, and
//! authentication at the token, introspection and revocation endpoints.
//!
//! Inputs are parsed into [`NewClient`] at the edge; the stored [`ClientRow`] is
//! parsed back into a [`Client`] on every read, so a hand-edited row cannot
//! smuggle in an unsupported value.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use portcullis_core::ids::ClientId;
use portcullis_core::jose::SigningAlg;
use portcullis_core::keys::SecretDigest;
use portcullis_core::limits::RateLimit;
use portcullis_core::oauth::GrantType;
use portcullis_core::scope::ScopeSet;
use portcullis_core::secret::{OpaqueSecret, SecretString, CLIENT_SECRET_PREFIX};
use portcullis_store::ClientRow;
use serde::Serialize;

use crate::{Authority, ServiceError};

/// Most clients cached; past it the cache starts over.
pub(crate) const CLIENT_CACHE_MAX: usize = 100_000;

/// Access-token format of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenFormat {
    /// RFC 9068 JWT, verifiable offline.
    Jwt,
    /// `pcat_…`, checked by introspection.
    Opaque,
}

impl TokenFormat {
    /// The stored / CLI name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jwt => "jwt",
            Self::Opaque => "opaque",
        }
    }
}

impl FromStr for TokenFormat {
    type Err = ServiceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jwt" => Ok(Self::Jwt),
            "opaque" => Ok(Self::Opaque),
            _ => Err(ServiceError::invalid(
                "token_format",
                format!("{s:?} is not one of jwt, opaque"),
            )),
        }
    }
}

/// A client as the service uses it.
#[derive(Debug, Clone)]
pub struct Client {
    /// Public identifier.
    pub id: ClientId,
    /// Display name.
    pub name: String,
    secret_digest: Option<SecretDigest>,
    /// Display hint of the current secret.
    pub secret_hint: Option<String>,
    /// Allowed grants.
    pub grant_types: Vec<GrantType>,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Scopes the client may be granted.
    pub scopes: ScopeSet,
    /// Scopes granted when none are requested.
    pub default_scopes: ScopeSet,
    /// Audiences the client may ask for with `resource`.
    pub audiences: Vec<String>,
    /// Audience used when no `resource` is given.
    pub default_audience: Option<String>,
    /// Access-token format.
    pub token_format: TokenFormat,
    /// JWT signing algorithm.
    pub access_token_alg: SigningAlg,
    /// Access-token lifetime.
    pub access_token_ttl: Duration,
    /// Created at.
    pub created_at: i64,
    /// Updated at.
    pub updated_at: i64,
    /// Own rate limit on the token endpoint and forward-auth (else the defaults).
    pub rate_limit: Option<RateLimit>,
    /// Where RP-initiated logout may return the browser (exact match).
    pub post_logout_redirect_uris: Vec<String>,
    /// Sliding refresh-token lifetime.
    pub refresh_token_ttl: Duration,
    /// Absolute lifetime of a refresh-token family.
    pub refresh_token_max_ttl: Duration,
    /// Users must pass MFA to sign in to this client.
    pub require_mfa: bool,
    /// First-party: users are not asked for consent.
    pub first_party: bool,
    /// Token requests must carry a DPoP proof (RFC 9449); its tokens are all bound.
    pub require_dpop: bool,
}

impl Client {
    /// True when the client has no secret (public clients).
    pub fn is_public(&self) -> bool {
        self.secret_digest.is_none()
    }

    fn from_row(r: ClientRow) -> Result<Self, ServiceError> {
        let ctx = |what: &str| format!("client {} has an invalid stored {what}", r.id);
        let grant_types = r
            .grant_types
            .split(' ')
            .filter(|g| !g.is_empty())
            .map(|g| GrantType::parse(g).with_context(|| ctx("grant type")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            id: r.id.parse().with_context(|| ctx("id"))?,
            secret_digest: r.secret_digest.map(SecretDigest::from_stored),
            secret_hint: r.secret_hint,
            grant_types,
            redirect_uris: serde_json::from_str(&r.redirect_uris)
                .with_context(|| ctx("redirect_uris"))?,
            scopes: ScopeSet::parse(&r.scopes).with_context(|| ctx("scopes"))?,
            default_scopes: ScopeSet::parse(&r.default_scopes)
                .with_context(|| ctx("default_scopes"))?,
            audiences: serde_json::from_str(&r.audiences).with_context(|| ctx("audiences"))?,
            default_audience: r.default_audience,
            token_format: r
                .token_format
                .parse()
                .map_err(|_| anyhow::anyhow!(ctx("token_format")))?,
            access_token_alg: r
                .access_token_alg
                .parse()
                .with_context(|| ctx("access_token_alg"))?,
            access_token_ttl: Duration::from_secs(
                u64::try_from(r.access_token_ttl).with_context(|| ctx("ttl"))?,
            ),
            created_at: r.created_at,
            updated_at: r.updated_at,
            rate_limit: r
                .rate_limit
                .as_deref()
                .map(str::parse)
                .transpose()
                .with_context(|| ctx("rate_limit"))?,
            post_logout_redirect_uris: serde_json::from_str(&r.post_logout_redirect_uris)
                .with_context(|| ctx("post_logout_redirect_uris"))?,
            refresh_token_ttl: Duration::from_secs(
                u64::try_from(r.refresh_token_ttl).with_context(|| ctx("refresh_token_ttl"))?,
            ),
            refresh_token_max_ttl: Duration::from_secs(
                u64::try_from(r.refresh_token_max_ttl)
                    .with_context(|| ctx("refresh_token_max_ttl"))?,
            ),
            require_mfa: r.require_mfa,
            first_party: r.first_party,
            require_dpop: r.require_dpop,
            name: r.name,
        })
    }
}

/// A client as shown to administrators (never the secret or its digest).
#[derive(Debug, Clone, Serialize)]
pub struct ClientView {
    /// Client id.
    pub client_id: String,
    /// Name.
    pub name: String,
    /// Confidential clients have a secret.
    pub public: bool,
    /// Hint of the secret (`pcs_…abcd`).
    pub secret_hint: Option<String>,
    /// Allowed grants.
    pub grant_types: Vec<String>,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Allowed scopes.
    pub scopes: Vec<String>,
    /// Default scopes.
    pub default_scopes: Vec<String>,
    /// Allowed audiences.
    pub audiences: Vec<String>,
    /// Default audience.
    pub default_audience: Option<String>,
    /// `jwt` or `opaque`.
    pub token_format: TokenFormat,
    /// JWT algorithm.
    pub access_token_alg: SigningAlg,
    /// Access-token lifetime, seconds.
    pub access_token_ttl: u64,
    /// Created at.
    pub created_at: i64,
    /// Updated at.
    pub updated_at: i64,
    /// Own rate limit (`N/period`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<String>,
    /// Post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// Sliding refresh-token lifetime, seconds.
    pub refresh_token_ttl: u64,
    /// Absolute refresh-token family lifetime, seconds.
    pub refresh_token_max_ttl: u64,
    /// MFA required.
    pub require_mfa: bool,
    /// First-party (no consent page).
    pub first_party: bool,
    /// DPoP proofs required.
    pub require_dpop: bool,
}

impl From<&Client> for ClientView {
    fn from(c: &Client) -> Self {
        Self {
            client_id: c.id.to_string(),
            name: c.name.clone(),
            public: c.is_public(),
            secret_hint: c.secret_hint.clone(),
            grant_types: c
                .grant_types
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
            redirect_uris: c.redirect_uris.clone(),
            scopes: c.scopes.iter().map(|s| s.to_string()).collect(),
            default_scopes: c.default_scopes.iter().map(|s| s.to_string()).collect(),
            audiences: c.audiences.clone(),
            default_audience: c.default_audience.clone(),
            token_format: c.token_format,
            access_token_alg: c.access_token_alg,
            access_token_ttl: c.access_token_ttl.as_secs(),
            created_at: c.created_at,
            updated_at: c.updated_at,
            rate_limit: c.rate_limit.map(|r| r.to_string()),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            refresh_token_ttl: c.refresh_token_ttl.as_secs(),
            refresh_token_max_ttl: c.refresh_token_max_ttl.as_secs(),
            require_mfa: c.require_mfa,
            first_party: c.first_party,
            require_dpop: c.require_dpop,
        }
    }
}

/// A client registration request, as typed by an administrator.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    /// Name (1 to 200 characters, no control characters).
    pub name: String,
    /// Grant types by wire name.
    pub grant_types: Vec<String>,
    /// Redirect URIs (absolute, no fragment).
    pub redirect_uris: Vec<String>,
    /// Allowed scopes.
    pub scopes: Vec<String>,
    /// Default scopes (a subset of `scopes`); all of `scopes` when empty.
    pub default_scopes: Vec<String>,
    /// Allowed audiences (absolute URIs, no fragment).
    pub audiences: Vec<String>,
    /// Default audience (one of `audiences`).
    pub default_audience: Option<String>,
    /// Public client (no secret).
    pub public: bool,
    /// `jwt` (default) or `opaque`.
    pub token_format: Option<String>,
    /// JWT algorithm; the server default when absent.
    pub access_token_alg: Option<String>,
    /// Lifetime; the server default when absent.
    pub access_token_ttl: Option<Duration>,
    /// Own rate limit, `N/period`.
    pub rate_limit: Option<String>,
    /// Post-logout redirect URIs (absolute, exact match).
    pub post_logout_redirect_uris: Vec<String>,
    /// Sliding refresh-token lifetime (default 14 days).
    pub refresh_token_ttl: Option<Duration>,
    /// Absolute refresh-token family lifetime (default 90 days).
    pub refresh_token_max_ttl: Option<Duration>,
    /// Users must pass MFA.
    pub require_mfa: bool,
    /// First-party client: no consent page.
    pub first_party: bool,
    /// Token requests must carry a DPoP proof.
    pub require_dpop: bool,
}

/// A freshly registered (or re-keyed) client, with its secret shown this once.
#[derive(Debug, Serialize)]
pub struct CreatedClient {
    /// The client.
    #[serde(flatten)]
    pub client: ClientView,
    /// The secret: shown once, stored only as a keyed hash.
    pub client_secret: Option<String>,
}

/// Checks a URI is absolute with a scheme and host and has no fragment (RFC 6749 §3.1.2,
/// RFC 8707 §2): what client registration requires of redirect URIs and audiences.
pub fn check_absolute_uri(field: &'static str, s: &str) -> Result<String, ServiceError> {
    absolute_uri(field, s)
}

fn absolute_uri(field: &'static str, s: &str) -> Result<String, ServiceError> {
    let u = url::Url::parse(s)
        .map_err(|e| ServiceError::invalid(field, format!("{s:?} is not an absolute URI ({e})")))?;
    if u.fragment().is_some() {
        return Err(ServiceError::invalid(
            field,
            format!("{s:?} must not contain a fragment"),
        ));
    }
    if u.cannot_be_a_base() || u.host().is_none() {
        return Err(ServiceError::invalid(
            field,
            format!("{s:?} must have a host"),
        ));
    }
    Ok(s.to_owned())
}

impl Authority {
    /// Drops every cached client (after any change to clients).
    pub(crate) fn invalidate_clients(&self) {
        self.client_cache.clear();
    }

    /// A registered client by id as sent (`None` when malformed or unknown).
    pub async fn find_client(&self, id: &str) -> Result<Option<Arc<Client>>, ServiceError> {
        match id.parse::<ClientId>() {
            Ok(id) => self.cached_client(&id).await,
            Err(_) => Ok(None),
        }
    }

    /// A client by id, from the cache or the store.
    pub(crate) async fn cached_client(
        &self,
        id: &ClientId,
    ) -> Result<Option<Arc<Client>>, ServiceError> {
        let generation = match self.client_cache.get(id) {
            Ok(hit) => return Ok(Some(hit)),
            Err(generation) => generation,
        };
        let Some(row) = self.store.get_client(&id.to_string()).await? else {
            return Ok(None);
        };
        let client = Arc::new(Client::from_row(row)?);
        self.client_cache.insert(generation, *id, client.clone());
        Ok(Some(client))
    }

    /// Registers a client. The secret is returned once and stored only as HMAC-SHA256 under the pepper.
    pub async fn create_client(&self, req: NewClient) -> Result<CreatedClient, ServiceError> {
        let name = req.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(ServiceError::invalid(
                "name",
                "must be 1 to 200 characters without control characters",
            ));
        }
        if req.grant_types.is_empty() {
            return Err(ServiceError::invalid(
                "grant_type",
                "at least one is required (supported: client_credentials, authorization_code, refresh_token, password)",
            ));
        }
        let mut grant_types = Vec::new();
        for g in &req.grant_types {
            let gt = GrantType::parse(g).ok_or_else(|| {
                ServiceError::invalid(
                    "grant_type",
                    format!("{g:?} is not supported (supported: client_credentials, authorization_code, refresh_token, password)"),
                )
            })?;
            if !grant_types.contains(&gt) {
                grant_types.push(gt);
            }
        }
        if req.public && grant_types.contains(&GrantType::ClientCredentials) {
            return Err(ServiceError::invalid(
                "public",
                "client_credentials needs a confidential client (one with a secret)",
            ));
        }
        let redirect_uris = req
            .redirect_uris
            .iter()
            .map(|u| absolute_uri("redirect_uri", u))
            .collect::<Result<Vec<_>, _>>()?;
        if grant_types.contains(&GrantType::AuthorizationCode) && redirect_uris.is_empty() {
            return Err(ServiceError::invalid(
                "redirect_uri",
                "authorization_code needs at least one redirect URI",
            ));
        }
        if grant_types.contains(&GrantType::RefreshToken)
            && !grant_types
                .iter()
                .any(|g| matches!(g, GrantType::AuthorizationCode | GrantType::Password))
        {
            return Err(ServiceError::invalid(
                "grant_type",
                "refresh_token needs authorization_code or password (refresh tokens come from them)",
            ));
        }
        let post_logout_redirect_uris = req
            .post_logout_redirect_uris
            .iter()
            .map(|u| absolute_uri("post_logout_redirect_uri", u))
            .collect::<Result<Vec<_>, _>>()?;
        let refresh_token_ttl = req
            .refresh_token_ttl
            .unwrap_or(Duration::from_secs(14 * 86_400));
        let refresh_token_max_ttl = req
            .refresh_token_max_ttl
            .unwrap_or(Duration::from_secs(90 * 86_400));
        if refresh_token_ttl < Duration::from_secs(60) || refresh_token_ttl > refresh_token_max_ttl
        {
            return Err(ServiceError::invalid(
                "refresh_token_ttl",
                "must be at least 1m and at most refresh_token_max_ttl",
            ));
        }
        if refresh_token_max_ttl > Duration::from_secs(3_650 * 86_400) {
            return Err(ServiceError::invalid(
                "refresh_token_max_ttl",
                "must be at most 3650d",
            ));
        }
        let scopes = ScopeSet::from_tokens(&req.scopes)
            .map_err(|e| ServiceError::invalid("scope", e.to_string()))?;
        let default_scopes = if req.default_scopes.is_empty() {
            scopes.clone()
        } else {
            ScopeSet::from_tokens(&req.default_scopes)
                .map_err(|e| ServiceError::invalid("default_scope", e.to_string()))?
        };
        if !default_scopes.is_subset(&scopes) {
            return Err(ServiceError::invalid(
                "default_scope",
                "default scopes must be among the client's scopes",
            ));
        }
        let mut audiences = Vec::new();
        for a in &req.audiences {
            let a = absolute_uri("audience", a)?;
            if !audiences.contains(&a) {
                audiences.push(a);
            }
        }
        if let Some(d) = &req.default_audience {
            if !audiences.contains(d) {
                return Err(ServiceError::invalid(
                    "default_audience",
                    "must be one of the client's audiences",
                ));
            }
        }
        let token_format = req
            .token_format
            .as_deref()
            .unwrap_or("jwt")
            .parse::<TokenFormat>()?;
        let alg = match &req.access_token_alg {
            Some(a) => a
                .parse::<SigningAlg>()
                .map_err(|e| ServiceError::invalid("access_token_alg", e.to_string()))?,
            None => self.config.default_alg,
        };
        let ttl = req
            .access_token_ttl
            .unwrap_or(self.config.default_access_token_ttl);
        if ttl < Duration::from_secs(60) || ttl > self.config.max_access_token_ttl {
            return Err(ServiceError::invalid(
                "access_token_ttl",
                format!(
                    "must be between 1m and the server's maximum ({}s)",
                    self.config.max_access_token_ttl.as_secs()
                ),
            ));
        }
        let secret = (!req.public).then(|| OpaqueSecret::generate(CLIENT_SECRET_PREFIX));
        let now = self.now();
        let row = ClientRow {
            id: ClientId::new().to_string(),
            name,
            secret_digest: secret
                .as_ref()
                .map(|s| self.pepper.digest(s.expose()).as_str().to_owned()),
            secret_hint: secret.as_ref().map(OpaqueSecret::hint),
            grant_types: grant_types
                .iter()
                .map(|g| g.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            redirect_uris: serde_json::to_string(&redirect_uris).context("json")?,
            scopes: scopes.to_string(),
            default_scopes: default_scopes.to_string(),
            audiences: serde_json::to_string(&audiences).context("json")?,
            default_audience: req.default_audience,
            token_format: token_format.as_str().to_owned(),
            access_token_alg: alg.as_str().to_owned(),
            access_token_ttl: ttl.as_secs() as i64,
            created_at: now,
            updated_at: now,
            rate_limit: req
                .rate_limit
                .as_deref()
                .map(|r| {
                    r.parse::<RateLimit>()
                        .map_err(|e| ServiceError::invalid("rate_limit", e.to_string()))
                })
                .transpose()?
                .map(|r| r.to_string()),
            post_logout_redirect_uris: serde_json::to_string(&post_logout_redirect_uris)
                .context("json")?,
            refresh_token_ttl: refresh_token_ttl.as_secs() as i64,
            refresh_token_max_ttl: refresh_token_max_ttl.as_secs() as i64,
            require_mfa: req.require_mfa,
            first_party: req.first_party,
            require_dpop: req.require_dpop,
        };
        self.store.insert_client(&row).await?;
        self.invalidate_clients();
        let client = Client::from_row(row)?;
        tracing::info!(client_id = %client.id, "client created");
        self.audit(crate::audit::AuditEvent::new("client.created").client(client.id.to_string()))
            .await?;
        Ok(CreatedClient {
            client: ClientView::from(&client),
            client_secret: secret.map(|s| s.expose().to_owned()),
        })
    }

    /// One client.
    pub async fn get_client(&self, id: &str) -> Result<Client, ServiceError> {
        let not_found = || ServiceError::NotFound(format!("client {id}"));
        let id: ClientId = id.parse().map_err(|_| not_found())?;
        let row = self
            .store
            .get_client(&id.to_string())
            .await?
            .ok_or_else(not_found)?;
        Client::from_row(row)
    }

    /// All clients.
    pub async fn list_clients(&self) -> Result<Vec<Client>, ServiceError> {
        self.store
            .list_clients()
            .await?
            .into_iter()
            .map(Client::from_row)
            .collect()
    }

    /// Deletes a client; its opaque tokens go with it and its JWTs stop introspecting as active.
    pub async fn delete_client(&self, id: &str) -> Result<(), ServiceError> {
        let client = self.get_client(id).await?;
        let deleted = self.store.delete_client(&client.id.to_string()).await?;
        self.invalidate_clients();
        if !deleted {
            return Err(ServiceError::NotFound(format!("client {id}")));
        }
        tracing::info!(client_id = %client.id, "client deleted");
        self.audit(crate::audit::AuditEvent::new("client.deleted").client(client.id.to_string()))
            .await?;
        Ok(())
    }

    /// Replaces a confidential client's secret; the old one stops working at once.
    pub async fn rotate_client_secret(&self, id: &str) -> Result<CreatedClient, ServiceError> {
        let client = self.get_client(id).await?;
        if client.is_public() {
            return Err(ServiceError::Conflict(format!(
                "client {id} is public and has no secret"
            )));
        }
        let secret = OpaqueSecret::generate(CLIENT_SECRET_PREFIX);
        let digest = self.pepper.digest(secret.expose());
        let updated = self
            .store
            .set_client_secret(
                &client.id.to_string(),
                digest.as_str(),
                &secret.hint(),
                self.now(),
            )
            .await?;
        self.invalidate_clients();
        if !updated {
            return Err(ServiceError::NotFound(format!("client {id}")));
        }
        tracing::info!(client_id = %client.id, "client secret rotated");
        self.audit(
            crate::audit::AuditEvent::new("client.secret_rotated").client(client.id.to_string()),
        )
        .await?;
        let client = self.get_client(id).await?;
        Ok(CreatedClient {
            client: ClientView::from(&client),
            client_secret: Some(secret.expose().to_owned()),
        })
    }

    /// Authenticates a confidential client by id and secret.
    ///
    /// Every failure is the same [`ServiceError::InvalidClient`], and an unknown
    /// client costs the same HMAC and comparison as a wrong secret, so neither the
    /// answer nor its timing tells which clients exist.
    pub async fn authenticate_client(
        &self,
        client_id: &str,
        secret: &SecretString,
    ) -> Result<Arc<Client>, ServiceError> {
        let presented = self.pepper.digest(secret.expose());
        let well_formed = OpaqueSecret::parse(secret.expose(), CLIENT_SECRET_PREFIX).is_ok();
        let client = match client_id.parse::<ClientId>() {
            Ok(id) => self.cached_client(&id).await?,
            Err(_) => None,
        };
        let stored = client.as_ref().and_then(|c| c.secret_digest.as_ref());
        // An unknown client (or one without a secret) is compared against a digest no
        // secret has, so the answer takes as long either way.
        static DUMMY: std::sync::LazyLock<SecretDigest> =
            std::sync::LazyLock::new(|| SecretDigest::from_stored("0".repeat(64)));
        let matches = presented.ct_eq(stored.unwrap_or(&DUMMY));
        match client {
            Some(c) if matches && well_formed && stored.is_some() => Ok(c),
            _ => {
                // Sampled per claimed client id: a flood of guesses is one record a minute.
                let claimed: String = client_id.chars().take(64).collect();
                self.audit_refusal(
                    crate::audit::AuditEvent::new("client.auth_failed")
                        .client(claimed.clone())
                        .outcome(
                            crate::audit::Outcome::Failure,
                            if client.is_some() {
                                "wrong secret"
                            } else {
                                "unknown client"
                            },
                        ),
                    &claimed,
                );
                self.observe_failure(crate::audit::current_ip(), Some(&claimed))
                    .await?;
                Err(ServiceError::InvalidClient)
            }
        }
    }
}
