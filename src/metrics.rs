//! Prometheus metrics at `/metrics`, all prefixed `matchmaker_`.
//!
//! Labels are of low cardinality: the route *template* (never a raw path), the product, the
//! call. Gauges about the database (games by state, the outbox, the pool) are read at scrape
//! time, so they never drift from the truth.

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::domain::{
    GameState,
    fleet::{Instance, InstanceState},
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub operation: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub product: String,
    pub call: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceCallLabels {
    pub product: String,
    /// The game-server instance (not `instance`: Prometheus' own label, the scraped process).
    pub game_server: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallKindLabels {
    pub product: String,
    pub call: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub intake: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GameLabels {
    pub product: String,
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceLabels {
    pub product: String,
    /// Named so as not to clash with Prometheus' own `instance` (the scraped process).
    pub game_server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    pub stream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReapLabels {
    pub action: &'static str,
}

fn latency() -> Histogram {
    // 1 ms to ~16 s
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub lobby_operations: Family<OutcomeLabels, Counter>,
    pub game_server_calls: Family<CallLabels, Counter>,
    pub instance_calls: Family<InstanceCallLabels, Counter>,
    pub game_server_duration: Family<CallKindLabels, Histogram, fn() -> Histogram>,
    pub events: Family<EventLabels, Counter>,
    pub stream_lag: Family<StreamLabels, Gauge<f64, AtomicU64>>,
    pub lobby_cache_lag: Histogram,
    pub lobby_pages: Family<SourceLabels, Counter>,
    pub lobby_cache_games: Gauge,
    pub lobby_cache_in_sync: Gauge,
    pub reaper: Family<ReapLabels, Counter>,
    pub games: Family<GameLabels, Gauge>,
    pub instance_games: Family<InstanceLabels, Gauge>,
    pub instance_capacity: Family<InstanceLabels, Gauge>,
    pub instance_healthy: Family<InstanceLabels, Gauge>,
    pub instance_draining: Family<InstanceLabels, Gauge>,
    pub outbox_pending: Gauge,
    pub outbox_oldest_seconds: Gauge<f64, AtomicU64>,
    pub db_pool_connections: Gauge,
    pub db_pool_idle: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("matchmaker");
        let m = Self {
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency),
            lobby_operations: Family::default(),
            game_server_calls: Family::default(),
            instance_calls: Family::default(),
            game_server_duration: Family::new_with_constructor(latency),
            events: Family::default(),
            stream_lag: Family::default(),
            // 0.1 ms to ~1.6 s
            lobby_cache_lag: Histogram::new(exponential_buckets(0.0001, 2.0, 15)),
            lobby_cache_games: Gauge::default(),
            lobby_pages: Family::default(),
            lobby_cache_in_sync: Gauge::default(),
            reaper: Family::default(),
            games: Family::default(),
            instance_games: Family::default(),
            instance_capacity: Family::default(),
            instance_healthy: Family::default(),
            instance_draining: Family::default(),
            outbox_pending: Gauge::default(),
            outbox_oldest_seconds: Gauge::default(),
            db_pool_connections: Gauge::default(),
            db_pool_idle: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by route template, method and status",
            m.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route template",
            m.http_duration.clone(),
        );
        registry.register(
            "lobby_operations",
            "Creates and joins by outcome (ok, conflict, rejected, rate_limited, unavailable, error)",
            m.lobby_operations.clone(),
        );
        registry.register(
            "game_server_calls",
            "Calls to game servers by product, call and outcome",
            m.game_server_calls.clone(),
        );
        registry.register(
            "game_server_call_duration_seconds",
            "Game-server call latency by product and call",
            m.game_server_duration.clone(),
        );
        registry.register(
            "events",
            "Game-server events by intake (stream, http) and outcome",
            m.events.clone(),
        );
        registry.register(
            "event_stream_lag_seconds",
            "How far the stream reader is behind: age of the last entry applied while more are \
             waiting, 0 when caught up (set by the process that holds the reader lock)",
            m.stream_lag.clone(),
        );
        registry.register(
            "lobby_cache_lag_seconds",
            "From a change to the open-games list in the database to this process's in-memory \
             list showing it",
            m.lobby_cache_lag.clone(),
        );
        registry.register(
            "lobby_pages",
            "Open-games pages by where they were read: memory or database",
            m.lobby_pages.clone(),
        );
        registry.register(
            "lobby_cache_games",
            "Listed games in this process's in-memory open-games list",
            m.lobby_cache_games.clone(),
        );
        registry.register(
            "lobby_cache_in_sync",
            "1 while open-games pages are served from memory, 0 while they come from the database",
            m.lobby_cache_in_sync.clone(),
        );
        registry.register(
            "reaper_actions",
            "Games expired, games reset and reservations released by the reaper",
            m.reaper.clone(),
        );
        registry.register(
            "games",
            "Games by product and state (read from the database at scrape time)",
            m.games.clone(),
        );
        registry.register(
            "game_server_instance_calls",
            "Calls to each game-server instance by outcome (ok, refused, unreachable, bad_answer)",
            m.instance_calls.clone(),
        );
        registry.register(
            "game_server_instance_games",
            "Games each game-server instance holds, creates in flight included (read at scrape time)",
            m.instance_games.clone(),
        );
        registry.register(
            "game_server_instance_capacity",
            "Games each game-server instance takes at once (no series: no limit)",
            m.instance_capacity.clone(),
        );
        registry.register(
            "game_server_instance_healthy",
            "1 while calls to the instance go through (its breaker, in this process, is closed) and it is not lost",
            m.instance_healthy.clone(),
        );
        registry.register(
            "game_server_instance_draining",
            "1 while the instance is draining (takes no new games)",
            m.instance_draining.clone(),
        );
        registry.register(
            "outbox_pending",
            "Game-server calls owed and not given up",
            m.outbox_pending.clone(),
        );
        registry.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest game-server call still owed",
            m.outbox_oldest_seconds.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Open database connections in the pool",
            m.db_pool_connections.clone(),
        );
        registry.register(
            "db_pool_idle_connections",
            "Idle database connections in the pool",
            m.db_pool_idle.clone(),
        );
        // Known series start at 0, so the first event shows in rate() and the series exist
        // before anything happens.
        for operation in ["create", "join"] {
            for outcome in [
                "ok",
                "conflict",
                "rejected",
                "rate_limited",
                "unavailable",
                "error",
            ] {
                let _ = m
                    .lobby_operations
                    .get_or_create(&OutcomeLabels { operation, outcome });
            }
        }
        for source in ["memory", "database"] {
            let _ = m.lobby_pages.get_or_create(&SourceLabels { source });
        }
        for action in [
            "expired",
            "reset",
            "reservation_released",
            "create_abandoned",
        ] {
            let _ = m.reaper.get_or_create(&ReapLabels { action });
        }
        Self { registry, ..m }
    }

    /// Sets the games gauge: zero for every configured product and state, then the counts.
    /// The instances' gauges, replaced by what was just read (lost instances are left out).
    pub fn set_instances(&self, instances: &[(String, Instance)]) {
        for family in [
            &self.instance_games,
            &self.instance_capacity,
            &self.instance_healthy,
            &self.instance_draining,
        ] {
            family.clear();
        }
        for (product, i) in instances {
            if i.state == InstanceState::Lost {
                continue;
            }
            let labels = InstanceLabels {
                product: product.clone(),
                game_server: i.id.clone(),
            };
            self.instance_games.get_or_create(&labels).set(i.games);
            if let Some(c) = i.capacity {
                self.instance_capacity
                    .get_or_create(&labels)
                    .set(i64::from(c));
            }
            self.instance_healthy
                .get_or_create(&labels)
                .set(i64::from(i.healthy));
            self.instance_draining
                .get_or_create(&labels)
                .set(i64::from(i.state == InstanceState::Draining));
        }
    }

    pub fn set_games<'a>(
        &self,
        products: impl Iterator<Item = &'a str>,
        counts: &[(String, GameState, i64)],
    ) {
        self.games.clear();
        for product in products {
            for state in GameState::ALL {
                self.games
                    .get_or_create(&GameLabels {
                        product: product.to_string(),
                        state: state.as_str(),
                    })
                    .set(0);
            }
        }
        for (product, state, count) in counts {
            self.games
                .get_or_create(&GameLabels {
                    product: product.clone(),
                    state: state.as_str(),
                })
                .set(*count);
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn count_operation(&self, operation: &'static str, status: u16) {
        let outcome = match status {
            200..=299 => "ok",
            409 => "conflict",
            429 => "rate_limited",
            502 | 503 => "unavailable",
            500..=599 => "error",
            _ => "rejected",
        };
        self.lobby_operations
            .get_or_create(&OutcomeLabels { operation, outcome })
            .inc();
    }
}
