-- A create's placement in one statement (docs/performance.md, "A create's placement in one
-- round trip"): under the creator's lock (when there is an open-games limit), the create's
-- intent on an instance without a capacity, else on the counted instance with the most room
-- that no other create holds. In a VOLATILE function each statement takes a fresh snapshot,
-- so the count below sees every create of this creator that committed before the lock was
-- granted, as it did when the lock and the placement were statements of one transaction.
-- Returns no row when nothing could be placed; the caller then looks at why (lobby/fleet.rs).
-- Also: instance_live_games, the count the triggers keep for an instance with a capacity, for
-- the statements that start counting one (store/instances.rs).

create function place_create(p_game_id uuid, p_product_id text, p_creator_id text,
                             p_region text, p_timeout_secs float8, p_exclude uuid[],
                             p_limit int8)
returns table (o_server_key uuid, o_instance_id text, o_url text, o_socket_url text)
language plpgsql volatile as $$
begin
    if p_limit > 0 then
        perform pg_advisory_xact_lock(hashtext('matchmaker creator ' || p_creator_id));
        if (select count(*) from games g
            where g.creator_id = p_creator_id and g.state in ('created', 'creator_joined'))
           + (select count(*) from create_intents c where c.creator_id = p_creator_id)
           >= p_limit then
            return;
        end if;
    end if;
    -- an instance without a capacity: nothing to count, so nothing is locked
    return query
        with pick as (
            select i.server_key, i.instance_id, i.url, i.socket_url from game_server_instances i
            where i.product_id = p_product_id and i.state = 'active' and i.capacity is null
              and (p_region is null or i.region = p_region)
              and (i.configured or i.heartbeat_at > now() - make_interval(secs => p_timeout_secs))
              and i.server_key <> all(p_exclude)
            order by random()
            limit 1
        ), intent as (
            insert into create_intents (game_id, product_id, creator_id, server_key)
            select p_game_id, p_product_id, p_creator_id, pick.server_key from pick
            returning server_key
        )
        select p.server_key, p.instance_id, p.url, p.socket_url
        from pick p join intent n on n.server_key = p.server_key;
    if found then
        return;
    end if;
    -- a counted instance with room, passing over those other creates are placing on
    return query
        with pick as (
            select i.server_key from game_server_instances i
            where i.product_id = p_product_id and i.state = 'active' and i.capacity is not null
              and i.games < i.capacity
              and (p_region is null or i.region = p_region)
              and (i.configured or i.heartbeat_at > now() - make_interval(secs => p_timeout_secs))
              and i.server_key <> all(p_exclude)
            order by i.capacity - i.games desc, random()
            limit 1
            for update skip locked
        ), counted as (
            update game_server_instances i set games = i.games + 1
            from pick where i.server_key = pick.server_key
            returning i.server_key, i.instance_id, i.url, i.socket_url
        ), intent as (
            insert into create_intents (game_id, product_id, creator_id, server_key)
            select p_game_id, p_product_id, p_creator_id, counted.server_key from counted
            returning server_key
        )
        select c.server_key, c.instance_id, c.url, c.socket_url
        from counted c join intent n on n.server_key = c.server_key;
end;
$$;

create function instance_live_games(p_server_key uuid) returns bigint
language sql stable as $$
    select (select count(*) from games g where g.server_key = p_server_key and g.state <> 'ended')
         + (select count(*) from create_intents c where c.server_key = p_server_key)
$$;
