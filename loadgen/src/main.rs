//! `loadgen`: drives a running matchmaker with a fixed number of concurrent clients (closed loop)
//! or at a fixed offered rate (open loop), and reports throughput, latency percentiles (HDR
//! histograms), answers by status and CPU time per operation of the watched processes, per
//! scenario.
//!
//! It speaks only the public contract: the lobby routes (SPEC §1, docs/api.md) and the Redis
//! event stream (SPEC §5), where it plays the game servers' part (`state_change creator_joined`
//! when a creator "connects", `game_removed` when a game ends). So it can be pointed at any
//! implementation of the contract (`--base-url`, with its own `--token-secret` or a
//! `--token-file`), the old Python service included. Two optional extras are read when present
//! and skipped otherwise: the stand-in game server's `/stats` (its share of the work) and the
//! service's Prometheus `/metrics` (event counts, for the exactly-once check).
//!
//! Scenarios: `create`, `events`, `join`, `open`, `list`, `list_big`, `contention`,
//! `quick_match`, `colyseus`, `mixed` (or `all`, in that order: later ones reuse the games
//! earlier ones made; `list_big` needs `--big-lobby-product`, `colyseus` needs `--colyseus`).
//! See `--help`.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    fmt::Write as _,
    future::Future,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
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
    /// Base URL of the service under test: this matchmaker or any implementation of the same
    /// HTTP contract (docs/api.md).
    #[arg(
        long,
        visible_alias = "base-url",
        env = "LOADGEN_URL",
        default_value = "http://127.0.0.1:5050"
    )]
    url: String,
    /// HS256 secret the service shares with the portal; player tokens (one new player per
    /// operation) are minted with it. Not needed with --token-file.
    #[arg(
        long,
        visible_alias = "token-secret",
        env = "LOADGEN_SECRET",
        hide_env_values = true,
        required_unless_present = "token_file"
    )]
    secret: Option<String>,
    /// Bearer tokens to use instead of minting them: one per line (with or without `Bearer `;
    /// blank lines and `#` comments skipped), each a distinct player, used once each in order.
    /// When they run out the scenario stops and reports `no-token` (so a reused player cannot
    /// quietly turn joins into "already seated" answers). Takes precedence over --secret.
    #[arg(long, env = "LOADGEN_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Redis URL (with database) of the game-event stream the service reads. When it cannot be
    /// reached, the scenarios that need the stream (events, join, open, contention, mixed) fail
    /// and the others run.
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
    /// Product of the `quick_match` scenario; its own lobby, so that quick matches pair with each
    /// other and not with the games other scenarios left (default: --product).
    #[arg(long)]
    quick_product: Option<String>,
    /// Product whose lobby holds `--big-lobby-games` listed games (seeded beforehand, e.g. by
    /// bench/sql/lobby.sql); `list_big` reads its first page.
    #[arg(long)]
    big_lobby_product: Option<String>,
    /// Listed games expected in --big-lobby-product's lobby (checked before `list_big` runs).
    #[arg(long, default_value_t = 10_000)]
    big_lobby_games: usize,
    /// Base URL of a Colyseus server (bench/colyseus/server.js): the `colyseus` scenario POSTs
    /// `/matchmake/joinOrCreate/<--colyseus-room>` (seat reservation) with the same clients and
    /// duration as the others, each as a new player with a bearer token.
    #[arg(long)]
    colyseus: Option<String>,
    /// Room type of the `colyseus` scenario (two clients per room in bench/colyseus/server.js).
    #[arg(long, default_value = "duel")]
    colyseus_room: String,
    /// Concurrent clients (closed loop: each sends its next request when the last one answered).
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Open loop instead: every timed scenario sends this many operations per second, at fixed
    /// intervals whatever the answers; latency is measured from each operation's scheduled send
    /// time, so queueing in the service (or in the network) is not hidden by waiting clients.
    #[arg(long, conflicts_with = "open_loop_at_half")]
    rate: Option<f64>,
    /// After each timed scenario's closed loop, run it again in an open loop at half the
    /// throughput the closed loop measured (its latency at a load the service can carry).
    #[arg(long)]
    open_loop_at_half: bool,
    /// Most operations in flight at once in an open loop, default `--clients`: a fixed set of
    /// connections, as `wrk2 -c N -R rate` has. A send that finds them all busy waits, and its
    /// latency still counts from its scheduled time. Without a bound, a stall of a few
    /// milliseconds makes the HTTP client open hundreds of new connections, whose set-up then
    /// prolongs the stall.
    #[arg(long)]
    max_in_flight: Option<usize>,
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
    /// Processes whose CPU use (utime + stime from /proc) to report per scenario, in cores and
    /// in µs per operation, as NAME=PID (repeatable).
    #[arg(long = "watch", value_parser = parse_watch)]
    watch: Vec<(String, u32)>,
    /// As --watch, for a process and all its descendants, including the ones that exited and
    /// were reaped (e.g. `postgres=<postmaster pid>`: every backend of the cluster).
    #[arg(long = "watch-tree", value_parser = parse_watch)]
    watch_tree: Vec<(String, u32)>,
    /// Which watched process is the service under test (its CPU per operation and resident
    /// memory are checked against the targets).
    #[arg(long, default_value = "matchmaker")]
    service: String,
    /// The service's start-up time (exec to ready), measured by the caller; shown against its
    /// target in the summary.
    #[arg(long)]
    startup_ms: Option<u64>,
    /// The service's resident memory (MB) once ready, before any scenario, measured by the
    /// caller; with --ready-listed, shown against the memory target.
    #[arg(long)]
    ready_rss_mb: Option<f64>,
    /// Listed games the service held when --ready-rss-mb was read (the big lobby alone).
    #[arg(long)]
    ready_listed: Option<u64>,
    /// A ceiling, e.g. `join=3200.5` (pgbench TPS): `<scenario>` for the mirror of the service's
    /// own SQL, `<scenario>_min` for the minimal job; the summary shows the scenario's ratio to
    /// both (repeatable).
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
    #[value(name = "list_big")]
    ListBig,
    Contention,
    #[value(name = "quick_match")]
    QuickMatch,
    Colyseus,
    Mixed,
    All,
}

impl Scenario {
    /// Runs for `--duration` with clients (or at a rate); the others are bursts.
    fn timed(self) -> bool {
        !matches!(
            self,
            Scenario::Events | Scenario::Contention | Scenario::All
        )
    }
}

