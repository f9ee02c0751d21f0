//! Access tokens: issuance (`client_credentials`), introspection (RFC 7662) and
//! revocation (RFC 7009).
//!
//! JWT access tokens are RFC 9068 tokens signed by the active key of the
//! client's algorithm; they are not stored, and are revoked by putting their
//! `jti` on a deny list kept until their `exp`. Opaque tokens (`pcat_…`) are
//! stored as a keyed hash and revoked in place. Either way the revocation is
//! committed to the database before the caller hears "done", and the in-memory
//! deny list is updated in the same call, so introspection refuses the token at once.

use std::sync::Arc;

use anyhow::Context;
use portcullis_core::claims::{AccessTokenClaims, Audience, ACCESS_TOKEN_TYP};
use portcullis_core::ids::TokenId;
use portcullis_core::keys::SecretDigest;
use portcullis_core::oauth::GrantType;
use portcullis_core::scope::ScopeSet;
use portcullis_core::secret::{
    OpaqueSecret, SecretString, ACCESS_TOKEN_PREFIX, PERSONAL_ACCESS_TOKEN_PREFIX,
};
use portcullis_store::{OpaqueTokenRow, RevokedJti};
use serde::Serialize;

use crate::clients::{Client, TokenFormat};
use crate::{Authority, ServiceError};

/// The `access_token` kind stored for opaque access tokens.
const KIND_ACCESS: &str = "access_token";

/// What the client asked for at the token endpoint, already parsed.
#[derive(Debug, Clone, Default)]
pub struct ClientCredentialsRequest {
    /// The `scope` parameter, when present.
    pub scope: Option<ScopeSet>,
    /// Every `resource` parameter (RFC 8707), in order.
    pub resources: Vec<String>,
    /// Thumbprint of the DPoP key proven with the request: the token is bound to it.
    pub jkt: Option<String>,
}

/// An issued access token.
#[derive(Debug)]
pub struct IssuedToken {
    /// The token (a secret: shown to the client only).
    pub access_token: SecretString,
    /// Seconds until expiry.
    pub expires_in: i64,
    /// Granted scopes.
    pub scope: ScopeSet,
    /// Token id (`jti`).
    pub token_id: String,
    /// The format issued.
    pub format: TokenFormat,
}

/// An RFC 7662 introspection answer. Inactive answers carry nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Introspection {
    /// Whether the token is usable now.
    pub active: bool,
    /// Granted scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Client the token was issued to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The resource owner's username (personal access tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issued at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audiences.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// Token id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// `Bearer`, or `DPoP` for a token bound to a key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// The DPoP key a bound token is confirmed by (RFC 9449 §6.2): the resource
    /// server must see a proof by this key with the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<portcullis_core::claims::Confirmation>,
}

impl Introspection {
    /// `{"active": false}`.
    pub fn inactive() -> Self {
        Self {
            active: false,
            scope: None,
            client_id: None,
            sub: None,
            username: None,
            exp: None,
            iat: None,
            iss: None,
            aud: None,
            jti: None,
            token_type: None,
            cnf: None,
        }
    }
}

/// What revocation did, for metrics and logs (the client always hears 200).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// A live token was revoked now.
    Now,
    /// Unknown, malformed, expired or already revoked: nothing to do.
    Nothing,
}

/// The token as introspection or revocation sees it.
pub(crate) enum Known {
    Jwt(Arc<AccessTokenClaims>),
    Opaque(Arc<LiveOpaque>),
    /// An API key: one bearer, many kinds (with the digest of the presented secret,
    /// so its verification need not compute it again).
    ApiKey(Arc<crate::apikeys::KeyRecord>, [u8; 32]),
    /// A personal access token.
    Pat(Arc<crate::pats::PatRecord>),
}

/// An opaque access token's row as issued, as the cache keeps it: with its audience
/// list read once (the row stores it as JSON), not on every use.
#[derive(Debug)]
pub(crate) struct LiveOpaque {
    row: OpaqueTokenRow,
    pub(crate) audience: Audience,
}

impl LiveOpaque {
    fn new(row: OpaqueTokenRow) -> Result<Self, ServiceError> {
        let list: Vec<String> =
            serde_json::from_str(&row.audience).context("stored token audience")?;
        Ok(Self {
            audience: Audience::from_list(list),
            row,
        })
    }
}

