//! Every failure becomes an RFC 9457 problem document. [`From<LobbyError>`] is the one table
//! from the lobby's errors to a status and the message of docs/api.md (the portal shows some of
//! them to players: keep them byte for byte). Internal causes are logged, never sent.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    auth::AuthError,
    domain::{GameServerFault, LobbyError, NoGameServer, join_code},
};

pub const NOT_AUTHORIZED: &str = "Game Lobby: Not authorized.";
pub const BAD_TOKEN: &str =
    "Game Lobby: Unable to fetch user profile for user. Relog may be required.";
const INTERNAL: &str = "Game Lobby: Internal error. Please contact support.";

/// RFC 9457 problem details, the body of every error response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "about:blank",
    "title": "Bad Request",
    "status": 400,
    "detail": "Game Lobby: Invalid product ID."
}))]
pub struct Problem {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong, for people.
    pub detail: String,
}

// Answers many routes document alike (OpenAPI only).

/// A missing or bad token.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 401,
    description = "`Game Lobby: Not authorized.` without `Authorization`; `Game Lobby: Unable to fetch user profile for user. Relog may be required.` for a bad token.",
    content_type = "application/problem+json"
)]
#[allow(dead_code)] // documentation only
pub struct Unauthorized(#[to_schema] Problem);

/// Too many creates and joins from this player or address; see `Retry-After`.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 429,
    content_type = "application/problem+json",
    headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))
)]
#[allow(dead_code)] // documentation only
pub struct RateLimited(#[to_schema] Problem);

/// A join's seat is gone: every seat is taken, or other players hold the game right now.
#[derive(utoipa::IntoResponses)]
#[response(status = 409, content_type = "application/problem+json")]
#[allow(dead_code)] // documentation only
pub struct SeatTaken(#[to_schema] Problem);

/// A join's call to the game server failed: it could not be reached, timed out, or gave an
/// answer that could not be used.
#[derive(utoipa::IntoResponses)]
#[response(status = 502, content_type = "application/problem+json")]
#[allow(dead_code)] // documentation only
pub struct JoinGameServerFault(#[to_schema] Problem);

/// The database is unavailable; retry shortly (with `Retry-After`).
#[derive(utoipa::IntoResponses)]
#[response(status = 503, content_type = "application/problem+json")]
#[allow(dead_code)] // documentation only
pub struct Unavailable(#[to_schema] Problem);

/// The database is unavailable, or no game-server instance (of the region asked for) is up or
/// has room for a new game; retry after `Retry-After`.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 503,
    content_type = "application/problem+json",
    headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))
)]
#[allow(dead_code)] // documentation only
pub struct NoGameServerUp(#[to_schema] Problem);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            retry_after: None,
        }
    }
    fn retry_after(self, secs: u64) -> Self {
        Self {
            retry_after: Some(secs),
            ..self
        }
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }
    pub fn invalid_product() -> Self {
        Self::bad_request("Game Lobby: Invalid product ID.")
    }
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL)
    }
}

