//! Creating a game: the one flow behind create_game, private games and a quick match that finds
//! no seat.
//!
//! 0. an intent row, within the creator's open-games limit, placed on an instance of the
//!    product's fleet (`fleet.rs`; a crash after the game server's answer leaves a trace the
//!    reaper turns into a `remove_game`);
//! 1. the instance's `create_game`, outside any transaction; an instance that could not be
//!    connected to did nothing, so the create is placed again elsewhere;
//! 2. the game's insert, which consumes the intent. Any failure after step 1 that may have left
//!    the game on the game server owes it a `remove_game` in the transaction that drops the intent.

use serde_json::Value;
use uuid::Uuid;

use super::{Lobby, LobbyResult, quick_match::Creating};
use crate::{
    domain::{
        Game, GameServerFault, GameState, LobbyError, Player, Product, fleet::Placement,
        game_id_text, join_code,
    },
    game_server::{GameServerError, Target},
    store::{
        self,
        games::{self as games, NewGame, SeatStatus},
        intents, outbox,
    },
};

/// Instances one create tries when those it is placed on cannot be connected to.
const PLACEMENTS: usize = 3;

/// What kind of game a create makes.
#[derive(Clone, Copy)]
pub enum Kind<'a> {
    /// Listed once its creator connects.
    Public,
    /// Never listed nor quick-matched; others join it by its code.
    Private,
    /// Public, for a quick match: if the player got a seat elsewhere meanwhile, that seat wins.
    /// With the request's turn at the creation gate, the game's free seats go to the requests
    /// waiting there.
    QuickMatch(Option<&'a Creating>),
}

/// What a create came to.
#[derive(Debug)]
pub enum Created {
    /// The new game, as just written.
    Game(Box<Game>),
    /// (Quick match only) the player got a seat in this waiting game while the game server was
    /// creating theirs; the new game is dropped again.
    AlreadyWaiting(Uuid, SeatStatus),
}

impl Lobby {
    /// Creates a public or private game with `player` as its creator, on an instance of
    /// `region` if one is asked for.
    pub async fn create_game(
        &self,
        product: &Product,
        player: &Player,
        private: bool,
        region: Option<&str>,
    ) -> LobbyResult<Game> {
        let kind = if private { Kind::Private } else { Kind::Public };
        match self.create(product, player, kind, region).await? {
            Created::Game(game) => Ok(*game),
            // Only a quick match's create looks for a seat elsewhere.
            Created::AlreadyWaiting(..) => Err(LobbyError::Internal),
        }
    }

    pub(super) async fn create(
        &self,
        product: &Product,
        player: &Player,
        kind: Kind<'_>,
        region: Option<&str>,
    ) -> LobbyResult<Created> {
        let mut tried = Vec::new();
        let (game_id, at, token) = loop {
            let game_id = Uuid::new_v4();
            tracing::Span::current().record("game_id", game_id_text(game_id).as_str());
            let at = match self.place(product, player, game_id, region, &tried).await {
                Ok(at) => at,
                // No other instance to try: the first failure is the answer.
                Err(LobbyError::NoGameServer { .. }) if !tried.is_empty() => {
                    return Err(LobbyError::GameServer(GameServerFault::Unreachable));
                }
                Err(e) => return Err(e),
            };
            let to = Target {
                product_id: &product.product_id,
                at: &at,
            };
            let answer = self
                .game_servers
                .create_game(
                    to,
                    &game_id_text(game_id),
                    &player.user_id,
                    &player.username,
                )
                .await;
            match answer {
                Ok(token) => break (game_id, at, token),
                Err(e) => {
                    self.abandon_create(product, game_id, &at, e.may_have_acted())
                        .await;
                    let elsewhere = matches!(e, GameServerError::NotConnected(_))
                        && tried.len() + 1 < PLACEMENTS;
                    match at.server_key {
                        Some(key) if elsewhere => tried.push(key),
                        _ => {
                            return Err(e
                                .fault()
                                .map_or(LobbyError::CreateRefused, LobbyError::GameServer));
                        }
                    }
                    tracing::warn!(
                        instance = at.instance_id,
                        "create placed again: the instance could not be connected to"
                    );
                }
            }
        };

        let settings = Value::Object(product.settings.clone());
        let new = NewGame {
            game_id,
            product_id: &product.product_id,
            creator_id: &player.user_id,
            creator_name: &player.username,
            num_players: product.num_players,
            settings: &settings,
            token: &token,
            expires_in_secs: self.config.expiry.secs(GameState::Created),
            join_code: None,
        };
        let saved = match kind {
            Kind::Public => self
                .warm
                .run(async |c| games::insert(c, &new).await)
                .await
                .map(|t| t.map(|t| Ok((t, None)))),
            Kind::Private => games::insert_with_code(&self.db, &new, join_code::generate)
                .await
                .map(|saved| saved.map(|(t, code)| Ok((t, Some(code))))),
            Kind::QuickMatch(gate) => {
                let handover = gate.map(|creating| (creating, &at));
                self.insert_unless_waiting(product, player, &new, handover)
                    .await
            }
        };
        let (updated_at, join_code) = match saved {
            Ok(Some(Ok(saved))) => saved,
            Ok(Some(Err((existing, status)))) => {
                self.abandon_create(product, game_id, &at, true).await;
                return Ok(Created::AlreadyWaiting(existing, status));
            }
            Ok(None) => return Err(LobbyError::AnsweredTooLate),
            Err(e) => {
                tracing::error!(error = %e, game_id = %game_id.simple(), "saving a created game failed; removing it from the game server");
                self.abandon_create(product, game_id, &at, true).await;
                return Err(if store::unavailable(&e) {
                    LobbyError::Unavailable
                } else {
                    LobbyError::SaveFailed
                });
            }
        };
        Ok(Created::Game(Box::new(Game {
            game_id,
            product_id: product.product_id.clone(),
            creator_id: player.user_id.clone(),
            creator_name: player.username.clone(),
            num_players: product.num_players,
            seats_taken: 1,
            settings,
            token,
            state: GameState::Created,
            updated_at,
            lobby_at: None,
            join_code,
            players: vec![player.user_id.clone()],
            server_key: at.server_key,
            instance_id: Some(at.instance_id.clone()),
            server_url: Some(at.url.clone()),
            socket_url: Some(at.socket_url.clone()),
        })))
    }

