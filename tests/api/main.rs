//! Integration tests: one binary, a fresh database per test (`#[sqlx::test]`).

mod auth;
mod browser;
mod crash;
mod create;
mod demo;
mod events;
mod faults;
mod health;
mod helpers;
mod hostile;
mod idempotency;
mod join;
mod leave;
mod lifecycle;
mod limits;
mod live;
mod lobby_page;
mod metrics;
mod open_games;
mod private;
mod process;
mod quick_match;
mod status;
mod stream;
mod swagger_ui;
