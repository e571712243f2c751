//! Whole processes under faults: `kill -9` of matchmaker processes in the middle of creates and
//! joins (three processes on one database), a Postgres restart under load, and a Redis outage.
//! Afterwards the promises are checked in the database, against the game server's record and
//! through the API. `make chaos` runs the long variant (`CRASH_ROUNDS`, default 3).

use std::{
    collections::{HashMap, HashSet},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{
    Behaviour, EVENT_KEY, GameServerStub, SECRET, database_url, eventually, free_port, token,
};

/// A `matchmaker serve` process.
struct Proc {
    child: Child,
    base: String,
}

impl Proc {
    async fn start(database_url: &str, config: &std::path::Path, port: u16) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_matchmaker"))
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("MATCHMAKER_SECRET_KEY", SECRET)
            .env("MATCHMAKER_CONFIG", config)
            .env("MATCHMAKER_BIND", format!("127.0.0.1:{port}"))
            .env_remove("MATCHMAKER_EVENT_STREAM_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        eventually("the process is ready", || async {
            http.get(format!("{base}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
        Self { child, base }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn config_file(stub: &GameServerStub, extra: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("mm-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(
        &path,
        format!(
            r#"
game_server_timeout_ms = 1000
reservation_timeout_ms = 1500
reaper_interval_ms = 100
outbox_backoff_ms = 50
max_open_games_per_player = 0
{extra}
[expiry]
created = 600
creator_joined = 600
[[games]]
product_id = "quad"
game_server_url = "{url}"
game_socket_url = "quad:1"
settings = {{ num_players = 4 }}
event_key = "{EVENT_KEY}"
"#,
            url = stub.url
        ),
    )
    .unwrap();
    path
}

#[derive(Default)]
struct Answers {
    created: HashSet<String>,
    joined: HashSet<(String, String)>,
    statuses: HashMap<u16, usize>,
}

/// One player's create (then `creator_joined`) or join against `base`; records what answered.
async fn act(http: reqwest::Client, base: String, answers: Arc<Mutex<Answers>>, i: usize) {
    let open: Vec<String> = answers.lock().unwrap().created.iter().cloned().collect();
    let player = format!("p{i}");
    let res = if i % 3 == 0 || open.is_empty() {
        http.post(format!("{base}/game_lobby/quad/create_game"))
            .bearer_auth(token(&player))
            .send()
            .await
    } else {
        let game = &open[i % open.len()];
        http.post(format!("{base}/game_lobby/quad/join_game/{game}"))
            .bearer_auth(token(&player))
            .send()
            .await
    };
    let Ok(res) = res else { return }; // the process died under us
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    let created = {
        let mut a = answers.lock().unwrap();
        *a.statuses.entry(status).or_default() += 1;
        if status != 200 {
            return;
        }
        let game = body["game_id"].as_str().unwrap().to_string();
        if body["creator_id"] != player {
            a.joined.insert((game, player));
            return;
        }
        a.created.insert(game.clone());
        game
    };
    let _ = http
        .post(format!("{base}/game_servers/quad/events"))
        .bearer_auth(EVENT_KEY)
        .json(&json!({"type": "state_change", "product_id": "quad", "game_id": created, "new_state": "creator_joined"}))
        .send()
        .await;
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn kill_9_during_creates_and_joins_on_three_processes_breaks_no_promise(db: PgPool) {
    let stub = GameServerStub::start().await;
    // slow enough that kills land between reservation and confirmation
    stub.set("create_game", Behaviour::Delay(Duration::from_millis(30)));
    stub.set("join_game", Behaviour::Delay(Duration::from_millis(30)));
    let config = config_file(&stub, "");
    let url = database_url(&db);
    let (port_a, port_b, port_c) = (free_port(), free_port(), free_port());
    let mut a = Proc::start(&url, &config, port_a).await;
    let b = Proc::start(&url, &config, port_b).await;
    let c = Proc::start(&url, &config, port_c).await;
    let http = reqwest::Client::new();
    let answers = Arc::new(Mutex::new(Answers::default()));

    let rounds: u64 = std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let mut i = 0;
    for round in 0..rounds {
        let mut load = tokio::task::JoinSet::new();
        for _ in 0..60 {
            let base = [&a.base, &b.base, &c.base][i % 3];
            load.spawn(act(http.clone(), base.clone(), answers.clone(), i));
            i += 1;
        }
        // kill at a different point of each round
        tokio::time::sleep(Duration::from_millis(20 + 40 * (round % 4))).await;
        a.kill9();
        while load.join_next().await.is_some() {}
        a = Proc::start(&url, &config, port_a).await;
    }
    drop((b, c));

    // quiet: reservations and intents of the dead are cleaned up, every owed call made
    eventually(
        "abandoned work is cleaned up and every owed call made",
        || async {
            let left = sqlx::query_scalar!(
                r#"select (select count(*) from game_players where status = 'reserved')
                    + (select count(*) from create_intents)
                    + (select count(*) from game_server_outbox) as "n!""#
            )
            .fetch_one(&db)
            .await
            .unwrap();
            left == 0
        },
    )
    .await;

    let answers = std::mem::take(&mut *answers.lock().unwrap());
    // no game lost once a create answered 200
    for game in &answers.created {
        let id = uuid::Uuid::parse_str(game).unwrap();
        let found = sqlx::query_scalar!("select count(*) from games where game_id = $1", id)
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(found, Some(1), "game {game} answered 200 and is gone");
    }
    // every answered join holds its seat
    for (game, player) in &answers.joined {
        let id = uuid::Uuid::parse_str(game).unwrap();
        let held = sqlx::query_scalar!(
            "select count(*) from game_players where game_id = $1 and player_id = $2 and status = 'held'",
            id,
            player
        )
        .fetch_one(&db)
        .await
        .unwrap();
        assert_eq!(held, Some(1), "{player} was told they joined {game}");
    }
    // seats: counted right, within capacity
    let bad = sqlx::query_scalar!(
        r#"select count(*) as "n!" from games g
           where g.seats_taken <> (select count(*) from game_players p where p.game_id = g.game_id)
              or g.seats_taken > g.num_players"#
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(bad, 0, "seat counts match the seats and the capacity");
    // the game server's view: every game it created is ours or was removed; every player it
    // seated sits in our game or was removed
    let ours: HashSet<String> =
        sqlx::query_scalar!(r#"select replace(game_id::text, '-', '') as "id!" from games"#)
            .fetch_all(&db)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let seated: HashSet<(String, String)> = sqlx::query!(
        r#"select replace(game_id::text, '-', '') as "id!", player_id from game_players"#
    )
    .fetch_all(&db)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.id, r.player_id))
    .collect();
    let field = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let removed_games: HashSet<String> = stub
        .calls("remove_game")
        .iter()
        .map(|c| field(c, "gameId"))
        .collect();
    let removed_players: HashSet<(String, String)> = stub
        .calls("remove_player")
        .iter()
        .map(|c| (field(c, "gameId"), field(c, "userId")))
        .collect();
    let created = stub.calls("create_game");
    for call in &created {
        let game = field(call, "gameId");
        assert!(
            ours.contains(&game) || removed_games.contains(&game),
            "game {game} leaked on the game server"
        );
    }
    for call in stub.calls("join_game") {
        let key = (field(&call, "gameId"), field(&call, "userId"));
        assert!(
            seated.contains(&key)
                || removed_players.contains(&key)
                || removed_games.contains(&key.0),
            "seat {key:?} leaked on the game server"
        );
    }
    // and through the API: every listed game shows its real free seats
    let listed: Vec<Value> = http
        .get(format!("{}/game_lobby/quad/open_games?count=25", a.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for game in &listed {
        let id = uuid::Uuid::parse_str(game["game_id"].as_str().unwrap()).unwrap();
        let seats = sqlx::query_scalar!("select count(*) from game_players where game_id = $1", id)
            .fetch_one(&db)
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(game["free_seats"].as_i64(), Some(4 - seats));
    }
    assert!(
        !answers.statuses.contains_key(&500),
        "{:?}",
        answers.statuses
    );
    eprintln!(
        "kill -9 x{rounds}: {} requests answered {:?}; game server saw {} creates, {} removals",
        answers.statuses.values().sum::<usize>(),
        answers.statuses,
        created.len(),
        removed_games.len() + removed_players.len()
    );
    let _ = std::fs::remove_file(config);
}

/// A PostgreSQL cluster of the test's own, so it can be stopped and started.
struct Cluster {
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
    /// initdb and pg_ctl refuse to run as root: run them as `postgres` then.
    as_root: bool,
}

impl Cluster {
    fn start() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())?;
        let dir = std::env::temp_dir().join(format!("mm-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let cluster = Self {
            bin,
            dir,
            port: free_port(),
            as_root: Command::new("id")
                .arg("-u")
                .output()
                .is_ok_and(|o| o.stdout.starts_with(b"0")),
        };
        if cluster.as_root {
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&cluster.dir)
                .status()
                .unwrap();
        }
        cluster.run(&["initdb", "-A", "trust", "-U", "postgres", "--no-sync", "-D"]);
        cluster.pg_ctl("start");
        Some(cluster)
    }

    fn run(&self, args: &[&str]) {
        let program = self.bin.join(args[0]);
        let mut cmd = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let status = cmd
            .args(&args[1..])
            .arg(&self.dir)
            .current_dir("/")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{args:?} failed");
    }

    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        match action {
            "start" => self.run(&[
                "pg_ctl",
                "start",
                "-w",
                "-l",
                "/dev/null",
                "-o",
                &options,
                "-D",
            ]),
            _ => self.run(&["pg_ctl", "stop", "-w", "-m", "fast", "-D"]),
        }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.pg_ctl("stop");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn postgres_restart_gives_503_then_recovers_without_a_restart() {
    let Some(cluster) = Cluster::start() else {
        eprintln!("skipped: no PostgreSQL server programs under /usr/lib/postgresql");
        return;
    };
    let stub = GameServerStub::start().await;
    let config = config_file(&stub, "");
    let port = free_port();
    // migrate_on_start (the default) migrates the fresh cluster
    let service = Proc::start(&cluster.url(), &config, port).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let create = || {
        http.post(format!("{}/game_lobby/quad/create_game", service.base))
            .bearer_auth(token("alice"))
            .send()
    };
    assert_eq!(create().await.unwrap().status(), 200);

    cluster.pg_ctl("stop");
    for _ in 0..2 {
        let started = Instant::now();
        let res = create().await.unwrap();
        assert_eq!(res.status(), 503, "{}", res.text().await.unwrap());
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "answered, not hung"
        );
        let listed = http
            .get(format!("{}/game_lobby/quad/open_games", service.base))
            .send()
            .await
            .unwrap();
        assert_eq!(listed.status(), 503);
    }
    let ready = http
        .get(format!("{}/readyz", service.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);

    cluster.pg_ctl("start");
    let back = Instant::now();
    eventually("the service recovers by itself", || async {
        create().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    eprintln!("recovered {:?} after Postgres came back", back.elapsed());
    let ready = http
        .get(format!("{}/readyz", service.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let _ = std::fs::remove_file(config);
}

/// A Redis server of the test's own (append-only file on, so a restart keeps the stream).
struct Redis {
    child: Option<Child>,
    dir: std::path::PathBuf,
    port: u16,
}

impl Redis {
    fn start(dir: std::path::PathBuf, port: u16) -> Option<Self> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some(Self {
            child: Some(child),
            dir,
            port,
        })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    async fn append(&self, fields: &[(&str, &str)]) {
        use redis::AsyncCommands;
        let client = redis::Client::open(self.url()).unwrap();
        let mut conn = None;
        for _ in 0..100 {
            if let Ok(c) = client.get_multiplexed_async_connection().await {
                conn = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut conn = conn.expect("redis is up");
        let _: String = conn.xadd("game_event_stream", "*", fields).await.unwrap();
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn redis_down_pauses_the_stream_but_not_the_lobby_and_intake_resumes_where_it_left_off(
    db: PgPool,
) {
    let dir = std::env::temp_dir().join(format!("mm-redis-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let Some(mut redis) = Redis::start(dir.clone(), port) else {
        eprintln!("skipped: redis-server is not installed");
        return;
    };
    let stub = GameServerStub::start().await;
    let extra = format!("event_stream_url = \"{}\"", redis.url());
    let app = crate::helpers::spawn_with(
        db.clone(),
        stub.clone(),
        crate::helpers::settings(&stub, &extra),
    )
    .await;

    // through the stream: the game opens, bob joins, then bob's disconnect frees his seat
    let g1 = app.create("quad", "alice").await["game_id"]
        .as_str()
        .unwrap()
        .to_string();
    redis
        .append(&[
            ("type", "state_change"),
            ("product_id", "quad"),
            ("game_id", &g1),
            ("new_state", "creator_joined"),
        ])
        .await;
    eventually("the game is listed", || async {
        app.open_ids("quad", "").await.contains(&g1)
    })
    .await;
    assert_eq!(app.join("quad", &g1, "bob").await.status(), 200);
    redis
        .append(&[
            ("type", "player_disconnect"),
            ("product_id", "quad"),
            ("game_id", &g1),
            ("player_id", "bob"),
        ])
        .await;
    let seats = |game: String| {
        let db = db.clone();
        async move {
            let id = uuid::Uuid::parse_str(&game).unwrap();
            sqlx::query_scalar!("select count(*) from game_players where game_id = $1", id)
                .fetch_one(&db)
                .await
                .unwrap()
                .unwrap_or(0)
        }
    };
    eventually("bob's disconnect is applied", || async {
        seats(g1.clone()).await == 1
    })
    .await;

    // Redis dies: the lobby keeps working
    redis.kill9();
    assert_eq!(
        app.join("quad", &g1, "bob").await.status(),
        200,
        "bob sits again"
    );
    let g2 = app.create("quad", "carol").await["game_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.get("/game_lobby/quad/open_games").await.status(), 200);

    // Redis is back with its stream: intake resumes after the last entry it applied
    let mut redis = Redis::start(dir.clone(), port).unwrap();
    redis
        .append(&[
            ("type", "state_change"),
            ("product_id", "quad"),
            ("game_id", &g2),
            ("new_state", "creator_joined"),
        ])
        .await;
    eventually(
        "the entry appended after the restart is applied",
        || async { app.open_ids("quad", "").await.contains(&g2) },
    )
    .await;
    assert_eq!(
        seats(g1.clone()).await,
        2,
        "bob's old disconnect is not applied again"
    );
    redis.kill9();
}
