//! Games as stored and as shown to clients (SPEC §2, §3).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// Lifecycle of a game (SPEC §3). Declared in order: a game only moves to the next one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type, ToSchema,
)]
#[sqlx(type_name = "game_state", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum GameState {
    Created,
    CreatorJoined,
    AllPlayersJoined,
    InProgress,
    Ended,
}

impl GameState {
    pub const ALL: [GameState; 5] = [
        Self::Created,
        Self::CreatorJoined,
        Self::AllPlayersJoined,
        Self::InProgress,
        Self::Ended,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::CreatorJoined => "creator_joined",
            Self::AllPlayersJoined => "all_players_joined",
            Self::InProgress => "in_progress",
            Self::Ended => "ended",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// The state after this one, if any.
    pub fn next(self) -> Option<Self> {
        Self::ALL.into_iter().find(|s| *s > self)
    }
}

impl std::fmt::Display for GameState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A game with its held seats, as read from the database.
#[derive(Debug, Clone)]
pub struct Game {
    pub game_id: Uuid,
    pub product_id: String,
    pub creator_id: String,
    pub creator_name: String,
    pub num_players: i32,
    pub seats_taken: i32,
    pub settings: Value,
    pub token: String,
    pub state: GameState,
    pub updated_at: DateTime<Utc>,
    pub lobby_at: Option<DateTime<Utc>>,
    /// A private game's join code.
    pub join_code: Option<String>,
    /// Players whose seat the game server confirmed: creator first, then joiners in join order.
    pub players: Vec<String>,
}

/// Game ids travel as 32 lowercase hex digits (a v4 UUID without dashes).
pub fn game_id_text(id: Uuid) -> String {
    id.simple().to_string()
}

/// `_last_updated`'s format, kept from the old service: `23-Nov-2026 (18:52:07.123456)`.
pub fn legacy_time(t: DateTime<Utc>) -> String {
    t.format("%d-%b-%Y (%H:%M:%S%.6f)").to_string()
}

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

/// A time exactly as chrono's own `Serialize` writes it (RFC 3339, `Z`, as many fraction digits
/// as needed), but formatted once into a string: chrono's impl feeds serde_json one character at
/// a time through its escaping writer, a tenth of an open-games page's CPU time (callgrind).
fn rfc3339<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        None => s.serialize_none(),
    }
}

impl Game {
    pub fn full(self, game_server_url: &str, target: Option<&str>) -> FullGame {
        FullGame {
            game_id: game_id_text(self.game_id),
            product_id: self.product_id,
            game_server_url: game_server_url.to_string(),
            creator_id: self.creator_id,
            creator_name: self.creator_name,
            players: self.players,
            settings: self.settings,
            token: self.token,
            state: self.state,
            last_updated: legacy_time(self.updated_at),
            target_game_server: target.map(str::to_string),
            join_code: self.join_code,
        }
    }

    pub fn partial(self, game_server_url: &str) -> PartialGame {
        PartialGame {
            game_id: game_id_text(self.game_id),
            product_id: self.product_id,
            game_server_url: game_server_url.to_string(),
            creator_id: self.creator_id,
            creator_name: self.creator_name,
            players: self.players,
            settings: self.settings,
            free_seats: (self.num_players - self.seats_taken).max(0),
            listed_at: self.lobby_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn legacy_time_format() {
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 18, 52, 7).unwrap()
            + chrono::Duration::microseconds(123_456);
        assert_eq!(legacy_time(t), "23-Nov-2026 (18:52:07.123456)");
    }

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

    #[test]
    fn states_move_forward_one_at_a_time() {
        assert_eq!(GameState::Created.next(), Some(GameState::CreatorJoined));
        assert_eq!(GameState::InProgress.next(), Some(GameState::Ended));
        assert_eq!(GameState::Ended.next(), None);
        assert_eq!(
            GameState::parse("all_players_joined"),
            Some(GameState::AllPlayersJoined)
        );
    }
}
