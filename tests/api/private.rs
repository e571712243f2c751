//! Private games: `create_game` with `{"private": true}`, join codes, `join_by_code`.

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use matchmaker::{
    domain::join_code,
    store::games::{NewGame, insert_with_code},
};

use crate::helpers::{TestApp, problem, spawn_app, token};

async fn create_private(app: &TestApp, product: &str, user: &str) -> Value {
    let res = app
        .http
        .post(format!("{}/game_lobby/{product}/create_game", app.base))
        .bearer_auth(token(user))
        .json(&json!({"private": true, "game_type": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn join_code(app: &TestApp, product: &str, code: &str, user: &str) -> reqwest::Response {
    app.post(
        &format!("/game_lobby/{product}/join_by_code/{code}"),
        Some(user),
    )
    .await
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_private_game_is_unlisted_and_joined_by_its_code(db: PgPool) {
    let app = spawn_app(db).await;
    let game = create_private(&app, "exrps", "alice").await;
    let id = game["game_id"].as_str().unwrap().to_string();
    let code = game["join_code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 6);
    assert!(
        code.chars().all(|c| join_code::ALPHABET.contains(c)),
        "{code}"
    );
    assert_eq!(game["players"], json!(["alice"]));

    app.set_state("exrps", &id, "creator_joined").await;
    assert!(
        app.open_ids("exrps", "").await.is_empty(),
        "private games are not listed"
    );
    // nor quick-matched
    let res = app
        .post("/game_lobby/exrps/quick_match", Some("mallory"))
        .await;
    let matched: Value = res.json().await.unwrap();
    assert_eq!(matched["outcome"], "created");
    assert_ne!(matched["game_id"], id.as_str());

    // codes are forgiving about case and separators
    let typed = format!("{}-{}", &code[..3], &code[3..]).to_lowercase();
    let res = join_code(&app, "exrps", &typed, "bob").await;
    assert_eq!(res.status(), 200);
    let joined: Value = res.json().await.unwrap();
    assert_eq!(joined["game_id"], id.as_str());
    assert_eq!(joined["players"], json!(["alice", "bob"]));
    assert_eq!(joined["join_code"], code.as_str());
    assert_eq!(joined["target_game_server"], "rps.test:8085");
    // full now, as for join_game
    assert_eq!(
        problem(join_code(&app, "exrps", &code, "carol").await)
            .await
            .0,
        409
    );

    // the creator finds the code again after a reload; a stranger does not see it
    let mine: Value = app
        .get_as(&format!("/game_lobby/exrps/games/{id}"), "alice")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["join_code"], code.as_str());
    let theirs: Value = app
        .get_as(&format!("/game_lobby/exrps/games/{id}"), "carol")
        .await
        .json()
        .await
        .unwrap();
    assert!(theirs.get("join_code").is_none());

    // public games have no code
    let public = app.create("exrps", "dave").await;
    assert!(public.get("join_code").is_none());
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn private_game_requests_are_checked(db: PgPool) {
    let app = spawn_app(db).await;
    let game = create_private(&app, "exrps", "alice").await;
    let code = game["join_code"].as_str().unwrap();

    let res = app
        .post(&format!("/game_lobby/nope/join_by_code/{code}"), None)
        .await;
    assert_eq!(
        problem(res).await,
        (400, "Game Lobby: Invalid product ID.".into())
    );
    let res = app
        .post(&format!("/game_lobby/exrps/join_by_code/{code}"), None)
        .await;
    assert_eq!(
        problem(res).await,
        (401, "Game Lobby: Not authorized.".into())
    );
    for bad in ["ABC", "ABCDEFG", "ABCDE0", "OOOOOO", "%C3%84BCDEF"] {
        let (status, detail) = problem(join_code(&app, "exrps", bad, "bob").await).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(
            detail,
            "Game Lobby: Invalid join code - expected 6 characters from 23456789ABCDEFGHJKMNPQRSTUVWXYZ."
        );
    }
    let unused = if code == "222222" { "333333" } else { "222222" };
    assert_eq!(
        problem(join_code(&app, "exrps", unused, "bob").await).await,
        (
            404,
            format!(
                "Game Lobby: Unable to join game - no game with join code {unused}, Product ID: exrps."
            )
        )
    );
    // a code belongs to its product
    assert_eq!(
        problem(join_code(&app, "quad", code, "bob").await).await.0,
        404
    );
    // the game must be open, as for join_game
    assert_eq!(
        problem(join_code(&app, "exrps", code, "bob").await).await,
        (
            400,
            "Unable to join game - invalid state: created. Required state: creator_joined".into()
        )
    );

    // `private` must be a boolean; any other body is ignored as before
    let res = app
        .http
        .post(format!("{}/game_lobby/exrps/create_game", app.base))
        .bearer_auth(token("alice"))
        .json(&json!({"private": "yes"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(res).await,
        (
            400,
            "Game Lobby: Invalid request - \"private\" must be true or false.".into()
        )
    );
    // one player each: a player may have only 3 open games
    for (i, body) in [
        "not json",
        "[1,2]",
        "{\"private\": false}",
        "{\"private\": null}",
    ]
    .into_iter()
    .enumerate()
    {
        let res = app
            .http
            .post(format!("{}/game_lobby/exrps/create_game", app.base))
            .bearer_auth(token(&format!("player{i}")))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{body}");
        let game: Value = res.json().await.unwrap();
        assert!(game.get("join_code").is_none(), "{body}");
    }
}

fn new_game<'a>(id: Uuid, settings: &'a Value) -> NewGame<'a> {
    NewGame {
        game_id: id,
        product_id: "exrps",
        creator_id: "zoe",
        creator_name: "Zoe",
        num_players: 2,
        settings,
        token: "t",
        expires_in_secs: 60.0,
        join_code: None,
    }
}

/// A create in flight for `game_id` (its intent row), as `lobby::create_game` writes first.
async fn intent(db: &PgPool, game_id: Uuid) -> Uuid {
    sqlx::query!(
        "insert into create_intents (game_id, product_id, creator_id) values ($1, 'exrps', 'alice')",
        game_id
    )
    .execute(db)
    .await
    .unwrap();
    game_id
}

/// Codes handed out one after another from a list.
fn codes(list: &[&str]) -> impl FnMut() -> String {
    let mut list: Vec<String> = list.iter().rev().map(|s| s.to_string()).collect();
    move || list.pop().expect("more codes drawn than expected")
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_code_collision_draws_another_code(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let taken = create_private(&app, "exrps", "alice").await["join_code"]
        .as_str()
        .unwrap()
        .to_string();
    let settings = json!({});

    // the taken code is drawn twice, then a free one
    let (_, code) = insert_with_code(
        &db,
        &new_game(intent(&db, Uuid::new_v4()).await, &settings),
        codes(&[&taken, &taken, "XYZ234"]),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(code, "XYZ234");

    // two creations racing for the same code: one gets it, the other draws again
    let (one, two) = (
        new_game(intent(&db, Uuid::new_v4()).await, &settings),
        new_game(intent(&db, Uuid::new_v4()).await, &settings),
    );
    let (first, second) = tokio::join!(
        insert_with_code(&db, &one, codes(&["RACE22", "AAAAA2"])),
        insert_with_code(&db, &two, codes(&["RACE22", "BBBBB2"])),
    );
    let mut got = vec![first.unwrap().unwrap().1, second.unwrap().unwrap().1];
    got.sort();
    assert!(
        got == ["AAAAA2", "RACE22"] || got == ["BBBBB2", "RACE22"],
        "{got:?}"
    );

    // a code space with nothing free gives up instead of looping
    let stuck_id = intent(&db, Uuid::new_v4()).await;
    let stuck = insert_with_code(&db, &new_game(stuck_id, &settings), || taken.clone()).await;
    assert!(stuck.is_err());

    // the code is free again once its game is gone
    let id = sqlx::query_scalar!("select game_id from games where join_code = $1", taken)
        .fetch_one(&db)
        .await
        .unwrap();
    let res = app
        .post(
            &format!("/game_lobby/exrps/leave_game/{}", id.simple()),
            Some("alice"),
        )
        .await;
    assert_eq!(res.status(), 200);
    let again = intent(&db, Uuid::new_v4()).await;
    let (_, code) = insert_with_code(&db, &new_game(again, &settings), codes(&[&taken]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(code, taken);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn guessing_codes_runs_into_the_join_quota(db: PgPool) {
    let stub = crate::helpers::GameServerStub::start().await;
    let app = crate::helpers::spawn_with(
        db,
        stub.clone(),
        crate::helpers::settings(&stub, "rate_limit_player_per_minute = 3"),
    )
    .await;
    // every guess, right or wrong, costs one unit of the player's quota
    for guess in ["222222", "333333", "444444"] {
        assert_eq!(
            problem(join_code(&app, "exrps", guess, "mallory").await)
                .await
                .0,
            404
        );
    }
    let res = join_code(&app, "exrps", "555555", "mallory").await;
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert_eq!(problem(res).await.0, 429);
    // quick match takes from the same quota
    let res = app
        .post("/game_lobby/exrps/quick_match", Some("mallory"))
        .await;
    assert_eq!(problem(res).await.0, 429);
}
