-- Live lobby: every change to the open-games list is announced with NOTIFY matchmaker_lobby in
-- the transaction that makes it (delivered at commit, never for a rolled-back change), whatever
-- made it: a create, a join, a leave, an event, the reaper.

create function games_lobby_notify() returns trigger language plpgsql as $$
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
        'game_id', replace(g.game_id::text, '-', ''))::text);
    return null;
end;
$$;
comment on function games_lobby_notify() is 'Announces open-games list changes (listed, changed, unlisted) on channel matchmaker_lobby; every process LISTENs and fans out to its live-lobby subscribers.';

create trigger games_lobby_notify
    after insert or update or delete on games
    for each row execute function games_lobby_notify();
