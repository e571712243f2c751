//! `games` and `game_players`: the lobby's state.
//!
//! `games.seats_taken`: every statement here that inserts a seat adds it in the same statement
//! (and marks it `counted`), so the game row gets one new version, not two; a trigger takes off
//! the seats that go, and counts any seat inserted without `counted` (docs/performance.md,
//! "Seats counted by the statement that takes them").
//! Expiry times are passed in seconds and every change restarts the game's clock (`expires_at`).

use chrono::{DateTime, Utc};
use futures::{TryStreamExt, stream::BoxStream};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use crate::domain::{Game, GameState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "seat_status", rename_all = "snake_case")]
pub enum SeatStatus {
    Reserved,
    Held,
}

/// What a join found in a game, and the seat it reserved there.
#[derive(Debug)]
pub struct JoinTarget {
    pub state: GameState,
    pub num_players: i32,
    pub seats_taken: i32,
    /// The joiner's own seat in this game, if it had one.
    pub my_seat: Option<SeatStatus>,
    /// Whether this join holds the game's row lock. False when the game could not take the
    /// joiner anyway (nothing locked), or when another transaction holds it.
    pub locked: bool,
    /// The seat reserved now.
    pub reserved: Option<i32>,
    /// With a seat reserved in a listed game: the reservation's transaction, whose lobby
    /// notification (the game unlisted or changed) a commit fence waits for.
    pub lobby_tx: Option<i64>,
    /// The game's instance (all `None` for a game older than fleets).
    pub server_key: Option<Uuid>,
    pub instance_id: Option<String>,
    pub server_url: Option<String>,
    pub socket_url: Option<String>,
}

#[derive(Clone, Copy)]
pub struct NewGame<'a> {
    pub game_id: Uuid,
    pub product_id: &'a str,
    pub creator_id: &'a str,
    pub creator_name: &'a str,
    pub num_players: i32,
    pub settings: &'a Value,
    pub token: &'a str,
    pub expires_in_secs: f64,
    /// A private game's join code; `None` for a public game.
    pub join_code: Option<&'a str>,
}

/// Inserts a game in state `created` with its creator in seat 0, consuming its create intent
/// (and placed where the intent was);
/// returns its `updated_at`, or `None` when the intent is gone (the reaper gave up on it).
pub async fn insert(
    db: impl PgExecutor<'_>,
    g: &NewGame<'_>,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar!(
        r#"
        with intent as (
            delete from create_intents where game_id = $1 returning game_id, server_key
        ), g as (
            insert into games (game_id, product_id, creator_id, creator_name, num_players,
                               settings, token, expires_at, join_code, server_key, seats_taken)
            select game_id, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8), $9,
                   server_key, 1
            from intent
            returning game_id, num_players, creator_id, creator_name, updated_at
        ), creator as (
            insert into game_players (game_id, num_players, player_id, username, seat, status,
                                      counted)
            select game_id, num_players, creator_id, creator_name, 0, 'held', true from g
        )
        select updated_at as "updated_at!" from g
        "#,
        g.game_id,
        g.product_id,
        g.creator_id,
        g.creator_name,
        g.num_players,
        g.settings,
        g.token,
        g.expires_in_secs,
        g.join_code,
    )
    .fetch_optional(db)
    .await
}

/// Codes drawn before giving up; a collision is already rare, several in a row never happen
/// unless the code space is nearly full.
const CODE_ATTEMPTS: usize = 8;

/// Inserts a private game with the first code from `codes` that no live game holds; answers
/// the game's `updated_at` and its code (`None`: the create's intent is gone, see [`insert`]).
pub async fn insert_with_code(
    db: &PgPool,
    new: &NewGame<'_>,
    mut codes: impl FnMut() -> String,
) -> sqlx::Result<Option<(DateTime<Utc>, String)>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let code = codes();
        let with_code = NewGame {
            join_code: Some(&code),
            ..*new
        };
        match insert(db, &with_code).await {
            Ok(updated_at) => return Ok(updated_at.map(|t| (t, code))),
            Err(sqlx::Error::Database(e))
                if e.constraint() == Some("games_join_code_idx") && attempt < CODE_ATTEMPTS =>
            {
                tracing::info!(attempt, "join code taken; drawing another");
            }
            Err(e) => return Err(e),
        }
    }
}

