//! The demo game server (`demo-game-server`) against a real matchmaker: the `make run` flow.

use std::process::{Child, Command, Stdio};

use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{EVENT_KEY, GameServerStub, eventually, settings, spawn_with};

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn the_demo_game_server_plays_its_players(db: PgPool) {
    let port = crate::helpers::free_port();
    let demo_url = format!("http://127.0.0.1:{port}");
    let stub = GameServerStub::start().await;
    let mut settings = settings(&stub, "");
    settings.products[0].game_server_url = demo_url.clone();
    let app = spawn_with(db, stub, settings).await;
    let _demo = Demo(
        Command::new(env!("CARGO_BIN_EXE_demo-game-server"))
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .args(["--matchmaker-url", &app.base, "--product-id", "exrps"])
            .args(["--event-key", EVENT_KEY, "--connect-delay-ms", "50"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    eventually("the demo game server is up", || async {
        http.get(format!("{demo_url}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;

    let game = app.create("exrps", "alice").await;
    let id = game["game_id"].as_str().unwrap().to_string();
    eventually("the creator connects and the game is listed", || async {
        app.open_ids("exrps", "").await == vec![id.clone()]
    })
    .await;
    let joined: Value = app.join("exrps", &id, "bob").await.json().await.unwrap();
    assert_eq!(joined["players"], serde_json::json!(["alice", "bob"]));
    let state = || crate::helpers::state_of(&app.db, &id);
    eventually("everyone connects", || async {
        state().await.as_deref() == Some("all_players_joined")
    })
    .await;

    // the control route simulates bob leaving: his seat is free and the game listed again
    let res = http
        .post(format!("{demo_url}/control/{id}/disconnect/bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    eventually("the game is listed again", || async {
        app.open_ids("exrps", "").await == vec![id.clone()]
    })
    .await;
    let res = http
        .post(format!("{demo_url}/control/{id}/finish"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    eventually("the finished game is gone", || async {
        state().await.is_none()
    })
    .await;
}
