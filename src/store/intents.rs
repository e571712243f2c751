//! `create_intents`: creates in flight. Written before the game server's `create_game` is
//! called; the game's insert consumes it, and the reaper turns an abandoned one into an owed
//! `remove_game`.

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// Serialises the creates of one player until the transaction ends, so that the open-games
/// limit, checked by the placing statement (`store::instances`), is exact across processes.
pub async fn lock_creator(conn: &mut PgConnection, creator_id: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtext('matchmaker creator ' || $1))",
        creator_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether `creator` has fewer than `limit` games waiting for players, counting creates in
/// flight (0 = no limit).
pub async fn below_limit(
    conn: &mut PgConnection,
    creator_id: &str,
    limit: u32,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"
        select $2::int8 = 0
            or (select count(*) from games
                where creator_id = $1 and state in ('created', 'creator_joined'))
             + (select count(*) from create_intents where creator_id = $1) < $2 as "below!"
        "#,
        creator_id,
        i64::from(limit)
    )
    .fetch_one(conn)
    .await
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
) -> sqlx::Result<Vec<(Uuid, String, Option<Uuid>)>> {
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
        returning c.game_id, c.product_id, c.server_key
        "#,
        older_than_secs,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.game_id, r.product_id, r.server_key))
        .collect())
}