/// How a timed scenario is driven.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// `--clients` loops, each sending its next operation when the last one answered.
    Closed,
    /// Operations sent at this many per second, whatever the answers.
    Open(f64),
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
    /// `closed` (clients loops) or `open` (fixed offered rate).
    mode: &'static str,
    /// Open loop: the operations per second offered.
    #[serde(skip_serializing_if = "Option::is_none")]
    offered_per_sec: Option<f64>,
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
    /// CPU time (utime + stime) per operation of each watched process, in µs.
    cpu_us_per_op: BTreeMap<String, f64>,
}

impl Report {
    fn new(scenario: &'static str, clients: usize, seconds: f64) -> Self {
        Self {
            scenario,
            mode: "closed",
            offered_per_sec: None,
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
            cpu_us_per_op: BTreeMap::new(),
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

/// CPU time of watched processes (and process trees) and of the machine, to report each one's
/// share of a scenario and its CPU time per operation.
struct CpuSnapshot {
    at: Instant,
    procs: Vec<(String, Option<f64>)>,
    machine: Option<(u64, u64)>,
}

fn ticks_per_sec() -> f64 {
    100.0 // USER_HZ on every Linux architecture we run on
}

/// The fields of `/proc/<pid>/stat` after the command name (which may hold spaces and
/// parentheses): state, ppid, ..., utime (index 11), stime, cutime, cstime.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    Some(stat[stat.rfind(')')? + 2..].split_whitespace().collect())
}

/// utime + stime of a process, in seconds.
fn proc_cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields = stat_fields(&stat)?;
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_sec())
}

