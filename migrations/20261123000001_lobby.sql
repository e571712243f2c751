-- The lobby: games, their seats, and the position in the game-event stream.

create type game_state as enum ('created', 'creator_joined', 'all_players_joined', 'in_progress', 'ended');
comment on type game_state is 'Lifecycle of a game; a game only moves forward, except a reset back to creator_joined.';

create table games (
    game_id          uuid        primary key,
    product_id       text        not null,
    creator_id       text        not null,
    creator_name     text        not null,
    num_players      integer     not null check (num_players >= 2),
    seats_taken      integer     not null default 0,
    settings         jsonb       not null default '{}',
    token            text        not null,
    state            game_state  not null default 'created',
    state_changed_at timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    lobby_at         timestamptz,
    expires_at       timestamptz not null,
    created_at       timestamptz not null default now(),
    constraint games_seats_within_capacity check (seats_taken between 0 and num_players),
    -- target of game_players' composite key, so a seat can be checked against the capacity
    constraint games_id_capacity unique (game_id, num_players)
);

comment on table games is 'One row per game (multiplayer session) known to the matchmaker.';
comment on column games.game_id is 'Game id; shown to clients as 32 lowercase hex digits (a v4 UUID without dashes).';
comment on column games.product_id is 'Product (game title) the game belongs to, e.g. exrps.';
comment on column games.creator_id is 'User id of the creator, from their token.';
comment on column games.creator_name is 'Username of the creator, from their token.';
comment on column games.num_players is 'Number of seats, from the product''s settings.num_players at creation.';
comment on column games.seats_taken is 'Seats reserved or held; kept by a trigger on game_players, never written by the application.';
comment on column games.settings is 'The product''s settings, copied at creation.';
comment on column games.token is 'Game token issued by the game server on create_game.';
comment on column games.state is 'Current lifecycle state.';
comment on column games.state_changed_at is 'When the game entered its current state.';
comment on column games.updated_at is 'Last change of any kind (state or seats); shown as _last_updated.';
comment on column games.lobby_at is 'When the game first entered the lobby (state creator_joined); orders the open-games list.';
comment on column games.expires_at is 'When the game expires unless something changes first; restarted on every change.';
comment on column games.created_at is 'When the game was created.';

-- The open-games list: only joinable games are in this index, oldest first.
create index games_open_idx on games (product_id, lobby_at, game_id)
    where state = 'creator_joined' and seats_taken < num_players;
-- The reaper's queue: one index range scan, oldest deadline first.
create index games_expires_at_idx on games (expires_at);

create type seat_status as enum ('reserved', 'held');
comment on type seat_status is 'reserved: the game server has not confirmed the join yet; held: confirmed.';

create table game_players (
    game_id     uuid        not null,
    num_players integer     not null,
    player_id   text        not null,
    username    text        not null,
    seat        integer     not null,
    status      seat_status not null,
    joined_at   timestamptz not null default clock_timestamp(),
    primary key (game_id, player_id),
    constraint game_players_seat_unique unique (game_id, seat),
    constraint game_players_seat_within_capacity check (seat >= 0 and seat < num_players),
    foreign key (game_id, num_players) references games (game_id, num_players) on delete cascade
);

comment on table game_players is 'One row per seat taken in a game; the creator holds seat 0.';
comment on column game_players.game_id is 'The game.';
comment on column game_players.num_players is 'Copy of games.num_players (enforced by the foreign key) so the seat number can be checked against it.';
comment on column game_players.player_id is 'User id of the player, from their token.';
comment on column game_players.username is 'Username of the player, from their token.';
comment on column game_players.seat is 'Seat number, 0 to num_players - 1; unique within a game, so a game can never hold more players than seats.';
comment on column game_players.status is 'reserved while the game server is being asked, held once it accepted.';
comment on column game_players.joined_at is 'When the seat was taken; orders the players list.';

create function game_players_count_seats() returns trigger language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        update games set seats_taken = seats_taken + 1 where game_id = new.game_id;
        return new;
    else
        update games set seats_taken = seats_taken - 1 where game_id = old.game_id;
        return old;
    end if;
end;
$$;
comment on function game_players_count_seats() is 'Keeps games.seats_taken equal to the number of game_players rows.';

create trigger game_players_count_seats
    after insert or delete on game_players
    for each row execute function game_players_count_seats();

create table event_stream_cursor (
    stream_key text        primary key,
    last_id    text        not null,
    updated_at timestamptz not null default now()
);
comment on table event_stream_cursor is 'Position of the game-event stream consumer, advanced in the same transaction as the effects of the entries it covers.';
comment on column event_stream_cursor.stream_key is 'Redis stream key, e.g. game_event_stream.';
comment on column event_stream_cursor.last_id is 'Id of the last stream entry applied (or skipped).';
comment on column event_stream_cursor.updated_at is 'When the cursor last moved.';
