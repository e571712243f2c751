-- The database's work of one create (src/lobby.rs create_game): the intent transaction of
-- src/store/intents.rs begin (the creator's advisory lock, then the intent within the
-- open-games limit of 3), then the one statement of src/store/games.rs insert (consume the
-- intent; the game and its creator's seat). New games go to product pgbench_new, which
-- nothing lists.
-- Variables: -D k=0 -D product=pgbench_new -D expiry=<seconds>
\set k :k + 1
\set r random(1, 9000000000000000000)
begin;
select pg_advisory_xact_lock(hashtext('matchmaker creator ' || ('pgb-c-' || :client_id || '-' || :k)));
insert into create_intents (game_id, product_id, creator_id)
select md5('pgb-new-' || :r)::uuid, :product, 'pgb-c-' || :client_id || '-' || :k
where (select count(*) from games
       where creator_id = 'pgb-c-' || :client_id || '-' || :k and state in ('created', 'creator_joined'))
    + (select count(*) from create_intents where creator_id = 'pgb-c-' || :client_id || '-' || :k) < 3;
commit;
with intent as (
    delete from create_intents where game_id = md5('pgb-new-' || :r)::uuid returning game_id
), g as (
    insert into games (game_id, product_id, creator_id, creator_name, num_players,
                       settings, token, expires_at, seats_taken)
    select game_id, :product, 'pgb-c-' || :client_id || '-' || :k, 'pgb-c-' || :client_id || '-' || :k,
           2, '{"num_players": 2}', 'feedc0ffeefeedc0ffeefeedc0ffee00',
           now() + make_interval(secs => :expiry), 1
    from intent
    returning game_id, num_players, creator_id, creator_name, updated_at
), creator as (
    insert into game_players (game_id, num_players, player_id, username, seat, status, counted)
    select game_id, num_players, creator_id, creator_name, 0, 'held', true from g
)
select updated_at from g;
