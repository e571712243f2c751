//! The open-games list served from memory: after a storm of concurrent creates, joins, leaves
//! and expiries on two processes, every page of each process equals the database's answer.

use futures::future::join_all;
use serde_json::Value;
use sqlx::{PgPool, postgres::PgPoolOptions};

use crate::helpers::{GameServerStub, TestApp, database_url, eventually, settings, spawn_with};

async fn page(app: &TestApp, query: &str) -> Value {
    let res = app
        .get(&format!("/game_lobby/quad/open_games{query}"))
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn memory_pages(app: &TestApp) -> u64 {
    let metrics = app.get("/metrics").await.text().await.unwrap();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("matchmaker_lobby_pages_total{source=\"memory\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn after_a_storm_on_two_processes_every_page_is_the_databases(db: PgPool) {
    let fast = "reaper_interval_ms = 100";
    let stub = GameServerStub::start().await;
    // Each process with a pool of its own, as separate processes have.
    let own_pool = || async {
        PgPoolOptions::new()
            .max_connections(12)
            .connect(&database_url(&db))
            .await
            .unwrap()
    };
    let a = spawn_with(own_pool().await, stub.clone(), settings(&stub, fast)).await;
    let b = spawn_with(own_pool().await, stub.clone(), settings(&stub, fast)).await;
    // The database's answer: a process that never serves from memory.
    let truth = spawn_with(
        own_pool().await,
        stub.clone(),
        settings(&stub, &format!("{fast}\nlobby_cache = false")),
    )
    .await;
    let apps = [&a, &b];

    // 40 open games, created and opened half on each process
    let ids: Vec<String> = join_all((0..40).map(|i| {
        let app = apps[i % 2];
        async move { app.open_game("quad", &format!("host{i}")).await }
    }))
    .await;
    // joins, leaves and expiries, all at once, on both processes
    let joins = (0..60).map(|i| {
        let app = apps[i % 2];
        let id = ids[i % ids.len()].clone();
        async move {
            let res = app.join("quad", &id, &format!("p{i}")).await;
            if i % 3 == 0 && res.status() == 200 {
                let other = apps[(i + 1) % 2];
                other
                    .post(
                        &format!("/game_lobby/quad/leave_game/{id}"),
                        Some(&format!("p{i}")),
                    )
                    .await;
            }
        }
    });
    let expire = async {
        for id in ids.iter().step_by(7) {
            let id = uuid::Uuid::parse_str(id).unwrap();
            sqlx::query!(
                "update games set expires_at = now() - interval '1 second' where game_id = $1",
                id
            )
            .execute(&db)
            .await
            .unwrap();
        }
    };
    let leave_hosts = async {
        for (i, id) in ids.iter().enumerate().skip(3).step_by(9) {
            apps[i % 2]
                .post(
                    &format!("/game_lobby/quad/leave_game/{id}"),
                    Some(&format!("host{i}")),
                )
                .await;
        }
    };
    tokio::join!(join_all(joins), expire, leave_hosts);
    eventually("the reaper has expired every game it was given", || async {
        sqlx::query_scalar!("select count(*) from games where expires_at < now()")
            .fetch_one(&db)
            .await
            .unwrap()
            == Some(0)
    })
    .await;

    let queries = [
        "",
        "?count=25",
        "?count=25&page=1",
        "?count=7&page=2",
        "?settings.mode=ranked&count=25",
        "?settings.mode=casual",
    ];
    for query in queries {
        let expected = page(&truth, query).await;
        for (name, app) in [("A", &a), ("B", &b)] {
            eventually(
                &format!("{name}'s page {query:?} is the database's"),
                || async { page(app, query).await == expected },
            )
            .await;
        }
    }
    let all = page(&truth, "?count=25").await;
    assert!(
        all.as_array().unwrap().len() > 10,
        "the storm left a lobby to compare: {all}"
    );
    // and both processes serve those pages from memory, once their listeners caught up
    for app in [&a, &b] {
        for query in queries {
            let expected = page(&truth, query).await;
            eventually(&format!("{query:?} comes from memory"), || async {
                let before = memory_pages(app).await;
                let got = page(app, query).await;
                got == expected && memory_pages(app).await == before + 1
            })
            .await;
        }
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(
            metrics.contains("matchmaker_lobby_cache_in_sync 1"),
            "{metrics}"
        );
    }
}

/// A join's seat in a listed game: the process's next page does not show the game even while
/// the listener has not applied the reservation's notification yet (the commit fence), and
/// serves from memory again once it has, with no fence notification of its own.
#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_join_waits_for_its_own_commits_notification_before_pages_come_from_memory(db: PgPool) {
    use matchmaker::{
        domain::{GameRef, Player, SettingsFilter},
        lobby::{Listing, Page},
        startup::Application,
    };
    let stub = GameServerStub::start().await;
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // Not running: the listener applies notifications only when the test hands them over.
    let app = Application::build(settings(&stub, ""), db.clone(), tcp).unwrap();
    let (lobby, listener) = (app.lobby(), app.lobby_listener());
    let product = lobby.product("exrps").unwrap();
    let player = |name: &str| Player {
        user_id: name.into(),
        username: format!("{name}-name"),
    };
    let game = lobby
        .create_game(&product, &player("alice"), false, None)
        .await
        .unwrap();
    // alice connects (the game server's event, written as the stream intake writes it)
    sqlx::query!(
        "update games set state = 'creator_joined', lobby_at = now() where game_id = $1",
        game.game_id
    )
    .execute(&db)
    .await
    .unwrap();
    listener.load_once().await.unwrap();
    let all = SettingsFilter::default();
    let page = || async {
        match lobby
            .open_games("exrps", Page::default(), &all)
            .await
            .unwrap()
        {
            Listing::Json(json) => ("memory", serde_json::from_str::<Value>(&json).unwrap()),
            Listing::Games(_, games) => ("database", Value::from(games.len())),
            Listing::UnknownProduct => unreachable!(),
        }
    };
    let (source, listed) = page().await;
    assert_eq!(
        (source, listed.as_array().map(Vec::len)),
        ("memory", Some(1))
    );

    let mut notifications = sqlx::postgres::PgListener::connect_with(&db).await.unwrap();
    notifications.listen("matchmaker_lobby").await.unwrap();
    lobby
        .join_game(&product, &player("bob"), &GameRef::from(game.game_id))
        .await
        .unwrap();
    assert_eq!(
        page().await,
        ("database", Value::from(0)),
        "the full game is gone from this process's pages at once"
    );
    // Only the reservation's own notifications come before a marker sent after the join
    // (notifications arrive in commit order): no fence was sent.
    sqlx::query!("select pg_notify('matchmaker_lobby', 'marker')")
        .execute(&db)
        .await
        .unwrap();
    let mut own = Vec::new();
    loop {
        let payload = notifications.recv().await.unwrap().payload().to_string();
        if payload == "marker" {
            break;
        }
        own.push(payload);
    }
    let txs: Vec<Value> = own
        .iter()
        .map(|p| serde_json::from_str::<Value>(p).unwrap()["tx"].clone())
        .collect();
    assert!(
        !txs.is_empty() && txs.iter().all(|tx| tx.is_i64() && *tx == txs[0]),
        "{own:?}"
    );
    listener.forward_once(&own).await.unwrap();
    assert_eq!(page().await, ("memory", Value::Array(vec![])));
}
