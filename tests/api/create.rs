use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{Behaviour, eventually, problem, spawn_app};

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn create_answers_the_full_game_and_calls_the_game_server(db: PgPool) {
    let app = spawn_app(db).await;
    let res = app
        .post("/game_lobby/exrps/create_game", Some("alice"))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let game: Value = res.json().await.unwrap();

    let id = game["game_id"].as_str().unwrap();
    assert_eq!(id.len(), 32);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(game["product_id"], "exrps");
    assert_eq!(game["game_server_url"], app.stub.url.as_str());
    assert_eq!(game["creator_id"], "alice");
    assert_eq!(game["creator_name"], "alice-name");
    assert_eq!(game["players"], serde_json::json!(["alice"]));
    assert_eq!(game["settings"], serde_json::json!({"num_players": 2}));
    assert_eq!(game["token"], "feedc0ffee");
    assert_eq!(game["state"], "created");
    assert_eq!(game["target_game_server"], "rps.test:8085");
    // e.g. 23-Nov-2026 (18:52:07.123456)
    let stamp = game["_last_updated"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(stamp, "%d-%b-%Y (%H:%M:%S%.6f)").is_ok()
            && stamp.len() == 29,
        "{stamp}"
    );

    let calls = app.stub.calls("create_game");
    assert_eq!(
        calls,
        vec![serde_json::json!({"gameId": id, "userId": "alice", "username": "alice-name"})]
    );
    // created games are not listed until the creator connects
    assert!(app.open_ids("exrps", "").await.is_empty());
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn create_accepts_any_body(db: PgPool) {
    let app = spawn_app(db).await;
    for body in [
        "{\"game_type\":0,\"num_players\":2,\"creater_id\":7}",
        "not json",
        "",
    ] {
        let res = app
            .http
            .post(format!("{}/game_lobby/exrps/create_game", app.base))
            .bearer_auth(crate::helpers::token("alice"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "body {body:?}");
    }
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn game_server_failures_map_to_spec_statuses_and_store_nothing(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let cases = [
        (
            Behaviour::Refuse(400),
            400,
            "Unable to create game on target game server.",
        ),
        (
            Behaviour::Refuse(500),
            400,
            "Unable to create game on target game server.",
        ),
        (Behaviour::Hang, 502, "Unable to reach the game server."),
        (
            Behaviour::Garbage,
            502,
            "The game server gave an answer that could not be used.",
        ),
        (
            Behaviour::NoToken,
            502,
            "The game server gave an answer that could not be used.",
        ),
    ];
    for (behaviour, status, detail) in cases {
        app.stub.set("create_game", behaviour.clone());
        let res = app
            .post("/game_lobby/exrps/create_game", Some("alice"))
            .await;
        assert_eq!(
            problem(res).await,
            (status, detail.to_string()),
            "{behaviour:?}"
        );
    }
    let stored = sqlx::query_scalar!("select count(*) from games")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(stored, Some(0));
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn unreachable_game_server_is_a_502(db: PgPool) {
    let stub = crate::helpers::GameServerStub::start().await;
    let mut settings = crate::helpers::settings(&stub, "");
    // a port nothing listens on
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    settings.products[0].game_server_url = url;
    let app = crate::helpers::spawn_with(db, stub, settings).await;
    let res = app
        .post("/game_lobby/exrps/create_game", Some("alice"))
        .await;
    assert_eq!(
        problem(res).await,
        (502, "Unable to reach the game server.".into())
    );
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_failed_save_answers_500_and_removes_the_game_from_the_game_server(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    // make every insert of this creator fail
    sqlx::query("alter table games add constraint no_saboteurs check (creator_id <> 'saboteur')")
        .execute(&db)
        .await
        .unwrap();
    let res = app
        .post("/game_lobby/exrps/create_game", Some("saboteur"))
        .await;
    assert_eq!(
        problem(res).await,
        (
            500,
            "Game Lobby: Error saving the game. Please contact support.".into()
        )
    );
    let created = app.stub.calls("create_game");
    let id = created[0]["gameId"].clone();
    eventually("remove_game reaches the game server", || async {
        app.stub.calls("remove_game") == vec![serde_json::json!({"gameId": id})]
    })
    .await;
}
