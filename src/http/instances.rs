//! The fleet's routes (docs/fleets.md): game-server instances register, heartbeat, drain and
//! leave; anyone holding the product's `event_key` lists them.

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    error::{ApiError, ApiResult, Problem, Unavailable},
    extract::{LastSegment, ProductSegment, authorization, game_server_key},
    state::AppState,
};
use crate::{
    domain::fleet::{Instance, InstanceSpec, InstanceState},
    lobby::Registered,
};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register, list))
        .routes(routes!(heartbeat))
        .routes(routes!(drain))
        .routes(routes!(remove))
}

/// The product of a fleet route, for a caller that presents its `event_key`. A request without
/// `Authorization` is a 401 before anything else, whatever the product.
fn fleet_caller(
    state: &AppState,
    segment: &str,
    headers: &HeaderMap,
) -> ApiResult<std::sync::Arc<crate::domain::Product>> {
    if !matches!(authorization(headers), Ok(Some(_))) {
        return Err(ApiError::unauthorized(
            "Game server not authorized: send `Authorization: Bearer <event_key>`.",
        ));
    }
    let product = state
        .lobby
        .product(segment)
        .ok_or_else(ApiError::invalid_product)?;
    tracing::Span::current().record("product", product.product_id.as_str());
    game_server_key(&product, headers)?;
    Ok(product)
}

/// An instance, as it registers itself.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "rps-1", "url": "http://10.0.0.7:8080", "socket_url": "rps-1.example.com:8085", "capacity": 100, "region": "eu"}))]
struct Registration {
    /// The instance's id, unique within the product: 1 to 100 letters, digits, `-`, `_`, `.`.
    id: String,
    /// Base URL of its four calls (`create_game`, `join_game`, `remove_game`, `remove_player`).
    url: String,
    /// Where players connect; answers show it as `target_game_server`.
    socket_url: String,
    /// Games it takes at once, 1 to 1,000,000.
    capacity: u32,
    /// Optional region label a create or quick match may ask for.
    region: Option<String>,
}

/// The instance's state: `active` takes new games, `draining` keeps its games and takes no new
/// ones, `lost` missed its heartbeats or left (its games ended).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum StateView {
    Active,
    Draining,
    Lost,
}

/// An instance of the product's fleet.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "rps-1", "url": "http://10.0.0.7:8080", "socket_url": "rps-1.example.com:8085", "capacity": 100, "region": "eu", "state": "active", "healthy": true, "static": false, "games": 12, "last_heartbeat": "2026-12-02T13:05:07.123Z", "registered_at": "2026-12-02T12:00:00Z"}))]
struct InstanceView {
    id: String,
    url: String,
    socket_url: String,
    /// `null`: no limit (a product's single `game_server_url`).
    capacity: Option<i32>,
    region: Option<String>,
    state: StateView,
    /// Calls to it are going through (its circuit breaker, in the answering process, is closed).
    healthy: bool,
    /// From the matchmaker's configuration (needs no heartbeat, cannot be changed over HTTP).
    #[serde(rename = "static")]
    configured: bool,
    /// Games it holds that have not ended, creates in flight included.
    games: i64,
    last_heartbeat: DateTime<Utc>,
    registered_at: DateTime<Utc>,
}

impl From<Instance> for InstanceView {
    fn from(i: Instance) -> Self {
        Self {
            id: i.id,
            url: i.url,
            socket_url: i.socket_url,
            capacity: i.capacity,
            region: i.region,
            state: match i.state {
                InstanceState::Active => StateView::Active,
                InstanceState::Draining => StateView::Draining,
                InstanceState::Lost => StateView::Lost,
            },
            healthy: i.healthy,
            configured: i.configured,
            games: i.games,
            last_heartbeat: i.heartbeat_at,
            registered_at: i.registered_at,
        }
    }
}

/// Register an instance.
///
/// Registers a game-server instance of the product, or registers it again with a new address,
/// capacity or region (which also ends a drain). It takes new games at once, and is lost once
/// it goes `instance_timeout_ms` without a heartbeat. An instance that was lost starts empty.
#[utoipa::path(
    post,
    path = "/game_servers/{product_id}/instances",
    tag = "game servers",
    params(("product_id" = String, Path, description = "Product (game title) id.", example = "exrps")),
    request_body = Registration,
    security(("event_key" = [])),
    responses(
        (status = 201, description = "Registered.", body = InstanceView),
        (status = 200, description = "Registered again.", body = InstanceView),
        (status = 400, description = "Unknown product, or a body that is not a registration (the message names the field).",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong `event_key`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The product has no `event_key`.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The id is a configured instance's.", body = Problem, content_type = "application/problem+json"),
        Unavailable,
    )
)]
async fn register(
    State(state): State<AppState>,
    ProductSegment(segment): ProductSegment,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let product = fleet_caller(&state, &segment, &headers)?;
    let r: Registration = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("Invalid instance: {e}.")))?;
    let spec = InstanceSpec {
        id: r.id,
        url: r.url.trim_end_matches('/').to_string(),
        socket_url: r.socket_url,
        capacity: Some(r.capacity),
        region: r.region,
    };
    let (instance, registered) = state.lobby.register_instance(&product, spec).await?;
    let status = match registered {
        Registered::New => StatusCode::CREATED,
        Registered::Again => StatusCode::OK,
    };
    Ok((status, Json(InstanceView::from(instance))).into_response())
}