impl std::ops::Deref for LiveOpaque {
    type Target = OpaqueTokenRow;

    fn deref(&self) -> &OpaqueTokenRow {
        &self.row
    }
}

/// Most entries in each verified-token cache; past it the cache starts over.
pub(crate) const LIVE_CACHE_MAX: usize = 50_000;

impl Known {
    /// The client the token was issued to (API keys belong to no OAuth client).
    fn client_id(&self) -> &str {
        match self {
            Self::Jwt(c) => &c.client_id,
            Self::Opaque(r) => &r.client_id,
            Self::ApiKey(..) | Self::Pat(_) => "",
        }
    }
}

/// The `token_type` of an access token: `DPoP` when bound to a key (RFC 9449 §5).
pub fn token_type(bound: bool) -> &'static str {
    if bound {
        "DPoP"
    } else {
        "Bearer"
    }
}

/// Exactly two dots, as a compact JWS has. Found from each end, then the middle is
/// searched with the slice `contains` (word at a time), not byte by byte: this runs
/// on every introspection and forward-auth call.
fn looks_like_jwt(token: &str) -> bool {
    let b = token.as_bytes();
    match (
        b.iter().position(|&c| c == b'.'),
        b.iter().rposition(|&c| c == b'.'),
    ) {
        (Some(i), Some(j)) if i < j => !b[i + 1..j].contains(&b'.'),
        _ => false,
    }
}

impl Authority {
    /// `grant_type=client_credentials` for an authenticated client.
    pub async fn issue_client_credentials(
        &self,
        client: &Client,
        req: ClientCredentialsRequest,
    ) -> Result<IssuedToken, ServiceError> {
        if !client.grant_types.contains(&GrantType::ClientCredentials) {
            return Err(ServiceError::UnauthorizedClient(
                "this client may not use the client_credentials grant".into(),
            ));
        }
        let scope = match req.scope {
            Some(s) if !s.is_empty() => {
                if !s.is_subset(&client.scopes) {
                    return Err(ServiceError::InvalidScope(
                        "the requested scope exceeds what this client may be granted".into(),
                    ));
                }
                s
            }
            _ => client.default_scopes.clone(),
        };
        let aud = if req.resources.is_empty() {
            Audience::One(
                client
                    .default_audience
                    .clone()
                    .unwrap_or_else(|| self.config.issuer.clone()),
            )
        } else {
            let mut list: Vec<String> = Vec::new();
            for r in req.resources {
                if !client.audiences.contains(&r) {
                    return Err(ServiceError::InvalidTarget(format!(
                        "resource {r:?} is not allowed for this client"
                    )));
                }
                if !list.contains(&r) {
                    list.push(r);
                }
            }
            Audience::from_list(list)
        };
        // Written once: the token's subject, the anomaly key and three audit fields.
        let client_id = client.id.to_string();
        let (access_token, jti, ttl) = self
            .mint_access(client, &client_id, &scope, aud, req.jkt.as_deref())
            .await?;
        self.observe_use(
            &crate::anomaly::CredentialRef::Client {
                client_id: client_id.clone(),
                token: None,
            },
            crate::audit::current_ip(),
        )
        .await?;
        let record = crate::audit::AuditEvent::new("token.issued")
            .credential(jti.clone())
            .client(client_id.clone())
            .subject(client_id.clone())
            .actor(client_id)
            .details(serde_json::json!({
                "grant_type": "client_credentials",
                "scope": scope.to_string(),
                "format": client.token_format.as_str(),
            }));
        if self.config.audit_wait_for_issuance {
            self.audit(record).await?;
        } else {
            self.audit_enqueue(record).await;
        }
        Ok(IssuedToken {
            access_token,
            expires_in: ttl,
            scope,
            token_id: jti,
            format: client.token_format,
        })
    }

