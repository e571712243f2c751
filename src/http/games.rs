//! The player's own games, beyond the old contract (docs/lobby-features.md): status, leave,
//! quick match, join by code. Same order of checks: product, then token, then the rest.

use axum::{
    Json,
    body::Bytes,
    extract::{RawQuery, State},
    http::HeaderMap,
    response::Response,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    dto::{FullGame, GameView, Left, PartialGame, QuickMatch},
    error::{
        ApiResult, JoinGameServerFault, NoGameServerUp, Problem, RateLimited, SeatTaken,
        Unauthorized, Unavailable,
    },
    extract::{Caller, ClientIp, LastSegment, ProductRef, idempotency_key, region},
    lobby::once,
    state::AppState,
};
use crate::{domain::GameRef, lobby::idempotency};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(game_status))
        .routes(routes!(leave_game))
        .routes(routes!(quick_match))
        .routes(routes!(join_by_code))
}

/// Game status.
///
/// The full game (with `target_game_server`) when the caller holds a seat in it, the partial
/// game (as in the open-games list) for anyone else. Lets a client poll, or recover after a
/// reload.
#[utoipa::path(
    get,
    path = "/game_lobby/{product_id}/games/{game_id}",
    tag = "lobby",
    params(
        ("product_id" = String, Path, description = "Product (game title) id.", example = "exrps"),
        ("game_id" = String, Path, description = "Game id: 32 hexadecimal characters.", example = "3f0c9d5e2b7a4c1d9e8f7a6b5c4d3e2f"),
    ),
    security(("player_token" = [])),
    responses(
        (status = 200, description = "The full game for its players, the partial game for anyone else.", body = GameView,
            examples(
                ("player" = (summary = "The caller holds a seat", value = json!({
                    "game_id": "3f0c9d5e2b7a4c1d9e8f7a6b5c4d3e2f", "product_id": "exrps",
                    "game_server_url": "http://game-rps:8080", "creator_id": "alice", "creator_name": "Alice",
                    "players": ["alice", "bob"], "settings": {"num_players": 2}, "token": "9c2e4f6a8b0d",
                    "state": "creator_joined", "_last_updated": "23-Nov-2026 (18:52:07.123456)",
                    "target_game_server": "rps.varcade.local:8085"}))),
                ("other" = (summary = "Anyone else", value = json!({
                    "game_id": "3f0c9d5e2b7a4c1d9e8f7a6b5c4d3e2f", "product_id": "exrps",
                    "game_server_url": "http://game-rps:8080", "creator_id": "alice", "creator_name": "Alice",
                    "players": ["alice"], "settings": {"num_players": 2}, "free_seats": 1,
                    "listed_at": "2026-11-23T18:52:07.123456Z"}))),
            )),
        (status = 400, description = "`Game Lobby: Invalid product ID.` or a malformed game id.",
            body = Problem, content_type = "application/problem+json"),
        Unauthorized,
        (status = 404, description = "`Game Lobby: Game not found. Game ID: \"<game_id>\", Product ID: <product_id>.`",
            body = Problem, content_type = "application/problem+json"),
        Unavailable,
    )
)]
async fn game_status(
    State(state): State<AppState>,
    ProductRef(product): ProductRef,
    Caller(player): Caller,
    LastSegment(segment): LastSegment,
) -> ApiResult<Json<GameView>> {
    let game = GameRef::parse(&segment)?;
    let game = state.lobby.game_status(&product, &game).await?;
    Ok(Json(if game.seats(&player.user_id) {
        GameView::Full(FullGame::of(game, &product))
    } else {
        GameView::Partial(PartialGame::of(game, &product))
    }))
}

/// Leave a game.
///
/// A joiner gives up their seat: the game server is told (`remove_player`) and the game is
/// listed again. The creator leaving removes the game (`remove_game`). Idempotent: leaving a
/// game you are not in, or that is gone, answers `not_seated`.
#[utoipa::path(
    post,
    path = "/game_lobby/{product_id}/leave_game/{game_id}",
    tag = "lobby",
    params(
        ("product_id" = String, Path, description = "Product (game title) id.", example = "exrps"),
        ("game_id" = String, Path, description = "Game id: 32 hexadecimal characters.", example = "3f0c9d5e2b7a4c1d9e8f7a6b5c4d3e2f"),
    ),
    security(("player_token" = [])),
    responses(
        (status = 200, description = "`seat_released` (a joiner left), `game_removed` (the creator left) or `not_seated` (nothing to do).",
            body = Left, examples(
                ("joiner" = (value = json!({"game_id": "3f0c9d5e2b7a4c1d9e8f7a6b5c4d3e2f", "outcome": "seat_released"}))),
                ("creator" = (value = json!({"game_id": "3f0c9d5e2b7a4c1d9e8f7a6b5c4d3e2f", "outcome": "game_removed"}))),
                ("again" = (value = json!({"game_id": "3f0c9d5e2b7a4c1d9e8f7a6b5c4d3e2f", "outcome": "not_seated"}))),
            )),
        (status = 400, description = "`Game Lobby: Invalid product ID.` or a malformed game id.",
            body = Problem, content_type = "application/problem+json"),
        Unauthorized,
        (status = 409, description = "The caller's own join of this game is still in progress.",
            body = Problem, content_type = "application/problem+json"),
        Unavailable,
    )
)]
async fn leave_game(
    State(state): State<AppState>,
    ProductRef(product): ProductRef,
    Caller(player): Caller,
    LastSegment(segment): LastSegment,
) -> ApiResult<Json<Left>> {
    let game = GameRef::parse(&segment)?;
    let outcome = state.lobby.leave_game(&product, &player, &game).await?;
    Ok(Json(Left::of(game.text, outcome)))
}

