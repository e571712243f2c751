//! The lobby page at `/`: a plain HTML, CSS and JavaScript reference client of the lobby API,
//! embedded in the binary (no build step). Not part of the API document.

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderValue, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};

use super::state::AppState;
use crate::auth::mint_token;

const INDEX: &str = include_str!("page_assets/index.html");
const SCRIPT: &str = include_str!("page_assets/app.js");
const STYLE: &str = include_str!("page_assets/app.css");

/// Lifetime of the sample players' tokens.
const SAMPLE_TOKEN_TTL_SECS: u64 = 12 * 3600;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/lobby/app.js", get(script))
        .route("/lobby/app.css", get(style))
        .route("/lobby/config.json", get(config))
}

async fn index() -> Html<&'static str> {
    Html(INDEX)
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

/// The products, and tokens for the configured sample players (only `make run` configures any:
/// whoever loads the page may act as them).
async fn config(State(state): State<AppState>) -> Json<Value> {
    let products: Vec<Value> = state
        .lobby
        .products()
        .iter()
        .map(|p| json!({"product_id": p.product_id, "num_players": p.num_players}))
        .collect();
    let samples: Vec<Value> = state
        .config
        .sample_players
        .iter()
        .map(|s| {
            json!({
                "user_id": s.user_id,
                "username": s.username,
                "token": mint_token(&state.config.secret_key, &s.user_id, &s.username, SAMPLE_TOKEN_TTL_SECS),
            })
        })
        .collect();
    Json(json!({"products": products, "sample_players": samples}))
}
