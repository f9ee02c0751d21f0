//! The Portcullis HTTP server.
//!
//! - [`config`]: typed settings from defaults, TOML and `PORTCULLIS_*` variables.
//! - [`bootstrap`]: database + master key + authority, shared with the CLI.
//! - [`router`]: every route; [`edge`]: what every request passes around its route
//!   (request id, timeout, load shedding, client address, IP rules, rate limits,
//!   security headers).
//! - [`http`]: handlers; [`extract`]: strict form parsing and client authentication;
//!   [`error`]: the OAuth error envelope.
//! - [`serve`]: listen (plain or TLS), run background jobs, shut down gracefully.
#![forbid(unsafe_code)]

pub mod admin_extract;
pub mod bootstrap;
pub mod config;
pub mod edge;
pub mod error;
pub mod extract;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod net;
pub mod ratelimit;
pub mod router;
pub mod state;
pub mod webhook_sender;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use portcullis_core::clock::{Clock, SystemClock};
use portcullis_service::Authority;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::Settings;
pub use router::router;
pub use state::AppState;

/// Opens everything and prepares keys: what `serve` does before it listens.
pub async fn prepare(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<Authority>> {
    let auth = bootstrap::open(settings, clock).await?;
    let created = auth.ensure_signing_keys().await?;
    if !created.is_empty() {
        tracing::info!(count = created.len(), "created signing keys");
    }
    let report = auth.rotate_due().await?;
    if !report.is_empty() {
        tracing::info!(?report, "key rotation");
    }
    Ok(auth)
}

/// How often API-key last-use times gathered in memory are written.
pub const USAGE_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Periodic work: notice client changes made by other processes every
/// `database.change_poll_interval`; due key rotations (and key reloads, so keys
/// rotated by the CLI are picked up) every `keys.check_interval`; purge expired
/// tokens every `tokens.cleanup_interval`.
pub fn spawn_jobs(auth: Arc<Authority>, settings: &Settings) -> tokio::task::JoinHandle<()> {
    let mut changes = tokio::time::interval(settings.database.change_poll_interval);
    let mut keys = tokio::time::interval(settings.keys.check_interval);
    let mut cleanup = tokio::time::interval(settings.tokens.cleanup_interval);
    let mut usage = tokio::time::interval(USAGE_FLUSH_INTERVAL);
    for t in [&mut changes, &mut keys, &mut cleanup, &mut usage] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let webhooks = match webhook_sender::spawn(auth.clone(), &settings.webhooks) {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::error!(error = %e, "webhook delivery cannot start");
            None
        }
    };
    let log = |what: &str, e: portcullis_service::ServiceError| {
        tracing::error!(error = %format!("{:#}", anyhow::Error::new(e)), "{what} failed");
    };
    tokio::spawn(async move {
        let _webhooks = webhooks.map(AbortOnDrop);
        loop {
            tokio::select! {
                _ = changes.tick() => {
                    match auth.sync_changes().await {
                        Ok(true) => tracing::debug!("client changes noticed; client cache cleared"),
                        Ok(false) => {}
                        Err(e) => log("change poll", e),
                    }
                    if let Err(e) = auth.poll_events().await {
                        log("security event poll", e);
                    }
                },
                _ = keys.tick() => match auth.rotate_due().await {
                    Ok(r) if !r.is_empty() => tracing::info!(report = ?r, "key rotation"),
                    Ok(_) => {}
                    Err(e) => log("key rotation", e),
                },
                _ = usage.tick() => {
                    if let Err(e) = auth.flush_key_usage().await {
                        log("key usage flush", e);
                    }
                    if let Err(e) = auth.flush_pat_usage().await {
                        log("token usage flush", e);
                    }
                },
                _ = cleanup.tick() => match auth.purge_expired().await {
                    Ok(n) => tracing::debug!(removed = n, "expired tokens purged"),
                    Err(e) => log("purge", e),
                },
            }
        }
    })
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the server until `shutdown` resolves, then lets in-flight requests finish
/// (up to `server.shutdown_grace`).
pub async fn serve(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let auth = prepare(&settings, Arc::new(SystemClock)).await?;
    let jobs = spawn_jobs(auth.clone(), &settings);
    let auth_for_flush = auth.clone();
    let app = router(AppState::new(auth, settings.clone())?);
    let limits = listener::ConnectionLimits::from_settings(&settings.server);
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutdown requested: finishing in-flight requests");
        let _ = tx.send(true);
    });
    let tls = match (
        &settings.server.tls_cert_file,
        &settings.server.tls_key_file,
    ) {
        (Some(cert), Some(key)) => Some(listener::tls_acceptor(cert, key)?),
        _ => None,
    };
    let tcp = TcpListener::bind(settings.server.listen)
        .await
        .with_context(|| format!("cannot listen on server.listen {}", settings.server.listen))?;
    let addr = tcp.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(issuer = %settings.server.issuer, ready_ms = started.elapsed().as_millis() as u64, "listening on {scheme}://{addr}");
    let result = listener::serve(tcp, tls, app, limits, rx)
        .await
        .context("server failed");
    jobs.abort();
    if let Err(e) = auth_for_flush.flush_key_usage().await {
        tracing::warn!(error = %e, "final key usage flush failed");
    }
    // Token issuance records are queued, not waited for: commit what is queued.
    if let Err(e) = auth_for_flush.audit_flush().await {
        tracing::warn!(error = %e, "final audit flush failed");
    }
    tracing::info!("stopped");
    result
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