    /// Mints an access token for `client` about `sub` in the client's format: a
    /// signed RFC 9068 JWT, or an opaque `pcat_` token stored as a keyed digest;
    /// bound to the DPoP key `jkt` when one was proven (and refused without one when
    /// the client requires DPoP). Returns the token, its id and its lifetime in seconds.
    pub(crate) async fn mint_access(
        &self,
        client: &Client,
        sub: &str,
        scope: &ScopeSet,
        aud: Audience,
        jkt: Option<&str>,
    ) -> Result<(SecretString, String, i64), ServiceError> {
        if client.require_dpop && jkt.is_none() {
            return Err(ServiceError::InvalidDpopProof(
                "this client must send a DPoP proof (RFC 9449)".into(),
            ));
        }
        let now = self.now();
        let ttl = client.access_token_ttl.as_secs() as i64;
        let jti = TokenId::new().to_string();
        let token = match client.token_format {
            TokenFormat::Jwt => {
                let claims = AccessTokenClaims {
                    iss: self.config.issuer.clone(),
                    sub: sub.to_owned(),
                    aud,
                    exp: now + ttl,
                    iat: now,
                    jti: jti.clone(),
                    client_id: client.id.to_string(),
                    scope: scope.to_string(),
                    nbf: None,
                    cnf: jkt.map(|k| portcullis_core::claims::Confirmation { jkt: k.to_owned() }),
                };
                let ring = self.keyring();
                let key = ring.signer(client.access_token_alg).with_context(|| {
                    format!("no active {} signing key", client.access_token_alg)
                })?;
                SecretString::new(
                    key.sign_jwt(ACCESS_TOKEN_TYP, &claims)
                        .context("signing an access token")?,
                )
            }
            TokenFormat::Opaque => {
                let secret = OpaqueSecret::generate(ACCESS_TOKEN_PREFIX);
                let row = OpaqueTokenRow {
                    id: jti.clone(),
                    digest: self.pepper.digest(secret.expose()).as_str().to_owned(),
                    kind: KIND_ACCESS.into(),
                    client_id: client.id.to_string(),
                    subject: sub.to_owned(),
                    scope: scope.to_string(),
                    audience: serde_json::to_string(&aud.to_vec()).context("json")?,
                    issued_at: now,
                    expires_at: now + ttl,
                    revoked_at: None,
                    jkt: jkt.map(str::to_owned),
                };
                self.store.insert_opaque_token(&row).await?;
                SecretString::new(secret.expose())
            }
        };
        Ok((token, jti, ttl))
    }

    /// Finds a live token: signature/checksum valid, not expired, not revoked,
    /// and its client still registered. `None` for everything else.
    pub(crate) async fn find_live(&self, token: &str) -> Result<Option<Known>, ServiceError> {
        let now = self.now();
        if token.starts_with("pcpat_") {
            let Ok(secret) = OpaqueSecret::parse(token, PERSONAL_ACCESS_TOKEN_PREFIX) else {
                return Ok(None);
            };
            let digest = self.pepper.digest(secret.expose());
            let Some(rec) = self.pat_record(digest.as_str()).await? else {
                return Ok(None);
            };
            let live = rec.revoked_at.is_none()
                && rec.user_enabled
                && rec.expires_at.is_none_or(|e| e > now);
            if live {
                self.note_pat_use(&rec.id, now, None);
            }
            return Ok(live.then_some(Known::Pat(rec)));
        }
        // A `pcat_` token is never a JWT (a header segment starting `pcat` decodes to
        // bytes no JSON text starts with), so it is not scanned for dots.
        let opaque_access = token.starts_with("pcat_");
        let jwt = !opaque_access && looks_like_jwt(token);
        if !jwt && !opaque_access {
            // Any other well-formed opaque secret may be an API key of some keyspace.
            let Ok(secret) = OpaqueSecret::parse_any(token) else {
                return Ok(None);
            };
            let digest = self.pepper.digest(secret.expose());
            let Some(rec) = self.key_record(&digest).await? else {
                return Ok(None);
            };
            let raw = digest.to_bytes();
            let live = rec.revoked_at.is_none()
                && rec.enabled
                && rec.expires_at.is_none_or(|e| e > now)
                && !rec.is_stale_previous(&raw, now);
            return Ok(live.then_some(Known::ApiKey(rec, raw)));
        }
        let known = if jwt {
            // Tokens already proven genuine skip the signature check; only what cannot
            // change is cached (verified claims): expiry and the deny list are checked
            // on every use below.
            let claims = match self.jwt_cache.get(token) {
                Ok(c) => c,
                Err(generation) => {
                    let Ok(c) = self
                        .keyring()
                        .verifier()
                        .verify_access_token(token, now, None)
                    else {
                        return Ok(None);
                    };
                    let c = Arc::new(c);
                    self.jwt_cache
                        .insert(generation, token.to_owned(), c.clone());
                    c
                }
            };
            // Checked on every use, cached or not: expiry and the deny list.
            if claims.exp <= now - self.config.leeway || self.is_jti_revoked(&claims.jti) {
                return Ok(None);
            }
            Known::Jwt(claims)
        } else {
            // Checksum first: typos and fabrications never reach the database.
            let Ok(secret) = OpaqueSecret::parse(token, ACCESS_TOKEN_PREFIX) else {
                return Ok(None);
            };
            let digest = self.pepper.digest(secret.expose());
            // The row as issued is cached; revocation drops the entry (and a read that
            // straddles the revocation is not cached: see `cache`).
            let raw = digest.to_bytes();
            let row = match self.opaque_cache.get(&raw) {
                Ok(r) => r,
                Err(generation) => match self.store.find_opaque_token(digest.as_str()).await? {
                    Some(r) if r.revoked_at.is_none() && r.kind == KIND_ACCESS => {
                        let r = Arc::new(LiveOpaque::new(r)?);
                        self.opaque_cache.insert(generation, raw, r.clone());
                        r
                    }
                    _ => return Ok(None),
                },
            };
            if row.expires_at <= now {
                return Ok(None);
            }
            Known::Opaque(row)
        };
        let Ok(client_id) = known.client_id().parse::<portcullis_core::ids::ClientId>() else {
            return Ok(None);
        };
        if self.cached_client(&client_id).await?.is_none() {
            return Ok(None);
        }
        Ok(Some(known))
    }