/// One game of a product, with its held players.
pub async fn fetch(
    db: impl PgExecutor<'_>,
    game_id: Uuid,
    product_id: &str,
) -> sqlx::Result<Option<Game>> {
    Ok(fetch_many(db, &[game_id], Some(product_id)).await?.pop())
}

/// Games by id (of one product, if given), with their held players; missing ones are left out.
pub async fn fetch_many(
    db: impl PgExecutor<'_>,
    game_ids: &[Uuid],
    product_id: Option<&str>,
) -> sqlx::Result<Vec<Game>> {
    sqlx::query_as!(
        Game,
        r#"
        select g.game_id, g.product_id, g.creator_id, g.creator_name, g.num_players,
               g.seats_taken, g.settings, g.token, g.state as "state: GameState",
               g.updated_at, g.lobby_at, g.join_code,
               array(select p.player_id from game_players p
                     where p.game_id = g.game_id and p.status = 'held'
                     order by p.joined_at, p.seat) as "players!",
               g.server_key, i.instance_id as "instance_id?", i.url as "server_url?",
               i.socket_url as "socket_url?"
        from games g left join game_server_instances i on i.server_key = g.server_key
        where g.game_id = any($1) and ($2::text is null or g.product_id = $2)
        "#,
        game_ids,
        product_id
    )
    .fetch_all(db)
    .await
}

/// A page of the lobby: joinable games, oldest in the lobby first (served by `games_open_idx`).
/// `settings` filters by jsonb containment (`{}` for none).
pub async fn open_page<'a>(
    db: impl PgExecutor<'a> + 'a,
    product_id: &'a str,
    limit: i64,
    offset: i64,
    settings: &'a Value,
) -> sqlx::Result<Vec<Game>> {
    open_games(db, product_id, limit, offset, settings)
        .try_collect()
        .await
}

/// [`open_page`]'s games one at a time, as they arrive (the lobby's load holds no page of rows).
pub fn open_games<'a>(
    db: impl PgExecutor<'a> + 'a,
    product_id: &'a str,
    limit: i64,
    offset: i64,
    settings: &'a Value,
) -> BoxStream<'a, sqlx::Result<Game>> {
    sqlx::query_as!(
        Game,
        r#"
        select g.game_id, g.product_id, g.creator_id, g.creator_name, g.num_players,
               g.seats_taken, g.settings, g.token, g.state as "state: GameState",
               g.updated_at, g.lobby_at, g.join_code,
               array(select p.player_id from game_players p
                     where p.game_id = g.game_id and p.status = 'held'
                     order by p.joined_at, p.seat) as "players!",
               g.server_key, i.instance_id as "instance_id?", i.url as "server_url?",
               i.socket_url as "socket_url?"
        from games g left join game_server_instances i on i.server_key = g.server_key
        where g.product_id = $1 and g.state = 'creator_joined' and g.seats_taken < g.num_players
          and g.join_code is null and g.settings @> $4
        order by g.lobby_at, g.game_id
        limit $2 offset $3
        "#,
        product_id,
        limit,
        offset,
        settings
    )
    .fetch(db)
}

