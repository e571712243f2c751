//! The lobby's rules: create, join and list, in the order of checks SPEC §1 prescribes.
//!
//! Game-server calls never happen inside a database transaction. A join reserves its seat in a
//! short transaction, asks the game server, then holds or releases the seat.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::{
    app::AppState,
    auth::Player,
    config::Product,
    error::{ApiError, ApiResult},
    game_server::GameServerError,
    model::{FullGame, Game, GameState, PartialGame, game_id_text},
    store::{
        games::{self as store, NewGame, SeatStatus},
        outbox,
    },
};

/// How often a join retries a game row another join holds, before answering 409.
const LOCK_ATTEMPTS: u32 = 5;

pub const GONE: &str = "GameLobby: Cannot join game - it is no longer available";

/// Creates a game on the product's game server, then records it.
pub async fn create_game(
    state: &AppState,
    product: &Product,
    player: &Player,
) -> ApiResult<FullGame> {
    let game_id = Uuid::new_v4();
    let id_text = game_id_text(game_id);
    tracing::Span::current().record("game_id", id_text.as_str());

    let token = state
        .game_servers
        .create_game(product, &id_text, &player.user_id, &player.username)
        .await
        .map_err(|e| match e {
            GameServerError::Refused { .. } => {
                ApiError::bad_request("Unable to create game on target game server.")
            }
            other => game_server_fault(&other),
        })?;

    let settings = Value::Object(product.settings.clone());
    let new = NewGame {
        game_id,
        product_id: &product.product_id,
        creator_id: &player.user_id,
        creator_name: &player.username,
        num_players: product.num_players,
        settings: &settings,
        token: &token,
        expires_in_secs: state.settings.expiry.secs(GameState::Created),
    };
    let updated_at = match store::insert(&state.db, &new).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, game_id = %id_text, "saving a created game failed; removing it from the game server");
            // Owe the removal durably if the database still takes writes, else try once now.
            if outbox::owe_remove_game(&state.db, &product.product_id, game_id)
                .await
                .is_err()
            {
                let client = state.game_servers.clone();
                let product = product.clone();
                tokio::spawn(async move {
                    if let Err(e) = client.remove_game(&product, &id_text).await {
                        tracing::error!(error = %e, game_id = %id_text, "could not remove an unsaved game from its game server");
                    }
                });
            }
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Game Lobby: Error saving the game. Please contact support.",
            ));
        }
    };

    let game = Game {
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
        players: vec![player.user_id.clone()],
    };
    Ok(game.full(&product.game_server_url, Some(&product.game_socket_url)))
}

/// What the reservation step decided.
enum Reservation {
    /// A new seat is reserved: ask the game server.
    Reserved,
    /// The player already holds a seat: answer with the game as it is.
    AlreadySeated,
}

/// Takes a seat in a game for `player`.
pub async fn join_game(
    state: &AppState,
    product: &Product,
    player: &Player,
    raw_game_id: &str,
) -> ApiResult<FullGame> {
    let not_found = || {
        ApiError::not_found(format!(
            "Game Lobby: Unable to join game - game not found. Game ID: \"{raw_game_id}\", Product ID: {}.",
            product.product_id
        ))
    };
    let game_id = parse_game_id(raw_game_id)?.ok_or_else(not_found)?;
    tracing::Span::current().record("game_id", raw_game_id);
    let expiry = state.settings.expiry.secs(GameState::CreatorJoined);

    match reserve(state, product, player, game_id, expiry).await? {
        Some(Reservation::AlreadySeated) => {
            let game = store::fetch(&state.db, game_id, &product.product_id)
                .await?
                .ok_or_else(not_found)?;
            return Ok(game.full(&product.game_server_url, Some(&product.game_socket_url)));
        }
        Some(Reservation::Reserved) => {}
        None => return Err(not_found()),
    }

    let answer = state
        .game_servers
        .join_game(
            product,
            &game_id_text(game_id),
            &player.user_id,
            &player.username,
        )
        .await;
    if let Err(e) = answer {
        // A refusal means the game server did not seat the player. After a fault it may have:
        // owe it a remove_player in the same transaction that frees the seat.
        let owe_removal = !matches!(e, GameServerError::Refused { .. });
        if let Err(db) = release(state, product, player, game_id, expiry, owe_removal).await {
            // The reaper frees reservations that outlive their time; nothing is lost.
            tracing::error!(error = %db, "could not release a failed reservation");
        }
        return Err(match e {
            GameServerError::Refused { .. } => {
                ApiError::bad_request("Unable to join game on target game server.")
            }
            other => game_server_fault(&other),
        });
    }

    let game = store::hold_seat(&state.db, game_id, &product.product_id, &player.user_id)
        .await?
        .ok_or_else(|| ApiError::bad_request(GONE))?;
    Ok(game.full(&product.game_server_url, Some(&product.game_socket_url)))
}

async fn release(
    state: &AppState,
    product: &Product,
    player: &Player,
    game_id: Uuid,
    expiry_secs: f64,
    owe_removal: bool,
) -> sqlx::Result<()> {
    let mut tx = state.db.begin().await?;
    let released =
        store::release_reservation(&mut *tx, game_id, &player.user_id, expiry_secs).await?;
    if released && owe_removal {
        outbox::owe_remove_player(&mut *tx, &product.product_id, game_id, &player.user_id).await?;
    }
    tx.commit().await
}

