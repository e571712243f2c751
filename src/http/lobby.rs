//! The portal's lobby routes (docs/api.md), compatible with the Varcade Games matchmaker:
//! list, create, join. The order of checks: product, then token, then the rest.

use axum::{
    Json,
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    dto::{FullGame, PartialGame},
    error::{
        ApiError, ApiResult, JoinGameServerFault, NoGameServerUp, Problem, RateLimited, SeatTaken,
        Unauthorized, Unavailable,
    },
    extract::{
        Caller, ClientIp, LastSegment, ProductRef, ProductSegment, REPLAYED, idempotency_key,
        paging, percent_decode, region,
    },
    state::AppState,
};
use crate::{
    domain::{GameRef, SettingsFilter},
    lobby::{
        Listing, Page,
        idempotency::{self, Answer},
    },
    metrics::SourceLabels,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_game))
        .routes(routes!(join_game))
        .routes(routes!(open_games))
}

/// Runs a create or quick match once per `Idempotency-Key`; a replayed answer says so.
pub(super) async fn once<T, F, Fut>(
    state: &AppState,
    req: idempotency::Request<'_>,
    run: F,
) -> ApiResult<Response>
where
    T: Serialize + Send + 'static,
    F: FnOnce(
        std::sync::Arc<crate::lobby::Lobby>,
        std::sync::Arc<crate::domain::Product>,
        crate::domain::Player,
    ) -> Fut,
    Fut: Future<Output = crate::lobby::LobbyResult<T>> + Send + 'static,
{
    Ok(match idempotency::run(&state.lobby, req, run).await? {
        Answer::Fresh(answer) => Json(answer).into_response(),
        Answer::Replayed(answer) => {
            let mut response = Json(answer).into_response();
            response
                .headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
            response
        }
    })
}

/// The body of `create_game`: any JSON or none. Only `private` is read.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only: the body is read leniently (see `create_options`)
struct CreateGameBody {
    /// `true`: the game is not listed nor quick-matched, and the answer carries a `join_code`
    /// others join it with. Default `false`.
    private: Option<bool>,
    /// Place the game only on game-server instances of this region (docs/fleets.md).
    #[schema(example = "eu")]
    region: Option<String>,
}

/// Whether the body asks for a private game. Anything that is not a JSON object is ignored, as
/// the old service ignored the body; only a `private` that is not a boolean is refused.
fn create_options(body: &[u8]) -> ApiResult<bool> {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Ok(false);
    };
    match fields.get("private") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(private)) => Ok(*private),
        Some(_) => Err(ApiError::bad_request(
            "Game Lobby: Invalid request - \"private\" must be true or false.",
        )),
    }
}

/// Create a game.
///
/// Creates a game on the product's game server with the caller as its creator. The game is
/// listed once the creator has connected to the game server (state `creator_joined`).
/// With `{"private": true}` it is never listed: the answer's `join_code` lets others join it
/// (`join_by_code`).
#[utoipa::path(
    post,
    path = "/game_lobby/{product_id}/create_game",
    tag = "lobby",
    params(
        ("product_id" = String, Path, description = "Product (game title) id.", example = "exrps"),
        ("Idempotency-Key" = Option<String>, Header, description = "Optional, 1 to 255 visible ASCII characters. A retry with the same key by the same player within a day answers the first game again (with `Idempotent-Replayed: true`) instead of creating another.",
            example = "5f1c8e0a-create-1"),
        ("region" = Option<String>, Query, description = "Place the game only on game-server instances of this region (the body's `region` does the same).", example = "eu"),
    ),
    request_body(content = CreateGameBody, description = "Optional. Only `private` and `region` are read; anything else (the portal sends `{\"game_type\":0,\"num_players\":2,\"creater_id\":...}`) is ignored.",
        examples(
            ("public" = (summary = "What the portal sends: a public game", value = json!({"game_type": 0, "num_players": 2}))),
            ("private" = (summary = "A private game with a join code", value = json!({"private": true}))),
        )),
    security(("player_token" = [])),
    responses(
        (status = 200, description = "The new game, with `target_game_server` (where to connect) and, for a private game, `join_code`.", body = FullGame),
        (status = 400, description = "`Game Lobby: Invalid product ID.`, `Unable to create game on target game server.`, `Game Lobby: Invalid request - \"private\" must be true or false.` or a malformed `Idempotency-Key`.",
            body = Problem, content_type = "application/problem+json"),
        Unauthorized,
        (status = 409, description = "The caller already has `max_open_games_per_player` games waiting for players, or a request with the same `Idempotency-Key` is still in progress.",
            body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The request body is larger than `max_body_bytes` (64 KiB by default).",
            body = Problem, content_type = "application/problem+json"),
        RateLimited,
        (status = 422, description = "The `Idempotency-Key` was already used for a different request.",
            body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "`Game Lobby: Error saving the game. Please contact support.`",
            body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "The game server could not be reached, timed out, or answered without a `gameToken`; or `Game Lobby: The game server answered too late. Please try again.`",
            body = Problem, content_type = "application/problem+json"),
        NoGameServerUp,
    )
)]
async fn create_game(
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
    let private = create_options(&body)?;
    let region = region(&body, query.as_deref())?;
    let req = idempotency::Request {
        product: &product,
        player: &player,
        key,
        operation: "create_game",
        request: match &region {
            None => format!("private={private}"),
            Some(r) => format!("private={private} region={r}"),
        },
    };
    // The create runs in its own task: it finishes even if the client goes away, so nothing
    // is left half done.
    once(&state, req, move |lobby, product, player| async move {
        let game = lobby
            .create_game(&product, &player, private, region.as_deref())
            .await?;
        Ok(FullGame::of(game, &product))
    })
    .await
}

