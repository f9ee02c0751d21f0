//! Shared application state: cheap to clone, passed to every handler. No globals.

use std::sync::Arc;

use portcullis_service::Authority;

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::net::IpRules;

/// Everything a handler may need.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    authority: Arc<Authority>,
    settings: Settings,
    metrics: Metrics,
    discovery: axum::body::Bytes,
    /// `Cache-Control` of `/jwks.json` (`keys.jwks_max_age`), rendered once.
    jwks_cache_control: axum::http::HeaderValue,
    ip_rules: IpRules,
    /// Slots for open security event streams (`GET /oauth/events`).
    event_streams: Arc<tokio::sync::Semaphore>,
    /// Slots for requests being handled (`server.max_inflight_requests`).
    inflight: tokio::sync::Semaphore,
}

impl AppState {
    /// Builds the state; the discovery document is rendered once here. Fails only
    /// for settings that [`Settings::validate`] would refuse (bad `[ip]` lists).
    pub fn new(
        authority: Arc<Authority>,
        settings: Settings,
    ) -> Result<Self, portcullis_core::limits::LimitError> {
        let discovery = crate::http::discovery::document(&settings.server.issuer)
            .to_string()
            .into();
        let ip_rules = IpRules::from_settings(&settings.ip)?;
        let jwks_cache_control =
            axum::http::HeaderValue::from_maybe_shared(axum::body::Bytes::from(format!(
                "public, max-age={}",
                settings.keys.jwks_max_age.as_secs()
            )))
            .unwrap_or(axum::http::HeaderValue::from_static("no-cache"));
        let inflight = tokio::sync::Semaphore::new(settings.server.max_inflight_requests);
        let event_streams = Arc::new(tokio::sync::Semaphore::new(
            settings.server.max_event_streams,
        ));
        Ok(Self(Arc::new(Inner {
            authority,
            settings,
            metrics: Metrics::new(),
            discovery,
            jwks_cache_control,
            ip_rules,
            event_streams,
            inflight,
        })))
    }

    /// The token authority.
    pub fn authority(&self) -> &Authority {
        &self.0.authority
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// Prometheus metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// The slots for open security event streams.
    pub fn event_streams(&self) -> Arc<tokio::sync::Semaphore> {
        self.0.event_streams.clone()
    }

    /// The slots for requests being handled (see [`crate::ratelimit::admit`]).
    pub fn inflight(&self) -> &tokio::sync::Semaphore {
        &self.0.inflight
    }

    /// Client-IP resolution and global IP rules.
    pub fn ip_rules(&self) -> &IpRules {
        &self.0.ip_rules
    }

    /// The rendered discovery document (a shared buffer: serving it copies nothing).
    pub fn discovery(&self) -> axum::body::Bytes {
        self.0.discovery.clone()
    }

    /// The `Cache-Control` value of `/jwks.json`.
    pub fn jwks_cache_control(&self) -> axum::http::HeaderValue {
        self.0.jwks_cache_control.clone()
    }
}
