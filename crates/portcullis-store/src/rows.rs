//! Records as stored. Lists are kept as JSON text so one schema fits SQLite and PostgreSQL.

use std::fmt;

/// Where a signing key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningKeyState {
    /// Published in the JWKS, not yet signing: verifiers learn it ahead of use.
    Next,
    /// Signing new tokens (one per algorithm).
    Active,
    /// No longer signing; published until every token it signed has expired.
    Retired,
}

impl SigningKeyState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retired => "retired",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "next" => Some(Self::Next),
            "active" => Some(Self::Active),
            "retired" => Some(Self::Retired),
            _ => None,
        }
    }
}

impl fmt::Display for SigningKeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A signing key as stored: public JWK in clear, private key sealed under the master key.
#[derive(Clone, sqlx::FromRow)]
pub struct SigningKeyRow {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// JOSE algorithm name.
    pub alg: String,
    /// The public JWK, JSON.
    pub public_jwk: String,
    /// AES-256-GCM sealed PKCS#8, base64.
    pub private_key_sealed: String,
    /// `next`, `active` or `retired`.
    pub state: String,
    /// When generated.
    pub created_at: i64,
    /// When it starts (or started) signing.
    pub activate_at: i64,
    /// When it stopped signing.
    pub retired_at: Option<i64>,
}

impl fmt::Debug for SigningKeyRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyRow")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .field("created_at", &self.created_at)
            .field("activate_at", &self.activate_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// An OAuth client as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ClientRow {
    /// Client id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// HMAC-SHA256 of the secret under the pepper (hex); `None` for public clients.
    pub secret_digest: Option<String>,
    /// Display hint of the secret (prefix + last 4).
    pub secret_hint: Option<String>,
    /// Allowed grant types, space-separated.
    pub grant_types: String,
    /// Registered redirect URIs, JSON array.
    pub redirect_uris: String,
    /// Allowed scopes, space-separated.
    pub scopes: String,
    /// Scopes granted when none are requested, space-separated.
    pub default_scopes: String,
    /// Audiences the client may request with `resource`, JSON array.
    pub audiences: String,
    /// Audience used when none is requested.
    pub default_audience: Option<String>,
    /// `jwt` or `opaque`.
    pub token_format: String,
    /// JOSE algorithm for JWT access tokens.
    pub access_token_alg: String,
    /// Access token lifetime, seconds.
    pub access_token_ttl: i64,
    /// Created, seconds since the epoch.
    pub created_at: i64,
    /// Last changed, seconds since the epoch.
    pub updated_at: i64,
    /// The client's own rate limit (`N/period`), overriding the class default.
    pub rate_limit: Option<String>,
    /// Where RP-initiated logout may send the browser, JSON array (exact match).
    pub post_logout_redirect_uris: String,
    /// Sliding refresh-token lifetime, seconds.
    pub refresh_token_ttl: i64,
    /// Absolute refresh-token family lifetime, seconds.
    pub refresh_token_max_ttl: i64,
    /// Users of this client must pass MFA.
    pub require_mfa: bool,
    /// First-party client: no consent page.
    pub first_party: bool,
    /// Every token request must carry a DPoP proof (RFC 9449).
    pub require_dpop: bool,
}

/// An opaque token as stored: its digest and what it grants, never the token.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OpaqueTokenRow {
    /// Token id (reported as `jti` by introspection).
    pub id: String,
    /// HMAC-SHA256 of the token under the pepper (hex).
    pub digest: String,
    /// `access_token` for now; refresh tokens and PATs join later.
    pub kind: String,
    /// Client it was issued to.
    pub client_id: String,
    /// Subject.
    pub subject: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Audiences, JSON array.
    pub audience: String,
    /// Issued, seconds since the epoch.
    pub issued_at: i64,
    /// Expires, seconds since the epoch.
    pub expires_at: i64,
    /// Revoked, when it was.
    pub revoked_at: Option<i64>,
    /// DPoP key thumbprint the token is bound to.
    pub jkt: Option<String>,
}

/// One event of the security event feed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SecurityEventRow {
    /// Position in the feed: only grows.
    pub seq: i64,
    /// When it happened, milliseconds since the epoch.
    pub at_ms: i64,
    /// `token_revoked`, `key_revoked`, `session_ended`, `signing_key_retired`.
    pub kind: String,
    /// What it is about: a `jti`, a key id, a session id, a `kid`.
    pub subject: String,
    /// JSON object with the rest (`exp`, `client_id`, …).
    pub details: String,
    /// When the event stops mattering (seconds since the epoch); purged after.
    pub expires_at: i64,
}

/// An event to append to the feed; `seq` is assigned by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSecurityEvent {
    /// See [`SecurityEventRow::kind`].
    pub kind: &'static str,
    /// See [`SecurityEventRow::subject`].
    pub subject: String,
    /// See [`SecurityEventRow::details`].
    pub details: String,
    /// See [`SecurityEventRow::at_ms`].
    pub at_ms: i64,
    /// See [`SecurityEventRow::expires_at`].
    pub expires_at: i64,
}

