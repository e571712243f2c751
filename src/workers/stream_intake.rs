//! The Redis stream consumer: applies `event_stream_key` entries exactly once.
//!
//! One process reads at a time: the reader holds a Postgres advisory lock on a dedicated
//! connection and applies every batch, together with the new cursor, in one transaction on that
//! same connection. If the process dies, the connection closes, the lock is released, and a
//! standby process takes over from the last committed cursor.

use std::{collections::HashSet, sync::Arc, time::Duration};

use redis::{
    AsyncCommands,
    aio::MultiplexedConnection,
    streams::{StreamReadOptions, StreamReadReply},
};
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::{sync::CancellationToken, task::AbortOnDropHandle};
use uuid::Uuid;

use crate::{
    domain::{Expiry, GameState},
    events::{self, Event, Outcome, RawEvent},
    metrics::{EventLabels, Metrics, StreamLabels},
    store,
};

/// Entries read (and applied in one transaction) at a time. The batch holds its games' row
/// locks until it commits, and a join waiting on one answers 409 after about 60 ms; 500 was
/// only 5 to 10 % faster (docs/performance.md, "The stream intake: one update per entry, the
/// next read meanwhile").
const BATCH: usize = 200;
/// How long one XREAD waits for new entries.
const BLOCK_MS: usize = 1000;
/// How often a standby process tries to become the reader.
const STANDBY_RETRY: Duration = Duration::from_secs(1);

pub struct StreamIntake {
    pub db: PgPool,
    pub redis_url: String,
    pub key: String,
    pub expiry: Expiry,
    pub metrics: Arc<Metrics>,
}

