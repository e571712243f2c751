#!/usr/bin/env bash
# `make bench`: the matchmaker against the database's own ceiling, in one run on one machine.
#
#  1. builds the service, the demo game server and loadgen with --release;
#  2. with no DATABASE_URL / REDIS_URL, starts a throwaway PostgreSQL (default durability: fsync
#     and synchronous_commit stay on) and Redis (scripts/with-services.sh);
#  3. starts the demo game server in --fast mode and the matchmaker, timing start-up to ready;
#  4. runs pgbench with the service's own SQL (bench/sql/) for the three ceilings: the join's
#     seat-taking statements, the create statement, the open-games page;
#  5. runs every loadgen scenario, printing each next to its ceiling as a ratio;
#  6. reports the service's resident memory at the end.
#
# Knobs (environment): BENCH_SECS (seconds per timed scenario / pgbench run, default 10),
# BENCH_CLIENTS (default 32), BENCH_EVENTS (stream entries in the burst, default 20000),
# BENCH_SCENARIOS (loadgen scenarios, default all), BENCH_PGBENCH=0 (skip the ceilings),
# BENCH_PERF=1 (record a system-wide `perf` profile of the loadgen run into $BENCH_OUT/perf.data
# and print the CPU time by process and the service's hottest functions),
# BENCH_BUILD=0 (use the binaries already in target/release),
# BENCH_OUT (where the JSON, logs and config go, default target/bench).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${BENCH_INNER:-}" ]; then
  started=$(date +%s)
  if [ "${BENCH_BUILD:-1}" != 0 ]; then
    echo "bench: building (release) ..." >&2
    (cd "$root" && SQLX_OFFLINE=true cargo build --release --workspace --bins --quiet)
    echo "bench: built in $(($(date +%s) - started)) s" >&2
  fi
  export BENCH_INNER=1 BENCH_STARTED=$started
  exec "$root/scripts/with-services.sh" --redis --db matchmaker_bench --durable -- "$0" "$@"
fi

secs=${BENCH_SECS:-10}
clients=${BENCH_CLIENTS:-32}
events=${BENCH_EVENTS:-20000}
out=${BENCH_OUT:-$root/target/bench}
bin=$root/target/release
mkdir -p "$out"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000))
}

# Waits until $1 answers 200; prints the milliseconds it took since $2 (ns since the epoch).
wait_ready() {
  local url=$1 since=$2
  for _ in $(seq 3000); do
    if curl -fs -o /dev/null "$url"; then
      echo $((($(date +%s%N) - since) / 1000000))
      return 0
    fi
    sleep 0.005
  done
  echo "bench: $url never became ready" >&2
  return 1
}

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

secret=bench-secret-$RANDOM$RANDOM
stream_key=game_event_stream_bench_$(date +%s)
gs_port=$(free_port)
mm_port=$(free_port)
config=$out/matchmaker.toml
cat >"$config" <<TOML
# Written by bench/run.sh. Expiry is long so that the reaper leaves the games of a run alone.
bind = "127.0.0.1:$mm_port"
event_stream_key = "$stream_key"

[expiry]
created = 3600
creator_joined = 3600
all_players_joined = 3600
in_progress = 3600
ended = 3600

[[games]]
product_id = "exrps"
game_server_url = "http://127.0.0.1:$gs_port"
game_socket_url = "bench.invalid:8085"
settings = { num_players = 2 }

# The open scenario's own lobby, so that finding a new game takes one page.
[[games]]
product_id = "exrps_open"
game_server_url = "http://127.0.0.1:$gs_port"
game_socket_url = "bench.invalid:8085"
settings = { num_players = 2 }
TOML

export MATCHMAKER_CONFIG=$config MATCHMAKER_SECRET_KEY=$secret MATCHMAKER_EVENT_STREAM_URL=$REDIS_URL
"$bin/matchmaker" migrate >"$out/migrate.log" 2>&1

"$bin/demo-game-server" --fast --bind "127.0.0.1:$gs_port" >"$out/game-server.log" 2>&1 &
gs_pid=$!
pids+=("$gs_pid")
wait_ready "http://127.0.0.1:$gs_port/healthz" "$(date +%s%N)" >/dev/null

t0=$(date +%s%N)
"$bin/matchmaker" serve >"$out/matchmaker.log" 2>&1 &
mm_pid=$!
pids+=("$mm_pid")
startup_ms=$(wait_ready "http://127.0.0.1:$mm_port/readyz" "$t0")

