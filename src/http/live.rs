//! `GET /game_lobby/{product_id}/open_games/stream`: the live lobby as Server-Sent Events.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::{RawQuery, State},
    http::{HeaderValue, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::{Stream, StreamExt};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    dto::PartialGame,
    error::{ApiResult, Problem},
    extract::{ProductRef, StreamCaller},
    lobby::{list, list_query},
    state::AppState,
};
use crate::live;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(open_games_stream))
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
    StreamCaller(_player): StreamCaller,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let (mut page, filter) = list_query(query.as_deref())?;
    page.fresh = true;
    // Subscribe first, then read the page: no change falls between the two (one may show twice,
    // which `listed`/`changed` being "insert or replace" absorbs).
    let changes = state.hub.subscribe().await?;
    let snapshot = list(&state, &product.product_id, page, &filter).await?;
    let first = Event::default()
        .event("snapshot")
        .data(snapshot)
        .retry(Duration::from_secs(2));
    let rest = live::changes(
        changes,
        product.product_id.clone(),
        filter,
        state.hub.closed(),
    )
    .map(|change| {
        Event::default()
            .event(change.kind.as_str())
            .data(change.data.as_str())
    });
    let events = futures::stream::once(async move { first })
        .chain(rest)
        .map(Ok);
    Ok(sse(events, state.config.lobby_stream_heartbeat))
}

fn sse(
    events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
    heartbeat: Duration,
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