/// Step 1 of a join in one statement. Reads the game; if the joiner may take a seat, locks it
/// without waiting and reserves the lowest free seat (restarting the game's clock). When the
/// lock is taken, the fields are those of the locked row; otherwise they are as read, and a
/// game that could take the joiner but is not `locked` is held by another transaction. `None`
/// when the game does not exist for this product.
///
/// Nothing is locked (so nothing waits for a commit to reach the disk) when the game is full,
/// in the wrong state or already seats the joiner: the common answer to a crowd. A unique
/// violation means that a join committed between this statement's snapshot and its lock (the
/// seat or the player it would insert is taken by then): look again.
pub async fn lock_and_reserve(
    db: impl PgExecutor<'_>,
    game_id: Uuid,
    product_id: &str,
    player_id: &str,
    username: &str,
    expires_in_secs: f64,
) -> sqlx::Result<Option<JoinTarget>> {
    sqlx::query_as!(
        JoinTarget,
        r#"
        with found as (
            select g.state, g.num_players, g.seats_taken, g.join_code is null as public,
                   (select p.status from game_players p
                    where p.game_id = $1 and p.player_id = $3) as my_seat,
                   g.server_key, i.instance_id, i.url, i.socket_url
            from games g left join game_server_instances i on i.server_key = g.server_key
            where g.game_id = $1 and g.product_id = $2
        ), target as (
            select g.state, g.num_players, g.seats_taken
            from games g
            where g.game_id = $1
              and exists (select 1 from found f
                          where f.my_seat is null and f.state = 'creator_joined'
                            and f.seats_taken < f.num_players)
            for update of g skip locked
        ), seat as (
            insert into game_players (game_id, num_players, player_id, username, seat, status,
                                      counted)
            select $1, t.num_players, $3, $4, s.n, 'reserved', true
            from target t, generate_series(0, t.num_players - 1) as s(n)
            where t.state = 'creator_joined' and t.seats_taken < t.num_players
              and not exists (select 1 from game_players p where p.game_id = $1 and p.seat = s.n)
            order by s.n
            limit 1
            returning seat
        ), touch as (
            update games set seats_taken = seats_taken + 1, updated_at = now(),
                             expires_at = now() + make_interval(secs => $5)
            where game_id = $1 and exists (select 1 from seat)
        )
        select coalesce(t.state, f.state) as "state!: GameState",
               coalesce(t.num_players, f.num_players) as "num_players!",
               coalesce(t.seats_taken, f.seats_taken) as "seats_taken!",
               f.my_seat as "my_seat: SeatStatus",
               t.state is not null as "locked!",
               (select seat from seat) as reserved,
               (select pg_current_xact_id()::text::int8 from seat where f.public) as lobby_tx,
               f.server_key as "server_key?", f.instance_id as "instance_id?",
               f.url as "server_url?", f.socket_url as "socket_url?"
        from found f left join target t on true
        "#,
        game_id,
        product_id,
        player_id,
        username,
        expires_in_secs
    )
    .fetch_optional(db)
    .await
}

/// Turns a reservation into a held seat and answers the game as it is then, in one statement;
/// `None` when the reservation is gone (or the game is not `product_id`'s).
pub async fn hold_seat(
    db: impl PgExecutor<'_>,
    game_id: Uuid,
    product_id: &str,
    player_id: &str,
) -> sqlx::Result<Option<Game>> {
    // The statement's own changes are invisible to its final select: `updated_at` comes from
    // `touched`, and the joiner's row (still `reserved` to the select) counts as held.
    sqlx::query_as!(
        Game,
        r#"
        with held as (
            update game_players set status = 'held'
            where game_id = $1 and player_id = $3 and status = 'reserved'
            returning game_id
        ), touched as (
            update games set updated_at = now()
            where game_id in (select game_id from held)
            returning game_id, updated_at
        )
        select g.game_id, g.product_id, g.creator_id, g.creator_name, g.num_players,
               g.seats_taken, g.settings, g.token, g.state as "state: GameState",
               t.updated_at as "updated_at!", g.lobby_at, g.join_code,
               array(select p.player_id from game_players p
                     where p.game_id = g.game_id and (p.status = 'held' or p.player_id = $3)
                     order by p.joined_at, p.seat) as "players!",
               g.server_key, i.instance_id as "instance_id?", i.url as "server_url?",
               i.socket_url as "socket_url?"
        from games g join touched t on t.game_id = g.game_id
             left join game_server_instances i on i.server_key = g.server_key
        where g.game_id = $1 and g.product_id = $2
        "#,
        game_id,
        product_id,
        player_id
    )
    .fetch_optional(db)
    .await
}

/// Gives a reserved seat back (the game server refused the join).
pub async fn release_reservation(
    db: impl PgExecutor<'_>,
    game_id: Uuid,
    player_id: &str,
    expires_in_secs: f64,
) -> sqlx::Result<bool> {
    let released = sqlx::query_scalar!(
        r#"
        with gone as (
            delete from game_players
            where game_id = $1 and player_id = $2 and status = 'reserved'
            returning game_id
        )
        update games set updated_at = now(), expires_at = now() + make_interval(secs => $3)
        where game_id in (select game_id from gone)
        returning game_id
        "#,
        game_id,
        player_id,
        expires_in_secs
    )
    .fetch_optional(db)
    .await?;
    Ok(released.is_some())
}

/// State and creator of a game, locked for an event to change it.
pub async fn lock_for_event(
    conn: &mut PgConnection,
    game_id: Uuid,
    product_id: &str,
) -> sqlx::Result<Option<(GameState, String)>> {
    let row = sqlx::query!(
        r#"
        select state as "state: GameState", creator_id from games
        where game_id = $1 and product_id = $2
        for update
        "#,
        game_id,
        product_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.state, r.creator_id)))
}

