-- The minimal-job ceiling of a join: lock the game row without waiting (FOR UPDATE SKIP LOCKED,
-- only if it can still take a player), insert the seat, commit: one statement, one round trip,
-- one commit. The same statement bumps the seat count (the seat is `counted`, so the schema's
-- trigger leaves it alone): that update of the games row is part of the job. No reservation then hold, no read-back: compare join.sql, which mirrors the service.
-- Each transaction joins a fresh game of its own (setup.sql: product pgbench_jmin, N games with
-- one free seat each), so no join finds a full game; bench/run.sh checks afterwards that the
-- games did not run out.
-- Variables: -D nclients=<clients> -D k=0
\set k :k + 1
\set g :client_id + 1 + (:k - 1) * :nclients
with target as (
    select game_id, num_players, seats_taken
    from games
    where game_id = md5('pgbj-' || :g)::uuid
      and state = 'creator_joined' and seats_taken < num_players
    for update skip locked
), seat as (
    insert into game_players (game_id, num_players, player_id, username, seat, status, counted)
    select game_id, num_players, 'pgbj-joiner-' || :g, 'pgbj-joiner-' || :g, seats_taken, 'held', true
    from target
    returning game_id
)
update games set seats_taken = seats_taken + 1 where game_id in (select game_id from seat);
