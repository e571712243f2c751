//! matchmaker: lobby and matchmaking for multiplayer web games, on Postgres.
//!
//! Dependencies point one way (docs/design.md):
//! `main` → [`startup`] → {[`http`], [`workers`]} → {[`lobby`], [`events`], [`live`]} →
//! {[`domain`], [`store`], [`game_server`]}. Only [`http`] knows axum and utoipa.

pub mod auth;
pub mod config;
pub mod domain;
pub mod events;
pub mod fd_limit;
pub mod game_server;
pub mod http;
pub mod live;
pub mod lobby;
pub mod metrics;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod workers;
