//! The game-event stream: its position (`event_stream_cursor`) and the one-reader lock.

use sqlx::PgConnection;

/// The id of the last entry applied from `stream_key`, if any.
pub async fn get(conn: &mut PgConnection, stream_key: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        "select last_id from event_stream_cursor where stream_key = $1",
        stream_key
    )
    .fetch_optional(conn)
    .await
}

/// Moves the cursor; called in the same transaction as the entries' effects.
pub async fn set(conn: &mut PgConnection, stream_key: &str, last_id: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into event_stream_cursor (stream_key, last_id) values ($1, $2)
         on conflict (stream_key) do update set last_id = excluded.last_id, updated_at = now()",
        stream_key,
        last_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Tries to become the stream's one reader: a session advisory lock, held until `conn` closes.
pub async fn try_lock_reader(conn: &mut PgConnection, stream_key: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select pg_try_advisory_lock(hashtext('matchmaker event stream ' || $1)) as "locked!""#,
        stream_key
    )
    .fetch_one(conn)
    .await
}