impl From<LobbyError> for ApiError {
    fn from(e: LobbyError) -> Self {
        use LobbyError as E;
        use StatusCode as S;
        match e {
            E::InvalidGameId => Self::bad_request(
                "Game Lobby: Invalid game ID - expected 32 hexadecimal characters.",
            ),
            E::InvalidJoinCode => Self::bad_request(format!(
                "Game Lobby: Invalid join code - expected {} characters from {}.",
                join_code::LEN,
                join_code::ALPHABET
            )),
            E::BadFilter(detail) => Self::bad_request(detail),
            E::InvalidRegion(detail) => Self::bad_request(format!("Game Lobby: Invalid region - {detail}.")),
            E::InvalidInstance(detail) => Self::bad_request(format!("Invalid instance: {detail}.")),
            E::InstanceNotFound {
                instance_id,
                product_id,
            } => Self::new(
                S::NOT_FOUND,
                format!(
                    "No game-server instance {instance_id:?} of product {product_id} is registered (or it was lost): register it again."
                ),
            ),
            E::UnknownRegion { product_id, region } => Self::bad_request(format!(
                "Game Lobby: No game server of product {product_id} is in region {region}."
            )),
            E::InstanceConfigured { instance_id } => Self::new(
                S::CONFLICT,
                format!(
                    "Instance {instance_id:?} is in the matchmaker's configuration: change it there."
                ),
            ),
            E::GameNotFound {
                game_id,
                product_id,
            } => Self::new(
                S::NOT_FOUND,
                format!(
                    "Game Lobby: Game not found. Game ID: \"{game_id}\", Product ID: {product_id}."
                ),
            ),
            E::JoinTargetNotFound {
                game_id,
                product_id,
            } => Self::new(
                S::NOT_FOUND,
                format!(
                    "Game Lobby: Unable to join game - game not found. Game ID: \"{game_id}\", Product ID: {product_id}."
                ),
            ),
            E::CodeNotFound { code, product_id } => Self::new(
                S::NOT_FOUND,
                format!(
                    "Game Lobby: Unable to join game - no game with join code {code}, Product ID: {product_id}."
                ),
            ),
            E::WrongState(state) => Self::bad_request(format!(
                "Unable to join game - invalid state: {state}. Required state: creator_joined"
            )),
            E::Full => Self::new(
                S::CONFLICT,
                "Game Lobby: Unable to join game - every seat is taken.",
            ),
            E::Busy => Self::new(
                S::CONFLICT,
                "Game Lobby: Unable to join game - other players are joining it right now. Try again.",
            ),
            E::NoLongerAvailable => {
                Self::bad_request("GameLobby: Cannot join game - it is no longer available")
            }
            E::JoinInProgress => Self::new(
                S::CONFLICT,
                "Game Lobby: Unable to join game - a join for this player is already in progress.",
            ),
            E::QuickMatchInProgress => Self::new(
                S::CONFLICT,
                "Game Lobby: Unable to quick match - a join for this player is already in progress.",
            ),
            E::LeaveWhileJoining => Self::new(
                S::CONFLICT,
                "Game Lobby: Unable to leave game - a join for this player is still in progress. Try again.",
            ),
            E::TooManyOpenGames { limit } => Self::new(
                S::CONFLICT,
                format!(
                    "Game Lobby: You already have {limit} open games. Start, leave or wait for one of them \
                     before creating another."
                ),
            ),
            E::RateLimited {
                who,
                retry_after_secs,
            } => Self::new(
                S::TOO_MANY_REQUESTS,
                format!(
                    "Game Lobby: Too many games created or joined from this {who}. Retry in {retry_after_secs} s."
                ),
            )
            .retry_after(retry_after_secs),
            E::IdempotencyKeyReused => Self::new(
                S::UNPROCESSABLE_ENTITY,
                "Game Lobby: This Idempotency-Key was already used for a different request.",
            ),
            E::IdempotencyInProgress => Self::new(
                S::CONFLICT,
                "Game Lobby: A request with this Idempotency-Key is still in progress. Retry shortly.",
            ),
            E::CreateRefused => Self::bad_request("Unable to create game on target game server."),
            E::JoinRefused => Self::bad_request("Unable to join game on target game server."),
            E::GameServer(GameServerFault::BadAnswer) => Self::new(
                S::BAD_GATEWAY,
                "The game server gave an answer that could not be used.",
            ),
            E::GameServer(GameServerFault::Unreachable) => {
                Self::new(S::BAD_GATEWAY, "Unable to reach the game server.")
            }
            E::AnsweredTooLate => Self::new(
                S::BAD_GATEWAY,
                "Game Lobby: The game server answered too late. Please try again.",
            ),
            E::NoGameServer {
                product_id,
                region,
                why,
            } => {
                let place = region.map_or_else(String::new, |r| format!(" in region {r}"));
                let detail = match why {
                    NoGameServer::NoneUp => format!(
                        "Game Lobby: No game server of product {product_id}{place} is up. Please try again shortly."
                    ),
                    NoGameServer::Full => format!(
                        "Game Lobby: Every game server of product {product_id}{place} is full. Please try again shortly."
                    ),
                };
                Self::new(S::SERVICE_UNAVAILABLE, detail).retry_after(5)
            }
            E::LiveUnavailable => Self::new(
                S::SERVICE_UNAVAILABLE,
                "Game Lobby: The live lobby is temporarily unavailable. Please retry shortly.",
            ),
            E::LiveFull => Self::new(
                S::SERVICE_UNAVAILABLE,
                "Game Lobby: The live lobby has as many watchers as it can take. Please retry shortly.",
            )
            .retry_after(5),
            E::Unavailable => Self::new(
                S::SERVICE_UNAVAILABLE,
                "Game Lobby: The service is temporarily unavailable. Please retry shortly.",
            )
            .retry_after(1),
            E::SaveFailed => Self::new(
                S::INTERNAL_SERVER_ERROR,
                "Game Lobby: Error saving the game. Please contact support.",
            ),
            E::Internal => Self::internal(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing => Self::unauthorized(NOT_AUTHORIZED),
            AuthError::Invalid => Self::unauthorized(BAD_TOKEN),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        LobbyError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = problem(self.status, self.detail);
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A problem response with the right content type.
pub fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    let body = Problem {
        kind: "about:blank",
        title: status.canonical_reason().unwrap_or("Error").to_string(),
        status: status.as_u16(),
        detail: detail.into(),
    };
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}
