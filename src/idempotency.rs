//! `Idempotency-Key` on create and quick match: a retry with the same key by the same player
//! within a day gets the first answer instead of a second game.
//!
//! The first request claims the key (an insert that only one of several concurrent requests
//! wins), runs, and records its answer; concurrent retries wait for that answer. A request that
//! fails frees the key: it created nothing, so a retry runs again.

use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    app::AppState,
    auth::Player,
    config::Product,
    error::{ApiError, ApiResult},
    store::idempotency::{self as store, Key},
};

pub const HEADER: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on an answer replayed from an earlier request.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
const MAX_KEY_LEN: usize = 255;
/// How often a retry looks whether the first request has answered.
const POLL: Duration = Duration::from_millis(25);

/// The `Idempotency-Key` header, if sent: 1 to 255 visible ASCII characters.
pub fn key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get(&HEADER) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(
            "Game Lobby: Invalid Idempotency-Key - expected 1 to 255 visible ASCII characters.",
        )
    };
    let text = value.to_str().map_err(|_| bad())?;
    if text.is_empty() || text.len() > MAX_KEY_LEN || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(Some(text.to_string()))
}

/// Runs `operation` once per (player, key): the first answer is stored and replayed.
/// `request` tells requests of the same operation apart (e.g. `private=true`); reusing a key for
/// a different request is refused (422). Without a key, `operation` simply runs.
///
/// The operation runs in its own task, so it finishes (and its answer is recorded) even if the
/// client goes away: that is exactly when the client will retry.
pub async fn run<T, F, Fut>(
    state: &AppState,
    product: &Arc<Product>,
    player: &Player,
    key: Option<String>,
    operation: &'static str,
    request: String,
    run: F,
) -> ApiResult<Response>
where
    T: Serialize + Send + 'static,
    F: FnOnce(AppState, Arc<Product>, Player) -> Fut,
    Fut: Future<Output = ApiResult<T>> + Send + 'static,
{
    let Some(key) = key else {
        let task = tokio::spawn(run(state.clone(), product.clone(), player.clone()));
        return Ok(Json(joined(task.await)?).into_response());
    };
    let settings = &state.settings;
    let stale_secs = (settings.game_server_timeout * 10 + Duration::from_secs(10)).as_secs_f64();
    // As long as a quick match may take: its patience, then a create.
    let wait = settings.game_server_timeout * 4 + Duration::from_secs(6);
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
        if store::claim(&state.db, &k, claim_id, stale_secs).await? {
            let Some(run) = run.take() else {
                // Claimed twice by this request: cannot happen, the first claim returns.
                return Err(ApiError::conflict(in_progress()));
            };
            let state2 = state.clone();
            let (product2, player2, key2) = (product.clone(), player.clone(), key.clone());
            let fut = run(state.clone(), product.clone(), player.clone());
            let task = tokio::spawn(async move {
                let result = fut.await;
                let db = &state2.db;
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
            return Ok(Json(joined(task.await)?).into_response());
        }
        match store::lookup(&state.db, &player.user_id, &key).await? {
            Some(stored)
                if stored.operation != operation
                    || stored.product_id != product.product_id
                    || stored.request != request =>
            {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Game Lobby: This Idempotency-Key was already used for a different request.",
                ));
            }
            Some(store::Stored {
                response: Some(answer),
                ..
            }) => {
                let mut response = Json(answer).into_response();
                response
                    .headers_mut()
                    .insert(REPLAYED, HeaderValue::from_static("true"));
                return Ok(response);
            }
            // Still running (or just freed by a failure: claim again).
            _ => {
                if started.elapsed() > wait {
                    return Err(ApiError::conflict(in_progress()));
                }
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

fn in_progress() -> &'static str {
    "Game Lobby: A request with this Idempotency-Key is still in progress. Retry shortly."
}

fn joined<T>(result: Result<ApiResult<T>, tokio::task::JoinError>) -> ApiResult<T> {
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "request task failed");
        Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Game Lobby: Internal error. Please contact support.",
        ))
    })
}
