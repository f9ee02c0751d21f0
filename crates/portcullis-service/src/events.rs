//! The security event feed: what offline verifiers must learn, in order, with
//! resume. Events are stored (see the `security_events` table) and read by
//! sequence number; a watch channel wakes the readers in this process after
//! each append, and [`Authority::poll_events`] notices appends made by other
//! processes (the CLI, other nodes).
//!
//! Each event is rendered as a Security Event Token payload (RFC 8417): `iss`,
//! `jti` (the sequence number), `iat`, and one member of `events` keyed by the
//! event type URI. Types follow the OpenID Shared Signals CAEP vocabulary where
//! it has one (`session-revoked`, `credential-change`); where it has none, the
//! type is a Portcullis URN (`token-revoked`, `signing-key-retired`). Subjects use
//! the RFC 9493 `opaque` format. The SETs are not signed: the stream is read by an
//! authenticated client over the server's own TLS connection.

use portcullis_store::{NewSecurityEvent, SecurityEventRow};
use serde::Serialize;
use serde_json::{json, Value};

use crate::{Authority, ServiceError};

/// An access token was revoked: a JWT (subject: its `jti`) or an opaque token
/// (subject: its id). Refuse it until its `exp`.
pub const TOKEN_REVOKED: &str = "token_revoked";
/// An API key or personal access token was revoked (or deleted). With
/// `all_of_subject: true` the subject is a user, all of whose PATs were revoked.
pub const KEY_REVOKED: &str = "key_revoked";
/// A browser session ended (sign-out, expiry by an administrator, password change).
pub const SESSION_ENDED: &str = "session_ended";
/// A signing key was removed from the JWK Set: tokens it signed are no longer valid.
pub const SIGNING_KEY_RETIRED: &str = "signing_key_retired";

/// The SET event type URI of each kind.
pub fn event_type_uri(kind: &str) -> &'static str {
    match kind {
        TOKEN_REVOKED => "urn:portcullis:secevent:token-revoked",
        KEY_REVOKED => "https://schemas.openid.net/secevent/caep/event-type/credential-change",
        SESSION_ENDED => "https://schemas.openid.net/secevent/caep/event-type/session-revoked",
        SIGNING_KEY_RETIRED => "urn:portcullis:secevent:signing-key-retired",
        _ => "urn:portcullis:secevent:unknown",
    }
}

/// How long events that are not about a JWT are kept (a verifier that was away
/// longer starts over from a fresh JWK Set and cache anyway).
const OTHER_EVENT_RETENTION_SECS: i64 = 86_400;

/// One feed event, ready to send.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecurityEvent {
    /// Position in the feed (the SSE `id`).
    pub seq: i64,
    /// The short kind (the SSE `event`).
    pub kind: String,
    /// The SET payload (the SSE `data`).
    pub set: Value,
}

/// Wakes feed readers: holds the newest sequence number appended in this process.
#[derive(Debug)]
pub(crate) struct EventSignal {
    tx: tokio::sync::watch::Sender<i64>,
}

impl Default for EventSignal {
    fn default() -> Self {
        Self {
            tx: tokio::sync::watch::channel(0).0,
        }
    }
}

impl EventSignal {
    fn bump(&self, seq: i64) {
        self.tx.send_if_modified(|cur| {
            let moved = seq > *cur;
            if moved {
                *cur = seq;
            }
            moved
        });
    }
}

impl Authority {
    /// Appends an event about `subject` and wakes the readers.
    pub(crate) async fn security_event(
        &self,
        kind: &'static str,
        subject: &str,
        details: Value,
    ) -> Result<(), ServiceError> {
        let now = self.now();
        let seq = self
            .store
            .append_security_event(&NewSecurityEvent {
                kind,
                subject: subject.to_owned(),
                details: details.to_string(),
                at_ms: self.now_ms(),
                expires_at: now + OTHER_EVENT_RETENTION_SECS,
            })
            .await?;
        self.events.bump(seq);
        Ok(())
    }

    /// Wakes the readers after the store appended events itself (a JWT revocation
    /// writes its event in the deny-list transaction).
    pub(crate) async fn events_appended(&self) -> Result<(), ServiceError> {
        let head = self.store.security_event_head().await?;
        self.events.bump(head);
        Ok(())
    }

    /// Notices events appended by other processes (other nodes, the CLI) and applies
    /// their JWT revocations to this process's deny list, so every node refuses a
    /// revoked JWT within one change-poll tick; then wakes the feed's readers. The
    /// server calls this every `database.change_poll_interval`.
    pub async fn poll_events(&self) -> Result<(), ServiceError> {
        use std::sync::atomic::Ordering;
        loop {
            let after = self.events_applied.load(Ordering::SeqCst);
            let rows = self.store.security_events_after(after, 1_000).await?;
            let Some(last) = rows.last().map(|r| r.seq) else {
                break;
            };
            // Opaque tokens are cached by digest, which the event does not carry (it
            // names the token's id): any revocation drops the whole cache, as a local
            // revocation by id does. Revocations are rare next to introspections.
            if rows.iter().any(|r| r.kind == TOKEN_REVOKED) {
                self.opaque_cache.clear();
            }
            for r in rows.iter().filter(|r| r.kind == TOKEN_REVOKED) {
                let exp = serde_json::from_str::<Value>(&r.details)
                    .ok()
                    .and_then(|d| d["exp"].as_i64())
                    .unwrap_or(r.expires_at);
                self.remember_revoked_jti(r.subject.clone(), exp);
            }
            self.events_applied.fetch_max(last, Ordering::SeqCst);
            if rows.len() < 1_000 {
                break;
            }
        }
        self.events_appended().await
    }

    /// A receiver that changes whenever the feed grows.
    pub fn watch_events(&self) -> tokio::sync::watch::Receiver<i64> {
        self.events.tx.subscribe()
    }

    /// Events after `after`, oldest first, at most `limit`, as SETs.
    pub async fn events_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<SecurityEvent>, ServiceError> {
        let rows = self.store.security_events_after(after, limit).await?;
        Ok(rows.into_iter().map(|r| self.render_event(r)).collect())
    }

    fn render_event(&self, r: SecurityEventRow) -> SecurityEvent {
        let details: Value = serde_json::from_str(&r.details).unwrap_or_else(|_| json!({}));
        let at = r.at_ms / 1000;
        let mut body = json!({
            "subject": {"format": "opaque", "id": r.subject},
            "event_timestamp": at,
        });
        if let (Some(b), Some(d)) = (body.as_object_mut(), details.as_object()) {
            for (k, v) in d {
                b.insert(k.clone(), v.clone());
            }
        }
        if r.kind == KEY_REVOKED {
            body["change_type"] = json!("revoke");
        }
        let set = json!({
            "iss": self.config.issuer,
            "jti": r.seq.to_string(),
            "iat": at,
            "events": { event_type_uri(&r.kind): body },
        });
        SecurityEvent {
            seq: r.seq,
            kind: r.kind,
            set,
        }
    }
}
