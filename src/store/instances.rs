//! `game_server_instances`: each product's fleet, and where its games are placed
//! (docs/fleets.md).
//!
//! An instance can take a new game when it is `active`, configured or heartbeating within the
//! timeout, in the region asked for, not excluded by the caller (its breaker is open) and, if it
//! has a capacity, below it. `games` is kept by triggers for instances with a capacity; placing
//! a create adds one in the same statement that records the create's intent, under the row's
//! lock, so no race across processes can exceed a capacity.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::domain::fleet::{InstanceSpec, InstanceState, Placement};

/// What the placing statements need to know besides the game.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub product_id: &'a str,
    pub region: Option<&'a str>,
    /// Instances not to use (breaker open, or already tried by this create).
    pub exclude: &'a [Uuid],
    /// A registered instance is up while its last heartbeat is younger than this.
    pub timeout_secs: f64,
    /// The creator's open-games limit (0 = none): nothing is placed at the limit.
    pub limit: i64,
}

/// An instance row, as the fleet's list and the metrics show it.
#[derive(Debug)]
pub struct InstanceRow {
    pub server_key: Uuid,
    pub product_id: String,
    pub instance_id: String,
    pub url: String,
    pub socket_url: String,
    pub capacity: Option<i32>,
    pub region: Option<String>,
    pub state: InstanceState,
    pub configured: bool,
    pub games: i64,
    pub heartbeat_at: DateTime<Utc>,
    pub registered_at: DateTime<Utc>,
}

/// Records a create's intent (unless the creator is at their limit) in one statement: on an
/// instance without a capacity (a product's single `game_server_url`: nothing to count, so
/// nothing is locked), else on the counted instance with the most room, counting it there and
/// passing over instances other creates are placing on right now (so a burst spreads). With a
/// limit, the creator's advisory lock is taken first, inside the statement's transaction
/// (the function `place_create`, migration 20261202000004).
pub async fn place(
    db: impl PgExecutor<'_>,
    game_id: Uuid,
    creator_id: &str,
    w: &Wanted<'_>,
) -> sqlx::Result<Option<Placement>> {
    sqlx::query_as!(
        Placement,
        r#"
        select o_server_key as "server_key?", o_instance_id as "instance_id!",
               o_url as "url!", o_socket_url as "socket_url!"
        from place_create($1, $2, $3, $4, $5, $6, $7)
        "#,
        game_id,
        w.product_id,
        creator_id,
        w.region,
        w.timeout_secs,
        w.exclude,
        w.limit
    )
    .fetch_optional(db)
    .await
}

/// [`place`]'s counted placement when every instance with room is held by other creates:
/// waits for the best one's lock, and may then find it full (`None`: look again).
pub async fn place_counted_waiting(
    conn: &mut PgConnection,
    game_id: Uuid,
    creator_id: &str,
    w: &Wanted<'_>,
) -> sqlx::Result<Option<Placement>> {
    sqlx::query_as!(
        Placement,
        r#"
        with pick as (
            select server_key from game_server_instances
            where product_id = $1 and state = 'active' and capacity is not null
              and games < capacity
              and ($2::text is null or region = $2)
              and (configured or heartbeat_at > now() - make_interval(secs => $3))
              and server_key <> all($4)
              and ($7::int8 = 0
                   or (select count(*) from games
                       where creator_id = $6 and state in ('created', 'creator_joined'))
                    + (select count(*) from create_intents where creator_id = $6) < $7)
            order by capacity - games desc, random()
            limit 1
            for update
        ), counted as (
            update game_server_instances i set games = i.games + 1
            from pick where i.server_key = pick.server_key
            returning i.server_key, i.instance_id, i.url, i.socket_url
        ), intent as (
            insert into create_intents (game_id, product_id, creator_id, server_key)
            select $5, $1, $6, server_key from counted
            returning server_key
        )
        select c.server_key as "server_key?", c.instance_id, c.url, c.socket_url
        from counted c join intent i on i.server_key = c.server_key
        "#,
        w.product_id,
        w.region,
        w.timeout_secs,
        w.exclude,
        game_id,
        creator_id,
        w.limit
    )
    .fetch_optional(conn)
    .await
}

