//! Fleets of game servers (docs/fleets.md): placement within capacity across processes,
//! stickiness, lost instances, draining, regions and the breaker.

use std::collections::HashMap;

use matchmaker::config::{Overrides, Settings};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{
    Behaviour, EVENT_KEY, GameServerStub, SECRET, TestApp, eventually, problem, spawn_with,
};

/// Settings with product `fleet` (2 seats): `servers` are `[[games.servers]]` tables; none
/// means the product relies on registration.
fn fleet_settings(servers: &[(&str, &GameServerStub, u32, &str)], extra: &str) -> Settings {
    let mut toml = format!(
        r#"
        # long enough that a loaded machine's slow connect is not a "could not connect" (which
        # places the create again elsewhere, and the counts below would be off by one)
        game_server_timeout_ms = 3000
        max_open_games_per_player = 0
        {extra}

        [[games]]
        product_id = "fleet"
        settings = {{ num_players = 2 }}
        event_key = "{EVENT_KEY}"
        "#
    );
    for (id, stub, capacity, region) in servers {
        toml.push_str(&format!(
            "\n[[games.servers]]\nid = \"{id}\"\nurl = \"{}\"\nsocket_url = \"{id}.test:9000\"\ncapacity = {capacity}\nregion = \"{region}\"\n",
            stub.url
        ));
    }
    let overrides = Overrides {
        database_url: Some("postgres://unused.invalid/db".into()),
        secret_key: Some(SECRET.into()),
        ..Default::default()
    };
    Settings::from_toml(&toml, &overrides).unwrap()
}

async fn create(app: &TestApp, user: &str, query: &str) -> reqwest::Response {
    app.post(&format!("/game_lobby/fleet/create_game{query}"), Some(user))
        .await
}

async fn instance_call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app
        .http
        .request(
            method,
            format!("{}/game_servers/fleet/instances{path}", app.base),
        )
        .bearer_auth(EVENT_KEY);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

async fn register(
    app: &TestApp,
    id: &str,
    stub: &GameServerStub,
    capacity: u32,
) -> reqwest::Response {
    instance_call(
        app,
        reqwest::Method::POST,
        "",
        Some(json!({"id": id, "url": stub.url, "socket_url": format!("{id}.test:9000"), "capacity": capacity})),
    )
    .await
}

async fn instances(app: &TestApp) -> HashMap<String, Value> {
    let res = instance_call(app, reqwest::Method::GET, "", None).await;
    assert_eq!(res.status(), 200);
    let list: Vec<Value> = res.json().await.unwrap();
    list.into_iter()
        .map(|i| (i["id"].as_str().unwrap().to_string(), i))
        .collect()
}