impl StreamIntake {
    /// Runs until `shutdown`: stands by, reads when it holds the lock, recovers from outages.
    pub async fn run(self, shutdown: CancellationToken) {
        let Self {
            db,
            redis_url,
            key,
            expiry,
            metrics,
        } = self;
        let mut pause = Duration::from_millis(200);
        while !shutdown.is_cancelled() {
            match lead(&db, &expiry, &metrics, &redis_url, &key, &shutdown).await {
                Ok(()) => pause = Duration::from_millis(200),
                Err(e) => {
                    tracing::warn!(error = %e, stream = %key, "event stream intake interrupted; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// One term as reader (or one failed attempt to become it). Returns Ok when standing by or
/// shutting down, Err on a database or Redis failure.
async fn lead(
    db: &PgPool,
    expiry: &Expiry,
    metrics: &Metrics,
    redis_url: &str,
    key: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut conn = db.acquire().await?.detach();
    if !store::cursor::try_lock_reader(&mut conn, key).await? {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(STANDBY_RETRY) => {}
        }
        return Ok(());
    }
    tracing::info!(stream = key, "reading the game event stream");

    let result = read_loop(&mut conn, expiry, metrics, redis_url, key, shutdown).await;
    // Closing the connection releases the advisory lock for a standby process.
    let _ = conn.close().await;
    result
}

async fn read_loop(
    conn: &mut PgConnection,
    expiry: &Expiry,
    metrics: &Metrics,
    redis_url: &str,
    key: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let client = redis::Client::open(redis_url)?;
    let mut redis = client.get_multiplexed_async_connection().await?;
    let mut cursor = match store::cursor::get(conn, key).await? {
        Some(id) => id,
        None => legacy_cursor(&mut redis, key).await?,
    };
    // The next batch is read (and parsed) while this one is applied.
    let mut next = read_after(redis.clone(), key, cursor.clone());
    loop {
        let entries = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            read = &mut next => read??,
        };
        let Some((last_id, _)) = entries.last() else {
            set_lag(metrics, key, None);
            next = read_after(redis.clone(), key, cursor.clone());
            continue;
        };
        let last_id = last_id.clone();
        next = read_after(redis.clone(), key, last_id.clone());
        match apply_batch(conn, expiry, key, &entries, &last_id).await {
            Ok(outcomes) => count(metrics, &outcomes),
            Err(sqlx::Error::Database(e)) => {
                // One entry the database refuses must not stall the stream: go one by one.
                tracing::warn!(error = %e, "a batch of stream entries failed; applying them one by one");
                for entry in &entries {
                    let id = &entry.0;
                    let one = std::slice::from_ref(entry);
                    match apply_batch(conn, expiry, key, one, id).await {
                        Ok(outcomes) => count(metrics, &outcomes),
                        Err(e) => {
                            let sqlx::Error::Database(e) = e else {
                                return Err(e.into());
                            };
                            tracing::error!(entry = %id, error = %e, "stream entry could not be applied; skipped");
                            let mut tx = conn.begin().await?;
                            store::cursor::set(&mut tx, key, id).await?;
                            tx.commit().await?;
                            count(metrics, &[Outcome::Malformed]);
                        }
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
        // A full batch means more entries are waiting behind this one.
        set_lag(
            metrics,
            key,
            (entries.len() == BATCH).then_some(last_id.as_str()),
        );
        cursor = last_id;
    }
}

/// Reads (blocking up to `BLOCK_MS`) and parses the entries after `cursor`, in a task of its
/// own so that it runs while the caller applies the batch before. Dropping the handle aborts
/// the read; XREAD only reads, so that changes nothing.
fn read_after(
    mut redis: MultiplexedConnection,
    key: &str,
    cursor: String,
) -> AbortOnDropHandle<redis::RedisResult<Vec<(String, RawEvent)>>> {
    let key = key.to_string();
    AbortOnDropHandle::new(tokio::spawn(async move {
        let options = StreamReadOptions::default().count(BATCH).block(BLOCK_MS);
        let reply: StreamReadReply = redis.xread_options(&[&key], &[&cursor], &options).await?;
        Ok(reply
            .keys
            .into_iter()
            .flat_map(|k| k.ids)
            .map(|entry| {
                let fields = entry
                    .map
                    .iter()
                    .filter_map(|(k, v)| {
                        redis::from_redis_value::<String>(v)
                            .ok()
                            .map(|v| (k.clone(), v))
                    })
                    .collect();
                (entry.id, fields)
            })
            .collect())
    }))
}

/// Applies entries and moves the cursor to `last_id`, all in one transaction.
async fn apply_batch(
    conn: &mut PgConnection,
    expiry: &Expiry,
    key: &str,
    entries: &[(String, RawEvent)],
    last_id: &str,
) -> sqlx::Result<Vec<Outcome>> {
    let mut tx = conn.begin().await?;
    let parsed: Vec<Result<Event, String>> =
        entries.iter().map(|(_, raw)| Event::parse(raw)).collect();
    let mut outcomes = Vec::with_capacity(entries.len());
    let mut next = 0;
    while next < entries.len() {
        // A run of state changes of distinct games takes one statement (the common case: a
        // game server reporting creators connecting); anything else goes one at a time.
        let run = state_change_run(&parsed[next..]);
        let done: Vec<Outcome> = if run.len() > 1 {
            events::apply_state_changes(&mut tx, &run, expiry).await?
        } else {
            let outcome = match &parsed[next] {
                Ok(event) => events::apply(&mut tx, event, expiry).await?,
                Err(problem) => {
                    let id = &entries[next].0;
                    tracing::warn!(entry = %id, %problem, "malformed stream entry skipped");
                    Outcome::Malformed
                }
            };
            vec![outcome]
        };
        for ((id, _), outcome) in entries[next..].iter().zip(&done) {
            tracing::debug!(entry = %id, outcome = outcome.as_str(), "stream entry");
        }
        next += done.len();
        outcomes.extend(done);
    }
    store::cursor::set(&mut tx, key, last_id).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// Sets the lag gauge from the id (`<unix ms>-<seq>`) of the last entry applied while more
/// are waiting; `None` when caught up.
fn set_lag(metrics: &Metrics, key: &str, behind_at: Option<&str>) {
    let lag = behind_at
        .and_then(|id| id.split('-').next()?.parse::<i64>().ok())
        .map_or(0.0, |ms| {
            ((chrono::Utc::now().timestamp_millis() - ms) as f64 / 1000.0).max(0.0)
        });
    metrics
        .stream_lag
        .get_or_create(&StreamLabels {
            stream: key.to_string(),
        })
        .set(lag);
}

/// The leading `state_change` events of `parsed` up to the first that is not one or that names
/// a game already in the run.
fn state_change_run(parsed: &[Result<Event, String>]) -> Vec<(&str, Uuid, GameState)> {
    let mut seen = HashSet::new();
    let mut run = Vec::new();
    for event in parsed {
        match event {
            Ok(Event::StateChange {
                product_id,
                game_id,
                new_state,
            }) if seen.insert(*game_id) => run.push((product_id.as_str(), *game_id, *new_state)),
            _ => break,
        }
    }
    run
}

/// Counts entries once their transaction committed.
fn count(metrics: &Metrics, outcomes: &[Outcome]) {
    for outcome in outcomes {
        metrics
            .events
            .get_or_create(&EventLabels {
                intake: "stream",
                outcome: outcome.as_str(),
            })
            .inc();
    }
}

/// Where to start when Postgres has no cursor yet: the old worker's position
/// (`__<stream key>_index`, i.e. `__game_event_stream_index`), else the beginning.
async fn legacy_cursor(redis: &mut MultiplexedConnection, key: &str) -> anyhow::Result<String> {
    let old: Option<String> = redis.get(format!("__{key}_index")).await?;
    Ok(old.unwrap_or_else(|| "0-0".to_string()))
}
