//! Shared application state: cheap to clone, passed to every handler. No globals.

use std::sync::Arc;

use portcullis_service::Authority;

use crate::config::Settings;
use crate::metrics::Metrics;

/// Everything a handler may need.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    authority: Arc<Authority>,
    settings: Settings,
    metrics: Metrics,
    discovery: String,
}

impl AppState {
    /// Builds the state; the discovery document is rendered once here.
    pub fn new(authority: Arc<Authority>, settings: Settings) -> Self {
        let discovery = crate::http::discovery::document(&settings.server.issuer).to_string();
        Self(Arc::new(Inner {
            authority,
            settings,
            metrics: Metrics::new(),
            discovery,
        }))
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

    /// The rendered discovery document.
    pub fn discovery(&self) -> &str {
        &self.0.discovery
    }
}
