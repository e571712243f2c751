//! The shapes of the answers (docs/api.md; the OpenAPI document holds the schemas), built from the lobby's values, and the
//! OpenAPI schemas of the lobby's enums.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        RefOr,
        schema::{ObjectBuilder, Schema, Type},
    },
};

use crate::{
    domain::{Game, GameState, Product, game_id_text, legacy_time},
    events::Outcome,
    lobby::{LeaveOutcome, QuickMatchOutcome},
};

/// The full game (create and join answers).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "game_id": "3f0c9d5e2b7a4c1d9e8f7a6b5c4d3e2f",
    "product_id": "exrps",
    "game_server_url": "http://game-rps:8080",
    "creator_id": "8b1f5a52-6c1e-4a7e-9a53-0e6f1c2d3b4a",
    "creator_name": "alice",
    "players": ["8b1f5a52-6c1e-4a7e-9a53-0e6f1c2d3b4a"],
    "settings": {"num_players": 2},
    "token": "9c2e4f6a8b0d",
    "state": "created",
    "_last_updated": "23-Nov-2026 (18:52:07.123456)",
    "target_game_server": "rps.varcade.local:8085"
}))]
pub struct FullGame {
    pub game_id: String,
    pub product_id: String,
    /// The product's game-server URL.
    pub game_server_url: String,
    pub creator_id: String,
    pub creator_name: String,
    /// User ids: creator first, then joiners in join order.
    pub players: Vec<String>,
    /// The product's settings, e.g. `{"num_players": 2}`.
    #[schema(value_type = Object)]
    pub settings: Value,
    /// Game token from the game server; players present it on the game socket.
    pub token: String,
    pub state: GameState,
    /// UTC, `DD-Mon-YYYY (HH:MM:SS.ffffff)`.
    #[serde(rename = "_last_updated")]
    pub last_updated: String,
    /// Where players connect (the product's socket URL); on create and join answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_game_server: Option<String>,
    /// Only for a private game: the code others join it with (an addition to the old shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "K7QM3X")]
    pub join_code: Option<String>,
}

/// The partial game (open-games entries): no `token`, `state` or `_last_updated`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "game_id": "3f0c9d5e2b7a4c1d9e8f7a6b5c4d3e2f",
    "product_id": "exrps",
    "game_server_url": "http://game-rps:8080",
    "creator_id": "8b1f5a52-6c1e-4a7e-9a53-0e6f1c2d3b4a",
    "creator_name": "alice",
    "players": ["8b1f5a52-6c1e-4a7e-9a53-0e6f1c2d3b4a"],
    "settings": {"num_players": 2},
    "free_seats": 1,
    "listed_at": "2026-11-23T18:52:07.123456Z"
}))]
pub struct PartialGame {
    pub game_id: String,
    pub product_id: String,
    pub game_server_url: String,
    pub creator_id: String,
    pub creator_name: String,
    pub players: Vec<String>,
    #[schema(value_type = Object)]
    pub settings: Value,
    /// Seats still free (an addition to the old shape).
    pub free_seats: i32,
    /// When the game entered the lobby, ISO 8601 (an addition to the old shape).
    #[serde(serialize_with = "rfc3339")]
    pub listed_at: Option<DateTime<Utc>>,
}

/// A game as one caller may see it: the full game for its players, the partial game for
/// anyone else.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum GameView {
    Full(FullGame),
    Partial(PartialGame),
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

/// The answer to a leave.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"game_id": "3f0c9d5e2b7a4c1d9e8f7a6b5c4d3e2f", "outcome": "seat_released"}))]
pub struct Left {
    pub game_id: String,
    pub outcome: LeaveOutcome,
}

/// A time exactly as chrono's own `Serialize` writes it (RFC 3339, `Z`, as many fraction digits
/// as needed), but formatted once into a string: chrono's impl feeds serde_json one character at
/// a time through its escaping writer, a tenth of an open-games page's CPU time (callgrind).
fn rfc3339<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        None => s.serialize_none(),
    }
}

