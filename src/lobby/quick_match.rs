//! Quick match: a seat in the oldest game of the product that waits for players (`created` or
//! `creator_joined`) with a free seat nobody is locking right now, or a new game. The seat is
//! taken with join's steps 2 and 3, the game made with create's flow.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use tokio::sync::oneshot;
use uuid::Uuid;

use super::{
    Lobby, LobbyResult,
    create::{Created, Kind},
    join::Confirmed,
};
use crate::{
    domain::{Game, GameState, LobbyError, Player, Product},
    store::games::{self as games, SeatStatus},
};

/// What a quick match did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuickMatchOutcome {
    /// A seat in a game that was waiting for players.
    Joined,
    /// No game had a free seat: a new one, with the caller as its creator.
    Created,
    /// The caller already waits in a game of this product: that game.
    AlreadySeated,
}

/// Game-server refusals a quick match takes (trying the next game each time) before it
/// creates a game instead.
const REFUSALS: usize = 3;
/// Longest a quick match looks for a seat (games held by others for a moment, games being
/// created by others) before it creates a game itself; at least twice the game-server timeout.
const PATIENCE: Duration = Duration::from_secs(5);

/// What the reservation step of a quick match found.
enum Pick {
    /// A seat is reserved in this game (in this state): ask the game server.
    Reserved(Uuid, GameState),
    /// The player already holds a seat in a waiting game of this product.
    Seated(Uuid),
    /// The player's own join or quick match is still being confirmed.
    InFlight,
    /// Look again at once: the seat chosen was taken by a commit between the statement's
    /// snapshot and its lock, or the game every free seat was in has just been let go.
    Again,
    /// No game has a free seat.
    Nothing,
}

impl Lobby {
    /// A seat in a waiting game, or a new game (on an instance of `region`, if given).
    pub async fn quick_match(
        &self,
        product: &Product,
        player: &Player,
        region: Option<&str>,
    ) -> LobbyResult<(Game, QuickMatchOutcome)> {
        let mut refused = Vec::new();
        let patience = PATIENCE.max(self.config.game_server_timeout * 2);
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let out_of_patience = tokio::time::Instant::now() >= deadline;
            match self.pick(product, player, &refused, region).await? {
                Pick::Seated(game_id) => return self.seated(product, game_id).await,
                Pick::InFlight => return Err(LobbyError::QuickMatchInProgress),
                Pick::Again | Pick::Nothing if out_of_patience => {
                    return self.create_for_match(product, player, region).await;
                }
                Pick::Again => {}
                Pick::Nothing => match self.creations.turn(product) {
                    Turn::Create(creating) => {
                        let created = self.create_for_match(product, player, region).await;
                        drop(creating);
                        return created;
                    }
                    // Woken when a creation ends, for a seat it made (or when it failed).
                    Turn::Wait(done) => {
                        let _ = tokio::time::timeout_at(deadline, done).await;
                    }
                },
                Pick::Reserved(game_id, game_state) => {
                    let expiry = self.config.expiry.secs(game_state);
                    let at = self.placement_of(product, game_id).await?;
                    let confirmed = self
                        .confirm_seat(product, player, game_id, &at, expiry)
                        .await;
                    self.fence().await;
                    match confirmed? {
                        Confirmed::Held(game) => return Ok((*game, QuickMatchOutcome::Joined)),
                        // The game vanished while the game server was asked: look again.
                        Confirmed::Gone => {}
                        Confirmed::Refused => {
                            refused.push(game_id);
                            if refused.len() >= REFUSALS {
                                return self.create_for_match(product, player, region).await;
                            }
                        }
                    }
                }
            }
        }
    }

    /// One short transaction under the player's quick-match lock: the player's own waiting
    /// seat, else a seat in the oldest waiting game, in one statement. When every free seat is
    /// held by another request, it waits for the oldest game to be let go (a commit away)
    /// rather than sleeping. Games whose game server refused this request are not tried again.
    async fn pick(
        &self,
        product: &Product,
        player: &Player,
        except: &[Uuid],
        region: Option<&str>,
    ) -> LobbyResult<Pick> {
        let (created, joined) = (
            self.config.expiry.secs(GameState::Created),
            self.config.expiry.secs(GameState::CreatorJoined),
        );
        let (pid, uid, name) = (&product.product_id, &player.user_id, &player.username);
        let mut tx = self.db.begin().await?;
        games::lock_quick_matcher(&mut tx, pid, uid).await?;
        let found =
            games::pick_quick_match(&mut tx, pid, uid, name, except, region, created, joined)
                .await?;
        if let Some(game_id) = found.mine {
            tx.rollback().await?;
            return Ok(match found.mine_status {
                Some(SeatStatus::Held) => Pick::Seated(game_id),
                _ => Pick::InFlight,
            });
        }
        let pick = match (found.target, found.state, found.busy) {
            (Some(game_id), Some(state), _) if found.reserved => Pick::Reserved(game_id, state),
            (Some(_), ..) => Pick::Again,
            (None, _, Some(busy)) => {
                // Every free seat is held by another request until its commit: wait for the
                // oldest to be let go, holding nothing, then look again.
                tx.rollback().await?;
                games::wait_for_game(&self.db, busy).await?;
                return Ok(Pick::Again);
            }
            (None, ..) => Pick::Nothing,
        };
        if matches!(pick, Pick::Reserved(..)) {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(pick)
    }

    async fn seated(
        &self,
        product: &Product,
        game_id: Uuid,
    ) -> LobbyResult<(Game, QuickMatchOutcome)> {
        let game = games::fetch(&self.db, game_id, &product.product_id)
            .await?
            .ok_or(LobbyError::NoLongerAvailable)?;
        Ok((game, QuickMatchOutcome::AlreadySeated))
    }

    async fn create_for_match(
        &self,
        product: &Product,
        player: &Player,
        region: Option<&str>,
    ) -> LobbyResult<(Game, QuickMatchOutcome)> {
        match self
            .create(product, player, Kind::QuickMatch, region)
            .await?
        {
            Created::Game(game) => Ok((*game, QuickMatchOutcome::Created)),
            Created::AlreadyWaiting(existing, SeatStatus::Held) => {
                self.seated(product, existing).await
            }
            Created::AlreadyWaiting(_, SeatStatus::Reserved) => {
                Err(LobbyError::QuickMatchInProgress)
            }
        }
    }
}

