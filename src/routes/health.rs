//! Liveness and readiness for orchestrators and load balancers.

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    app::{AppState, MIGRATOR},
    error::{Problem, problem},
    store,
};

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
    match store::games::count_by_state(&state.db).await {
        Ok(counts) => state.metrics.set_games(
            state
                .settings
                .products
                .iter()
                .map(|p| p.product_id.as_str()),
            &counts,
        ),
        Err(e) => {
            // Better no series than stale ones.
            state.metrics.games.clear();
            tracing::warn!(error = %e, "metrics: games not counted");
        }
    }
    match state.db.acquire().await {
        Ok(mut conn) => match store::outbox::backlog(&mut conn).await {
            Ok((pending, oldest)) => {
                state.metrics.outbox_pending.set(pending);
                state.metrics.outbox_oldest_seconds.set(oldest);
            }
            Err(e) => tracing::warn!(error = %e, "metrics: outbox not measured"),
        },
        Err(e) => tracing::warn!(error = %e, "metrics: outbox not measured"),
    }
    state
        .metrics
        .db_pool_connections
        .set(i64::from(state.db.size()));
    state.metrics.db_pool_idle.set(state.db.num_idle() as i64);
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
    let expected = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let applied = sqlx::query_scalar!("select max(version) from _sqlx_migrations where success")
        .fetch_one(&state.db)
        .await;
    match applied {
        Ok(Some(v)) if v >= expected => Json(Health { status: "ready" }).into_response(),
        Ok(_) => not_migrated(),
        // undefined_table: no `_sqlx_migrations` yet
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => not_migrated(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            problem(StatusCode::SERVICE_UNAVAILABLE, "Database unreachable.")
        }
    }
}

fn not_migrated() -> axum::response::Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "Database is not migrated: run `matchmaker migrate` or `sqlx migrate run`.",
    )
}
