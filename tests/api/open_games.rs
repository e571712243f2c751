use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{eventually, problem, spawn_app};

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
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

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
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

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
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

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn open_games_filter_on_settings(db: PgPool) {
    let app = spawn_app(db).await;
    let ranked = app.open_game("quad", "alice").await;
    let casual = app.open_game("quad", "bob").await;
    // games keep the settings their product had when they were created: change one, as a
    // configuration change between the two creations would have
    let id = uuid::Uuid::parse_str(&casual).unwrap();
    sqlx::query!(
        r#"update games set settings = '{"num_players": 4, "mode": "casual", "map": "moon"}' where game_id = $1"#,
        id
    )
    .execute(&app.db)
    .await
    .unwrap();
    // a write behind the service's back reaches its in-memory list by notification, a moment
    // later (docs/design.md)
    eventually("the changed settings reach the list", || async {
        app.open_ids("quad", "?settings.mode=casual").await == vec![casual.clone()]
    })
    .await;

    assert_eq!(
        app.open_ids("quad", "").await,
        vec![ranked.clone(), casual.clone()]
    );
    assert_eq!(
        app.open_ids("quad", "?settings.mode=ranked").await,
        vec![ranked.clone()]
    );
    assert_eq!(
        app.open_ids("quad", "?settings.mode=casual&settings.map=moon")
            .await,
        vec![casual.clone()]
    );
    assert!(
        app.open_ids("quad", "?settings.mode=casual&settings.map=mars")
            .await
            .is_empty()
    );
    // JSON values: a number is not the string of its digits
    assert_eq!(
        app.open_ids("quad", "?settings.num_players=4").await.len(),
        2
    );
    assert!(
        app.open_ids("quad", "?settings.num_players=%224%22")
            .await
            .is_empty()
    );
    // with paging, and with other parameters left alone as before
    assert_eq!(
        app.open_ids("quad", "?settings.num_players=4&count=1&page=1&colour=red")
            .await,
        vec![casual]
    );
    assert!(app.open_ids("quad", "?settings.mode=nope").await.is_empty());

    // the additive fields: free seats and an ISO-8601 listing time
    let res = app
        .get("/game_lobby/quad/open_games?settings.mode=ranked")
        .await;
    let games: Vec<Value> = res.json().await.unwrap();
    assert_eq!(games[0]["free_seats"], 3);
    let listed = games[0]["listed_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(listed).is_ok(),
        "{listed}"
    );

    let too_many: String = (0..11).map(|i| format!("settings.k{i}=v&")).collect();
    let res = app
        .get(&format!("/game_lobby/quad/open_games?{too_many}"))
        .await;
    assert_eq!(
        problem(res).await,
        (400, "Invalid request - at most 10 settings filters.".into())
    );
    let res = app.get("/game_lobby/quad/open_games?settings.=x").await;
    assert_eq!(problem(res).await.0, 400);
}
