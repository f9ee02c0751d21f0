//! The audit trail: every security event as a structured record, appended to a
//! tamper-evident chain.
//!
//! - **Chain.** Each record's `hash` is HMAC-SHA256 (a key derived from the master
//!   key) over the previous record's hash and this record's content, `seq`
//!   included. Editing, deleting or reordering a row breaks a link that cannot be
//!   recomputed without the master key; [`Authority::audit_verify`] reports the
//!   first broken link. Retention moves a sealed anchor forward, so pruning never
//!   breaks verification. A chain proves what it holds; to detect the loss of the
//!   newest records, keep the head (`seq`, `hash`) that `audit verify` prints
//!   somewhere else, and compare.
//! - **Group commit.** One writer task takes every pending record and appends them
//!   in one transaction. [`Authority::audit`] waits for that commit, so an
//!   operation acknowledged to its caller has its record on disk (`kill -9`
//!   safe); [`Authority::audit_nowait`] is for refusals on hot paths, which are
//!   also sampled per credential or address so floods cannot flood the trail.
//! - **Context.** The HTTP layer runs each request inside [`with_context`]
//!   (client IP, user agent) and the admin extractor names the actor with
//!   [`set_actor`]; the CLI sets `cli`. Service code records events without
//!   threading these through every call. Secrets never enter a record. The same
//!   context carries the request's method, path and id ([`RequestLine`]) for log
//!   lines ([`with_current_request`]), so a request needs no tracing span.

use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use portcullis_core::keys::ChainKey;
use portcullis_core::limits::RateLimit;
use portcullis_store::{AuditAnchorRow, AuditFilter, AuditRow, OutboxDraft, Store};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::{Authority, ServiceError};

/// The hash of the (empty) chain before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const LINK_DOMAIN: &str = "portcullis-audit-record-v1";
const ANCHOR_DOMAIN: &str = "portcullis-audit-anchor-v1";
/// Most records one transaction appends.
const BATCH_MAX: usize = 512;
/// Pending records before callers wait (and `audit_nowait` drops).
const QUEUE: usize = 16_384;
/// How long the writer keeps a batch open for more records when nobody is waiting
/// on it (only queued records: issuance, sampled refusals). A transaction costs the
/// same few statements and one fsync whatever it holds; without the wait, at
/// thousands of issuances a second the writer committed one or two records at a
/// time and its round trips to the SQLite thread took a third of the server's CPU.
/// A record someone waits for ([`Authority::audit`]) closes the batch at once.
/// Queued records are acknowledged before they are durable anyway; this widens
/// that window (a crash loses at most the records of the last few milliseconds).
const LINGER: std::time::Duration = std::time::Duration::from_millis(10);
/// The kind of the marker [`Authority::audit_flush`] queues; never appended.
const FLUSH: &str = "";

/// How an event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Done.
    Success,
    /// Attempted and failed (bad password, bad client secret).
    Failure,
    /// Refused by policy (revoked, rate limited, forbidden IP, anomaly).
    Refused,
}

impl Outcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Refused => "refused",
        }
    }
}

/// One security event, before it is chained.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// Event type: `token.issued`, `apikey.revoked`, `verify.refused`, …
    pub kind: &'static str,
    /// How it ended.
    pub outcome: Outcome,
    /// Who acted; taken from the request context when `None`.
    pub actor: Option<String>,
    /// Whom it concerns.
    pub subject: Option<String>,
    /// The credential's id (never the secret).
    pub credential_id: Option<String>,
    /// The OAuth client.
    pub client_id: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// More, as a JSON object.
    pub details: Value,
}

impl AuditEvent {
    /// A successful event of `kind`.
    pub fn new(kind: &'static str) -> Self {
        Self {
            kind,
            outcome: Outcome::Success,
            actor: None,
            subject: None,
            credential_id: None,
            client_id: None,
            reason: None,
            details: Value::Object(Default::default()),
        }
    }

    /// Sets the outcome and reason.
    pub fn outcome(mut self, o: Outcome, reason: impl Into<String>) -> Self {
        self.outcome = o;
        self.reason = Some(reason.into());
        self
    }

    /// Sets the subject.
    pub fn subject(mut self, s: impl Into<String>) -> Self {
        self.subject = Some(s.into());
        self
    }

    /// Sets the credential id.
    pub fn credential(mut self, id: impl Into<String>) -> Self {
        self.credential_id = Some(id.into());
        self
    }

