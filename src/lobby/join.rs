//! Taking a seat: the one flow behind join_game, join_by_code and the seat a quick match finds.
//!
//! 1. reserve a seat in one short statement that never waits on another join's row lock;
//! 2. ask the game server (`join_game`), outside any transaction;
//! 3. hold the seat, or give it back. A failure that may have seated the player on the game
//!    server owes it a `remove_player` in the transaction that frees the seat. If the process
//!    dies between 1 and 3, the reaper frees the reservation and owes the same call.

use std::time::Duration;

use uuid::Uuid;

use super::{Lobby, LobbyResult};
use crate::{
    domain::{
        Game, GameRef, GameState, LobbyError, Player, Product, fleet::Placement, game_id_text,
        join_code,
    },
    game_server::Target,
    store::{
        games::{self as games, SeatStatus},
        outbox,
    },
};

/// How often a join retries a game row another join holds, before answering 409.
const LOCK_ATTEMPTS: u32 = 5;

/// What the reservation step decided.
enum Reservation {
    /// A new seat is reserved: ask the game's instance. With the reservation's transaction
    /// when the game was listed.
    Reserved(Placement, Option<i64>),
    /// The player already holds a seat: answer with the game as it is.
    AlreadySeated,
}

/// How steps 2 and 3 ended.
pub(super) enum Confirmed {
    /// The seat is held: the game as it is now.
    Held(Box<Game>),
    /// The game server said no; the seat is free again (and owed a `remove_player` if the
    /// refusal was a 5xx).
    Refused,
    /// The game went away while the game server was asked.
    Gone,
}

impl Lobby {
    /// Takes a seat in a game for `player`.
    pub async fn join_game(
        &self,
        product: &Product,
        player: &Player,
        game: &GameRef,
    ) -> LobbyResult<Game> {
        let not_found = || LobbyError::JoinTargetNotFound {
            game_id: game.text.clone(),
            product_id: product.product_id.clone(),
        };
        let game_id = game.id.ok_or_else(not_found)?;
        tracing::Span::current().record("game_id", game.text.as_str());

        match self.reserve(product, player, game_id).await? {
            Some(Reservation::AlreadySeated) => {
                games::fetch(&self.db, game_id, &product.product_id)
                    .await?
                    .ok_or_else(not_found)
            }
            Some(Reservation::Reserved(at, lobby_tx)) => {
                let expiry = self.config.expiry.secs(GameState::CreatorJoined);
                let confirmed = self
                    .confirm_seat(product, player, game_id, &at, expiry)
                    .await;
                self.fence_after_join(&confirmed, lobby_tx).await;
                match confirmed? {
                    Confirmed::Held(game) => Ok(*game),
                    Confirmed::Refused => Err(LobbyError::JoinRefused),
                    Confirmed::Gone => Err(LobbyError::NoLongerAvailable),
                }
            }
            None => Err(not_found()),
        }
    }

    /// Joins the game holding a join code (a private game's, from its creator).
    pub async fn join_by_code(
        &self,
        product: &Product,
        player: &Player,
        raw_code: &str,
    ) -> LobbyResult<Game> {
        let code = join_code::normalize(raw_code).ok_or(LobbyError::InvalidJoinCode)?;
        let game_id = games::by_join_code(&self.db, &product.product_id, &code)
            .await?
            .ok_or_else(|| LobbyError::CodeNotFound {
                code,
                product_id: product.product_id.clone(),
            })?;
        self.join_game(product, player, &GameRef::from(game_id))
            .await
    }

