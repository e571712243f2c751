//! Every SQL statement of the service, one module per table group, all checked at compile time
//! against the migrations (`.sqlx/` holds the offline data).

pub mod cursor;
pub mod games;
pub mod idempotency;
pub mod intents;
pub mod outbox;
