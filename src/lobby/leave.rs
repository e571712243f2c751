//! Leaving a game, and a game's status as one caller may see it.

use super::{Lobby, LobbyResult};
use crate::{
    domain::{Game, GameRef, GameState, LobbyError, Player, Product, game_id_text},
    store::{
        games::{self as games, SeatStatus},
        outbox,
    },
};

/// What a leave did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveOutcome {
    /// A joiner's seat is free again; the game server is told (`remove_player`).
    SeatReleased,
    /// The creator left: the game is gone; the game server is told (`remove_game`).
    GameRemoved,
    /// The caller holds no seat in this game (or the game is gone): nothing to do.
    NotSeated,
}

impl Lobby {
    /// The game, whoever asks; the caller decides what of it to show (its players see all).
    pub async fn game_status(&self, product: &Product, game: &GameRef) -> LobbyResult<Game> {
        let not_found = || LobbyError::GameNotFound {
            game_id: game.text.clone(),
            product_id: product.product_id.clone(),
        };
        let game_id = game.id.ok_or_else(not_found)?;
        tracing::Span::current().record("game_id", game.text.as_str());
        games::fetch(&self.db, game_id, &product.product_id)
            .await?
            .ok_or_else(not_found)
    }

    /// Gives up the caller's seat. A joiner's seat is freed (a game that had every player
    /// connected goes back to `creator_joined` and is listed again); the creator leaving removes
    /// the game. The game-server call is owed in the same transaction and sent by the outbox
    /// worker. Idempotent: leaving a game one is not in (any more) does nothing.
    pub async fn leave_game(
        &self,
        product: &Product,
        player: &Player,
        game: &GameRef,
    ) -> LobbyResult<LeaveOutcome> {
        let Some(game_id) = game.id else {
            return Ok(LeaveOutcome::NotSeated);
        };
        tracing::Span::current().record("game_id", game.text.as_str());
        let expiry = &self.config.expiry;
        let mut tx = self.db.begin().await?;
        // Waits for a join holding the row: that is a few milliseconds, never a game-server call.
        let Some((game_state, creator_id)) =
            games::lock_for_event(&mut tx, game_id, &product.product_id).await?
        else {
            return Ok(LeaveOutcome::NotSeated);
        };
        let outcome = match games::seat_of(&mut tx, game_id, &player.user_id).await? {
            None => LeaveOutcome::NotSeated,
            Some(_) if creator_id == player.user_id => {
                // Owed first: the call goes to the game's instance, read from its row.
                outbox::owe_remove_game(&mut *tx, &product.product_id, game_id, None).await?;
                games::delete(&mut *tx, game_id, &product.product_id).await?;
                LeaveOutcome::GameRemoved
            }
            Some(SeatStatus::Reserved) => return Err(LobbyError::LeaveWhileJoining),
            Some(SeatStatus::Held) => {
                games::remove_player(&mut tx, game_id, &player.user_id).await?;
                if game_state == GameState::AllPlayersJoined {
                    let back = GameState::CreatorJoined;
                    games::set_state(&mut tx, game_id, back, expiry.secs(back)).await?;
                } else {
                    games::restart_clock(&mut tx, game_id, &expiry.all_secs()).await?;
                }
                outbox::owe_remove_player(&mut *tx, &product.product_id, game_id, &player.user_id)
                    .await?;
                LeaveOutcome::SeatReleased
            }
        };
        tx.commit().await?;
        if outcome != LeaveOutcome::NotSeated {
            self.fence().await;
        }
        tracing::info!(game_id = %game_id_text(game_id), ?outcome, "leave");
        Ok(outcome)
    }
}