    /// Sets the client id.
    pub fn client(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// Sets the actor.
    pub fn actor(mut self, a: impl Into<String>) -> Self {
        self.actor = Some(a.into());
        self
    }

    /// Sets details.
    pub fn details(mut self, d: Value) -> Self {
        self.details = d;
        self
    }
}

/// Who is acting and from where, for every event recorded while it is in scope.
#[derive(Debug, Default)]
pub struct AuditContext {
    actor: Mutex<Option<String>>,
    /// Client address.
    pub ip: Option<IpAddr>,
    /// User agent (truncated to 256 characters).
    pub user_agent: Option<String>,
    /// The request being served, for log lines written while it runs.
    pub request: Option<RequestLine>,
}

/// A user agent cut to its first 256 characters (a copy of the string, not a walk
/// over its characters, when it is shorter: the usual case, on every request).
fn truncated_user_agent(ua: &str) -> String {
    if ua.len() <= 256 {
        return ua.to_owned();
    }
    match ua.char_indices().nth(256) {
        Some((end, _)) => ua[..end].to_owned(),
        None => ua.to_owned(),
    }
}

/// What a log line says about the request it was written in: never the query string
/// or a header (they may hold credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLine {
    /// The request method (a standard method's name, or `other`).
    pub method: &'static str,
    /// The path, without the query string.
    pub path: Box<str>,
    /// The request id (`x-request-id`), `-` when there is none.
    pub id: Box<str>,
}

impl AuditContext {
    /// A context for a request from `ip` with `user_agent`.
    pub fn new(ip: Option<IpAddr>, user_agent: Option<&str>) -> Self {
        Self {
            actor: Mutex::new(None),
            ip,
            user_agent: user_agent.map(truncated_user_agent),
            request: None,
        }
    }

    /// The same context, naming the request it serves.
    pub fn serving(self, request: RequestLine) -> Self {
        Self {
            request: Some(request),
            ..self
        }
    }

    /// A context whose actor is fixed (the CLI).
    pub fn with_actor(actor: &str) -> Self {
        Self {
            actor: Mutex::new(Some(actor.to_owned())),
            ..Self::default()
        }
    }

