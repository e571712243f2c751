//! Liveness and readiness for orchestrators and load balancers.

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    app::{AppState, MIGRATOR},
    error::{Problem, problem},
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
        Ok(_) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Database is not migrated: run `matchmaker migrate` or `sqlx migrate run`.",
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            problem(StatusCode::SERVICE_UNAVAILABLE, "Database unreachable.")
        }
    }
}
