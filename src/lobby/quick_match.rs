//! Quick match: a seat in the oldest game of the product that waits for players (`created` or
//! `creator_joined`) with a free seat nobody is locking right now, or a new game. The seat is
//! taken with join's steps 2 and 3, the game made with create's flow.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
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
    domain::{Game, GameState, LobbyError, Player, Product, fleet::Placement},
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

/// A seat reserved for a quick match, not yet confirmed by the game server.
pub(super) struct Seat {
    game_id: Uuid,
    state: GameState,
    at: Placement,
    /// The reservation's transaction, when its game was listed (see `Lobby::fence_after_join`).
    lobby_tx: Option<i64>,
}

/// What the reservation step of a quick match found.
enum Pick {
    /// A seat is reserved: ask the game server.
    Reserved(Seat),
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
            let seat = match self.pick(product, player, &refused, region).await? {
                Pick::Seated(game_id) => return self.seated(product, game_id).await,
                Pick::InFlight => return Err(LobbyError::QuickMatchInProgress),
                Pick::Again | Pick::Nothing if out_of_patience => {
                    return self.create_for_match(product, player, region, None).await;
                }
                Pick::Again => continue,
                Pick::Nothing => match self.creations.turn(product, player) {
                    Turn::Create(creating) => {
                        return self
                            .create_for_match(product, player, region, Some(&creating))
                            .await;
                    }
                    // Woken when a creation ends: with a seat it reserved for this request, or
                    // to look again (also when it failed, or gave its seats to older waiters).
                    Turn::Wait(woken) => match tokio::time::timeout_at(deadline, woken).await {
                        Ok(Ok(seat)) => seat,
                        _ => continue,
                    },
                },
                Pick::Reserved(seat) => seat,
            };
            let expiry = self.config.expiry.secs(seat.state);
            let confirmed = self
                .confirm_seat(product, player, seat.game_id, &seat.at, expiry)
                .await;
            self.fence_after_join(&confirmed, seat.lobby_tx).await;
            match confirmed? {
                Confirmed::Held(game) => return Ok((*game, QuickMatchOutcome::Joined)),
                // The game vanished while the game server was asked: look again.
                Confirmed::Gone => {}
                Confirmed::Refused => {
                    refused.push(seat.game_id);
                    if refused.len() >= REFUSALS {
                        return self.create_for_match(product, player, region, None).await;
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
        let found = self
            .warm
            .transaction(async |tx| {
                games::lock_quick_matcher(&mut *tx, pid, uid).await?;
                games::pick_quick_match(tx, pid, uid, name, except, region, created, joined).await
            })
            .await?;
        if let Some(game_id) = found.mine {
            return Ok(match found.mine_status {
                Some(SeatStatus::Held) => Pick::Seated(game_id),
                _ => Pick::InFlight,
            });
        }
        Ok(match (found.target, found.state, found.busy) {
            (Some(game_id), Some(state), _) if found.reserved => Pick::Reserved(Seat {
                game_id,
                state,
                lobby_tx: found.lobby_tx,
                at: Placement::resolve(
                    product,
                    found.server_key,
                    found.instance_id,
                    found.server_url,
                    found.socket_url,
                ),
            }),
            (Some(_), ..) => Pick::Again,
            (None, _, Some(busy)) => {
                // Every free seat is held by another request until its commit: wait for the
                // oldest to be let go, holding nothing, then look again.
                games::wait_for_game(&self.db, busy).await?;
                Pick::Again
            }
            (None, ..) => Pick::Nothing,
        })
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

    /// A new game for a quick match; `creating` (this request's turn at the gate) lets the
    /// game's insert hand its free seats to the requests waiting for it.
    async fn create_for_match(
        &self,
        product: &Product,
        player: &Player,
        region: Option<&str>,
        creating: Option<&Creating>,
    ) -> LobbyResult<(Game, QuickMatchOutcome)> {
        match self
            .create(product, player, Kind::QuickMatch(creating), region)
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
/// seat the requests already waiting for them; otherwise it waits for a creation to end. A
/// creation hands its game's free seats to the oldest waiters in the transaction that inserts
/// the game (`Creating::take_waiters`), so a request that arrives meanwhile cannot take the
/// seat a waiter waited for; the seats it could not hand over wake as many other waiters to
/// look again. Per process: several processes may each create one game too many, which is the
/// "give or take the requests that raced" of a crowd.
#[derive(Default)]
pub(super) struct Gates(Mutex<HashMap<String, Arc<Mutex<Gate>>>>);

#[derive(Default)]
struct Gate {
    /// Free seats the creations in flight will bring and have not yet given out.
    coming: usize,
    /// The requests waiting for the games being created, oldest first.
    waiting: VecDeque<Waiter>,
}

/// A quick match waiting at the gate.
pub(super) struct Waiter {
    pub player: Player,
    wake: oneshot::Sender<Seat>,
}

impl Waiter {
    /// Hands the waiter the seat reserved for it; gives the seat back (`Err`) if the waiter
    /// stopped waiting.
    pub fn hand(self, game_id: Uuid, at: &Placement) -> Result<(), ()> {
        // A game being created was never listed: nothing to fence.
        let seat = Seat {
            game_id,
            state: GameState::Created,
            at: at.clone(),
            lobby_tx: None,
        };
        self.wake.send(seat).map_err(drop)
    }
}

enum Turn {
    /// Create a game; drop the guard when done (well or not).
    Create(Creating),
    /// Wait on this receiver for a creation to end; a dropped sender means "look again".
    Wait(oneshot::Receiver<Seat>),
}

/// A creation in progress; dropping it (also when the request is cancelled) ends it and wakes
/// as many waiters as its game has free seats it did not hand over.
pub(super) struct Creating {
    gate: Arc<Mutex<Gate>>,
    seats: usize,
    /// Whether its seats were taken off `Gate::coming` (by `take_waiters`).
    taken: AtomicBool,
    handed: AtomicUsize,
}

impl Gates {
    fn turn(&self, product: &Product, player: &Player) -> Turn {
        let gate = {
            let mut gates = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            gates.entry(product.product_id.clone()).or_default().clone()
        };
        let seats = product.num_players.max(2) as usize - 1;
        let mut g = gate.lock().unwrap_or_else(PoisonError::into_inner);
        // Waiters that gave up (out of patience, or cancelled) wait for nothing.
        g.waiting.retain(|w| !w.wake.is_closed());
        if g.waiting.len() < g.coming {
            let (wake, woken) = oneshot::channel();
            g.waiting.push_back(Waiter {
                player: player.clone(),
                wake,
            });
            Turn::Wait(woken)
        } else {
            g.coming += seats;
            drop(g);
            Turn::Create(Creating {
                gate,
                seats,
                taken: AtomicBool::new(false),
                handed: AtomicUsize::new(0),
            })
        }
    }
}

impl Creating {
    /// The oldest waiters, as many as the new game has free seats, for the game's insert to
    /// reserve seats for. A waiter dropped without [`Waiter::hand`] looks again.
    pub fn take_waiters(&self) -> Vec<Waiter> {
        let mut g = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
        // From now on its seats are given out: a request arriving next must not wait for them.
        if !self.taken.swap(true, Ordering::Relaxed) {
            g.coming = g.coming.saturating_sub(self.seats);
        }
        g.waiting.retain(|w| !w.wake.is_closed());
        let n = self.seats.min(g.waiting.len());
        g.waiting.drain(..n).collect()
    }

    /// One of the game's seats went to a waiter (and it took it).
    pub fn handed_one(&self) {
        self.handed.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for Creating {
    fn drop(&mut self) {
        let mut g = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.taken.load(Ordering::Relaxed) {
            g.coming = g.coming.saturating_sub(self.seats);
        }
        let free = self
            .seats
            .saturating_sub(self.handed.load(Ordering::Relaxed));
        // Dropping a waiter's sender wakes it to look again.
        let mut woken = 0;
        while woken < free {
            let Some(waiter) = g.waiting.pop_front() else {
                break;
            };
            if !waiter.wake.is_closed() {
                woken += 1;
            }
        }
    }
}