/// A deny-listed JWT id.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RevokedJti {
    /// The token's `jti`.
    pub jti: String,
    /// Client it was issued to.
    pub client_id: String,
    /// The token's `exp`; the entry is useless after it.
    pub expires_at: i64,
    /// When it was revoked.
    pub revoked_at: i64,
}

/// An admin API token as stored (its digest, never the token).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AdminTokenRow {
    /// Token id.
    pub id: String,
    /// HMAC-SHA256 of the token under the pepper (hex).
    pub digest: String,
    /// Display hint.
    pub hint: String,
    /// What it is for.
    pub name: String,
    /// Admin scopes, space-separated.
    pub scopes: String,
    /// Created at.
    pub created_at: i64,
    /// Revoked at.
    pub revoked_at: Option<i64>,
}

/// A keyspace: a named group of API keys sharing a prefix and defaults.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyspaceRow {
    /// Keyspace id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Unique key prefix (e.g. `acme_live`).
    pub prefix: String,
    /// Scopes keys of this keyspace may have, space-separated.
    pub scopes: String,
    /// Scopes of new keys when none are given, space-separated.
    pub default_scopes: String,
    /// Default rate limit of new keys (`N/period`).
    pub rate_limit: Option<String>,
    /// Default lifetime of new keys, seconds.
    pub default_ttl: Option<i64>,
    /// Longest lifetime a key may have, seconds.
    pub max_ttl: Option<i64>,
    /// Created at.
    pub created_at: i64,
    /// Updated at.
    pub updated_at: i64,
}

/// An API key as stored (its digest and a hint, never the key).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiKeyRow {
    /// Key id.
    pub id: String,
    /// Keyspace.
    pub keyspace_id: String,
    /// HMAC-SHA256 of the key under the pepper (hex).
    pub digest: String,
    /// Display hint (prefix and last four characters).
    pub hint: String,
    /// Free-form external owner id.
    pub owner: String,
    /// Name.
    pub name: String,
    /// Scopes, space-separated.
    pub scopes: String,
    /// Metadata, a JSON object.
    pub meta: String,
    /// Uses left, when limited.
    pub remaining: Option<i64>,
    /// Rate limit (`N/period`).
    pub rate_limit: Option<String>,
    /// IP allow list, JSON array of CIDRs.
    pub allow_ips: String,
    /// Disabled keys are refused but kept.
    pub enabled: bool,
    /// Created at.
    pub created_at: i64,
    /// Updated at.
    pub updated_at: i64,
    /// Expires at.
    pub expires_at: Option<i64>,
    /// Last verified at (flushed in batches).
    pub last_used_at: Option<i64>,
    /// Revoked at.
    pub revoked_at: Option<i64>,
    /// Digest of the secret before the last roll.
    pub previous_digest: Option<String>,
    /// When the previous secret stops working.
    pub previous_expires_at: Option<i64>,
}

/// Verification outcomes of one key in one time bucket.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UsageRow {
    /// Bucket start (seconds since the epoch), aligned to the granularity.
    pub bucket_start: i64,
    /// Outcome code (`VALID`, `RATE_LIMITED` …).
    pub outcome: String,
    /// How many.
    pub count: i64,
}

/// What a successful quota decrement left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UseOutcome {
    /// One use taken; this many remain (`None` when unlimited).
    Taken(Option<i64>),
    /// No uses left.
    Exhausted,
}

/// A role: a name for a set of scopes.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RoleRow {
    /// Name.
    pub name: String,
    /// Scopes the role allows, space-separated.
    pub scopes: String,
    /// Created at.
    pub created_at: i64,
}

/// A user (minimal: identity, roles, enabled).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserRow {
    /// Id.
    pub id: String,
    /// Unique username.
    pub username: String,
    /// Email.
    pub email: Option<String>,
    /// Role names, space-separated.
    pub roles: String,
    /// Disabled users' tokens stop working.
    pub enabled: bool,
    /// Created at.
    pub created_at: i64,
    /// Updated at.
    pub updated_at: i64,
    /// Argon2id PHC string; `None`: no password sign-in.
    pub password_hash: Option<String>,
    /// The user must pass MFA at every sign-in.
    pub mfa_required: bool,
    /// TOTP seed sealed under the master key.
    pub totp_secret_sealed: Option<String>,
    /// When TOTP enrolment was confirmed; `None`: not enrolled (yet).
    pub totp_confirmed_at: Option<i64>,
    /// Last TOTP time step accepted.
    pub totp_last_step: Option<i64>,
}

