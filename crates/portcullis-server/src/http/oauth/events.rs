//! `GET /oauth/events`: the security event feed as Server-Sent Events, for
//! resource servers that verify JWTs offline (the `portcullis-verify` library
//! subscribes to it). The caller authenticates as a confidential client
//! (`client_secret_basic`).
//!
//! Each message is `id: <seq>`, `event: <kind>` (`token_revoked`, `key_revoked`,
//! `session_ended`, `signing_key_retired`) and `data:` one Security Event Token
//! payload (RFC 8417; see `portcullis_service::events`). A reconnecting client
//! sends `Last-Event-ID` (or `?after=<seq>`) and gets every event after it; with
//! neither it gets every event still retained (every revoked JWT that has not
//! expired) before the live ones. After the backlog comes one `event: ready`
//! (`data: {"after": <seq>}`, no id). A comment line every
//! [`KEEP_ALIVE`] lets the subscriber tell a quiet stream from a dead one.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use portcullis_core::oauth::ErrorCode;
use portcullis_service::events::SecurityEvent;
use serde::Deserialize;

use super::{authenticate, Authenticated};
use crate::error::OAuthError;
use crate::extract::OAuthForm;
use crate::state::AppState;

/// The feed's path.
pub const PATH: &str = "/oauth/events";

/// How often an idle stream sends a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Events read from the store per query.
const PAGE: i64 = 500;

/// Query parameters.
#[derive(Debug, Deserialize)]
pub struct Params {
    /// Resume after this sequence number (as `Last-Event-ID` does).
    after: Option<String>,
}

struct Cursor {
    state: AppState,
    after: i64,
    rx: tokio::sync::watch::Receiver<i64>,
    buf: VecDeque<SecurityEvent>,
    ready_sent: bool,
    /// One of the `server.max_event_streams` slots, given back when the stream ends.
    _slot: tokio::sync::OwnedSemaphorePermit,
}

fn event(e: &SecurityEvent) -> Event {
    Event::default()
        .id(e.seq.to_string())
        .event(e.kind.clone())
        .data(e.set.to_string())
}

/// The feed.
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Result<Response, OAuthError> {
    let mut empty = OAuthForm::parse(b"")?;
    let Authenticated { .. } = authenticate(&state, &headers, &mut empty).await?;
    let from_header = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("x").trim().to_owned());
    let after = match from_header.or(params.after) {
        None => 0,
        Some(s) if s.is_empty() => 0,
        Some(s) => s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            OAuthError::new(
                ErrorCode::InvalidRequest,
                "Last-Event-ID (or after) must be a non-negative event sequence number",
            )
        })?,
    };
    let Ok(slot) = state.event_streams().try_acquire_owned() else {
        return Err(OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            "too many event streams are open; retry later",
        ));
    };
    // Subscribed before the first read: an append between the read and the wait
    // still wakes the stream.
    let rx = state.authority().watch_events();
    let cursor = Cursor {
        state: state.clone(),
        after,
        rx,
        buf: VecDeque::new(),
        ready_sent: false,
        _slot: slot,
    };
    let events = futures_util::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(e) = c.buf.pop_front() {
                return Some((Ok::<_, Infallible>(event(&e)), c));
            }
            match c.state.authority().events_after(c.after, PAGE).await {
                Ok(v) if !v.is_empty() => {
                    c.after = v.last().map_or(c.after, |e| e.seq);
                    c.buf.extend(v);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    // The subscriber reconnects with its last id; nothing is skipped.
                    tracing::warn!(error = %e, "security event feed read failed; closing the stream");
                    return None;
                }
            }
            if !c.ready_sent {
                c.ready_sent = true;
                let ready = Event::default()
                    .event("ready")
                    .data(serde_json::json!({ "after": c.after }).to_string());
                return Some((Ok(ready), c));
            }
            // Woken by an append in this process, or every second for appends by
            // other processes (the change poll notices those too).
            let woken = tokio::time::timeout(Duration::from_secs(1), c.rx.changed()).await;
            if let Ok(Err(_)) = woken {
                // The sender is gone (shutting down): poll slowly instead.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
    let mut res = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    let h = res.headers_mut();
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    h.insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    *res.status_mut() = StatusCode::OK;
    Ok(res)
}
