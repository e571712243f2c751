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
mod join;
mod lifecycle;
mod limits;
mod metrics;
mod open_games;
mod process;
mod stream;
mod swagger_ui;