    /// The quick match's insert: unless the player meanwhile got a seat in a waiting game of
    /// the product (then that seat, and nothing is inserted). With `handover`, the same
    /// transaction reserves the game's free seats for the oldest requests waiting at the gate
    /// (each under its player's quick-match lock, taken without waiting, and unless that player
    /// got a waiting seat meanwhile), and hands them over once committed.
    async fn insert_unless_waiting(
        &self,
        product: &Product,
        player: &Player,
        new: &NewGame<'_>,
        handover: Option<(&Creating, &Placement)>,
    ) -> sqlx::Result<
        Option<Result<(chrono::DateTime<chrono::Utc>, Option<String>), (Uuid, SeatStatus)>>,
    > {
        let pid = &product.product_id;
        let saved = self
            .warm
            .transaction(async |tx| {
                games::lock_quick_matcher(&mut *tx, pid, &player.user_id).await?;
                if let Some(seat) = games::waiting_seat(&mut *tx, pid, &player.user_id).await? {
                    return Ok(Err(seat));
                }
                let updated_at = games::insert(&mut *tx, new).await?;
                let mut handed = Vec::new();
                if let (Some(_), Some((creating, _))) = (updated_at, handover) {
                    for waiter in creating.take_waiters() {
                        let (uid, name) = (&waiter.player.user_id, &waiter.player.username);
                        // A waiter left out (its lock held, or seated meanwhile) is woken to
                        // look again.
                        if games::try_lock_quick_matcher(&mut *tx, pid, uid).await?
                            && games::reserve_handed_seat(&mut *tx, new.game_id, pid, uid, name)
                                .await?
                        {
                            handed.push(waiter);
                        }
                    }
                }
                Ok(Ok((updated_at, handed)))
            })
            .await?;
        let (updated_at, handed) = match saved {
            Ok(saved) => saved,
            Err(seat) => return Ok(Some(Err(seat))),
        };
        if let Some((creating, at)) = handover {
            let expiry = self.config.expiry.secs(GameState::Created);
            for waiter in handed {
                let player_id = waiter.player.user_id.clone();
                if waiter.hand(new.game_id, at).is_ok() {
                    creating.handed_one();
                } else {
                    // It stopped waiting: nobody will confirm the seat. If this fails, the
                    // reaper frees the reservation once it is overdue.
                    let freed =
                        games::release_reservation(&self.db, new.game_id, &player_id, expiry);
                    if let Err(e) = freed.await {
                        tracing::warn!(error = %e, "a seat handed to a gone waiter not freed");
                    }
                }
            }
        }
        Ok(updated_at.map(|t| Ok((t, None))))
    }

    /// Drops a create's intent, owing the game server a `remove_game` when it may hold the
    /// game. If the database cannot be reached, the intent stays and the reaper owes the
    /// removal once it is overdue.
    async fn abandon_create(
        &self,
        product: &Product,
        game_id: Uuid,
        at: &Placement,
        owe_removal: bool,
    ) {
        let result = async {
            let mut tx = self.db.begin().await?;
            if intents::cancel(&mut *tx, game_id).await? && owe_removal {
                outbox::owe_remove_game(&mut *tx, &product.product_id, game_id, at.server_key)
                    .await?;
            }
            tx.commit().await
        };
        if let Err(e) = result.await {
            tracing::error!(error = %e, game_id = %game_id.simple(), "could not drop a failed create's intent; the reaper will");
        }
    }
}