/// List the instances.
///
/// The product's instances: configured and registered, with their state, health and games
/// (an instance lost within the last hour is still listed, as `lost`).
#[utoipa::path(
    get,
    path = "/game_servers/{product_id}/instances",
    tag = "game servers",
    params(("product_id" = String, Path, description = "Product (game title) id.", example = "exrps")),
    security(("event_key" = [])),
    responses(
        (status = 200, description = "The instances, by id.", body = Vec<InstanceView>),
        (status = 400, description = "Unknown product.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong `event_key`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The product has no `event_key`.", body = Problem, content_type = "application/problem+json"),
        Unavailable,
    )
)]
async fn list(
    State(state): State<AppState>,
    ProductSegment(segment): ProductSegment,
    headers: HeaderMap,
) -> ApiResult<Json<Vec<InstanceView>>> {
    let product = fleet_caller(&state, &segment, &headers)?;
    let instances = state.lobby.instances(&product).await?;
    Ok(Json(instances.into_iter().map(Into::into).collect()))
}

/// Heartbeat.
///
/// Keeps a registered instance from being declared lost. 404 once it was lost: register again.
#[utoipa::path(
    post,
    path = "/game_servers/{product_id}/instances/{id}/heartbeat",
    tag = "game servers",
    params(
        ("product_id" = String, Path, description = "Product (game title) id.", example = "exrps"),
        ("id" = String, Path, description = "The instance's id.", example = "rps-1"),
    ),
    security(("event_key" = [])),
    responses(
        (status = 200, description = "The instance.", body = InstanceView),
        (status = 400, description = "Unknown product.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong `event_key`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The product has no `event_key`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not registered, or lost: register again.", body = Problem, content_type = "application/problem+json"),
        Unavailable,
    )
)]
async fn heartbeat(
    State(state): State<AppState>,
    ProductSegment(segment): ProductSegment,
    LastSegment(id): LastSegment,
    headers: HeaderMap,
) -> ApiResult<Json<InstanceView>> {
    let product = fleet_caller(&state, &segment, &headers)?;
    Ok(Json(state.lobby.heartbeat(&product, &id).await?.into()))
}

/// Drain an instance.
///
/// The instance gets no new games; its games play on. It can leave (`DELETE`) once `games` is
/// 0. Registering again ends the drain.
#[utoipa::path(
    post,
    path = "/game_servers/{product_id}/instances/{id}/drain",
    tag = "game servers",
    params(
        ("product_id" = String, Path, description = "Product (game title) id.", example = "exrps"),
        ("id" = String, Path, description = "The instance's id.", example = "rps-1"),
    ),
    security(("event_key" = [])),
    responses(
        (status = 200, description = "The instance, `draining`.", body = InstanceView),
        (status = 400, description = "Unknown product.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong `event_key`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The product has no `event_key`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not registered, or lost.", body = Problem, content_type = "application/problem+json"),
        Unavailable,
    )
)]
async fn drain(
    State(state): State<AppState>,
    ProductSegment(segment): ProductSegment,
    LastSegment(id): LastSegment,
    headers: HeaderMap,
) -> ApiResult<Json<InstanceView>> {
    let product = fleet_caller(&state, &segment, &headers)?;
    Ok(Json(state.lobby.drain(&product, &id).await?.into()))
}

/// Remove an instance.
///
/// The instance leaves the fleet. Games it still holds end as if it were lost, and nothing is
/// sent to it any more.
#[utoipa::path(
    delete,
    path = "/game_servers/{product_id}/instances/{id}",
    tag = "game servers",
    params(
        ("product_id" = String, Path, description = "Product (game title) id.", example = "exrps"),
        ("id" = String, Path, description = "The instance's id.", example = "rps-1"),
    ),
    security(("event_key" = [])),
    responses(
        (status = 204, description = "Removed."),
        (status = 400, description = "Unknown product.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong `event_key`.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The product has no `event_key`.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not registered, or lost already.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A configured instance: change the configuration instead.", body = Problem, content_type = "application/problem+json"),
        Unavailable,
    )
)]
async fn remove(
    State(state): State<AppState>,
    ProductSegment(segment): ProductSegment,
    LastSegment(id): LastSegment,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let product = fleet_caller(&state, &segment, &headers)?;
    state.lobby.remove_instance(&product, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
