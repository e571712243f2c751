//! Game-server events over HTTP (the alternative to the Redis stream): the same fields, the same
//! code path, authorised by the product's `event_key`.

use axum::{Json, body::Bytes, extract::State, http::HeaderMap};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    error::{ApiError, ApiResult, Problem},
    extract::{ProductRef, game_server_key},
    state::AppState,
};
use crate::{
    events::{Event, Outcome, RawEvent},
    metrics::EventLabels,
};

/// Most events accepted in one request.
const MAX_EVENTS: usize = 1000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_events))
}

/// One event, as on the stream (docs/api.md, `POST /game_servers/{product_id}/events`). `product_id` may be left out: it defaults to the path's.
#[derive(ToSchema)]
#[schema(example = json!({"type": "state_change", "game_id": "3f0c9d5e2b7a4c1d9e8f7a6b5c4d3e2f", "new_state": "creator_joined"}))]
#[allow(dead_code)] // documentation only: events are read as flat maps of strings
struct EventIn {
    /// `state_change`, `player_disconnect`, `game_removed`; other types are accepted and ignored.
    #[schema(rename = "type")]
    kind: String,
    product_id: Option<String>,
    game_id: Option<String>,
    /// For `state_change`: `creator_joined`, `all_players_joined`, `in_progress` or `ended`.
    new_state: Option<String>,
    /// For `player_disconnect`.
    player_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct EventResult {
    /// Position of the event in the request.
    index: usize,
    outcome: Outcome,
    /// Why a malformed event was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"applied": 1, "results": [{"index": 0, "outcome": "applied"}]}))]
struct EventResults {
    /// How many events changed a game.
    applied: usize,
    /// One entry per event, in order.
    results: Vec<EventResult>,
}

/// Report game-server events.
///
/// One event object or a list of them. Each is applied (or skipped, with the reason) exactly
/// as if it had come through the Redis stream; all of one request are applied in one
/// transaction.
#[utoipa::path(
    post,
    path = "/game_servers/{product_id}/events",
    tag = "game servers",
    params(("product_id" = String, Path, description = "Product (game title) id.", example = "exrps")),
    request_body(content = Vec<EventIn>, description = "One event or a list of events."),
    security(("event_key" = [])),
    responses(
        (status = 200, description = "The outcome of each event.", body = EventResults),
        (status = 400, description = "Unknown product, or a body that is not an event or a list of events.",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong `event_key`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The product has no `event_key`: HTTP event intake is off for it.",
            body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable; retry shortly.",
            body = Problem, content_type = "application/problem+json"),
    )
)]
async fn post_events(
    State(state): State<AppState>,
    ProductRef(product): ProductRef,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<EventResults>> {
    game_server_key(&product, &headers)?;

    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("The body is not JSON: {e}.")))?;
    let items = match body {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        _ => {
            return Err(ApiError::bad_request(
                "The body must be an event object or a list of event objects.",
            ));
        }
    };
    if items.len() > MAX_EVENTS {
        return Err(ApiError::bad_request(format!(
            "At most {MAX_EVENTS} events per request."
        )));
    }

    let parsed: Vec<Result<Event, String>> = items
        .into_iter()
        .map(|item| flatten(item, &product.product_id).and_then(|raw| Event::parse(&raw)))
        .collect();
    let outcomes = state.events.apply_all(&parsed).await?;
    if outcomes.contains(&Outcome::Applied) {
        state.lobby.fence().await;
    }
    let results: Vec<EventResult> = parsed
        .into_iter()
        .zip(outcomes)
        .enumerate()
        .map(|(index, (parsed, outcome))| EventResult {
            index,
            outcome,
            detail: parsed.err(),
        })
        .collect();
    for r in &results {
        state
            .metrics
            .events
            .get_or_create(&EventLabels {
                intake: "http",
                outcome: r.outcome.as_str(),
            })
            .inc();
    }
    let applied = results
        .iter()
        .filter(|r| r.outcome == Outcome::Applied)
        .count();
    Ok(Json(EventResults { applied, results }))
}

/// A JSON event as the stream's flat string map; the path's product fills in a missing one.
fn flatten(item: Value, product_id: &str) -> Result<RawEvent, String> {
    let Value::Object(fields) = item else {
        return Err("an event must be a JSON object".into());
    };
    let mut raw = RawEvent::new();
    for (key, value) in fields {
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => continue,
            _ => return Err(format!("field `{key}` must be a string")),
        };
        raw.insert(key, text);
    }
    match raw.get("product_id") {
        None => {
            raw.insert("product_id".into(), product_id.into());
        }
        Some(p) if p != product_id => {
            return Err(format!(
                "`product_id` {p:?} does not match the path's {product_id:?}"
            ));
        }
        Some(_) => {}
    }
    Ok(raw)
}
