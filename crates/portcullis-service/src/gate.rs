//! The gatekeeper decision behind forward-auth: may this bearer, from this IP,
//! do something that needs these scopes, right now?
//!
//! Every bearer kind is accepted: JWT and opaque access tokens, personal access
//! tokens, and API keys of any keyspace. API keys go through the full key
//! verification (allow list, rate limit, quota), the others through the same
//! liveness checks as introspection (signature, expiry, deny list, revocation).
//! Rate limits: a credential's own limit (an API key's, or the issuing client's)
//! wins; otherwise `ratelimit.forward_auth_per_credential` counts per token.

use std::net::IpAddr;
use std::sync::Arc;

use portcullis_core::ids::ClientId;
use portcullis_core::limits::RateLimit;
use serde::Serialize;

use crate::apikeys::{VerifyCode, VerifyRequest};
use crate::ratelimit::{Partition, RateOutcome, RouteClass};
use crate::tokens::Known;
use crate::{Authority, ServiceError};

/// The kind of bearer presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BearerKind {
    /// A JWT access token.
    Jwt,
    /// An opaque (`pcat_`) access token.
    Opaque,
    /// A personal access token.
    PersonalAccessToken,
    /// An API key.
    ApiKey,
}

impl BearerKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jwt => "jwt",
            Self::Opaque => "opaque",
            Self::PersonalAccessToken => "personal_access_token",
            Self::ApiKey => "api_key",
        }
    }
}

/// Who a bearer stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The bearer kind.
    pub kind: BearerKind,
    /// Subject: the client (client credentials), user, or key owner.
    pub subject: String,
    /// The OAuth client the token was issued to, if any.
    pub client_id: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Token, PAT or key id.
    pub token_id: String,
    /// Audiences (access tokens only).
    pub audiences: Vec<String>,
    /// Expiry, when it has one.
    pub expires_at: Option<i64>,
}

impl Principal {
    /// The credential as anomaly detection tracks it.
    pub fn credential_ref(&self) -> crate::anomaly::CredentialRef {
        use crate::anomaly::{CredentialRef, TokenRef};
        match self.kind {
            BearerKind::ApiKey => CredentialRef::ApiKey(self.token_id.clone()),
            BearerKind::PersonalAccessToken => CredentialRef::Pat(self.token_id.clone()),
            BearerKind::Jwt => CredentialRef::Client {
                client_id: self.client_id.clone().unwrap_or_default(),
                token: Some(TokenRef::Jwt {
                    jti: self.token_id.clone(),
                    client_id: self.client_id.clone().unwrap_or_default(),
                    exp: self.expires_at.unwrap_or(0),
                }),
            },
            BearerKind::Opaque => CredentialRef::Client {
                client_id: self.client_id.clone().unwrap_or_default(),
                token: Some(TokenRef::Opaque(self.token_id.clone())),
            },
        }
    }
}

/// What the gate decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateDecision {
    /// Let it through.
    Allow {
        /// Who.
        principal: Principal,
        /// The per-credential limit that was counted, if any (for headers).
        rate: Option<RateOutcome>,
    },
    /// Unknown, malformed, expired, revoked or disabled; or meant for another audience.
    InvalidToken {
        /// A short reason for logs and `error_description` (never the token).
        reason: &'static str,
        /// The credential id, when the bearer was recognised.
        token_id: Option<String>,
    },
    /// Genuine, but lacking scopes.
    InsufficientScope {
        /// Who.
        principal: Principal,
        /// The scopes asked for.
        required: Vec<String>,
    },
    /// The credential may not be used from this IP.
    ForbiddenIp {
        /// The credential id.
        token_id: String,
    },
    /// A DPoP-bound token without a valid proof by its key (RFC 9449 §7), or an
    /// unbound token sent with the DPoP scheme.
    InvalidDpop {
        /// Why (for `error_description` and logs).
        reason: String,
        /// Set when the proof must carry this fresh nonce (`use_dpop_nonce`).
        nonce: Option<String>,
        /// The credential id.
        token_id: String,
    },
    /// Over a rate limit (`None`: a usage quota is spent, which never refills).
    RateLimited {
        /// The credential id.
        token_id: String,
        /// The limit hit.
        rate: Option<RateOutcome>,
    },
}

