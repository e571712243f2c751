//! The HTTP surface, and the only module that knows axum and utoipa: every route is declared
//! together with its OpenAPI documentation (`utoipa-axum`), then served with Swagger UI.
//! Handlers turn requests into use-case calls and the lobby's answers and errors into responses
//! (docs/api.md).

mod dto;
pub mod error;
mod events;
mod extract;
mod games;
mod health;
mod instances;
mod live;
mod lobby;
mod page;
mod server;
mod state;

pub use dto::PartialGame;
pub use state::{AppState, HttpConfig, Parts};

/// Serves the API on `listener` until `shutdown` (see `server`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    header_read_timeout: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    server::serve(listener, router(state), header_read_timeout, shutdown).await;
}

use std::time::{Duration, Instant};

use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::Response,
};
use tower_http::{
    cors::{AllowOrigin, Any, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{Http, HttpAuthScheme, SecurityScheme},
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::metrics::{HttpLabels, RouteLabels};
use error::problem;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "matchmaker",
        description = "Lobby and matchmaking for multiplayer web games. Players list, create and \
            join games with the portal's token (`Authorization: Bearer <jwt>`); game servers \
            report what players do through `/game_servers/{product_id}/events` or a Redis stream.",
        license(name = "MIT")
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "lobby", description = "The game portal's lobby (compatible with the Varcade Games matchmaker)."),
        (name = "game servers", description = "Events reported by game servers, and the fleet of game-server instances each product's games are placed on."),
        (name = "operations", description = "Health and readiness.")
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut player = Http::new(HttpAuthScheme::Bearer);
        player.bearer_format = Some("JWT".into());
        player.description =
            Some("The portal's access token (HS256). `Token <jwt>` is accepted as well.".into());
        components.add_security_scheme("player_token", SecurityScheme::Http(player));
        let mut game_server = Http::new(HttpAuthScheme::Bearer);
        game_server.description = Some("The product's configured `event_key`.".into());
        components.add_security_scheme("event_key", SecurityScheme::Http(game_server));
    }
}

/// The API's routes and their OpenAPI document.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(lobby::routes())
        .merge(games::routes())
        .merge(live::routes())
        .merge(events::routes())
        .merge(instances::routes())
        .merge(health::routes())
        .split_for_parts()
}

/// The whole service: API, documentation, and the layers every request goes through.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = api();
    let cors = cors(&state.config.cors_origins);
    Router::new()
        .merge(SwaggerUi::new("/swagger-ui").url("/api-docs/openapi.json", openapi))
        .merge(api)
        .merge(page::routes())
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "No such route.") })
        .method_not_allowed_fallback(|| async {
            problem(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed on this route.",
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), limit_body))
        .layer(middleware::from_fn(errors_are_problems))
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(cors)
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let route = req
                        .extensions()
                        .get::<MatchedPath>()
                        .map(MatchedPath::as_str)
                        .unwrap_or("unmatched");
                    let request_id = req
                        .headers()
                        .get(&REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        route,
                        request_id,
                        product = tracing::field::Empty,
                        game_id = tracing::field::Empty,
                        player = tracing::field::Empty,
                    )
                })
                // `track` writes the one line per request.
                .on_response(())
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// Counts and times every request by route template (never the raw path: ids would explode
/// the series), and creates and joins by outcome.
async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let method = req.method().to_string();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let latency = started.elapsed();
    // One line per request, every field top-level (also in JSON logs).
    tracing::info!(
        target: "matchmaker::request",
        method = %method,
        route = %route,
        status,
        latency_ms = latency.as_secs_f64() * 1000.0,
        request_id = %request_id,
        "request"
    );
    let metrics = &state.metrics;
    metrics
        .http_duration
        .get_or_create(&RouteLabels {
            route: route.clone(),
        })
        .observe(latency.as_secs_f64());
    if route.ends_with("/create_game") {
        metrics.count_operation("create", status);
    } else if route.ends_with("/join_game/{game_id}") {
        metrics.count_operation("join", status);
    } else if route.ends_with("/quick_match") {
        metrics.count_operation("quick_match", status);
    } else if route.ends_with("/leave_game/{game_id}") {
        metrics.count_operation("leave", status);
    } else if route.ends_with("/join_by_code/{code}") {
        metrics.count_operation("join_by_code", status);
    }
    metrics
        .http_requests
        .get_or_create(&HttpLabels {
            route,
            method,
            status,
        })
        .inc();
    response
}

/// Refuses bodies over `max_body_bytes` with 413: at once when `Content-Length` says so, and
/// as a problem document when a handler's body extractor hits `DefaultBodyLimit`.
async fn limit_body(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = state.config.max_body_bytes;
    let too_large = || {
        problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body too large: the limit is {limit} bytes."),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let response = next.run(req).await;
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/problem+json");
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_problem {
        return too_large();
    }
    response
}

/// Makes every error answer a problem document, including those that do not come from our
/// handlers: axum's own rejections (plain text) and Swagger UI's empty 404s. A plain-text body
/// becomes the `detail`.
async fn errors_are_problems(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/problem+json");
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty() && !t.starts_with('<') && !t.starts_with('{'));
    let detail = text.unwrap_or_else(|| match status {
        StatusCode::NOT_FOUND => "No such route or file.".to_string(),
        other => other.canonical_reason().unwrap_or("Error").to_string(),
    });
    let mut problem = problem(status, detail);
    // Keep what the original said about retrying or allowed methods.
    for name in [header::RETRY_AFTER, header::ALLOW] {
        if let Some(v) = parts.headers.get(&name) {
            problem.headers_mut().insert(name, v.clone());
        }
    }
    problem
}

fn cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            REQUEST_ID,
        ])
        .expose_headers([REQUEST_ID, extract::REPLAYED])
        .max_age(Duration::from_secs(3600));
    if origins.is_empty() || origins.iter().any(|o| o == "*") {
        layer.allow_origin(Any)
    } else {
        // Validated at start-up, so every origin is a valid header value.
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        layer.allow_origin(AllowOrigin::list(list))
    }
}
