//! matchmaker: lobby and matchmaking for multiplayer web games, on Postgres.
//!
//! The binary (`main.rs`) only reads settings and calls into [`app::Application`]; everything
//! else lives here so tests can start the service on a port-0 listener.

pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod events;
pub mod game_server;
pub mod idempotency;
pub mod intake;
pub mod join_code;
pub mod lifecycle;
pub mod limits;
pub mod live;
pub mod lobby;
pub mod lobby_plus;
pub mod metrics;
pub mod model;
pub mod routes;
pub mod server;
pub mod store;
pub mod telemetry;
