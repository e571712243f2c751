-- Removes what the pgbench ceilings left (bench/run.sh runs it after them, before the service's
-- scenarios): their products are none the service knows, but their rows would sit in the same
-- tables and indexes as the service's. setup.sql also deletes them at the start of a run, so
-- a run that stopped half way leaves at most one run's worth behind.
\set ON_ERROR_STOP on
delete from games where product_id in
    ('pgbench', 'pgbench_jmin', 'pgbench_list', 'pgbench_new', 'pgbench_new_min');
delete from create_intents where product_id in ('pgbench_new', 'pgbench_new_min');
delete from game_server_instances where product_id = 'pgbench_new';
vacuum analyze games;
vacuum analyze game_players;
vacuum analyze create_intents;