/// Whether any instance is up for new games (as `place_*` would take it, room aside), and
/// whether one of those has room.
pub async fn availability(db: impl PgExecutor<'_>, w: &Wanted<'_>) -> sqlx::Result<(bool, bool)> {
    let row = sqlx::query!(
        r#"
        select count(*) > 0 as "up!",
               coalesce(bool_or(capacity is null or games < capacity), false) as "room!"
        from game_server_instances
        where product_id = $1 and state = 'active'
          and ($2::text is null or region = $2)
          and (configured or heartbeat_at > now() - make_interval(secs => $3))
          and server_key <> all($4)
        "#,
        w.product_id,
        w.region,
        w.timeout_secs,
        w.exclude,
    )
    .fetch_one(db)
    .await?;
    Ok((row.up, row.room))
}

/// Makes the configured instances of a product what the configuration says; configured ones it
/// no longer lists are drained (their games play on). A registered instance with a configured
/// id becomes configured.
pub async fn sync_configured(
    conn: &mut PgConnection,
    product_id: &str,
    specs: &[InstanceSpec],
) -> sqlx::Result<()> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let mut ids = Vec::with_capacity(specs.len());
    for s in specs {
        let capacity = s.capacity.map(|c| i32::try_from(c).unwrap_or(i32::MAX));
        sqlx::query!(
            r#"
            insert into game_server_instances
                (product_id, instance_id, url, socket_url, capacity, region, configured)
            values ($1, $2, $3, $4, $5, $6, true)
            on conflict (product_id, instance_id) where state <> 'lost' do update
            set url = excluded.url, socket_url = excluded.socket_url,
                capacity = excluded.capacity, region = excluded.region, configured = true,
                state = 'active', heartbeat_at = now(),
                -- Counted from here on if it was not before; a count the triggers already
                -- keep stays, since a recount would miss the creates still in flight.
                games = case when game_server_instances.capacity is null
                             then instance_live_games(game_server_instances.server_key)
                             else game_server_instances.games end
            "#,
            product_id,
            s.id,
            s.url,
            s.socket_url,
            capacity,
            s.region
        )
        .execute(&mut *tx)
        .await?;
        ids.push(s.id.clone());
    }
    sqlx::query!(
        "update game_server_instances set state = 'draining'
         where product_id = $1 and configured and state = 'active' and instance_id <> all($2)",
        product_id,
        &ids
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Registers an instance, or registers it again (new address, capacity or region; draining
/// ends). `None` when the id is a configured instance's, else whether it is new.
pub async fn register(
    db: impl PgExecutor<'_>,
    product_id: &str,
    s: &InstanceSpec,
) -> sqlx::Result<Option<bool>> {
    let capacity = s.capacity.map(|c| i32::try_from(c).unwrap_or(i32::MAX));
    sqlx::query_scalar!(
        r#"
        insert into game_server_instances
            (product_id, instance_id, url, socket_url, capacity, region, configured)
        values ($1, $2, $3, $4, $5, $6, false)
        on conflict (product_id, instance_id) where state <> 'lost' do update
        set url = excluded.url, socket_url = excluded.socket_url, capacity = excluded.capacity,
            region = excluded.region, state = 'active', heartbeat_at = now(),
            -- as in sync_configured: only an instance not counted before is counted now
            games = case when game_server_instances.capacity is null
                         then instance_live_games(game_server_instances.server_key)
                         else game_server_instances.games end
        where not game_server_instances.configured
        returning (xmax = 0) as "inserted!"
        "#,
        product_id,
        s.id,
        s.url,
        s.socket_url,
        capacity,
        s.region
    )
    .fetch_optional(db)
    .await
}

/// Notes a heartbeat; `false` when the instance is not registered (or was lost).
pub async fn heartbeat(
    db: impl PgExecutor<'_>,
    product_id: &str,
    instance_id: &str,
) -> sqlx::Result<bool> {
    let n = sqlx::query!(
        "update game_server_instances set heartbeat_at = now()
         where product_id = $1 and instance_id = $2 and state <> 'lost'",
        product_id,
        instance_id
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Stops new games going to an instance; `false` when it is not registered.
pub async fn drain(
    db: impl PgExecutor<'_>,
    product_id: &str,
    instance_id: &str,
) -> sqlx::Result<bool> {
    let n = sqlx::query!(
        "update game_server_instances set state = 'draining'
         where product_id = $1 and instance_id = $2 and state <> 'lost'",
        product_id,
        instance_id
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// What an instance removal found.
pub enum Removal {
    Removed(Uuid),
    Configured,
    NotFound,
}

/// Marks a registered instance lost (it left); its games are ended by [`end_games_of`].
pub async fn remove(
    conn: &mut PgConnection,
    product_id: &str,
    instance_id: &str,
) -> sqlx::Result<Removal> {
    let row = sqlx::query!(
        r#"
        update game_server_instances set state = 'lost', lost_at = now()
        where product_id = $1 and instance_id = $2 and state <> 'lost'
          and not configured
        returning server_key
        "#,
        product_id,
        instance_id
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(r) = row {
        return Ok(Removal::Removed(r.server_key));
    }
    let configured = sqlx::query_scalar!(
        r#"select exists(select 1 from game_server_instances
                         where product_id = $1 and instance_id = $2 and state <> 'lost'
                           and configured) as "exists!""#,
        product_id,
        instance_id
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(if configured {
        Removal::Configured
    } else {
        Removal::NotFound
    })
}

/// Registered instances whose last heartbeat is older than `timeout_secs`, marked lost.
pub async fn take_lost(
    conn: &mut PgConnection,
    timeout_secs: f64,
) -> sqlx::Result<Vec<(Uuid, String, String)>> {
    let rows = sqlx::query!(
        r#"
        update game_server_instances set state = 'lost', lost_at = now()
        where state <> 'lost' and not configured
          and heartbeat_at < now() - make_interval(secs => $1)
        returning server_key, product_id, instance_id
        "#,
        timeout_secs
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.server_key, r.product_id, r.instance_id))
        .collect())
}

/// Ends every game of lost instances: they leave the lobby and no longer hold their players
/// (an ended game counts toward no limit and no quick match), creates in flight on them are
/// dropped (their inserts then find no intent) and so are calls owed to them. The players stay
/// on the ended game's row, so its status says it ended. Returns the games ended.
pub async fn end_games_of(
    conn: &mut PgConnection,
    server_keys: &[Uuid],
    ended_expiry_secs: f64,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query!(
        "delete from create_intents where server_key = any($1)",
        server_keys
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "delete from game_server_outbox where server_key = any($1)",
        server_keys
    )
    .execute(&mut *conn)
    .await?;
    let ended = sqlx::query_scalar!(
        r#"
        update games set state = 'ended', state_changed_at = now(), updated_at = now(),
                         expires_at = now() + make_interval(secs => $2)
        where server_key = any($1) and state <> 'ended'
        returning game_id
        "#,
        server_keys,
        ended_expiry_secs
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(ended)
}

/// The instances of one product (or all), the latest incarnation of each id first by id;
/// `games` counts live games and creates in flight.
pub async fn list(
    db: impl PgExecutor<'_>,
    product_id: Option<&str>,
) -> sqlx::Result<Vec<InstanceRow>> {
    sqlx::query_as!(
        InstanceRow,
        r#"
        select distinct on (i.product_id, i.instance_id)
               i.server_key, i.product_id, i.instance_id, i.url, i.socket_url, i.capacity,
               i.region, i.state as "state: InstanceState", i.configured,
               (select count(*) from games g
                where g.server_key = i.server_key and g.state <> 'ended')
             + (select count(*) from create_intents c
                where c.server_key = i.server_key) as "games!",
               i.heartbeat_at, i.registered_at
        from game_server_instances i
        where $1::text is null or i.product_id = $1
        order by i.product_id, i.instance_id, i.registered_at desc
        "#,
        product_id
    )
    .fetch_all(db)
    .await
}

/// Forgets lost incarnations older than `older_than_secs` that no game points at any more.
pub async fn forget_lost(db: impl PgExecutor<'_>, older_than_secs: f64) -> sqlx::Result<u64> {
    Ok(sqlx::query!(
        r#"
        delete from game_server_instances i
        where i.state = 'lost' and i.lost_at < now() - make_interval(secs => $1)
          and not exists (select 1 from games g where g.server_key = i.server_key)
        "#,
        older_than_secs
    )
    .execute(db)
    .await?
    .rows_affected())
}

/// Where an owed call goes: the instance incarnation's id and URL, unless it is lost (or
/// forgotten): then `None`, and nothing is sent.
pub async fn reachable(
    db: impl PgExecutor<'_>,
    server_key: Uuid,
) -> sqlx::Result<Option<Placement>> {
    sqlx::query_as!(
        Placement,
        r#"
        select server_key as "server_key?", instance_id, url, socket_url
        from game_server_instances
        where server_key = $1 and state <> 'lost'
        "#,
        server_key
    )
    .fetch_optional(db)
    .await
}

/// Whether any instance of the product not lost declares `region`.
pub async fn region_known(
    db: impl PgExecutor<'_>,
    product_id: &str,
    region: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists(select 1 from game_server_instances
                         where product_id = $1 and region = $2 and state <> 'lost') as "known!""#,
        product_id,
        region
    )
    .fetch_one(db)
    .await
}
