//! What operators ask of the lobby: is the database ready, how many games are there, how many
//! game-server calls are owed.

use super::{Lobby, LobbyResult};
use crate::{domain::GameState, store};

/// Whether the service can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// The database answers but lacks migrations this build knows.
    NotMigrated,
    Unreachable,
}

/// Counts read from the database for the metrics.
#[derive(Debug, Default)]
pub struct Census {
    pub games: Vec<(String, GameState, i64)>,
    /// Calls owed (not given up), and the age of the oldest in seconds.
    pub outbox: Option<(i64, f64)>,
}

impl Lobby {
    /// Ready when every migration this build knows is applied.
    pub async fn readiness(&self) -> Readiness {
        match store::schema::applied_version(&self.db).await {
            Ok(Some(v)) if v >= store::schema::expected_version() => Readiness::Ready,
            Ok(_) => Readiness::NotMigrated,
            Err(e) => {
                tracing::warn!(error = %e, "readiness: database unreachable");
                Readiness::Unreachable
            }
        }
    }

    /// Games by product and state, and the outbox's backlog (`None` when it cannot be read).
    pub async fn census(&self) -> LobbyResult<Census> {
        let games = store::games::count_by_state(&self.db).await?;
        let outbox = match self.db.acquire().await {
            Ok(mut conn) => store::outbox::backlog(&mut conn)
                .await
                .inspect_err(|e| tracing::warn!(error = %e, "metrics: outbox not measured"))
                .ok(),
            Err(e) => {
                tracing::warn!(error = %e, "metrics: outbox not measured");
                None
            }
        };
        Ok(Census { games, outbox })
    }

    /// Connections of the pool: open, and idle among them.
    pub fn pool_usage(&self) -> (u32, usize) {
        (self.db.size(), self.db.num_idle())
    }
}
