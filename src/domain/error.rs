//! What can go wrong in the lobby, in the lobby's terms. `http::error` is the one table that
//! turns each case into a status and the message of docs/api.md.

use super::GameState;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LobbyError {
    // What the client sent.
    #[error("invalid game id")]
    InvalidGameId,
    #[error("invalid join code")]
    InvalidJoinCode,
    /// A settings filter out of bounds; the text says which bound.
    #[error("bad settings filter: {0}")]
    BadFilter(String),
    /// A region label out of bounds.
    #[error("invalid region: {0}")]
    InvalidRegion(String),
    /// A registration's body; the text names the field.
    #[error("invalid instance: {0}")]
    InvalidInstance(String),

    // No such thing.
    /// The game of a status request.
    #[error("game {game_id} not found")]
    GameNotFound { game_id: String, product_id: String },
    /// The game of a join.
    #[error("game {game_id} to join not found")]
    JoinTargetNotFound { game_id: String, product_id: String },
    #[error("no game with join code {code}")]
    CodeNotFound { code: String, product_id: String },
    /// A game-server instance that is not registered (or was lost).
    #[error("instance {instance_id} not registered")]
    InstanceNotFound {
        instance_id: String,
        product_id: String,
    },
    /// A region no instance of the product declares.
    #[error("unknown region {region}")]
    UnknownRegion { product_id: String, region: String },
    /// An instance from the configuration cannot be changed over HTTP.
    #[error("instance {instance_id} is configured")]
    InstanceConfigured { instance_id: String },

    // The game or the player is not in a state that allows it.
    #[error("game is {0}, not creator_joined")]
    WrongState(GameState),
    #[error("every seat is taken")]
    Full,
    #[error("other joins hold the game")]
    Busy,
    #[error("the game is no longer available")]
    NoLongerAvailable,
    #[error("a join of this player is in progress")]
    JoinInProgress,
    #[error("a join of this player is in progress (quick match)")]
    QuickMatchInProgress,
    #[error("a join of this player is in progress (leave)")]
    LeaveWhileJoining,
    #[error("the player has {limit} open games")]
    TooManyOpenGames { limit: u32 },
    #[error("too many creates and joins from this {who}")]
    RateLimited {
        who: &'static str,
        retry_after_secs: u64,
    },
    #[error("idempotency key used for another request")]
    IdempotencyKeyReused,
    #[error("a request with this idempotency key is in progress")]
    IdempotencyInProgress,

    // The game server.
    #[error("the game server refused the create")]
    CreateRefused,
    #[error("the game server refused the join")]
    JoinRefused,
    #[error("game server fault: {0:?}")]
    GameServer(GameServerFault),
    /// The game server answered after the reaper had given up on the create.
    #[error("the game server answered too late")]
    AnsweredTooLate,
    /// No instance of the product (in the region asked for) can take a new game.
    #[error("no game server for a new game: {why:?}")]
    NoGameServer {
        product_id: String,
        region: Option<String>,
        why: NoGameServer,
    },

    // This service.
    #[error("the live lobby is not connected")]
    LiveUnavailable,
    #[error("this process serves as many live-lobby streams as it may")]
    LiveFull,
    #[error("the database is unavailable")]
    Unavailable,
    /// A game the game server holds could not be saved (its removal is owed).
    #[error("saving the game failed")]
    SaveFailed,
    #[error("internal error")]
    Internal,
}

/// Why no instance could take a new game.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoGameServer {
    /// None is up (registered and heartbeating, or configured, not draining, breaker closed).
    NoneUp,
    /// Every one that is up holds as many games as its capacity.
    Full,
}

/// A failed exchange with a game server, as the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GameServerFault {
    /// Not reached, timed out, or cut off.
    Unreachable,
    /// A 2xx answer that could not be used.
    BadAnswer,
}

pub type LobbyResult<T> = Result<T, LobbyError>;