/// A forward-auth question.
#[derive(Debug, Clone)]
pub struct GateRequest<'a> {
    /// The bearer, as presented.
    pub token: &'a str,
    /// The end client's address.
    pub ip: IpAddr,
    /// Scopes the route needs.
    pub required: &'a [String],
    /// When not empty, an access token's `aud` must contain one of these.
    pub audiences: &'a [String],
    /// How the token was presented, with its proof, for DPoP-bound tokens.
    pub dpop: DpopPresentation<'a>,
}

/// The DPoP side of a request (RFC 9449 §7).
#[derive(Debug, Clone, Copy, Default)]
pub struct DpopPresentation<'a> {
    /// `Authorization: DPoP …` rather than `Bearer`.
    pub scheme: bool,
    /// The `DPoP` header: the proof.
    pub proof: Option<&'a str>,
    /// The original request's method.
    pub htm: &'a str,
    /// The original request's absolute URI, when the proxy said enough to build it.
    pub htu: Option<&'a str>,
}

impl Authority {
    /// Decides a forward-auth request; refusals are audited (sampled per credential,
    /// or per address for unrecognised bearers).
    pub async fn gate(&self, req: &GateRequest<'_>) -> Result<GateDecision, ServiceError> {
        let d = self.decide_gate(req).await?;
        match &d {
            GateDecision::Allow { principal, .. } if principal.kind != BearerKind::ApiKey => {
                // API keys were observed by their own verification.
                self.observe_use(&principal.credential_ref(), Some(req.ip))
                    .await?;
            }
            GateDecision::InvalidToken { token_id: None, .. } => {
                self.observe_failure(Some(req.ip), None).await?;
            }
            _ => {}
        }
        let refusal = match &d {
            GateDecision::Allow { .. } => None,
            GateDecision::InvalidToken { reason, token_id } => Some((*reason, token_id.clone())),
            GateDecision::InsufficientScope { principal, .. } => {
                Some(("insufficient scope", Some(principal.token_id.clone())))
            }
            GateDecision::ForbiddenIp { token_id } => {
                Some(("address not allowed", Some(token_id.clone())))
            }
            GateDecision::RateLimited { token_id, .. } => {
                Some(("rate limited", Some(token_id.clone())))
            }
            GateDecision::InvalidDpop { token_id, .. } => {
                Some(("DPoP proof missing or invalid", Some(token_id.clone())))
            }
        };
        if let Some((reason, id)) = refusal {
            let mut e = crate::audit::AuditEvent::new("forward_auth.refused")
                .outcome(crate::audit::Outcome::Refused, reason);
            let key = match id {
                Some(id) => {
                    e = e.credential(id.clone());
                    id
                }
                None => req.ip.to_string(),
            };
            self.audit_refusal(e, &key);
        }
        Ok(d)
    }

