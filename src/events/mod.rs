//! Game-server events (docs/api.md, `POST /game_servers/{product_id}/events`; docs/lifecycle.md): one parser and one code path to apply them,
//! shared by the Redis stream intake and the HTTP event route.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    domain::{Expiry, GameState},
    store::games as store,
};

/// An event as it arrives: a flat map of string fields.
pub type RawEvent = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    StateChange {
        product_id: String,
        game_id: Uuid,
        new_state: GameState,
    },
    PlayerDisconnect {
        product_id: String,
        game_id: Uuid,
        player_id: String,
    },
    GameRemoved {
        product_id: String,
        game_id: Uuid,
    },
    /// `gameplay`, `game_over` and any other type: no effect on the lobby.
    Other(String),
}

/// What applying one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The event changed the game.
    Applied,
    /// A type the lobby does not act on (`gameplay`, `game_over`, ...).
    Ignored,
    /// No such game for this product.
    UnknownGame,
    /// The game exists but the event does not fit its state (not the next state, the creator
    /// "disconnecting", a player who holds no seat).
    InvalidTransition,
    /// A field is missing or not of the right form.
    Malformed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Ignored => "ignored",
            Self::UnknownGame => "unknown_game",
            Self::InvalidTransition => "invalid_transition",
            Self::Malformed => "malformed",
        }
    }
}

impl Event {
    /// Reads an event; the error says which field is wrong.
    pub fn parse(raw: &RawEvent) -> Result<Event, String> {
        let field = |name: &str| {
            raw.get(name)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("missing field `{name}`"))
                .and_then(|v| {
                    // Postgres text cannot hold NUL; ids this long are nobody's.
                    if v.contains('\0') || v.len() > 256 {
                        Err(format!("field `{name}` is not a plausible value"))
                    } else {
                        Ok(v)
                    }
                })
        };
        let game_id = || {
            let text = field("game_id")?;
            Uuid::try_parse(text).map_err(|_| format!("`game_id` {text:?} is not a game id"))
        };
        let kind = field("type")?;
        Ok(match kind {
            "state_change" => {
                let text = field("new_state")?;
                Event::StateChange {
                    product_id: field("product_id")?.to_string(),
                    game_id: game_id()?,
                    new_state: GameState::parse(text)
                        .ok_or_else(|| format!("`new_state` {text:?} is not a game state"))?,
                }
            }
            "player_disconnect" => Event::PlayerDisconnect {
                product_id: field("product_id")?.to_string(),
                game_id: game_id()?,
                player_id: field("player_id")?.to_string(),
            },
            "game_removed" => Event::GameRemoved {
                product_id: field("product_id")?.to_string(),
                game_id: game_id()?,
            },
            other => Event::Other(other.to_string()),
        })
    }
}

/// Applies one event inside the caller's transaction.
pub async fn apply(
    conn: &mut PgConnection,
    event: &Event,
    expiry: &Expiry,
) -> sqlx::Result<Outcome> {
    let outcome = match event {
        Event::StateChange {
            product_id,
            game_id,
            new_state,
        } => {
            let Some((state, _)) = store::lock_for_event(conn, *game_id, product_id).await? else {
                return Ok(Outcome::UnknownGame);
            };
            if new_state.previous() != Some(state) {
                tracing::info!(%game_id, from = %state, to = %new_state, "state change out of order, ignored");
                return Ok(Outcome::InvalidTransition);
            }
            store::set_state(conn, *game_id, *new_state, expiry.secs(*new_state)).await?;
            Outcome::Applied
        }
        Event::PlayerDisconnect {
            product_id,
            game_id,
            player_id,
        } => {
            let Some((_, creator_id)) = store::lock_for_event(conn, *game_id, product_id).await?
            else {
                return Ok(Outcome::UnknownGame);
            };
            if *player_id == creator_id {
                tracing::info!(%game_id, "disconnect of the creator ignored (game_removed follows)");
                return Ok(Outcome::InvalidTransition);
            }
            if !store::remove_player(conn, *game_id, player_id).await? {
                tracing::info!(%game_id, player_id, "disconnect of a player without a seat ignored");
                return Ok(Outcome::InvalidTransition);
            }
            let state = GameState::CreatorJoined;
            store::set_state(conn, *game_id, state, expiry.secs(state)).await?;
            Outcome::Applied
        }
        Event::GameRemoved {
            product_id,
            game_id,
        } => {
            if store::delete(&mut *conn, *game_id, product_id).await? {
                Outcome::Applied
            } else {
                Outcome::UnknownGame
            }
        }
        Event::Other(_) => Outcome::Ignored,
    };
    Ok(outcome)
}

