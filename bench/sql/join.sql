-- The database's work of one join (src/lobby.rs join_game), statement for statement as in
-- src/store/games.rs: lock_and_reserve (lock the game, reserve the lowest free seat), then
-- hold_seat (the seat becomes held; the game as it is then). The game-server call between them
-- is not the database's work. Each transaction joins a game of its own (setup.sql: product
-- pgbench, one free seat each).
-- Variables: -D nclients=<clients> -D k=0 -D product=pgbench -D expiry=<seconds>
\set k :k + 1
\set g :client_id + 1 + (:k - 1) * :nclients
with found as (
    select g.state, g.num_players, g.seats_taken,
           (select p.status from game_players p
            where p.game_id = md5('pgb-' || :g)::uuid and p.player_id = 'pgb-joiner-' || :g) as my_seat
    from games g
    where g.game_id = md5('pgb-' || :g)::uuid and g.product_id = :product
), target as (
    select g.state, g.num_players, g.seats_taken
    from games g
    where g.game_id = md5('pgb-' || :g)::uuid
      and exists (select 1 from found f
                  where f.my_seat is null and f.state = 'creator_joined'
                    and f.seats_taken < f.num_players)
    for update of g skip locked
), seat as (
    insert into game_players (game_id, num_players, player_id, username, seat, status, counted)
    select md5('pgb-' || :g)::uuid, t.num_players, 'pgb-joiner-' || :g, 'pgb-joiner-' || :g, s.n, 'reserved', true
    from target t, generate_series(0, t.num_players - 1) as s(n)
    where t.state = 'creator_joined' and t.seats_taken < t.num_players
      and not exists (select 1 from game_players p where p.game_id = md5('pgb-' || :g)::uuid and p.seat = s.n)
    order by s.n
    limit 1
    returning seat
), touch as (
    update games set seats_taken = seats_taken + 1, updated_at = now(),
                     expires_at = now() + make_interval(secs => :expiry)
    where game_id = md5('pgb-' || :g)::uuid and exists (select 1 from seat)
)
select coalesce(t.state, f.state), coalesce(t.num_players, f.num_players),
       coalesce(t.seats_taken, f.seats_taken), f.my_seat, t.state is not null as locked,
       (select seat from seat) as reserved
from found f left join target t on true;
with held as (
    update game_players set status = 'held'
    where game_id = md5('pgb-' || :g)::uuid and player_id = 'pgb-joiner-' || :g and status = 'reserved'
    returning game_id
), touched as (
    update games set updated_at = now()
    where game_id in (select game_id from held)
    returning game_id, updated_at
)
select g.game_id, g.product_id, g.creator_id, g.creator_name, g.num_players,
       g.seats_taken, g.settings, g.token, g.state,
       t.updated_at, g.lobby_at,
       array(select p.player_id from game_players p
             where p.game_id = g.game_id and (p.status = 'held' or p.player_id = 'pgb-joiner-' || :g)
             order by p.joined_at, p.seat) as players
from games g join touched t on t.game_id = g.game_id
where g.game_id = md5('pgb-' || :g)::uuid and g.product_id = :product;
