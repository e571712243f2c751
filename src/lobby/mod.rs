//! The lobby's use cases: create, join (by id, by code, and the seat a quick match takes),
//! quick match, leave, status and the open-games list. No HTTP here: each use case takes the
//! product and the player, and answers domain values or a [`LobbyError`].
//!
//! Game-server calls never happen inside a database transaction: what must be undone on a game
//! server if this process dies is written down first (a create intent, a seat reservation), and
//! calls owed to it go through the outbox in the owing transaction (docs/design.md).

mod create;
mod fleet;
pub mod idempotency;
mod join;
mod leave;
pub mod limits;
mod listing;
pub mod ops;
mod quick_match;
pub mod read_model;

use std::{sync::Arc, time::Duration};

use sqlx::PgPool;

pub use create::Created;
pub use fleet::Registered;
pub use leave::LeaveOutcome;
pub use listing::{Listing, Page};
pub use quick_match::QuickMatchOutcome;

pub use crate::domain::LobbyResult;
use crate::{
    domain::{Expiry, Product, Products},
    game_server::GameServerClient,
    store::warm::Warm,
};

/// The rules' settings.
#[derive(Debug, Clone)]
pub struct LobbyConfig {
    pub expiry: Expiry,
    /// Games one player may have waiting for players at once; 0 = no limit.
    pub max_open_games_per_player: u32,
    pub page_size: u32,
    pub max_page_size: u32,
    /// Time limit of one game-server call (quick match and idempotent retries wait longer).
    pub game_server_timeout: Duration,
    /// A registered instance without a heartbeat for this long takes no new games (and the
    /// reaper declares it lost).
    pub instance_timeout: Duration,
}

/// The lobby service: everything a use case needs, and nothing else.
pub struct Lobby {
    db: PgPool,
    /// Three quarters of `db`'s connections, for the statements of create, join and quick match.
    warm: Warm,
    game_servers: GameServerClient,
    products: Products,
    config: LobbyConfig,
    /// Keeps a burst of quick matches from creating more games than needed.
    creations: quick_match::Gates,
    /// The open-games list in memory, fed by the lobby listener.
    read_model: Arc<read_model::ReadModel>,
    /// Set once the configured instances are in the database (before the first placement).
    configured: tokio::sync::OnceCell<()>,
}

impl Lobby {
    pub fn new(
        db: PgPool,
        game_servers: GameServerClient,
        products: Products,
        config: LobbyConfig,
        read_model: Arc<read_model::ReadModel>,
    ) -> Arc<Self> {
        let hot = db.options().get_max_connections() as usize * 3 / 4;
        Arc::new(Self {
            warm: Warm::new(db.clone(), hot),
            db,
            game_servers,
            products,
            config,
            creations: Default::default(),
            read_model,
            configured: tokio::sync::OnceCell::new(),
        })
    }

    pub fn product(&self, product_id: &str) -> Option<Arc<Product>> {
        self.products.get(product_id)
    }

    pub fn products(&self) -> &Products {
        &self.products
    }

    pub fn config(&self) -> &LobbyConfig {
        &self.config
    }

    /// Gives the connections held for the hot paths back to the pool (at shutdown).
    pub fn release_connections(&self) {
        self.warm.release_all();
    }
}