fn created_on(stub: &GameServerStub) -> Vec<String> {
    stub.calls("create_game")
        .iter()
        .map(|c| c["gameId"].as_str().unwrap().to_string())
        .collect()
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn two_processes_fill_three_instances_to_their_capacity_and_no_further(db: PgPool) {
    let stubs = [
        GameServerStub::start().await,
        GameServerStub::start().await,
        GameServerStub::start().await,
    ];
    let servers = [
        ("a", &stubs[0], 50, "eu"),
        ("b", &stubs[1], 50, "eu"),
        ("c", &stubs[2], 50, "us"),
    ];
    let one = spawn_with(db.clone(), stubs[0].clone(), fleet_settings(&servers, "")).await;
    let two = spawn_with(db.clone(), stubs[0].clone(), fleet_settings(&servers, "")).await;

    let creates = (0..150).map(|i| {
        let app = if i % 2 == 0 { &one } else { &two };
        async move {
            let res = create(app, &format!("p{i}"), "").await;
            assert_eq!(res.status(), 200, "create {i}");
            res.json::<Value>().await.unwrap()
        }
    });
    let games = futures::future::join_all(creates).await;
    for stub in &stubs {
        assert_eq!(
            created_on(stub).len(),
            50,
            "each instance holds exactly its capacity"
        );
    }
    // each answer names the instance its game is on
    for game in &games {
        let id = game["game_id"].as_str().unwrap();
        let (i, _) = stubs
            .iter()
            .enumerate()
            .find(|(_, s)| created_on(s).iter().any(|g| g == id))
            .unwrap();
        assert_eq!(game["game_server_url"], stubs[i].url);
        assert_eq!(
            game["target_game_server"],
            format!("{}.test:9000", ["a", "b", "c"][i])
        );
    }

    let full = create(&one, "late", "").await;
    assert!(full.headers().contains_key("retry-after"));
    assert_eq!(
        problem(full).await,
        (
            503,
            "Game Lobby: Every game server of product fleet is full. Please try again shortly."
                .into()
        )
    );
    let listed = instances(&two).await;
    for id in ["a", "b", "c"] {
        assert_eq!(listed[id]["games"], 50);
        assert_eq!(listed[id]["capacity"], 50);
        assert_eq!(listed[id]["static"], true);
    }

    // every later call for a game goes to its instance, whichever process takes it
    for game in games.iter().take(6) {
        let id = game["game_id"].as_str().unwrap();
        one.set_state("fleet", id, "creator_joined").await;
        let res = two.join("fleet", id, "joiner").await;
        assert_eq!(res.status(), 200);
        let joined: Value = res.json().await.unwrap();
        assert_eq!(joined["game_server_url"], game["game_server_url"]);
        let holder = stubs
            .iter()
            .find(|s| created_on(s).iter().any(|g| g == id))
            .unwrap();
        assert!(holder.calls("join_game").iter().any(|c| c["gameId"] == id));
        for other in stubs.iter().filter(|s| s.url != holder.url) {
            assert!(!other.calls("join_game").iter().any(|c| c["gameId"] == id));
        }
        let left = two
            .post(
                &format!("/game_lobby/fleet/leave_game/{id}"),
                Some("joiner"),
            )
            .await;
        assert_eq!(left.status(), 200);
    }
    // a game that ends frees its instance's room
    let first = games[0]["game_id"].as_str().unwrap();
    two.join("fleet", first, "joiner").await;
    for state in ["all_players_joined", "in_progress", "ended"] {
        one.set_state("fleet", first, state).await;
    }
    let res = create(&two, "late", "").await;
    assert_eq!(res.status(), 200);
    let game: Value = res.json().await.unwrap();
    assert_eq!(game["game_server_url"], games[0]["game_server_url"]);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_lost_instance_ends_its_games_and_is_never_called_again(db: PgPool) {
    let (dying, alive) = (GameServerStub::start().await, GameServerStub::start().await);
    let settings = fleet_settings(&[], "instance_timeout_ms = 600\nreaper_interval_ms = 100");
    let app = spawn_with(db, dying.clone(), settings).await;

    // no instance yet: 503
    let none = create(&app, "early", "").await;
    assert_eq!(
        problem(none).await,
        (
            503,
            "Game Lobby: No game server of product fleet is up. Please try again shortly.".into()
        )
    );
    assert_eq!(register(&app, "dying", &dying, 100).await.status(), 201);
    assert_eq!(register(&app, "alive", &alive, 10).await.status(), 201);
    assert_eq!(
        register(&app, "alive", &alive, 10).await.status(),
        200,
        "again"
    );
    let beat = {
        let (http, base) = (app.http.clone(), app.base.clone());
        tokio::spawn(async move {
            loop {
                let _ = http
                    .post(format!(
                        "{base}/game_servers/fleet/instances/alive/heartbeat"
                    ))
                    .bearer_auth(EVENT_KEY)
                    .send()
                    .await;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        })
    };

    // the most room: the dying one
    let res = create(&app, "alice", "").await;
    assert_eq!(res.status(), 200);
    let game: Value = res.json().await.unwrap();
    assert_eq!(game["game_server_url"], dying.url);
    let id = game["game_id"].as_str().unwrap().to_string();
    app.set_state("fleet", &id, "creator_joined").await;
    assert_eq!(app.open_ids("fleet", "").await, vec![id.clone()]);

    // it sends no heartbeat: lost within the timeout (and a reaper pass)
    eventually("the silent instance is lost", || async {
        instances(&app).await["dying"]["state"] == "lost"
    })
    .await;
    assert_eq!(instances(&app).await["dying"]["healthy"], false);
    let calls_then = dying.calls("create_game").len() + dying.calls("remove_game").len();
    assert!(
        app.open_ids("fleet", "").await.is_empty(),
        "its games left the lobby"
    );
    let status: Value = app
        .get_as(&format!("/game_lobby/fleet/games/{id}"), "alice")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["state"], "ended");
    let heartbeat = instance_call(&app, reqwest::Method::POST, "/dying/heartbeat", None).await;
    assert_eq!(heartbeat.status(), 404);

    // its players play elsewhere at once
    let res = create(&app, "alice", "").await;
    assert_eq!(res.status(), 200);
    let game: Value = res.json().await.unwrap();
    assert_eq!(game["game_server_url"], alive.url);
    let res = app.post("/game_lobby/fleet/quick_match", Some("bob")).await;
    assert_eq!(res.status(), 200);

    // the ended game expires later: nothing is owed to the lost instance
    sqlx::query!(
        "update games set expires_at = now() where game_id = $1",
        uuid::Uuid::parse_str(&id).unwrap()
    )
    .execute(&app.db)
    .await
    .unwrap();
    eventually("the ended game expires", || async {
        app.get_as(&format!("/game_lobby/fleet/games/{id}"), "alice")
            .await
            .status()
            == 404
    })
    .await;
    assert_eq!(
        dying.calls("create_game").len() + dying.calls("remove_game").len(),
        calls_then,
        "nothing is sent to a lost instance"
    );
    let owed: i64 = sqlx::query_scalar!(r#"select count(*) as "n!" from game_server_outbox"#)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(owed, 0);

    // registered again, it starts empty
    assert_eq!(register(&app, "dying", &dying, 100).await.status(), 201);
    assert_eq!(instances(&app).await["dying"]["games"], 0);
    beat.abort();
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_draining_instance_gets_no_new_games_and_its_games_go_on(db: PgPool) {
    let (old, new) = (GameServerStub::start().await, GameServerStub::start().await);
    let settings = fleet_settings(&[], "");
    let app = spawn_with(db, old.clone(), settings).await;
    assert_eq!(register(&app, "old", &old, 100).await.status(), 201);
    let game = create(&app, "alice", "")
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(game["game_server_url"], old.url);
    let id = game["game_id"].as_str().unwrap().to_string();
    app.set_state("fleet", &id, "creator_joined").await;

    assert_eq!(register(&app, "new", &new, 1).await.status(), 201);
    let drained = instance_call(&app, reqwest::Method::POST, "/old/drain", None).await;
    assert_eq!(drained.status(), 200);
    assert_eq!(drained.json::<Value>().await.unwrap()["state"], "draining");

    for user in ["bob", "carol"] {
        let res = create(&app, user, "").await;
        if user == "bob" {
            assert_eq!(
                res.json::<Value>().await.unwrap()["game_server_url"],
                new.url
            );
        } else {
            // the only active instance is full; the draining one has room but takes nothing
            assert_eq!(res.status(), 503);
        }
    }
    assert_eq!(created_on(&old).len(), 1);
    // its game plays on, on it
    let res = app.join("fleet", &id, "dave").await;
    assert_eq!(res.status(), 200);
    assert_eq!(old.calls("join_game").len(), 1);
    for state in ["all_players_joined", "in_progress", "ended"] {
        app.set_state("fleet", &id, state).await;
    }
    assert_eq!(
        instances(&app).await["old"]["games"],
        0,
        "drained: it may leave"
    );
    let gone = instance_call(&app, reqwest::Method::DELETE, "/old", None).await;
    assert_eq!(gone.status(), 204);
    assert_eq!(instances(&app).await["old"]["state"], "lost");
    let again = instance_call(&app, reqwest::Method::DELETE, "/old", None).await;
    assert_eq!(again.status(), 404);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_region_is_honoured_a_full_one_is_a_503_and_an_unknown_one_a_400(db: PgPool) {
    let (eu, us) = (GameServerStub::start().await, GameServerStub::start().await);
    let servers = [("eu-1", &eu, 1, "eu"), ("us-1", &us, 100, "us")];
    let app = spawn_with(db, eu.clone(), fleet_settings(&servers, "")).await;

    let res = create(&app, "alice", "?region=eu").await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["game_server_url"],
        eu.url
    );
    let full = create(&app, "bob", "?region=eu").await;
    assert_eq!(
        problem(full).await,
        (503, "Game Lobby: Every game server of product fleet in region eu is full. Please try again shortly.".into())
    );
    let body = app
        .http
        .post(format!("{}/game_lobby/fleet/quick_match", app.base))
        .bearer_auth(crate::helpers::token("bob"))
        .json(&json!({"region": "us"}))
        .send()
        .await
        .unwrap();
    assert_eq!(body.status(), 200);
    assert_eq!(
        body.json::<Value>().await.unwrap()["game_server_url"],
        us.url
    );
    let unknown = create(&app, "carol", "?region=mars").await;
    assert_eq!(
        problem(unknown).await,
        (
            400,
            "Game Lobby: No game server of product fleet is in region mars.".into()
        )
    );
    let bad = create(&app, "carol", "?region=a%20b").await;
    assert_eq!(problem(bad).await.0, 400);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_failing_instance_is_skipped_once_its_breaker_opens_and_used_again_once_healed(
    db: PgPool,
) {
    let (flaky, steady) = (GameServerStub::start().await, GameServerStub::start().await);
    let servers = [("flaky", &flaky, 100, "eu"), ("steady", &steady, 10, "eu")];
    let app = spawn_with(
        db,
        flaky.clone(),
        fleet_settings(&servers, "breaker_open_ms = 2000"),
    )
    .await;
    // unwell: every call fails (a successful call, even an owed remove_game, closes a breaker)
    flaky.set("create_game", Behaviour::Refuse(500));
    flaky.set("remove_game", Behaviour::Refuse(500));

    // the most room, so creates go to it and fail, until its breaker opens: three faults in a
    // row, the owed remove_game calls counting too
    let mut n = 0;
    eventually("the failing instance's breaker opens", || {
        n += 1;
        let app = &app;
        async move {
            // a 5xx is the game server refusing the create (docs/api.md)
            assert_eq!(create(app, &format!("early{n}"), "").await.status(), 400);
            instances(app).await["flaky"]["healthy"] == false
        }
    })
    .await;
    let failed = created_on(&flaky).len();
    assert!((1..=3).contains(&failed), "{failed}");
    // open: skipped
    for user in ["d", "e"] {
        let res = create(&app, user, "").await;
        assert_eq!(
            res.json::<Value>().await.unwrap()["game_server_url"],
            steady.url
        );
    }
    assert_eq!(
        created_on(&flaky).len(),
        failed,
        "nothing sent while the breaker is open"
    );

    // healed: after the open period one create probes it, and it is used again
    flaky.set("create_game", Behaviour::Ok);
    flaky.set("remove_game", Behaviour::Ok);
    let mut n = 0;
    eventually("a create lands on the healed instance", || {
        n += 1;
        let app = &app;
        let flaky = flaky.url.clone();
        async move {
            let res = create(app, &format!("later{n}"), "").await;
            res.json::<Value>().await.unwrap()["game_server_url"] == flaky
        }
    })
    .await;
    assert_eq!(instances(&app).await["flaky"]["healthy"], true);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn registration_checks_its_key_and_its_body(db: PgPool) {
    let stub = GameServerStub::start().await;
    let servers = [("cfg", &stub, 5, "eu")];
    let app = spawn_with(db, stub.clone(), fleet_settings(&servers, "")).await;
    let no_key = app
        .http
        .post(format!("{}/game_servers/fleet/instances", app.base))
        .json(&json!({"id": "x", "url": stub.url, "socket_url": "x:1", "capacity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);
    for (body, field) in [
        (
            json!({"id": "", "url": stub.url, "socket_url": "x:1", "capacity": 1}),
            "`id`",
        ),
        (
            json!({"id": "x", "url": "ftp://x", "socket_url": "x:1", "capacity": 1}),
            "`url`",
        ),
        (
            json!({"id": "x", "url": stub.url, "socket_url": "x:1", "capacity": 0}),
            "`capacity`",
        ),
        (
            json!({"id": "x", "url": stub.url, "socket_url": "x:1"}),
            "capacity",
        ),
        (
            json!({"id": "x", "url": stub.url, "socket_url": "x:1", "capacity": 1, "region": "a b"}),
            "region",
        ),
    ] {
        let (status, detail) =
            problem(instance_call(&app, reqwest::Method::POST, "", Some(body)).await).await;
        assert_eq!(status, 400, "{detail}");
        assert!(detail.contains(field), "{detail}");
    }
    let configured = register(&app, "cfg", &stub, 5).await;
    assert_eq!(problem(configured).await.0, 409);
    let remove = instance_call(&app, reqwest::Method::DELETE, "/cfg", None).await;
    assert_eq!(problem(remove).await.0, 409);
    for id in ["a%00b", "%FF%FE"] {
        let bad = instance_call(
            &app,
            reqwest::Method::POST,
            &format!("/{id}/heartbeat"),
            None,
        )
        .await;
        assert_eq!(problem(bad).await.0, 400, "{id}");
    }
    let unknown = instance_call(&app, reqwest::Method::POST, "/nobody/drain", None).await;
    assert_eq!(problem(unknown).await.0, 404);
}