/// Keeps a burst of quick matches from creating a game each: a request that finds no free seat
/// creates a game only if the games this process is already creating for the product will not
/// seat the requests already waiting for them; otherwise it waits for a creation to end and
/// looks again. Each creation that ends wakes only as many waiters as it made free seats (the
/// oldest first), not every waiter. Per process: several processes may each create one game
/// too many, which is the "give or take the requests that raced" of a crowd.
#[derive(Default)]
pub(super) struct Gates(Mutex<HashMap<String, Arc<Mutex<Gate>>>>);

#[derive(Default)]
struct Gate {
    creating: usize,
    /// The requests waiting for the games being created, oldest first.
    waiting: VecDeque<oneshot::Sender<()>>,
}

enum Turn {
    /// Create a game; drop the guard when done (well or not).
    Create(Creating),
    /// Wait on this receiver for a creation to end, then look again.
    Wait(oneshot::Receiver<()>),
}

/// A creation in progress; dropping it (also when the request is cancelled) ends it and wakes
/// the waiters its game can seat.
struct Creating {
    gate: Arc<Mutex<Gate>>,
    seats: usize,
}

impl Gates {
    fn turn(&self, product: &Product) -> Turn {
        let gate = {
            let mut gates = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            gates.entry(product.product_id.clone()).or_default().clone()
        };
        let seats = product.num_players.max(2) as usize - 1;
        let mut g = gate.lock().unwrap_or_else(PoisonError::into_inner);
        // Waiters that gave up (out of patience, or cancelled) wait for nothing.
        g.waiting.retain(|w| !w.is_closed());
        if g.waiting.len() < g.creating * seats {
            let (tx, rx) = oneshot::channel();
            g.waiting.push_back(tx);
            Turn::Wait(rx)
        } else {
            g.creating += 1;
            drop(g);
            Turn::Create(Creating { gate, seats })
        }
    }
}

impl Drop for Creating {
    fn drop(&mut self) {
        let mut g = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
        g.creating = g.creating.saturating_sub(1);
        let mut woken = 0;
        while woken < self.seats {
            let Some(waiter) = g.waiting.pop_front() else {
                break;
            };
            if waiter.send(()).is_ok() {
                woken += 1;
            }
        }
    }
}
