-- The database's work of one create (src/lobby/create.rs): the placement of
-- src/store/instances.rs place (place_create: the creator's advisory lock, the open-games limit
-- of 3, the intent on the product's instance, in one call), then the one statement of
-- src/store/games.rs insert (consume the intent; the game, its seat count already 1, and its
-- creator's seat). New games go to product pgbench_new (setup.sql gives it its instance),
-- which nothing lists.
-- Variables: -D k=0 -D product=pgbench_new -D expiry=<seconds>
\set k :k + 1
\set r random(1, 9000000000000000000)
select o_server_key from place_create(md5('pgb-new-' || :r)::uuid, :product,
                                      'pgb-c-' || :client_id || '-' || :k, null, 30, '{}', 3);
with intent as (
    delete from create_intents where game_id = md5('pgb-new-' || :r)::uuid
    returning game_id, server_key
), g as (
    insert into games (game_id, product_id, creator_id, creator_name, num_players,
                       settings, token, expires_at, server_key, seats_taken)
    select game_id, :product, 'pgb-c-' || :client_id || '-' || :k, 'pgb-c-' || :client_id || '-' || :k,
           2, '{"num_players": 2}', 'feedc0ffeefeedc0ffeefeedc0ffee00',
           now() + make_interval(secs => :expiry), server_key, 1
    from intent
    returning game_id, num_players, creator_id, creator_name, updated_at
), creator as (
    insert into game_players (game_id, num_players, player_id, username, seat, status, counted)
    select game_id, num_players, creator_id, creator_name, 0, 'held', true from g
)
select updated_at from g;
