-- Creates in flight, written down before the game server is asked, so that a process dying
-- mid-create leaves a trace the reaper can clean up (it owes the game server a remove_game).

create table create_intents (
    game_id    uuid        primary key,
    product_id text        not null,
    creator_id text        not null,
    created_at timestamptz not null default now()
);

comment on table create_intents is 'Creates in flight: the game server may hold the game, the matchmaker has not saved it yet. Deleted in the transaction that saves the game or gives up on it.';
comment on column create_intents.game_id is 'Id of the game being created (the id sent to the game server).';
comment on column create_intents.product_id is 'Product of the game being created.';
comment on column create_intents.creator_id is 'Creating player; counts toward their open-games limit while the create is in flight.';
comment on column create_intents.created_at is 'When the create started; an intent older than the reservation timeout was abandoned by a dead process.';

create index create_intents_creator_idx on create_intents (creator_id);
create index create_intents_created_at_idx on create_intents (created_at);

-- The open-games-per-player limit counts a creator's games still waiting for players.
create index games_creator_waiting_idx on games (creator_id)
    where state in ('created', 'creator_joined');