/// CPU time of a process and all its descendants, in seconds: utime + stime of each living one,
/// plus cutime + cstime (the children each has reaped), so that a backend that exited between
/// two readings is still counted (its time moves to its parent's cutime when it is reaped).
fn tree_cpu_secs(root: u32) -> Option<f64> {
    let mut parent: HashMap<u32, u32> = HashMap::new();
    let mut ticks: HashMap<u32, u64> = HashMap::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue; // exited meanwhile
        };
        let Some(f) = stat_fields(&stat) else {
            continue;
        };
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        parent.insert(pid, num(1) as u32);
        ticks.insert(pid, num(11) + num(12) + num(13) + num(14));
    }
    if !ticks.contains_key(&root) {
        return None;
    }
    let in_tree = |mut pid: u32| {
        for _ in 0..64 {
            if pid == root {
                return true;
            }
            match parent.get(&pid) {
                Some(&p) if p != 0 && p != pid => pid = p,
                _ => return false,
            }
        }
        false
    };
    let total: u64 = ticks
        .iter()
        .filter(|(pid, _)| in_tree(**pid))
        .map(|(_, t)| t)
        .sum();
    Some(total as f64 / ticks_per_sec())
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
    fn take(cli: &Cli) -> Self {
        let mut procs: Vec<(String, Option<f64>)> = cli
            .watch
            .iter()
            .map(|(name, pid)| (name.clone(), proc_cpu_secs(&pid.to_string())))
            .collect();
        procs.extend(
            cli.watch_tree
                .iter()
                .map(|(name, pid)| (name.clone(), tree_cpu_secs(*pid))),
        );
        procs.push(("loadgen".into(), proc_cpu_secs("self")));
        Self {
            at: Instant::now(),
            procs,
            machine: machine_jiffies(),
        }
    }

    /// Average cores used since `self` (and the whole machine's), and each watched process's
    /// CPU time in µs per operation over `ops` operations.
    fn since(&self, cli: &Cli, ops: u64) -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
        let now = Self::take(cli);
        let wall = now.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let mut cores = BTreeMap::new();
        let mut per_op = BTreeMap::new();
        for ((name, before), (_, after)) in self.procs.iter().zip(&now.procs) {
            if let (Some(b), Some(a)) = (before, after) {
                cores.insert(name.clone(), round2((a - b) / wall));
                if ops > 0 {
                    per_op.insert(
                        name.clone(),
                        ((a - b) * 1e6 / ops as f64 * 10.0).round() / 10.0,
                    );
                }
            }
        }
        if let (Some((b_busy, b_total)), Some((a_busy, a_total))) = (self.machine, now.machine) {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            let total = (a_total - b_total).max(1) as f64;
            cores.insert(
                "machine".into(),
                round2((a_busy - b_busy) as f64 / total * n),
            );
        }
        (cores, per_op)
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
    /// `None` when Redis could not be reached: the scenarios that need the stream fail.
    redis: Option<redis::aio::MultiplexedConnection>,
    /// Mints player tokens (with --secret).
    key: Option<EncodingKey>,
    /// Or hands out the tokens of --token-file, each once.
    tokens: Option<Vec<String>>,
    next_token: AtomicUsize,
    /// Set when --token-file has run out: timed scenarios stop.
    out_of_tokens: AtomicBool,
    /// The CPU and game-server readings at the start of the current scenario's measured part,
    /// after its setup (opening games for join, say), so the setup is not in its figures.
    measured_from: Mutex<Option<(CpuSnapshot, Option<Value>)>>,
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

    /// A new player: (user id, `Authorization` value); `None` when --token-file has run out.
    fn new_player(&self) -> Option<(String, String)> {
        if let Some(tokens) = &self.tokens {
            let i = self.next_token.fetch_add(1, Ordering::Relaxed);
            let Some(token) = tokens.get(i) else {
                self.out_of_tokens.store(true, Ordering::Relaxed);
                return None;
            };
            return Some((format!("token-{i}"), format!("Bearer {token}")));
        }
        let key = self.key.as_ref()?;
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
        let token = jsonwebtoken::encode(&Header::default(), &claims, key)
            .expect("HS256 signing cannot fail");
        Some((user_id, format!("Bearer {token}")))
    }

    fn out_of_tokens(&self) -> bool {
        self.out_of_tokens.load(Ordering::Relaxed)
    }

    /// The measured part of the current scenario starts now (see `measured_from`).
    async fn start_measuring(&self) {
        let gs = self.game_server_stats().await;
        *self.measured_from.lock().unwrap() = Some((CpuSnapshot::take(&self.cli), gs));
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
        let Some((_, auth)) = self.new_player() else {
            return ("no-token".into(), None);
        };
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

    /// POST quick_match as a new player: the status and, on 200, the answer's `outcome`
    /// (`created`, `joined`, `already_seated`).
    async fn quick_match(&self, product: &str) -> (Status, Option<&'static str>) {
        let Some((_, auth)) = self.new_player() else {
            return ("no-token".into(), None);
        };
        let request = self
            .http
            .post(format!("{}/game_lobby/{product}/quick_match", self.base()))
            .header(AUTHORIZATION, auth);
        let (status, body) = self.send(request).await;
        // A byte search, not a parse: this process shares the CPUs with the service.
        let outcome = ["joined", "created", "already_seated"]
            .into_iter()
            .find(|o| {
                let needle = format!("\"outcome\":\"{o}\"");
                body.windows(needle.len()).any(|w| w == needle.as_bytes())
            });
        (status, outcome)
    }

    /// Colyseus's HTTP matchmaking: `POST /matchmake/joinOrCreate/<room>` reserves a seat in a
    /// room with space or in a new one. Colyseus answers 200 whatever happened, with
    /// `{"room": ..., "sessionId": ...}` on success and `{"code": ..., "error": ...}` otherwise.
    /// The second value tells a new room (`created`: the reservation is its first seat) from a
    /// seat in an existing one (`joined`).
    async fn colyseus_join_or_create(&self, base: &str) -> (Status, Option<&'static str>) {
        let Some((_, auth)) = self.new_player() else {
            return ("no-token".into(), None);
        };
        let request = self
            .http
            .post(format!(
                "{}/matchmake/joinOrCreate/{}",
                base.trim_end_matches('/'),
                self.cli.colyseus_room
            ))
            .header(AUTHORIZATION, auth)
            .header(CONTENT_TYPE, "application/json")
            .body("{}");
        let (status, body) = self.send(request).await;
        if status != "200" {
            return (status, None);
        }
        if body.windows(12).any(|w| w == b"\"sessionId\":") {
            let first = body.windows(12).any(|w| w == b"\"clients\":1,");
            return (status, Some(if first { "created" } else { "joined" }));
        }
        // The refusal's code, e.g. 4212 (no handler) or 4210 (seat reservation failed).
        let code = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("code").map(ToString::to_string))
            .unwrap_or_else(|| "?".into());
        (format!("refused-{code}"), None)
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
        let Some(mut conn) = self.redis.clone() else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::IoError,
                "no Redis connection",
                self.cli.redis.clone(),
            )));
        };
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

    /// The service's `/metrics` text, when served.
    async fn metrics_text(&self) -> Option<String> {
        let response = self
            .http
            .get(format!("{}/metrics", self.base()))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.text().await.ok()
    }

    /// An unlabelled gauge's value from the service's `/metrics`, when served.
    async fn gauge(&self, name: &str) -> Option<f64> {
        let text = self.metrics_text().await?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// The lobby cache's lag from the service's histogram, when served and non-empty.
    async fn cache_lag(&self) -> Option<CacheLag> {
        let text = self.metrics_text().await?;
        let prefix = "matchmaker_lobby_cache_lag_seconds_bucket{le=\"";
        let mut buckets: Vec<(f64, f64)> = text
            .lines()
            .filter_map(|l| {
                let (le, count) = l.strip_prefix(prefix)?.split_once("\"} ")?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, count.trim().parse().ok()?))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let ms = |q| bucket_quantile(&buckets, q).map(|s| round2(s * 1000.0));
        Some(CacheLag {
            changes: buckets.last()?.1 as u64,
            p50_ms: ms(0.5)?,
            p99_ms: ms(0.99)?,
        })
    }

    /// `matchmaker_events_total{intake="stream",outcome=...}` from `/metrics`, when served.
    async fn stream_event_counts(&self) -> Option<BTreeMap<String, f64>> {
        let text = self.metrics_text().await?;
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
        let (_, auth) = self
            .new_player()
            .ok_or("out of tokens (--token-file) while waiting for a game")?;
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
            tokio::time::sleep(Duration::from_millis(10)).await;
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

/// Each kind's recorder, the wall time, and notes on how the load was applied.
type Driven = (BTreeMap<&'static str, Recorder>, f64, Map<String, Value>);

/// Runs a timed scenario's `op` closed or open loop (see [`Mode`]).
async fn drive<F, Fut>(ctx: &Arc<Ctx>, mode: Mode, op: F) -> Driven
where
    F: Fn(Arc<Ctx>, usize, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Option<Sample>> + Send + 'static,
{
    ctx.start_measuring().await;
    match mode {
        Mode::Closed => {
            let (recs, secs) = closed_loop(ctx, ctx.cli.clients, op).await;
            (recs, secs, Map::new())
        }
        Mode::Open(rate) => open_loop(ctx, rate, op).await,
    }
}

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
            while Instant::now() < deadline && !ctx.out_of_tokens() {
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

/// How long an open loop waits for its last operations after the last send before it gives up
/// on them (they are counted as `unfinished`, with the time waited as their latency). Every HTTP
/// request has a 30 s time limit, and `open` gives up after 30 s, so this is only a backstop.
const OPEN_LOOP_DRAIN: Duration = Duration::from_secs(45);

/// Sends `op` at `rate` per second for `--duration` (or `--requests` operations): operation `i`
/// is due at `start + i / rate` and is sent then whether or not earlier ones have answered.
/// Its latency runs from that scheduled time to its answer, so a send that the load generator
/// could not make on time (all `--max-in-flight` slots busy, or this process starved of CPU)
/// still counts its delay: no coordinated omission. Tokio's timer has a 1 ms resolution, so
/// operations due within the same millisecond go out together.
async fn open_loop<F, Fut>(ctx: &Arc<Ctx>, rate: f64, op: F) -> Driven
where
    F: Fn(Arc<Ctx>, usize, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Option<Sample>> + Send + 'static,
{
    let rate = rate.max(0.1);
    let mut total = ((rate * ctx.cli.duration).round() as u64).max(1);
    if let Some(budget) = ctx.cli.requests {
        total = total.min(budget);
    }
    let clients = ctx.cli.clients.max(1) as u64;
    let in_flight = ctx.cli.max_in_flight.unwrap_or(ctx.cli.clients);
    let slots = Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
    let no_more_work = Arc::new(AtomicBool::new(false));
    let mut all: BTreeMap<&'static str, Recorder> = BTreeMap::new();
    let mut send_lag = Recorder::new();
    let mut waited_for_slot = 0u64;
    let mut sent = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    let merge = |all: &mut BTreeMap<&'static str, Recorder>,
                 done: Option<(&'static str, Status, Duration)>| {
        if let Some((kind, status, took)) = done {
            all.entry(kind)
                .or_insert_with(Recorder::new)
                .record(&status, took);
        }
    };
    let started = tokio::time::Instant::now();
    for i in 0..total {
        if no_more_work.load(Ordering::Relaxed) || ctx.out_of_tokens() {
            break;
        }
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due).await;
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                waited_for_slot += 1;
                slots.clone().acquire_owned().await.expect("never closed")
            }
        };
        send_lag.record("sent", due.elapsed());
        let (ctx, op, no_more_work) = (ctx.clone(), op.clone(), no_more_work.clone());
        tasks.spawn(async move {
            let sample = op(ctx, (i % clients) as usize, i / clients).await;
            let took = due.elapsed();
            drop(permit);
            match sample {
                Some(sample) => Some((sample.kind, sample.status, took)),
                None => {
                    no_more_work.store(true, Ordering::Relaxed);
                    None
                }
            }
        });
        sent += 1;
        while let Some(done) = tasks.try_join_next() {
            merge(&mut all, done.expect("operation task panicked"));
        }
    }
    let schedule_secs = started.elapsed().as_secs_f64();
    let drain_until = tokio::time::Instant::now() + OPEN_LOOP_DRAIN;
    let mut unfinished = 0u64;
    loop {
        match tokio::time::timeout_at(drain_until, tasks.join_next()).await {
            Ok(Some(done)) => merge(&mut all, done.expect("operation task panicked")),
            Ok(None) => break,
            Err(_) => {
                unfinished = tasks.len() as u64;
                tasks.abort_all();
                let waited = started.elapsed();
                let rec = all.entry("unfinished").or_insert_with(Recorder::new);
                for _ in 0..unfinished {
                    rec.record("unfinished", waited);
                }
                break;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let lag = send_lag.latency();
    let mut notes = Map::new();
    notes.insert("offered_per_sec".into(), json!(round2(rate)));
    notes.insert("sent".into(), json!(sent));
    notes.insert("scheduled".into(), json!(total));
    notes.insert("schedule_secs".into(), json!(round2(schedule_secs)));
    notes.insert(
        "send_lag_ms".into(),
        json!({"p50": lag.p50, "p99": lag.p99, "max": lag.max}),
    );
    if waited_for_slot > 0 {
        notes.insert(
            "sends_that_waited_for_a_slot".into(),
            json!(waited_for_slot),
        );
    }
    if unfinished > 0 {
        notes.insert("unfinished".into(), json!(unfinished));
    }
    (all, secs, notes)
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

/// A report of a timed scenario, from what [`drive`] measured.
fn driven_report(
    scenario: &'static str,
    clients: usize,
    mode: Mode,
    (recs, secs, notes): Driven,
) -> Report {
    let mut report = Report::from_recorders(scenario, clients, secs, &recs);
    if let Mode::Open(rate) = mode {
        report.mode = "open";
        report.offered_per_sec = Some(round2(rate));
    }
    report.notes.extend(notes);
    report
}

async fn scenario_create(ctx: &Arc<Ctx>, mode: Mode) -> Result<Report, String> {
    let driven = drive(ctx, mode, |ctx, _, _| async move {
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
    Ok(driven_report("create", ctx.cli.clients, mode, driven))
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

    ctx.start_measuring().await;
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
async fn scenario_join(ctx: &Arc<Ctx>, mode: Mode) -> Result<Report, String> {
    let wanted = match mode {
        Mode::Closed => ctx.cli.join_games,
        // Enough for the whole schedule, and a margin.
        Mode::Open(rate) => (rate * ctx.cli.duration * 1.1) as usize + ctx.cli.clients,
    };
    let have = ctx.open.lock().unwrap().len();
    if have < wanted {
        ctx.ensure_open(wanted - have).await?;
    }
    let driven = drive(ctx, mode, |ctx, _, _| async move {
        let game = ctx.open.lock().unwrap().pop_front()?;
        let (_, auth) = ctx.new_player()?;
        let started = Instant::now();
        let status = ctx.join(&ctx.cli.product, &game, &auth).await;
        Some(Sample {
            kind: "join",
            status,
            took: started.elapsed(),
        })
    })
    .await;
    let mut report = driven_report("join", ctx.cli.clients, mode, driven);
    report
        .notes
        .insert("games_left".into(), json!(ctx.open.lock().unwrap().len()));
    Ok(report)
}

/// Create, then the creator "connects" (`creator_joined` on the stream); timed until the game
/// shows in the lobby. The game then ends (`game_removed`, not timed) so the lobby stays short.
async fn scenario_open(ctx: &Arc<Ctx>, mode: Mode) -> Result<Report, String> {
    let driven = drive(ctx, mode, |ctx, _, _| async move {
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
    Ok(driven_report("open", ctx.cli.clients, mode, driven))
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
async fn scenario_list(ctx: &Arc<Ctx>, mode: Mode) -> Result<Report, String> {
    ctx.ensure_listed().await?;
    let product = ctx.cli.product.clone();
    let driven = drive(ctx, mode, move |ctx, _, _| page_op(ctx, product.clone())).await;
    let mut report = driven_report("list", ctx.cli.clients, mode, driven);
    let (_, first) = ctx.list(&ctx.cli.product, 0).await;
    report
        .notes
        .insert("listed_on_page_0".into(), json!(first.map(|p| p.len())));
    Ok(report)
}

/// One full page (page 0) of `product`'s lobby, timed; `200-short` when it held fewer games
/// than `--page-size`.
async fn page_op(ctx: Arc<Ctx>, product: String) -> Option<Sample> {
    let started = Instant::now();
    let (status, body) = ctx.send(ctx.list_request(&product, 0)).await;
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
}

/// As `list`, against `--big-lobby-product`, whose lobby must hold `--big-lobby-games` games
/// (checked with two pages: the last full one and the one after it).
async fn scenario_list_big(ctx: &Arc<Ctx>, mode: Mode) -> Result<Report, String> {
    let product = ctx
        .cli
        .big_lobby_product
        .clone()
        .ok_or("list_big needs --big-lobby-product")?;
    let size = ctx.cli.page_size.max(1);
    let expected = ctx.cli.big_lobby_games;
    let last_full = (expected / size).saturating_sub(1);
    let (status, ids) = ctx.list(&product, last_full).await;
    let on_last = ids.ok_or(format!("open_games answered {status}"))?.len();
    let (status, ids) = ctx.list(&product, expected.div_ceil(size)).await;
    let beyond = ids.ok_or(format!("open_games answered {status}"))?.len();
    if on_last < size || beyond > 0 {
        return Err(format!(
            "{product}'s lobby does not hold {expected} games (page {last_full}: {on_last} games, page {}: {beyond})",
            expected.div_ceil(size)
        ));
    }
    let driven = drive(ctx, mode, move |ctx, _, _| page_op(ctx, product.clone())).await;
    let mut report = driven_report("list_big", ctx.cli.clients, mode, driven);
    report.notes.insert("lobby_games".into(), json!(expected));
    Ok(report)
}

/// `quick_match` by a new player each time, on `--quick-product`'s own lobby: with two seats a
/// game, every other one creates a game and the next one joins it. Operations are told apart
/// by the answer's `outcome`.
async fn scenario_quick_match(ctx: &Arc<Ctx>, mode: Mode) -> Result<Report, String> {
    let product = ctx
        .cli
        .quick_product
        .clone()
        .unwrap_or_else(|| ctx.cli.product.clone());
    let driven = drive(ctx, mode, move |ctx, _, _| {
        let product = product.clone();
        async move {
            if ctx.out_of_tokens() {
                return None;
            }
            let started = Instant::now();
            let (status, outcome) = ctx.quick_match(&product).await;
            Some(Sample {
                kind: outcome.unwrap_or("quick_match"),
                status,
                took: started.elapsed(),
            })
        }
    })
    .await;
    Ok(driven_report("quick_match", ctx.cli.clients, mode, driven))
}

/// Colyseus's `joinOrCreate` seat reservation (see [`Ctx::colyseus_join_or_create`]), same
/// clients and duration as `quick_match`.
async fn scenario_colyseus(ctx: &Arc<Ctx>, mode: Mode) -> Result<Report, String> {
    let base = ctx
        .cli
        .colyseus
        .clone()
        .ok_or("colyseus needs --colyseus")?;
    let driven = drive(ctx, mode, move |ctx, _, _| {
        let base = base.clone();
        async move {
            if ctx.out_of_tokens() {
                return None;
            }
            let started = Instant::now();
            let (status, outcome) = ctx.colyseus_join_or_create(&base).await;
            Some(Sample {
                kind: outcome.unwrap_or("joinOrCreate"),
                status,
                took: started.elapsed(),
            })
        }
    })
    .await;
    let mut report = driven_report("colyseus", ctx.cli.clients, mode, driven);
    report
        .notes
        .insert("room".into(), json!(ctx.cli.colyseus_room));
    Ok(report)
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
            let (_, auth) = ctx.new_player().ok_or("out of tokens (--token-file)")?;
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
async fn scenario_mixed(ctx: &Arc<Ctx>, mode: Mode) -> Result<Report, String> {
    let weights = parse_mix(&ctx.cli.mix)?;
    ctx.ensure_listed().await?;
    let join_share = weights
        .iter()
        .find(|(k, _)| *k == "join")
        .map_or(0, |(_, w)| *w) as f64
        / weights.iter().map(|(_, w)| *w).sum::<u32>() as f64;
    // Enough open games for the joins of a whole run at a generous rate (or at the rate).
    let rate = match mode {
        Mode::Closed => 3000.0,
        Mode::Open(rate) => rate * 1.1,
    };
    let wanted = (join_share * rate * ctx.cli.duration) as usize;
    let have = ctx.open.lock().unwrap().len();
    if have < wanted {
        ctx.ensure_open(wanted - have).await?;
    }
    let weights = Arc::new(weights);
    let driven = drive(ctx, mode, move |ctx, client, n| {
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
                        Some(game) => match ctx.new_player() {
                            Some((_, auth)) => ctx.join(&ctx.cli.product, &game, &auth).await,
                            None => "no-token".into(),
                        },
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
    let mut report = driven_report("mixed", ctx.cli.clients, mode, driven);
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

/// One line of the summary: a figure beside its target.
#[derive(Serialize)]
struct TargetLine {
    what: String,
    measured: String,
    target: String,
    met: bool,
}

/// The service's resident memory at the end of the run.
#[derive(Clone, Copy, Serialize)]
struct Memory {
    rss_mb: f64,
    peak_mb: f64,
    /// Listed games the service held in memory then (`matchmaker_lobby_cache_games`), all
    /// products: the big lobby plus whatever the other scenarios left listed.
    held: Option<u64>,
}

fn read_memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some(Memory {
        rss_mb: round2(kb("VmRSS:")? / 1024.0),
        peak_mb: round2(kb("VmHWM:")? / 1024.0),
        held: None,
    })
}

/// What the summary is computed from.
struct Run<'a> {
    reports: &'a [Report],
    cli: &'a Cli,
    memory: Option<Memory>,
    cache_lag: Option<CacheLag>,
}

/// The lobby cache's lag over the whole run, from the service's
/// `matchmaker_lobby_cache_lag_seconds` histogram: from a change's commit to this process's
/// in-memory list showing it.
#[derive(Clone, Copy, Serialize)]
struct CacheLag {
    changes: u64,
    p50_ms: f64,
    p99_ms: f64,
}

/// A quantile of a Prometheus histogram from its cumulative `(le, count)` buckets, by linear
/// interpolation inside the bucket it falls in (as PromQL's `histogram_quantile`).
fn bucket_quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let inside = count - below;
            let share = if inside > 0.0 {
                (rank - below) / inside
            } else {
                0.0
            };
            return Some(lower + (le - lower) * share);
        }
        (lower, below) = (le, count);
    }
    Some(lower)
}

impl Run<'_> {
    fn closed(&self, scenario: &str) -> Option<&Report> {
        self.reports
            .iter()
            .find(|r| r.scenario == scenario && r.mode == "closed")
    }

    fn open(&self, scenario: &str) -> Option<&Report> {
        self.reports
            .iter()
            .find(|r| r.scenario == scenario && r.mode == "open")
    }

    fn ceiling(&self, name: &str) -> Option<f64> {
        self.cli
            .ceilings
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
    }

    fn service_us(&self, r: &Report) -> Option<f64> {
        r.cpu_us_per_op.get(&self.cli.service).copied()
    }

    /// `(mirror, minimal)` ceilings of a scenario.
    fn ceilings_of(&self, scenario: &str) -> (Option<f64>, Option<f64>) {
        (
            self.ceiling(scenario),
            self.ceiling(&format!("{scenario}_min")),
        )
    }
}

fn all_200(r: &Report) -> bool {
    r.requests > 0 && r.statuses.keys().all(|s| s == "200")
}

fn or_errors(r: &Report) -> &'static str {
    if all_200(r) { "" } else { " (not all 200)" }
}

/// The issue's targets, each beside the figure it judges.
fn targets(run: &Run) -> Vec<TargetLine> {
    let mut out = Vec::new();
    let mut line = |what: String, measured: String, target: &str, met: bool| {
        out.push(TargetLine {
            what,
            measured,
            target: target.to_string(),
            met,
        })
    };
    let half = if run.cli.open_loop_at_half {
        "½ peak"
    } else {
        "--rate"
    };
    // p99 of the open loop, and the CPU per operation of the service.
    let open_p99 = |name: &str, limit: f64| -> (String, String, bool) {
        match run.open(name) {
            Some(o) => (
                format!(
                    "{name}: p99 at {:.0}/s offered ({half})",
                    o.offered_per_sec.unwrap_or(0.0)
                ),
                format!(
                    "{:.2} ms, {:.0}/s done{}",
                    o.latency_ms.p99,
                    o.throughput,
                    or_errors(o)
                ),
                o.latency_ms.p99 <= limit && all_200(o),
            ),
            None => (
                format!("{name}: p99 at ½ peak (open loop)"),
                "not run".into(),
                false,
            ),
        }
    };
    let service_cpu = |r: &Report, unit: &str, limit: f64| -> (String, String, bool) {
        let what = format!("{}: {} CPU per {unit}", r.scenario, run.cli.service);
        match run.service_us(r) {
            Some(us) => (what, format!("{us:.1} µs"), us <= limit),
            None => (what, "not measured (no --watch)".into(), false),
        }
    };

    for name in ["list", "list_big"] {
        let Some(r) = run.closed(name) else { continue };
        let lobby = r
            .notes
            .get("lobby_games")
            .map_or(String::new(), |n| format!(", {n} listed"));
        line(
            format!("{name}: pages/s at {} connections{lobby}", r.clients),
            format!("{:.1}{}", r.throughput, or_errors(r)),
            "≥ 20,000 at 32 connections",
            r.throughput >= 20_000.0 && all_200(r) && r.clients == 32,
        );
        let (what, measured, met) = open_p99(name, 5.0);
        line(what, measured, "≤ 5 ms", met);
        let (what, measured, met) = service_cpu(r, "page", 40.0);
        line(what, measured, "≤ 40 µs", met);
    }

    let slower = ["create", "join"]
        .iter()
        .filter_map(|n| run.closed(n))
        .min_by(|a, b| a.throughput.total_cmp(&b.throughput));
    if let Some(q) = run.closed("quick_match") {
        match slower {
            Some(s) => line(
                "quick_match: ops/s vs the slower of create and join".into(),
                format!(
                    "{:.1} vs {:.1} ({}){}",
                    q.throughput,
                    s.throughput,
                    s.scenario,
                    or_errors(q)
                ),
                "≥",
                q.throughput >= s.throughput && all_200(q),
            ),
            None => line(
                "quick_match: ops/s vs the slower of create and join".into(),
                "create / join not run".into(),
                "≥",
                false,
            ),
        }
        match run.closed("colyseus") {
            Some(c) => line(
                format!(
                    "quick_match: ops/s vs Colyseus joinOrCreate ({} conn)",
                    c.clients
                ),
                format!(
                    "{:.1} vs {:.1}{}",
                    q.throughput,
                    c.throughput,
                    if all_200(c) {
                        ""
                    } else {
                        " (Colyseus: not all ok)"
                    }
                ),
                "ahead (>)",
                q.throughput > c.throughput && all_200(q),
            ),
            None => line(
                "quick_match: ops/s vs Colyseus joinOrCreate".into(),
                "Colyseus not run (--colyseus)".into(),
                "ahead (>)",
                false,
            ),
        }
    }

    for name in ["create", "join"] {
        let Some(r) = run.closed(name) else { continue };
        let (_, minimal) = run.ceilings_of(name);
        match minimal {
            Some(c) => line(
                format!("{name}: share of the minimal-job ceiling"),
                format!(
                    "{:.2} ({:.1} / {c:.1}){}",
                    r.throughput / c,
                    r.throughput,
                    or_errors(r)
                ),
                "≥ 0.40",
                r.throughput / c >= 0.40 && all_200(r),
            ),
            None => line(
                format!("{name}: share of the minimal-job ceiling"),
                "no ceiling (--ceiling {name}_min=)".into(),
                "≥ 0.40",
                false,
            ),
        }
        let (what, measured, met) = open_p99(name, 25.0);
        line(what, measured, "≤ 25 ms", met);
        let (what, measured, met) = service_cpu(r, "op", 120.0);
        line(what, measured, "≤ 120 µs", met);
    }

    if let Some(r) = run.closed("events") {
        let once = r.notes.get("exactly_once").and_then(Value::as_bool);
        line(
            "events: stream entries/s, exactly once".into(),
            format!(
                "{:.0}/s, exactly once: {}",
                r.throughput,
                once.map_or("unknown (no /metrics)".into(), |b| b.to_string())
            ),
            "≥ 20,000/s, exactly once",
            r.throughput >= 20_000.0 && once == Some(true),
        );
    }
    if let Some(r) = run.closed("contention") {
        let one = r
            .notes
            .get("exactly_one_winner")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        line(
            format!(
                "contention: {} players on one game, {} rounds",
                r.clients,
                r.notes.get("rounds").unwrap_or(&Value::Null)
            ),
            format!(
                "winners {}, worst answer {:.1} ms",
                r.notes.get("winners_per_round").unwrap_or(&Value::Null),
                r.latency_ms.max
            ),
            "1 winner, every answer ≤ 100 ms",
            one && r.latency_ms.max <= 100.0,
        );
    }
    let big = run
        .closed("list_big")
        .and_then(|r| r.notes.get("lobby_games"))
        .and_then(Value::as_u64);
    if let (Some(mb), Some(n)) = (run.cli.ready_rss_mb, run.cli.ready_listed) {
        line(
            format!("memory: {} resident once ready", run.cli.service),
            format!("{mb:.1} MB, {n} listed games held (before any scenario)"),
            "≤ 60 MB with 10,000 listed",
            mb <= 60.0 && n >= 10_000,
        );
    }
    match run.memory {
        Some(m) => line(
            format!("memory: {} resident at the end", run.cli.service),
            format!(
                "{:.1} MB (peak {:.1} MB){}",
                m.rss_mb,
                m.peak_mb,
                match (big, m.held) {
                    (Some(n), Some(held)) =>
                        format!(", {held} listed games held ({n} in the big lobby)"),
                    (Some(n), None) => format!(", {n} listed in the big lobby"),
                    (None, _) => ", no big lobby measured".into(),
                }
            ),
            "≤ 60 MB with 10,000 listed",
            m.rss_mb <= 60.0 && big.is_some_and(|n| n >= 10_000),
        ),
        None => line(
            "memory: resident at the end".into(),
            format!("not measured (no --watch {}=PID)", run.cli.service),
            "≤ 60 MB with 10,000 listed",
            false,
        ),
    }
    match run.cli.startup_ms {
        Some(ms) => line(
            "start-up to ready".into(),
            format!("{ms} ms"),
            "≤ 1 s",
            ms <= 1000,
        ),
        None => line(
            "start-up to ready".into(),
            "not measured (--startup-ms)".into(),
            "≤ 1 s",
            false,
        ),
    }
    out
}

/// Each scenario that has ceilings, with its throughput over both.
fn ratios(run: &Run) -> Vec<Value> {
    ["create", "join", "list", "list_big"]
        .iter()
        .filter_map(|name| {
            let r = run.closed(name)?;
            let (mirror, minimal) = run.ceilings_of(name);
            if mirror.is_none() && minimal.is_none() {
                return None;
            }
            Some(json!({
                "scenario": name,
                "throughput": r.throughput,
                "mirror": mirror,
                "mirror_ratio": mirror.map(|c| r.throughput / c),
                "minimal": minimal,
                "minimal_ratio": minimal.map(|c| r.throughput / c),
            }))
        })
        .collect()
}

fn statuses_text(statuses: &BTreeMap<String, u64>) -> String {
    statuses
        .iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn per_op_text(per_op: &BTreeMap<String, f64>) -> String {
    per_op
        .iter()
        .map(|(k, v)| format!("{k} {v:.1}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn table(run: &Run) -> String {
    let reports = run.reports;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:>9} {:>8} {:>6} {:>9} {:>7} {:>7} {:>7} {:>8}  statuses",
        "scenario", "load", "ops", "secs", "ops/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    for r in reports {
        let l = r.latency_ms;
        let load = match r.offered_per_sec {
            Some(rate) => format!("{rate:.0}/s"),
            None => format!("{} conn", r.clients),
        };
        let _ = writeln!(
            out,
            "{:<12} {:>9} {:>8} {:>6.1} {:>9.1} {:>7.2} {:>7.2} {:>7.2} {:>8.2}  {}",
            r.scenario,
            load,
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
                "  {:<10} {:>9} {:>8} {:>6} {:>9.1} {:>7.2} {:>7.2} {:>7.2} {:>8.2}  {}",
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
        if !r.cpu_us_per_op.is_empty() {
            let _ = writeln!(out, "  CPU µs/op: {}", per_op_text(&r.cpu_us_per_op));
        }
    }

    let ratios = ratios(run);
    if !ratios.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "against the ceilings (pgbench, same server): mirror = the service's own SQL, minimal = the least the job needs"
        );
        let _ = writeln!(
            out,
            "{:<12} {:>9} {:>10} {:>6} {:>10} {:>6}",
            "scenario", "ops/s", "mirror/s", "ratio", "minimal/s", "ratio"
        );
        let num = |v: &Value, digits: usize| {
            v.as_f64()
                .map_or("-".to_string(), |x| format!("{x:.digits$}"))
        };
        for r in &ratios {
            let _ = writeln!(
                out,
                "{:<12} {:>9} {:>10} {:>6} {:>10} {:>6}",
                r["scenario"].as_str().unwrap_or("?"),
                num(&r["throughput"], 1),
                num(&r["mirror"], 1),
                num(&r["mirror_ratio"], 2),
                num(&r["minimal"], 1),
                num(&r["minimal_ratio"], 2),
            );
        }
    }

    let open: Vec<&Report> = reports.iter().filter(|r| r.mode == "open").collect();
    if !open.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "open loop (fixed offered rate{}; latency from each operation's scheduled send time)",
            if run.cli.open_loop_at_half {
                ": half the closed loop's throughput"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "{:<12} {:>10} {:>9} {:>7} {:>7} {:>8} {:>15}",
            "scenario", "offered/s", "done/s", "p50 ms", "p99 ms", "max ms", "send lag p99 ms"
        );
        for r in open {
            let _ = writeln!(
                out,
                "{:<12} {:>10.1} {:>9.1} {:>7.2} {:>7.2} {:>8.2} {:>15}",
                r.scenario,
                r.offered_per_sec.unwrap_or(0.0),
                r.throughput,
                r.latency_ms.p50,
                r.latency_ms.p99,
                r.latency_ms.max,
                r.notes
                    .get("send_lag_ms")
                    .and_then(|l| l.get("p99"))
                    .map_or("-".into(), ToString::to_string)
            );
        }
    }

    // CPU per operation, closed loop (and open loop) side by side.
    let mut names: Vec<&String> = reports
        .iter()
        .flat_map(|r| r.cpu_us_per_op.keys())
        .collect();
    names.sort();
    names.dedup();
    if !names.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "CPU per operation, µs (utime + stime from /proc, before and after each scenario; closed loop / open loop)"
        );
        let mut header = format!("{:<12}", "scenario");
        for n in &names {
            let _ = write!(header, " {n:>17}");
        }
        let _ = writeln!(out, "{header}");
        let mut seen: Vec<&str> = Vec::new();
        for r in reports {
            if seen.contains(&r.scenario) {
                continue;
            }
            seen.push(r.scenario);
            let closed = run.closed(r.scenario);
            let open = run.open(r.scenario);
            let mut row = format!("{:<12}", r.scenario);
            for n in &names {
                let cell = |r: Option<&Report>| {
                    r.and_then(|r| r.cpu_us_per_op.get(*n))
                        .map_or("-".to_string(), |v| format!("{v:.1}"))
                };
                let text = match open {
                    Some(_) => format!("{} / {}", cell(closed), cell(open)),
                    None => cell(closed),
                };
                let _ = write!(row, " {text:>17}");
            }
            let _ = writeln!(out, "{row}");
        }
    }

    if let Some(lag) = run.cache_lag {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "lobby cache lag (commit to the in-memory list, whole run, from matchmaker_lobby_cache_lag_seconds): {} changes, p50 {:.2} ms, p99 {:.2} ms",
            lag.changes, lag.p50_ms, lag.p99_ms
        );
    }

    let lines = targets(run);
    if !lines.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<55} {:<46} {:<30} met",
            "target", "measured", "wanted"
        );
        for t in &lines {
            let _ = writeln!(
                out,
                "{:<55} {:<46} {:<30} {}",
                t.what,
                t.measured,
                t.target,
                if t.met { "met" } else { "not met" }
            );
        }
    }
    out
}

fn summary_json(run: &Run) -> Value {
    json!({
        "reports": run.reports,
        "ceilings": run.cli.ceilings.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<Map<String, Value>>(),
        "ratios": ratios(run),
        "memory": run.memory,
        "lobby_cache_lag": run.cache_lag,
        "startup_ms": run.cli.startup_ms,
        "ready_memory": {"rss_mb": run.cli.ready_rss_mb, "listed": run.cli.ready_listed},
        "targets": targets(run),
    })
}

// ---------------------------------------------------------------------------------------------

/// Runs one scenario in one mode, with the CPU and game-server readings around it.
async fn run_scenario(ctx: &Arc<Ctx>, scenario: Scenario, mode: Mode) -> Result<Report, String> {
    if !ctx.json {
        match mode {
            Mode::Closed => eprintln!("loadgen: {scenario:?} ..."),
            Mode::Open(rate) => eprintln!("loadgen: {scenario:?} open loop at {rate:.1}/s ..."),
        }
    }
    *ctx.measured_from.lock().unwrap() = None;
    let gs_start = ctx.game_server_stats().await;
    let cpu_start = CpuSnapshot::take(&ctx.cli);
    let result = match scenario {
        Scenario::Create => scenario_create(ctx, mode).await,
        Scenario::Events => scenario_events(ctx).await,
        Scenario::Join => scenario_join(ctx, mode).await,
        Scenario::Open => scenario_open(ctx, mode).await,
        Scenario::List => scenario_list(ctx, mode).await,
        Scenario::ListBig => scenario_list_big(ctx, mode).await,
        Scenario::Contention => scenario_contention(ctx).await,
        Scenario::QuickMatch => scenario_quick_match(ctx, mode).await,
        Scenario::Colyseus => scenario_colyseus(ctx, mode).await,
        Scenario::Mixed => scenario_mixed(ctx, mode).await,
        Scenario::All => unreachable!("expanded before"),
    };
    let mut report = result?;
    // From the start of the measured part when the scenario marked it (every timed one and
    // events do), else from the start of the scenario (contention: its per-round setup of one
    // game and the connections is in its figures).
    let (cpu, gs_before) = ctx
        .measured_from
        .lock()
        .unwrap()
        .take()
        .unwrap_or((cpu_start, gs_start));
    let (cores, per_op) = cpu.since(&ctx.cli, report.requests);
    report.cpu = cores;
    report.cpu_us_per_op = per_op;
    report.game_server =
        game_server_share(gs_before, ctx.game_server_stats().await, report.seconds);
    if ctx.out_of_tokens() {
        report.notes.insert("tokens_exhausted".into(), json!(true));
    }
    Ok(report)
}

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
            ]);
            if cli.big_lobby_product.is_some() {
                scenarios.push(Scenario::ListBig);
            }
            scenarios.extend([Scenario::Contention, Scenario::QuickMatch]);
            if cli.colyseus.is_some() {
                scenarios.push(Scenario::Colyseus);
            }
            scenarios.push(Scenario::Mixed);
        } else {
            scenarios.push(*s);
        }
    }
    if let Err(e) = parse_mix(&cli.mix) {
        eprintln!("loadgen: {e}");
        return std::process::ExitCode::from(2);
    }
    let tokens = match &cli.token_file {
        None => None,
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Some(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(|l| {
                        l.strip_prefix("Bearer ")
                            .or_else(|| l.strip_prefix("bearer "))
                            .unwrap_or(l)
                            .trim()
                            .to_string()
                    })
                    .collect::<Vec<_>>(),
            ),
            Err(e) => {
                eprintln!("loadgen: reading {}: {e}", path.display());
                return std::process::ExitCode::from(2);
            }
        },
    };
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
        Ok(client) => {
            match tokio::time::timeout(
                Duration::from_secs(5),
                client.get_multiplexed_async_connection(),
            )
            .await
            {
                Ok(Ok(c)) => Some(c),
                Ok(Err(e)) => {
                    eprintln!(
                        "loadgen: Redis {}: {e}; the scenarios that need the stream will fail",
                        cli.redis
                    );
                    None
                }
                Err(_) => {
                    eprintln!(
                        "loadgen: Redis {}: no connection in 5 s; the scenarios that need the stream will fail",
                        cli.redis
                    );
                    None
                }
            }
        }
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
        key: cli
            .secret
            .as_ref()
            .map(|s| EncodingKey::from_secret(s.as_bytes())),
        tokens,
        next_token: AtomicUsize::new(0),
        out_of_tokens: AtomicBool::new(false),
        measured_from: Mutex::new(None),
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
        let first = match ctx.cli.rate {
            Some(rate) if scenario.timed() => Mode::Open(rate),
            _ => Mode::Closed,
        };
        let peak = match run_scenario(&ctx, scenario, first).await {
            Ok(report) => {
                let peak = report.throughput;
                reports.push(report);
                peak
            }
            Err(e) => {
                eprintln!("loadgen: {scenario:?} failed: {e}");
                failed = true;
                continue;
            }
        };
        if ctx.cli.open_loop_at_half && scenario.timed() && peak > 0.0 {
            match run_scenario(&ctx, scenario, Mode::Open(peak / 2.0)).await {
                Ok(report) => reports.push(report),
                Err(e) => {
                    eprintln!("loadgen: {scenario:?} (open loop) failed: {e}");
                    failed = true;
                }
            }
        }
    }

    let mut memory = ctx
        .cli
        .watch
        .iter()
        .find(|(name, _)| *name == ctx.cli.service)
        .and_then(|(_, pid)| read_memory(*pid));
    if let Some(m) = memory.as_mut() {
        m.held = ctx
            .gauge("matchmaker_lobby_cache_games")
            .await
            .map(|n| n as u64);
    }
    let run = Run {
        reports: &reports,
        cli: &ctx.cli,
        memory,
        cache_lag: ctx.cache_lag().await,
    };
    let json = summary_json(&run);
    if let Some(path) = &ctx.cli.json_out {
        if let Err(e) = std::fs::write(path, format!("{json:#}\n")) {
            eprintln!("loadgen: writing {}: {e}", path.display());
            failed = true;
        }
    }
    if ctx.cli.json {
        println!("{json:#}");
    } else {
        print!("{}", table(&run));
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

#[cfg(test)]
mod tests {
    use super::bucket_quantile;

    #[test]
    fn a_quantile_is_interpolated_inside_its_bucket() {
        let buckets = [(0.001, 50.0), (0.002, 100.0), (f64::INFINITY, 100.0)];
        assert_eq!(bucket_quantile(&buckets, 0.5), Some(0.001));
        let q75 = bucket_quantile(&buckets, 0.75).unwrap();
        assert!((q75 - 0.0015).abs() < 1e-12, "{q75}");
        assert_eq!(bucket_quantile(&[(0.001, 0.0)], 0.5), None);
    }
}
