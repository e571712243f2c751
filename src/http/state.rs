//! What the handlers share: the lobby service and the HTTP layer's own parts.

use std::{ops::Deref, sync::Arc, time::Duration};

use crate::{
    auth::Authenticator,
    config::SamplePlayer,
    events::EventSink,
    live::Hub,
    lobby::{Lobby, limits::RateLimits},
    metrics::Metrics,
};

/// The HTTP layer's settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Empty means any origin.
    pub cors_origins: Vec<String>,
    pub max_body_bytes: usize,
    pub lobby_stream_heartbeat: Duration,
    /// Players the lobby page offers tokens for; empty outside development.
    pub sample_players: Vec<SamplePlayer>,
    /// Signs the sample players' tokens.
    pub secret_key: String,
}

pub struct Parts {
    pub lobby: Arc<Lobby>,
    pub events: EventSink,
    pub auth: Authenticator,
    pub rate_limits: Arc<RateLimits>,
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub config: HttpConfig,
}

#[derive(Clone)]
pub struct AppState(Arc<Parts>);

impl AppState {
    pub fn new(parts: Parts) -> Self {
        Self(Arc::new(parts))
    }
}

impl Deref for AppState {
    type Target = Parts;
    fn deref(&self) -> &Parts {
        &self.0
    }
}
