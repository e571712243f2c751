//! `game_server_outbox`: game-server calls owed. Enqueued inside the owing transaction; claimed
//! with a lease (no transaction stays open during the call), then done, retried or given up.

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "outbox_call", rename_all = "snake_case")]
pub enum Call {
    RemoveGame,
    RemovePlayer,
}

#[derive(Debug)]
pub struct Owed {
    pub id: i64,
    pub product_id: String,
    pub call: Call,
    pub game_id: Uuid,
    pub player_id: Option<String>,
    pub attempts: i32,
    /// The instance to call; `None`: the product's `game_server_url`.
    pub server_key: Option<Uuid>,
}

/// Owes a `remove_game` to the game's instance: `server_key` when the game is gone already,
/// otherwise the game's own. Nothing is owed to a lost instance (docs/fleets.md).
pub async fn owe_remove_game(
    db: impl PgExecutor<'_>,
    product_id: &str,
    game_id: Uuid,
    server_key: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"
        insert into game_server_outbox (product_id, call, game_id, server_key)
        select $1, 'remove_game', $2, k.key
        from (select coalesce($3, (select server_key from games where game_id = $2)) as key) k
        where not exists (select 1 from game_server_instances i
                          where i.server_key = k.key and i.state = 'lost')
        "#,
        product_id,
        game_id,
        server_key
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Owes a `remove_player` to the game's instance (see [`owe_remove_game`]).
pub async fn owe_remove_player(
    db: impl PgExecutor<'_>,
    product_id: &str,
    game_id: Uuid,
    player_id: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"
        insert into game_server_outbox (product_id, call, game_id, player_id, server_key)
        select $1, 'remove_player', $2, $3, k.key
        from (select (select server_key from games where game_id = $2) as key) k
        where not exists (select 1 from game_server_instances i
                          where i.server_key = k.key and i.state = 'lost')
        "#,
        product_id,
        game_id,
        player_id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Claims up to `limit` due calls, oldest due first, pushing their next attempt `lease_secs`
/// ahead: if this process dies during the call, another sends it once the lease runs out.
pub async fn claim(
    db: impl PgExecutor<'_>,
    limit: i64,
    lease_secs: f64,
) -> sqlx::Result<Vec<Owed>> {
    sqlx::query_as!(
        Owed,
        r#"
        update game_server_outbox o
        set attempts = o.attempts + 1,
            next_attempt_at = now() + make_interval(secs => $2)
        where o.id in (
            select id from game_server_outbox
            where gave_up_at is null and next_attempt_at <= now()
            order by next_attempt_at
            limit $1
            for update skip locked
        )
        returning o.id, o.product_id, o.call as "call: Call", o.game_id, o.player_id, o.attempts,
                  o.server_key
        "#,
        limit,
        lease_secs
    )
    .fetch_all(db)
    .await
}

pub async fn done(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<()> {
    sqlx::query!("delete from game_server_outbox where id = $1", id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn retry_later(
    db: impl PgExecutor<'_>,
    id: i64,
    delay_secs: f64,
    error: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update game_server_outbox
         set next_attempt_at = now() + make_interval(secs => $2), last_error = $3
         where id = $1",
        id,
        delay_secs,
        error
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn give_up(db: impl PgExecutor<'_>, id: i64, error: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "update game_server_outbox set gave_up_at = now(), last_error = $2 where id = $1",
        id,
        error
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Calls still owed (not given up): count and age of the oldest, in seconds.
pub async fn backlog(conn: &mut PgConnection) -> sqlx::Result<(i64, f64)> {
    let row = sqlx::query!(
        r#"select count(*) as "count!",
                  coalesce(extract(epoch from now() - min(created_at))::float8, 0) as "oldest!"
           from game_server_outbox where gave_up_at is null"#
    )
    .fetch_one(conn)
    .await?;
    Ok((row.count, row.oldest))
}
