-- The database's work of one create (src/lobby.rs create_game): the one statement of
-- src/store/games.rs insert (the game and its creator's seat). New games go to product
-- pgbench_new, which nothing lists.
-- Variables: -D k=0 -D product=pgbench_new -D expiry=<seconds>
\set k :k + 1
with g as (
    insert into games (game_id, product_id, creator_id, creator_name, num_players,
                       settings, token, expires_at)
    values (md5('pgb-new-' || :client_id || '-' || :k || '-' || random())::uuid, :product,
            'pgb-c-' || :client_id || '-' || :k, 'pgb-c-' || :client_id || '-' || :k, 2,
            '{"num_players": 2}', 'feedc0ffeefeedc0ffeefeedc0ffee00',
            now() + make_interval(secs => :expiry))
    returning game_id, num_players, creator_id, creator_name, updated_at
), creator as (
    insert into game_players (game_id, num_players, player_id, username, seat, status)
    select game_id, num_players, creator_id, creator_name, 0, 'held' from g
)
select updated_at from g;
