//! `demo-game-server`: a small stand-in game server for trying the matchmaker and for tests.
//!
//! It answers the four calls of the game-server protocol (docs/api.md: `create_game`, `join_game`,
//! `remove_game`, `remove_player`) with games kept in memory, two seats each, and it "plays" the
//! players: `--connect-delay-ms` after a create or a join, the simulated player connects and the
//! server reports it to the matchmaker over HTTP (`POST /game_servers/{product_id}/events`,
//! §5), just as the rock-paper-scissors server does when real sockets connect.
//!
//! A small control API lets a person or a test drive the rest of a game's life:
//!
//! - `POST /control/{game_id}/disconnect/{user_id}`: that player leaves (`player_disconnect`; for
//!   the host the whole game goes, `game_removed`, as the real server does when its socket closes);
//! - `POST /control/{game_id}/finish`: the game is over and dropped (`game_removed`);
//! - `GET /control/games`: every game this server holds, as JSON;
//! - `GET /healthz`: the process is up;
//! - `GET /stats`: calls answered, time spent answering them and the process's CPU time, so a
//!   load test can tell the game server's share of the work from the matchmaker's.
//!
//! With `--fast` it is a stand-in for load tests: it answers every call at once, keeps no games
//! and reports nothing (the load generator plays the players and reports through the stream).
//!
//! With `--register` it is one instance of the product's fleet: it registers itself with the
//! matchmaker, heartbeats, and drains and deletes itself on shutdown (`fleet.rs`).

mod fleet;

use std::{
    collections::HashMap,
    net::SocketAddr,
    process::ExitCode,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use clap::Parser;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Seats per game; the creator takes the first.
const CAPACITY: usize = 2;
/// Attempts to deliver one event before giving up on it.
const REPORT_ATTEMPTS: u32 = 5;
/// Pause after the first failed attempt; doubled after each further one.
const REPORT_FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// A stand-in game server: answers the matchmaker's calls and reports simulated players.
#[derive(Parser)]
#[command(
    name = "demo-game-server",
    version,
    about = "A stand-in game server for trying the matchmaker: answers its calls, reports simulated players."
)]
struct Cli {
    /// Address to serve on.
    #[arg(long, env = "DEMO_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Base URL of the matchmaker that events are reported to.
    #[arg(
        long,
        env = "DEMO_MATCHMAKER_URL",
        default_value = "http://127.0.0.1:5050"
    )]
    matchmaker_url: reqwest::Url,
    /// Product id this server runs games for.
    #[arg(long, env = "DEMO_PRODUCT_ID", default_value = "exrps")]
    product_id: String,
    /// The product's `event_key` in the matchmaker's configuration (sent as a Bearer token).
    #[arg(
        long,
        env = "DEMO_EVENT_KEY",
        default_value = "demo-event-key",
        hide_env_values = true
    )]
    event_key: String,
    /// Milliseconds after a create or join before the simulated player connects.
    #[arg(long, env = "DEMO_CONNECT_DELAY_MS", default_value_t = 500)]
    connect_delay_ms: u64,
    /// Load-test mode: answer every call at once, keep no games, report no events.
    #[arg(long, env = "DEMO_FAST")]
    fast: bool,
    /// Register with the matchmaker as one instance of the product's fleet, heartbeat, and drain
    /// and delete the instance on shutdown. Off: the matchmaker's configuration names this server.
    // Boolish: DEMO_REGISTER=1 (as in docker-compose.yml) works; clap's default takes only true/false.
    #[arg(long, env = "DEMO_REGISTER", value_parser = clap::builder::BoolishValueParser::new())]
    register: bool,
    /// Instance id within the product's fleet [default: demo-{bind ip}-{bind port}].
    #[arg(long, env = "DEMO_INSTANCE_ID")]
    instance_id: Option<String>,
    /// Games this instance takes, as registered.
    #[arg(long, env = "DEMO_CAPACITY", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    capacity: u32,
    /// Region, as registered (optional).
    #[arg(long, env = "DEMO_REGION")]
    region: Option<String>,
    /// URL the matchmaker calls this instance at [default: http://{bind}].
    #[arg(long, env = "DEMO_PUBLIC_URL")]
    public_url: Option<reqwest::Url>,
    /// Address players connect to, as registered [default: the bind address].
    #[arg(long, env = "DEMO_SOCKET_URL")]
    socket_url: Option<String>,
    /// Milliseconds between heartbeats; keep it well below the matchmaker's instance timeout.
    #[arg(long, env = "DEMO_HEARTBEAT_MS", default_value_t = 3000, value_parser = clap::value_parser!(u64).range(100..))]
    heartbeat_ms: u64,
}

