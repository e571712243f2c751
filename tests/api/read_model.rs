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
