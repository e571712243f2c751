//! `POST /game_lobby/{product_id}/leave_game/{game_id}`.

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{Behaviour, eventually, problem, spawn_app};

async fn leave(app: &crate::helpers::TestApp, product: &str, id: &str, user: &str) -> Value {
    let res = app
        .post(
            &format!("/game_lobby/{product}/leave_game/{id}"),
            Some(user),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    res.json().await.unwrap()
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_joiner_leaving_frees_the_seat_and_relists_the_game(db: PgPool) {
    let app = spawn_app(db).await;
    let id = app.open_game("exrps", "alice").await;
    assert_eq!(app.join("exrps", &id, "bob").await.status(), 200);
    app.set_state("exrps", &id, "all_players_joined").await;
    assert!(app.open_ids("exrps", "").await.is_empty());

    let answer = leave(&app, "exrps", &id, "bob").await;
    assert_eq!(answer, json!({"game_id": id, "outcome": "seat_released"}));
    assert_eq!(app.open_ids("exrps", "").await, vec![id.clone()]);
    let game: Value = app
        .get_as(&format!("/game_lobby/exrps/games/{id}"), "alice")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(game["players"], json!(["alice"]));
    assert_eq!(game["state"], "creator_joined");
    eventually("the game server is told to remove bob", || async {
        app.stub.calls("remove_player") == vec![json!({"gameId": id, "userId": "bob"})]
    })
    .await;

    // idempotent: again, nothing happens and nothing more is owed
    let again = leave(&app, "exrps", &id, "bob").await;
    assert_eq!(again["outcome"], "not_seated");
    // someone else may take the seat now
    assert_eq!(app.join("exrps", &id, "carol").await.status(), 200);
    assert_eq!(app.stub.calls("remove_player").len(), 1);
    assert!(app.stub.calls("remove_game").is_empty());
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn the_creator_leaving_removes_the_game(db: PgPool) {
    let app = spawn_app(db).await;
    let id = app.open_game("quad", "alice").await;
    assert_eq!(app.join("quad", &id, "bob").await.status(), 200);

    let answer = leave(&app, "quad", &id, "alice").await;
    assert_eq!(answer["outcome"], "game_removed");
    assert!(app.open_ids("quad", "").await.is_empty());
    let res = app
        .get_as(&format!("/game_lobby/quad/games/{id}"), "bob")
        .await;
    assert_eq!(problem(res).await.0, 404);
    eventually("the game server is told to remove the game", || async {
        app.stub.calls("remove_game") == vec![json!({"gameId": id})]
    })
    .await;
    // idempotent, for the creator and the former joiner alike
    for user in ["alice", "bob"] {
        assert_eq!(
            leave(&app, "quad", &id, user).await["outcome"],
            "not_seated"
        );
    }
    assert_eq!(app.stub.calls("remove_game").len(), 1);
    assert!(app.stub.calls("remove_player").is_empty());
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn leave_checks_product_then_token_then_game(db: PgPool) {
    let app = spawn_app(db).await;
    let id = app.open_game("exrps", "alice").await;
    let res = app
        .post(&format!("/game_lobby/nope/leave_game/{id}"), None)
        .await;
    assert_eq!(
        problem(res).await,
        (400, "Game Lobby: Invalid product ID.".into())
    );
    let res = app
        .post(&format!("/game_lobby/exrps/leave_game/{id}"), None)
        .await;
    assert_eq!(
        problem(res).await,
        (401, "Game Lobby: Not authorized.".into())
    );
    let res = app
        .post("/game_lobby/exrps/leave_game/not-hex!", Some("bob"))
        .await;
    assert_eq!(problem(res).await.0, 400);
    // a stranger, a game of another product, a game that never existed: nothing to do
    let missing = uuid::Uuid::new_v4().simple().to_string();
    for (product, game) in [
        ("exrps", id.as_str()),
        ("quad", id.as_str()),
        ("exrps", &missing),
    ] {
        assert_eq!(
            leave(&app, product, game, "bob").await["outcome"],
            "not_seated"
        );
    }
    assert_eq!(app.open_ids("exrps", "").await, vec![id]);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn leaving_while_ones_own_join_is_in_flight_is_a_409(db: PgPool) {
    let app = spawn_app(db).await;
    let id = app.open_game("exrps", "alice").await;
    app.stub.set(
        "join_game",
        Behaviour::Delay(std::time::Duration::from_millis(400)),
    );
    let join = app.join("exrps", &id, "bob");
    let leave_soon = async {
        // the reservation exists once the game server has been asked
        eventually("the join reaches the game server", || async {
            !app.stub.calls("join_game").is_empty()
        })
        .await;
        app.post(&format!("/game_lobby/exrps/leave_game/{id}"), Some("bob"))
            .await
    };
    let (joined, left) = tokio::join!(join, leave_soon);
    assert_eq!(joined.status(), 200);
    assert_eq!(problem(left).await.0, 409);
    assert_eq!(
        leave(&app, "exrps", &id, "bob").await["outcome"],
        "seat_released"
    );
}