/// What `/stats` reports: the game-server calls answered and the time spent on them.
#[derive(Default)]
struct Stats {
    calls: AtomicU64,
    busy_ns: AtomicU64,
}

/// Counts and times the four game-server calls.
async fn count_call(
    State(stats): State<Arc<Stats>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let is_call = matches!(
        request.uri().path(),
        "/create_game" | "/join_game" | "/remove_game" | "/remove_player"
    );
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    if is_call {
        let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        stats.calls.fetch_add(1, Ordering::Relaxed);
        stats.busy_ns.fetch_add(ns, Ordering::Relaxed);
    }
    response
}

async fn stats_route(State(stats): State<Arc<Stats>>) -> Json<Value> {
    Json(json!({
        "calls": stats.calls.load(Ordering::Relaxed),
        "busy_us": stats.busy_ns.load(Ordering::Relaxed) / 1000,
        "cpu_secs": own_cpu_secs(),
    }))
}

/// This process's user + system CPU time in seconds (Linux; `null` elsewhere).
fn own_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ
}

/// `--fast`: create and join answer a fresh token, removals answer as for a known game.
async fn fast_seat(body: Bytes) -> Answer {
    seat_call(&body)?;
    Ok(Json(
        json!({ "gameToken": uuid::Uuid::new_v4().simple().to_string() }),
    ))
}

async fn fast_remove_game(body: Bytes) -> Answer {
    text(&object(&body)?, "gameId")?;
    Ok(Json(json!({ "gameRemoved": true })))
}

async fn fast_remove_player(body: Bytes) -> Answer {
    let body = object(&body)?;
    let (game_id, user_id) = (text(&body, "gameId")?, text(&body, "userId")?);
    Ok(Json(
        json!({ "playerRemoved": true, "gameId": game_id, "userId": user_id }),
    ))
}

fn fast_router() -> Router {
    Router::new()
        .route("/create_game", post(fast_seat))
        .route("/join_game", post(fast_seat))
        .route("/remove_game", post(fast_remove_game))
        .route("/remove_player", post(fast_remove_player))
        .route("/healthz", get(healthz))
        .fallback(no_route)
}

struct Player {
    user_id: String,
    username: String,
    /// Tells this seating apart from an earlier one of the same user (leave, then join again),
    /// so a pending connect of the old seating does nothing.
    seat: u64,
    connected: bool,
}

struct Game {
    token: String,
    /// Creation order, for listing.
    seq: u64,
    /// The host (creator) first, then joiners in join order.
    players: Vec<Player>,
}

impl Game {
    fn host_connected(&self) -> bool {
        self.players.first().is_some_and(|p| p.connected)
    }

    fn is_full(&self) -> bool {
        self.players.len() >= CAPACITY
    }

    /// The state as the matchmaker sees it from the events sent so far.
    fn state(&self) -> &'static str {
        if !self.host_connected() {
            "created"
        } else if self.is_full() && self.players.iter().all(|p| p.connected) {
            "all_players_joined"
        } else {
            "creator_joined"
        }
    }

    fn position(&self, user_id: &str) -> Option<usize> {
        self.players.iter().position(|p| p.user_id == user_id)
    }
}

#[derive(Clone)]
struct AppState(Arc<Inner>);

struct Inner {
    games: Mutex<HashMap<String, Game>>,
    counter: AtomicU64,
    product_id: String,
    connect_delay: Duration,
    /// Events for the matchmaker, delivered one after another in the order they were queued.
    reports: mpsc::UnboundedSender<Value>,
}

