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
    join_code,
    model::{FullGame, Game, GameState, PartialGame, game_id_text},
    store::{
        games::{self as store, NewGame, SeatStatus},
        intents, outbox,
    },
};

/// How often a join retries a game row another join holds, before answering 409.
const LOCK_ATTEMPTS: u32 = 5;

pub const GONE: &str = "GameLobby: Cannot join game - it is no longer available";

/// Creates a game on the product's game server, then records it. A private game is not
/// listed and gets a join code.
///
/// An intent row is written first (within the creator's open-games limit), so a crash after
/// the game server's answer leaves a trace the reaper turns into a `remove_game`.
pub async fn create_game(
    state: &AppState,
    product: &Product,
    player: &Player,
    private: bool,
) -> ApiResult<FullGame> {
    let game_id = Uuid::new_v4();
    tracing::Span::current().record("game_id", game_id_text(game_id).as_str());
    begin_create(state, product, player, game_id).await?;
    let token = create_on_game_server(state, product, player, game_id).await?;
    let settings = Value::Object(product.settings.clone());
    let new = new_game(state, product, player, game_id, &settings, &token);
    let saved = if private {
        join_code::insert_with_code(&state.db, &new, join_code::generate)
            .await
            .map(|saved| saved.map(|(t, code)| (t, Some(code))))
    } else {
        store::insert(&state.db, &new)
            .await
            .map(|t| t.map(|t| (t, None)))
    };
    let (updated_at, code) = match saved {
        Ok(Some(saved)) => saved,
        Ok(None) => return Err(too_late()),
        Err(e) => return Err(unsaved(state, product, game_id, &e).await),
    };
    let mut game = created(product, player, game_id, settings, token, updated_at);
    game.join_code = code;
    Ok(game)
}

/// Step 0 of a create: the intent row, within the creator's open-games limit.
pub(crate) async fn begin_create(
    state: &AppState,
    product: &Product,
    player: &Player,
    game_id: Uuid,
) -> ApiResult<()> {
    let limit = state.settings.max_open_games_per_player;
    let mut conn = state.db.acquire().await?;
    if intents::begin(
        &mut conn,
        game_id,
        &product.product_id,
        &player.user_id,
        limit,
    )
    .await?
    {
        return Ok(());
    }
    Err(ApiError::conflict(format!(
        "Game Lobby: You already have {limit} open games. Start, leave or wait for one of them \
         before creating another."
    )))
}

/// The game server answered after the reaper had given up on this create and owed the removal.
pub(crate) fn too_late() -> ApiError {
    ApiError::bad_gateway("Game Lobby: The game server answered too late. Please try again.")
}

/// Step 1 of a create: the game server's `create_game`; answers the game token. On failure the
/// intent is dropped, owing a `remove_game` when the game server may hold the game.
pub(crate) async fn create_on_game_server(
    state: &AppState,
    product: &Product,
    player: &Player,
    game_id: Uuid,
) -> ApiResult<String> {
    let answer = state
        .game_servers
        .create_game(
            product,
            &game_id_text(game_id),
            &player.user_id,
            &player.username,
        )
        .await;
    let e = match answer {
        Ok(token) => return Ok(token),
        Err(e) => e,
    };
    // A 4xx refusal means the game server holds nothing. After a fault (or a 5xx) it may hold
    // the game: owe it a remove_game in the transaction that drops the intent.
    let may_hold = !matches!(e, GameServerError::Refused { status, .. } if status < 500);
    if let Err(db) = abandon_create(state, product, game_id, may_hold).await {
        // The intent stays; the reaper owes the removal once it is overdue.
        tracing::error!(error = %db, game_id = %game_id.simple(), "could not drop a failed create's intent");
    }
    Err(match e {
        GameServerError::Refused { .. } => {
            ApiError::bad_request("Unable to create game on target game server.")
        }
        other => game_server_fault(&other),
    })
}

/// The row of a game just created on the game server.
pub(crate) fn new_game<'a>(
    state: &AppState,
    product: &'a Product,
    player: &'a Player,
    game_id: Uuid,
    settings: &'a Value,
    token: &'a str,
) -> NewGame<'a> {
    NewGame {
        game_id,
        product_id: &product.product_id,
        creator_id: &player.user_id,
        creator_name: &player.username,
        num_players: product.num_players,
        settings,
        token,
        expires_in_secs: state.settings.expiry.secs(GameState::Created),
        join_code: None,
    }
}

