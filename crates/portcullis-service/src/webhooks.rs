//! Webhooks: audit events pushed to subscribers, signed, retried, logged.
//!
//! A subscription names event types (`token.revoked`), prefixes (`anomaly.`) or
//! `*`. When the audit writer appends a batch, it adds one outbox row per matching
//! subscription **in the same transaction**, so an event is never lost to a
//! restart. A delivery job ([`Authority::deliver_due_webhooks`]) claims due rows
//! (so two nodes never send the same attempt), POSTs the event as JSON with
//! `Portcullis-Signature: t=…,v1=…` (see [`portcullis_core::webhook`]), and
//! retries failures with exponential backoff up to a limit, logging each attempt.
//! Receivers deduplicate by `Portcullis-Delivery-Id` (stable across retries).

use std::sync::Arc;

use async_trait::async_trait;
use portcullis_core::secret::{OpaqueSecret, WEBHOOK_SECRET_PREFIX};
use portcullis_store::{AttemptResult, WebhookRow};
use serde::Serialize;
use serde_json::json;

use crate::audit::{AuditEvent, AuditRecord};
use crate::{Authority, ServiceError};

/// Most subscriptions.
pub const MAX_WEBHOOKS: usize = 100;

/// Sends one signed request; implemented by the server with an HTTP client.
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// POSTs `body` with `headers`; the status, or a transport error.
    async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<u16, String>;
}

/// Delivery policy.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Delay after the first failure; doubles each time.
    pub base_ms: i64,
    /// Longest delay between attempts.
    pub max_delay_ms: i64,
    /// Attempts before giving up.
    pub max_attempts: i64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_ms: 10_000,
            max_delay_ms: 3_600_000,
            max_attempts: 12,
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `n + 1` after `n` failures.
    pub fn delay_ms(&self, failures: i64) -> i64 {
        let exp = failures.clamp(1, 40) - 1;
        self.base_ms
            .saturating_mul(1_i64 << exp.min(30))
            .min(self.max_delay_ms)
    }
}

/// A subscription as shown (never the secret).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookView {
    /// Id.
    pub id: String,
    /// Target URL.
    pub url: String,
    /// Event types or prefixes.
    pub events: Vec<String>,
    /// Enabled.
    pub enabled: bool,
    /// Created (unix seconds).
    pub created_at: i64,
}

impl From<&WebhookRow> for WebhookView {
    fn from(w: &WebhookRow) -> Self {
        Self {
            id: w.id.clone(),
            url: w.url.clone(),
            events: w.events.split_whitespace().map(str::to_owned).collect(),
            enabled: w.enabled,
            created_at: w.created_at,
        }
    }
}

/// A new subscription with its signing secret, shown once.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedWebhook {
    /// The subscription.
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// The signing secret (shown once; stored sealed under the master key).
    pub secret: String,
}

/// One logged attempt.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryAttempt {
    /// Delivery id (stable across retries).
    pub delivery_id: String,
    /// The audit record sent.
    pub event_seq: i64,
    /// 1, 2, 3, …
    pub attempt: i64,
    /// When (RFC 3339).
    pub time: String,
    /// HTTP status, when one came back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
    /// Transport error otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Duration, ms.
    pub duration_ms: i64,
}

/// True when a subscription's `events` list covers `kind`.
pub fn matches(events: &str, kind: &str) -> bool {
    events
        .split_whitespace()
        .any(|e| e == "*" || e == kind || (e.ends_with('.') && kind.starts_with(e)))
}

fn check_event(e: &str) -> bool {
    e == "*"
        || (!e.is_empty()
            && e.len() <= 64
            && e.chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
            && !e.starts_with('.')
            && !e.contains(".."))
}

