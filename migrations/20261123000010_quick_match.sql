-- Quick match: the oldest waiting game of a product with a free seat, and a player's seats.

-- Quick match seats players in games still waiting for players: `created` (the creator has not
-- connected yet) as well as `creator_joined`; a burst of players would otherwise create a game
-- each before any creator could connect.
create index games_quick_match_idx on games (product_id, created_at, game_id)
    where state in ('created', 'creator_joined') and seats_taken < num_players;

-- "Is this player already waiting in a game of this product?" without scanning every seat.
create index game_players_player_idx on game_players (player_id);
