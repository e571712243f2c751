//! Integration tests: one binary, a fresh database per test (`#[sqlx::test]`).

mod auth;
mod create;
mod demo;
mod events;
mod health;
mod helpers;
mod idempotency;
mod join;
mod leave;
mod lifecycle;
mod live;
mod metrics;
mod open_games;
mod private;
mod process;
mod quick_match;
mod status;
mod stream;
