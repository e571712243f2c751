//! Expiry, resets, abandoned reservations, the outbox and shutdown.

use std::{collections::HashSet, time::Duration};

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{Behaviour, GameServerStub, TestApp, eventually, settings, spawn_with};

/// Fast timers: every state expires after a second, the reaper looks every 100 ms.
const FAST: &str = r#"
reaper_interval_ms = 100
reservation_timeout_ms = 1000
outbox_backoff_ms = 50
[expiry]
created = 1
creator_joined = 1
all_players_joined = 1
in_progress = 1
ended = 1
"#;

async fn spawn_fast(db: PgPool, stub: GameServerStub, extra: &str) -> TestApp {
    let settings = settings(&stub, &format!("{extra}\n{FAST}"));
    spawn_with(db, stub, settings).await
}

async fn games(db: &PgPool) -> i64 {
    sqlx::query_scalar!("select count(*) from games")
        .fetch_one(db)
        .await
        .unwrap()
        .unwrap_or(0)
}

async fn owed(db: &PgPool) -> i64 {
    sqlx::query_scalar!("select count(*) from game_server_outbox where gave_up_at is null")
        .fetch_one(db)
        .await
        .unwrap()
        .unwrap_or(0)
}

fn ids(calls: &[Value]) -> HashSet<String> {
    calls
        .iter()
        .map(|c| c["gameId"].as_str().unwrap().to_string())
        .collect()
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn every_state_expires_and_the_game_server_is_told(db: PgPool) {
    let stub = GameServerStub::start().await;
    let app = spawn_fast(db.clone(), stub.clone(), "").await;
    let mut expected = HashSet::new();
    for (i, steps) in [
        &[][..],
        &["creator_joined"][..],
        &["creator_joined", "all_players_joined"][..],
        &["creator_joined", "all_players_joined", "in_progress"][..],
        &[
            "creator_joined",
            "all_players_joined",
            "in_progress",
            "ended",
        ][..],
    ]
    .iter()
    .enumerate()
    {
        let game = app.create("exrps", &format!("creator{i}")).await;
        let id = game["game_id"].as_str().unwrap().to_string();
        for state in *steps {
            app.set_state("exrps", &id, state).await;
        }
        expected.insert(id);
    }
    eventually("every game expired", || async { games(&db).await == 0 }).await;
    eventually("remove_game sent for each", || async {
        ids(&stub.calls("remove_game")) == expected && owed(&db).await == 0
    })
    .await;
    assert_eq!(stub.calls("remove_game").len(), 5, "each sent once");
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_full_game_whose_joiner_never_connects_is_reset(db: PgPool) {
    let stub = GameServerStub::start().await;
    let app = spawn_fast(db.clone(), stub.clone(), "").await;
    let id = app.open_game("exrps", "alice").await;
    // keep the game alive past its first deadline only through the join
    assert_eq!(app.join("exrps", &id, "bob").await.status(), 200);
    assert!(app.open_ids("exrps", "").await.is_empty());
    eventually("the game is listed again", || async {
        app.open_ids("exrps", "").await == vec![id.clone()]
    })
    .await;
    eventually("bob is removed from the game server", || async {
        stub.calls("remove_player") == vec![json!({"gameId": id, "userId": "bob"})]
    })
    .await;
    assert!(stub.calls("remove_game").is_empty() || games(&db).await == 0);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn every_change_restarts_the_clock(db: PgPool) {
    let stub = GameServerStub::start().await;
    let settings = settings(
        &stub,
        "[expiry]\ncreated = 60\ncreator_joined = 600\nall_players_joined = 3000",
    );
    let app = spawn_with(db.clone(), stub, settings).await;
    let game = app.create("exrps", "alice").await;
    let id = game["game_id"].as_str().unwrap().to_string();
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    let remaining = || async {
        sqlx::query_scalar!(
            r#"select extract(epoch from expires_at - now())::float8 as "s!" from games where game_id = $1"#,
            uuid
        )
        .fetch_one(&db)
        .await
        .unwrap()
    };
    let left = remaining().await;
    assert!((50.0..=60.0).contains(&left), "created: {left}");
    app.set_state("exrps", &id, "creator_joined").await;
    let left = remaining().await;
    assert!((590.0..=600.0).contains(&left), "creator_joined: {left}");
    app.set_state("exrps", &id, "all_players_joined").await;
    let left = remaining().await;
    assert!(
        (2990.0..=3000.0).contains(&left),
        "all_players_joined: {left}"
    );
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn an_abandoned_reservation_is_freed_and_the_player_removed(db: PgPool) {
    let stub = GameServerStub::start().await;
    let settings = settings(
        &stub,
        "reaper_interval_ms = 100\nreservation_timeout_ms = 1000",
    );
    let app = spawn_with(db.clone(), stub.clone(), settings).await;
    let id = app.open_game("quad", "alice").await;
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    // a process reserved a seat for bob, then died before confirming it
    sqlx::query!(
        "insert into game_players (game_id, num_players, player_id, username, seat, status, joined_at)
         values ($1, 4, 'bob', 'bob-name', 1, 'reserved', now() - interval '1 hour')",
        uuid
    )
    .execute(&db)
    .await
    .unwrap();
    eventually("bob is removed from the game server", || async {
        stub.calls("remove_player") == vec![json!({"gameId": id, "userId": "bob"})]
    })
    .await;
    let seats = sqlx::query_scalar!("select count(*) from game_players where game_id = $1", uuid)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(seats, Some(1), "only the creator's seat is left");
    let listed: Vec<Value> = app
        .get("/game_lobby/quad/open_games")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["free_seats"], 3);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn owed_calls_are_retried_until_the_game_server_answers(db: PgPool) {
    let stub = GameServerStub::start().await;
    stub.set("remove_game", Behaviour::Refuse(503));
    let app = spawn_fast(db.clone(), stub.clone(), "").await;
    let game = app.create("exrps", "alice").await;
    let id = game["game_id"].as_str().unwrap().to_string();
    eventually("several attempts failed", || async {
        stub.calls("remove_game").len() >= 3
    })
    .await;
    assert_eq!(owed(&db).await, 1, "still owed while the game server fails");
    stub.set("remove_game", Behaviour::Ok);
    eventually("the call went through", || async { owed(&db).await == 0 }).await;
    assert!(ids(&stub.calls("remove_game")).contains(&id));
    drop(app);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn owed_calls_are_given_up_after_the_configured_attempts(db: PgPool) {
    let stub = GameServerStub::start().await;
    stub.set("remove_game", Behaviour::Refuse(500));
    let _app = spawn_fast(db.clone(), stub.clone(), "outbox_max_attempts = 3").await;
    _app.create("exrps", "alice").await;
    eventually("the call is given up", || async {
        sqlx::query_scalar!(
            "select count(*) from game_server_outbox where gave_up_at is not null and attempts = 3"
        )
        .fetch_one(&db)
        .await
        .unwrap()
            == Some(1)
    })
    .await;
    assert_eq!(stub.calls("remove_game").len(), 3);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_call_claimed_by_a_dead_dispatcher_is_sent_by_another(db: PgPool) {
    let stub = GameServerStub::start().await;
    let game_id = uuid::Uuid::new_v4();
    // a process owed the call, claimed it (lease of one second) and died before sending
    matchmaker::store::outbox::owe_remove_game(&db, "exrps", game_id, None)
        .await
        .unwrap();
    let claimed = matchmaker::store::outbox::claim(&db, 10, 1.0)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let _app = spawn_fast(db.clone(), stub.clone(), "").await;
    eventually("another process sends it", || async {
        stub.calls("remove_game") == vec![json!({"gameId": game_id.simple().to_string()})]
    })
    .await;
    eventually("and clears it", || async { owed(&db).await == 0 }).await;
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn two_processes_handle_each_expired_game_once(db: PgPool) {
    let stub = GameServerStub::start().await;
    let first = spawn_fast(db.clone(), stub.clone(), "").await;
    let second = spawn_fast(db.clone(), stub.clone(), "").await;
    let mut expected = HashSet::new();
    for i in 0..30 {
        let app = if i % 2 == 0 { &first } else { &second };
        let game = app.create("exrps", &format!("c{i}")).await;
        expected.insert(game["game_id"].as_str().unwrap().to_string());
    }
    eventually("all expired and sent", || async {
        games(&db).await == 0 && owed(&db).await == 0
    })
    .await;
    let calls = stub.calls("remove_game");
    assert_eq!(ids(&calls), expected);
    assert_eq!(calls.len(), 30, "no call sent twice");
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn shutdown_lets_requests_in_flight_finish(db: PgPool) {
    let stub = GameServerStub::start().await;
    let settings = settings(&stub, "");
    let app = spawn_with(db, stub.clone(), settings).await;
    let id = app.open_game("exrps", "alice").await;
    stub.set("join_game", Behaviour::Delay(Duration::from_millis(300)));
    let join = tokio::spawn({
        let (http, url) = (
            app.http.clone(),
            format!("{}/game_lobby/exrps/join_game/{id}", app.base),
        );
        async move {
            http.post(url)
                .bearer_auth(crate::helpers::token("bob"))
                .send()
                .await
        }
    });
    eventually("the join reached the game server", || async {
        !stub.calls("join_game").is_empty()
    })
    .await;
    app.stop().await;
    let res = join.await.unwrap().unwrap();
    assert_eq!(res.status(), 200);
}