    async fn decide_gate(&self, req: &GateRequest<'_>) -> Result<GateDecision, ServiceError> {
        let token = req.token.trim();
        if token.is_empty() || token.len() > 8_192 {
            return Ok(invalid("malformed token", None));
        }
        let known = self.find_live(token).await?;
        let bound = match &known {
            Some(Known::Jwt(c)) => c.jkt().map(str::to_owned),
            Some(Known::Opaque(r)) => r.jkt.clone(),
            _ => None,
        };
        if let Some(refused) = self.check_presentation(req, token, bound.as_deref(), &known) {
            return Ok(refused);
        }
        let (principal, own_limit) = match known {
            None => return Ok(invalid("unknown, expired or revoked token", None)),
            Some(Known::ApiKey(rec, digest)) => return self.gate_api_key(req, &rec, &digest).await,
            Some(Known::Jwt(c)) => (
                Principal {
                    kind: BearerKind::Jwt,
                    subject: c.sub.clone(),
                    client_id: Some(c.client_id.clone()),
                    scopes: words(&c.scope),
                    token_id: c.jti.clone(),
                    audiences: c.aud.to_vec(),
                    expires_at: Some(c.exp),
                },
                self.client_limit(&c.client_id).await?,
            ),
            Some(Known::Opaque(r)) => (
                Principal {
                    kind: BearerKind::Opaque,
                    subject: r.subject.clone(),
                    client_id: Some(r.client_id.clone()),
                    scopes: words(&r.scope),
                    token_id: r.id.clone(),
                    audiences: r.audience.to_vec(),
                    expires_at: Some(r.expires_at),
                },
                self.client_limit(&r.client_id).await?,
            ),
            Some(Known::Pat(p)) => {
                self.note_pat_use(&p.id, self.now(), Some(req.ip));
                (
                    Principal {
                        kind: BearerKind::PersonalAccessToken,
                        subject: p.user_id.clone(),
                        client_id: None,
                        scopes: words(&p.scopes),
                        token_id: p.id.clone(),
                        audiences: Vec::new(),
                        expires_at: p.expires_at,
                    },
                    None,
                )
            }
        };
        if !req.audiences.is_empty()
            && principal.kind != BearerKind::PersonalAccessToken
            && !principal
                .audiences
                .iter()
                .any(|a| req.audiences.contains(a))
        {
            return Ok(invalid(
                "the token is meant for another audience",
                Some(principal.token_id),
            ));
        }
        if !req.required.iter().all(|s| principal.scopes.contains(s)) {
            return Ok(GateDecision::InsufficientScope {
                principal,
                required: req.required.to_vec(),
            });
        }
        // A client's own limit is one budget for all its tokens; the default counts per token.
        let who = match (&own_limit, &principal.client_id) {
            (Some(_), Some(client)) => format!("client:{client}"),
            _ => format!("token:{}", principal.token_id),
        };
        let rate = self
            .rate_check(
                RouteClass::ForwardAuth,
                Partition::Credential,
                &who,
                own_limit,
            )
            .await;
        if let Some(r) = &rate {
            if !r.decision.allowed {
                return Ok(GateDecision::RateLimited {
                    token_id: principal.token_id,
                    rate: rate.clone(),
                });
            }
        }
        Ok(GateDecision::Allow { principal, rate })
    }

    /// RFC 9449 §7: a bound token needs the DPoP scheme and a valid proof by its key
    /// over this request and this token; an unbound token may not use the DPoP scheme.
    fn check_presentation(
        &self,
        req: &GateRequest<'_>,
        token: &str,
        bound: Option<&str>,
        known: &Option<Known>,
    ) -> Option<GateDecision> {
        let d = &req.dpop;
        // The common case, an unbound token as Bearer, costs nothing more.
        if bound.is_none() && !d.scheme {
            return None;
        }
        let token_id = match known {
            Some(Known::Jwt(c)) => c.jti.clone(),
            Some(Known::Opaque(r)) => r.id.clone(),
            _ => String::new(),
        };
        let refuse = |reason: &str, nonce: Option<String>| {
            Some(GateDecision::InvalidDpop {
                reason: reason.to_owned(),
                nonce,
                token_id: token_id.clone(),
            })
        };
        let Some(jkt) = bound else {
            return known.is_some().then(|| {
                invalid(
                    "the token is not bound to a DPoP key: use the Bearer scheme",
                    Some(token_id.clone()),
                )
            });
        };
        if !d.scheme {
            return refuse(
                "the token is bound to a DPoP key: send it with the DPoP scheme and a proof",
                None,
            );
        }
        let Some(proof) = d.proof else {
            return refuse("a DPoP proof is required with this token", None);
        };
        let Some(htu) = d.htu else {
            return refuse(
                "the proxy did not forward the original URL (X-Forwarded-Proto, -Host, -Uri)",
                None,
            );
        };
        match self.check_dpop_proof(proof, d.htm, htu, Some(token)) {
            Ok(p) if p.jkt == jkt => None,
            Ok(_) => refuse(
                "the DPoP proof is signed by another key than the token's",
                None,
            ),
            Err(ServiceError::UseDpopNonce(n)) => refuse("a fresh DPoP nonce is required", Some(n)),
            Err(e) => refuse(&e.to_string(), None),
        }
    }

