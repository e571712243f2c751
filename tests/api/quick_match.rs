//! `POST /game_lobby/{product_id}/quick_match`: the SKIP LOCKED queue of waiting games.

use std::collections::HashMap;

use futures::future::join_all;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{Behaviour, TestApp, eventually, problem, spawn_app};

async fn quick(app: &TestApp, product: &str, user: &str) -> reqwest::Response {
    app.post(&format!("/game_lobby/{product}/quick_match"), Some(user))
        .await
}

async fn quick_ok(app: &TestApp, product: &str, user: &str) -> Value {
    let res = quick(app, product, user).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    res.json().await.unwrap()
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn quick_match_creates_then_fills_the_oldest_waiting_game(db: PgPool) {
    let app = spawn_app(db).await;
    // nothing waits: a new game, the caller its creator
    let first = quick_ok(&app, "exrps", "alice").await;
    assert_eq!(first["outcome"], "created");
    assert_eq!(first["players"], json!(["alice"]));
    assert_eq!(first["state"], "created");
    assert_eq!(first["target_game_server"], "rps.test:8085");
    let g1 = first["game_id"].as_str().unwrap().to_string();

    // a game still waiting for its creator to connect takes quick-matched players
    let second = quick_ok(&app, "exrps", "bob").await;
    assert_eq!(second["outcome"], "joined");
    assert_eq!(second["game_id"], g1.as_str());
    assert_eq!(second["players"], json!(["alice", "bob"]));
    assert_eq!(second["token"], "feedc0ffee");
    assert_eq!(
        app.stub.calls("join_game"),
        vec![json!({"gameId": g1, "userId": "bob", "username": "bob-name"})]
    );

    // full: the next player gets a new game
    let third = quick_ok(&app, "exrps", "carol").await;
    assert_eq!(third["outcome"], "created");
    assert_ne!(third["game_id"], g1.as_str());

    // asking again answers the game one already waits in, without another seat
    let again = quick_ok(&app, "exrps", "bob").await;
    assert_eq!(again["outcome"], "already_seated");
    assert_eq!(again["game_id"], g1.as_str());
    assert_eq!(app.stub.calls("join_game").len(), 1);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn quick_match_takes_the_oldest_game_first(db: PgPool) {
    let app = spawn_app(db).await;
    let older = app.open_game("quad", "alice").await;
    let newer = app.open_game("quad", "bob").await;
    for user in ["carol", "dave", "erin"] {
        let game = quick_ok(&app, "quad", user).await;
        assert_eq!(
            (game["outcome"].as_str(), game["game_id"].as_str()),
            (Some("joined"), Some(older.as_str()))
        );
    }
    let game = quick_ok(&app, "quad", "frank").await;
    assert_eq!(game["game_id"], newer.as_str(), "the older game is full");
    assert_eq!(app.open_ids("quad", "").await, vec![newer]);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_refused_quick_match_join_moves_on_and_gives_the_seat_back(db: PgPool) {
    let app = spawn_app(db).await;
    let id = app.open_game("exrps", "alice").await;
    app.stub.set("join_game", Behaviour::Refuse(400));
    let game = quick_ok(&app, "exrps", "bob").await;
    assert_eq!(game["outcome"], "created");
    assert_eq!(game["creator_id"], "bob");
    assert_eq!(app.stub.calls("join_game").len(), 1);
    // alice's game still has its free seat
    assert_eq!(app.open_ids("exrps", "").await, vec![id]);

    // a game server that cannot be reached: 502, and the seat is given back
    app.stub.set("join_game", Behaviour::Hang);
    let res = quick(&app, "exrps", "carol").await;
    assert_eq!(
        problem(res).await,
        (502, "Unable to reach the game server.".into())
    );
    let free: i64 = sqlx::query_scalar!(
        r#"select count(*) as "n!" from game_players where player_id = 'carol'"#
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(free, 0);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn quick_match_checks_product_then_token(db: PgPool) {
    let app = spawn_app(db).await;
    let res = app.post("/game_lobby/nope/quick_match", None).await;
    assert_eq!(
        problem(res).await,
        (400, "Game Lobby: Invalid product ID.".into())
    );
    let res = app.post("/game_lobby/exrps/quick_match", None).await;
    assert_eq!(
        problem(res).await,
        (401, "Game Lobby: Not authorized.".into())
    );
    app.stub.set("create_game", Behaviour::Refuse(500));
    let res = quick(&app, "exrps", "alice").await;
    assert_eq!(
        problem(res).await,
        (400, "Unable to create game on target game server.".into())
    );
}

/// Seats per player and per game, from the database.
async fn seating(app: &TestApp) -> (HashMap<String, i64>, HashMap<uuid::Uuid, (i64, i32)>) {
    let per_player = sqlx::query!(
        r#"select player_id, count(*) as "n!", bool_and(status = 'held') as "held!"
           from game_players group by player_id"#
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(per_player.iter().all(|r| r.held), "every seat confirmed");
    let per_game = sqlx::query!(
        r#"select g.game_id, g.num_players, g.seats_taken, count(p.*) as "n!"
           from games g left join game_players p using (game_id) group by g.game_id"#
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    for g in &per_game {
        assert_eq!(
            i64::from(g.seats_taken),
            g.n,
            "game {}: seats_taken counts its seats",
            g.game_id
        );
    }
    (
        per_player.into_iter().map(|r| (r.player_id, r.n)).collect(),
        per_game
            .into_iter()
            .map(|r| (r.game_id, (r.n, r.num_players)))
            .collect(),
    )
}

/// An app whose game-server calls may take long: hundreds of simultaneous requests share the
/// test's one thread with the stub game server, and a 500 ms limit would turn a slow CI
/// machine into 502s.
async fn spawn_patient(db: PgPool, stub: crate::helpers::GameServerStub) -> TestApp {
    let mut settings = crate::helpers::settings(&stub, "");
    settings.game_server_timeout = std::time::Duration::from_secs(10);
    crate::helpers::spawn_with(db, stub, settings).await
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_thousand_simultaneous_quick_matches_fill_games_seat_by_seat(db: PgPool) {
    let app = spawn_patient(db, crate::helpers::GameServerStub::start().await).await;
    const PLAYERS: usize = 1000;
    let users: Vec<String> = (0..PLAYERS).map(|i| format!("q{i}")).collect();
    let answers = join_all(users.iter().map(|u| quick(&app, "quad", u))).await;
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    let mut answered_game: HashMap<String, String> = HashMap::new();
    for (user, res) in users.iter().zip(answers) {
        assert_eq!(res.status(), 200, "{user}");
        let game: Value = res.json().await.unwrap();
        *outcomes
            .entry(game["outcome"].as_str().unwrap().to_string())
            .or_default() += 1;
        assert!(game["players"].as_array().unwrap().contains(&json!(user)));
        answered_game.insert(user.clone(), game["game_id"].as_str().unwrap().to_string());
    }
    let (per_player, per_game) = seating(&app).await;
    // every player in exactly one game, the one they were told
    assert_eq!(per_player.len(), PLAYERS);
    assert!(
        per_player.values().all(|n| *n == 1),
        "a player in two games"
    );
    for (game, (seats, capacity)) in &per_game {
        assert!(*seats <= i64::from(*capacity), "game {game} over capacity");
    }
    let created = outcomes.get("created").copied().unwrap_or(0);
    let joined = outcomes.get("joined").copied().unwrap_or(0);
    assert_eq!(created + joined, PLAYERS, "{outcomes:?}");
    assert_eq!(per_game.len(), created);
    assert_eq!(app.stub.calls("join_game").len(), joined);
    assert_eq!(app.stub.calls("create_game").len(), created);
    // 250 games seat everyone. Within one process, creations are coordinated (a request waits
    // for the games being created when they will seat it), so only requests that run out of
    // patience under load race.
    let needed = PLAYERS.div_ceil(4);
    let not_full = per_game
        .values()
        .filter(|(n, c)| *n < i64::from(*c))
        .count();
    eprintln!(
        "quick match: {created} games for {PLAYERS} players (needed {needed}), {not_full} not full"
    );
    assert!(
        created <= needed + 3,
        "{created} games for {PLAYERS} players"
    );
    assert!(not_full <= 3, "{not_full} games with free seats");
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn one_player_quick_matching_many_times_at_once_sits_in_one_game(db: PgPool) {
    let app = spawn_app(db).await;
    // some waiting games, so some attempts join and others create
    app.open_game("quad", "host").await;
    let answers = join_all((0..12).map(|_| quick(&app, "quad", "eager"))).await;
    let mut games = std::collections::HashSet::new();
    for res in answers {
        match res.status().as_u16() {
            200 => {
                let game: Value = res.json().await.unwrap();
                games.insert(game["game_id"].as_str().unwrap().to_string());
            }
            409 => {}
            other => panic!("status {other}"),
        }
    }
    assert_eq!(games.len(), 1, "{games:?}");
    let (per_player, _) = seating(&app).await;
    assert_eq!(per_player["eager"], 1);
    // games created on the game server for a losing attempt are removed again
    let created = app.stub.calls("create_game").len() - 1;
    eventually("surplus games are removed from the game server", || async {
        app.stub.calls("remove_game").len() == created.saturating_sub(1)
            || app.stub.calls("remove_game").len() == created
    })
    .await;
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn quick_matches_on_two_processes_share_the_games(db: PgPool) {
    let stub = crate::helpers::GameServerStub::start().await;
    let a = spawn_patient(db.clone(), stub.clone()).await;
    let b = spawn_patient(db, stub).await;
    const PLAYERS: usize = 200;
    let users: Vec<String> = (0..PLAYERS).map(|i| format!("r{i}")).collect();
    let answers = join_all(users.iter().enumerate().map(|(i, u)| {
        let app = if i % 2 == 0 { &a } else { &b };
        quick(app, "quad", u)
    }))
    .await;
    let mut created = 0;
    for res in answers {
        assert_eq!(res.status(), 200);
        let game: Value = res.json().await.unwrap();
        if game["outcome"] == "created" {
            created += 1;
        }
    }
    let (per_player, per_game) = seating(&a).await;
    assert_eq!(per_player.len(), PLAYERS);
    assert!(
        per_player.values().all(|n| *n == 1),
        "a player in two games"
    );
    assert!(per_game.values().all(|(n, c)| *n <= i64::from(*c)));
    assert_eq!(per_game.len(), created);
    // each process coordinates its own creations; the two may race each other a little
    let needed = PLAYERS.div_ceil(4);
    eprintln!(
        "quick match on two processes: {created} games for {PLAYERS} players (needed {needed})"
    );
    assert!(
        created <= needed + 10,
        "{created} games for {PLAYERS} players"
    );
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_quick_match_waits_for_a_held_game_rather_than_polling_or_creating(db: PgPool) {
    let app = spawn_app(db).await;
    let id = app.open_game("exrps", "alice").await;
    let game_id = uuid::Uuid::parse_str(&id).unwrap();
    // Another transaction holds the only game with a free seat, as a join in flight does.
    let mut holder = app.db.begin().await.unwrap();
    sqlx::query!(
        "select game_id from games where game_id = $1 for update",
        game_id
    )
    .fetch_one(&mut *holder)
    .await
    .unwrap();
    let (res, ()) = tokio::join!(quick(&app, "exrps", "bob"), async {
        eventually("the quick match waits on the game's lock", || async {
            sqlx::query_scalar!(
                r#"select count(*) as "n!" from pg_stat_activity
                   where datname = current_database() and wait_event_type = 'Lock'"#
            )
            .fetch_one(&app.db)
            .await
            .unwrap()
                > 0
        })
        .await;
        holder.commit().await.unwrap();
    });
    assert_eq!(res.status(), 200);
    let game: Value = res.json().await.unwrap();
    assert_eq!(game["outcome"], "joined");
    assert_eq!(game["game_id"], id.as_str());
    assert_eq!(app.stub.calls("create_game").len(), 1, "alice's game only");
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_game_created_for_a_quick_match_seats_its_waiter_before_anyone_else_sees_it(db: PgPool) {
    let app = spawn_patient(db, crate::helpers::GameServerStub::start().await).await;
    // Alice's create takes a while on the game server; bob, arriving meanwhile, waits for it.
    // Bob's join is slow too, so that he is still in flight when alice has her answer.
    let slow = Behaviour::Delay(std::time::Duration::from_secs(2));
    app.stub.set("create_game", slow.clone());
    app.stub.set("join_game", slow);
    let bob = async {
        eventually("alice's create reached the game server", || async {
            app.stub.calls("create_game").len() == 1
        })
        .await;
        quick_ok(&app, "exrps", "bob").await
    };
    tokio::pin!(bob);
    let alice = tokio::select! {
        biased;
        alice = quick_ok(&app, "exrps", "alice") => alice,
        _ = &mut bob => panic!("bob was answered before alice"),
    };
    assert_eq!(alice["outcome"], "created");
    let game_id = uuid::Uuid::parse_str(alice["game_id"].as_str().unwrap()).unwrap();

    // The game's insert reserved bob's seat in the same commit: by the time alice has her
    // answer, nobody else can take that seat.
    let seated: Vec<String> = sqlx::query_scalar!(
        "select player_id from game_players where game_id = $1 order by seat",
        game_id
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(seated, ["alice", "bob"]);
    app.stub.set("create_game", Behaviour::Ok);
    let carol = quick_ok(&app, "exrps", "carol").await;
    assert_eq!(carol["outcome"], "created");
    assert_ne!(carol["game_id"], alice["game_id"]);

    let bob = bob.await;
    assert_eq!(bob["outcome"], "joined");
    assert_eq!(bob["game_id"], alice["game_id"]);
    assert_eq!(bob["players"], json!(["alice", "bob"]));
    assert_eq!(
        app.stub.calls("create_game").len(),
        2,
        "alice's and carol's"
    );
    assert_eq!(app.stub.calls("join_game").len(), 1, "bob's");
}
