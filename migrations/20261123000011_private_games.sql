-- Private games: not listed, not quick-matched, joined with a short code.

alter table games add column join_code text;
comment on column games.join_code is 'Set for a private game: its join code (6 characters without look-alikes), unique among live games; null for a public game.';
alter table games add constraint games_join_code_format
    check (join_code ~ '^[2-9A-HJKMNP-Z]{6}$');
-- Rows are deleted when a game expires or is removed, so every row is a live game: a code is
-- free again as soon as its game is gone.
create unique index games_join_code_idx on games (join_code) where join_code is not null;

-- Private games are neither listed nor quick-matched.
drop index games_open_idx;
create index games_open_idx on games (product_id, lobby_at, game_id)
    where state = 'creator_joined' and seats_taken < num_players and join_code is null;
drop index games_quick_match_idx;
create index games_quick_match_idx on games (product_id, created_at, game_id)
    where state in ('created', 'creator_joined') and seats_taken < num_players and join_code is null;
