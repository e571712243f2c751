-- The database's work of one open-games page (src/lobby.rs open_games): the one statement of
-- src/store/games.rs open_page, a full page of 25 without filters (setup.sql: product
-- pgbench_list).
-- Variables: -D product=pgbench_list -D count=25
select g.game_id, g.product_id, g.creator_id, g.creator_name, g.num_players,
       g.seats_taken, g.settings, g.token, g.state,
       g.updated_at, g.lobby_at, g.join_code,
       array(select p.player_id from game_players p
             where p.game_id = g.game_id and p.status = 'held'
             order by p.joined_at, p.seat) as players
from games g
where g.product_id = :product and g.state = 'creator_joined' and g.seats_taken < g.num_players
  and g.join_code is null and g.settings @> '{}'
order by g.lobby_at, g.game_id
limit :count offset 0;
