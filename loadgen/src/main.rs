//! `loadgen`: drives a running matchmaker with a fixed number of concurrent clients and reports
//! throughput, latency percentiles (HDR histograms) and answers by status, per scenario.
//!
//! It speaks only the public contract: the lobby routes (SPEC §1) and the Redis event stream
//! (SPEC §5), where it plays the game servers' part (`state_change creator_joined` when a
//! creator "connects", `game_removed` when a game ends). So it can be pointed at any
//! implementation of the contract, the old Python service included. Two optional extras are
//! read when present and skipped otherwise: the stand-in game server's `/stats` (its share of
//! the work) and the service's Prometheus `/metrics` (event counts, for the exactly-once check).
//!
//! Scenarios: `create`, `events`, `join`, `open`, `list`, `contention`, `mixed` (or `all`, in
//! that order: later ones reuse the games earlier ones made). See `--help`.

use std::{
    collections::{BTreeMap, VecDeque},
    fmt::Write as _,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use jsonwebtoken::{EncodingKey, Header};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::Serialize;
use serde_json::{Map, Value, json};

#[derive(Parser)]
#[command(
    name = "loadgen",
    version,
    about = "Load generator for the matchmaker's public API and Redis event stream."
)]
struct Cli {
    /// Scenarios to run, in this order (`all` = create events join open list contention mixed).
    #[arg(value_enum, required = true)]
    scenarios: Vec<Scenario>,
    /// Base URL of the matchmaker.
    #[arg(long, env = "LOADGEN_URL", default_value = "http://127.0.0.1:5050")]
    url: String,
    /// HS256 secret the matchmaker shares with the portal; player tokens are minted with it.
    #[arg(long, env = "LOADGEN_SECRET", hide_env_values = true)]
    secret: String,
    /// Redis URL (with database) of the game-event stream the matchmaker reads.
    #[arg(
        long,
        env = "LOADGEN_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/1"
    )]
    redis: String,
    /// Stream key.
    #[arg(long, default_value = "game_event_stream")]
    stream_key: String,
    /// Product the scenarios play.
    #[arg(long, default_value = "exrps")]
    product: String,
    /// Product of the `open` scenario (its lobby should hold nothing else; default: --product).
    #[arg(long)]
    open_product: Option<String>,
    /// Concurrent clients (closed loop: each sends its next request when the last one answered).
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Seconds each timed scenario runs.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop a timed scenario after this many operations (whichever comes first).
    #[arg(long)]
    requests: Option<u64>,
    /// Stream entries in the `events` burst (one `creator_joined` per created game).
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Games opened for `join` when earlier scenarios left too few (one joiner per free seat).
    #[arg(long, default_value_t = 10_000)]
    join_games: usize,
    /// Players joining the same game at once in `contention`.
    #[arg(long, default_value_t = 200)]
    contention_players: usize,
    /// Rounds of `contention`, each on a fresh game.
    #[arg(long, default_value_t = 5)]
    contention_rounds: usize,
    /// Milliseconds between two looks at the lobby in `open` (each look is a page request).
    #[arg(long, default_value_t = 5)]
    poll_ms: u64,
    /// Games per open-games page (`count`).
    #[arg(long, default_value_t = 25)]
    page_size: usize,
    /// The `mixed` scenario's weights.
    #[arg(long, default_value = "list=85,create=5,open=5,join=5")]
    mix: String,
    /// Stand-in game server's base URL; its `/stats` gives its share of each scenario.
    #[arg(long)]
    game_server: Option<String>,
    /// Processes whose CPU use to report per scenario, as NAME=PID (repeatable).
    #[arg(long = "watch", value_parser = parse_watch)]
    watch: Vec<(String, u32)>,
    /// A scenario's ceiling, e.g. `join=3200.5` (pgbench TPS of the same SQL): adds the ratio
    /// and the issue's target for it to the summary (repeatable).
    #[arg(long = "ceiling", value_parser = parse_ceiling)]
    ceilings: Vec<(String, f64)>,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON to this file.
    #[arg(long)]
    json_out: Option<std::path::PathBuf>,
    /// Prefix of the generated player ids (distinct per run).
    #[arg(long)]
    run_id: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Create,
    Events,
    Join,
    Open,
    List,
    Contention,
    Mixed,
    All,
}

fn parse_watch(s: &str) -> Result<(String, u32), String> {
    let (name, pid) = s.split_once('=').ok_or("expected NAME=PID")?;
    Ok((
        name.to_string(),
        pid.parse().map_err(|_| format!("{pid:?} is not a pid"))?,
    ))
}

fn parse_ceiling(s: &str) -> Result<(String, f64), String> {
    let (name, tps) = s.split_once('=').ok_or("expected SCENARIO=TPS")?;
    Ok((
        name.to_string(),
        tps.parse()
            .map_err(|_| format!("{tps:?} is not a number"))?,
    ))
}

// ---------------------------------------------------------------------------------------------
// Measurements

/// Latencies (µs) and answers by status of one kind of operation.
struct Recorder {
    hist: Histogram<u64>,
    statuses: BTreeMap<String, u64>,
}

