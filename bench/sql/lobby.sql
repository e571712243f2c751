-- A big lobby for the list_big scenario and its ceilings (bench/run.sh runs it with psql
-- -v product=P -v listed=N before the service starts): N games of product P in the lobby
-- (creator_joined, creator in seat 0, one free seat of two), seeded directly in SQL. The
-- product is in the service's configuration, so its open_games serves them. Expiry a day away,
-- so the reaper leaves them alone. Ids are md5('<product>-<n>')::uuid.
\set ON_ERROR_STOP on
delete from games where product_id = :'product';

insert into games (game_id, product_id, creator_id, creator_name, num_players, settings, token,
                   state, lobby_at, expires_at)
select md5(:'product' || '-' || n)::uuid, :'product', 'lobby-creator-' || n, 'Lobby Creator ' || n,
       2, '{"num_players": 2}', md5('lobby-token-' || n), 'creator_joined',
       now() - interval '1 hour' + n * interval '1 millisecond', now() + interval '1 day'
from generate_series(1, :listed) as n;

insert into game_players (game_id, num_players, player_id, username, seat, status)
select game_id, num_players, creator_id, creator_name, 0, 'held'
from games where product_id = :'product';

vacuum analyze games;
vacuum analyze game_players;
