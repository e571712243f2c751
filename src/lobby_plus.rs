//! What the lobby offers beyond the old service (issue 6): game status, leave, quick match and
//! joining by code. The rules of `lobby.rs` hold here too: game-server calls happen outside any
//! transaction, and calls owed to a game server go through the outbox in the owing transaction.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::sync::watch;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    app::AppState,
    auth::Player,
    config::Product,
    error::{ApiError, ApiResult},
    game_server::GameServerError,
    lobby::{self, parse_game_id},
    model::{FullGame, GameState, GameView, game_id_text},
    store::{
        games::{self as store, SeatStatus},
        outbox,
    },
};

/// The game as the caller may see it: full (with `target_game_server`) for its players,
/// partial for anyone else.
pub async fn game_status(
    state: &AppState,
    product: &Product,
    player: &Player,
    raw_game_id: &str,
) -> ApiResult<GameView> {
    let not_found = || {
        ApiError::not_found(format!(
            "Game Lobby: Game not found. Game ID: \"{raw_game_id}\", Product ID: {}.",
            product.product_id
        ))
    };
    let game_id = parse_game_id(raw_game_id)?.ok_or_else(not_found)?;
    tracing::Span::current().record("game_id", raw_game_id);
    let game = store::fetch(&state.db, game_id, &product.product_id)
        .await?
        .ok_or_else(not_found)?;
    Ok(if game.players.contains(&player.user_id) {
        GameView::Full(game.full(&product.game_server_url, Some(&product.game_socket_url)))
    } else {
        GameView::Partial(game.partial(&product.game_server_url))
    })
}

/// What a leave did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaveOutcome {
    /// A joiner's seat is free again; the game server is told (`remove_player`).
    SeatReleased,
    /// The creator left: the game is gone; the game server is told (`remove_game`).
    GameRemoved,
    /// The caller holds no seat in this game (or the game is gone): nothing to do.
    NotSeated,
}

/// The answer to a leave.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"game_id": "3f0c9d5e2b7a4c1d9e8f7a6b5c4d3e2f", "outcome": "seat_released"}))]
pub struct Left {
    pub game_id: String,
    pub outcome: LeaveOutcome,
}

/// Gives up the caller's seat. A joiner's seat is freed (a game that had every player
/// connected goes back to `creator_joined` and is listed again); the creator leaving removes
/// the game. The game-server call is owed in the same transaction and sent by the dispatcher.
/// Idempotent: leaving a game one is not in (any more) is a success that does nothing.
pub async fn leave_game(
    state: &AppState,
    product: &Product,
    player: &Player,
    raw_game_id: &str,
) -> ApiResult<Left> {
    let answer = |outcome| Left {
        game_id: raw_game_id.to_string(),
        outcome,
    };
    let Some(game_id) = parse_game_id(raw_game_id)? else {
        return Ok(answer(LeaveOutcome::NotSeated));
    };
    tracing::Span::current().record("game_id", raw_game_id);
    let expiry = &state.settings.expiry;
    let mut tx = state.db.begin().await?;
    // Waits for a join holding the row: that is a few milliseconds, never a game-server call.
    let Some((game_state, creator_id)) =
        store::lock_for_event(&mut tx, game_id, &product.product_id).await?
    else {
        return Ok(answer(LeaveOutcome::NotSeated));
    };
    let outcome = match store::seat_of(&mut tx, game_id, &player.user_id).await? {
        None => LeaveOutcome::NotSeated,
        Some(_) if creator_id == player.user_id => {
            store::delete(&mut *tx, game_id, &product.product_id).await?;
            outbox::owe_remove_game(&mut *tx, &product.product_id, game_id).await?;
            LeaveOutcome::GameRemoved
        }
        Some(SeatStatus::Reserved) => {
            return Err(ApiError::conflict(
                "Game Lobby: Unable to leave game - a join for this player is still in progress. Try again.",
            ));
        }
        Some(SeatStatus::Held) => {
            store::remove_player(&mut tx, game_id, &player.user_id).await?;
            if game_state == GameState::AllPlayersJoined {
                let back = GameState::CreatorJoined;
                store::set_state(&mut tx, game_id, back, expiry.secs(back)).await?;
            } else {
                store::restart_clock(&mut tx, game_id, &expiry.all_secs()).await?;
            }
            outbox::owe_remove_player(&mut *tx, &product.product_id, game_id, &player.user_id)
                .await?;
            LeaveOutcome::SeatReleased
        }
    };
    tx.commit().await?;
    tracing::info!(game_id = %game_id_text(game_id), ?outcome, "leave");
    Ok(answer(outcome))
}