/// Step 1 of a join: one statement that never waits on another join's row lock.
/// `None` means the game does not exist.
async fn reserve(
    state: &AppState,
    product: &Product,
    player: &Player,
    game_id: Uuid,
    expiry_secs: f64,
) -> ApiResult<Option<Reservation>> {
    for attempt in 0..LOCK_ATTEMPTS {
        let target = match store::lock_and_reserve(
            &state.db,
            game_id,
            &product.product_id,
            &player.user_id,
            &player.username,
            expiry_secs,
        )
        .await
        {
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
            Some(SeatStatus::Reserved) => {
                return Err(ApiError::conflict(
                    "Game Lobby: Unable to join game - a join for this player is already in progress.",
                ));
            }
            None => {}
        }
        if target.state != GameState::CreatorJoined {
            return Err(ApiError::bad_request(format!(
                "Unable to join game - invalid state: {}. Required state: creator_joined",
                target.state
            )));
        }
        if target.seats_taken >= target.num_players {
            return Err(full());
        }
        if !target.locked {
            // Another join holds the row for a millisecond or two: look again shortly.
            pause(attempt).await;
            continue;
        }
        if target.reserved.is_none() {
            return Err(full());
        }
        return Ok(Some(Reservation::Reserved));
    }
    Err(ApiError::conflict(
        "Game Lobby: Unable to join game - other players are joining it right now. Try again.",
    ))
}

/// The pause before a join looks again at a game another join holds: 2, 4, 8... ms, jittered.
async fn pause(attempt: u32) {
    let pause = 2u64 << attempt;
    tokio::time::sleep(Duration::from_millis(pause + rand::random::<u64>() % pause)).await;
}

fn full() -> ApiError {
    ApiError::conflict("Game Lobby: Unable to join game - every seat is taken.")
}

fn game_server_fault(e: &GameServerError) -> ApiError {
    match e {
        GameServerError::BadAnswer(_) => {
            ApiError::bad_gateway("The game server gave an answer that could not be used.")
        }
        _ => ApiError::bad_gateway("Unable to reach the game server."),
    }
}

/// Game ids are 32 hex digits (dashes tolerated). Other characters or absurd lengths are a bad
/// request; a well-formed id that cannot be a game id is simply not found (`Ok(None)`).
pub fn parse_game_id(raw: &str) -> ApiResult<Option<Uuid>> {
    if raw.len() > 64 || !raw.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(ApiError::bad_request(
            "Game Lobby: Invalid game ID - expected 32 hexadecimal characters.",
        ));
    }
    Ok(Uuid::try_parse(raw).ok())
}

/// A page of open games; `count`/`page` as the client sent them.
pub async fn open_games(
    state: &AppState,
    product_id: &str,
    count: Option<&str>,
    page: Option<&str>,
) -> ApiResult<Vec<PartialGame>> {
    let Some(product) = state.product(product_id) else {
        return Ok(Vec::new());
    };
    let count = parse_paging(count)?.unwrap_or(state.settings.lobby_page_size.into());
    let page = parse_paging(page)?.unwrap_or(0);
    let count = count.min(state.settings.lobby_max_page_size.into());
    let offset = i64::try_from(page.saturating_mul(count)).unwrap_or(i64::MAX);
    if count == 0 {
        return Ok(Vec::new());
    }
    let games = store::open_page(&state.db, product_id, count as i64, offset).await?;
    Ok(games
        .into_iter()
        .map(|g| g.partial(&product.game_server_url))
        .collect())
}

/// A non-negative integer; digits beyond u64 saturate (a huge page is simply empty).
fn parse_paging(raw: Option<&str>) -> ApiResult<Option<u64>> {
    let Some(raw) = raw else { return Ok(None) };
    let text = raw.trim();
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(
            "Invalid request - page size and entry count must be integers.",
        ));
    }
    if negative && digits.bytes().any(|b| b != b'0') {
        return Err(ApiError::bad_request(
            "Invalid request - page size and entry count must not be negative.",
        ));
    }
    Ok(Some(digits.parse::<u64>().unwrap_or(u64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_values() {
        assert_eq!(parse_paging(Some("7")).unwrap(), Some(7));
        assert_eq!(parse_paging(Some("-0")).unwrap(), Some(0));
        assert_eq!(
            parse_paging(Some("99999999999999999999999")).unwrap(),
            Some(u64::MAX)
        );
        assert!(
            parse_paging(Some("abc"))
                .unwrap_err()
                .detail
                .contains("integers")
        );
        assert!(
            parse_paging(Some("1.5"))
                .unwrap_err()
                .detail
                .contains("integers")
        );
        assert!(
            parse_paging(Some(""))
                .unwrap_err()
                .detail
                .contains("integers")
        );
        assert!(
            parse_paging(Some("-3"))
                .unwrap_err()
                .detail
                .contains("negative")
        );
    }

    #[test]
    fn game_ids() {
        let id = Uuid::new_v4();
        assert_eq!(parse_game_id(&game_id_text(id)).unwrap(), Some(id));
        assert_eq!(parse_game_id("abc").unwrap(), None);
        assert!(parse_game_id("not-a-game!").is_err());
        assert!(parse_game_id(&"a".repeat(65)).is_err());
    }
}
