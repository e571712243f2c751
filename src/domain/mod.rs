//! The lobby's types and rules, with no I/O: games and their states, products, players, join
//! codes, settings filters, and the errors of the lobby.

mod error;
mod filter;
pub mod fleet;
mod game;
pub mod join_code;
mod player;
mod product;

pub use error::{GameServerFault, LobbyError, LobbyResult, NoGameServer};
pub use filter::{MAX_FILTERS, SettingsFilter, contains};
pub use game::{Game, GameRef, GameState, game_id_text, legacy_time};
pub use player::Player;
pub use product::{Expiry, Product, Products};
