//! Building and running the service: shared state, the router, the background tasks.
//!
//! `Application::build` takes a bound listener so tests can serve on port 0, and
//! `run_until` stops everything when the given token is cancelled.

use std::{collections::HashMap, ops::Deref, sync::Arc, time::Duration};

use anyhow::Context;
use axum::Router;
use sqlx::{
    PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    auth::Authenticator,
    config::{Product, Settings},
    game_server::GameServerClient,
    intake, lifecycle,
    limits::RateLimits,
    metrics::Metrics,
    routes,
};

/// The migrations in `migrations/`, embedded for `matchmaker migrate` and start-up.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// What every request handler and task shares.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub settings: Settings,
    pub db: PgPool,
    pub auth: Authenticator,
    pub game_servers: GameServerClient,
    pub metrics: Arc<Metrics>,
    pub rate_limits: RateLimits,
    /// Keeps a burst of quick matches from creating more games than needed.
    pub quick_match: crate::lobby_plus::Gates,
    /// This process's fan-out of live-lobby changes.
    pub lobby: crate::live::Hub,
    products: HashMap<String, Arc<Product>>,
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(settings: Settings, db: PgPool) -> anyhow::Result<Self> {
        let products = settings
            .products
            .iter()
            .map(|p| (p.product_id.clone(), Arc::new(p.clone())))
            .collect();
        let metrics = Arc::new(Metrics::new());
        Ok(Self(Arc::new(Shared {
            auth: Authenticator::new(&settings.secret_key, settings.require_token_expiry),
            game_servers: GameServerClient::new(settings.game_server_timeout, metrics.clone())?,
            metrics,
            rate_limits: RateLimits::new(
                settings.rate_limit_player_per_minute,
                settings.rate_limit_ip_per_minute,
            ),
            quick_match: Default::default(),
            lobby: crate::live::Hub::new(settings.lobby_stream_buffer),
            products,
            settings,
            db,
        })))
    }

    pub fn product(&self, product_id: &str) -> Option<Arc<Product>> {
        self.products.get(product_id).cloned()
    }
}

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

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    pub fn build(settings: Settings, db: PgPool, listener: TcpListener) -> anyhow::Result<Self> {
        let state = AppState::new(settings, db)?;
        let router = routes::router(state.clone());
        Ok(Self {
            listener,
            router,
            state,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves and runs the background tasks until `shutdown` is cancelled, then drains
    /// requests in flight and waits for the tasks to stop.
    pub async fn run_until(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        let settings = &self.state.settings;
        if let Some(url) = settings.event_stream_url.clone() {
            tasks.spawn(intake::run(
                self.state.db.clone(),
                settings.clone(),
                self.state.metrics.clone(),
                url,
                shutdown.clone(),
            ));
        }
        tasks.spawn(lifecycle::run_reaper(self.state.clone(), shutdown.clone()));
        tasks.spawn(crate::live::run_listener(
            self.state.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(lifecycle::run_dispatcher(
            self.state.clone(),
            shutdown.clone(),
        ));
        tracing::info!(address = %self.listener.local_addr()?, "serving");
        crate::server::serve(
            self.listener,
            self.router,
            settings.header_read_timeout,
            shutdown.clone(),
        )
        .await;
        shutdown.cancel();
        while tasks.join_next().await.is_some() {}
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