impl Authority {
    /// Subscribes `url` to `events`. The secret is returned once.
    pub async fn create_webhook(
        &self,
        url: &str,
        events: &[String],
    ) -> Result<CreatedWebhook, ServiceError> {
        let u = url::Url::parse(url.trim())
            .map_err(|e| ServiceError::invalid("url", format!("not an absolute URL ({e})")))?;
        if !matches!(u.scheme(), "http" | "https") || u.host().is_none() {
            return Err(ServiceError::invalid(
                "url",
                "must be an http(s) URL with a host",
            ));
        }
        if !u.username().is_empty() || u.password().is_some() || u.fragment().is_some() {
            return Err(ServiceError::invalid(
                "url",
                "must not carry credentials or a fragment",
            ));
        }
        if events.is_empty() || events.len() > 50 {
            return Err(ServiceError::invalid("events", "give 1 to 50 event types"));
        }
        if let Some(bad) = events.iter().find(|e| !check_event(e)) {
            return Err(ServiceError::invalid(
                "events",
                format!("{bad:?} is not an event type (token.revoked), a prefix (token.) or *"),
            ));
        }
        if self.store.list_webhooks().await?.len() >= MAX_WEBHOOKS {
            return Err(ServiceError::Conflict(format!(
                "at most {MAX_WEBHOOKS} webhooks"
            )));
        }
        let id = portcullis_core::ids::TokenId::new().to_string();
        let secret = OpaqueSecret::generate(WEBHOOK_SECRET_PREFIX);
        let sealed = self
            .sealer
            .seal(secret.expose().as_bytes(), &id)
            .map_err(anyhow::Error::from)?;
        let row = WebhookRow {
            id: id.clone(),
            url: u.to_string(),
            events: events.join(" "),
            secret_sealed: sealed,
            enabled: true,
            created_at: self.now(),
        };
        self.store.insert_webhook(&row).await?;
        self.audit_writer.subscriptions.lock().await.invalidate();
        self.audit(
            AuditEvent::new("webhook.created")
                .subject(id)
                .details(json!({"url": row.url, "events": events})),
        )
        .await?;
        Ok(CreatedWebhook {
            webhook: WebhookView::from(&row),
            secret: secret.expose().to_owned(),
        })
    }

    /// All subscriptions.
    pub async fn list_webhooks(&self) -> Result<Vec<WebhookView>, ServiceError> {
        Ok(self
            .store
            .list_webhooks()
            .await?
            .iter()
            .map(WebhookView::from)
            .collect())
    }

    /// Removes a subscription and its pending deliveries.
    pub async fn delete_webhook(&self, id: &str) -> Result<(), ServiceError> {
        if !self.store.delete_webhook(id).await? {
            return Err(ServiceError::NotFound(format!("webhook {id}")));
        }
        self.audit_writer.subscriptions.lock().await.invalidate();
        self.audit(AuditEvent::new("webhook.deleted").subject(id))
            .await?;
        Ok(())
    }

    /// The latest attempts of a subscription, newest first.
    pub async fn webhook_attempts(
        &self,
        id: &str,
        limit: i64,
    ) -> Result<Vec<DeliveryAttempt>, ServiceError> {
        if !self.store.list_webhooks().await?.iter().any(|w| w.id == id) {
            return Err(ServiceError::NotFound(format!("webhook {id}")));
        }
        Ok(self
            .store
            .list_attempts(id, limit.clamp(1, 1_000))
            .await?
            .into_iter()
            .map(|a| DeliveryAttempt {
                delivery_id: a.outbox_id,
                event_seq: a.audit_seq,
                attempt: a.attempt,
                time: crate::audit::rfc3339_ms(a.at_ms),
                status: a.status,
                error: a.error,
                duration_ms: a.duration_ms,
            })
            .collect())
    }

