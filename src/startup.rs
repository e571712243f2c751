//! Builds the parts from the settings, spawns the workers and serves. Imported by `main.rs` and
//! the tests only: `Application::build` takes a bound listener so tests can serve on port 0, and
//! `run_until` stops everything when the given token is cancelled.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::store::schema::MIGRATOR;
use crate::{
    auth::Authenticator,
    config::Settings,
    domain::Products,
    events::EventSink,
    game_server::GameServerClient,
    http::{self, AppState, HttpConfig, PartialGame},
    live::Hub,
    lobby::{Lobby, LobbyConfig, limits::RateLimits, read_model::ReadModel},
    metrics::Metrics,
    workers::{
        lobby_listener::LobbyListener, outbox::Dispatcher, reaper::Reaper,
        stream_intake::StreamIntake,
    },
};

/// A connection pool that does not connect until first used, so the service starts (and
/// reports not-ready) while the database is down.
pub fn pool(settings: &Settings) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = settings
        .database_url
        .parse()
        .context("configuration: database_url: not a valid Postgres URL")?;
    Ok(PgPoolOptions::new()
        .max_connections(settings.database_max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
        // sqlx pings every idle connection it hands out (a full round trip before each
        // statement or transaction: a third of a join's round trips, half of a lobby page's).
        // Without it, a connection the server dropped while idle fails the one request that
        // gets it (an error answer, as for any database fault) and sqlx then discards it.
        .test_before_acquire(false)
        .connect_lazy_with(options.application_name("matchmaker")))
}

/// The parts of a running service.
pub struct Application {
    listener: TcpListener,
    http: AppState,
    settings: Settings,
    db: PgPool,
    lobby: Arc<Lobby>,
    game_servers: GameServerClient,
    products: Products,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    rate_limits: Arc<RateLimits>,
}

impl Application {
    pub fn build(settings: Settings, db: PgPool, listener: TcpListener) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::new());
        let products = Products::new(&settings.products);
        let game_servers = GameServerClient::new(
            settings.game_server_timeout,
            settings.breaker_open,
            metrics.clone(),
        )?;
        let read_model = Arc::new(ReadModel::new(settings.lobby_cache));
        let lobby = Lobby::new(
            db.clone(),
            game_servers.clone(),
            products.clone(),
            LobbyConfig {
                expiry: settings.expiry,
                max_open_games_per_player: settings.max_open_games_per_player,
                page_size: settings.lobby_page_size,
                max_page_size: settings.lobby_max_page_size,
                game_server_timeout: settings.game_server_timeout,
                instance_timeout: settings.instance_timeout,
            },
            read_model,
        );
        let hub = Arc::new(Hub::new(
            settings.lobby_stream_buffer,
            settings.lobby_stream_max,
        ));
        let rate_limits = Arc::new(RateLimits::new(
            settings.rate_limit_player_per_minute,
            settings.rate_limit_ip_per_minute,
        ));
        let state = AppState::new(http::Parts {
            lobby: lobby.clone(),
            events: EventSink::new(db.clone(), settings.expiry),
            auth: Authenticator::new(&settings.secret_key, settings.require_token_expiry),
            rate_limits: rate_limits.clone(),
            hub: hub.clone(),
            metrics: metrics.clone(),
            config: HttpConfig {
                cors_origins: settings.cors_origins.clone(),
                max_body_bytes: settings.max_body_bytes,
                lobby_stream_heartbeat: settings.lobby_stream_heartbeat,
                sample_players: settings.sample_players.clone(),
                secret_key: settings.secret_key.clone(),
            },
        });
        Ok(Self {
            listener,
            http: state,
            settings,
            db,
            lobby,
            game_servers,
            products,
            hub,
            metrics,
            rate_limits,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// The lobby service, for tests that call a use case without HTTP.
    pub fn lobby(&self) -> &Arc<Lobby> {
        &self.lobby
    }

    /// The reaper this application runs, for tests that drive its passes.
    pub fn reaper(&self) -> Reaper {
        Reaper {
            db: self.db.clone(),
            expiry: self.settings.expiry,
            reservation_timeout: self.settings.reservation_timeout,
            instance_timeout: self.settings.instance_timeout,
            interval: self.settings.reaper_interval,
            metrics: self.metrics.clone(),
            rate_limits: self.rate_limits.clone(),
        }
    }

    /// The outbox dispatcher this application runs, for tests that drive its passes.
    pub fn dispatcher(&self) -> Dispatcher {
        Dispatcher {
            db: self.db.clone(),
            game_servers: self.game_servers.clone(),
            products: self.products.clone(),
            max_attempts: self.settings.outbox_max_attempts,
            backoff: self.settings.outbox_backoff,
            // The lease outlives the call's own time limit, so only a dead dispatcher's claims
            // expire.
            lease: self.settings.game_server_timeout + Duration::from_secs(5),
        }
    }

    /// The lobby listener this application runs, for tests that drive its steps.
    pub fn lobby_listener(&self) -> LobbyListener {
        LobbyListener {
            db: self.db.clone(),
            hub: self.hub.clone(),
            read_model: self.lobby.read_model().clone(),
            products: self.products.clone(),
            metrics: self.metrics.clone(),
            render: PartialGame::json,
        }
    }

    /// Serves and runs the workers until `shutdown` is cancelled, then drains requests in
    /// flight and waits for the workers to stop.
    pub async fn run_until(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        let settings = &self.settings;
        // Until the database is up, placement does it on first use.
        if let Err(e) = self.lobby.ensure_configured().await {
            tracing::warn!(error = ?e, "configured game-server instances not written yet");
        }
        if let Some(url) = settings.event_stream_url.clone() {
            let intake = StreamIntake {
                db: self.db.clone(),
                redis_url: url,
                key: settings.event_stream_key.clone(),
                expiry: settings.expiry,
                metrics: self.metrics.clone(),
            };
            tasks.spawn(intake.run(shutdown.clone()));
        }
        tasks.spawn(self.reaper().run(shutdown.clone()));
        tasks.spawn(self.dispatcher().run(shutdown.clone()));
        tasks.spawn(self.lobby_listener().run(shutdown.clone()));
        tracing::info!(address = %self.listener.local_addr()?, "serving");
        http::serve(
            self.listener,
            self.http,
            settings.header_read_timeout,
            shutdown.clone(),
        )
        .await;
        shutdown.cancel();
        while tasks.join_next().await.is_some() {}
        self.lobby.release_connections();
        Ok(())
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
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
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