/// What a quick match did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuickMatchOutcome {
    /// A seat in a game that was waiting for players.
    Joined,
    /// No game had a free seat: a new one, with the caller as its creator.
    Created,
    /// The caller already waits in a game of this product: that game.
    AlreadySeated,
}

/// The answer to a quick match: the full game (as create and join answer it) and what happened.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "game_id": "3f0c9d5e2b7a4c1d9e8f7a6b5c4d3e2f", "product_id": "exrps",
    "game_server_url": "http://game-rps:8080", "creator_id": "alice", "creator_name": "Alice",
    "players": ["alice", "bob"], "settings": {"num_players": 2}, "token": "9c2e4f6a8b0d",
    "state": "creator_joined", "_last_updated": "23-Nov-2026 (18:52:07.123456)",
    "target_game_server": "rps.varcade.local:8085", "outcome": "joined"
}))]
pub struct QuickMatch {
    #[serde(flatten)]
    pub game: FullGame,
    pub outcome: QuickMatchOutcome,
}

/// Game-server refusals a quick match takes (trying the next game each time) before it
/// creates a game instead.
const QUICK_MATCH_REFUSALS: u32 = 3;
/// Longest a quick match looks for a seat (games held by others for a moment, games being
/// created by others) before it creates a game itself; at least twice the game-server timeout.
const QUICK_MATCH_PATIENCE: Duration = Duration::from_secs(5);

/// Keeps a burst of quick matches from creating a game each: a request that finds no free seat
/// creates a game only if the games this process is already creating for the product will not
/// seat the requests already waiting for them; otherwise it waits for the next creation to
/// finish and looks again. Per process: several processes may each create one game too many,
/// which is the "give or take the requests that raced".
#[derive(Default)]
pub struct Gates(Mutex<HashMap<String, Arc<Gate>>>);

struct Gate {
    counts: Mutex<GateCounts>,
    /// Bumped whenever a creation ends (well or not): wakes the waiters.
    done: watch::Sender<u64>,
}

#[derive(Default)]
struct GateCounts {
    creating: usize,
    waiting: usize,
}

enum Turn {
    /// Create a game; call [`Gates::created`] when done.
    Create,
    /// Wait on this receiver for a creation to end, then call [`Gates::woken`] and look again.
    Wait(watch::Receiver<u64>),
}

impl Gates {
    fn gate(&self, product_id: &str) -> Arc<Gate> {
        let mut gates = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        gates
            .entry(product_id.to_string())
            .or_insert_with(|| {
                Arc::new(Gate {
                    counts: Mutex::default(),
                    done: watch::Sender::new(0),
                })
            })
            .clone()
    }

    fn turn(&self, product: &Product) -> Turn {
        let gate = self.gate(&product.product_id);
        let mut counts = gate.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let seats_coming = counts.creating * (product.num_players.max(2) as usize - 1);
        if counts.waiting < seats_coming {
            counts.waiting += 1;
            Turn::Wait(gate.done.subscribe())
        } else {
            counts.creating += 1;
            Turn::Create
        }
    }

    fn woken(&self, product: &Product) {
        let gate = self.gate(&product.product_id);
        let mut counts = gate.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.waiting = counts.waiting.saturating_sub(1);
    }