/// Moves a game to `state`; entering `creator_joined` lists it (the first time sets `lobby_at`).
pub async fn set_state(
    conn: &mut PgConnection,
    game_id: Uuid,
    state: GameState,
    expires_in_secs: f64,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"
        update games
        set state = $2, state_changed_at = now(), updated_at = now(),
            expires_at = now() + make_interval(secs => $3),
            lobby_at = case when $2 = 'creator_joined'::game_state
                            then coalesce(lobby_at, now()) else lobby_at end
        where game_id = $1
        "#,
        game_id,
        state as GameState,
        expires_in_secs
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// What [`set_states`] did to one game: whether it moved, and if not, its state (`None`: no
/// such game for that product).
#[derive(Debug)]
pub struct StateChangeResult {
    pub before: Option<GameState>,
    pub applied: bool,
}

/// Moves each game `ids[i]` of `products[i]` to `states[i]` if it is in `from[i]`, in one
/// statement; the games must be distinct. Results come in the order of the input.
///
/// The update locks each row itself and, if another transaction changed it first, checks
/// `from` against the new version. A game left unchanged is looked up again only then, and
/// that state is only reported (it may predate a concurrent change).
pub async fn set_states(
    conn: &mut PgConnection,
    products: &[String],
    ids: &[Uuid],
    states: &[String],
    from: &[Option<String>],
    expires_in_secs: &[f64],
) -> sqlx::Result<Vec<StateChangeResult>> {
    sqlx::query_as!(
        StateChangeResult,
        r#"
        with input as (
            select * from unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::float8[])
                with ordinality as i(product_id, game_id, new_state, from_state, expiry_secs, ord)
        ), changed as (
            update games g
            set state = i.new_state::game_state, state_changed_at = now(), updated_at = now(),
                expires_at = now() + make_interval(secs => i.expiry_secs),
                lobby_at = case when i.new_state::game_state = 'creator_joined'::game_state
                                then coalesce(g.lobby_at, now()) else g.lobby_at end
            from input i
            where g.game_id = i.game_id and g.product_id = i.product_id
              and g.state = i.from_state::game_state
            returning g.game_id
        )
        select case when c.game_id is null
                    then (select g.state from games g
                          where g.game_id = i.game_id and g.product_id = i.product_id)
                    else i.from_state::game_state end as "before?: GameState",
               c.game_id is not null as "applied!"
        from input i left join changed c on c.game_id = i.game_id
        order by i.ord
        "#,
        products,
        ids,
        states,
        from as &[Option<String>],
        expires_in_secs
    )
    .fetch_all(conn)
    .await
}

/// Frees a player's seat (reserved or held); false when the player had none.
pub async fn remove_player(
    conn: &mut PgConnection,
    game_id: Uuid,
    player_id: &str,
) -> sqlx::Result<bool> {
    let removed = sqlx::query!(
        "delete from game_players where game_id = $1 and player_id = $2",
        game_id,
        player_id
    )
    .execute(conn)
    .await?;
    Ok(removed.rows_affected() > 0)
}

/// Deletes a game and its seats; false when there was none.
pub async fn delete(
    db: impl PgExecutor<'_>,
    game_id: Uuid,
    product_id: &str,
) -> sqlx::Result<bool> {
    let deleted = sqlx::query!(
        "delete from games where game_id = $1 and product_id = $2",
        game_id,
        product_id
    )
    .execute(db)
    .await?;
    Ok(deleted.rows_affected() > 0)
}

/// How many games each product has in each state (for the metrics).
pub async fn count_by_state(
    db: impl PgExecutor<'_>,
) -> sqlx::Result<Vec<(String, GameState, i64)>> {
    let rows = sqlx::query!(
        r#"select product_id, state as "state: GameState", count(*) as "count!"
           from games group by product_id, state"#
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.product_id, r.state, r.count))
        .collect())
}

/// An expired game, locked for the reaper.
#[derive(Debug)]
pub struct Expired {
    pub game_id: Uuid,
    /// Its instance, for the `remove_game` owed once the row is gone.
    pub server_key: Option<Uuid>,
    pub product_id: String,
    pub state: GameState,
    pub num_players: i32,
    pub seats_taken: i32,
}

