use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{EVENT_KEY, problem, spawn_app, state_of};

async fn outcomes(res: reqwest::Response) -> Vec<String> {
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap().to_string())
        .collect()
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn state_changes_move_one_step_forward_only(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let game = app.create("exrps", "alice").await;
    let id = game["game_id"].as_str().unwrap();
    let change = |to: &str| json!({"type": "state_change", "product_id": "exrps", "game_id": id, "new_state": to});
    let res = app
        .events(
            "exrps",
            json!([
                change("all_players_joined"),
                change("creator_joined"),
                change("creator_joined"),
                change("all_players_joined"),
                change("in_progress"),
                change("ended"),
                change("created")
            ]),
        )
        .await;
    assert_eq!(
        outcomes(res).await,
        [
            "invalid_transition",
            "applied",
            "invalid_transition",
            "applied",
            "applied",
            "applied",
            "invalid_transition"
        ]
    );
    assert_eq!(state_of(&db, id).await.as_deref(), Some("ended"));
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn disconnects_free_the_seat_and_relist_the_game(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let id = app.open_game("exrps", "alice").await;
    assert_eq!(app.join("exrps", &id, "bob").await.status(), 200);
    app.set_state("exrps", &id, "all_players_joined").await;
    assert!(app.open_ids("exrps", "").await.is_empty());

    let disconnect = |who: &str| json!({"type": "player_disconnect", "product_id": "exrps", "game_id": id, "player_id": who});
    let res = app
        .events(
            "exrps",
            json!([disconnect("alice"), disconnect("zoe"), disconnect("bob")]),
        )
        .await;
    assert_eq!(
        outcomes(res).await,
        ["invalid_transition", "invalid_transition", "applied"]
    );
    assert_eq!(state_of(&db, &id).await.as_deref(), Some("creator_joined"));
    assert_eq!(app.open_ids("exrps", "").await, vec![id.clone()]);
    // the seat is free again
    let res = app.join("exrps", &id, "carol").await;
    let game: Value = res.json().await.unwrap();
    assert_eq!(game["players"], json!(["alice", "carol"]));
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn removal_unknown_games_and_malformed_events(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let id = app.open_game("exrps", "alice").await;
    let other = uuid::Uuid::new_v4().simple().to_string();
    let res = app
        .events(
            "exrps",
            json!([
                {"type": "gameplay", "product_id": "exrps", "game_id": id, "move": "rock"},
                {"type": "game_over", "product_id": "exrps", "game_id": id},
                {"type": "state_change", "product_id": "exrps", "game_id": other, "new_state": "creator_joined"},
                {"type": "state_change", "product_id": "exrps", "game_id": "zzz", "new_state": "creator_joined"},
                {"type": "state_change", "product_id": "exrps", "game_id": id, "new_state": "flying"},
                {"type": "state_change", "product_id": "quad", "game_id": id, "new_state": "all_players_joined"},
                {"no_type": true},
                "not an object",
                {"type": "game_removed", "game_id": id},
                {"type": "game_removed", "game_id": id},
            ]),
        )
        .await;
    assert_eq!(
        outcomes(res).await,
        [
            "ignored",
            "ignored",
            "unknown_game",
            "malformed",
            "malformed",
            "malformed",
            "malformed",
            "malformed",
            "applied",
            "unknown_game"
        ]
    );
    assert_eq!(state_of(&db, &id).await, None);
    assert!(app.open_ids("exrps", "").await.is_empty());
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn the_event_route_wants_the_products_key(db: PgPool) {
    let app = spawn_app(db).await;
    let event = json!({"type": "gameplay"}).to_string();
    // (product, key, body, expected status); `closed` has no event_key
    let cases = [
        ("exrps", None, event.as_str(), 401),
        ("exrps", Some("wrong-key"), event.as_str(), 401),
        ("closed", Some(EVENT_KEY), event.as_str(), 403),
        ("nope", Some(EVENT_KEY), event.as_str(), 400),
        ("exrps", Some(EVENT_KEY), "{", 400),
        ("exrps", Some(EVENT_KEY), "42", 400),
    ];
    for (product, key, body, status) in cases {
        let mut req = app
            .http
            .post(format!("{}/game_servers/{product}/events", app.base))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        let res = req.send().await.unwrap();
        assert_eq!(problem(res).await.0, status, "{product} {key:?} {body}");
    }
}
