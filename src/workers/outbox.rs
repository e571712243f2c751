//! The outbox dispatcher: sends the game-server calls owed (`remove_game`, `remove_player`),
//! retrying with backoff, giving up after `outbox_max_attempts` or on a refusal that will not
//! change. Claims are leases, so no transaction stays open during a call and a dead
//! dispatcher's claims pass to another process.

use std::time::Duration;

use futures::StreamExt;
use rand::Rng;
use sqlx::{PgPool, postgres::PgListener};
use tokio_util::sync::CancellationToken;

use crate::{
    domain::{Products, fleet::Placement},
    game_server::{GameServerClient, GameServerError, Target},
    store::{
        instances,
        outbox::{self, Call, Owed},
    },
};

/// Owed calls claimed per pass.
const BATCH: i64 = 100;
/// Owed calls in flight at once per process.
const SENDS_IN_FLIGHT: usize = 8;
/// The fallback poll when no notification arrives.
const POLL: Duration = Duration::from_secs(1);
/// Longest wait between two attempts at an owed call.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

pub struct Dispatcher {
    pub db: PgPool,
    pub game_servers: GameServerClient,
    pub products: Products,
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt.
    pub backoff: Duration,
    /// How long a claim lasts: longer than one call may take.
    pub lease: Duration,
}

/// What one owed call came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Done,
    Retry,
    GaveUp,
}

impl Dispatcher {
    /// Sends every owed call that is due now; returns how many were attempted.
    pub async fn dispatch_once(&self) -> sqlx::Result<usize> {
        let owed = outbox::claim(&self.db, BATCH, self.lease.as_secs_f64()).await?;
        let count = owed.len();
        let results: Vec<sqlx::Result<Sent>> = futures::stream::iter(owed)
            .map(|o| self.send(o))
            .buffer_unordered(SENDS_IN_FLIGHT)
            .collect()
            .await;
        for r in results {
            r?;
        }
        Ok(count)
    }

    async fn send(&self, owed: Owed) -> sqlx::Result<Sent> {
        let game_id = owed.game_id.simple().to_string();
        let Some(product) = self.products.get(&owed.product_id) else {
            tracing::error!(
                game_id,
                product = owed.product_id,
                "owed game-server call abandoned: product no longer configured"
            );
            outbox::give_up(&self.db, owed.id, "product no longer configured").await?;
            return Ok(Sent::GaveUp);
        };
        let at = match owed.server_key {
            None => Placement::resolve(&product, None, None, None, None),
            Some(key) => match instances::reachable(&self.db, key).await? {
                Some(at) => at,
                // Nothing is ever sent to a lost instance (docs/fleets.md).
                None => {
                    tracing::info!(
                        game_id,
                        "owed game-server call dropped: its instance is lost"
                    );
                    outbox::done(&self.db, owed.id).await?;
                    return Ok(Sent::Done);
                }
            },
        };
        let to = Target {
            product_id: &product.product_id,
            at: &at,
        };
        let result = match (owed.call, owed.player_id.as_deref()) {
            (Call::RemoveGame, _) => self.game_servers.remove_game(to, &game_id).await,
            (Call::RemovePlayer, Some(player)) => {
                self.game_servers.remove_player(to, &game_id, player).await
            }
            (Call::RemovePlayer, None) => Err(GameServerError::BadAnswer("no player id".into())),
        };
        let call = match owed.call {
            Call::RemoveGame => "remove_game",
            Call::RemovePlayer => "remove_player",
        };
        match result {
            Ok(()) => {
                outbox::done(&self.db, owed.id).await?;
                Ok(Sent::Done)
            }
            Err(e) if !e.is_transient() || owed.attempts >= self.max_attempts as i32 => {
                tracing::error!(game_id, call, attempts = owed.attempts, error = %e, "owed game-server call abandoned");
                outbox::give_up(&self.db, owed.id, &e.to_string()).await?;
                Ok(Sent::GaveUp)
            }
            Err(e) => {
                let delay = backoff(self.backoff, owed.attempts);
                tracing::warn!(game_id, call, attempts = owed.attempts, retry_in_ms = delay.as_millis() as u64, error = %e, "owed game-server call failed; will retry");
                outbox::retry_later(&self.db, owed.id, delay.as_secs_f64(), &e.to_string()).await?;
                Ok(Sent::Retry)
            }
        }
    }

    /// Runs until `shutdown`: woken by `NOTIFY matchmaker_outbox` on every commit that owes a
    /// call, and by a poll for retries that fall due.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut listener = match listen(&self.db).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "outbox notifications unavailable; polling");
                None
            }
        };
        while !self.db.is_closed() {
            match self.dispatch_once().await {
                // A full batch: there may be more due right now.
                Ok(n) if n as i64 >= BATCH => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "outbox dispatch failed; retrying"),
            }
            let notified = async {
                match listener.as_mut() {
                    // PgListener reconnects on the next call; after an error, wait a poll.
                    Some(l) => {
                        if l.recv().await.is_err() {
                            tokio::time::sleep(POLL).await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = notified => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

async fn listen(db: &PgPool) -> sqlx::Result<PgListener> {
    let mut l = PgListener::connect_with(db).await?;
    l.listen("matchmaker_outbox").await?;
    Ok(l)
}

/// Exponential backoff with jitter: `base * 2^(attempt-1)`, capped, scaled by 0.5 to 1.0.
fn backoff(base: Duration, attempt: i32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.clamp(1, 20).saturating_sub(1));
    exp.min(MAX_BACKOFF)
        .mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(500);
        for _ in 0..20 {
            let first = backoff(base, 1);
            assert!(first >= Duration::from_millis(250) && first <= base);
            let fourth = backoff(base, 4);
            assert!(fourth >= Duration::from_millis(2000) && fourth <= Duration::from_millis(4000));
            assert!(backoff(base, 40) <= MAX_BACKOFF);
        }
    }
}
