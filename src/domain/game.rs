//! Games and their lifecycle (docs/lifecycle.md).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{LobbyError, Product, fleet::Placement};

/// Lifecycle of a game. Declared in order: a game only moves to the next one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
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

    /// The state a game must be in to move to this one (states move forward one at a time,
    /// `docs/api.md`), if any.
    pub fn previous(self) -> Option<Self> {
        Self::ALL.into_iter().rev().find(|s| *s < self)
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
    /// The instance incarnation the game is placed on (`None`: older than fleets).
    pub server_key: Option<Uuid>,
    pub instance_id: Option<String>,
    pub server_url: Option<String>,
    pub socket_url: Option<String>,
}

impl Game {
    /// Where the game's calls go and its players connect (see [`Placement::resolve`]).
    pub fn placement(&self, product: &Product) -> Placement {
        Placement::resolve(
            product,
            self.server_key,
            self.instance_id.clone(),
            self.server_url.clone(),
            self.socket_url.clone(),
        )
    }

    /// Whether the game is in the open-games list: its creator is connected, a seat is free and
    /// it is not private. The SQL side of the same rule is the `games_open_idx` index and the
    /// lobby trigger (migrations); `store::games::open_page` selects by it.
    pub fn is_listed(&self) -> bool {
        self.state == GameState::CreatorJoined
            && self.seats_taken < self.num_players
            && self.join_code.is_none()
    }

    pub fn free_seats(&self) -> i32 {
        (self.num_players - self.seats_taken).max(0)
    }

    pub fn seats(&self, player_id: &str) -> bool {
        self.players.iter().any(|p| p == player_id)
    }
}

/// Game ids travel as 32 lowercase hex digits (a v4 UUID without dashes).
pub fn game_id_text(id: Uuid) -> String {
    id.simple().to_string()
}

/// `_last_updated`'s format, kept from the old service: `23-Nov-2026 (18:52:07.123456)`.
pub fn legacy_time(t: DateTime<Utc>) -> String {
    t.format("%d-%b-%Y (%H:%M:%S%.6f)").to_string()
}

/// A game id as a client wrote it. Other characters than hex digits and dashes, or absurd
/// lengths, are a bad request; a well-formed text that cannot be a game id names no game
/// (`id` is `None`) and keeps its text for the not-found message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameRef {
    pub text: String,
    pub id: Option<Uuid>,
}

impl GameRef {
    pub fn parse(raw: &str) -> Result<Self, LobbyError> {
        if raw.len() > 64 || !raw.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Err(LobbyError::InvalidGameId);
        }
        Ok(Self {
            text: raw.to_string(),
            id: Uuid::try_parse(raw).ok(),
        })
    }
}

impl From<Uuid> for GameRef {
    fn from(id: Uuid) -> Self {
        Self {
            text: game_id_text(id),
            id: Some(id),
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
    fn states_move_forward_one_at_a_time() {
        assert_eq!(
            GameState::CreatorJoined.previous(),
            Some(GameState::Created)
        );
        assert_eq!(GameState::Ended.previous(), Some(GameState::InProgress));
        assert_eq!(GameState::Created.previous(), None);
        assert_eq!(
            GameState::parse("all_players_joined"),
            Some(GameState::AllPlayersJoined)
        );
    }

    #[test]
    fn game_refs() {
        let id = Uuid::new_v4();
        assert_eq!(GameRef::parse(&game_id_text(id)).unwrap().id, Some(id));
        assert_eq!(GameRef::parse("abc").unwrap().id, None);
        assert_eq!(GameRef::parse("abc").unwrap().text, "abc");
        assert!(GameRef::parse("not-a-game!").is_err());
        assert!(GameRef::parse(&"a".repeat(65)).is_err());
    }
}