    /// One pass of the delivery job: sends what is due (at most `batch`), records
    /// each attempt. Returns how many were attempted.
    pub async fn deliver_due_webhooks(
        &self,
        sender: &dyn WebhookSender,
        policy: RetryPolicy,
        batch: i64,
    ) -> Result<usize, ServiceError> {
        let now = self.now_ms();
        let due = self.store.due_deliveries(now, batch).await?;
        let mut n = 0;
        for d in due {
            // A lease: another node (or a slow previous pass) will not pick it up meanwhile.
            if !self
                .store
                .claim_delivery(&d.id, d.next_attempt_ms, now + 60_000)
                .await?
            {
                continue;
            }
            n += 1;
            let attempt = d.attempts + 1;
            let Some(row) = self.store.audit_record(d.audit_seq).await? else {
                // Pruned before it could be delivered: give up on it, logged.
                self.store
                    .record_attempt(&AttemptResult {
                        outbox_id: d.id.clone(),
                        attempt,
                        at_ms: now,
                        status: None,
                        error: Some("the audit record was pruned before delivery".into()),
                        duration_ms: 0,
                        delivered: false,
                        failed: true,
                        next_attempt_ms: now,
                    })
                    .await?;
                continue;
            };
            let record = AuditRecord::from(row);
            let body = serde_json::to_vec(&json!({
                "id": format!("evt_{}", record.seq),
                "type": record.kind,
                "created": record.time,
                "data": record,
            }))
            .map_err(anyhow::Error::from)?;
            let secret = self
                .sealer
                .open(&d.secret_sealed, &d.webhook_id)
                .map_err(anyhow::Error::from)?;
            let secret = String::from_utf8(secret).map_err(anyhow::Error::from)?;
            let t = now / 1_000;
            let headers = [
                (
                    portcullis_core::webhook::SIGNATURE_HEADER,
                    portcullis_core::webhook::header(&secret, t, &body),
                ),
                ("portcullis-delivery-id", d.id.clone()),
                ("portcullis-event-id", format!("evt_{}", d.audit_seq)),
                ("portcullis-delivery-attempt", attempt.to_string()),
            ];
            let started = std::time::Instant::now();
            let result = sender.post(&d.url, &headers, body).await;
            let duration_ms = started.elapsed().as_millis() as i64;
            let (status, error) = match &result {
                Ok(s) => (Some(i64::from(*s)), None),
                Err(e) => (None, Some(e.chars().take(300).collect::<String>())),
            };
            let delivered = matches!(result, Ok(s) if (200..300).contains(&s));
            let failed = !delivered && attempt >= policy.max_attempts;
            let next = now + policy.delay_ms(attempt);
            if delivered {
                tracing::debug!(delivery = %d.id, attempt, "webhook delivered");
            } else {
                tracing::warn!(delivery = %d.id, attempt, status = ?status, error = ?error, gave_up = failed, "webhook delivery failed");
            }
            self.store
                .record_attempt(&AttemptResult {
                    outbox_id: d.id.clone(),
                    attempt,
                    at_ms: now,
                    status,
                    error,
                    duration_ms,
                    delivered,
                    failed,
                    next_attempt_ms: next,
                })
                .await?;
        }
        Ok(n)
    }
}

/// Subscriptions as the audit writer matches them, refreshed at most once a second.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    loaded_at: Option<std::time::Instant>,
    subs: Arc<Vec<(String, String)>>,
}

impl Subscriptions {
    /// The enabled subscriptions as (id, events), reloading from `store` when stale.
    pub(crate) async fn current(
        &mut self,
        store: &dyn portcullis_store::Store,
    ) -> Arc<Vec<(String, String)>> {
        let stale = self
            .loaded_at
            .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1));
        if stale {
            match store.list_webhooks().await {
                Ok(rows) => {
                    self.subs = Arc::new(
                        rows.into_iter()
                            .filter(|w| w.enabled)
                            .map(|w| (w.id, w.events))
                            .collect(),
                    );
                    self.loaded_at = Some(std::time::Instant::now());
                }
                Err(e) => tracing::warn!(error = %e, "webhook subscriptions could not be loaded"),
            }
        }
        self.subs.clone()
    }

    /// Forces a reload on next use (after a change made here).
    pub(crate) fn invalidate(&mut self) {
        self.loaded_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_patterns_match_exact_types_prefixes_and_star() {
        assert!(matches("token.revoked", "token.revoked"));
        assert!(!matches("token.revoked", "token.issued"));
        assert!(matches("token. apikey.revoked", "token.issued"));
        assert!(matches("*", "anything.at_all"));
        assert!(!matches("token", "token.issued"), "a prefix ends with '.'");
        assert!(check_event("anomaly."));
        assert!(!check_event("Token.Revoked"));
        assert!(!check_event(".x"));
        assert!(!check_event("a..b"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            base_ms: 1_000,
            max_delay_ms: 10_000,
            max_attempts: 5,
        };
        assert_eq!(
            (1..=6).map(|n| p.delay_ms(n)).collect::<Vec<_>>(),
            [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]
        );
    }
}
