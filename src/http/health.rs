//! Liveness and readiness for orchestrators and load balancers.

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    error::{Problem, problem},
    state::AppState,
};
use crate::lobby::ops::Readiness;

#[derive(Serialize, ToSchema)]
struct Health {
    /// `ok` or `ready`.
    status: &'static str,
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// Prometheus metrics (text exposition), every name prefixed `matchmaker_`.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics in the Prometheus/OpenMetrics text format.",
        body = String, content_type = "application/openmetrics-text")))]
async fn metrics(State(state): State<AppState>) -> axum::response::Response {
    // Database gauges are read now, so they match the database exactly; if it is down, the
    // rest is still served.
    let lobby = &state.lobby;
    match lobby.census().await {
        Ok(census) => {
            state
                .metrics
                .set_games(lobby.products().ids(), &census.games);
            if let Some((pending, oldest)) = census.outbox {
                state.metrics.outbox_pending.set(pending);
                state.metrics.outbox_oldest_seconds.set(oldest);
            }
        }
        Err(e) => {
            // Better no series than stale ones.
            state.metrics.games.clear();
            tracing::warn!(error = %e, "metrics: games not counted");
        }
    }
    match lobby.all_instances().await {
        Ok(instances) => state.metrics.set_instances(&instances),
        Err(e) => tracing::warn!(error = %e, "metrics: instances not read"),
    }
    let (open, idle) = lobby.pool_usage();
    state.metrics.db_pool_connections.set(i64::from(open));
    state.metrics.db_pool_idle.set(idle as i64);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is up.", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The database is reachable and every migration this build knows is applied.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready to serve.", body = Health),
        (status = 503, description = "Database unreachable or not migrated.", body = Problem,
            content_type = "application/problem+json")
    ))]
async fn readyz(State(state): State<AppState>) -> axum::response::Response {
    match state.lobby.readiness().await {
        Readiness::Ready => Json(Health { status: "ready" }).into_response(),
        Readiness::NotMigrated => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Database is not migrated: run `matchmaker migrate` or `sqlx migrate run`.",
        ),
        Readiness::Unreachable => problem(StatusCode::SERVICE_UNAVAILABLE, "Database unreachable."),
    }
}