/// A personal access token as stored (its digest, never the token).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PatRow {
    /// Id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// HMAC-SHA256 under the pepper (hex).
    pub digest: String,
    /// Display hint.
    pub hint: String,
    /// Name.
    pub name: String,
    /// Scopes, space-separated.
    pub scopes: String,
    /// Created at.
    pub created_at: i64,
    /// Expires at (`None`: never, where policy allows).
    pub expires_at: Option<i64>,
    /// Last used at.
    pub last_used_at: Option<i64>,
    /// Revoked at.
    pub revoked_at: Option<i64>,
    /// Address it was last used from.
    pub last_used_ip: Option<String>,
}

/// One audit record as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRow {
    /// Position in the chain (1, 2, 3, … with no gaps).
    pub seq: i64,
    /// When, milliseconds since the epoch.
    pub at_ms: i64,
    /// Event type, e.g. `token.revoked`.
    pub kind: String,
    /// `success`, `failure` or `refused`.
    pub outcome: String,
    /// Who acted (admin token id, `cli`, client id, user id).
    pub actor: Option<String>,
    /// Whom it concerns.
    pub subject: Option<String>,
    /// The credential (token, key, PAT id; never the secret).
    pub credential_id: Option<String>,
    /// The OAuth client involved.
    pub client_id: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
    /// Why (refusals, anomalies).
    pub reason: Option<String>,
    /// More, as a JSON object.
    pub details: String,
    /// The previous record's `hash` (the anchor's for the first).
    pub prev_hash: String,
    /// HMAC link over this record and `prev_hash`.
    pub hash: String,
}

/// Where chain verification starts.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditAnchorRow {
    /// Last pruned sequence number (0: nothing pruned).
    pub seq: i64,
    /// Its hash (the genesis value when nothing was pruned).
    pub hash: String,
    /// When retention last pruned.
    pub pruned_at_ms: i64,
    /// HMAC over (seq, hash, pruned_at_ms); empty until the service seals the genesis.
    pub seal: String,
}

/// Filters for reading the audit trail.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Records with `seq` greater than this (cursor).
    pub after_seq: Option<i64>,
    /// At or after, ms.
    pub since_ms: Option<i64>,
    /// Before, ms.
    pub until_ms: Option<i64>,
    /// Event type, exact or a prefix ending in `.` (`token.`).
    pub kind: Option<String>,
    /// Outcome.
    pub outcome: Option<String>,
    /// Actor.
    pub actor: Option<String>,
    /// Subject.
    pub subject: Option<String>,
    /// Credential id.
    pub credential_id: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// Most rows returned.
    pub limit: i64,
    /// Newest first (for `tail`); oldest first otherwise.
    pub newest_first: bool,
}

/// A webhook subscription.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WebhookRow {
    /// Id.
    pub id: String,
    /// Where events are POSTed.
    pub url: String,
    /// Event types or prefixes (`token.`), space-separated; `*` for all.
    pub events: String,
    /// The signing secret, sealed under the master key.
    pub secret_sealed: String,
    /// Deliveries happen only when enabled.
    pub enabled: bool,
    /// Created, seconds since the epoch.
    pub created_at: i64,
}

/// One outbox entry to add with an audit batch: the record at `row_index` of the
/// batch goes to `webhook_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxDraft {
    /// Index into the appended rows.
    pub row_index: usize,
    /// Subscription.
    pub webhook_id: String,
    /// New outbox id.
    pub id: String,
}

/// A delivery that is due, with what it needs.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DueDelivery {
    /// Outbox id.
    pub id: String,
    /// Subscription.
    pub webhook_id: String,
    /// Target URL.
    pub url: String,
    /// Sealed secret.
    pub secret_sealed: String,
    /// Attempts so far.
    pub attempts: i64,
    /// When it was due (the claim compares it).
    pub next_attempt_ms: i64,
    /// The audit record's seq.
    pub audit_seq: i64,
}

/// One delivery attempt, as logged.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AttemptRow {
    /// Outbox id.
    pub outbox_id: String,
    /// The audit record delivered.
    pub audit_seq: i64,
    /// 1, 2, 3, …
    pub attempt: i64,
    /// When, ms.
    pub at_ms: i64,
    /// HTTP status, when one came back.
    pub status: Option<i64>,
    /// Transport error, when no status came back.
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: i64,
}

/// The result of one attempt, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    /// Outbox id.
    pub outbox_id: String,
    /// This attempt's number.
    pub attempt: i64,
    /// When, ms.
    pub at_ms: i64,
    /// HTTP status.
    pub status: Option<i64>,
    /// Transport error.
    pub error: Option<String>,
    /// Duration.
    pub duration_ms: i64,
    /// 2xx: done.
    pub delivered: bool,
    /// Out of attempts: given up.
    pub failed: bool,
    /// When to try again otherwise.
    pub next_attempt_ms: i64,
}

/// A temporary deny of a client network.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct IpBlockRow {
    /// CIDR (a single address is /32 or /128).
    pub network: String,
    /// Why.
    pub reason: String,
    /// Created, unix seconds.
    pub created_at: i64,
    /// Lifted at, unix seconds.
    pub expires_at: i64,
}
