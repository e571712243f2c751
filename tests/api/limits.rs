//! Abuse limits: body size, slow clients, rate limits, open games per player.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{GameServerStub, problem, settings, spawn_app, spawn_with, token};

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn bodies_over_the_limit_get_413(db: PgPool) {
    let stub = GameServerStub::start().await;
    let app = spawn_with(db, stub.clone(), settings(&stub, "max_body_bytes = 2048")).await;
    let big = "x".repeat(4096);
    // declared by Content-Length: refused before the handler runs
    let res = app
        .http
        .post(format!("{}/game_lobby/exrps/create_game", app.base))
        .bearer_auth(token("alice"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(res).await,
        (
            413,
            "Request body too large: the limit is 2048 bytes.".into()
        )
    );
    assert!(stub.calls("create_game").is_empty());
    // chunked, without a length: cut off while the handler reads it
    let mut conn = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let mut request = format!(
        "POST /game_servers/exrps/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        crate::helpers::EVENT_KEY
    );
    for _ in 0..4 {
        request.push_str(&format!("400\r\n{}\r\n", "y".repeat(1024)));
    }
    request.push_str("0\r\n\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    // under the limit is fine
    let res = app
        .http
        .post(format!("{}/game_lobby/exrps/create_game", app.base))
        .bearer_auth(token("alice"))
        .json(&json!({"game_type": 0, "num_players": 2, "creater_id": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn slow_clients_are_cut_off_by_the_header_read_timeout(db: PgPool) {
    let stub = GameServerStub::start().await;
    let app = spawn_with(
        db,
        stub.clone(),
        settings(&stub, "header_read_timeout_ms = 300"),
    )
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();
    // half a request head, then nothing
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
    let closed = read.expect("the server closes a slow client's connection");
    assert!(
        closed.is_err() || buf.is_empty() || buf.starts_with(b"HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
    // a prompt client on the same server is served
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn creates_and_joins_over_the_rate_limit_get_429_with_retry_after(db: PgPool) {
    let stub = GameServerStub::start().await;
    let app = spawn_with(
        db,
        stub.clone(),
        settings(
            &stub,
            "rate_limit_player_per_minute = 2\nmax_open_games_per_player = 0",
        ),
    )
    .await;
    for _ in 0..2 {
        app.create("exrps", "alice").await;
    }
    let res = app
        .post("/game_lobby/exrps/create_game", Some("alice"))
        .await;
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let (status, detail) = problem(res).await;
    assert_eq!(status, 429);
    assert!(detail.contains("Too many"), "{detail}");
    // joins share the quota
    let res = app
        .post(
            "/game_lobby/exrps/join_game/00000000000000000000000000000000",
            Some("alice"),
        )
        .await;
    assert_eq!(res.status(), 429);
    // another player has their own
    app.create("exrps", "bob").await;
    assert_eq!(stub.calls("create_game").len(), 3);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn the_per_address_limit_covers_every_player_from_it(db: PgPool) {
    let stub = GameServerStub::start().await;
    let app = spawn_with(
        db,
        stub.clone(),
        settings(&stub, "rate_limit_ip_per_minute = 3"),
    )
    .await;
    for user in ["p1", "p2", "p3"] {
        app.create("exrps", user).await;
    }
    let res = app.post("/game_lobby/exrps/create_game", Some("p4")).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(problem(res).await.0, 429);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn limits_are_off_by_default(db: PgPool) {
    let app = spawn_app(db).await;
    // three games is the default open-games limit; the rate limits are off
    for _ in 0..3 {
        app.create("exrps", "alice").await;
    }
    for i in 0..20 {
        let res = app
            .post(
                "/game_lobby/exrps/join_game/00000000000000000000000000000000",
                Some(&format!("p{i}")),
            )
            .await;
        assert_eq!(res.status(), 404);
    }
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_player_may_have_three_open_games_even_when_racing(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let attempts = futures::future::join_all(
        (0..12).map(|_| app.post("/game_lobby/exrps/create_game", Some("alice"))),
    )
    .await;
    let mut ok = 0;
    for res in attempts {
        match res.status().as_u16() {
            200 => ok += 1,
            409 => assert_eq!(
                problem(res).await.1,
                "Game Lobby: You already have 3 open games. Start, leave or wait for one of them \
                 before creating another."
            ),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 3);
    let stored = sqlx::query_scalar!("select count(*) from games where creator_id = 'alice'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(stored, Some(3));
    // a game that starts frees a slot; others' games don't count
    let first: String = sqlx::query_scalar!(
        "select replace(game_id::text, '-', '') as \"id!\" from games where creator_id = 'alice' limit 1"
    )
    .fetch_one(&db)
    .await
    .unwrap();
    app.set_state("exrps", &first, "creator_joined").await;
    let res = app.join("exrps", &first, "bob").await;
    assert_eq!(res.status(), 200);
    app.set_state("exrps", &first, "all_players_joined").await;
    app.create("exrps", "alice").await;
    app.create("exrps", "bob").await;
}
