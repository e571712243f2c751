-- The database's work of one join (src/lobby.rs join_game), statement for statement as in
-- src/store/games.rs: the reservation transaction (lock_for_join, reserve_seat), then hold_seat
-- and fetch. The game-server call between reserving and holding is not the database's work.
-- Each transaction joins a game of its own (setup.sql: product pgbench, one free seat each).
-- Variables: -D nclients=<clients> -D k=0 -D product=pgbench -D expiry=60
\set k :k + 1
\set g :client_id + 1 + (:k - 1) * :nclients
begin;
select g.state, g.num_players, g.seats_taken,
       (select p.status from game_players p
        where p.game_id = g.game_id and p.player_id = 'pgb-joiner-' || :g) as my_seat
from games g
where g.game_id = md5('pgb-' || :g)::uuid and g.product_id = :product
for update of g skip locked;
with seat as (
    insert into game_players (game_id, num_players, player_id, username, seat, status)
    select g.game_id, g.num_players, 'pgb-joiner-' || :g, 'pgb-joiner-' || :g, s.n, 'reserved'
    from games g, generate_series(0, g.num_players - 1) as s(n)
    where g.game_id = md5('pgb-' || :g)::uuid
      and not exists (select 1 from game_players p where p.game_id = g.game_id and p.seat = s.n)
    order by s.n
    limit 1
    returning seat
), touch as (
    update games set updated_at = now(), expires_at = now() + make_interval(secs => :expiry)
    where game_id = md5('pgb-' || :g)::uuid and exists (select 1 from seat)
)
select seat from seat;
commit;
with held as (
    update game_players set status = 'held'
    where game_id = md5('pgb-' || :g)::uuid and player_id = 'pgb-joiner-' || :g and status = 'reserved'
    returning game_id
)
update games set updated_at = now()
where game_id in (select game_id from held)
returning game_id;
select g.game_id, g.product_id, g.creator_id, g.creator_name, g.num_players,
       g.seats_taken, g.settings, g.token, g.state,
       g.updated_at, g.lobby_at,
       array(select p.player_id from game_players p
             where p.game_id = g.game_id and p.status = 'held'
             order by p.joined_at, p.seat) as players
from games g
where g.game_id = md5('pgb-' || :g)::uuid and g.product_id = :product;
