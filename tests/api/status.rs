//! `GET /game_lobby/{product_id}/games/{game_id}`: the full game for its players, the partial
//! game for anyone else.

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{problem, spawn_app};

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn players_see_the_full_game_and_others_the_partial_game(db: PgPool) {
    let app = spawn_app(db).await;
    let id = app.open_game("exrps", "alice").await;
    let path = format!("/game_lobby/exrps/games/{id}");

    let res = app.get_as(&path, "alice").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let full: Value = res.json().await.unwrap();
    assert_eq!(full["game_id"], id.as_str());
    assert_eq!(full["state"], "creator_joined");
    assert_eq!(full["token"], "feedc0ffee");
    assert_eq!(full["players"], json!(["alice"]));
    assert_eq!(full["target_game_server"], "rps.test:8085");
    assert!(full["_last_updated"].is_string());

    let partial: Value = app.get_as(&path, "bob").await.json().await.unwrap();
    assert_eq!(partial["game_id"], id.as_str());
    assert_eq!(partial["free_seats"], 1);
    for hidden in ["token", "state", "_last_updated", "target_game_server"] {
        assert!(
            partial.get(hidden).is_none(),
            "{hidden} shown to a non-player"
        );
    }

    // once bob joins, he sees the full game too
    assert_eq!(app.join("exrps", &id, "bob").await.status(), 200);
    let full: Value = app.get_as(&path, "bob").await.json().await.unwrap();
    assert_eq!(full["players"], json!(["alice", "bob"]));
    assert_eq!(full["token"], "feedc0ffee");
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn status_checks_product_then_token_then_game(db: PgPool) {
    let app = spawn_app(db).await;
    let id = app.open_game("exrps", "alice").await;

    // product first, even without a token
    let res = app.get(&format!("/game_lobby/nope/games/{id}")).await;
    assert_eq!(
        problem(res).await,
        (400, "Game Lobby: Invalid product ID.".into())
    );
    let res = app.get(&format!("/game_lobby/exrps/games/{id}")).await;
    assert_eq!(
        problem(res).await,
        (401, "Game Lobby: Not authorized.".into())
    );
    let res = app
        .http
        .get(format!("{}/game_lobby/exrps/games/{id}", app.base))
        .header("authorization", "Bearer not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res).await.0, 401);

    let missing = uuid::Uuid::new_v4().simple().to_string();
    let res = app
        .get_as(&format!("/game_lobby/exrps/games/{missing}"), "alice")
        .await;
    assert_eq!(
        problem(res).await,
        (
            404,
            format!("Game Lobby: Game not found. Game ID: \"{missing}\", Product ID: exrps.")
        )
    );
    // a game of another product is not found
    let res = app
        .get_as(&format!("/game_lobby/quad/games/{id}"), "alice")
        .await;
    assert_eq!(problem(res).await.0, 404);
    // malformed ids are a 400, well-formed non-ids a 404
    let res = app.get_as("/game_lobby/exrps/games/x!y", "alice").await;
    assert_eq!(problem(res).await.0, 400);
    let res = app.get_as("/game_lobby/exrps/games/abc", "alice").await;
    assert_eq!(problem(res).await.0, 404);
}
