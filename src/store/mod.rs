//! Every SQL statement of the service, one module per table group, all checked at compile time
//! against the migrations (`.sqlx/` holds the offline data).

pub mod cursor;
pub mod games;
pub mod idempotency;
pub mod instances;
pub mod intents;
pub mod outbox;
pub mod schema;
pub mod warm;

use crate::domain::LobbyError;

/// Whether a database error means "down or restarting" rather than a fault of ours.
pub fn unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::Io(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => true,
        // Class 08: connection exception; 57P01-57P03: shutting down, crash recovery,
        // cannot connect now.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

impl From<sqlx::Error> for LobbyError {
    fn from(e: sqlx::Error) -> Self {
        // A database we cannot reach is a temporary condition, anything else a bug.
        if unavailable(&e) {
            tracing::error!(error = %e, "database unavailable");
            return Self::Unavailable;
        }
        tracing::error!(error = %e, "database error");
        Self::Internal
    }
}
