//! The HTTP client that delivers webhooks, and the job that drives it.

use std::sync::Arc;

use async_trait::async_trait;
use portcullis_service::webhooks::{RetryPolicy, WebhookSender};
use portcullis_service::Authority;

use crate::config::WebhookSettings;

/// Delivers with reqwest (rustls), no redirects, a per-request timeout.
#[derive(Debug, Clone)]
pub struct HttpSender(reqwest::Client);

impl HttpSender {
    /// A client with `timeout` per request.
    pub fn new(timeout: std::time::Duration) -> anyhow::Result<Self> {
        Ok(Self(
            reqwest::Client::builder()
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("portcullis-webhooks/", env!("CARGO_PKG_VERSION")))
                .build()?,
        ))
    }
}

#[async_trait]
impl WebhookSender for HttpSender {
    async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<u16, String> {
        let mut req = self
            .0
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        match req.send().await {
            Ok(res) => Ok(res.status().as_u16()),
            Err(e) => Err(format!("{e}")),
        }
    }
}

/// The retry policy from settings.
pub fn policy(s: &WebhookSettings) -> RetryPolicy {
    RetryPolicy {
        base_ms: s.retry_base.as_millis() as i64,
        max_delay_ms: s.retry_max.as_millis() as i64,
        max_attempts: i64::from(s.max_attempts),
    }
}

/// Runs deliveries every `poll_interval` until the task is aborted.
pub fn spawn(
    auth: Arc<Authority>,
    s: &WebhookSettings,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let sender = HttpSender::new(s.timeout)?;
    let policy = policy(s);
    let mut tick = tokio::time::interval(s.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Ok(tokio::spawn(async move {
        loop {
            tick.tick().await;
            // Drain what is due, in batches, before sleeping again.
            loop {
                match auth.deliver_due_webhooks(&sender, policy, 50).await {
                    Ok(50) => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::error!(error = %format!("{:#}", anyhow::Error::new(e)), "webhook delivery pass failed");
                        break;
                    }
                }
            }
        }
    }))
}