    /// RFC 7662 introspection by an authenticated client. A client sees tokens
    /// issued to it, and tokens whose audience is one of its registered audiences
    /// (a resource server registers its own URI). Anything else is `active: false`,
    /// exactly as for an unknown token, so the answer never tells why.
    pub async fn introspect(
        &self,
        caller: &Client,
        token: &str,
    ) -> Result<Introspection, ServiceError> {
        let Some(known) = self.find_live(token).await? else {
            return Ok(Introspection::inactive());
        };
        let answer = match known {
            Known::Jwt(c) => Introspection {
                active: true,
                scope: Some(c.scope.clone()),
                client_id: Some(c.client_id.clone()),
                sub: Some(c.sub.clone()),
                username: None,
                exp: Some(c.exp),
                iat: Some(c.iat),
                iss: Some(c.iss.clone()),
                aud: Some(c.aud.clone()),
                jti: Some(c.jti.clone()),
                token_type: Some(token_type(c.cnf.is_some()).into()),
                cnf: c.cnf.clone(),
            },
            Known::Pat(p) => {
                // Any authenticated client may introspect a personal access token it holds.
                return Ok(Introspection {
                    active: true,
                    scope: Some(p.scopes.clone()),
                    client_id: None,
                    sub: Some(p.user_id.clone()),
                    username: Some(p.username.clone()),
                    exp: p.expires_at,
                    iat: Some(p.created_at),
                    iss: Some(self.config.issuer.clone()),
                    aud: None,
                    jti: Some(p.id.clone()),
                    token_type: Some("personal_access_token".into()),
                    cnf: None,
                });
            }
            Known::ApiKey(k, _) => {
                // Any authenticated client may introspect an API key it holds.
                let i = Introspection {
                    active: true,
                    scope: Some(k.scope_list.join(" ")),
                    client_id: None,
                    sub: Some(k.owner.clone()),
                    username: None,
                    exp: k.expires_at,
                    iat: Some(k.created_at),
                    iss: Some(self.config.issuer.clone()),
                    aud: None,
                    jti: Some(k.id.clone()),
                    token_type: Some("api_key".into()),
                    cnf: None,
                };
                return Ok(i);
            }
            Known::Opaque(r) => Introspection {
                active: true,
                scope: Some(r.scope.clone()),
                client_id: Some(r.client_id.clone()),
                sub: Some(r.subject.clone()),
                username: None,
                exp: Some(r.expires_at),
                iat: Some(r.issued_at),
                iss: Some(self.config.issuer.clone()),
                aud: Some(r.audience.clone()),
                jti: Some(r.id.clone()),
                token_type: Some(token_type(r.jkt.is_some()).into()),
                cnf: r
                    .jkt
                    .clone()
                    .map(|jkt| portcullis_core::claims::Confirmation { jkt }),
            },
        };
        let own = answer
            .client_id
            .as_deref()
            .and_then(|id| id.parse::<portcullis_core::ids::ClientId>().ok())
            == Some(caller.id);
        let audience_of_caller = answer
            .aud
            .as_ref()
            .is_some_and(|aud| caller.audiences.iter().any(|a| aud.contains(a)));
        if own || audience_of_caller {
            Ok(answer)
        } else {
            Ok(Introspection::inactive())
        }
    }