    fn created(&self, product: &Product) {
        let gate = self.gate(&product.product_id);
        let mut counts = gate.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.creating = counts.creating.saturating_sub(1);
        gate.done.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// What the reservation step of a quick match found.
enum Pick {
    /// A seat is reserved in this game (in this state): ask the game server.
    Reserved(Uuid, GameState),
    /// The player already holds a seat in a waiting game of this product.
    Seated(Uuid),
    /// The player's own join or quick match is still being confirmed.
    InFlight,
    /// Every game with a free seat is held by another request right now.
    Busy,
    /// No game has a free seat.
    Nothing,
}

/// Takes a seat in the oldest game of the product that waits for players (`created` or
/// `creator_joined`) with a free seat nobody is locking right now, or creates a game.
pub async fn quick_match(
    state: &AppState,
    product: &Product,
    player: &Player,
) -> ApiResult<QuickMatch> {
    let mut refused = Vec::new();
    let mut busy = 0u32;
    let patience = QUICK_MATCH_PATIENCE.max(state.settings.game_server_timeout * 2);
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let out_of_patience = tokio::time::Instant::now() >= deadline;
        match pick(state, product, player, &refused).await? {
            Pick::Seated(game_id) => return seated(state, product, game_id).await,
            Pick::InFlight => {
                return Err(ApiError::conflict(
                    "Game Lobby: Unable to quick match - a join for this player is already in progress.",
                ));
            }
            Pick::Busy | Pick::Nothing if out_of_patience => {
                return create(state, product, player).await;
            }
            // Every free seat is held by another request for a moment: it will be taken or
            // given back soon; look again rather than create a game that may not be needed.
            Pick::Busy => {
                busy += 1;
                let pause = 2u64 << busy.min(3);
                tokio::time::sleep(Duration::from_millis(pause + rand::random::<u64>() % pause))
                    .await;
            }
            Pick::Nothing => match state.quick_match.turn(product) {
                Turn::Create => {
                    let created = create(state, product, player).await;
                    state.quick_match.created(product);
                    return created;
                }
                Turn::Wait(mut done) => {
                    let _ = tokio::time::timeout_at(deadline, done.changed()).await;
                    state.quick_match.woken(product);
                    busy = 0;
                }
            },
            Pick::Reserved(game_id, game_state) => {
                let expiry = state.settings.expiry.secs(game_state);
                let answer = state
                    .game_servers
                    .join_game(
                        product,
                        &game_id_text(game_id),
                        &player.user_id,
                        &player.username,
                    )
                    .await;
                match answer {
                    Ok(_) => {
                        if let Some(game) = store::hold_seat(
                            &state.db,
                            game_id,
                            &product.product_id,
                            &player.user_id,
                        )
                        .await?
                        {
                            return Ok(QuickMatch {
                                game: game
                                    .full(&product.game_server_url, Some(&product.game_socket_url)),
                                outcome: QuickMatchOutcome::Joined,
                            });
                        }
                        // The game vanished while the game server was asked: look again.
                    }
                    Err(e) => {
                        let was_refused = matches!(e, GameServerError::Refused { .. });
                        if let Err(db) =
                            lobby::release(state, product, player, game_id, expiry, !was_refused)
                                .await
                        {
                            tracing::error!(error = %db, "could not release a failed reservation");
                        }
                        if !was_refused {
                            return Err(lobby::game_server_fault(&e));
                        }
                        refused.push(game_id);
                        if refused.len() >= QUICK_MATCH_REFUSALS as usize {
                            return create(state, product, player).await;
                        }
                    }
                }
            }
        }
    }
}

/// One short transaction: the player's own waiting seat, else a seat in the oldest waiting game
/// nobody holds.
/// Games whose game server refused this request are not tried again (`except`).
async fn pick(
    state: &AppState,
    product: &Product,
    player: &Player,
    except: &[Uuid],
) -> ApiResult<Pick> {
    let mut tx = state.db.begin().await?;
    store::lock_quick_matcher(&mut tx, &product.product_id, &player.user_id).await?;
    if let Some((game_id, status)) =
        store::waiting_seat(&mut tx, &product.product_id, &player.user_id).await?
    {
        tx.rollback().await?;
        return Ok(match status {
            SeatStatus::Held => Pick::Seated(game_id),
            SeatStatus::Reserved => Pick::InFlight,
        });
    }
    let target = store::lock_quick_match_target(&mut tx, &product.product_id, except).await?;
    let Some(target) = target else {
        let busy = store::any_quick_match_target(&mut tx, &product.product_id, except).await?;
        tx.rollback().await?;
        return Ok(if busy { Pick::Busy } else { Pick::Nothing });
    };
    let expiry = state.settings.expiry.secs(target.state);
    let seat = store::reserve_seat(
        &mut tx,
        target.game_id,
        &player.user_id,
        &player.username,
        expiry,
    )
    .await?;
    if seat.is_none() {
        // Filled up by a commit between the scan and the lock: look again.
        tx.rollback().await?;
        return Ok(Pick::Busy);
    }
    tx.commit().await?;
    Ok(Pick::Reserved(target.game_id, target.state))
}

async fn seated(state: &AppState, product: &Product, game_id: Uuid) -> ApiResult<QuickMatch> {
    let game = store::fetch(&state.db, game_id, &product.product_id)
        .await?
        .ok_or_else(|| ApiError::bad_request(lobby::GONE))?;
    Ok(QuickMatch {
        game: game.full(&product.game_server_url, Some(&product.game_socket_url)),
        outcome: QuickMatchOutcome::AlreadySeated,
    })
}

/// Creates a game for the quick match. If another quick match of the same player got a seat
/// while the game server was creating this game, that seat wins and this game is removed again.
async fn create(state: &AppState, product: &Product, player: &Player) -> ApiResult<QuickMatch> {
    let game_id = Uuid::new_v4();
    lobby::begin_create(state, product, player, game_id).await?;
    let token = lobby::create_on_game_server(state, product, player, game_id).await?;
    let settings = Value::Object(product.settings.clone());
    let new = lobby::new_game(state, product, player, game_id, &settings, &token);
    let saved = async {
        let mut tx = state.db.begin().await?;
        store::lock_quick_matcher(&mut tx, &product.product_id, &player.user_id).await?;
        if let Some(seat) =
            store::waiting_seat(&mut tx, &product.product_id, &player.user_id).await?
        {
            tx.rollback().await?;
            return Ok(Err(seat));
        }
        let updated_at = store::insert(&mut *tx, &new).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(Ok(updated_at))
    };
    match saved.await {
        Ok(Ok(None)) => Err(lobby::too_late()),
        Ok(Ok(Some(updated_at))) => Ok(QuickMatch {
            game: lobby::created(product, player, game_id, settings, token, updated_at),
            outcome: QuickMatchOutcome::Created,
        }),
        Ok(Err((existing, status))) => {
            lobby::abandon_create(state, product, game_id, true).await?;
            match status {
                SeatStatus::Held => seated(state, product, existing).await,
                SeatStatus::Reserved => Err(ApiError::conflict(
                    "Game Lobby: Unable to quick match - a join for this player is already in progress.",
                )),
            }
        }
        Err(e) => Err(lobby::unsaved(state, product, game_id, &e).await),
    }
}

/// Joins a private (or any) game by its join code.
pub async fn join_by_code(
    state: &AppState,
    product: &Product,
    player: &Player,
    raw_code: &str,
) -> ApiResult<FullGame> {
    let code = crate::join_code::normalize(raw_code).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Game Lobby: Invalid join code - expected {} characters from {}.",
            crate::join_code::LEN,
            crate::join_code::ALPHABET
        ))
    })?;
    let game_id = store::by_join_code(&state.db, &product.product_id, &code)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Game Lobby: Unable to join game - no game with join code {code}, Product ID: {}.",
                product.product_id
            ))
        })?;
    lobby::join_game(state, product, player, &game_id_text(game_id)).await
}
