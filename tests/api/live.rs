//! The live lobby: `GET /game_lobby/{product_id}/open_games/stream` (Server-Sent Events).

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestApp, problem, settings, spawn_app, spawn_with, token};

/// Reads a `text/event-stream` body event by event.
pub struct Sse {
    res: reqwest::Response,
    buf: String,
    /// Comment lines seen so far (`: heartbeat`).
    pub comments: Vec<String>,
}

impl Sse {
    pub async fn open(app: &TestApp, path: &str, user: &str) -> Sse {
        let res = app
            .http
            .get(format!("{}{path}", app.base))
            .bearer_auth(token(user))
            .send()
            .await
            .unwrap();
        Self::from(res)
    }

    pub fn from(res: reqwest::Response) -> Sse {
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        Sse {
            res,
            buf: String::new(),
            comments: Vec::new(),
        }
    }

    /// The next event as (name, data); `None` when the stream ends. Fails after 10 s.
    pub async fn next(&mut self) -> Option<(String, Value)> {
        tokio::time::timeout(Duration::from_secs(10), self.next_inner())
            .await
            .expect("no event within 10 s")
    }

    async fn next_inner(&mut self) -> Option<(String, Value)> {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut name, mut data) = (None, String::new());
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        self.comments.push(c.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        name = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if let Some(name) = name {
                    return Some((name, serde_json::from_str(&data).unwrap()));
                }
            }
            match self.res.chunk().await {
                Ok(Some(bytes)) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    /// Skips events until one named `name` about `game_id` comes.
    pub async fn until(&mut self, name: &str, game_id: &str) -> Value {
        loop {
            let (event, data) = self.next().await.expect("stream ended");
            if event == name && data["game_id"] == game_id {
                return data;
            }
        }
    }
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn changes_on_one_process_reach_subscribers_of_another(db: PgPool) {
    let a = spawn_app(db.clone()).await;
    let b = spawn_with(db, a.stub.clone(), settings(&a.stub, "")).await;
    let before = a.open_game("quad", "alice").await;

    // a subscriber on A, with the header; another on B, with ?access_token= (EventSource)
    let mut on_a = Sse::open(&a, "/game_lobby/quad/open_games/stream", "watcher").await;
    let res = b
        .http
        .get(format!(
            "{}/game_lobby/quad/open_games/stream?access_token={}",
            b.base,
            token("other")
        ))
        .send()
        .await
        .unwrap();
    let mut on_b = Sse::from(res);
    for sse in [&mut on_a, &mut on_b] {
        let (event, page) = sse.next().await.unwrap();
        assert_eq!(event, "snapshot");
        assert_eq!(page.as_array().unwrap().len(), 1);
        assert_eq!(page[0]["game_id"], before.as_str());
    }

    // a game opened through B is listed on A's stream, and the other way round
    let id = b.open_game("quad", "bob").await;
    let listed = on_a.until("listed", &id).await;
    assert_eq!(listed["creator_id"], "bob");
    assert_eq!(listed["free_seats"], 3);
    assert!(listed.get("token").is_none(), "partial games only");
    on_b.until("listed", &id).await;

    // a join through A changes it on B's stream
    assert_eq!(a.join("quad", &id, "carol").await.status(), 200);
    loop {
        let changed = on_b.until("changed", &id).await;
        if changed["players"] == json!(["bob", "carol"]) {
            assert_eq!(changed["free_seats"], 2);
            break;
        }
    }
    // the creator leaving unlists it everywhere
    let res = b
        .post(&format!("/game_lobby/quad/leave_game/{id}"), Some("bob"))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(on_a.until("unlisted", &id).await, json!({"game_id": id}));
    on_b.until("unlisted", &id).await;

    // private games never show up; a game filled to the last seat is unlisted
    let private = a
        .http
        .post(format!("{}/game_lobby/exrps/create_game", a.base))
        .bearer_auth(token("dave"))
        .json(&json!({"private": true}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let private_id = private["game_id"].as_str().unwrap().to_string();
    b.set_state("exrps", &private_id, "creator_joined").await;
    let mut exrps = Sse::open(&a, "/game_lobby/exrps/open_games/stream", "watcher").await;
    assert_eq!(exrps.next().await.unwrap(), ("snapshot".into(), json!([])));
    let public = b.open_game("exrps", "erin").await;
    let (event, data) = exrps.next().await.unwrap();
    assert_eq!(
        (event.as_str(), data["game_id"].as_str()),
        ("listed", Some(public.as_str()))
    );
    assert_eq!(b.join("exrps", &public, "frank").await.status(), 200);
    exrps.until("unlisted", &public).await;
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn streams_filter_on_settings_and_send_heartbeats(db: PgPool) {
    let stub = crate::helpers::GameServerStub::start().await;
    let app = spawn_with(
        db,
        stub.clone(),
        settings(&stub, "lobby_stream_heartbeat_ms = 100"),
    )
    .await;
    let mut ranked = Sse::open(
        &app,
        "/game_lobby/quad/open_games/stream?settings.mode=ranked&count=5",
        "watcher",
    )
    .await;
    let mut casual = Sse::open(
        &app,
        "/game_lobby/quad/open_games/stream?settings.mode=casual",
        "watcher",
    )
    .await;
    assert_eq!(ranked.next().await.unwrap().0, "snapshot");
    assert_eq!(casual.next().await.unwrap().0, "snapshot");
    let id = app.open_game("quad", "alice").await;
    ranked.until("listed", &id).await;
    // heartbeats arrive while nothing happens; the casual stream sees nothing of the ranked game
    // until it ends
    let quiet = tokio::time::timeout(Duration::from_millis(600), casual.next()).await;
    assert!(
        quiet.is_err(),
        "no event for a game that does not match: {quiet:?}"
    );
    assert!(
        casual.comments.iter().any(|c| c == "heartbeat"),
        "{:?}",
        casual.comments
    );
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn the_stream_checks_product_then_token_then_query(db: PgPool) {
    let app = spawn_app(db).await;
    let res = app.get("/game_lobby/nope/open_games/stream").await;
    assert_eq!(
        problem(res).await,
        (400, "Game Lobby: Invalid product ID.".into())
    );
    let res = app.get("/game_lobby/exrps/open_games/stream").await;
    assert_eq!(
        problem(res).await,
        (401, "Game Lobby: Not authorized.".into())
    );
    let res = app
        .get("/game_lobby/exrps/open_games/stream?access_token=not.a.jwt")
        .await;
    assert_eq!(problem(res).await.0, 401);
    let res = app
        .get_as("/game_lobby/exrps/open_games/stream?count=x", "alice")
        .await;
    assert_eq!(problem(res).await.0, 400);
    let res = app
        .get_as("/game_lobby/exrps/open_games/stream?settings.=x", "alice")
        .await;
    assert_eq!(problem(res).await.0, 400);
    // a token in the URL is accepted on the stream only
    let res = app
        .post(
            &format!(
                "/game_lobby/exrps/create_game?access_token={}",
                token("alice")
            ),
            None,
        )
        .await;
    assert_eq!(
        problem(res).await,
        (401, "Game Lobby: Not authorized.".into())
    );
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn shutdown_ends_open_streams(db: PgPool) {
    let app = spawn_app(db).await;
    let mut sse = Sse::open(&app, "/game_lobby/exrps/open_games/stream", "watcher").await;
    assert_eq!(sse.next().await.unwrap().0, "snapshot");
    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("the service stops although a stream is open");
    assert!(sse.next().await.is_none(), "the stream ended");
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_lost_listener_connection_ends_the_streams_and_recovers(db: PgPool) {
    let app = spawn_app(db).await;
    let mut sse = Sse::open(&app, "/game_lobby/exrps/open_games/stream", "watcher").await;
    assert_eq!(sse.next().await.unwrap().0, "snapshot");

    // kill the listener's database connection: notifications may be missed meanwhile, so the
    // stream ends and the client starts over
    let killed: i64 = sqlx::query_scalar!(
        r#"select count(pg_terminate_backend(pid)) as "n!" from pg_stat_activity
           where datname = current_database() and pid <> pg_backend_pid()
             and query like '%LISTEN%matchmaker_lobby%'"#
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(killed, 1);
    assert!(sse.next().await.is_none(), "the stream ended");

    // a new subscriber is served by the reconnected listener
    let mut again = Sse::open(&app, "/game_lobby/exrps/open_games/stream", "watcher").await;
    assert_eq!(again.next().await.unwrap().0, "snapshot");
    let id = app.open_game("exrps", "alice").await;
    again.until("listed", &id).await;
}