/// Quick match.
///
/// Takes a seat in the oldest game of the product that waits for players and has a free seat
/// that no other request holds right now (`FOR UPDATE SKIP LOCKED`), or creates a game when
/// there is none. Games still waiting for their creator to connect (`created`) count too, so a
/// burst of players fills games seat by seat. Answers like join or create, with `outcome`
/// saying which happened; a player who already waits in a game of this product gets that game
/// (`already_seated`). Private games are never matched.
#[utoipa::path(
    post,
    path = "/game_lobby/{product_id}/quick_match",
    tag = "lobby",
    params(
        ("product_id" = String, Path, description = "Product (game title) id.", example = "exrps"),
        ("Idempotency-Key" = Option<String>, Header, description = "Optional, 1 to 255 visible ASCII characters. A retry with the same key by the same player within a day answers the first result again (with `Idempotent-Replayed: true`).",
            example = "5f1c8e0a-quick-1"),
        ("region" = Option<String>, Query, description = "Create the game, if one is created, only on game-server instances of this region (a JSON body `{\"region\": ...}` does the same).", example = "eu"),
    ),
    request_body(content = RegionBody, description = "Optional."),
    security(("player_token" = [])),
    responses(
        (status = 200, description = "The game (full, with `target_game_server`) and `outcome`: `joined`, `created` or `already_seated`.",
            body = QuickMatch),
        (status = 400, description = "`Game Lobby: Invalid product ID.`, `Unable to create game on target game server.` or a malformed `Idempotency-Key`.",
            body = Problem, content_type = "application/problem+json"),
        Unauthorized,
        (status = 409, description = "A join or quick match of the caller is still in progress, or a request with the same `Idempotency-Key` is.",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The `Idempotency-Key` was already used for a different request.",
            body = Problem, content_type = "application/problem+json"),
        RateLimited,
        (status = 502, description = "The game server could not be reached, timed out, or gave an unusable answer.",
            body = Problem, content_type = "application/problem+json"),
        NoGameServerUp,
    )
)]
async fn quick_match(
    State(state): State<AppState>,
    ProductRef(product): ProductRef,
    Caller(player): Caller,
    ClientIp(ip): ClientIp,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    state.rate_limits.check(&player.user_id, ip)?;
    let key = idempotency_key(&headers)?;
    let region = region(&body, query.as_deref())?;
    let req = idempotency::Request {
        product: &product,
        player: &player,
        key,
        operation: "quick_match",
        request: region
            .as_ref()
            .map_or_else(String::new, |r| format!("region={r}")),
    };
    // The quick match runs in its own task: it finishes even if the client goes away, so no
    // reservation is left behind.
    once(&state, req, |lobby, product, player| async move {
        let (game, outcome) = lobby
            .quick_match(&product, &player, region.as_deref())
            .await?;
        Ok(QuickMatch::of(game, outcome, &product))
    })
    .await
}

/// A quick match's optional body.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documentation only: read by `extract::region`
struct RegionBody {
    /// Create the game, if one is created, only on game-server instances of this region.
    #[schema(example = "eu")]
    region: Option<String>,
}

/// Join a game by its code.
///
/// Joins the game holding this join code (a private game's code, from its creator) exactly as
/// `join_game` joins by id. Codes are 6 characters from `23456789ABCDEFGHJKMNPQRSTUVWXYZ`;
/// case, spaces and dashes do not matter.
#[utoipa::path(
    post,
    path = "/game_lobby/{product_id}/join_by_code/{code}",
    tag = "lobby",
    params(
        ("product_id" = String, Path, description = "Product (game title) id.", example = "exrps"),
        ("code" = String, Path, description = "The game's join code.", example = "K7QM3X"),
    ),
    security(("player_token" = [])),
    responses(
        (status = 200, description = "The game with the caller in `players`, `target_game_server` and `join_code`.", body = FullGame),
        (status = 400, description = "`Game Lobby: Invalid product ID.`, `Game Lobby: Invalid join code - expected 6 characters from 23456789ABCDEFGHJKMNPQRSTUVWXYZ.`, \
            or as `join_game`: invalid state, refused by the game server, no longer available.",
            body = Problem, content_type = "application/problem+json"),
        Unauthorized,
        (status = 404, description = "`Game Lobby: Unable to join game - no game with join code <code>, Product ID: <product_id>.`",
            body = Problem, content_type = "application/problem+json"),
        SeatTaken,
        RateLimited,
        JoinGameServerFault,
        Unavailable,
    )
)]
async fn join_by_code(
    State(state): State<AppState>,
    ProductRef(product): ProductRef,
    Caller(player): Caller,
    ClientIp(ip): ClientIp,
    LastSegment(segment): LastSegment,
) -> ApiResult<Json<FullGame>> {
    // Every guess at a code costs one unit of the player's and the address's join quota.
    state.rate_limits.check(&player.user_id, ip)?;
    let game = state
        .lobby
        .join_by_code(&product, &player, &segment)
        .await?;
    Ok(Json(FullGame::of(game, &product)))
}
