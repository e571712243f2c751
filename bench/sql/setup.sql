-- Data for the pgbench ceilings (bench/run.sh runs it with psql -v games=N -v listed=M).
-- Products no configuration names, so the service never sees these games:
--   pgbench          N games opened for joining (join.sql): creator_joined, creator in seat 0,
--                    one free seat;
--   pgbench_jmin     the same again for the minimal join (join_min.sql), so that each join
--                    ceiling finds fresh games;
--   pgbench_list     M open games for the open-games page (list.sql, list_min.sql);
--   pgbench_new      where create.sql inserts, on one configured game-server instance without
--                    a capacity (as a product with a game_server_url has);
--   pgbench_new_min  where create_min.sql inserts.
-- Game ids are md5('pgb-<n>')::uuid (pgbench_jmin: md5('pgbj-<n>')::uuid) so that the scripts
-- can name them without a lookup. What an earlier run left is deleted first, and cleanup.sql
-- deletes it all again after the ceilings: the tables hold at most one run's worth.
\set ON_ERROR_STOP on
delete from games where product_id in
    ('pgbench', 'pgbench_jmin', 'pgbench_list', 'pgbench_new', 'pgbench_new_min');
delete from create_intents where product_id in ('pgbench_new', 'pgbench_new_min');
delete from game_server_instances where product_id = 'pgbench_new';

insert into game_server_instances (product_id, instance_id, url, socket_url, configured)
values ('pgbench_new', 'pgbench', 'http://pgbench.invalid', 'pgbench.invalid:1', true);

insert into games (game_id, product_id, creator_id, creator_name, num_players, settings, token,
                   state, lobby_at, expires_at)
select md5('pgb-' || n)::uuid, 'pgbench', 'pgb-creator-' || n, 'pgb-creator-' || n, 2,
       '{"num_players": 2}', md5('token-' || n), 'creator_joined',
       now() + n * interval '1 microsecond', now() + interval '1 day'
from generate_series(1, :games) as n;

insert into games (game_id, product_id, creator_id, creator_name, num_players, settings, token,
                   state, lobby_at, expires_at)
select md5('pgbj-' || n)::uuid, 'pgbench_jmin', 'pgbj-creator-' || n, 'pgbj-creator-' || n, 2,
       '{"num_players": 2}', md5('token-j-' || n), 'creator_joined',
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
from games where product_id in ('pgbench', 'pgbench_jmin', 'pgbench_list');

vacuum analyze games;
vacuum analyze game_players;