impl AppState {
    fn games(&self) -> MutexGuard<'_, HashMap<String, Game>> {
        // A panic while holding the lock cannot leave a game half-changed in a way that matters
        // for a demo; keep serving.
        self.0.games.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next(&self) -> u64 {
        self.0.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// Drops every game without reporting it: the matchmaker declared this instance lost and
    /// ended its games itself. Returns how many there were.
    fn forget_games(&self) -> usize {
        let mut games = self.games();
        let count = games.len();
        games.clear();
        count
    }

    /// Queues an event for the matchmaker. Call it while holding the games lock, so the queue's
    /// order is the order in which things happened.
    fn report(&self, mut event: Map<String, Value>) {
        event.insert("product_id".into(), self.0.product_id.clone().into());
        if self.0.reports.send(Value::Object(event)).is_err() {
            tracing::warn!("event reporter has stopped; event dropped");
        }
    }

    fn state_change(&self, game_id: &str, new_state: &str) {
        self.report(fields(&[
            ("type", "state_change"),
            ("game_id", game_id),
            ("new_state", new_state),
        ]));
    }

    /// The simulated player of `seat` connects `connect_delay` from now.
    fn schedule_connect(&self, game_id: String, seat: u64) {
        let state = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(state.0.connect_delay).await;
            state.connect(&game_id, seat);
        });
    }

    fn connect(&self, game_id: &str, seat: u64) {
        let mut games = self.games();
        let Some(game) = games.get_mut(game_id) else {
            tracing::debug!(game_id, "game went away before its player connected");
            return;
        };
        let before = game.state();
        let Some(player) = game.players.iter_mut().find(|p| p.seat == seat) else {
            tracing::debug!(game_id, "player left before connecting");
            return;
        };
        if player.connected {
            return;
        }
        player.connected = true;
        tracing::info!(game_id, user_id = %player.user_id, "player connected");
        let after = game.state();
        if before == "created" && after != "created" {
            self.state_change(game_id, "creator_joined");
        }
        if after == "all_players_joined" {
            self.state_change(game_id, "all_players_joined");
        }
    }
}

fn fields(pairs: &[(&str, &str)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), Value::from(*v)))
        .collect()
}

/// A refusal: answered as `{"message": ...}` with its status.
struct Refusal(StatusCode, String);

impl Refusal {
    fn bad_request(message: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, message.into())
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self(StatusCode::NOT_FOUND, message.into())
    }

    fn no_game(game_id: &str) -> Self {
        Self::not_found(format!("No game with id {game_id:?}."))
    }

    fn no_player(game_id: &str, user_id: &str) -> Self {
        Self::not_found(format!("Player {user_id:?} is not in game {game_id:?}."))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "message": self.1 }))).into_response()
    }
}

type Answer = Result<Json<Value>, Refusal>;

/// The body as a JSON object, or a 400 that says why not.
fn object(body: &Bytes) -> Result<Map<String, Value>, Refusal> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Refusal::bad_request("The body must be a JSON object.")),
        Err(e) => Err(Refusal::bad_request(format!("The body is not JSON: {e}."))),
    }
}

/// A field that must be a non-empty string.
fn text(body: &Map<String, Value>, name: &str) -> Result<String, Refusal> {
    match body.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(Refusal::bad_request(format!(
            "`{name}` must be a non-empty string."
        ))),
    }
}

/// The fields of `create_game` and `join_game`: `gameId`, `userId`, `username`.
fn seat_call(body: &Bytes) -> Result<(String, String, String), Refusal> {
    let body = object(body)?;
    Ok((
        text(&body, "gameId")?,
        text(&body, "userId")?,
        text(&body, "username")?,
    ))
}

