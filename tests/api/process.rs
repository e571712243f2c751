//! The `matchmaker` binary itself: start-up and a bounded graceful shutdown on SIGTERM.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use sqlx::PgPool;

use crate::helpers::{Behaviour, GameServerStub, database_url, eventually, free_port, token};

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn sigterm_exits_zero_within_the_shutdown_timeout(db: PgPool) {
    let url = database_url(&db);
    let stub = GameServerStub::start().await;
    stub.set("create_game", Behaviour::Hang);
    let config = std::env::temp_dir().join(format!("mm-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(
        &config,
        format!(
            "[[games]]\nproduct_id = \"exrps\"\ngame_server_url = \"{}\"\ngame_socket_url = \"x:1\"\n",
            stub.url
        ),
    )
    .unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_matchmaker"))
        .arg("serve")
        .env("DATABASE_URL", &url)
        .env("MATCHMAKER_SECRET_KEY", crate::helpers::SECRET)
        .env("MATCHMAKER_CONFIG", &config)
        .env("MATCHMAKER_BIND", format!("127.0.0.1:{port}"))
        .env("MATCHMAKER_GAME_SERVER_TIMEOUT_MS", "20000")
        .env("MATCHMAKER_RESERVATION_TIMEOUT_MS", "30000")
        .env("MATCHMAKER_SHUTDOWN_TIMEOUT_MS", "500")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    eventually("the service is ready", || async {
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;

    // a request stuck on the game server for longer than the shutdown may take
    let stuck = tokio::spawn({
        let (http, base) = (http.clone(), base.clone());
        async move {
            http.post(format!("{base}/game_lobby/exrps/create_game"))
                .bearer_auth(token("alice"))
                .send()
                .await
        }
    });
    eventually("the request reached the game server", || async {
        !stub.calls("create_game").is_empty()
    })
    .await;
    let started = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by shutdown_timeout_ms"
    );
    stuck.abort();
    let _ = std::fs::remove_file(config);
}
