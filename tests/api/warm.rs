//! The hot paths' connections (`store::warm`): kept without sqlx's release ping only when their
//! work ran to the end.

use std::time::Duration;

use matchmaker::store::warm::Warm;
use sqlx::{PgPool, postgres::PgPoolOptions};

async fn backend_pid(warm: &Warm) -> i32 {
    warm.run(async |c| {
        sqlx::query_scalar!(r#"select pg_backend_pid() as "pid!""#)
            .fetch_one(c)
            .await
    })
    .await
    .unwrap()
}

/// Whether session-level advisory lock `key` can be taken now (and gives it back).
async fn lock_is_free(db: &PgPool, key: i64) -> bool {
    let mut conn = db.acquire().await.unwrap();
    let got = sqlx::query_scalar!(r#"select pg_try_advisory_lock($1) as "got!""#, key)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    if got {
        sqlx::query_scalar!(r#"select pg_advisory_unlock($1) as "freed!""#, key)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    }
    got
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn finished_work_keeps_its_connection_and_a_failure_gives_it_back(db: PgPool) {
    let warm = Warm::with_grace(db.clone(), 2, Duration::from_secs(600));
    let first = backend_pid(&warm).await;
    assert_eq!(warm.idle_count(), 1);
    assert_eq!(backend_pid(&warm).await, first, "the same connection again");

    let failed = warm
        .run(async |c| {
            sqlx::query_scalar!(r#"select 1 / $1::int as "q!""#, 0)
                .fetch_one(c)
                .await
        })
        .await;
    assert!(failed.is_err(), "division by zero");
    assert_eq!(
        warm.idle_count(),
        0,
        "a failed connection goes back to sqlx"
    );
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_transaction_commits_and_a_cancelled_one_gives_its_locks_back(db: PgPool) {
    let warm = Warm::with_grace(db.clone(), 2, Duration::from_secs(600));
    warm.transaction(async |tx| {
        sqlx::query_scalar!(
            r#"select true as "locked!" from pg_advisory_xact_lock($1)"#,
            7_i64
        )
        .fetch_one(tx)
        .await
    })
    .await
    .unwrap();
    assert!(lock_is_free(&db, 7).await, "the commit let the lock go");
    assert_eq!(warm.idle_count(), 1);

    let cancelled = tokio::time::timeout(
        Duration::from_millis(300),
        warm.transaction(async |tx| {
            sqlx::query_scalar!(
                r#"select true as "locked!" from pg_advisory_xact_lock($1)"#,
                8_i64
            )
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query_scalar!(r#"select true as "slept!" from pg_sleep($1)"#, 1.0_f64)
                .fetch_one(tx)
                .await
        }),
    )
    .await;
    assert!(cancelled.is_err(), "timed out half-way");
    assert_eq!(warm.idle_count(), 0, "not kept: sqlx checks it");
    // sqlx rolls it back once the sleeping statement answers.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !lock_is_free(&db, 8).await {
        assert!(tokio::time::Instant::now() < deadline, "lock never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn an_idle_connection_goes_back_to_the_pool(db: PgPool) {
    let one = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(db.connect_options().as_ref().clone())
        .await
        .unwrap();
    let warm = Warm::with_grace(one.clone(), 1, Duration::from_millis(50));
    backend_pid(&warm).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while warm.idle_count() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "still held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The pool's one connection is the pool's again.
    let _conn = tokio::time::timeout(Duration::from_secs(1), one.acquire())
        .await
        .expect("the pool has a connection")
        .unwrap();
}