impl Recorder {
    fn new() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds"),
            statuses: BTreeMap::new(),
        }
    }

    fn record(&mut self, status: &str, took: Duration) {
        self.hist
            .saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
        *self.statuses.entry(status.to_string()).or_default() += 1;
    }

    fn merge(&mut self, other: &Recorder) {
        self.hist.add(&other.hist).expect("same histogram bounds");
        for (k, v) in &other.statuses {
            *self.statuses.entry(k.clone()).or_default() += v;
        }
    }

    fn count(&self) -> u64 {
        self.statuses.values().sum()
    }

    fn latency(&self) -> Latency {
        let ms = |v: u64| v as f64 / 1000.0;
        if self.hist.is_empty() {
            return Latency::default();
        }
        Latency {
            p50: ms(self.hist.value_at_quantile(0.50)),
            p90: ms(self.hist.value_at_quantile(0.90)),
            p99: ms(self.hist.value_at_quantile(0.99)),
            max: ms(self.hist.max()),
            mean: self.hist.mean() / 1000.0,
        }
    }
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
struct Latency {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

/// One operation's outcome, as a client loop records it.
struct Sample {
    kind: &'static str,
    status: String,
    took: Duration,
}

#[derive(Serialize)]
struct OpReport {
    requests: u64,
    latency_ms: Latency,
    statuses: BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct Report {
    scenario: &'static str,
    clients: usize,
    /// Operations measured (requests, or stream entries for `events`).
    requests: u64,
    seconds: f64,
    /// Operations per second.
    throughput: f64,
    latency_ms: Latency,
    statuses: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    by_operation: BTreeMap<&'static str, OpReport>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    notes: Map<String, Value>,
    /// The stand-in game server's work during the scenario.
    #[serde(skip_serializing_if = "Option::is_none")]
    game_server: Option<Value>,
    /// Average cores used during the scenario, per watched process and for the whole machine.
    cpu: BTreeMap<String, f64>,
}

impl Report {
    fn new(scenario: &'static str, clients: usize, seconds: f64) -> Self {
        Self {
            scenario,
            clients,
            requests: 0,
            seconds,
            throughput: 0.0,
            latency_ms: Latency::default(),
            statuses: BTreeMap::new(),
            by_operation: BTreeMap::new(),
            notes: Map::new(),
            game_server: None,
            cpu: BTreeMap::new(),
        }
    }

    fn from_recorders(
        scenario: &'static str,
        clients: usize,
        seconds: f64,
        recs: &BTreeMap<&'static str, Recorder>,
    ) -> Self {
        let mut all = Recorder::new();
        for r in recs.values() {
            all.merge(r);
        }
        let mut report = Self::new(scenario, clients, seconds);
        report.requests = all.count();
        report.throughput = all.count() as f64 / seconds.max(1e-9);
        report.latency_ms = all.latency();
        report.statuses = all.statuses;
        if recs.len() > 1 {
            report.by_operation = recs
                .iter()
                .map(|(k, r)| {
                    (
                        *k,
                        OpReport {
                            requests: r.count(),
                            latency_ms: r.latency(),
                            statuses: r.statuses.clone(),
                        },
                    )
                })
                .collect();
        }
        report
    }
}

/// CPU time of watched processes and of the machine, to report each one's share of a scenario.
struct CpuSnapshot {
    at: Instant,
    procs: Vec<(String, Option<f64>)>,
    machine: Option<(u64, u64)>,
}

fn ticks_per_sec() -> f64 {
    100.0 // USER_HZ on every Linux architecture we run on
}

/// utime + stime of a process, in seconds.
fn proc_cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_sec())
}

/// (busy, total) jiffies of the whole machine.
fn machine_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

impl CpuSnapshot {
    fn take(watch: &[(String, u32)]) -> Self {
        let mut procs: Vec<(String, Option<f64>)> = watch
            .iter()
            .map(|(name, pid)| (name.clone(), proc_cpu_secs(&pid.to_string())))
            .collect();
        procs.push(("loadgen".into(), proc_cpu_secs("self")));
        Self {
            at: Instant::now(),
            procs,
            machine: machine_jiffies(),
        }
    }