/// Locks up to `limit` expired games, oldest deadline first, skipping games another process
/// (reaper or request) holds.
pub async fn lock_expired(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<Expired>> {
    sqlx::query_as!(
        Expired,
        r#"
        select game_id, server_key, product_id, state as "state: GameState", num_players,
               seats_taken
        from games
        where expires_at <= now()
        order by expires_at
        limit $1
        for update skip locked
        "#,
        limit
    )
    .fetch_all(conn)
    .await
}

/// The joiner of a full, stalled game to free on a reset: the newest held non-creator seat.
pub async fn newest_joiner(conn: &mut PgConnection, game_id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        r#"
        select p.player_id from game_players p join games g using (game_id)
        where p.game_id = $1 and p.player_id <> g.creator_id
        order by p.joined_at desc, p.seat desc
        limit 1
        "#,
        game_id
    )
    .fetch_optional(conn)
    .await
}

/// Restarts a game's clock in its current state; `expiry_secs` holds each state's expiry in
/// the enum's order ([`GameState::ALL`]).
pub async fn restart_clock(
    conn: &mut PgConnection,
    game_id: Uuid,
    expiry_secs: &[f64],
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"
        update games
        set updated_at = now(),
            expires_at = now() + make_interval(
                secs => ($2::float8[])[array_position(enum_range(null::game_state), state)])
        where game_id = $1
        "#,
        game_id,
        expiry_secs
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A reservation older than the reservation timeout: its join died between reserving and
/// confirming.
#[derive(Debug)]
pub struct StaleSeat {
    pub game_id: Uuid,
    pub product_id: String,
    pub player_id: String,
}

/// Deletes up to `limit` reservations older than `older_than_secs`, skipping any whose game or
/// seat another transaction holds.
pub async fn release_stale_reservations(
    conn: &mut PgConnection,
    older_than_secs: f64,
    limit: i64,
) -> sqlx::Result<Vec<StaleSeat>> {
    sqlx::query_as!(
        StaleSeat,
        r#"
        with stale as (
            select p.game_id, p.player_id, g.product_id
            from game_players p join games g using (game_id)
            where p.status = 'reserved' and p.joined_at < now() - make_interval(secs => $1)
            order by p.joined_at
            limit $2
            for update of p, g skip locked
        ), gone as (
            delete from game_players p using stale s
            where p.game_id = s.game_id and p.player_id = s.player_id
            returning p.game_id, p.player_id
        )
        select gone.game_id as "game_id!", stale.product_id as "product_id!", gone.player_id as "player_id!"
        from gone join stale using (game_id, player_id)
        "#,
        older_than_secs,
        limit
    )
    .fetch_all(conn)
    .await
}

/// The player's seat in a game, if any.
pub async fn seat_of(
    conn: &mut PgConnection,
    game_id: Uuid,
    player_id: &str,
) -> sqlx::Result<Option<SeatStatus>> {
    sqlx::query_scalar!(
        r#"select status as "status: SeatStatus" from game_players
           where game_id = $1 and player_id = $2"#,
        game_id,
        player_id
    )
    .fetch_optional(conn)
    .await
}

/// Serialises a player's quick matches of one product until the transaction ends (the two-key
/// advisory lock space is not used elsewhere).
pub async fn lock_quick_matcher(
    conn: &mut PgConnection,
    product_id: &str,
    player_id: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtext('matchmaker quick match'), hashtext($1 || '/' || $2))",
        product_id,
        player_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// [`lock_quick_matcher`] without waiting: `false` when another transaction holds it.
pub async fn try_lock_quick_matcher(
    conn: &mut PgConnection,
    product_id: &str,
    player_id: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select pg_try_advisory_xact_lock(hashtext('matchmaker quick match'), hashtext($1 || '/' || $2)) as "locked!""#,
        product_id,
        player_id
    )
    .fetch_one(conn)
    .await
}

