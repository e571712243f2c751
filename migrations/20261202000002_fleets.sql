-- Fleets: a product's game servers are instances; every game is placed on one and every later
-- call for it goes there (docs/fleets.md).

create type instance_state as enum ('active', 'draining', 'lost');
comment on type instance_state is 'active: takes new games; draining: keeps its games, takes no new ones; lost: missed its heartbeats or was removed, its games ended.';

create table game_server_instances (
    server_key    uuid           primary key default gen_random_uuid(),
    product_id    text           not null,
    instance_id   text           not null,
    url           text           not null,
    socket_url    text           not null,
    capacity      integer        check (capacity is null or capacity >= 1),
    region        text,
    configured    boolean        not null,
    state         instance_state not null default 'active',
    games         integer        not null default 0,
    heartbeat_at  timestamptz    not null default now(),
    registered_at timestamptz    not null default now(),
    lost_at       timestamptz
);

comment on table game_server_instances is 'One row per incarnation of a game-server instance: an instance that registers again after it was lost gets a new row, so nothing meant for its old games reaches it.';
comment on column game_server_instances.server_key is 'This incarnation; games, create intents and owed calls point at it.';
comment on column game_server_instances.product_id is 'Product the instance runs games for.';
comment on column game_server_instances.instance_id is 'The instance''s id, as configured or registered; unique per product among incarnations not lost.';
comment on column game_server_instances.url is 'Base URL of its four calls (create_game, join_game, remove_game, remove_player); answers show it as game_server_url.';
comment on column game_server_instances.socket_url is 'Where players connect; answers show it as target_game_server.';
comment on column game_server_instances.capacity is 'Games it takes at once; null = no limit (a product''s single game_server_url).';
comment on column game_server_instances.region is 'Optional region label a create may ask for.';
comment on column game_server_instances.configured is 'true: from the configuration ([[games.servers]] or game_server_url), needs no heartbeat; false: registered over HTTP.';
comment on column game_server_instances.state is 'See the type.';
comment on column game_server_instances.games is 'Games it holds (not ended) plus creates in flight on it; kept by triggers, and only where capacity is not null.';
comment on column game_server_instances.heartbeat_at is 'Last registration or heartbeat.';
comment on column game_server_instances.registered_at is 'When this incarnation was registered or configured.';
comment on column game_server_instances.lost_at is 'When it was declared lost.';

create unique index game_server_instances_id_idx on game_server_instances (product_id, instance_id)
    where state <> 'lost';
create index game_server_instances_heartbeat_idx on game_server_instances (heartbeat_at)
    where state <> 'lost' and not configured;

alter table games add column server_key uuid;
comment on column games.server_key is 'The instance incarnation the game is placed on; null for games older than fleets (they use the product''s game_server_url).';
create index games_server_idx on games (server_key);

alter table create_intents add column server_key uuid;
comment on column create_intents.server_key is 'The instance the create was placed on.';
create index create_intents_server_idx on create_intents (server_key);

alter table game_server_outbox add column server_key uuid;
comment on column game_server_outbox.server_key is 'The instance the call goes to; null: the product''s game_server_url. Calls to a lost instance are dropped.';

-- game_server_instances.games: a create in flight counts from its placement (the placing statement adds
-- it) until its intent is dropped; its game counts from its insert until it ends or goes.
create function instance_games_intent_done() returns trigger language plpgsql as $$
begin
    update game_server_instances set games = games - 1
    where server_key = old.server_key and capacity is not null;
    return null;
end;
$$;
comment on function instance_games_intent_done() is 'A create in flight no longer counts against its instance''s capacity.';

create trigger instance_games_intent_done
    after delete on create_intents
    for each row when (old.server_key is not null)
    execute function instance_games_intent_done();

create function instance_games_count() returns trigger language plpgsql as $$
declare
    was integer := 0;
    now_ integer := 0;
    key uuid;
begin
    if tg_op in ('UPDATE', 'DELETE') and old.state <> 'ended' then
        was := 1;
    end if;
    if tg_op in ('INSERT', 'UPDATE') and new.state <> 'ended' then
        now_ := 1;
    end if;
    if tg_op = 'DELETE' then key := old.server_key; else key := new.server_key; end if;
    if now_ <> was then
        update game_server_instances set games = games + now_ - was
        where server_key = key and capacity is not null;
    end if;
    return null;
end;
$$;
comment on function instance_games_count() is 'Keeps game_server_instances.games equal to its live games (plus creates in flight).';

create trigger instance_games_insert
    after insert on games
    for each row when (new.server_key is not null and new.state <> 'ended')
    execute function instance_games_count();
create trigger instance_games_delete
    after delete on games
    for each row when (old.server_key is not null and old.state <> 'ended')
    execute function instance_games_count();
create trigger instance_games_state
    after update of state on games
    for each row when (old.server_key is not null and (old.state = 'ended') <> (new.state = 'ended'))
    execute function instance_games_count();