/// Applies events reported over HTTP.
pub struct EventSink {
    db: PgPool,
    expiry: Expiry,
}

impl EventSink {
    pub fn new(db: PgPool, expiry: Expiry) -> Self {
        Self { db, expiry }
    }

    /// Applies a request's events in one transaction; `Err(problem)` entries are malformed and
    /// change nothing.
    pub async fn apply_all(&self, events: &[Result<Event, String>]) -> sqlx::Result<Vec<Outcome>> {
        let mut tx = self.db.begin().await?;
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            outcomes.push(match event {
                Ok(event) => apply(&mut tx, event, &self.expiry).await?,
                Err(_) => Outcome::Malformed,
            });
        }
        tx.commit().await?;
        Ok(outcomes)
    }
}

/// Applies state changes of distinct games in one statement, with the outcome each would have
/// had from [`apply`] one at a time (no game appears twice, so their order does not matter).
/// The stream intake uses it for runs of `state_change` entries: one round trip for up to a
/// batch of them instead of two per entry.
pub async fn apply_state_changes(
    conn: &mut PgConnection,
    changes: &[(&str, Uuid, GameState)],
    expiry: &Expiry,
) -> sqlx::Result<Vec<Outcome>> {
    let products: Vec<String> = changes.iter().map(|c| c.0.to_string()).collect();
    let ids: Vec<Uuid> = changes.iter().map(|c| c.1).collect();
    let states: Vec<String> = changes.iter().map(|c| c.2.as_str().to_string()).collect();
    let from: Vec<Option<String>> = changes
        .iter()
        .map(|c| c.2.previous().map(|s| s.as_str().to_string()))
        .collect();
    let secs: Vec<f64> = changes.iter().map(|c| expiry.secs(c.2)).collect();
    let results = store::set_states(conn, &products, &ids, &states, &from, &secs).await?;
    Ok(changes
        .iter()
        .zip(results)
        .map(|((_, game_id, new_state), r)| match r.before {
            None => Outcome::UnknownGame,
            Some(_) if r.applied => Outcome::Applied,
            Some(state) => {
                tracing::info!(%game_id, from = %state, to = %new_state, "state change out of order, ignored");
                Outcome::InvalidTransition
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawEvent {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_the_three_types_and_names_bad_fields() {
        let id = Uuid::new_v4().simple().to_string();
        let e = Event::parse(&raw(&[
            ("type", "state_change"),
            ("product_id", "exrps"),
            ("game_id", &id),
            ("new_state", "creator_joined"),
        ]))
        .unwrap();
        assert!(matches!(
            e,
            Event::StateChange {
                new_state: GameState::CreatorJoined,
                ..
            }
        ));
        assert!(
            Event::parse(&raw(&[("type", "game_removed"), ("product_id", "x")]))
                .unwrap_err()
                .contains("game_id")
        );
        assert!(
            Event::parse(&raw(&[
                ("type", "state_change"),
                ("product_id", "x"),
                ("game_id", &id),
                ("new_state", "flying"),
            ]))
            .unwrap_err()
            .contains("new_state")
        );
        assert_eq!(
            Event::parse(&raw(&[("type", "game_over")])).unwrap(),
            Event::Other("game_over".into())
        );
        assert!(Event::parse(&raw(&[])).unwrap_err().contains("type"));
    }
}