/// Reserves the lowest free seat of `game_id` for a quick match waiting for it, unless the
/// player already has a seat in a game of the product that waits for players (checked as
/// [`waiting_seat`] does). Call it under the player's [`lock_quick_matcher`], in a statement of
/// its own after it. `false`: nothing reserved.
pub async fn reserve_handed_seat(
    conn: &mut PgConnection,
    game_id: Uuid,
    product_id: &str,
    player_id: &str,
    username: &str,
) -> sqlx::Result<bool> {
    let seat = sqlx::query_scalar!(
        r#"
        with mine as (
            select 1
            from (
                select (select g.state from games g
                        where g.game_id = p.game_id and g.product_id = $2) as state
                from game_players p
                where p.player_id = $3
            ) s
            where s.state in ('created', 'creator_joined')
        ), seat as (
            insert into game_players (game_id, num_players, player_id, username, seat, status,
                                      counted)
            select g.game_id, g.num_players, $3, $4, f.n, 'reserved', true
            from games g
            cross join lateral (
                select s.n from generate_series(0, g.num_players - 1) as s(n)
                where s.n <> all (array(select p.seat from game_players p
                                        where p.game_id = g.game_id))
                order by s.n
                limit 1
            ) f
            where g.game_id = $1 and g.product_id = $2 and not exists (select 1 from mine)
            on conflict do nothing
            returning game_id, seat
        ), counted as (
            update games set seats_taken = seats_taken + 1
            where game_id in (select game_id from seat)
        )
        select seat from seat
        "#,
        game_id,
        product_id,
        player_id,
        username
    )
    .fetch_optional(conn)
    .await?;
    Ok(seat.is_some())
}

/// The player's seat in a game of the product that is still waiting for players
/// (`created` or `creator_joined`), if any. Starts from the player's seats (a handful, by
/// `game_players_player_idx`) whatever the statistics say: on a freshly migrated database the
/// planner would otherwise loop over every waiting game.
pub async fn waiting_seat(
    conn: &mut PgConnection,
    product_id: &str,
    player_id: &str,
) -> sqlx::Result<Option<(Uuid, SeatStatus)>> {
    let row = sqlx::query!(
        r#"
        select s.game_id as "game_id!", s.status as "status!: SeatStatus"
        from (
            select p.game_id, p.status, p.joined_at,
                   -- a subplan per seat (by the primary key), never a join over the games
                   (select g.state from games g
                    where g.game_id = p.game_id and g.product_id = $1) as state
            from game_players p
            where p.player_id = $2
        ) s
        where s.state in ('created', 'creator_joined')
        order by s.joined_at desc
        limit 1
        "#,
        product_id,
        player_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.game_id, r.status)))
}

/// What one look of a quick match found, taken under [`lock_quick_matcher`] (see
/// [`pick_quick_match`]).
#[derive(Debug)]
pub struct QuickMatchPick {
    /// The player's own seat in a game of the product still waiting for players: nothing
    /// else was looked at.
    pub mine: Option<Uuid>,
    pub mine_status: Option<SeatStatus>,
    /// The game locked for the player, in this state.
    pub target: Option<Uuid>,
    pub state: Option<GameState>,
    /// Whether a seat was reserved in `target`. False when the seat it chose was taken by a
    /// commit between the statement's snapshot and its lock: look again.
    pub reserved: bool,
    /// With a seat reserved in a listed game: this transaction, whose lobby notification a
    /// commit fence waits for.
    pub lobby_tx: Option<i64>,
    /// No game could be locked, but this one, the oldest with a free seat, waits for players:
    /// another request holds it.
    pub busy: Option<Uuid>,
    /// `target`'s instance (all `None` for a game older than fleets).
    pub server_key: Option<Uuid>,
    pub instance_id: Option<String>,
    pub server_url: Option<String>,
    pub socket_url: Option<String>,
}

