-- Game-server calls the matchmaker still owes, written in the same transaction as the change
-- that owes them and sent after the commit by the dispatcher.

create type outbox_call as enum ('remove_game', 'remove_player');
comment on type outbox_call is 'The game-server calls that can be owed (SPEC section 4).';

create table game_server_outbox (
    id              bigserial   primary key,
    product_id      text        not null,
    call            outbox_call not null,
    game_id         uuid        not null,
    player_id       text,
    attempts        integer     not null default 0,
    next_attempt_at timestamptz not null default now(),
    last_error      text,
    gave_up_at      timestamptz,
    created_at      timestamptz not null default now(),
    constraint outbox_player_only_for_remove_player check ((call = 'remove_player') = (player_id is not null))
);

comment on table game_server_outbox is 'Game-server calls owed (remove_game, remove_player), retried until done or given up.';
comment on column game_server_outbox.id is 'Order of creation.';
comment on column game_server_outbox.product_id is 'Product whose game server is called (its URL is read from configuration at send time).';
comment on column game_server_outbox.call is 'Which call.';
comment on column game_server_outbox.game_id is 'The game concerned.';
comment on column game_server_outbox.player_id is 'For remove_player: the player to remove.';
comment on column game_server_outbox.attempts is 'Attempts made so far (a claim counts as one).';
comment on column game_server_outbox.next_attempt_at is 'Not sent before this time; a claim pushes it past the call''s time limit, so a dispatcher that dies mid-call is replaced.';
comment on column game_server_outbox.last_error is 'What went wrong on the last attempt.';
comment on column game_server_outbox.gave_up_at is 'Set when the call was abandoned (too many attempts or a permanent refusal); kept for operators.';
comment on column game_server_outbox.created_at is 'When the call was first owed.';

create index game_server_outbox_due_idx on game_server_outbox (next_attempt_at) where gave_up_at is null;

create function game_server_outbox_notify() returns trigger language plpgsql as $$
begin
    perform pg_notify('matchmaker_outbox', '');
    return null;
end;
$$;
comment on function game_server_outbox_notify() is 'Wakes the dispatchers (LISTEN matchmaker_outbox) when the owing transaction commits.';

create trigger game_server_outbox_notify
    after insert on game_server_outbox
    for each statement execute function game_server_outbox_notify();

create index game_players_reserved_idx on game_players (joined_at) where status = 'reserved';
