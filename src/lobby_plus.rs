//! What the lobby offers beyond the old service (issue 6): game status, leave, quick match and
//! joining by code. The rules of `lobby.rs` hold here too: game-server calls happen outside any
//! transaction, and calls owed to a game server go through the outbox in the owing transaction.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    app::AppState,
    auth::Player,
    config::Product,
    error::{ApiError, ApiResult},
    lobby::parse_game_id,
    model::{GameState, GameView, game_id_text},
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
