//! Faults inside one process: creates the game server may or may not have taken, creates
//! abandoned by a dead process, and a database that is down.

use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{Behaviour, GameServerStub, eventually, problem, settings, spawn_with};

const FAST: &str =
    "reaper_interval_ms = 100\nreservation_timeout_ms = 1000\noutbox_backoff_ms = 50";

async fn intents(db: &PgPool) -> i64 {
    sqlx::query_scalar!("select count(*) from create_intents")
        .fetch_one(db)
        .await
        .unwrap()
        .unwrap_or(0)
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_create_the_game_server_may_have_taken_is_removed_from_it(db: PgPool) {
    for (behaviour, status) in [
        (Behaviour::Hang, 502),
        // SPEC: any non-2xx is "refused" (400), but a 5xx may have created the game
        (Behaviour::Refuse(503), 400),
        (Behaviour::Garbage, 502),
    ] {
        let stub = GameServerStub::start().await;
        stub.set("create_game", behaviour.clone());
        let app = spawn_with(db.clone(), stub.clone(), settings(&stub, FAST)).await;
        let res = app
            .post("/game_lobby/exrps/create_game", Some("alice"))
            .await;
        assert_eq!(problem(res).await.0, status, "{behaviour:?}");
        let sent = stub.calls("create_game")[0]["gameId"].clone();
        eventually("the game server is told to drop the game", || async {
            stub.calls("remove_game") == vec![json!({ "gameId": sent })]
        })
        .await;
        assert_eq!(intents(&db).await, 0);
        app.stop().await;
    }
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_refused_create_owes_nothing(db: PgPool) {
    let stub = GameServerStub::start().await;
    stub.set("create_game", Behaviour::Refuse(400));
    let app = spawn_with(db.clone(), stub.clone(), settings(&stub, FAST)).await;
    let res = app
        .post("/game_lobby/exrps/create_game", Some("alice"))
        .await;
    assert_eq!(
        problem(res).await,
        (400, "Unable to create game on target game server.".into())
    );
    assert_eq!(intents(&db).await, 0);
    let owed = sqlx::query_scalar!("select count(*) from game_server_outbox")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(owed, Some(0));
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_create_abandoned_by_a_dead_process_is_removed_from_the_game_server(db: PgPool) {
    let stub = GameServerStub::start().await;
    let app = spawn_with(db.clone(), stub.clone(), settings(&stub, FAST)).await;
    // a process asked the game server to create this game, then died before saving it
    let id = uuid::Uuid::new_v4();
    sqlx::query!(
        "insert into create_intents (game_id, product_id, creator_id, created_at)
         values ($1, 'exrps', 'ghost', now() - interval '1 hour')",
        id
    )
    .execute(&db)
    .await
    .unwrap();
    eventually("remove_game reaches the game server", || async {
        stub.calls("remove_game") == vec![json!({ "gameId": id.simple().to_string() })]
    })
    .await;
    assert_eq!(intents(&db).await, 0);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("matchmaker_reaper_actions_total{action=\"create_abandoned\"} 1"),
        "{metrics}"
    );
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_game_server_answering_after_the_reaper_gave_up_is_a_502_and_no_game(db: PgPool) {
    let stub = GameServerStub::start().await;
    // the game server is slower than the reservation timeout allows (config forbids this
    // in production; here the intent is removed by hand while the call is in flight)
    stub.set(
        "create_game",
        Behaviour::Delay(std::time::Duration::from_millis(300)),
    );
    let app = spawn_with(db.clone(), stub.clone(), settings(&stub, "")).await;
    let create = app.post("/game_lobby/exrps/create_game", Some("alice"));
    let sabotage = async {
        eventually("the create is in flight", || async {
            intents(&db).await == 1
        })
        .await;
        sqlx::query!("delete from create_intents")
            .execute(&db)
            .await
            .unwrap();
    };
    let (res, ()) = tokio::join!(create, sabotage);
    assert_eq!(problem(res).await.0, 502);
    let games = sqlx::query_scalar!("select count(*) from games")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(games, Some(0));
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_database_that_is_down_gives_503_and_not_ready(db: PgPool) {
    let stub = GameServerStub::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut config = settings(&stub, "");
    config.database_url = format!("postgres://postgres@127.0.0.1:{port}/nowhere");
    let down = matchmaker::startup::pool(&config).unwrap();
    let app = spawn_with(down, stub.clone(), config).await;
    drop(db);

    assert_eq!(app.get("/healthz").await.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(problem(ready).await.0, 503);
    let res = app
        .post("/game_lobby/exrps/create_game", Some("alice"))
        .await;
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(problem(res).await.0, 503);
    let res = app
        .post(
            "/game_lobby/exrps/join_game/0123456789abcdef0123456789abcdef",
            Some("bob"),
        )
        .await;
    assert_eq!(problem(res).await.0, 503);
    assert_eq!(
        problem(app.get("/game_lobby/exrps/open_games").await)
            .await
            .0,
        503
    );
    assert!(
        stub.calls("create_game").is_empty(),
        "nothing is asked of the game server"
    );
}