    /// Average cores used since `self`.
    fn since(&self, watch: &[(String, u32)]) -> BTreeMap<String, f64> {
        let now = Self::take(watch);
        let wall = now.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let mut out = BTreeMap::new();
        for ((name, before), (_, after)) in self.procs.iter().zip(&now.procs) {
            if let (Some(b), Some(a)) = (before, after) {
                out.insert(name.clone(), round2((a - b) / wall));
            }
        }
        if let (Some((b_busy, b_total)), Some((a_busy, a_total))) = (self.machine, now.machine) {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            let total = (a_total - b_total).max(1) as f64;
            out.insert(
                "machine".into(),
                round2((a_busy - b_busy) as f64 / total * cores),
            );
        }
        out
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

// ---------------------------------------------------------------------------------------------
// Talking to the service

struct Ctx {
    cli: Cli,
    run_id: String,
    http: reqwest::Client,
    redis: redis::aio::MultiplexedConnection,
    key: EncodingKey,
    users: AtomicU64,
    /// Games made by this run still in state `created` (on `--product`).
    created: Mutex<Vec<String>>,
    /// Games this run opened that should have one free seat (on `--product`).
    open: Mutex<VecDeque<String>>,
}

/// The answer's status as text ("200", "409"), or "error" when no answer came.
type Status = String;

#[derive(Serialize)]
struct Claims<'a> {
    user_id: &'a str,
    username: &'a str,
    exp: u64,
    token_type: &'static str,
}

enum StreamEvent<'a> {
    CreatorJoined(&'a str),
    GameRemoved(&'a str),
}

impl Ctx {
    fn base(&self) -> &str {
        self.cli.url.trim_end_matches('/')
    }

    /// A new player: (user id, bearer token).
    fn new_player(&self) -> (String, String) {
        let n = self.users.fetch_add(1, Ordering::Relaxed);
        let user_id = format!("{}-{n}", self.run_id);
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + 3600;
        let claims = Claims {
            user_id: &user_id,
            username: &user_id,
            exp,
            token_type: "access",
        };
        let token = jsonwebtoken::encode(&Header::default(), &claims, &self.key)
            .expect("HS256 signing cannot fail");
        (user_id, format!("Bearer {token}"))
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (Status, Vec<u8>) {
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16().to_string();
                match response.bytes().await {
                    Ok(body) => (status, body.to_vec()),
                    Err(_) => ("error".into(), Vec::new()),
                }
            }
            Err(e) if e.is_timeout() => ("timeout".into(), Vec::new()),
            Err(_) => ("error".into(), Vec::new()),
        }
    }

    /// POST create_game as a new player; the new game's id on 200.
    async fn create(&self, product: &str) -> (Status, Option<String>) {
        let (_, auth) = self.new_player();
        let request = self
            .http
            .post(format!("{}/game_lobby/{product}/create_game", self.base()))
            .header(AUTHORIZATION, auth)
            .header(CONTENT_TYPE, "application/json")
            .body(r#"{"game_type":0,"num_players":2}"#);
        let (status, body) = self.send(request).await;
        let id = (status == "200")
            .then(|| serde_json::from_slice::<Value>(&body).ok())
            .flatten()
            .and_then(|v| v.get("game_id")?.as_str().map(str::to_string));
        (status, id)
    }

    async fn join(&self, product: &str, game_id: &str, auth: &str) -> Status {
        let request = self
            .http
            .post(format!(
                "{}/game_lobby/{product}/join_game/{game_id}",
                self.base()
            ))
            .header(AUTHORIZATION, auth);
        self.send(request).await.0
    }

    /// One open-games page: the game ids on it, on 200.
    fn list_request(&self, product: &str, page: usize) -> reqwest::RequestBuilder {
        self.http.get(format!(
            "{}/game_lobby/{product}/open_games?count={}&page={page}",
            self.base(),
            self.cli.page_size
        ))
    }

    async fn list(&self, product: &str, page: usize) -> (Status, Option<Vec<String>>) {
        let (status, body) = self.send(self.list_request(product, page)).await;
        let ids = (status == "200")
            .then(|| serde_json::from_slice::<Vec<Value>>(&body).ok())
            .flatten()
            .map(|games| {
                games
                    .iter()
                    .filter_map(|g| g.get("game_id")?.as_str().map(str::to_string))
                    .collect()
            });
        (status, ids)
    }

    /// Appends entries to the stream, a pipeline of up to 1,000 at a time.
    async fn append(&self, product: &str, events: &[StreamEvent<'_>]) -> redis::RedisResult<()> {
        let mut conn = self.redis.clone();
        for chunk in events.chunks(1000) {
            let mut pipe = redis::pipe();
            for event in chunk {
                let cmd = pipe.cmd("XADD").arg(&self.cli.stream_key).arg("*");
                match event {
                    StreamEvent::CreatorJoined(id) => cmd
                        .arg("type")
                        .arg("state_change")
                        .arg("product_id")
                        .arg(product)
                        .arg("game_id")
                        .arg(*id)
                        .arg("new_state")
                        .arg("creator_joined"),
                    StreamEvent::GameRemoved(id) => cmd
                        .arg("type")
                        .arg("game_removed")
                        .arg("product_id")
                        .arg(product)
                        .arg("game_id")
                        .arg(*id),
                }
                .ignore();
            }
            pipe.query_async::<()>(&mut conn).await?;
        }
        Ok(())
    }

    /// The stand-in game server's counters, when it has them.
    async fn game_server_stats(&self) -> Option<Value> {
        let url = self.cli.game_server.as_deref()?;
        let response = self
            .http
            .get(format!("{}/stats", url.trim_end_matches('/')))
            .send()
            .await
            .ok()?;
        response.json::<Value>().await.ok()
    }

    /// `matchmaker_events_total{intake="stream",outcome=...}` from `/metrics`, when served.
    async fn stream_event_counts(&self) -> Option<BTreeMap<String, f64>> {
        let response = self
            .http
            .get(format!("{}/metrics", self.base()))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let text = response.text().await.ok()?;
        let mut out = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("matchmaker_events_total{") else {
                continue;
            };
            if !rest.contains("intake=\"stream\"") {
                continue;
            }
            let outcome = rest
                .split("outcome=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .unwrap_or("?");
            let value: f64 = rest
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            out.insert(outcome.to_string(), value);
        }
        Some(out)
    }

    // --- setup helpers (not timed) ---------------------------------------------------------

    /// Creates games until this run holds at least `n` in state `created`.
    async fn ensure_created(self: &Arc<Self>, n: usize) {
        let missing = n.saturating_sub(self.created.lock().unwrap().len());
        if missing == 0 {
            return;
        }
        let left = Arc::new(AtomicU64::new(missing as u64));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..self.cli.clients.min(missing) {
            let (ctx, left) = (self.clone(), left.clone());
            tasks.spawn(async move {
                let mut failures = 0;
                while left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(1))
                    .is_ok()
                {
                    match ctx.create(&ctx.cli.product).await {
                        (_, Some(id)) => ctx.created.lock().unwrap().push(id),
                        (status, None) => {
                            failures += 1;
                            left.fetch_add(1, Ordering::Relaxed);
                            if failures > 100 {
                                eprintln!("loadgen: setup: create keeps failing ({status})");
                                return;
                            }
                        }
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Opens `n` games (create, then `creator_joined` on the stream) and waits until they are
    /// joinable; they go to the open pool.
    async fn ensure_open(self: &Arc<Self>, n: usize) -> Result<(), String> {
        if n == 0 {
            return Ok(());
        }
        // One more than asked: the last one is probed with a join, which takes its seat.
        self.ensure_created(n + 1).await;
        let ids: Vec<String> = {
            let mut created = self.created.lock().unwrap();
            let at = created.len().saturating_sub(n + 1);
            created.split_off(at)
        };
        let events: Vec<StreamEvent> = ids
            .iter()
            .map(|id| StreamEvent::CreatorJoined(id))
            .collect();
        self.append(&self.cli.product, &events)
            .await
            .map_err(|e| format!("appending to the stream: {e}"))?;
        let last = ids.last().ok_or("no game could be created")?;
        self.wait_joinable(&self.cli.product, last, Duration::from_secs(120))
            .await?;
        self.open
            .lock()
            .unwrap()
            .extend(ids[..ids.len() - 1].iter().cloned());
        Ok(())
    }

    /// Joins `game_id` as a new player until the join succeeds: entries are applied in stream
    /// order, so once the last one has taken effect all before it have.
    async fn wait_joinable(
        &self,
        product: &str,
        game_id: &str,
        limit: Duration,
    ) -> Result<Duration, String> {
        let started = Instant::now();
        let (_, auth) = self.new_player();
        loop {
            let status = self.join(product, game_id, &auth).await;
            if status == "200" {
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                return Err(format!(
                    "game {game_id} not joinable after {limit:?} (last answer {status})"
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Opens games until page 0 of `--product`'s lobby is full.
    async fn ensure_listed(self: &Arc<Self>) -> Result<(), String> {
        let (status, ids) = self.list(&self.cli.product, 0).await;
        let have = ids.ok_or(format!("open_games answered {status}"))?.len();
        self.ensure_open(self.cli.page_size.saturating_sub(have))
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// Running clients

/// Runs `clients` closed loops of `op` for `--duration` (or `--requests` operations, or until
/// `op` has no more work), and returns each kind's recorder and the wall time.
async fn closed_loop<F, Fut>(
    ctx: &Arc<Ctx>,
    clients: usize,
    op: F,
) -> (BTreeMap<&'static str, Recorder>, f64)
where
    F: Fn(Arc<Ctx>, usize, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Option<Sample>> + Send + 'static,
{
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(ctx.cli.duration);
    let budget = ctx.cli.requests;
    let issued = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..clients {
        let (ctx, op, issued) = (ctx.clone(), op.clone(), issued.clone());
        tasks.spawn(async move {
            let mut recs: BTreeMap<&'static str, Recorder> = BTreeMap::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                if budget.is_some_and(|b| issued.fetch_add(1, Ordering::Relaxed) >= b) {
                    break;
                }
                let Some(sample) = op(ctx.clone(), client, n).await else {
                    break;
                };
                recs.entry(sample.kind)
                    .or_insert_with(Recorder::new)
                    .record(&sample.status, sample.took);
                n += 1;
            }
            recs
        });
    }
    let mut all: BTreeMap<&'static str, Recorder> = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        for (kind, rec) in done.expect("client task panicked") {
            all.entry(kind).or_insert_with(Recorder::new).merge(&rec);
        }
    }
    (all, started.elapsed().as_secs_f64())
}

async fn timed<Fut: Future<Output = (Status, Option<T>)>, T>(
    f: Fut,
) -> (Status, Option<T>, Duration) {
    let started = Instant::now();
    let (status, value) = f.await;
    (status, value, started.elapsed())
}

// ---------------------------------------------------------------------------------------------
// Scenarios

async fn scenario_create(ctx: &Arc<Ctx>) -> Result<Report, String> {
    let (recs, secs) = closed_loop(ctx, ctx.cli.clients, |ctx, _, _| async move {
        let (status, id, took) = timed(ctx.create(&ctx.cli.product)).await;
        if let Some(id) = id {
            ctx.created.lock().unwrap().push(id);
        }
        Some(Sample {
            kind: "create",
            status,
            took,
        })
    })
    .await;
    Ok(Report::from_recorders(
        "create",
        ctx.cli.clients,
        secs,
        &recs,
    ))
}

/// A burst of `creator_joined` entries for `--events` created games, appended at once; timed
/// until the last one has taken effect (its game can be joined).
async fn scenario_events(ctx: &Arc<Ctx>) -> Result<Report, String> {
    let n = ctx.cli.events;
    ctx.ensure_created(n).await;
    let ids: Vec<String> = {
        let mut created = ctx.created.lock().unwrap();
        let at = created.len().saturating_sub(n);
        created.split_off(at)
    };
    let n = ids.len();
    if n == 0 {
        return Err("no games to open".into());
    }
    let counts_before = ctx.stream_event_counts().await;
    let events: Vec<StreamEvent> = ids
        .iter()
        .map(|id| StreamEvent::CreatorJoined(id))
        .collect();

    let started = Instant::now();
    ctx.append(&ctx.cli.product, &events)
        .await
        .map_err(|e| format!("appending to the stream: {e}"))?;
    let appended = started.elapsed();
    ctx.wait_joinable(&ctx.cli.product, &ids[n - 1], Duration::from_secs(300))
        .await?;
    let secs = started.elapsed().as_secs_f64();

    let mut report = Report::new("events", 1, secs);
    report.requests = n as u64;
    report.throughput = n as f64 / secs;
    report.statuses.insert("applied".into(), n as u64);
    report
        .notes
        .insert("appended_in_ms".into(), json!(appended.as_millis() as u64));
    report.notes.insert(
        "applied_per_sec".into(),
        json!((n as f64 / secs).round() as u64),
    );
    // Exactly once: the service's own count of applied stream entries must have grown by
    // exactly n, with no entry refused as a repeat (an entry applied twice would be an
    // out-of-order state change the second time).
    if let (Some(before), Some(after)) = (counts_before, ctx.stream_event_counts().await) {
        let delta =
            |k: &str| after.get(k).copied().unwrap_or(0.0) - before.get(k).copied().unwrap_or(0.0);
        let applied = delta("applied");
        let repeats = delta("invalid_transition");
        report
            .notes
            .insert("metrics_applied".into(), json!(applied));
        report
            .notes
            .insert("metrics_invalid_transition".into(), json!(repeats));
        report.notes.insert(
            "exactly_once".into(),
            json!(applied as usize == n && repeats == 0.0),
        );
    }
    // The rest of the games are joinable now: the next scenario (join) checks each of them.
    ctx.open
        .lock()
        .unwrap()
        .extend(ids[..n - 1].iter().cloned());
    Ok(report)
}

/// Joins of opened games, one new player per free seat, until the games run out.
async fn scenario_join(ctx: &Arc<Ctx>) -> Result<Report, String> {
    let have = ctx.open.lock().unwrap().len();
    if have < ctx.cli.join_games {
        ctx.ensure_open(ctx.cli.join_games - have).await?;
    }
    let (recs, secs) = closed_loop(ctx, ctx.cli.clients, |ctx, _, _| async move {
        let game = ctx.open.lock().unwrap().pop_front()?;
        let (_, auth) = ctx.new_player();
        let started = Instant::now();
        let status = ctx.join(&ctx.cli.product, &game, &auth).await;
        Some(Sample {
            kind: "join",
            status,
            took: started.elapsed(),
        })
    })
    .await;
    let mut report = Report::from_recorders("join", ctx.cli.clients, secs, &recs);
    report
        .notes
        .insert("games_left".into(), json!(ctx.open.lock().unwrap().len()));
    Ok(report)
}

/// Create, then the creator "connects" (`creator_joined` on the stream); timed until the game
/// shows in the lobby. The game then ends (`game_removed`, not timed) so the lobby stays short.
async fn scenario_open(ctx: &Arc<Ctx>) -> Result<Report, String> {
    let (recs, secs) = closed_loop(ctx, ctx.cli.clients, |ctx, _, _| async move {
        let product = ctx
            .cli
            .open_product
            .clone()
            .unwrap_or_else(|| ctx.cli.product.clone());
        let started = Instant::now();
        let (status, id) = ctx.create(&product).await;
        let Some(id) = id else {
            return Some(Sample {
                kind: "open",
                status,
                took: started.elapsed(),
            });
        };
        if ctx
            .append(&product, &[StreamEvent::CreatorJoined(&id)])
            .await
            .is_err()
        {
            return Some(Sample {
                kind: "open",
                status: "redis-error".into(),
                took: started.elapsed(),
            });
        }
        let status = loop {
            if started.elapsed() > Duration::from_secs(30) {
                break "not-listed".to_string();
            }
            if listed(&ctx, &product, &id).await {
                break "listed".to_string();
            }
            tokio::time::sleep(Duration::from_millis(ctx.cli.poll_ms)).await;
        };
        let took = started.elapsed();
        let _ = ctx.append(&product, &[StreamEvent::GameRemoved(&id)]).await;
        Some(Sample {
            kind: "open",
            status,
            took,
        })
    })
    .await;
    Ok(Report::from_recorders("open", ctx.cli.clients, secs, &recs))
}

/// Whether `game_id` is on one of the lobby's pages.
async fn listed(ctx: &Ctx, product: &str, game_id: &str) -> bool {
    for page in 0.. {
        let (_, ids) = ctx.list(product, page).await;
        let Some(ids) = ids else { return false };
        if ids.iter().any(|id| id == game_id) {
            return true;
        }
        if ids.len() < ctx.cli.page_size {
            return false;
        }
    }
    false
}

/// Full open-games pages (`count=--page-size`, page 0).
async fn scenario_list(ctx: &Arc<Ctx>) -> Result<Report, String> {
    ctx.ensure_listed().await?;
    let (recs, secs) = closed_loop(ctx, ctx.cli.clients, |ctx, _, _| async move {
        let started = Instant::now();
        let (status, body) = ctx.send(ctx.list_request(&ctx.cli.product, 0)).await;
        let took = started.elapsed();
        // Count the games without parsing the page: this process shares the CPUs with the
        // service, and every microsecond spent here is one the service does not get.
        let games = body.windows(10).filter(|w| w == b"\"game_id\":").count();
        let status = if status == "200" && games < ctx.cli.page_size {
            format!("{status}-short")
        } else {
            status
        };
        Some(Sample {
            kind: "list",
            status,
            took,
        })
    })
    .await;
    Ok(Report::from_recorders("list", ctx.cli.clients, secs, &recs))
}

/// `--contention-players` players join one 2-seat game (one free seat) at the same instant.
async fn scenario_contention(ctx: &Arc<Ctx>) -> Result<Report, String> {
    let players = ctx.cli.contention_players;
    let rounds = ctx.cli.contention_rounds;
    let mut all = Recorder::new();
    let mut losers = Recorder::new();
    let mut winners = Vec::new();
    let mut spans = Vec::new();
    let started = Instant::now();
    for _ in 0..rounds {
        if ctx.open.lock().unwrap().is_empty() {
            ctx.ensure_open(1).await?;
        }
        let game = ctx.open.lock().unwrap().pop_front().ok_or("no open game")?;
        // One connection per player, opened beforehand, so the race is about the seat and not
        // about TCP handshakes.
        let warm: Vec<_> = (0..players)
            .map(|_| ctx.http.get(format!("{}/healthz", ctx.base())).send())
            .collect();
        for w in warm {
            let _ = w.await;
        }
        let barrier = Arc::new(tokio::sync::Barrier::new(players));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..players {
            let (ctx, barrier, game) = (ctx.clone(), barrier.clone(), game.clone());
            let (_, auth) = ctx.new_player();
            tasks.spawn(async move {
                barrier.wait().await;
                let started = Instant::now();
                let status = ctx.join(&ctx.cli.product, &game, &auth).await;
                (status, started, started.elapsed())
            });
        }
        let mut won = 0;
        let (mut first, mut last) = (None::<Instant>, None::<Instant>);
        while let Some(done) = tasks.join_next().await {
            let (status, at, took) = done.expect("player task panicked");
            first = Some(first.map_or(at, |f| f.min(at)));
            last = Some(last.map_or(at + took, |l| l.max(at + took)));
            if status == "200" {
                won += 1;
            } else {
                losers.record(&status, took);
            }
            all.record(&status, took);
        }
        winners.push(won);
        if let (Some(f), Some(l)) = (first, last) {
            spans.push(round2(l.duration_since(f).as_secs_f64() * 1000.0));
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let mut report = Report::new("contention", players, secs);
    report.requests = all.count();
    report.throughput = all.count() as f64 / secs;
    report.latency_ms = all.latency();
    report.statuses = all.statuses.clone();
    report.notes.insert("rounds".into(), json!(rounds));
    report
        .notes
        .insert("winners_per_round".into(), json!(winners));
    report
        .notes
        .insert("losers_latency_ms".into(), json!(losers.latency()));
    report.notes.insert("round_span_ms".into(), json!(spans));
    report.notes.insert(
        "exactly_one_winner".into(),
        json!(winners.iter().all(|w| *w == 1)),
    );
    Ok(report)
}

/// A portal-like mix: mostly lobby pages, some creates, opens (create + `creator_joined`,
/// not waited for) and joins.
async fn scenario_mixed(ctx: &Arc<Ctx>) -> Result<Report, String> {
    let weights = parse_mix(&ctx.cli.mix)?;
    ctx.ensure_listed().await?;
    let join_share = weights
        .iter()
        .find(|(k, _)| *k == "join")
        .map_or(0, |(_, w)| *w) as f64
        / weights.iter().map(|(_, w)| *w).sum::<u32>() as f64;
    // Enough open games for the joins of a whole run at a generous rate.
    let wanted = (join_share * 3000.0 * ctx.cli.duration) as usize;
    let have = ctx.open.lock().unwrap().len();
    if have < wanted {
        ctx.ensure_open(wanted - have).await?;
    }
    let weights = Arc::new(weights);
    let (recs, secs) = closed_loop(ctx, ctx.cli.clients, move |ctx, client, n| {
        let weights = weights.clone();
        async move {
            let kind = pick(&weights, client as u64, n);
            let started = Instant::now();
            let status = match kind {
                "create" => ctx.create(&ctx.cli.product).await.0,
                "open" => {
                    let (status, id) = ctx.create(&ctx.cli.product).await;
                    if let Some(id) = id {
                        if ctx
                            .append(&ctx.cli.product, &[StreamEvent::CreatorJoined(&id)])
                            .await
                            .is_err()
                        {
                            return Some(Sample {
                                kind,
                                status: "redis-error".into(),
                                took: started.elapsed(),
                            });
                        }
                        ctx.open.lock().unwrap().push_back(id);
                    }
                    status
                }
                "join" => {
                    let game = ctx.open.lock().unwrap().pop_front();
                    match game {
                        Some(game) => {
                            let (_, auth) = ctx.new_player();
                            ctx.join(&ctx.cli.product, &game, &auth).await
                        }
                        None => "no-game".into(),
                    }
                }
                _ => ctx.list(&ctx.cli.product, 0).await.0,
            };
            Some(Sample {
                kind,
                status,
                took: started.elapsed(),
            })
        }
    })
    .await;
    let mut report = Report::from_recorders("mixed", ctx.cli.clients, secs, &recs);
    report.notes.insert("mix".into(), json!(ctx.cli.mix));
    Ok(report)
}

fn parse_mix(text: &str) -> Result<Vec<(&'static str, u32)>, String> {
    let mut out = Vec::new();
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        let (name, weight) = part
            .split_once('=')
            .ok_or_else(|| format!("--mix: {part:?} is not NAME=WEIGHT"))?;
        let name = match name.trim() {
            "list" => "list",
            "create" => "create",
            "open" => "open",
            "join" => "join",
            other => return Err(format!("--mix: unknown operation {other:?}")),
        };
        let weight: u32 = weight
            .trim()
            .parse()
            .map_err(|_| format!("--mix: {weight:?} is not a weight"))?;
        out.push((name, weight));
    }
    if out.iter().map(|(_, w)| w).sum::<u32>() == 0 {
        return Err("--mix: the weights add up to zero".into());
    }
    Ok(out)
}

/// A weighted pick from a cheap hash of (client, n): deterministic, no shared RNG.
fn pick(weights: &[(&'static str, u32)], client: u64, n: u64) -> &'static str {
    let mut x = client
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(n.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 29;
    let total: u32 = weights.iter().map(|(_, w)| *w).sum();
    let mut r = (x % u64::from(total)) as u32;
    for (name, w) in weights {
        if r < *w {
            return name;
        }
        r -= w;
    }
    weights[0].0
}

// ---------------------------------------------------------------------------------------------
// Output

/// The issue's targets, checked against a scenario and its ceiling.
fn target(report: &Report, ceiling: Option<f64>) -> Option<(String, bool)> {
    let ratio = ceiling.map(|c| report.throughput / c);
    let p99 = report.latency_ms.p99;
    let ok200 = report.statuses.keys().all(|s| s == "200");
    match report.scenario {
        "join" => Some((
            "≥40% of ceiling, p99 ≤ 25 ms, all 200".into(),
            ratio.is_some_and(|r| r >= 0.40) && p99 <= 25.0 && ok200,
        )),
        "list" => Some((
            "≥50% of ceiling, p99 ≤ 10 ms, all 200".into(),
            ratio.is_some_and(|r| r >= 0.50) && p99 <= 10.0 && ok200,
        )),
        "create" => Some((
            "≥40% of ceiling, p99 ≤ 25 ms, all 200".into(),
            ratio.is_some_and(|r| r >= 0.40) && p99 <= 25.0 && ok200,
        )),
        "events" => Some((
            "≥ 5,000 entries/s, exactly once".into(),
            report.throughput >= 5000.0
                && report
                    .notes
                    .get("exactly_once")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
        )),
        "contention" => Some((
            "1 winner per round, every answer ≤ 100 ms".into(),
            report
                .notes
                .get("exactly_one_winner")
                .and_then(Value::as_bool)
                .unwrap_or(false)
                && report.latency_ms.max <= 100.0,
        )),
        _ => None,
    }
}

fn statuses_text(statuses: &BTreeMap<String, u64>) -> String {
    statuses
        .iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn table(reports: &[Report], ceilings: &[(String, f64)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<11} {:>7} {:>8} {:>6} {:>9} {:>7} {:>7} {:>7} {:>8}  statuses",
        "scenario", "clients", "ops", "secs", "ops/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    for r in reports {
        let l = r.latency_ms;
        let _ = writeln!(
            out,
            "{:<11} {:>7} {:>8} {:>6.1} {:>9.1} {:>7.2} {:>7.2} {:>7.2} {:>8.2}  {}",
            r.scenario,
            r.clients,
            r.requests,
            r.seconds,
            r.throughput,
            l.p50,
            l.p90,
            l.p99,
            l.max,
            statuses_text(&r.statuses)
        );
        for (op, o) in &r.by_operation {
            let l = o.latency_ms;
            let _ = writeln!(
                out,
                "  {:<9} {:>7} {:>8} {:>6} {:>9.1} {:>7.2} {:>7.2} {:>7.2} {:>8.2}  {}",
                op,
                "",
                o.requests,
                "",
                o.requests as f64 / r.seconds.max(1e-9),
                l.p50,
                l.p90,
                l.p99,
                l.max,
                statuses_text(&o.statuses)
            );
        }
        if !r.notes.is_empty() {
            let notes: Vec<String> = r.notes.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(out, "  notes: {}", notes.join(" "));
        }
        let mut share = Vec::new();
        if let Some(gs) = &r.game_server {
            share.push(format!(
                "game server {} calls, mean {} µs, {} cores",
                gs["calls"], gs["mean_us"], gs["cores"]
            ));
        }
        if !r.cpu.is_empty() {
            let cpu: Vec<String> = r.cpu.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
            share.push(format!("cores used: {}", cpu.join(", ")));
        }
        if !share.is_empty() {
            let _ = writeln!(out, "  {}", share.join("; "));
        }
    }
    let rows: Vec<&Report> = reports
        .iter()
        .filter(|r| target(r, None).is_some())
        .collect();
    if !rows.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<11} {:>9} {:>7} {:>11} {:>7}  {:<42} met",
            "scenario", "ops/s", "p99 ms", "ceiling/s", "ratio", "target"
        );
        for r in rows {
            let ceiling = ceilings
                .iter()
                .find(|(k, _)| k == r.scenario)
                .map(|(_, v)| *v);
            let (text, met) = target(r, ceiling).expect("filtered");
            let _ = writeln!(
                out,
                "{:<11} {:>9.1} {:>7.2} {:>11} {:>7}  {:<42} {}",
                r.scenario,
                r.throughput,
                r.latency_ms.p99,
                ceiling.map_or("-".into(), |c| format!("{c:.1}")),
                ceiling.map_or("-".into(), |c| format!("{:.2}", r.throughput / c)),
                text,
                if met { "yes" } else { "NO" }
            );
        }
    }
    out
}

fn summary_json(reports: &[Report], ceilings: &[(String, f64)]) -> Value {
    let targets: Vec<Value> = reports
        .iter()
        .filter_map(|r| {
            let ceiling = ceilings
                .iter()
                .find(|(k, _)| k == r.scenario)
                .map(|(_, v)| *v);
            let (text, met) = target(r, ceiling)?;
            Some(json!({
                "scenario": r.scenario,
                "throughput": r.throughput,
                "p99_ms": r.latency_ms.p99,
                "ceiling": ceiling,
                "ratio": ceiling.map(|c| r.throughput / c),
                "target": text,
                "met": met,
            }))
        })
        .collect();
    json!({ "reports": reports, "targets": targets })
}

// ---------------------------------------------------------------------------------------------

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut scenarios = Vec::new();
    for s in &cli.scenarios {
        if *s == Scenario::All {
            scenarios.extend([
                Scenario::Create,
                Scenario::Events,
                Scenario::Join,
                Scenario::Open,
                Scenario::List,
                Scenario::Contention,
                Scenario::Mixed,
            ]);
        } else {
            scenarios.push(*s);
        }
    }
    if let Err(e) = parse_mix(&cli.mix) {
        eprintln!("loadgen: {e}");
        return std::process::ExitCode::from(2);
    }
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(120))
        .tcp_nodelay(true)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadgen: HTTP client: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let redis = match redis::Client::open(cli.redis.as_str()) {
        Ok(client) => match client.get_multiplexed_async_connection().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("loadgen: Redis {}: {e}", cli.redis);
                return std::process::ExitCode::FAILURE;
            }
        },
        Err(e) => {
            eprintln!("loadgen: Redis URL: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let run_id = cli.run_id.clone().unwrap_or_else(|| {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        format!("lg{t:x}")
    });
    let ctx = Arc::new(Ctx {
        key: EncodingKey::from_secret(cli.secret.as_bytes()),
        cli,
        run_id,
        http,
        redis,
        users: AtomicU64::new(0),
        created: Mutex::new(Vec::new()),
        open: Mutex::new(VecDeque::new()),
    });

    let mut reports = Vec::new();
    let mut failed = false;
    for scenario in scenarios {
        if !ctx.json {
            eprintln!("loadgen: {scenario:?} ...");
        }
        let gs_before = ctx.game_server_stats().await;
        let cpu = CpuSnapshot::take(&ctx.cli.watch);
        let result = match scenario {
            Scenario::Create => scenario_create(&ctx).await,
            Scenario::Events => scenario_events(&ctx).await,
            Scenario::Join => scenario_join(&ctx).await,
            Scenario::Open => scenario_open(&ctx).await,
            Scenario::List => scenario_list(&ctx).await,
            Scenario::Contention => scenario_contention(&ctx).await,
            Scenario::Mixed => scenario_mixed(&ctx).await,
            Scenario::All => unreachable!("expanded above"),
        };
        let cores = cpu.since(&ctx.cli.watch);
        match result {
            Ok(mut report) => {
                report.cpu = cores;
                report.game_server =
                    game_server_share(gs_before, ctx.game_server_stats().await, report.seconds);
                reports.push(report);
            }
            Err(e) => {
                eprintln!("loadgen: {scenario:?} failed: {e}");
                failed = true;
            }
        }
    }

    let json = summary_json(&reports, &ctx.cli.ceilings);
    if let Some(path) = &ctx.cli.json_out {
        if let Err(e) = std::fs::write(path, format!("{json:#}\n")) {
            eprintln!("loadgen: writing {}: {e}", path.display());
            failed = true;
        }
    }
    if ctx.cli.json {
        println!("{json:#}");
    } else {
        print!("{}", table(&reports, &ctx.cli.ceilings));
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}

impl std::ops::Deref for Ctx {
    type Target = Cli;
    fn deref(&self) -> &Cli {
        &self.cli
    }
}

/// The game server's calls, mean service time and cores used between two `/stats` readings.
fn game_server_share(before: Option<Value>, after: Option<Value>, secs: f64) -> Option<Value> {
    let (before, after) = (before?, after?);
    let delta = |k: &str| after[k].as_f64().unwrap_or(0.0) - before[k].as_f64().unwrap_or(0.0);
    let calls = delta("calls");
    let busy_us = delta("busy_us");
    let cpu = delta("cpu_secs");
    Some(json!({
        "calls": calls as u64,
        "mean_us": if calls > 0.0 { round2(busy_us / calls) } else { 0.0 },
        "cores": round2(cpu / secs.max(1e-9)),
    }))
}