impl FullGame {
    pub fn of(game: Game, product: &Product) -> Self {
        let at = game.placement(product);
        FullGame {
            game_id: game_id_text(game.game_id),
            product_id: game.product_id,
            game_server_url: at.url,
            creator_id: game.creator_id,
            creator_name: game.creator_name,
            players: game.players,
            settings: game.settings,
            token: game.token,
            state: game.state,
            last_updated: legacy_time(game.updated_at),
            target_game_server: Some(at.socket_url),
            join_code: game.join_code,
        }
    }
}

impl PartialGame {
    pub fn of(game: Game, product: &Product) -> Self {
        PartialGame {
            game_id: game_id_text(game.game_id),
            free_seats: game.free_seats(),
            game_server_url: game.placement(product).url,
            product_id: game.product_id,
            creator_id: game.creator_id,
            creator_name: game.creator_name,
            players: game.players,
            settings: game.settings,
            listed_at: game.lobby_at,
        }
    }

    /// The live lobby's rendering of a listed game (the same JSON as an open-games entry).
    pub fn json(game: &Game, product: &Product) -> serde_json::Result<String> {
        serde_json::to_string(&Self::of(game.clone(), product))
    }
}

impl QuickMatch {
    pub fn of(game: Game, outcome: QuickMatchOutcome, product: &Product) -> Self {
        Self {
            game: FullGame::of(game, product),
            outcome,
        }
    }
}

impl Left {
    pub fn of(game_id: String, outcome: LeaveOutcome) -> Self {
        Self { game_id, outcome }
    }
}

/// The schema of a string enum, for enums of the lobby (which know nothing of OpenAPI).
fn string_enum(description: &str, values: &[&str]) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(values.to_vec()))
        .into()
}

impl PartialSchema for GameState {
    fn schema() -> RefOr<Schema> {
        let names: Vec<&str> = GameState::ALL.iter().map(|s| s.as_str()).collect();
        string_enum("Lifecycle of a game (docs/lifecycle.md).", &names)
    }
}
impl ToSchema for GameState {}

impl PartialSchema for Outcome {
    fn schema() -> RefOr<Schema> {
        string_enum(
            "What applying one event did.",
            &[
                "applied",
                "ignored",
                "unknown_game",
                "invalid_transition",
                "malformed",
            ],
        )
    }
}
impl ToSchema for Outcome {}

impl PartialSchema for QuickMatchOutcome {
    fn schema() -> RefOr<Schema> {
        string_enum(
            "What a quick match did: a seat in a waiting game, a new game, or the game the caller \
             already waits in.",
            &["joined", "created", "already_seated"],
        )
    }
}
impl ToSchema for QuickMatchOutcome {}

impl PartialSchema for LeaveOutcome {
    fn schema() -> RefOr<Schema> {
        string_enum(
            "What a leave did: a joiner's seat freed, the creator's game removed, or nothing.",
            &["seat_released", "game_removed", "not_seated"],
        )
    }
}
impl ToSchema for LeaveOutcome {}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn listed_at_is_written_as_chrono_writes_it() {
        let base = Utc.with_ymd_and_hms(2026, 11, 23, 18, 52, 7).unwrap();
        for nanos in [0, 120_000_000, 123_456_000, 123_456_789] {
            let t = base + chrono::Duration::nanoseconds(nanos);
            for listed_at in [Some(t), None] {
                let game = PartialGame {
                    game_id: String::new(),
                    product_id: String::new(),
                    game_server_url: String::new(),
                    creator_id: String::new(),
                    creator_name: String::new(),
                    players: Vec::new(),
                    settings: Value::Null,
                    free_seats: 1,
                    listed_at,
                };
                let json = serde_json::to_value(&game).unwrap();
                assert_eq!(json["listed_at"], serde_json::to_value(listed_at).unwrap());
            }
        }
    }
}