/// A quick match's look in one statement: the player's waiting seat (as [`waiting_seat`]),
/// else the oldest waiting game with a free seat nobody holds, locked without waiting, and
/// the lowest free seat there reserved (restarting the game's clock with `expiry_created` or
/// `expiry_joined`, by its state). Games in `except` are not tried. Call it under
/// [`lock_quick_matcher`], in a statement of its own after it, so that its snapshot sees the
/// player's earlier quick matches.
///
/// Every part is index-served whatever the statistics say: the player's seats by
/// `game_players_player_idx`, the game by `games_quick_match_idx` in its own order, the free
/// seat by the game's seats (a subplan per game, never an anti-join over all seats).
#[allow(clippy::too_many_arguments)]
pub async fn pick_quick_match(
    conn: &mut PgConnection,
    product_id: &str,
    player_id: &str,
    username: &str,
    except: &[Uuid],
    region: Option<&str>,
    expiry_created: f64,
    expiry_joined: f64,
) -> sqlx::Result<QuickMatchPick> {
    sqlx::query_as!(
        QuickMatchPick,
        r#"
        with mine as (
            select s.game_id, s.status
            from (
                select p.game_id, p.status, p.joined_at,
                       (select g.state from games g
                        where g.game_id = p.game_id and g.product_id = $1) as state
                from game_players p
                where p.player_id = $2
            ) s
            where s.state in ('created', 'creator_joined')
            order by s.joined_at desc
            limit 1
        ), target as (
            select g.game_id, g.state, g.num_players, g.server_key
            from games g
            where g.product_id = $1 and g.state in ('created', 'creator_joined')
              and g.seats_taken < g.num_players and g.join_code is null and g.game_id <> all($4)
              and not exists (select 1 from mine)
              and ($7::text is null
                   or g.server_key in (select server_key from game_server_instances
                                       where region = $7))
            order by g.created_at, g.game_id
            limit 1
            for update of g skip locked
        ), seat as (
            insert into game_players (game_id, num_players, player_id, username, seat, status,
                                      counted)
            select t.game_id, t.num_players, $2, $3, f.n, 'reserved', true
            from target t
            cross join lateral (
                select s.n from generate_series(0, t.num_players - 1) as s(n)
                where s.n <> all (array(select p.seat from game_players p
                                        where p.game_id = t.game_id))
                order by s.n
                limit 1
            ) f
            on conflict do nothing
            returning game_id
        ), touch as (
            update games g
            set seats_taken = g.seats_taken + 1, updated_at = now(),
                expires_at = now() + make_interval(
                    secs => case when t.state = 'created' then $5::float8 else $6::float8 end)
            from target t
            where g.game_id = t.game_id and exists (select 1 from seat)
        )
        select m.game_id as "mine?", m.status as "mine_status?: SeatStatus",
               t.game_id as "target?", t.state as "state?: GameState",
               exists (select 1 from seat) as "reserved!",
               (select pg_current_xact_id()::text::int8 from seat
                where t.state = 'creator_joined') as lobby_tx,
               case when m.game_id is null and t.game_id is null then (
                   select g.game_id from games g
                   where g.product_id = $1 and g.state in ('created', 'creator_joined')
                     and g.seats_taken < g.num_players and g.join_code is null
                     and g.game_id <> all($4)
                     and ($7::text is null
                          or g.server_key in (select server_key from game_server_instances
                                              where region = $7))
                   order by g.created_at, g.game_id
                   limit 1
               ) end as "busy?",
               t.server_key as "server_key?", i.instance_id as "instance_id?",
               i.url as "server_url?", i.socket_url as "socket_url?"
        from (select) one
        left join mine m on true
        left join target t on true
        left join game_server_instances i on i.server_key = t.server_key
        "#,
        product_id,
        player_id,
        username,
        except,
        expiry_created,
        expiry_joined,
        region
    )
    .fetch_one(conn)
    .await
}

/// Waits until no other transaction holds `game_id` for a seat (a [`pick_quick_match`] or a
/// join between its lock and its commit), in a transaction of its own that holds nothing else,
/// so it cannot be part of a deadlock. The key-share lock it takes conflicts only with
/// `for update` and key changes, and its commit need not reach the disk: nothing is written.
pub async fn wait_for_game(db: impl PgExecutor<'_>, game_id: Uuid) -> sqlx::Result<()> {
    sqlx::query_scalar!(
        r#"
        select set_config('synchronous_commit', 'off', true) as "off!"
        from games where game_id = $1
        for key share
        "#,
        game_id
    )
    .fetch_optional(db)
    .await?;
    Ok(())
}

/// The game of the product that holds a join code.
pub async fn by_join_code(
    db: impl PgExecutor<'_>,
    product_id: &str,
    code: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "select game_id from games where join_code = $1 and product_id = $2",
        code,
        product_id
    )
    .fetch_optional(db)
    .await
}

/// Sends a notification on the lobby channel after this connection's earlier commits (a read
/// model's fence, see `lobby::read_model`).
pub async fn notify_lobby(db: impl PgExecutor<'_>, payload: &str) -> sqlx::Result<()> {
    sqlx::query!("select pg_notify('matchmaker_lobby', $1)", payload)
        .execute(db)
        .await?;
    Ok(())
}
