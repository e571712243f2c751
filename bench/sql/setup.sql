-- Data for the pgbench ceilings (bench/run.sh runs it with psql -v games=N -v listed=M).
-- Products no configuration names, so the running service never sees these games:
--   pgbench       N games opened for joining: creator_joined, creator in seat 0, one free seat;
--   pgbench_list  M open games for the open-games page;
--   pgbench_new   where create.sql inserts.
-- Game ids are md5('pgb-<n>')::uuid so that the scripts can name them without a lookup.
\set ON_ERROR_STOP on
delete from games where product_id in ('pgbench', 'pgbench_list', 'pgbench_new');

insert into games (game_id, product_id, creator_id, creator_name, num_players, settings, token,
                   state, lobby_at, expires_at)
select md5('pgb-' || n)::uuid, 'pgbench', 'pgb-creator-' || n, 'pgb-creator-' || n, 2,
       '{"num_players": 2}', md5('token-' || n), 'creator_joined',
       now() + n * interval '1 microsecond', now() + interval '1 day'
from generate_series(1, :games) as n;

insert into games (game_id, product_id, creator_id, creator_name, num_players, settings, token,
                   state, lobby_at, expires_at)
select md5('pgb-list-' || n)::uuid, 'pgbench_list', 'pgb-lister-' || n, 'pgb-lister-' || n, 2,
       '{"num_players": 2}', md5('token-list-' || n), 'creator_joined',
       now() + n * interval '1 microsecond', now() + interval '1 day'
from generate_series(1, :listed) as n;

insert into game_players (game_id, num_players, player_id, username, seat, status)
select game_id, num_players, creator_id, creator_name, 0, 'held'
from games where product_id in ('pgbench', 'pgbench_list');

vacuum analyze games;
vacuum analyze game_players;
