//! The revocation feed subscriber: one long-lived `GET` of the server's security
//! event stream (Server-Sent Events), reconnected with `Last-Event-ID` so no
//! event is missed, and watched for silence (the server sends a keep-alive every
//! few seconds; [`IDLE_LIMIT`] without a byte means the stream is dead).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::Value;

use crate::{alive, unix_now, Inner};

/// Silence after which the stream is taken for dead and reopened.
pub(crate) const IDLE_LIMIT: Duration = Duration::from_secs(15);

/// The feed's state, as [`crate::Verifier::feed_status`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedStatus {
    /// A feed is configured.
    pub configured: bool,
    /// Connected and caught up (the backlog was delivered).
    pub connected: bool,
    /// Connected, or down for less than the grace period: JWTs are trusted offline.
    pub healthy: bool,
    /// The last event id received (0 before any).
    pub last_event_id: i64,
    /// Events applied since start.
    pub events: u64,
    /// Connections opened since start.
    pub connections: u64,
}

#[derive(Debug)]
pub(crate) struct FeedState {
    configured: bool,
    connected: AtomicBool,
    caught_up_once: AtomicBool,
    last_id: AtomicI64,
    down_since: Mutex<Option<Instant>>,
    events: AtomicU64,
    connections: AtomicU64,
}

impl FeedState {
    pub(crate) fn new(configured: bool) -> Self {
        Self {
            configured,
            connected: AtomicBool::new(false),
            caught_up_once: AtomicBool::new(false),
            last_id: AtomicI64::new(0),
            down_since: Mutex::new(None),
            events: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        }
    }

    /// Offline JWT checks are enough: no feed configured, or it caught up once and
    /// is connected or has been down for less than `grace`.
    pub(crate) fn healthy(&self, grace: Duration) -> bool {
        if !self.configured {
            return true;
        }
        if !self.caught_up_once.load(Ordering::SeqCst) {
            return false;
        }
        if self.connected.load(Ordering::SeqCst) {
            return true;
        }
        let g = match self.down_since.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.is_some_and(|t| t.elapsed() < grace)
    }

    pub(crate) fn status(&self, grace: Duration) -> FeedStatus {
        FeedStatus {
            configured: self.configured,
            connected: self.connected.load(Ordering::SeqCst),
            healthy: self.healthy(grace),
            last_event_id: self.last_id.load(Ordering::SeqCst),
            events: self.events.load(Ordering::SeqCst),
            connections: self.connections.load(Ordering::SeqCst),
        }
    }

    fn set_down(&self) {
        if self.connected.swap(false, Ordering::SeqCst)
            || self.caught_up_once.load(Ordering::SeqCst)
        {
            let mut g = match self.down_since.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            g.get_or_insert_with(Instant::now);
        }
    }

    fn set_up(&self) {
        let mut g = match self.down_since.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *g = None;
        self.caught_up_once.store(true, Ordering::SeqCst);
        self.connected.store(true, Ordering::SeqCst);
    }
}

/// The first (only) event of a SET payload: its type URI and body.
fn set_event(data: &str) -> Option<(String, Value)> {
    let v: Value = serde_json::from_str(data).ok()?;
    let (uri, body) = v.get("events")?.as_object()?.iter().next()?;
    Some((uri.clone(), body.clone()))
}

fn apply(inner: &Inner, kind: &str, data: &str) {
    let Some((_, body)) = set_event(data) else {
        tracing::warn!(
            kind,
            "security event without a readable SET payload; ignored"
        );
        return;
    };
    let Some(subject) = body["subject"]["id"].as_str() else {
        return;
    };
    match kind {
        "token_revoked" => {
            let exp = body["exp"].as_i64().unwrap_or(i64::MAX);
            inner.revoke(subject.to_owned(), exp);
        }
        "signing_key_retired" => inner.retire_key(subject),
        "key_revoked" => {
            if let Some(r) = &inner.remote {
                if body["all_of_subject"] == true {
                    r.forget_subject(subject);
                } else {
                    r.forget_credential(subject);
                }
            }
        }
        _ => {}
    }
}

/// Subscribes for as long as the verifier exists; reconnects with backoff.
pub(crate) async fn run(inner: Weak<Inner>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(i) = alive(&inner) else {
            return;
        };
        let Some(remote) = &i.remote else {
            return;
        };
        let (Some(url), Some((id, secret))) =
            (remote.events_endpoint.clone(), remote.client.clone())
        else {
            return;
        };
        // The stream must outlive one request timeout: a client without one.
        let http = reqwest::Client::builder()
            .connect_timeout(i.opts.http_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build();
        let last = i.feed.last_id.load(Ordering::SeqCst);
        i.feed.connections.fetch_add(1, Ordering::SeqCst);
        drop(i);
        let Ok(http) = http else {
            return;
        };
        let mut req = http
            .get(&url)
            .basic_auth(
                crate::remote::form_encode(&id),
                Some(crate::remote::form_encode(&secret)),
            )
            .header("accept", "text/event-stream");
        if last > 0 {
            req = req.header("last-event-id", last.to_string());
        }
        match req.send().await {
            Ok(res) if res.status().is_success() => {
                let seen = Arc::new(AtomicI64::new(unix_now()));
                let mark = seen.clone();
                let mut events = res
                    .bytes_stream()
                    .inspect(move |_| mark.store(unix_now(), Ordering::Relaxed))
                    .eventsource();
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        next = events.next() => {
                            let Some(Ok(ev)) = next else { break };
                            let Some(i) = alive(&inner) else { return };
                            if ev.event == "ready" {
                                i.feed.set_up();
                                backoff = Duration::from_millis(100);
                                continue;
                            }
                            apply(&i, &ev.event, &ev.data);
                            i.feed.events.fetch_add(1, Ordering::SeqCst);
                            if let Ok(n) = ev.id.parse::<i64>() {
                                i.feed.last_id.fetch_max(n, Ordering::SeqCst);
                            }
                        }
                        _ = tick.tick() => {
                            if unix_now() - seen.load(Ordering::Relaxed) > IDLE_LIMIT.as_secs() as i64 {
                                tracing::warn!("security event feed silent; reconnecting");
                                break;
                            }
                            if alive(&inner).is_none() {
                                return;
                            }
                        }
                    }
                }
            }
            Ok(res) => {
                tracing::warn!(status = %res.status(), "security event feed refused the connection");
            }
            Err(e) => tracing::warn!(error = %e, "security event feed unreachable"),
        }
        if let Some(i) = alive(&inner) {
            i.feed.set_down();
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