async fn create_game(State(state): State<AppState>, body: Bytes) -> Answer {
    let (game_id, user_id, username) = seat_call(&body)?;
    let token = uuid::Uuid::new_v4().simple().to_string();
    let seat = state.next();
    {
        let mut games = state.games();
        if games.contains_key(&game_id) {
            return Err(Refusal::bad_request(format!(
                "A game with id {game_id:?} already exists."
            )));
        }
        tracing::info!(%game_id, %user_id, %username, "game created");
        games.insert(
            game_id.clone(),
            Game {
                token: token.clone(),
                seq: state.next(),
                players: vec![Player {
                    user_id,
                    username,
                    seat,
                    connected: false,
                }],
            },
        );
    }
    state.schedule_connect(game_id, seat);
    Ok(Json(json!({ "gameToken": token })))
}

async fn join_game(State(state): State<AppState>, body: Bytes) -> Answer {
    let (game_id, user_id, username) = seat_call(&body)?;
    let seat = state.next();
    let token = {
        let mut games = state.games();
        let Some(game) = games.get_mut(&game_id) else {
            return Err(Refusal::bad_request(format!(
                "Unable to join: no game with id {game_id:?}."
            )));
        };
        if game.position(&user_id).is_some() {
            // Already seated: answer as before, take no second seat.
            return Ok(Json(json!({ "gameToken": game.token })));
        }
        if game.is_full() {
            return Err(Refusal::bad_request(format!(
                "Unable to join: game {game_id:?} is full."
            )));
        }
        tracing::info!(%game_id, %user_id, %username, "player joined");
        game.players.push(Player {
            user_id,
            username,
            seat,
            connected: false,
        });
        game.token.clone()
    };
    state.schedule_connect(game_id, seat);
    Ok(Json(json!({ "gameToken": token })))
}

async fn remove_game(State(state): State<AppState>, body: Bytes) -> Answer {
    let game_id = text(&object(&body)?, "gameId")?;
    if state.games().remove(&game_id).is_none() {
        return Ok(Json(Value::Null));
    }
    tracing::info!(%game_id, "game removed by the matchmaker");
    Ok(Json(json!({ "gameRemoved": true })))
}

async fn remove_player(State(state): State<AppState>, body: Bytes) -> Answer {
    let body = object(&body)?;
    let (game_id, user_id) = (text(&body, "gameId")?, text(&body, "userId")?);
    let mut games = state.games();
    let game = games
        .get_mut(&game_id)
        .ok_or_else(|| Refusal::no_game(&game_id))?;
    match game.position(&user_id) {
        None => Err(Refusal::no_player(&game_id, &user_id)),
        Some(0) => Err(Refusal::bad_request(
            "The host cannot be removed: remove the game instead.",
        )),
        Some(index) => {
            game.players.remove(index);
            tracing::info!(%game_id, %user_id, "player removed by the matchmaker");
            Ok(Json(
                json!({ "playerRemoved": true, "gameId": game_id, "userId": user_id }),
            ))
        }
    }
}

/// The player's socket closes: a joiner frees the seat, the host ends the game.
async fn control_disconnect(
    State(state): State<AppState>,
    Path((game_id, user_id)): Path<(String, String)>,
) -> Answer {
    let mut games = state.games();
    let game = games
        .get_mut(&game_id)
        .ok_or_else(|| Refusal::no_game(&game_id))?;
    match game.position(&user_id) {
        None => Err(Refusal::no_player(&game_id, &user_id)),
        Some(0) => {
            games.remove(&game_id);
            tracing::info!(%game_id, %user_id, "host disconnected; game removed");
            state.report(fields(&[("type", "game_removed"), ("game_id", &game_id)]));
            Ok(Json(
                json!({ "gameRemoved": true, "event": "game_removed" }),
            ))
        }
        Some(index) => {
            game.players.remove(index);
            tracing::info!(%game_id, %user_id, "player disconnected");
            state.report(fields(&[
                ("type", "player_disconnect"),
                ("game_id", &game_id),
                ("player_id", &user_id),
            ]));
            Ok(Json(
                json!({ "playerRemoved": true, "event": "player_disconnect" }),
            ))
        }
    }
}

