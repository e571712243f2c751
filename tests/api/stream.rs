//! The Redis stream intake: needs `REDIS_URL` (`make test` starts a throwaway Redis).

use redis::AsyncCommands;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{GameServerStub, TestApp, eventually, settings, spawn_with};

fn redis_url() -> String {
    std::env::var("REDIS_URL")
        .expect("REDIS_URL must name a Redis server for the stream tests (make test starts one)")
}

/// A stream of its own for each test, so tests can share one Redis.
fn stream_key() -> String {
    format!("test_stream_{}", uuid::Uuid::new_v4().simple())
}

async fn spawn_reader(db: PgPool, stub: GameServerStub, key: &str) -> TestApp {
    let extra = format!(
        "event_stream_url = \"{}\"\nevent_stream_key = \"{key}\"",
        redis_url()
    );
    let settings = settings(&stub, &extra);
    spawn_with(db, stub, settings).await
}

async fn append(key: &str, fields: &[(&str, &str)]) -> String {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    conn.xadd(key, "*", fields).await.unwrap()
}

async fn cursor(db: &PgPool, key: &str) -> Option<String> {
    sqlx::query_scalar!(
        "select last_id from event_stream_cursor where stream_key = $1",
        key
    )
    .fetch_optional(db)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn stream_entries_apply_once_across_restarts(db: PgPool) {
    let key = stream_key();
    let stub = GameServerStub::start().await;
    let app = spawn_reader(db.clone(), stub.clone(), &key).await;
    let game = app.create("exrps", "alice").await;
    let id = game["game_id"].as_str().unwrap().to_string();

    // malformed entries and unknown games are skipped without stalling the stream
    append(&key, &[("type", "state_change"), ("game_id", "nonsense")]).await;
    append(
        &key,
        &[
            ("type", "state_change"),
            ("product_id", "exrps"),
            ("game_id", &uuid::Uuid::new_v4().simple().to_string()),
            ("new_state", "creator_joined"),
        ],
    )
    .await;
    append(
        &key,
        &[
            ("type", "state_change"),
            ("product_id", "exrps"),
            ("game_id", &id),
            ("new_state", "creator_joined"),
        ],
    )
    .await;
    eventually("the game is listed", || async {
        app.open_ids("exrps", "").await == vec![id.clone()]
    })
    .await;

    assert_eq!(app.join("exrps", &id, "bob").await.status(), 200);
    let last = append(
        &key,
        &[
            ("type", "player_disconnect"),
            ("product_id", "exrps"),
            ("game_id", &id),
            ("player_id", "bob"),
        ],
    )
    .await;
    eventually("bob's seat is freed", || async {
        app.open_ids("exrps", "").await == vec![id.clone()]
    })
    .await;
    assert_eq!(cursor(&db, &key).await, Some(last));
    app.stop().await;

    // bob sits down again; a restarted reader must not apply the old disconnect a second time
    let app = spawn_reader(db.clone(), stub, &key).await;
    assert_eq!(app.join("exrps", &id, "bob").await.status(), 200);
    let marker = append(
        &key,
        &[
            ("type", "gameplay"),
            ("product_id", "exrps"),
            ("game_id", &id),
        ],
    )
    .await;
    eventually("the reader reaches the new entry", || async {
        cursor(&db, &key).await == Some(marker.clone())
    })
    .await;
    let game: serde_json::Value = app.join("exrps", &id, "bob").await.json().await.unwrap();
    assert_eq!(game["players"], json!(["alice", "bob"]));
    assert!(app.open_ids("exrps", "").await.is_empty());
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn one_reader_at_a_time_and_a_standby_takes_over(db: PgPool) {
    let key = stream_key();
    let stub = GameServerStub::start().await;
    let first = spawn_reader(db.clone(), stub.clone(), &key).await;
    let marker = append(&key, &[("type", "gameplay")]).await;
    eventually("the first reader applies", || async {
        cursor(&db, &key).await == Some(marker.clone())
    })
    .await;
    let second = spawn_reader(db.clone(), stub.clone(), &key).await;
    // only one session holds the reader's advisory lock
    let holders = || async {
        sqlx::query_scalar!(
            "select count(*) from pg_locks where locktype = 'advisory' and granted
             and database = (select oid from pg_database where datname = current_database())"
        )
        .fetch_one(&db)
        .await
        .unwrap()
        .unwrap_or(0)
    };
    assert_eq!(holders().await, 1);
    first.stop().await;
    let game = second.create("exrps", "alice").await;
    let id = game["game_id"].as_str().unwrap().to_string();
    append(
        &key,
        &[
            ("type", "state_change"),
            ("product_id", "exrps"),
            ("game_id", &id),
            ("new_state", "creator_joined"),
        ],
    )
    .await;
    eventually("the standby takes over", || async {
        second.open_ids("exrps", "").await == vec![id.clone()]
    })
    .await;
    assert_eq!(holders().await, 1);
}

#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_first_start_continues_from_the_old_workers_position(db: PgPool) {
    let key = stream_key();
    let stub = GameServerStub::start().await;
    let plain = spawn_with(db.clone(), stub.clone(), settings(&stub, "")).await;
    let game = plain.create("exrps", "alice").await;
    let id = game["game_id"].as_str().unwrap().to_string();
    // the old worker already applied (or skipped) this entry: it must not be applied again
    let seen = append(
        &key,
        &[
            ("type", "game_removed"),
            ("product_id", "exrps"),
            ("game_id", &id),
        ],
    )
    .await;
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = conn.set(format!("__{key}_index"), &seen).await.unwrap();

    let app = spawn_reader(db.clone(), stub, &key).await;
    let next = append(
        &key,
        &[
            ("type", "state_change"),
            ("product_id", "exrps"),
            ("game_id", &id),
            ("new_state", "creator_joined"),
        ],
    )
    .await;
    eventually("the reader applies the new entry", || async {
        cursor(&db, &key).await == Some(next.clone())
    })
    .await;
    assert_eq!(
        app.open_ids("exrps", "").await,
        vec![id],
        "the old entry was not applied"
    );
}

/// The stream's batched state changes (`events::apply_state_changes`) give each entry the
/// outcome it would have had alone: only the next state applies, to the game of that product.
#[sqlx::test(migrator = "matchmaker::startup::MIGRATOR")]
async fn a_batch_of_state_changes_applies_only_the_next_state(db: PgPool) {
    use matchmaker::{
        domain::GameState::*,
        events::{Outcome, apply_state_changes},
    };
    let app = crate::helpers::spawn_app(db.clone()).await;
    let (mut texts, mut ids) = (Vec::new(), Vec::new());
    for creator in ["alice", "bob", "carol"] {
        let game = app.create("exrps", creator).await;
        let text = game["game_id"].as_str().unwrap().to_string();
        ids.push(uuid::Uuid::parse_str(&text).unwrap());
        texts.push(text);
    }
    let expiry = settings(&app.stub, "").expiry;
    let state = |i: usize| crate::helpers::state_of(&db, &texts[i]);
    let mut conn = db.acquire().await.unwrap();
    let first = apply_state_changes(
        &mut conn,
        &[
            ("exrps", ids[0], CreatorJoined),
            ("exrps", ids[1], InProgress),
            ("exrps", uuid::Uuid::new_v4(), CreatorJoined),
            ("other", ids[2], CreatorJoined),
        ],
        &expiry,
    )
    .await
    .unwrap();
    use Outcome::*;
    assert_eq!(
        first,
        [Applied, InvalidTransition, UnknownGame, UnknownGame]
    );
    assert_eq!(state(0).await.as_deref(), Some("creator_joined"));
    assert_eq!(state(1).await.as_deref(), Some("created"));
    assert_eq!(state(2).await.as_deref(), Some("created"));

    let second = apply_state_changes(
        &mut conn,
        &[
            ("exrps", ids[0], AllPlayersJoined),
            ("exrps", ids[1], CreatorJoined),
            ("exrps", ids[2], Created),
        ],
        &expiry,
    )
    .await
    .unwrap();
    assert_eq!(second, [Applied, Applied, InvalidTransition]);
    assert_eq!(state(0).await.as_deref(), Some("all_players_joined"));
    assert_eq!(state(1).await.as_deref(), Some("creator_joined"));
    assert_eq!(state(2).await.as_deref(), Some("created"));
}
