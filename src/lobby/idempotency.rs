//! `Idempotency-Key` on create and quick match: a retry with the same key by the same player
//! within a day gets the first answer instead of a second game.
//!
//! The first request claims the key (an insert that only one of several concurrent requests
//! wins), runs, and records its answer; concurrent retries wait for that answer. A request that
//! fails frees the key: it created nothing, so a retry runs again.

use std::{future::Future, sync::Arc, time::Duration};

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{Lobby, LobbyResult};
use crate::{
    domain::{LobbyError, Player, Product},
    store::idempotency::{self as store, Key},
};

/// How often a retry looks whether the first request has answered.
const POLL: Duration = Duration::from_millis(25);

/// An answer: just computed, or the stored answer of an earlier request with the same key.
pub enum Answer<T> {
    Fresh(T),
    Replayed(Value),
}

/// What is run once per key: the request's operation (a use case and its answer's shape).
pub struct Request<'a> {
    pub product: &'a Arc<Product>,
    pub player: &'a Player,
    pub key: Option<String>,
    pub operation: &'static str,
    /// Tells requests of the same operation apart (e.g. `private=true`).
    pub request: String,
}

/// Runs `operation` once per (player, key): the first answer is stored and replayed.
/// `request` tells requests of the same operation apart (e.g. `private=true`); reusing a key for
/// a different request is refused (422). Without a key, `operation` simply runs.
///
/// The operation runs in its own task, so it finishes (and its answer is recorded) even if the
/// client goes away: that is exactly when the client will retry.
pub async fn run<T, F, Fut>(lobby: &Arc<Lobby>, req: Request<'_>, run: F) -> LobbyResult<Answer<T>>
where
    T: Serialize + Send + 'static,
    F: FnOnce(Arc<Lobby>, Arc<Product>, Player) -> Fut,
    Fut: Future<Output = LobbyResult<T>> + Send + 'static,
{
    let Request {
        product,
        player,
        key,
        operation,
        request,
    } = req;
    let Some(key) = key else {
        let task = tokio::spawn(run(lobby.clone(), product.clone(), player.clone()));
        return joined(task.await).map(Answer::Fresh);
    };
    let timeout = lobby.config.game_server_timeout;
    let stale_secs = (timeout * 10 + Duration::from_secs(10)).as_secs_f64();
    // As long as a quick match may take: its patience, then a create.
    let wait = timeout * 4 + Duration::from_secs(6);
    let db = &lobby.db;
    let started = tokio::time::Instant::now();
    let k = Key {
        player_id: &player.user_id,
        key: &key,
        operation,
        product_id: &product.product_id,
        request: &request,
    };
    let mut run = Some(run);
    loop {
        let claim_id = Uuid::new_v4();
        if store::claim(db, &k, claim_id, stale_secs).await? {
            let Some(run) = run.take() else {
                // Claimed twice by this request: cannot happen, the first claim returns.
                return Err(LobbyError::IdempotencyInProgress);
            };
            let lobby2 = lobby.clone();
            let (product2, player2, key2) = (product.clone(), player.clone(), key.clone());
            let fut = run(lobby.clone(), product.clone(), player.clone());
            let task = tokio::spawn(async move {
                let result = fut.await;
                let db = &lobby2.db;
                let recorded = match &result {
                    Ok(answer) => match serde_json::to_value(answer) {
                        Ok(json) => store::complete(db, &player2.user_id, &key2, claim_id, &json)
                            .await
                            .map(|()| Some(json)),
                        Err(e) => {
                            tracing::error!(error = %e, "answer could not be stored");
                            Ok(None)
                        }
                    },
                    Err(_) => store::release(db, &player2.user_id, &key2, claim_id)
                        .await
                        .map(|()| None),
                };
                if let Err(e) = recorded {
                    tracing::error!(error = %e, product = %product2.product_id, "idempotency record not updated");
                }
                result
            });
            return joined(task.await).map(Answer::Fresh);
        }
        match store::lookup(db, &player.user_id, &key).await? {
            Some(stored)
                if stored.operation != operation
                    || stored.product_id != product.product_id
                    || stored.request != request =>
            {
                return Err(LobbyError::IdempotencyKeyReused);
            }
            Some(store::Stored {
                response: Some(answer),
                ..
            }) => return Ok(Answer::Replayed(answer)),
            // Still running (or just freed by a failure: claim again).
            _ => {
                if started.elapsed() > wait {
                    return Err(LobbyError::IdempotencyInProgress);
                }
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

fn joined<T>(result: Result<LobbyResult<T>, tokio::task::JoinError>) -> LobbyResult<T> {
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "request task failed");
        Err(LobbyError::Internal)
    })
}