    async fn client_limit(&self, client_id: &str) -> Result<Option<RateLimit>, ServiceError> {
        let Ok(id) = client_id.parse::<ClientId>() else {
            return Ok(None);
        };
        Ok(self.cached_client(&id).await?.and_then(|c| c.rate_limit))
    }

    async fn gate_api_key(
        &self,
        req: &GateRequest<'_>,
        rec: &Arc<crate::apikeys::KeyRecord>,
        digest: &[u8; 32],
    ) -> Result<GateDecision, ServiceError> {
        let v = self
            .verify_found_key(
                rec,
                digest,
                &VerifyRequest {
                    key: req.token.to_owned(),
                    scopes: req.required.to_vec(),
                    ip: Some(req.ip),
                },
            )
            .await?;
        let id = v.key_id.clone().unwrap_or_default();
        let principal = Principal {
            kind: BearerKind::ApiKey,
            subject: v.owner.clone().unwrap_or_default(),
            client_id: None,
            scopes: v.scopes.clone().unwrap_or_default(),
            token_id: id.clone(),
            audiences: Vec::new(),
            expires_at: v.expires,
        };
        let key_rate = |v: &crate::apikeys::VerifyResponse| {
            let s = v.ratelimit.as_ref()?;
            let limit = RateLimit {
                limit: s.limit,
                period_secs: s.window,
            };
            let now_ms = crate::ratelimit::now_us() / 1_000;
            Some(RateOutcome {
                policy: "api-key",
                limit,
                decision: portcullis_core::limits::GcraDecision {
                    allowed: v.code != VerifyCode::RateLimited,
                    tat_us: 0,
                    remaining: s.remaining,
                    reset_after_ms: s.reset.saturating_sub(now_ms),
                },
            })
        };
        Ok(match v.code {
            VerifyCode::Valid => {
                let rate = match key_rate(&v) {
                    Some(r) => Some(r),
                    None => {
                        let r = self
                            .rate_check(
                                RouteClass::ForwardAuth,
                                Partition::Credential,
                                &format!("key:{id}"),
                                None,
                            )
                            .await;
                        if let Some(r) = r.as_ref().filter(|r| !r.decision.allowed) {
                            return Ok(GateDecision::RateLimited {
                                token_id: id,
                                rate: Some(r.clone()),
                            });
                        }
                        r
                    }
                };
                GateDecision::Allow { principal, rate }
            }
            VerifyCode::NotFound => invalid("unknown API key", None),
            VerifyCode::Expired => invalid("the API key has expired", Some(id)),
            VerifyCode::Revoked => invalid("the API key is revoked", Some(id)),
            VerifyCode::Disabled => invalid("the API key is disabled", Some(id)),
            VerifyCode::ForbiddenIp => GateDecision::ForbiddenIp { token_id: id },
            VerifyCode::InsufficientScope => GateDecision::InsufficientScope {
                principal,
                required: req.required.to_vec(),
            },
            VerifyCode::RateLimited => GateDecision::RateLimited {
                token_id: id,
                rate: key_rate(&v),
            },
            VerifyCode::UsageExceeded => GateDecision::RateLimited {
                token_id: id,
                rate: None,
            },
        })
    }
}

fn invalid(reason: &'static str, token_id: Option<String>) -> GateDecision {
    GateDecision::InvalidToken { reason, token_id }
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}