/// The game is over: drop it and tell the matchmaker.
async fn control_finish(State(state): State<AppState>, Path(game_id): Path<String>) -> Answer {
    let mut games = state.games();
    if games.remove(&game_id).is_none() {
        return Err(Refusal::no_game(&game_id));
    }
    tracing::info!(%game_id, "game finished");
    state.report(fields(&[("type", "game_removed"), ("game_id", &game_id)]));
    Ok(Json(
        json!({ "gameRemoved": true, "event": "game_removed" }),
    ))
}

async fn control_games(State(state): State<AppState>) -> Json<Value> {
    let games = state.games();
    let mut list: Vec<(&String, &Game)> = games.iter().collect();
    list.sort_by_key(|(_, g)| g.seq);
    let list: Vec<Value> = list
        .into_iter()
        .map(|(id, g)| {
            let players: Vec<Value> = g
                .players
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    json!({
                        "userId": p.user_id,
                        "username": p.username,
                        "host": i == 0,
                        "connected": p.connected,
                    })
                })
                .collect();
            json!({
                "gameId": id,
                "gameToken": g.token,
                "state": g.state(),
                "capacity": CAPACITY,
                "players": players,
            })
        })
        .collect();
    Json(Value::Array(list))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn no_route() -> Refusal {
    Refusal::not_found("No such route.")
}

/// Delivers queued events one at a time, retrying transient failures with a short backoff.
async fn run_reporter(
    mut queue: mpsc::UnboundedReceiver<Value>,
    http: reqwest::Client,
    url: reqwest::Url,
    event_key: String,
) {
    while let Some(event) = queue.recv().await {
        deliver(&http, &url, &event_key, &event).await;
    }
}

async fn deliver(http: &reqwest::Client, url: &reqwest::Url, event_key: &str, event: &Value) {
    let kind = event.get("type").and_then(Value::as_str).unwrap_or("?");
    let game_id = event.get("game_id").and_then(Value::as_str).unwrap_or("?");
    let mut backoff = REPORT_FIRST_BACKOFF;
    for attempt in 1..=REPORT_ATTEMPTS {
        match http
            .post(url.clone())
            .bearer_auth(event_key)
            .json(event)
            .send()
            .await
        {
            Ok(response) if response.status().is_success() => {
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                let outcome = answer
                    .pointer("/results/0/outcome")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                if outcome == "applied" {
                    tracing::info!(kind, game_id, "event reported");
                } else {
                    tracing::warn!(kind, game_id, outcome, "event reported but not applied");
                }
                return;
            }
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                let body: String = body.chars().take(300).collect();
                if !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS) {
                    tracing::warn!(kind, game_id, %status, %body, "matchmaker refused the event; not retrying");
                    return;
                }
                tracing::warn!(kind, game_id, attempt, %status, %body, "matchmaker could not take the event");
            }
            Err(e) => {
                tracing::warn!(kind, game_id, attempt, error = %causes(&e), "could not reach the matchmaker");
            }
        }
        if attempt < REPORT_ATTEMPTS {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    tracing::warn!(
        kind,
        game_id,
        "gave up reporting the event after {REPORT_ATTEMPTS} attempts"
    );
}

/// An error with its causes, `outer: inner: ...` (reqwest's own text leaves them out).
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The base URL with `segments` appended (each percent-encoded), keeping any path prefix of the
/// base: `{matchmaker_url}/game_servers/{product_id}/events`.
fn api_url(base: &reqwest::Url, segments: &[&str]) -> Result<reqwest::Url, String> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| format!("{base} cannot be a base URL"))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/create_game", post(create_game))
        .route("/join_game", post(join_game))
        .route("/remove_game", post(remove_game))
        .route("/remove_player", post(remove_player))
        .route(
            "/control/{game_id}/disconnect/{user_id}",
            post(control_disconnect),
        )
        .route("/control/{game_id}/finish", post(control_finish))
        .route("/control/games", get(control_games))
        .route("/healthz", get(healthz))
        .fallback(no_route)
        .with_state(state)
}

