-- A seat is checked against its game's capacity without the unique index on
-- games (game_id, num_players). That index was there only as the target of game_players'
-- composite foreign key, and it took an entry and a uniqueness check for every new version of a
-- games row: about a fifth of the database's work for an event's state change
-- (docs/performance.md, "The capacity check without a second unique index").
--
-- Instead, game_players.num_players is copied from the game by a trigger, whatever the inserting
-- statement says, and a game's num_players cannot change: `check (seat < num_players)` and the
-- unique (game_id, seat) still make more players than seats impossible.

create function game_players_capacity() returns trigger language plpgsql as $$
declare
    capacity integer;
begin
    select g.num_players into capacity from games g where g.game_id = new.game_id;
    -- no such game: the foreign key refuses the row
    if found then
        new.num_players := capacity;
    end if;
    return new;
end;
$$;
comment on function game_players_capacity() is 'Sets a seat''s num_players to its game''s, so the seat check uses the real capacity.';

create trigger game_players_capacity
    before insert or update of game_id, num_players on game_players
    for each row execute function game_players_capacity();

create function games_capacity_fixed() returns trigger language plpgsql as $$
begin
    raise exception 'the number of players of game % cannot change', old.game_id
        using errcode = 'check_violation';
end;
$$;
comment on function games_capacity_fixed() is 'Refuses a change of num_players: the seats were checked against it.';

create trigger games_capacity_fixed
    before update of num_players on games
    for each row when (old.num_players is distinct from new.num_players)
    execute function games_capacity_fixed();

alter table game_players drop constraint game_players_game_id_num_players_fkey;
alter table game_players add constraint game_players_game_id_fkey
    foreign key (game_id) references games (game_id) on delete cascade;
alter table games drop constraint games_id_capacity;

comment on column game_players.num_players is 'Copy of games.num_players (set by a trigger on insert) so the seat number can be checked against it.';
