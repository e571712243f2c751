//! `Idempotency-Key` on create_game and quick_match.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{Behaviour, TestApp, eventually, problem, spawn_app, token};

async fn post_keyed(
    app: &TestApp,
    path: &str,
    user: &str,
    key: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app
        .http
        .post(format!("{}{path}", app.base))
        .bearer_auth(token(user))
        .header("idempotency-key", key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

async fn games(app: &TestApp) -> i64 {
    sqlx::query_scalar!(r#"select count(*) as "n!" from games"#)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_retry_with_the_same_key_answers_the_first_game(db: PgPool) {
    let app = spawn_app(db).await;
    let create = "/game_lobby/exrps/create_game";
    let first = post_keyed(&app, create, "alice", "k-1", None).await;
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();

    let again = post_keyed(&app, create, "alice", "k-1", None).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["content-type"], "application/json");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first);
    assert_eq!(app.stub.calls("create_game").len(), 1);
    assert_eq!(games(&app).await, 1);

    // another key, or the same key of another player: new games
    let other: Value = post_keyed(&app, create, "alice", "k-2", None)
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(other["game_id"], first["game_id"]);
    let bobs: Value = post_keyed(&app, create, "bob", "k-1", None)
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(bobs["game_id"], first["game_id"]);
    assert_eq!(games(&app).await, 3);

    // the same key for a different request is refused
    let res = post_keyed(&app, create, "alice", "k-1", Some(json!({"private": true}))).await;
    assert_eq!(
        problem(res).await,
        (
            422,
            "Game Lobby: This Idempotency-Key was already used for a different request.".into()
        )
    );
    let res = post_keyed(&app, "/game_lobby/exrps/quick_match", "alice", "k-1", None).await;
    assert_eq!(problem(res).await.0, 422);
    let res = post_keyed(&app, "/game_lobby/quad/create_game", "alice", "k-1", None).await;
    assert_eq!(problem(res).await.0, 422);

    // a private game's code is replayed too
    let private = post_keyed(&app, create, "carol", "p", Some(json!({"private": true}))).await;
    let private: Value = private.json().await.unwrap();
    let replay = post_keyed(&app, create, "carol", "p", Some(json!({"private": true}))).await;
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["join_code"], private["join_code"]);
    assert!(replay["join_code"].is_string());
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn concurrent_retries_with_one_key_make_one_game(db: PgPool) {
    let app = spawn_app(db).await;
    // a slow game server keeps the first request running while the retries arrive
    for call in ["create_game", "join_game"] {
        app.stub
            .set(call, Behaviour::Delay(Duration::from_millis(300)));
    }
    // alice creates; bob's quick match then joins her game
    for (path, user) in [
        ("/game_lobby/quad/create_game", "alice"),
        ("/game_lobby/quad/quick_match", "bob"),
    ] {
        let answers = join_all((0..10).map(|_| post_keyed(&app, path, user, "same", None))).await;
        let mut ids = std::collections::HashSet::new();
        let mut replayed = 0;
        for res in answers {
            assert_eq!(res.status(), 200, "{path}");
            if res.headers().get("idempotent-replayed").is_some() {
                replayed += 1;
            }
            let game: Value = res.json().await.unwrap();
            ids.insert(game["game_id"].as_str().unwrap().to_string());
        }
        assert_eq!(ids.len(), 1, "{path}: {ids:?}");
        assert_eq!(replayed, 9, "{path}");
    }
    assert_eq!(app.stub.calls("create_game").len(), 1);
    assert_eq!(app.stub.calls("join_game").len(), 1);
    assert_eq!(games(&app).await, 1);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_failed_request_frees_its_key_and_keys_last_a_day(db: PgPool) {
    let app = spawn_app(db).await;
    let create = "/game_lobby/exrps/create_game";
    app.stub.set("create_game", Behaviour::Refuse(400));
    let res = post_keyed(&app, create, "alice", "k", None).await;
    assert_eq!(problem(res).await.0, 400);
    app.stub.set("create_game", Behaviour::Ok);
    let res = post_keyed(&app, create, "alice", "k", None).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers().get("idempotent-replayed").is_none(),
        "the failure was not stored"
    );
    let first: Value = res.json().await.unwrap();

    // a day later the key is new again, and the reaper forgets it
    sqlx::query!("update idempotency_keys set created_at = now() - interval '25 hours'")
        .execute(&app.db)
        .await
        .unwrap();
    let res = post_keyed(&app, create, "alice", "k", None).await;
    let second: Value = res.json().await.unwrap();
    assert_ne!(second["game_id"], first["game_id"]);
    sqlx::query!("update idempotency_keys set created_at = now() - interval '25 hours'")
        .execute(&app.db)
        .await
        .unwrap();
    eventually("the reaper deletes day-old keys", || async {
        sqlx::query_scalar!(r#"select count(*) as "n!" from idempotency_keys"#)
            .fetch_one(&app.db)
            .await
            .unwrap()
            == 0
    })
    .await;
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn bad_keys_are_a_400_after_product_and_token(db: PgPool) {
    let app = spawn_app(db).await;
    let long = "k".repeat(256);
    for path in [
        "/game_lobby/exrps/create_game",
        "/game_lobby/exrps/quick_match",
    ] {
        for key in ["", "with space", long.as_str(), "tab\there"] {
            let res = post_keyed(&app, path, "alice", key, None).await;
            assert_eq!(
                problem(res).await,
                (
                    400,
                    "Game Lobby: Invalid Idempotency-Key - expected 1 to 255 visible ASCII characters."
                        .into()
                ),
                "{path} {key:?}"
            );
        }
        let res = app
            .http
            .post(format!("{}{}", app.base, path.replace("exrps", "nope")))
            .header("idempotency-key", "")
            .send()
            .await
            .unwrap();
        assert_eq!(problem(res).await.0, 400);
        let res = app
            .http
            .post(format!("{}{path}", app.base))
            .header("idempotency-key", "")
            .send()
            .await
            .unwrap();
        assert_eq!(problem(res).await.0, 401);
    }
    assert_eq!(games(&app).await, 0);
}
