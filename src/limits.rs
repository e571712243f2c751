//! Abuse limits on creates and joins: per-player and per-IP quotas (GCRA via `governor`),
//! answered with 429 and `Retry-After`.
//!
//! Quotas live in each process's memory: with N replicas behind a balancer a client gets at
//! most N times the quota, which is still a bound. The open-games-per-player limit is exact
//! across processes (it is checked in the database, see `lobby::create_game`).

use std::{
    convert::Infallible,
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    time::Duration,
};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::request::Parts,
};
use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

use crate::error::ApiError;

pub struct RateLimits {
    player: Option<DefaultKeyedRateLimiter<String>>,
    ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

impl RateLimits {
    /// Quotas per minute; 0 turns a limit off.
    pub fn new(player_per_minute: u32, ip_per_minute: u32) -> Self {
        Self {
            player: keyed(player_per_minute),
            ip: keyed(ip_per_minute),
        }
    }

    /// Takes one unit of both quotas, or says how long to wait.
    pub fn check(&self, player: &str, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let clock = DefaultClock::default();
        if let (Some(limiter), Some(ip)) = (&self.ip, ip) {
            limiter
                .check_key(&ip)
                .map_err(|wait| too_many(wait.wait_time_from(clock.now()), "address"))?;
        }
        if let Some(limiter) = &self.player {
            limiter
                .check_key(&player.to_string())
                .map_err(|wait| too_many(wait.wait_time_from(clock.now()), "player"))?;
        }
        Ok(())
    }

    /// Forgets keys whose quota is full again, so memory stays bounded by recent clients.
    pub fn forget_idle(&self) {
        if let Some(l) = &self.player {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.ip {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

fn keyed<K: Clone + Eq + std::hash::Hash>(per_minute: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

fn too_many(wait: Duration, who: &str) -> ApiError {
    // Whole seconds, rounded up: a client that waits that long is let in.
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::too_many_requests(
        format!("Game Lobby: Too many games created or joined from this {who}. Retry in {secs} s."),
        secs.max(1),
    )
}

/// The peer's address, when the server knows it (tests that call the router directly don't).
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}
