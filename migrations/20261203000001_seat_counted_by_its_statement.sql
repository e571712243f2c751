-- A seat is counted by the statement that takes it: each of this release's inserts into
-- game_players bumps games.seats_taken in the same statement (store/games.rs), so a create
-- writes its game row once, and a join's reservation writes it once together with its clock,
-- instead of the trigger writing a second version of the row (docs/performance.md, "Seats
-- counted by the statement that takes them"). The trigger still counts a seat inserted
-- without `counted` (an older release serving beside this one, plain SQL) and every seat that
-- goes, from wherever it is deleted.

alter table game_players add column counted boolean not null default false;
comment on column game_players.counted is 'true: the inserting statement added this seat to games.seats_taken itself; false: the insert trigger did.';

drop trigger game_players_count_seats on game_players;
create trigger game_players_count_seats
    after insert on game_players
    for each row when (not new.counted)
    execute function game_players_count_seats();
create trigger game_players_uncount_seats
    after delete on game_players
    for each row execute function game_players_count_seats();

comment on column games.seats_taken is 'Seats reserved or held: added by the statement that inserts a seat (or by a trigger when it does not), taken off by a trigger when a seat is deleted.';
comment on function game_players_count_seats() is 'Keeps games.seats_taken equal to the number of game_players rows, for the seats no statement counted itself.';