    /// Steps 2 and 3 for a reserved seat in a game placed `at`; `expiry_secs` restarts the
    /// game's clock if the seat is given back.
    pub(super) async fn confirm_seat(
        &self,
        product: &Product,
        player: &Player,
        game_id: Uuid,
        at: &Placement,
        expiry_secs: f64,
    ) -> LobbyResult<Confirmed> {
        let answer = self
            .game_servers
            .join_game(
                Target {
                    product_id: &product.product_id,
                    at,
                },
                &game_id_text(game_id),
                &player.user_id,
                &player.username,
            )
            .await;
        if let Err(e) = answer {
            if let Err(db) = self
                .release(product, player, game_id, expiry_secs, e.may_have_acted())
                .await
            {
                // The reaper frees reservations that outlive their time; nothing is lost.
                tracing::error!(error = %db, "could not release a failed reservation");
            }
            return match e.fault() {
                Some(fault) => Err(LobbyError::GameServer(fault)),
                None => Ok(Confirmed::Refused),
            };
        }
        let (pid, uid) = (&product.product_id, &player.user_id);
        let held = self
            .warm
            .run(async |c| games::hold_seat(c, game_id, pid, uid).await)
            .await?;
        Ok(match held {
            Some(game) => Confirmed::Held(Box::new(game)),
            None => Confirmed::Gone,
        })
    }

    /// The fence after a seat was taken or given back (`listing.rs`). A seat held in a game no
    /// longer listed (a private one, one whose creator has not connected, one now full) needs
    /// no fence of its own: if the game was listed, the reservation's own notification
    /// (`lobby_tx`) unlisted it, and pages wait for that one (`read_model`'s commit fence). A
    /// game still listed changed again at the hold, and a seat given back relisted it: those
    /// send a fence.
    pub(super) async fn fence_after_join(
        &self,
        confirmed: &LobbyResult<Confirmed>,
        lobby_tx: Option<i64>,
    ) {
        if let Ok(Confirmed::Held(game)) = confirmed
            && !game.is_listed()
        {
            if let Some(tx) = lobby_tx {
                self.read_model.fence_commit(tx);
            }
            return;
        }
        self.fence().await;
    }

    async fn release(
        &self,
        product: &Product,
        player: &Player,
        game_id: Uuid,
        expiry_secs: f64,
        owe_removal: bool,
    ) -> sqlx::Result<()> {
        let mut tx = self.db.begin().await?;
        let released =
            games::release_reservation(&mut *tx, game_id, &player.user_id, expiry_secs).await?;
        if released && owe_removal {
            outbox::owe_remove_player(&mut *tx, &product.product_id, game_id, &player.user_id)
                .await?;
        }
        tx.commit().await
    }

    /// Step 1. `None` means the game does not exist.
    async fn reserve(
        &self,
        product: &Product,
        player: &Player,
        game_id: Uuid,
    ) -> LobbyResult<Option<Reservation>> {
        let expiry_secs = self.config.expiry.secs(GameState::CreatorJoined);
        let (pid, uid, name) = (&product.product_id, &player.user_id, &player.username);
        for attempt in 0..LOCK_ATTEMPTS {
            let reserved = self
                .warm
                .run(async |c| {
                    games::lock_and_reserve(c, game_id, pid, uid, name, expiry_secs).await
                })
                .await;
            let target = match reserved {
                Ok(Some(target)) => target,
                Ok(None) => return Ok(None),
                // A join committed between the statement's snapshot and its lock: look again.
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    pause(attempt).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            match target.my_seat {
                Some(SeatStatus::Held) => return Ok(Some(Reservation::AlreadySeated)),
                Some(SeatStatus::Reserved) => return Err(LobbyError::JoinInProgress),
                None => {}
            }
            if target.state != GameState::CreatorJoined {
                return Err(LobbyError::WrongState(target.state));
            }
            if target.seats_taken >= target.num_players {
                return Err(LobbyError::Full);
            }
            if !target.locked {
                // Another join holds the row for a millisecond or two: look again shortly.
                pause(attempt).await;
                continue;
            }
            if target.reserved.is_none() {
                return Err(LobbyError::Full);
            }
            let at = Placement::resolve(
                product,
                target.server_key,
                target.instance_id,
                target.server_url,
                target.socket_url,
            );
            return Ok(Some(Reservation::Reserved(at, target.lobby_tx)));
        }
        Err(LobbyError::Busy)
    }
}

/// The pause before a join looks again at a game another join holds: 2, 4, 8... ms, jittered.
pub(super) async fn pause(attempt: u32) {
    let pause = 2u64 << attempt.min(6);
    tokio::time::sleep(Duration::from_millis(pause + rand::random::<u64>() % pause)).await;
}
