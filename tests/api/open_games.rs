use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{problem, spawn_app};

#[sqlx::test(migrator = "matchmaker::app::MIGRATOR")]
async fn open_games_pages_oldest_first(db: PgPool) {
    let app = spawn_app(db).await;
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(app.open_game("exrps", &format!("creator{i}")).await);
    }
    assert_eq!(
        app.open_ids("exrps", "").await,
        ids[..10].to_vec(),
        "default page size 10"
    );
    assert_eq!(
        app.open_ids("exrps", "?count=5&page=2").await,
        ids[10..15].to_vec()
    );
    assert_eq!(
        app.open_ids("exrps", "?count=100").await,
        ids[..25].to_vec(),
        "capped at 25"
    );
    assert_eq!(
        app.open_ids("exrps", "?count=25&page=1").await,
        ids[25..].to_vec()
    );
    assert!(
        app.open_ids("exrps", "?page=99999999999999999999")
            .await
            .is_empty()
    );
    assert!(
        app.open_ids("nope", "").await.is_empty(),
        "unknown product: []"
    );

    let res = app.get("/game_lobby/exrps/open_games?count=1").await;
    assert_eq!(res.headers()["content-type"], "application/json");
    let games: Vec<Value> = res.json().await.unwrap();
    let game = games[0].as_object().unwrap();
    for field in [
        "game_id",
        "product_id",
        "game_server_url",
        "creator_id",
        "creator_name",
        "players",
        "settings",
    ] {
        assert!(game.contains_key(field), "{field}");
    }
    for field in ["token", "state", "_last_updated"] {
        assert!(
            !game.contains_key(field),
            "{field} is not in the partial game"
        );
    }
    assert_eq!(game["players"], serde_json::json!(["creator0"]));
    assert_eq!(game["free_seats"], 1);
}

#[sqlx::test(migrator = "matchmaker::app::MIGRATOR")]
async fn bad_paging_is_a_400(db: PgPool) {
    let app = spawn_app(db).await;
    for query in ["count=abc", "page=1.5", "count=", "page=x&count=2"] {
        let res = app
            .get(&format!("/game_lobby/exrps/open_games?{query}"))
            .await;
        assert_eq!(
            problem(res).await,
            (
                400,
                "Invalid request - page size and entry count must be integers.".into()
            ),
            "{query}"
        );
    }
    for query in ["count=-1", "page=-2"] {
        let res = app
            .get(&format!("/game_lobby/exrps/open_games?{query}"))
            .await;
        assert_eq!(problem(res).await.0, 400, "{query}");
    }
}

#[sqlx::test(migrator = "matchmaker::app::MIGRATOR")]
async fn any_origin_may_call_the_lobby(db: PgPool) {
    let app = spawn_app(db).await;
    let res = app
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/game_lobby/exrps/create_game", app.base),
        )
        .header("origin", "https://portal.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
}