    /// RFC 7009 revocation by an authenticated client. Unknown, malformed and
    /// expired tokens are "revoked" trivially (the RFC's 200); a live token issued
    /// to another client is refused with [`ServiceError::UnauthorizedClient`].
    pub async fn revoke(&self, caller: &Client, token: &str) -> Result<Revoked, ServiceError> {
        let Some(known) = self.find_live(token).await? else {
            return Ok(Revoked::Nothing);
        };
        if known.client_id() != caller.id.to_string() {
            return Err(ServiceError::UnauthorizedClient(
                "the token was not issued to this client".into(),
            ));
        }
        let now = self.now();
        match known {
            Known::Jwt(c) => {
                let entry = RevokedJti {
                    jti: c.jti.clone(),
                    client_id: c.client_id.clone(),
                    expires_at: c.exp,
                    revoked_at: now,
                };
                self.store.insert_revoked_jti(&entry).await?;
                self.remember_revoked_jti(c.jti.clone(), c.exp);
                self.events_appended().await?;
                tracing::info!(jti = %c.jti, "access token revoked");
                self.audit(
                    crate::audit::AuditEvent::new("token.revoked")
                        .credential(c.jti.clone())
                        .client(c.client_id.clone())
                        .subject(c.sub.clone()),
                )
                .await?;
            }
            Known::ApiKey(..) | Known::Pat(_) => {
                return Err(ServiceError::UnauthorizedClient(
                    "API keys are revoked through the admin API".into(),
                ));
            }
            Known::Opaque(r) => {
                self.store.revoke_opaque_token(&r.id, now).await?;
                self.opaque_cache
                    .remove(&SecretDigest::from_stored(r.digest.clone()).to_bytes());
                self.events_appended().await?;
                tracing::info!(jti = %r.id, "access token revoked");
                self.audit(
                    crate::audit::AuditEvent::new("token.revoked")
                        .credential(r.id.clone())
                        .client(r.client_id.clone())
                        .subject(r.subject.clone()),
                )
                .await?;
            }
        }
        Ok(Revoked::Now)
    }
}

impl Authority {
    /// Puts a JWT's `jti` on the deny list (durably, then in memory).
    pub(crate) async fn deny_jti(
        &self,
        jti: &str,
        client_id: &str,
        exp: i64,
    ) -> Result<(), ServiceError> {
        let entry = RevokedJti {
            jti: jti.to_owned(),
            client_id: client_id.to_owned(),
            expires_at: exp,
            revoked_at: self.now(),
        };
        self.store.insert_revoked_jti(&entry).await?;
        // The deny list is checked on every use, cached claims or not.
        self.remember_revoked_jti(jti.to_owned(), exp);
        self.events_appended().await?;
        Ok(())
    }

    /// Revokes an opaque access token by id.
    pub(crate) async fn revoke_opaque_by_id(&self, id: &str) -> Result<(), ServiceError> {
        if self.store.revoke_opaque_token(id, self.now()).await? {
            self.events_appended().await?;
        }
        self.opaque_cache.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::looks_like_jwt;
    use proptest::prelude::*;

    #[test]
    fn a_jwt_has_exactly_two_dots() {
        for (t, want) in [
            ("a.b.c", true),
            ("eyJhbGciOiJFUzI1NiJ9.e30.c2ln", true),
            ("a..c", true),
            ("..", true),
            ("", false),
            (".", false),
            ("a.b", false),
            ("a.b.c.d", false),
            ("...", false),
            ("pcat_abc", false),
        ] {
            assert_eq!(looks_like_jwt(t), want, "{t:?}");
        }
    }

    proptest! {
        // The same answer as counting the dots one by one, on any text.
        #[test]
        fn same_as_counting_dots(t in "[a-z.]{0,40}") {
            prop_assert_eq!(looks_like_jwt(&t), t.bytes().filter(|b| *b == b'.').count() == 2);
        }
    }
}
