#!/usr/bin/env bash
# Runs a command with DATABASE_URL (and, with --redis, REDIS_URL) pointing at working servers.
# When a variable is already set it is used as it is; otherwise a throwaway PostgreSQL (and
# Redis) is started under target/services/ from the machine's server programs and stopped
# when the command ends.
#
#   scripts/with-services.sh [--redis] [--db NAME] [--durable] -- command args...
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
want_redis=0 db_name=postgres durable=0
while [ $# -gt 0 ]; do
  case "$1" in
    --redis) want_redis=1; shift ;;
    --db) db_name=$2; shift 2 ;;
    --durable) durable=1; shift ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--redis] [--db NAME] [--durable] -- command..." >&2; exit 2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000))
}

# Runs a PostgreSQL program as the postgres user when we are root (initdb refuses root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

pg_dir="" redis_pidfile=""
cleanup() {
  if [ -n "$pg_dir" ] && [ -f "$pg_dir/data/postmaster.pid" ]; then
    as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  [ -n "$pg_dir" ] && rm -rf "$pg_dir"
  if [ -n "$redis_pidfile" ] && [ -f "$redis_pidfile" ]; then
    kill "$(cat "$redis_pidfile")" 2>/dev/null || true
    rm -rf "$(dirname "$redis_pidfile")"
  fi
}
trap cleanup EXIT INT TERM

mkdir -p "$root/target/services"

if [ -z "${DATABASE_URL:-}" ]; then
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
    initdb_path=$(command -v initdb || true)
    pg_bin=${initdb_path:+$(dirname "$initdb_path")}
  fi
  if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/pg_ctl" ]; then
    echo "No DATABASE_URL and no PostgreSQL server programs (initdb, pg_ctl) found." >&2
    echo "Install them (Debian/Ubuntu: apt-get install postgresql) or set DATABASE_URL." >&2
    exit 1
  fi
  pg_dir=$(mktemp -d "$root/target/services/pg.XXXXXX")
  chmod 755 "$pg_dir"
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$pg_dir"
    # The postgres user must reach the folder; a checkout inside a private (0700) folder
    # is out of its reach, so the cluster goes to a private folder of its own under /tmp.
    if ! as_pg test -w "$pg_dir"; then
      rmdir "$pg_dir"
      pg_dir=$(mktemp -d /tmp/matchmaker-pg.XXXXXX)
      chmod 755 "$pg_dir"
      chown postgres "$pg_dir"
    fi
  fi
  port=$(free_port)
  as_pg "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust --no-sync >"$pg_dir/initdb.log" 2>&1 ||
    { cat "$pg_dir/initdb.log" >&2; exit 1; }
  opts="-p $port -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=400"
  # Test databases are thrown away: durability buys nothing there.
  [ "$durable" = 1 ] || opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -o "$opts" -l "$pg_dir/postgres.log" -w start >/dev/null ||
    { cat "$pg_dir/postgres.log" >&2; exit 1; }
  if [ "$db_name" != postgres ]; then
    as_pg "$pg_bin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db_name"
  fi
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/$db_name"
  echo "with-services: throwaway PostgreSQL at $DATABASE_URL" >&2
fi

if [ "$want_redis" = 1 ] && [ -z "${REDIS_URL:-}" ]; then
  if ! command -v redis-server >/dev/null; then
    echo "No REDIS_URL and no redis-server found." >&2
    echo "Install it (Debian/Ubuntu: apt-get install redis-server) or set REDIS_URL." >&2
    exit 1
  fi
  redis_dir=$(mktemp -d "$root/target/services/redis.XXXXXX")
  port=$(free_port)
  redis_pidfile="$redis_dir/redis.pid"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --pidfile "$redis_pidfile" --dir "$redis_dir" --logfile "$redis_dir/redis.log"
  for _ in $(seq 50); do [ -f "$redis_pidfile" ] && break; sleep 0.1; done
  export REDIS_URL="redis://127.0.0.1:$port/0"
  echo "with-services: throwaway Redis at $REDIS_URL" >&2
fi

"$@"