/// Join a game.
///
/// Takes a free seat in a game in state `creator_joined`. Joining a game you already sit in
/// answers the game as it is.
#[utoipa::path(
    post,
    path = "/game_lobby/{product_id}/join_game/{game_id}",
    tag = "lobby",
    params(
        ("product_id" = String, Path, description = "Product (game title) id.", example = "exrps"),
        ("game_id" = String, Path, description = "Game id: 32 hexadecimal characters.", example = "3f0c9d5e2b7a4c1d9e8f7a6b5c4d3e2f"),
    ),
    security(("player_token" = [])),
    responses(
        (status = 200, description = "The game with the caller in `players`, and `target_game_server`.", body = FullGame),
        (status = 400, description = "`Game Lobby: Invalid product ID.`, a malformed game id, \
            `Unable to join game - invalid state: <state>. Required state: creator_joined`, \
            `Unable to join game on target game server.` or `GameLobby: Cannot join game - it is no longer available`",
            body = Problem, content_type = "application/problem+json"),
        Unauthorized,
        (status = 404, description = "`Game Lobby: Unable to join game - game not found. Game ID: \"<game_id>\", Product ID: <product_id>.`",
            body = Problem, content_type = "application/problem+json"),
        SeatTaken,
        (status = 413, description = "The request body is larger than `max_body_bytes` (64 KiB by default).",
            body = Problem, content_type = "application/problem+json"),
        RateLimited,
        JoinGameServerFault,
        Unavailable,
    )
)]
async fn join_game(
    State(state): State<AppState>,
    ProductRef(product): ProductRef,
    Caller(player): Caller,
    ClientIp(ip): ClientIp,
    LastSegment(segment): LastSegment,
) -> ApiResult<Json<FullGame>> {
    state.rate_limits.check(&player.user_id, ip)?;
    let game = GameRef::parse(&segment)?;
    let game = state.lobby.join_game(&product, &player, &game).await?;
    Ok(Json(FullGame::of(game, &product)))
}

/// List open games.
///
/// Games of the product that can be joined (state `creator_joined` with a free seat), oldest
/// in the lobby first. No authentication. An unknown product gives an empty list.
///
/// `settings.<key>=<value>` keeps only games whose settings hold that value (several filters:
/// all of them), e.g. `?settings.mode=ranked`. A value that reads as JSON is taken as JSON
/// (`settings.num_players=2` is the number 2, `settings.num_players="2"` the string); anything
/// else is a string. Private games are never listed.
#[utoipa::path(
    get,
    path = "/game_lobby/{product_id}/open_games",
    tag = "lobby",
    params(
        ("product_id" = String, Path, description = "Product (game title) id.", example = "exrps"),
        ("count" = Option<u32>, Query, description = "Games per page; default 10, at most 25.", example = 10),
        ("page" = Option<u32>, Query, description = "Zero-based page number.", example = 0),
        ("settings.mode" = Option<String>, Query, description = "A settings filter: any `settings.<key>=<value>` (at most 10), e.g. `settings.mode=ranked`."),
    ),
    responses(
        (status = 200, description = "A page of open games.", body = [PartialGame]),
        (status = 400, description = "`Invalid request - page size and entry count must be integers.`, a negative value, or a bad settings filter (empty or over-long key, over-long value, more than 10).",
            body = Problem, content_type = "application/problem+json"),
        Unavailable,
    )
)]
async fn open_games(
    State(state): State<AppState>,
    ProductSegment(product_id): ProductSegment,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let (page, filter) = list_query(query.as_deref())?;
    let body = list(&state, &product_id, page, &filter).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// A page of the open-games list as the answer's JSON array.
pub(super) async fn list(
    state: &AppState,
    product_id: &str,
    page: Page,
    filter: &SettingsFilter,
) -> ApiResult<String> {
    let listing = state.lobby.open_games(product_id, page, filter).await?;
    let source = match listing {
        Listing::Json(_) => "memory",
        _ => "database",
    };
    state
        .metrics
        .lobby_pages
        .get_or_create(&SourceLabels { source })
        .inc();
    let games: Vec<PartialGame> = match listing {
        Listing::Json(json) => return Ok(json),
        Listing::Games(product, games) => games
            .into_iter()
            .map(|g| PartialGame::of(g, &product))
            .collect(),
        Listing::UnknownProduct => Vec::new(),
    };
    serde_json::to_string(&games).map_err(|e| {
        tracing::error!(error = %e, "open games not serialised");
        ApiError::internal()
    })
}

/// The query of a list (or its live stream): `count`, `page` and `settings.<key>` filters.
pub(super) fn list_query(query: Option<&str>) -> ApiResult<(Page, SettingsFilter)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = (percent_decode(key, true), percent_decode(value, true));
        let key = String::from_utf8_lossy(&key).into_owned();
        let value = match String::from_utf8(value) {
            Ok(value) => value,
            // Paging values fail as any non-number does; a filter must say so.
            Err(_) if key.starts_with("settings.") => {
                return Err(ApiError::bad_request(format!(
                    "Invalid request - the settings filter `{key}` is not valid UTF-8."
                )));
            }
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        if key.starts_with("settings.") && key.contains('\u{FFFD}') {
            return Err(ApiError::bad_request(
                "Invalid request - a settings filter's key is not valid UTF-8.",
            ));
        }
        pairs.push((key, value));
    }
    // The last of a repeated parameter wins.
    let field = |name: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let page = Page {
        count: paging(field("count"))?,
        page: paging(field("page"))?,
        fresh: false,
    };
    let filter = SettingsFilter::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    Ok((page, filter))
}
