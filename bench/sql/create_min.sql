-- The minimal-job ceiling of a create: the least the database must do for one game on this
-- schema, namely the game row (its seat count already 1) and its creator's seat (`counted`, so
-- the schema's trigger leaves the count alone), in one statement, hence one round trip and one
-- commit. No create intent, no
-- advisory lock, no open-games limit: compare create.sql, which mirrors what the service asks.
-- The schema's triggers (seat count, lobby NOTIFY) fire as they would for any implementation.
-- Variables: -D k=0 -D product=pgbench_new_min -D expiry=<seconds>
\set k :k + 1
with g as (
    insert into games (game_id, product_id, creator_id, creator_name, num_players,
                       settings, token, expires_at, seats_taken)
    values (gen_random_uuid(), :product, 'pgb-m-' || :client_id || '-' || :k,
            'pgb-m-' || :client_id || '-' || :k, 2, '{"num_players": 2}',
            'feedc0ffeefeedc0ffeefeedc0ffee00', now() + make_interval(secs => :expiry), 1)
    returning game_id, num_players, creator_id, creator_name
)
insert into game_players (game_id, num_players, player_id, username, seat, status, counted)
select game_id, num_players, creator_id, creator_name, 0, 'held', true from g;
