use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{Behaviour, TestApp, problem, spawn_app};

async fn status_mix(results: Vec<reqwest::Response>) -> (usize, usize, Vec<u16>) {
    let statuses: Vec<u16> = results.iter().map(|r| r.status().as_u16()).collect();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let conflict = statuses.iter().filter(|s| **s == 409).count();
    (ok, conflict, statuses)
}

async fn seats(app: &TestApp, id: &str) -> i64 {
    let id = uuid::Uuid::parse_str(id).unwrap();
    sqlx::query_scalar!("select count(*) from game_players where game_id = $1", id)
        .fetch_one(&app.db)
        .await
        .unwrap()
        .unwrap()
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn joining_takes_a_seat_and_unlists_a_full_game(db: PgPool) {
    let app = spawn_app(db).await;
    let id = app.open_game("exrps", "alice").await;
    assert_eq!(app.open_ids("exrps", "").await, vec![id.clone()]);

    let res = app.join("exrps", &id, "bob").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let game: Value = res.json().await.unwrap();
    assert_eq!(game["players"], json!(["alice", "bob"]));
    assert_eq!(game["state"], "creator_joined");
    assert_eq!(game["target_game_server"], "rps.test:8085");
    assert_eq!(game["token"], "feedc0ffee");
    assert_eq!(
        app.stub.calls("join_game"),
        vec![json!({"gameId": id, "userId": "bob", "username": "bob-name"})]
    );
    assert!(
        app.open_ids("exrps", "").await.is_empty(),
        "a full game leaves the lobby"
    );

    // full
    let res = app.join("exrps", &id, "carol").await;
    assert_eq!(problem(res).await.0, 409);
    // rejoining: the game as it is, no second seat, no second game-server call
    for user in ["bob", "alice"] {
        let res = app.join("exrps", &id, user).await;
        assert_eq!(res.status(), 200, "{user}");
        let again: Value = res.json().await.unwrap();
        assert_eq!(again["players"], json!(["alice", "bob"]));
    }
    assert_eq!(app.stub.calls("join_game").len(), 1);
    assert_eq!(seats(&app, &id).await, 2);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn join_errors_follow_the_spec(db: PgPool) {
    let app = spawn_app(db).await;
    let missing = uuid::Uuid::new_v4().simple().to_string();
    let res = app.join("exrps", &missing, "bob").await;
    assert_eq!(
        problem(res).await,
        (
            404,
            format!(
                "Game Lobby: Unable to join game - game not found. Game ID: \"{missing}\", Product ID: exrps."
            )
        )
    );
    // a game of another product is not found either
    let quad = app.open_game("quad", "alice").await;
    assert_eq!(problem(app.join("exrps", &quad, "bob").await).await.0, 404);
    // ids with characters outside their alphabet
    assert_eq!(
        problem(app.join("exrps", "drop%20table", "bob").await)
            .await
            .0,
        400
    );

    let created = app.create("exrps", "alice").await;
    let id = created["game_id"].as_str().unwrap();
    assert_eq!(
        problem(app.join("exrps", id, "bob").await).await,
        (
            400,
            "Unable to join game - invalid state: created. Required state: creator_joined".into()
        )
    );
    app.set_state("exrps", id, "creator_joined").await;
    app.set_state("exrps", id, "all_players_joined").await;
    assert_eq!(
        problem(app.join("exrps", id, "bob").await).await,
        (
            400,
            "Unable to join game - invalid state: all_players_joined. Required state: creator_joined"
                .into()
        )
    );
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_refused_or_failed_join_gives_the_seat_back(db: PgPool) {
    let app = spawn_app(db).await;
    let id = app.open_game("exrps", "alice").await;
    let cases = [
        (
            Behaviour::Refuse(400),
            400,
            "Unable to join game on target game server.",
        ),
        (
            Behaviour::Refuse(503),
            400,
            "Unable to join game on target game server.",
        ),
        (Behaviour::Hang, 502, "Unable to reach the game server."),
        (
            Behaviour::Garbage,
            502,
            "The game server gave an answer that could not be used.",
        ),
    ];
    for (behaviour, status, detail) in cases {
        app.stub.set("join_game", behaviour.clone());
        let res = app.join("exrps", &id, "bob").await;
        assert_eq!(
            problem(res).await,
            (status, detail.to_string()),
            "{behaviour:?}"
        );
        assert_eq!(
            seats(&app, &id).await,
            1,
            "seat released after {behaviour:?}"
        );
        assert_eq!(app.open_ids("exrps", "").await, vec![id.clone()]);
    }
    app.stub.set("join_game", Behaviour::Ok);
    assert_eq!(app.join("exrps", &id, "bob").await.status(), 200);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_game_that_vanishes_during_the_join_answers_400(db: PgPool) {
    let app = spawn_app(db).await;
    let id = app.open_game("exrps", "alice").await;
    app.stub
        .set("join_game", Behaviour::Delay(Duration::from_millis(300)));
    let join = app.join("exrps", &id, "bob");
    let remove = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let res = app
            .events("exrps", json!({"type": "game_removed", "game_id": id}))
            .await;
        assert_eq!(res.status(), 200);
    };
    let (res, ()) = tokio::join!(join, remove);
    assert_eq!(
        problem(res).await,
        (
            400,
            "GameLobby: Cannot join game - it is no longer available".into()
        )
    );
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn fifty_simultaneous_joins_of_a_two_seat_game_seat_exactly_one(db: PgPool) {
    let app = spawn_app(db).await;
    let id = app.open_game("exrps", "alice").await;
    let users: Vec<String> = (0..50).map(|i| format!("p{i}")).collect();
    let joins = users.iter().map(|u| app.join("exrps", &id, u));
    let (ok, conflict, statuses) = status_mix(join_all(joins).await).await;
    assert_eq!((ok, conflict), (1, 49), "{statuses:?}");
    assert_eq!(app.stub.calls("join_game").len(), 1);
    assert_eq!(seats(&app, &id).await, 2);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn forty_simultaneous_joins_of_a_four_seat_game_fill_three_seats(db: PgPool) {
    let app = spawn_app(db).await;
    let id = app.open_game("quad", "alice").await;
    // a slow game server keeps seats reserved while the others arrive
    app.stub
        .set("join_game", Behaviour::Delay(Duration::from_millis(50)));
    let users: Vec<String> = (0..40).map(|i| format!("p{i}")).collect();
    let joins = users.iter().map(|u| app.join("quad", &id, u));
    let (ok, conflict, statuses) = status_mix(join_all(joins).await).await;
    assert_eq!((ok, conflict), (3, 37), "{statuses:?}");
    assert_eq!(app.stub.calls("join_game").len(), 3);
    assert_eq!(seats(&app, &id).await, 4);
    assert!(app.open_ids("quad", "").await.is_empty());
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_game_stays_listed_until_its_last_seat_is_taken(db: PgPool) {
    let app = spawn_app(db).await;
    let id = app.open_game("quad", "alice").await;
    for (n, user) in ["bob", "carol"].iter().enumerate() {
        assert_eq!(app.join("quad", &id, user).await.status(), 200);
        let res = app.get("/game_lobby/quad/open_games").await;
        let games: Vec<Value> = res.json().await.unwrap();
        assert_eq!(games.len(), 1);
        assert_eq!(games[0]["free_seats"], json!(2 - n as i64));
    }
    assert_eq!(app.join("quad", &id, "dave").await.status(), 200);
    assert!(app.open_ids("quad", "").await.is_empty());
}

/// The game's `seats_taken` and its seats, from the database.
async fn counted(app: &TestApp, id: &str) -> (i32, i64) {
    let id = uuid::Uuid::parse_str(id).unwrap();
    let taken = sqlx::query_scalar!("select seats_taken from games where game_id = $1", id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    (taken, seats(app, &id.simple().to_string()).await)
}

/// This release's inserts count their seat themselves; a seat inserted without `counted` (an
/// older release serving beside this one, or plain SQL) is counted by the trigger; a seat that
/// goes is taken off once, whoever inserted it.
#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn every_seat_is_counted_once_whichever_release_took_it(db: PgPool) {
    let app = spawn_app(db).await;
    let id = app.open_game("quad", "alice").await;
    assert_eq!(counted(&app, &id).await, (1, 1), "the creator's seat");
    assert_eq!(app.join("quad", &id, "bob").await.status(), 200);
    assert_eq!(counted(&app, &id).await, (2, 2));

    let game = uuid::Uuid::parse_str(&id).unwrap();
    sqlx::query!(
        "insert into game_players (game_id, num_players, player_id, username, seat, status)
         values ($1, 4, 'carol', 'carol-name', 2, 'held')",
        game
    )
    .execute(&app.db)
    .await
    .unwrap();
    assert_eq!(counted(&app, &id).await, (3, 3), "an older release's seat");
    assert_eq!(app.join("quad", &id, "dave").await.status(), 200);
    assert_eq!(counted(&app, &id).await, (4, 4));

    let res = app
        .post(&format!("/game_lobby/quad/leave_game/{id}"), Some("bob"))
        .await;
    assert_eq!(res.status(), 200);
    sqlx::query!(
        "delete from game_players where game_id = $1 and player_id = 'carol'",
        game
    )
    .execute(&app.db)
    .await
    .unwrap();
    assert_eq!(counted(&app, &id).await, (2, 2), "two seats gone");
    assert_eq!(app.join("quad", &id, "erin").await.status(), 200);
    assert_eq!(counted(&app, &id).await, (3, 3));
}

/// The seat checks hold whatever an insert says: a seat's capacity is its game's, the game's
/// capacity cannot change under its seats, and a seat needs a game.
#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn the_database_checks_a_seat_against_its_games_capacity(db: PgPool) {
    let app = spawn_app(db).await;
    let id = app.open_game("exrps", "alice").await;
    let game = uuid::Uuid::parse_str(&id).unwrap();
    let insert = |player: &'static str, seat: i32, claimed: i32| {
        sqlx::query!(
            "insert into game_players (game_id, num_players, player_id, username, seat, status)
             values ($1, $2, $3, $3, $4, 'held')",
            game,
            claimed,
            player,
            seat
        )
        .execute(&app.db)
    };
    let refused = insert("bob", 2, 4).await.unwrap_err();
    assert_eq!(
        refused.as_database_error().and_then(|e| e.constraint()),
        Some("game_players_seat_within_capacity"),
        "a two-player game has no seat 2, whatever the insert claims"
    );
    insert("bob", 1, 9).await.unwrap();
    let copied = sqlx::query_scalar!(
        "select num_players from game_players where game_id = $1 and player_id = 'bob'",
        game
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(copied, 2, "the seat carries its game's capacity");
    let resized = sqlx::query!("update games set num_players = 4 where game_id = $1", game)
        .execute(&app.db)
        .await
        .unwrap_err();
    assert!(resized.to_string().contains("cannot change"), "{resized}");
    let orphan = sqlx::query!(
        "insert into game_players (game_id, num_players, player_id, username, seat, status)
         values ($1, 2, 'carol', 'carol', 0, 'held')",
        uuid::Uuid::new_v4()
    )
    .execute(&app.db)
    .await
    .unwrap_err();
    assert_eq!(
        orphan.as_database_error().and_then(|e| e.constraint()),
        Some("game_players_game_id_fkey")
    );
    assert_eq!(counted(&app, &id).await, (2, 2));
}
