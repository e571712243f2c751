//! `GET /game_lobby/{product_id}/open_games/stream`: the live lobby as Server-Sent Events.

use std::convert::Infallible;

use axum::{
    extract::{FromRequestParts, Path, RawQuery, State},
    http::{HeaderValue, header, request::Parts},
    response::{
        IntoResponse, Response,
        sse::{KeepAlive, Sse},
    },
};
use futures::Stream;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    app::AppState,
    auth::{Player, ProductRef},
    error::{ApiError, ApiResult, Problem},
    live, lobby,
    model::PartialGame,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(open_games_stream))
}

/// The player of a live-lobby stream: the `Authorization` header, or else an `access_token`
/// query parameter, because a browser's `EventSource` cannot send headers. Accepted on this
/// route only: everywhere else a token in a URL is ignored.
pub struct StreamPlayer(pub Player);

impl FromRequestParts<AppState> for StreamPlayer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            return Player::from_request_parts(parts, state)
                .await
                .map(StreamPlayer);
        }
        let token = form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| format!("Bearer {v}"));
        let player = state.auth.verify(token.as_deref().map(str::as_bytes))?;
        tracing::Span::current().record("player", player.user_id.as_str());
        Ok(StreamPlayer(player))
    }
}

/// Live lobby (Server-Sent Events).
///
/// First a `snapshot` event with the current page of open games (as `open_games` answers it,
/// with the same `count`, `page` and `settings.<key>` parameters), then, as they happen on any
/// process, an event per change of the product's open games that match the filters:
/// `listed` and `changed` (data: the partial game; treat both as "insert or replace"), and
/// `unlisted` (data: `{"game_id": ...}`). Comments (`: heartbeat`) keep idle connections open
/// every `lobby_stream_heartbeat_ms` (15 s). A subscriber that falls too far behind, or that may
/// have missed changes, sees its stream end: reconnect (an `EventSource` does by itself) and
/// start again from the new snapshot.
///
/// Authentication: `Authorization: Bearer <jwt>`, or `?access_token=<jwt>` for `EventSource`,
/// which cannot send headers (accepted on this route only).
#[utoipa::path(
    get,
    path = "/game_lobby/{product_id}/open_games/stream",
    tag = "lobby",
    params(
        ("product_id" = String, Path, description = "Product (game title) id.", example = "exrps"),
        ("access_token" = Option<String>, Query, description = "The player's token, when the `Authorization` header cannot be sent (`EventSource`)."),
        ("count" = Option<u32>, Query, description = "Games in the snapshot; default 10, at most 25.", example = 10),
        ("page" = Option<u32>, Query, description = "Zero-based page of the snapshot.", example = 0),
        ("settings.mode" = Option<String>, Query, description = "Settings filters, as for `open_games`: any `settings.<key>=<value>`, e.g. `settings.mode=ranked`."),
    ),
    security(("player_token" = [])),
    responses(
        (status = 200, description = "`text/event-stream`: `snapshot` (a list of partial games), then `listed`, `changed` (a partial game) and `unlisted` (`{\"game_id\"}`) events.",
            content_type = "text/event-stream", body = [PartialGame],
            example = "event: snapshot\ndata: []\nretry: 2000\n\nevent: listed\ndata: {\"game_id\":\"3f0c9d5e2b7a4c1d9e8f7a6b5c4d3e2f\",\"product_id\":\"exrps\",\"game_server_url\":\"http://game-rps:8080\",\"creator_id\":\"alice\",\"creator_name\":\"Alice\",\"players\":[\"alice\"],\"settings\":{\"num_players\":2},\"free_seats\":1,\"listed_at\":\"2026-11-23T18:52:07.123456Z\"}\n\n: heartbeat\n\nevent: unlisted\ndata: {\"game_id\":\"3f0c9d5e2b7a4c1d9e8f7a6b5c4d3e2f\"}\n\n"),
        (status = 400, description = "`Game Lobby: Invalid product ID.`, or bad `count`, `page` or settings filters (as for `open_games`).",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database or the change listener is unavailable; retry shortly.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
async fn open_games_stream(
    State(state): State<AppState>,
    ProductRef(product): ProductRef,
    StreamPlayer(_player): StreamPlayer,
    Path(_product_id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    tracing::Span::current().record("product", product.product_id.as_str());
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let field = |name: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let filter = lobby::settings_filter(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    // Subscribe first, then read the page: no change falls between the two (one may show twice,
    // which `listed`/`changed` being "insert or replace" absorbs).
    let changes = state.lobby.subscribe().await?;
    let page = lobby::open_games(
        &state,
        &product.product_id,
        field("count"),
        field("page"),
        &filter,
    )
    .await?;
    let snapshot = serde_json::to_string(&page).map_err(|e| {
        tracing::error!(error = %e, "snapshot not serialised");
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "Game Lobby: Internal error. Please contact support.",
        )
    })?;
    let events = live::events(
        snapshot,
        changes,
        product.product_id.clone(),
        filter,
        state.lobby.closed(),
    );
    Ok(sse(events, state.settings.lobby_stream_heartbeat))
}

fn sse(
    events: impl Stream<Item = Result<axum::response::sse::Event, Infallible>> + Send + 'static,
    heartbeat: std::time::Duration,
) -> Response {
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat"))
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx would otherwise buffer the stream
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
