//! The lobby's rules driven without HTTP where the rule is the point: the use cases of the
//! `Lobby` service and the workers' single steps (`reap_once`, `dispatch_once`), on a real
//! database and a real (stub) game server. And the rule that a failed call the game server may
//! have acted on is undone, for joins as for creates.

use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{Behaviour, GameServerStub, eventually, problem, settings, spawn_with};
use matchmaker::{
    domain::{GameRef, LobbyError, Player},
    startup::Application,
};

async fn owed_calls(db: &PgPool) -> Vec<(String, Option<String>)> {
    sqlx::query!(r#"select call::text as "call!", player_id from game_server_outbox order by id"#)
        .fetch_all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.call, r.player_id))
        .collect()
}

async fn seats(db: &PgPool) -> i64 {
    sqlx::query_scalar!(r#"select count(*) as "n!" from game_players"#)
        .fetch_one(db)
        .await
        .unwrap()
}

fn player(name: &str) -> Player {
    Player {
        user_id: name.into(),
        username: format!("{name}-name"),
    }
}

/// The service's parts, not running: nothing happens unless the test does it.
async fn parts(db: &PgPool, stub: &GameServerStub) -> Application {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Application::build(settings(stub, ""), db.clone(), listener).unwrap()
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_join_the_game_server_may_have_taken_frees_the_seat_and_removes_the_player(db: PgPool) {
    for (behaviour, status) in [
        // any non-2xx is "refused" (400), but a 5xx may have seated the player
        (Behaviour::Refuse(500), 400),
        (Behaviour::Refuse(503), 400),
        (Behaviour::Hang, 502),
        (Behaviour::Garbage, 502),
    ] {
        sqlx::query!("truncate games, game_server_outbox cascade")
            .execute(&db)
            .await
            .unwrap();
        let stub = GameServerStub::start().await;
        let app = spawn_with(db.clone(), stub.clone(), settings(&stub, "")).await;
        let id = app.open_game("exrps", "alice").await;
        stub.set("join_game", behaviour.clone());
        let res = app.join("exrps", &id, "bob").await;
        assert_eq!(problem(res).await.0, status, "{behaviour:?}");
        assert_eq!(seats(&db).await, 1, "{behaviour:?}: the seat is free again");
        eventually("the game server is told to drop the player", || async {
            stub.calls("remove_player") == vec![json!({"gameId": id, "userId": "bob"})]
        })
        .await;
        // and the seat can be taken again
        stub.set("join_game", Behaviour::Ok);
        assert_eq!(app.join("exrps", &id, "carol").await.status(), 200);
        app.stop().await;
    }
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_join_refused_with_a_4xx_owes_nothing(db: PgPool) {
    let stub = GameServerStub::start().await;
    let app = spawn_with(db.clone(), stub.clone(), settings(&stub, "")).await;
    let id = app.open_game("exrps", "alice").await;
    for status in [400, 404, 409] {
        stub.set("join_game", Behaviour::Refuse(status));
        let res = app.join("exrps", &id, "bob").await;
        assert_eq!(
            problem(res).await,
            (400, "Unable to join game on target game server.".into())
        );
    }
    assert_eq!(seats(&db).await, 1);
    assert!(owed_calls(&db).await.is_empty());
    assert!(stub.calls("remove_player").is_empty());
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_quick_match_refused_with_a_5xx_removes_the_player_there_and_goes_on(db: PgPool) {
    let stub = GameServerStub::start().await;
    let app = spawn_with(db.clone(), stub.clone(), settings(&stub, "")).await;
    let id = app.open_game("exrps", "alice").await;
    stub.set("join_game", Behaviour::Refuse(500));
    let res = app.post("/game_lobby/exrps/quick_match", Some("bob")).await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["outcome"], "created", "{body}");
    assert_ne!(body["game_id"], id.as_str());
    eventually(
        "the refusing game server is told to drop the player",
        || async { stub.calls("remove_player") == vec![json!({"gameId": id, "userId": "bob"})] },
    )
    .await;
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn the_lobby_service_answers_in_its_own_terms(db: PgPool) {
    let stub = GameServerStub::start().await;
    let app = parts(&db, &stub).await;
    let lobby = app.lobby();
    let product = lobby.product("exrps").unwrap();
    let game = lobby
        .create_game(&product, &player("alice"), false, None)
        .await
        .unwrap();
    assert_eq!(game.players, vec!["alice".to_string()]);
    // not yet `creator_joined`: a join is refused with the state it found
    let err = lobby
        .join_game(&product, &player("bob"), &GameRef::from(game.game_id))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        LobbyError::WrongState(matchmaker::domain::GameState::Created)
    );
    let unknown = GameRef::parse("abc").unwrap();
    assert_eq!(
        lobby
            .join_game(&product, &player("bob"), &unknown)
            .await
            .unwrap_err(),
        LobbyError::JoinTargetNotFound {
            game_id: "abc".into(),
            product_id: "exrps".into()
        }
    );
    let code = lobby
        .create_game(&product, &player("carol"), true, None)
        .await
        .unwrap()
        .join_code
        .unwrap();
    assert!(matches!(
        lobby
            .join_by_code(&product, &player("dave"), "2222-22")
            .await,
        Err(LobbyError::CodeNotFound { .. })
    ));
    // a private game is `created` too until its creator connects
    assert!(matches!(
        lobby.join_by_code(&product, &player("dave"), &code).await,
        Err(LobbyError::WrongState(_))
    ));
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn one_reaper_pass_expires_and_one_outbox_pass_tells_the_game_server(db: PgPool) {
    let stub = GameServerStub::start().await;
    let app = parts(&db, &stub).await;
    let lobby = app.lobby();
    let product = lobby.product("exrps").unwrap();
    let game = lobby
        .create_game(&product, &player("alice"), false, None)
        .await
        .unwrap();
    let reaper = app.reaper();
    let dispatcher = app.dispatcher();

    // nothing is due yet
    assert_eq!(reaper.reap_once().await.unwrap().expired, 0);
    assert_eq!(dispatcher.dispatch_once().await.unwrap(), 0);

    sqlx::query!("update games set expires_at = now() - interval '1 second'")
        .execute(&db)
        .await
        .unwrap();
    let reaped = reaper.reap_once().await.unwrap();
    assert_eq!(reaped.expired, 1);
    assert_eq!(owed_calls(&db).await, vec![("remove_game".into(), None)]);
    assert!(stub.calls("remove_game").is_empty(), "owed, not yet sent");

    assert_eq!(dispatcher.dispatch_once().await.unwrap(), 1);
    assert_eq!(
        stub.calls("remove_game"),
        vec![json!({"gameId": game.game_id.simple().to_string()})]
    );
    assert!(owed_calls(&db).await.is_empty());
    assert_eq!(dispatcher.dispatch_once().await.unwrap(), 0);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn an_owed_call_the_game_server_fails_is_kept_for_a_later_pass(db: PgPool) {
    let stub = GameServerStub::start().await;
    let app = parts(&db, &stub).await;
    let lobby = app.lobby();
    let product = lobby.product("exrps").unwrap();
    lobby
        .create_game(&product, &player("alice"), false, None)
        .await
        .unwrap();
    sqlx::query!("update games set expires_at = now() - interval '1 second'")
        .execute(&db)
        .await
        .unwrap();
    app.reaper().reap_once().await.unwrap();
    stub.set("remove_game", Behaviour::Refuse(503));
    let dispatcher = app.dispatcher();
    assert_eq!(dispatcher.dispatch_once().await.unwrap(), 1);
    // retried later (backoff), not dropped
    assert_eq!(owed_calls(&db).await.len(), 1);
    assert_eq!(dispatcher.dispatch_once().await.unwrap(), 0, "not due yet");
}
