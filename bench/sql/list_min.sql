-- The minimal-job ceiling of an open-games page: the cheapest read of 25 listed games of a
-- product, an index range scan on the lobby's partial index (games_open_idx: its predicate is
-- repeated so the planner can use it) returning only what a page shows: id, creator, players,
-- settings, free seats, listed_at (product_id and game_server_url are the request's and the
-- configuration's). Compare list.sql, which mirrors the service's statement (every column of a
-- game, the settings filter, an offset).
-- Variables: -D product=<product> -D count=25
select g.game_id, g.creator_id, g.creator_name, g.settings,
       g.num_players - g.seats_taken as free_seats, g.lobby_at,
       array(select p.player_id from game_players p
             where p.game_id = g.game_id and p.status = 'held'
             order by p.joined_at, p.seat) as players
from games g
where g.product_id = :product and g.state = 'creator_joined' and g.seats_taken < g.num_players
  and g.join_code is null
order by g.lobby_at, g.game_id
limit :count;