# --- the database's ceilings: pgbench with the service's SQL, same server, same durability ---
ceilings=()
if [ "${BENCH_PGBENCH:-1}" != 0 ]; then
echo "bench: pgbench ceilings ($clients clients, ${secs}s each) ..." >&2
# Enough fresh games that no pgbench client runs out of joins.
psql -q "$DATABASE_URL" -v games=$((clients * 6000)) -v listed=40 -f "$root/bench/sql/setup.sql" >"$out/pgbench-setup.log" 2>&1
# Expiry a day away: with the service's 60 s, its reaper would expire pgbench's tens of
# thousands of games in the middle of the loadgen run (it did, in an early run).
pgbench_tps() {
  local script=$1
  shift
  pgbench -n -M prepared -c "$clients" -j 2 -T "$secs" -D k=0 -D nclients="$clients" -D expiry=86400 "$@" \
    -f "$root/bench/sql/$script.sql" "$DATABASE_URL" >"$out/pgbench-$script.log" 2>&1
  sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out/pgbench-$script.log"
}
join_tps=$(pgbench_tps join -D product=pgbench)
create_tps=$(pgbench_tps create -D product=pgbench_new)
list_tps=$(pgbench_tps list -D product=pgbench_list -D count=25)
echo "bench: pgbench tps: join $join_tps, create $create_tps, list $list_tps" >&2
ceilings=(--ceiling join="$join_tps" --ceiling create="$create_tps" --ceiling list="$list_tps")
fi

perf_pid=""
if [ -n "${BENCH_PERF:-}" ]; then
  perf record -a -g -F 499 -o "$out/perf.data" >"$out/perf-record.log" 2>&1 &
  perf_pid=$!
fi

# --- the service: every scenario ---
echo "bench: loadgen (${BENCH_SCENARIOS:-all}) ..." >&2
# shellcheck disable=SC2086 # a list of scenario names
"$bin/loadgen" ${BENCH_SCENARIOS:-all} \
  --url "http://127.0.0.1:$mm_port" --secret "$secret" \
  --redis "$REDIS_URL" --stream-key "$stream_key" \
  --product exrps --open-product exrps_open \
  --clients "$clients" --duration "$secs" --events "$events" \
  --game-server "http://127.0.0.1:$gs_port" \
  --watch matchmaker="$mm_pid" --watch game-server="$gs_pid" \
  "${ceilings[@]}" \
  --json-out "$out/bench.json" >"$out/bench.txt" &
lg_pid=$!
wait "$lg_pid"
cat "$out/bench.txt"

if [ -n "$perf_pid" ]; then
  kill -INT "$perf_pid"
  wait "$perf_pid" || true
  set +o pipefail # `head` closes the pipes early
  {
    echo
    echo "perf: share of CPU samples by process during the loadgen run"
    perf script -i "$out/perf.data" -F pid,comm 2>/dev/null |
      awk -v mm="$mm_pid" -v gs="$gs_pid" -v lg="$lg_pid" '
        { n++; p = $(NF); c = $1
          if (p == mm) k = "matchmaker"; else if (p == gs) k = "game server"; else if (p == lg) k = "loadgen";
          else if (c == "postgres") k = "postgres"; else if (c == "swapper") k = "idle"; else k = "other processes";
          s[k]++ }
        END { for (k in s) printf "  %-16s %5.1f %%\n", k, 100 * s[k] / n }' | sort -k2 -nr
    echo
    echo "perf: the service's hottest functions (share of the service's own samples)"
    perf report -i "$out/perf.data" --no-children --pid "$mm_pid" --percentage relative \
      --sort dso,symbol --stdio -g none 2>/dev/null |
      grep -v '^#' | grep -v '^$' | head -n 30 | sed -e 's/[[:space:]]*-[[:space:]]*-[[:space:]]*$//' -e 's/[[:space:]]\{2,\}/  /g' | cut -c1-160
  } | tee "$out/perf.txt"
  set -o pipefail
fi

rss_kb=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$mm_pid/status")
hwm_kb=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$mm_pid/status")
rss_mb=$((rss_kb / 1024))
verdict() { if [ "$1" -le "$2" ]; then echo yes; else echo NO; fi; }
{
  echo
  printf '%-24s %8s  %-10s %s\n' "service" "value" "target" "met"
  printf '%-24s %6s ms  %-10s %s\n' "start-up to ready" "$startup_ms" "<= 1000 ms" "$(verdict "$startup_ms" 1000)"
  printf '%-24s %6s MB  %-10s %s\n' "resident memory at end" "$rss_mb" "<= 60 MB" "$(verdict "$rss_mb" 60)"
  printf '%-24s %6s MB\n' "peak resident memory" "$((hwm_kb / 1024))"
  if [ ${#ceilings[@]} -gt 0 ]; then
    echo
    echo "ceilings (pgbench, $clients clients, same server and durability; its own mean latency):"
    for script in join create list; do
      printf '  %-7s %10s tps  %8s ms\n' "$script" "$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$out/pgbench-$script.log")" \
        "$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$out/pgbench-$script.log")"
    done
  fi
  echo
  echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1); $(psql -Atc 'show server_version' "$DATABASE_URL" | head -n 1) (fsync $(psql -Atc 'show fsync' "$DATABASE_URL"), synchronous_commit $(psql -Atc 'show synchronous_commit' "$DATABASE_URL"))"
  echo "run: $(date -u '+%Y-%m-%d %H:%M UTC'), $((($(date +%s) - ${BENCH_STARTED:-$(date +%s)}))) s wall including the build; results in $out"
} | tee -a "$out/bench.txt"