/// `--register`: the instance as the options describe it, defaults from the bound address.
fn join_fleet(cli: &Cli, http: reqwest::Client, bound: SocketAddr) -> Result<fleet::Fleet, String> {
    let url = cli.public_url.as_ref().map_or_else(
        || format!("http://{bound}"),
        |u| u.as_str().trim_end_matches('/').to_string(),
    );
    if cli.public_url.is_none() && bound.ip().is_unspecified() {
        tracing::warn!(%url, "bound to every interface: the matchmaker cannot call this default URL; set --public-url");
    }
    let instance = fleet::Instance {
        id: cli
            .instance_id
            .clone()
            .unwrap_or_else(|| fleet::default_id(bound)),
        url,
        socket_url: cli.socket_url.clone().unwrap_or_else(|| bound.to_string()),
        capacity: cli.capacity,
        region: cli.region.clone(),
    };
    tracing::info!(
        instance = %instance.id,
        url = %instance.url,
        socket_url = %instance.socket_url,
        capacity = instance.capacity,
        region = instance.region.as_deref().unwrap_or("-"),
        heartbeat_ms = cli.heartbeat_ms,
        "joining the fleet of {}",
        cli.product_id
    );
    fleet::Fleet::new(
        http,
        &cli.matchmaker_url,
        &cli.product_id,
        cli.event_key.clone(),
        instance,
        Duration::from_millis(cli.heartbeat_ms),
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();

    let url = match api_url(
        &cli.matchmaker_url,
        &["game_servers", &cli.product_id, "events"],
    ) {
        Ok(url) => url,
        Err(e) => {
            eprintln!("demo-game-server: --matchmaker-url: {e}");
            return ExitCode::from(2);
        }
    };
    let http = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "could not build the HTTP client");
            return ExitCode::FAILURE;
        }
    };
    let (reports, queue) = mpsc::unbounded_channel();
    tokio::spawn(run_reporter(
        queue,
        http.clone(),
        url.clone(),
        cli.event_key.clone(),
    ));

    let state = AppState(Arc::new(Inner {
        games: Mutex::new(HashMap::new()),
        counter: AtomicU64::new(0),
        product_id: cli.product_id.clone(),
        connect_delay: Duration::from_millis(cli.connect_delay_ms),
        reports,
    }));

    let listener = match tokio::net::TcpListener::bind(cli.bind).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(bind = %cli.bind, error = %e, "could not listen");
            return ExitCode::FAILURE;
        }
    };
    let bound = listener.local_addr().map_or(cli.bind, |a| a);
    tracing::info!(
        bind = %bound,
        product_id = %cli.product_id,
        events = %url,
        connect_delay_ms = cli.connect_delay_ms,
        fast = cli.fast,
        "demo game server listening"
    );
    // Registration starts once the listener is up, so the matchmaker can call at once.
    let fleet = if cli.register {
        match join_fleet(&cli, http, bound) {
            Ok(fleet) => Some(Arc::new(fleet)),
            Err(e) => {
                eprintln!("demo-game-server: --matchmaker-url: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let stop_heartbeats = CancellationToken::new();
    let heartbeats = fleet.clone().map(|fleet| {
        let (stop, state) = (stop_heartbeats.clone(), state.clone());
        tokio::spawn(async move { fleet.run(stop, || state.forget_games()).await })
    });
    // On Ctrl-C / SIGTERM: stop heartbeating, drain and delete the instance while still serving
    // (the matchmaker may yet call), then stop serving.
    let shutdown = async move {
        matchmaker::startup::shutdown_signal().await;
        if let (Some(fleet), Some(heartbeats)) = (fleet, heartbeats) {
            stop_heartbeats.cancel();
            if let Err(e) = heartbeats.await {
                tracing::warn!(error = %e, "the heartbeat task failed");
            }
            fleet.leave().await;
        }
    };

    let stats = Arc::new(Stats::default());
    let app = if cli.fast {
        fast_router()
    } else {
        router(state)
    };
    let app = app
        .route("/stats", get(stats_route).with_state(stats.clone()))
        .layer(axum::middleware::from_fn_with_state(stats, count_call));
    match axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}
