//! Products (game titles) and the time a game may stay in each state.

use std::{collections::HashMap, fmt, sync::Arc, time::Duration};

use serde_json::{Map, Value};

use super::{
    GameState,
    fleet::{DEFAULT_INSTANCE, InstanceSpec},
};

/// A game title registered with the matchmaker.
#[derive(Clone)]
pub struct Product {
    pub product_id: String,
    /// Base URL of the product's single game server (its fleet of one); empty when the product
    /// lists `[[games.servers]]` or relies on registration.
    pub game_server_url: String,
    /// Where players connect to that server (`target_game_server`).
    pub game_socket_url: String,
    /// `[[games.servers]]`: the configured instances (see [`Product::instances`]).
    pub servers: Vec<InstanceSpec>,
    pub settings: Map<String, Value>,
    /// Seats per game (`settings.num_players`, default 2).
    pub num_players: i32,
    /// Bearer token the game server presents on the HTTP event route; `None` = route refused.
    pub event_key: Option<String>,
}

impl fmt::Debug for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Product")
            .field("product_id", &self.product_id)
            .field("game_server_url", &self.game_server_url)
            .field("game_socket_url", &self.game_socket_url)
            .field("servers", &self.servers)
            .field("num_players", &self.num_players)
            .field("event_key", &self.event_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Product {
    /// The configured instances: the single `game_server_url` as a fleet of one (instance
    /// `default`, no capacity limit), or else `[[games.servers]]`.
    pub fn instances(&self) -> Vec<InstanceSpec> {
        if self.game_server_url.is_empty() {
            return self.servers.clone();
        }
        vec![InstanceSpec {
            id: DEFAULT_INSTANCE.into(),
            url: self.game_server_url.clone(),
            socket_url: self.game_socket_url.clone(),
            capacity: None,
            region: None,
        }]
    }
}

/// The configured products, in the configuration's order, found by id.
#[derive(Clone, Debug, Default)]
pub struct Products(Arc<ProductList>);

#[derive(Debug, Default)]
struct ProductList(Vec<Arc<Product>>, HashMap<String, usize>);

impl Products {
    pub fn new(products: &[Product]) -> Self {
        let list: Vec<Arc<Product>> = products.iter().cloned().map(Arc::new).collect();
        let index = list
            .iter()
            .enumerate()
            .map(|(i, p)| (p.product_id.clone(), i))
            .collect();
        Self(Arc::new(ProductList(list, index)))
    }

    pub fn get(&self, product_id: &str) -> Option<Arc<Product>> {
        let ProductList(list, index) = &*self.0;
        index.get(product_id).and_then(|i| list.get(*i).cloned())
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|p| p.product_id.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Product>> {
        self.0.0.iter()
    }
}

/// How long a game may stay in each state without a change (docs/lifecycle.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub created: Duration,
    pub creator_joined: Duration,
    pub all_players_joined: Duration,
    pub in_progress: Duration,
    pub ended: Duration,
}

impl Expiry {
    pub fn of(&self, state: GameState) -> Duration {
        match state {
            GameState::Created => self.created,
            GameState::CreatorJoined => self.creator_joined,
            GameState::AllPlayersJoined => self.all_players_joined,
            GameState::InProgress => self.in_progress,
            GameState::Ended => self.ended,
        }
    }

    /// Every state's expiry in seconds, in the states' order.
    pub fn all_secs(&self) -> Vec<f64> {
        GameState::ALL.iter().map(|s| self.secs(*s)).collect()
    }

    /// The same, in seconds, as the store's queries take it.
    pub fn secs(&self, state: GameState) -> f64 {
        self.of(state).as_secs_f64()
    }
}