/// Saving a game the game server already holds failed: owe its removal (or leave the intent
/// to the reaper when the database is down) and answer 503 or 500.
pub(crate) async fn unsaved(
    state: &AppState,
    product: &Product,
    game_id: Uuid,
    e: &sqlx::Error,
) -> ApiError {
    tracing::error!(error = %e, game_id = %game_id.simple(), "saving a created game failed; removing it from the game server");
    if let Err(db) = abandon_create(state, product, game_id, true).await {
        tracing::error!(error = %db, game_id = %game_id.simple(), "could not owe remove_game now; the reaper will");
    }
    if crate::error::unavailable(e) {
        return ApiError::unavailable();
    }
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Game Lobby: Error saving the game. Please contact support.",
    )
}

/// Drops a create's intent, owing the game server a `remove_game` when it may hold the game.
pub(crate) async fn abandon_create(
    state: &AppState,
    product: &Product,
    game_id: Uuid,
    owe_removal: bool,
) -> sqlx::Result<()> {
    let mut tx = state.db.begin().await?;
    if intents::cancel(&mut *tx, game_id).await? && owe_removal {
        outbox::owe_remove_game(&mut *tx, &product.product_id, game_id).await?;
    }
    tx.commit().await
}

/// The answer to a create, without reading back what was just written.
pub(crate) fn created(
    product: &Product,
    player: &Player,
    game_id: Uuid,
    settings: Value,
    token: String,
    updated_at: chrono::DateTime<chrono::Utc>,
) -> FullGame {
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
        join_code: None,
        players: vec![player.user_id.clone()],
    };
    game.full(&product.game_server_url, Some(&product.game_socket_url))
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

pub(crate) async fn release(
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

pub(crate) fn full() -> ApiError {
    ApiError::conflict("Game Lobby: Unable to join game - every seat is taken.")
}

pub(crate) fn game_server_fault(e: &GameServerError) -> ApiError {
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
    settings: &Value,
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
    let games = store::open_page(&state.db, product_id, count as i64, offset, settings).await?;
    Ok(games
        .into_iter()
        .map(|g| g.partial(&product.game_server_url))
        .collect())
}

/// Most `settings.<key>` filters in one query.
const MAX_FILTERS: usize = 10;

/// The settings filters of an open-games query: `settings.<key>=<value>` pairs, as one JSON
/// object the listed games' settings must contain. A value that reads as JSON (`2`, `true`,
/// `"2"`) is taken as that; anything else as a string (`ranked`).
pub fn settings_filter<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> ApiResult<Value> {
    let mut filter = serde_json::Map::new();
    for (name, raw) in pairs {
        let Some(key) = name.strip_prefix("settings.") else {
            continue;
        };
        if key.is_empty() || key.len() > 64 || raw.len() > 256 {
            return Err(ApiError::bad_request(
                "Invalid request - a settings filter is settings.<key>=<value>, with a key of 1 to 64 characters and a value of at most 256.",
            ));
        }
        let value = serde_json::from_str::<Value>(raw).unwrap_or_else(|_| Value::from(raw));
        filter.insert(key.to_string(), value);
        if filter.len() > MAX_FILTERS {
            return Err(ApiError::bad_request(format!(
                "Invalid request - at most {MAX_FILTERS} settings filters."
            )));
        }
    }
    Ok(Value::Object(filter))
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
    fn settings_filters() {
        let pairs = [
            ("count", "3"),
            ("settings.mode", "ranked"),
            ("settings.num_players", "2"),
            ("settings.label", "\"2\""),
        ];
        assert_eq!(
            settings_filter(pairs).unwrap(),
            serde_json::json!({"mode": "ranked", "num_players": 2, "label": "2"})
        );
        assert_eq!(settings_filter([]).unwrap(), serde_json::json!({}));
        assert!(settings_filter([("settings.", "x")]).is_err());
        let many: Vec<(String, &str)> = (0..11).map(|i| (format!("settings.k{i}"), "v")).collect();
        assert!(settings_filter(many.iter().map(|(k, v)| (k.as_str(), *v))).is_err());
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
