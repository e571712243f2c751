//! Test harness: the service on a port-0 listener over a fresh database, and a stand-in game
//! server (a real HTTP server) that records every call and misbehaves on demand.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Json, Router, extract::Path, extract::State, http::StatusCode, response::IntoResponse};
use matchmaker::{
    auth::mint_token,
    config::{Overrides, Settings},
    startup::Application,
};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "test-secret";
pub const EVENT_KEY: &str = "test-event-key";

/// How the stand-in game server answers one call.
#[derive(Clone, Debug)]
pub enum Behaviour {
    Ok,
    /// Answer this status with `{"message": ...}`.
    Refuse(u16),
    /// Never answer (until the caller gives up).
    Hang,
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 JSON without `gameToken`.
    NoToken,
    /// Wait, then answer normally.
    Delay(Duration),
}

#[derive(Default)]
struct StubState {
    behaviour: HashMap<String, Behaviour>,
    calls: Vec<(String, Value)>,
}

#[derive(Clone)]
pub struct GameServerStub {
    pub url: String,
    state: Arc<Mutex<StubState>>,
}

impl GameServerStub {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(StubState::default()));
        let app = Router::new()
            .route("/{call}", axum::routing::post(stub_call))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    pub fn set(&self, call: &str, behaviour: Behaviour) {
        self.state
            .lock()
            .unwrap()
            .behaviour
            .insert(call.to_string(), behaviour);
    }

    /// Bodies of the calls received so far named `call`.
    pub fn calls(&self, call: &str) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|(c, _)| c == call)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

async fn stub_call(
    State(state): State<Arc<Mutex<StubState>>>,
    Path(call): Path<String>,
    Json(body): Json<Value>,
) -> axum::response::Response {
    let behaviour = {
        let mut s = state.lock().unwrap();
        s.calls.push((call.clone(), body.clone()));
        s.behaviour.get(&call).cloned().unwrap_or(Behaviour::Ok)
    };
    match behaviour {
        Behaviour::Ok => {}
        Behaviour::Refuse(status) => {
            let status = StatusCode::from_u16(status).unwrap();
            return (status, Json(json!({"message": "refused by the stub"}))).into_response();
        }
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Behaviour::Garbage => return (StatusCode::OK, "<html>oops</html>").into_response(),
        Behaviour::NoToken => return Json(json!({"ok": true})).into_response(),
        Behaviour::Delay(d) => tokio::time::sleep(d).await,
    }
    let answer = match call.as_str() {
        "create_game" | "join_game" => json!({"gameToken": "feedc0ffee"}),
        "remove_player" => json!({"playerRemoved": true}),
        _ => Value::Null,
    };
    Json(answer).into_response()
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub stub: GameServerStub,
    pub db: PgPool,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Settings for a test: product `exrps` (2 seats) and `quad` (4 seats) on `stub`.
pub fn settings(stub: &GameServerStub, extra: &str) -> Settings {
    let toml = format!(
        r#"
        game_server_timeout_ms = 500
        {extra}

        [[games]]
        product_id = "exrps"
        game_server_url = "{url}"
        game_socket_url = "rps.test:8085"
        settings = {{ num_players = 2 }}
        event_key = "{EVENT_KEY}"

        [[games]]
        product_id = "quad"
        game_server_url = "{url}"
        game_socket_url = "quad.test:9000"
        settings = {{ num_players = 4, mode = "ranked" }}
        event_key = "{EVENT_KEY}"

        [[games]]
        product_id = "closed"
        game_server_url = "{url}"
        game_socket_url = "closed.test:9000"
        "#,
        url = stub.url
    );
    let overrides = Overrides {
        database_url: Some("postgres://unused.invalid/db".into()),
        secret_key: Some(SECRET.into()),
        ..Default::default()
    };
    Settings::from_toml(&toml, &overrides).unwrap()
}

pub async fn spawn_app(db: PgPool) -> TestApp {
    let stub = GameServerStub::start().await;
    let settings = settings(&stub, "");
    spawn_with(db, stub, settings).await
}

pub async fn spawn_with(db: PgPool, stub: GameServerStub, settings: Settings) -> TestApp {
    matchmaker::telemetry::init(matchmaker::config::LogFormat::Text);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = Application::build(settings, db.clone(), listener).unwrap();
    let addr = app.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run_until(shutdown.clone()));
    TestApp {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        stub,
        db,
        shutdown,
        task: Some(task),
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

/// The URL of a test's database, for a `matchmaker` process of its own.
pub fn database_url(db: &PgPool) -> String {
    let o = db.connect_options();
    format!(
        "postgres://{}@{}:{}/{}",
        o.get_username(),
        o.get_host(),
        o.get_port(),
        o.get_database().unwrap_or("postgres")
    )
}

pub fn token(user: &str) -> String {
    mint_token(SECRET, user, &format!("{user}-name"), 3600)
}

impl TestApp {
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    pub async fn post(&self, path: &str, user: Option<&str>) -> reqwest::Response {
        let mut req = self.http.post(format!("{}{path}", self.base));
        if let Some(user) = user {
            req = req.bearer_auth(token(user));
        }
        req.send().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// GET with a player's token.
    pub async fn get_as(&self, path: &str, user: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token(user))
            .send()
            .await
            .unwrap()
    }

    pub async fn create(&self, product: &str, user: &str) -> Value {
        let res = self
            .post(&format!("/game_lobby/{product}/create_game"), Some(user))
            .await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    pub async fn join(&self, product: &str, game_id: &str, user: &str) -> reqwest::Response {
        self.post(
            &format!("/game_lobby/{product}/join_game/{game_id}"),
            Some(user),
        )
        .await
    }

    pub async fn events(&self, product: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/game_servers/{product}/events", self.base))
            .bearer_auth(EVENT_KEY)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn set_state(&self, product: &str, game_id: &str, state: &str) {
        let res = self
            .events(
                product,
                json!({"type": "state_change", "product_id": product, "game_id": game_id, "new_state": state}),
            )
            .await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["results"][0]["outcome"], "applied", "{body}");
    }

    /// A game of `product` created by `user` and open for joining.
    pub async fn open_game(&self, product: &str, user: &str) -> String {
        let game = self.create(product, user).await;
        let id = game["game_id"].as_str().unwrap().to_string();
        self.set_state(product, &id, "creator_joined").await;
        id
    }

    pub async fn open_ids(&self, product: &str, query: &str) -> Vec<String> {
        let res = self
            .get(&format!("/game_lobby/{product}/open_games{query}"))
            .await;
        assert_eq!(res.status(), 200);
        let games: Vec<Value> = res.json().await.unwrap();
        games
            .iter()
            .map(|g| g["game_id"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for TestApp {
    // Background tasks stop with the test, before its database is dropped.
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Status and problem `detail` of an error response.
pub async fn problem(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    assert_eq!(
        res.headers()["content-type"],
        "application/problem+json",
        "error bodies are problem documents"
    );
    let body: Value = res.json().await.unwrap();
    (
        status,
        body["detail"].as_str().unwrap_or_default().to_string(),
    )
}

/// Waits (up to 10 s) until `check` holds.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

/// A game's state as the database holds it (`None`: no such game).
pub async fn state_of(db: &PgPool, id: &str) -> Option<String> {
    let id = uuid::Uuid::parse_str(id).unwrap();
    sqlx::query_scalar!(
        r#"select state::text as "s!" from games where game_id = $1"#,
        id
    )
    .fetch_optional(db)
    .await
    .unwrap()
}
