//! Abuse limits on creates and joins: per-player and per-IP quotas (GCRA via `governor`),
//! answered with 429 and `Retry-After`.
//!
//! Quotas live in each process's memory: with N replicas behind a balancer a client gets at
//! most N times the quota, which is still a bound. The open-games-per-player limit is exact
//! across processes (it is checked in the database when a create begins).

use std::{net::IpAddr, num::NonZeroU32, time::Duration};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

use crate::domain::LobbyError;

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
    pub fn check(&self, player: &str, ip: Option<IpAddr>) -> Result<(), LobbyError> {
        // The clock is read only for a refusal: building one probes the CPU (CPUID), which is
        // a trap under a hypervisor, and the limits are off by default.
        let now = || DefaultClock::default().now();
        if let (Some(limiter), Some(ip)) = (&self.ip, ip) {
            limiter
                .check_key(&ip)
                .map_err(|wait| too_many(wait.wait_time_from(now()), "address"))?;
        }
        if let Some(limiter) = &self.player {
            limiter
                .check_key(&player.to_string())
                .map_err(|wait| too_many(wait.wait_time_from(now()), "player"))?;
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

fn too_many(wait: Duration, who: &'static str) -> LobbyError {
    // Whole seconds, rounded up: a client that waits that long is let in.
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    LobbyError::RateLimited {
        who,
        retry_after_secs: secs.max(1),
    }
}
