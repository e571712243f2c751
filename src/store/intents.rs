//! `create_intents`: creates in flight. Written before the game server's `create_game` is
//! called; the game's insert consumes it, and the reaper turns an abandoned one into an owed
//! `remove_game`.

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// Records a create in flight for `creator`, unless they already have `limit` games waiting
/// for players (counting creates in flight); `limit` 0 means no limit. Returns whether it was
/// recorded. Exact across processes: creates by one player are serialized by an advisory lock.
pub async fn begin(
    conn: &mut PgConnection,
    game_id: Uuid,
    product_id: &str,
    creator_id: &str,
    limit: u32,
) -> sqlx::Result<bool> {
    if limit == 0 {
        sqlx::query!(
            "insert into create_intents (game_id, product_id, creator_id) values ($1, $2, $3)",
            game_id,
            product_id,
            creator_id
        )
        .execute(conn)
        .await?;
        return Ok(true);
    }
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    // A separate statement, so the count below sees every create committed while we waited.
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtext('matchmaker creator ' || $1))",
        creator_id
    )
    .execute(&mut *tx)
    .await?;
    let inserted = sqlx::query!(
        r#"
        insert into create_intents (game_id, product_id, creator_id)
        select $1, $2, $3
        where (select count(*) from games
               where creator_id = $3 and state in ('created', 'creator_joined'))
            + (select count(*) from create_intents where creator_id = $3) < $4
        "#,
        game_id,
        product_id,
        creator_id,
        i64::from(limit)
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(inserted == 1)
}

/// Drops an intent (the game server refused, so it holds nothing). Returns whether it was there.
pub async fn cancel(db: impl PgExecutor<'_>, game_id: Uuid) -> sqlx::Result<bool> {
    let n = sqlx::query!("delete from create_intents where game_id = $1", game_id)
        .execute(db)
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// Intents older than `older_than_secs`, removed (oldest first, at most `limit`, none another
/// process is handling); the caller owes each a `remove_game` in the same transaction.
pub async fn take_abandoned(
    conn: &mut PgConnection,
    older_than_secs: f64,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, String)>> {
    let rows = sqlx::query!(
        r#"
        with stale as (
            select game_id from create_intents
            where created_at < now() - make_interval(secs => $1)
            order by created_at
            limit $2
            for update skip locked
        )
        delete from create_intents c using stale
        where c.game_id = stale.game_id
        returning c.game_id, c.product_id
        "#,
        older_than_secs,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.game_id, r.product_id))
        .collect())
}