    fn actor(&self) -> Option<String> {
        match self.actor.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

tokio::task_local! {
    static CONTEXT: Arc<AuditContext>;
}

/// Runs `f` with `ctx` as the audit context of every event it records.
pub async fn with_context<F: Future>(ctx: Arc<AuditContext>, f: F) -> F::Output {
    CONTEXT.scope(ctx, f).await
}

/// Names the actor of the current context (the admin extractor calls this).
pub fn set_actor(actor: &str) {
    let _ = CONTEXT.try_with(|c| {
        let mut g = match c.actor.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *g = Some(actor.to_owned());
    });
}

/// Runs `f` on the request line of the current context, if the caller runs inside a
/// request (the log formatter calls this for every line it writes).
pub fn with_current_request<R>(f: impl FnOnce(&RequestLine) -> R) -> Option<R> {
    CONTEXT
        .try_with(|c| c.request.as_ref().map(f))
        .ok()
        .flatten()
}

fn current() -> Option<Arc<AuditContext>> {
    CONTEXT.try_with(Arc::clone).ok()
}

/// The client address of the current request, if any.
pub(crate) fn current_ip() -> Option<IpAddr> {
    current().and_then(|c| c.ip)
}

type Ack = oneshot::Sender<Result<(), String>>;

/// The handle to the writer task.
#[derive(Debug)]
pub(crate) struct AuditWriter {
    tx: mpsc::Sender<(AuditRow, Option<Ack>)>,
    /// Wakes the writer out of its linger when a record with a waiter is queued.
    urgent: Arc<tokio::sync::Notify>,
    /// Webhook subscriptions the writer fans records out to.
    pub(crate) subscriptions: Arc<tokio::sync::Mutex<crate::webhooks::Subscriptions>>,
}

impl AuditWriter {
    /// Starts the writer task over `store`.
    pub(crate) fn start(store: Arc<dyn Store>, key: ChainKey) -> Self {
        let (tx, mut rx) = mpsc::channel::<(AuditRow, Option<Ack>)>(QUEUE);
        let subscriptions = Arc::new(tokio::sync::Mutex::new(
            crate::webhooks::Subscriptions::default(),
        ));
        let subs = subscriptions.clone();
        let urgent = Arc::new(tokio::sync::Notify::new());
        let wake = urgent.clone();
        tokio::spawn(async move {
            let link = move |r: &AuditRow| key.link(LINK_DOMAIN, &r.prev_hash, &canonical(r));
            let mut batch = Vec::with_capacity(BATCH_MAX);
            while let Some(first) = rx.recv().await {
                batch.push(first);
                take_waiting(&mut rx, &mut batch, BATCH_MAX);
                // Linger (see LINGER) unless someone waits for this batch. The
                // writer sleeps rather than taking records one by one, so queued
                // records do not wake it.
                if batch.len() < BATCH_MAX && batch.iter().all(|(_, a)| a.is_none()) {
                    tokio::select! {
                        () = tokio::time::sleep(LINGER) => {}
                        () = wake.notified() => {}
                    }
                    take_waiting(&mut rx, &mut batch, BATCH_MAX);
                }
                let (rows, acks): (Vec<AuditRow>, Vec<Option<Ack>>) = batch.drain(..).unzip();
                // Flush markers (`Authority::audit_flush`) only wait for what is ahead of them.
                let rows: Vec<AuditRow> = rows.into_iter().filter(|r| r.kind != FLUSH).collect();
                let n = rows.len();
                if n == 0 {
                    for ack in acks.into_iter().flatten() {
                        let _ = ack.send(Ok(()));
                    }
                    continue;
                }
                let current = subs.lock().await.current(store.as_ref()).await;
                let outbox: Vec<OutboxDraft> = rows
                    .iter()
                    .enumerate()
                    .flat_map(|(i, r)| {
                        current
                            .iter()
                            .filter(|(_, events)| crate::webhooks::matches(events, &r.kind))
                            .map(move |(id, _)| OutboxDraft {
                                row_index: i,
                                webhook_id: id.clone(),
                                id: portcullis_core::ids::TokenId::new().to_string(),
                            })
                    })
                    .collect();
                let result = store
                    .append_audit(rows, &outbox, &link)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                if let Err(e) = &result {
                    tracing::error!(error = %e, records = n, "audit append failed");
                }
                for ack in acks.into_iter().flatten() {
                    let _ = ack.send(result.clone());
                }
            }
        });
        Self {
            tx,
            urgent,
            subscriptions,
        }
    }
}

/// Group commit: moves whatever is already waiting in `rx` into `batch`, up to
/// `max` items, without waiting for more.
pub(crate) fn take_waiting<T>(rx: &mut mpsc::Receiver<T>, batch: &mut Vec<T>, max: usize) {
    while batch.len() < max {
        match rx.try_recv() {
            Ok(j) => batch.push(j),
            Err(_) => break,
        }
    }
}

/// The bytes a record's link covers: every field but the links, as a JSON array.
fn canonical(r: &AuditRow) -> Vec<u8> {
    // Sized for a whole record at once (`to_vec` starts at 128 bytes and grows).
    let mut buf = Vec::with_capacity(320 + r.details.len());
    let written = serde_json::to_writer(
        &mut buf,
        &(
            r.seq,
            r.at_ms,
            &r.kind,
            &r.outcome,
            &r.actor,
            &r.subject,
            &r.credential_id,
            &r.client_id,
            &r.ip,
            &r.user_agent,
            &r.reason,
            &r.details,
        ),
    );
    match written {
        Ok(()) => buf,
        Err(_) => Vec::new(),
    }
}

fn anchor_body(seq: i64, hash: &str, pruned_at_ms: i64) -> Vec<u8> {
    format!("{seq}\n{hash}\n{pruned_at_ms}").into_bytes()
}

/// An audit record as the API and CLI show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    /// Position in the chain.
    pub seq: i64,
    /// When (RFC 3339, UTC, milliseconds).
    pub time: String,
    /// Milliseconds since the epoch.
    pub at_ms: i64,
    /// Event type.
    pub kind: String,
    /// `success`, `failure` or `refused`.
    pub outcome: String,
    /// Who acted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Whom it concerns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Credential id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_id: Option<String>,
    /// OAuth client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Client IP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// User agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// More.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: Value,
    /// Link to the previous record.
    pub prev_hash: String,
    /// This record's link.
    pub hash: String,
}

impl From<AuditRow> for AuditRecord {
    fn from(r: AuditRow) -> Self {
        Self {
            seq: r.seq,
            time: rfc3339_ms(r.at_ms),
            at_ms: r.at_ms,
            kind: r.kind,
            outcome: r.outcome,
            actor: r.actor,
            subject: r.subject,
            credential_id: r.credential_id,
            client_id: r.client_id,
            ip: r.ip,
            user_agent: r.user_agent,
            reason: r.reason,
            details: serde_json::from_str(&r.details).unwrap_or(Value::Null),
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// `2026-11-22T08:03:50.123Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    let t =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

/// A page of records and the cursor for the next one.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    /// Records, oldest first (newest first with `order=desc`).
    pub events: Vec<AuditRecord>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What chain verification found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditReport {
    /// True when every link holds.
    pub ok: bool,
    /// Records checked.
    pub checked: u64,
    /// Where verification started (last pruned record; 0 when none).
    pub anchor_seq: i64,
    /// The newest record's `seq` (keep it elsewhere to detect a cut tail).
    pub head_seq: i64,
    /// The newest record's hash.
    pub head_hash: String,
    /// The first broken link, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_at: Option<i64>,
    /// What is wrong there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Sampling of refusals: per event type and credential (or address).
pub const REFUSAL_SAMPLE: RateLimit = RateLimit {
    limit: 60,
    period_secs: 60,
};

impl Authority {
    fn audit_row(&self, e: AuditEvent) -> AuditRow {
        let ctx = current();
        let actor = e
            .actor
            .or_else(|| ctx.as_ref().and_then(|c| c.actor()))
            .or_else(|| Some("system".into()));
        AuditRow {
            seq: 0,
            at_ms: self.now_ms(),
            kind: e.kind.to_owned(),
            outcome: e.outcome.as_str().to_owned(),
            actor,
            subject: e.subject,
            credential_id: e.credential_id,
            client_id: e.client_id,
            ip: ctx.as_ref().and_then(|c| c.ip).map(crate::ipfmt::ip_string),
            user_agent: ctx.as_ref().and_then(|c| c.user_agent.clone()),
            reason: e.reason,
            // Into one buffer (`Value`'s `Display` grows a string piece by piece);
            // the same compact text.
            details: serde_json::to_string(&e.details).unwrap_or_default(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    /// Milliseconds since the epoch on the authority's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Records `e` and waits until it is durably chained. Call it before
    /// acknowledging the operation it describes.
    pub async fn audit(&self, e: AuditEvent) -> Result<(), ServiceError> {
        let (ack, done) = oneshot::channel();
        let row = self.audit_row(e);
        self.audit_writer
            .tx
            .send((row, Some(ack)))
            .await
            .map_err(|_| anyhow::anyhow!("audit writer stopped"))?;
        self.audit_writer.urgent.notify_one();
        done.await
            .map_err(|_| anyhow::anyhow!("audit writer stopped"))?
            .map_err(|e| ServiceError::Unexpected(anyhow::anyhow!("audit append failed: {e}")))
    }

    /// Waits until every record queued before this call is committed, without
    /// adding one (graceful shutdown calls it, so no queued record is left behind).
    pub async fn audit_flush(&self) -> Result<(), ServiceError> {
        self.audit(AuditEvent::new(FLUSH)).await
    }

    /// Queues `e` for the next group commit without waiting for it (waiting only
    /// for queue space, so nothing is dropped). For high-rate events whose loss in
    /// a crash within the commit interval is acceptable (token issuance, unless
    /// `audit.wait_for_issuance`).
    pub async fn audit_enqueue(&self, e: AuditEvent) {
        let row = self.audit_row(e);
        if self.audit_writer.tx.send((row, None)).await.is_err() {
            tracing::error!("audit writer stopped: a record was lost");
        }
    }

    /// Records `e` without waiting (refusals on hot paths); dropped, with a warning,
    /// when the writer is saturated.
    pub fn audit_nowait(&self, e: AuditEvent) {
        let row = self.audit_row(e);
        if self.audit_writer.tx.try_send((row, None)).is_err() {
            tracing::warn!("audit queue full: a refusal record was dropped");
        }
    }

    /// Records a refusal, sampled: at most [`REFUSAL_SAMPLE`] per event type and
    /// `key` (a credential id, or an address for unknown credentials).
    pub fn audit_refusal(&self, e: AuditEvent, key: &str) {
        let k = format!("{}:{key}", e.kind);
        if self
            .audit_sampler
            .check_now(&k, REFUSAL_SAMPLE, crate::ratelimit::now_us())
            .allowed
        {
            self.audit_nowait(e);
        }
    }

    /// A time bound as an administrator writes it: RFC 3339 (`2026-11-22T08:00:00Z`)
    /// or an age (`24h`, `7d`: that long before now). Returns milliseconds.
    pub fn parse_audit_time(&self, field: &'static str, s: &str) -> Result<i64, ServiceError> {
        let s = s.trim();
        if let Ok(d) = portcullis_core::duration::parse_duration(s) {
            return Ok(self.now_ms() - d.as_millis() as i64);
        }
        humantime::parse_rfc3339_weak(s)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .ok_or_else(|| {
                ServiceError::invalid(
                    field,
                    "expected an RFC 3339 time (2026-11-22T08:00:00Z) or an age like 24h or 7d",
                )
            })
    }

    /// One page of the trail; `filter.limit` rows at most (1 to 1000).
    pub async fn audit_page(&self, mut filter: AuditFilter) -> Result<AuditPage, ServiceError> {
        if !(1..=1_000).contains(&filter.limit) {
            return Err(ServiceError::invalid("limit", "must be between 1 and 1000"));
        }
        let want = filter.limit;
        filter.limit = want + 1;
        let mut events = self.audit_list(&filter).await?;
        let more = events.len() as i64 > want;
        events.truncate(want as usize);
        let next_cursor = more
            .then(|| events.last().map(|e| e.seq.to_string()))
            .flatten();
        Ok(AuditPage {
            events,
            next_cursor,
        })
    }

    /// Reads the trail.
    pub async fn audit_list(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, ServiceError> {
        Ok(self
            .store
            .list_audit(filter)
            .await?
            .into_iter()
            .map(AuditRecord::from)
            .collect())
    }

    /// Walks the whole chain from the anchor and reports the first broken link.
    pub async fn audit_verify(&self) -> Result<AuditReport, ServiceError> {
        let anchor: AuditAnchorRow = self.store.audit_anchor().await?;
        let mut report = AuditReport {
            ok: true,
            checked: 0,
            anchor_seq: anchor.seq,
            head_seq: anchor.seq,
            head_hash: anchor.hash.clone(),
            broken_at: None,
            problem: None,
        };
        let genesis = anchor.seq == 0 && anchor.hash == GENESIS && anchor.seal.is_empty();
        let sealed = self.audit_key.check(
            ANCHOR_DOMAIN,
            "",
            &anchor_body(anchor.seq, &anchor.hash, anchor.pruned_at_ms),
            &anchor.seal,
        );
        if !genesis && !sealed {
            report.ok = false;
            report.broken_at = Some(anchor.seq);
            report.problem =
                Some("the retention anchor was altered (its seal does not match)".into());
            return Ok(report);
        }
        let (mut seq, mut prev) = (anchor.seq, anchor.hash);
        loop {
            let page = self
                .store
                .list_audit(&AuditFilter {
                    after_seq: Some(seq),
                    limit: 1_000,
                    ..AuditFilter::default()
                })
                .await?;
            if page.is_empty() {
                break;
            }
            for r in page {
                let problem = if r.seq != seq + 1 {
                    Some(format!(
                        "record {} is missing (the next record is {})",
                        seq + 1,
                        r.seq
                    ))
                } else if r.prev_hash != prev {
                    Some("its link to the previous record does not match".to_owned())
                } else if !self
                    .audit_key
                    .check(LINK_DOMAIN, &r.prev_hash, &canonical(&r), &r.hash)
                {
                    Some("its content does not match its hash (edited)".to_owned())
                } else {
                    None
                };
                if let Some(p) = problem {
                    report.ok = false;
                    report.broken_at = Some(seq + 1);
                    report.problem = Some(p);
                    return Ok(report);
                }
                seq = r.seq;
                prev = r.hash;
                report.checked += 1;
                report.head_seq = seq;
                report.head_hash = prev.clone();
            }
        }
        Ok(report)
    }

    /// Deletes records older than the retention period, moving the sealed anchor.
    pub async fn audit_prune(&self, retention_ms: i64) -> Result<u64, ServiceError> {
        let now = self.now_ms();
        let key = self.audit_key.clone();
        let seal = move |seq: i64, hash: &str, at: i64| {
            key.link(ANCHOR_DOMAIN, "", &anchor_body(seq, hash, at))
        };
        let n = self
            .store
            .prune_audit(now - retention_ms, now, &seal)
            .await
            .context("pruning the audit trail")?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_rfc3339_utc() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(951_782_400_123), "2000-02-29T00:00:00.123Z");
    }

    #[test]
    fn a_user_agent_is_kept_to_256_characters_not_bytes() {
        assert_eq!(truncated_user_agent("curl/8"), "curl/8");
        let ascii = "a".repeat(300);
        assert_eq!(truncated_user_agent(&ascii), "a".repeat(256));
        // 200 two-byte characters: 400 bytes, all kept; 300 of them: cut at 256.
        assert_eq!(truncated_user_agent(&"é".repeat(200)), "é".repeat(200));
        assert_eq!(truncated_user_agent(&"é".repeat(300)), "é".repeat(256));
        let exactly = "x".repeat(256);
        assert_eq!(truncated_user_agent(&exactly), exactly);
    }
}
