-- Lobby notifications carry the id of the transaction that made the change, so that a process
-- can wait for its own commit's notification instead of sending a fence of its own after it
-- (lobby::read_model, docs/performance.md: each NOTIFY takes a cluster-wide lock until its
-- transaction's commit is flushed).

create or replace function games_lobby_notify() returns trigger language plpgsql as $$
declare
    was_listed boolean := false;
    is_listed  boolean := false;
    kind       text;
    g          record;
begin
    if tg_op in ('UPDATE', 'DELETE') then
        was_listed := old.state = 'creator_joined' and old.seats_taken < old.num_players
                      and old.join_code is null;
    end if;
    if tg_op in ('INSERT', 'UPDATE') then
        is_listed := new.state = 'creator_joined' and new.seats_taken < new.num_players
                     and new.join_code is null;
    end if;
    if is_listed and not was_listed then
        kind := 'listed';
    elsif was_listed and not is_listed then
        kind := 'unlisted';
    elsif is_listed and old is distinct from new then
        kind := 'changed';
    else
        return null;
    end if;
    if tg_op = 'DELETE' then g := old; else g := new; end if;
    perform pg_notify('matchmaker_lobby', json_build_object(
        'kind', kind,
        'product_id', g.product_id,
        'game_id', replace(g.game_id::text, '-', ''),
        'at', extract(epoch from clock_timestamp()),
        'tx', pg_current_xact_id()::text::int8)::text);
    return null;
end;
$$;
