#!/usr/bin/env bash
# `make bench`: the matchmaker against the database's own ceilings, in one run on one machine.
#
#  1. builds the service, the demo game server and loadgen with --release (into
#     $CARGO_TARGET_DIR, default target/);
#  2. with no DATABASE_URL / REDIS_URL, starts a throwaway PostgreSQL (default durability: fsync
#     and synchronous_commit stay on) and Redis (scripts/with-services.sh);
#  3. applies the migrations and seeds a lobby of BENCH_BIG_LOBBY (10,000) listed games in SQL
#     (bench/sql/lobby.sql) for the list_big scenario;
#  4. runs the pgbench ceilings before the service starts, so nothing else uses the CPUs: for
#     join, create and list both the mirror of the service's own SQL (join.sql, create.sql,
#     list.sql) and the minimal job (join_min.sql, create_min.sql, list_min.sql), the two list
#     ones again on the big lobby; with PostgreSQL's CPU time per transaction, from /proc; then
#     deletes their rows (cleanup.sql) and checkpoints, so the scenarios start as clean as they did;
#  5. starts the demo game server in --fast mode and the matchmaker, timing start-up to ready,
#     and a Colyseus server (bench/colyseus/, `npm ci` from its lockfile) when node is there;
#  6. runs every loadgen scenario closed loop, then again open loop at half the throughput it
#     measured, with the CPU time per operation of the service and of every PostgreSQL process
#     of the cluster; loadgen prints the figures beside the issue's targets.
#
# Knobs (environment): BENCH_SECS or BENCH_SECONDS (seconds per timed scenario and pgbench
# run, default 10; 3 is a smoke test that every line prints), BENCH_CLIENTS (default 32),
# BENCH_EVENTS (stream entries in the burst, default 20000), BENCH_SCENARIOS (loadgen scenarios,
# default all), BENCH_BIG_LOBBY (listed games of list_big, default 10000), BENCH_JOIN_GAMES
# (games opened for join's closed loop, default 3000 per second of it), BENCH_PGBENCH=0 (skip
# the ceilings), BENCH_OPEN_LOOP=0 (skip the open-loop runs), BENCH_COLYSEUS=0 (skip Colyseus),
# BENCH_PERF=1 (record a system-wide `perf` profile of the loadgen run into $BENCH_OUT/perf.data
# and print the CPU time by process and the service's hottest functions),
# BENCH_BUILD=0 (use the binaries already in $CARGO_TARGET_DIR/release),
# BENCH_OUT (where the JSON, logs and config go, default target/bench).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
if [ -z "${BENCH_INNER:-}" ]; then
  started=$(date +%s)
  if [ "${BENCH_BUILD:-1}" != 0 ]; then
    echo "bench: building (release) ..." >&2
    (cd "$root" && SQLX_OFFLINE=true CARGO_TARGET_DIR=$target_dir cargo build --release --workspace --bins --quiet)
    echo "bench: built in $(($(date +%s) - started)) s" >&2
  fi
  export BENCH_INNER=1 BENCH_STARTED=$started
  exec "$root/scripts/with-services.sh" --redis --db matchmaker_bench --durable -- "$0" "$@"
fi

secs=${BENCH_SECS:-${BENCH_SECONDS:-10}}
clients=${BENCH_CLIENTS:-32}
events=${BENCH_EVENTS:-20000}
big_lobby=${BENCH_BIG_LOBBY:-10000}
# Games opened for the join scenario's closed loop (it stops early when they run out).
join_games=${BENCH_JOIN_GAMES:-$((3000 * secs))}
out=${BENCH_OUT:-$root/target/bench}
bin=$target_dir/release
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

# CPU ticks (1/100 s) of process $1 and all its descendants: utime + stime of each living one
# plus cutime + cstime (what each has reaped), so a backend that exited is still counted.
tree_ticks() {
  [ -n "$1" ] || { echo 0; return; }
  # cat, not awk on the files: a process may exit between the listing and the reading.
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$1" '
    { pid = $1; f = $0; sub(/^.*\) /, "", f); split(f, v, " ")
      parent[pid] = v[2]; t[pid] = v[12] + v[13] + v[14] + v[15] }
    END { for (pid in t) { q = pid
            for (i = 0; i < 64 && q != "" && q != 0; i++) { if (q == root) { sum += t[pid]; break }; q = parent[q] } }
          print sum + 0 }'
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

# The quick_match scenario's own lobby, so that quick matches pair with each other.
[[games]]
product_id = "exrps_quick"
game_server_url = "http://127.0.0.1:$gs_port"
game_socket_url = "bench.invalid:8085"
settings = { num_players = 2 }

# The big lobby of list_big: $big_lobby listed games, seeded in SQL (bench/sql/lobby.sql).
[[games]]
product_id = "exrps_big"
game_server_url = "http://127.0.0.1:$gs_port"
game_socket_url = "bench.invalid:8085"
settings = { num_players = 2 }
TOML

export MATCHMAKER_CONFIG=$config MATCHMAKER_SECRET_KEY=$secret MATCHMAKER_EVENT_STREAM_URL=$REDIS_URL
"$bin/matchmaker" migrate >"$out/migrate.log" 2>&1

# PostgreSQL's processes: the postmaster (and its children) of the cluster, when it runs on
# this machine and its data directory can be read; their CPU time is read from /proc.
pg_pid=""
pg_data=$(psql -Atc 'show data_directory' "$DATABASE_URL" 2>/dev/null || true)
if [ -n "$pg_data" ] && [ -r "$pg_data/postmaster.pid" ]; then
  pg_pid=$(head -n 1 "$pg_data/postmaster.pid")
  [ -r "/proc/$pg_pid/stat" ] || pg_pid=""
fi
[ -n "$pg_pid" ] || echo "bench: PostgreSQL's processes not found on this machine: no PostgreSQL CPU figures" >&2

echo "bench: seeding a lobby of $big_lobby listed games (exrps_big) ..." >&2
psql -q "$DATABASE_URL" -v product=exrps_big -v listed="$big_lobby" -f "$root/bench/sql/lobby.sql" >"$out/lobby-seed.log" 2>&1

# --- the database's ceilings: pgbench, before the service starts, same server, same durability ---
ceilings=()
ceiling_lines=()
if [ "${BENCH_PGBENCH:-1}" != 0 ]; then
  echo "bench: pgbench ceilings ($clients clients, ${secs}s each) ..." >&2
  # Enough fresh games that no join ceiling runs out (checked below): 600 per client and second
  # of the run, 6,000 at the default 10 s.
  per_client=$((600 * secs > 600 ? 600 * secs : 600))
  psql -q "$DATABASE_URL" -v games=$((clients * per_client)) -v listed=40 -f "$root/bench/sql/setup.sql" >"$out/pgbench-setup.log" 2>&1
  # Start from a clean checkpoint, so that the first ceiling does not share the disk with the
  # writing-out of the setup's hundreds of thousands of rows (superuser or pg_checkpoint only;
  # without it the first ceiling may come out low).
  psql -q -c checkpoint "$DATABASE_URL" >>"$out/pgbench-setup.log" 2>&1 || echo "bench: CHECKPOINT refused; the first ceiling may be low" >&2
  # Expiry a day away, so that a reaper never touches pgbench's games.
  # pgbench_run NAME SCRIPT [pgbench args]: runs it, records its TPS as ceiling NAME.
  pgbench_run() {
    local name=$1 script=$2
    shift 2
    local before after log=$out/pgbench-$name.log
    before=$(tree_ticks "$pg_pid")
    pgbench -n -M prepared -c "$clients" -j 2 -T "$secs" -D k=0 -D nclients="$clients" -D expiry=86400 "$@" \
      -f "$root/bench/sql/$script.sql" "$DATABASE_URL" >"$log" 2>&1 || { echo "bench: pgbench $name failed:" >&2; tail -n 5 "$log" >&2; return 0; }
    after=$(tree_ticks "$pg_pid")
    local tps txns lat pg_us="-"
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$log")
    txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$log")
    lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$log")
    if [ -n "$pg_pid" ] && [ "${txns:-0}" -gt 0 ]; then
      pg_us=$(((after - before) * 10000 / txns))
    fi
    ceilings+=(--ceiling "$name=$tps")
    ceiling_lines+=("$(printf '  %-13s %-15s %12s tps  %8s ms  %6s µs' "$name" "$script.sql" "$tps" "$lat" "$pg_us")")
    echo "bench:   $name ($script.sql): $tps tps" >&2
  }
  # The join ceilings must not run out of fresh games: a join of a full game is a cheap no-op.
  check_games() {
    local name=$1 product=$2 left
    left=$(psql -Atc "select count(*) from games where product_id = '$product' and seats_taken < num_players" "$DATABASE_URL")
    if [ "$left" -eq 0 ]; then
      ceiling_lines+=("  WARNING: $name ran out of fresh games; its ceiling is not valid (raise the games in bench/run.sh)")
    fi
  }
  pgbench_run join join -D product=pgbench
  check_games join pgbench
  pgbench_run join_min join_min
  check_games join_min pgbench_jmin
  pgbench_run create create -D product=pgbench_new
  pgbench_run create_min create_min -D product=pgbench_new_min
  pgbench_run list list -D product=pgbench_list -D count=25
  pgbench_run list_min list_min -D product=pgbench_list -D count=25
  pgbench_run list_big list -D product=exrps_big -D count=25
  pgbench_run list_big_min list_min -D product=exrps_big -D count=25
  echo "bench: removing the ceilings' rows ..." >&2
  psql -q "$DATABASE_URL" -f "$root/bench/sql/cleanup.sql" >"$out/pgbench-cleanup.log" 2>&1
  # The ceilings wrote enough WAL for a checkpoint to start just as the service's first scenario
  # did, with a full-page image in the WAL for every page it then touched first; the ceilings
  # started from a clean checkpoint, and so do the scenarios.
  psql -q -c checkpoint "$DATABASE_URL" >>"$out/pgbench-cleanup.log" 2>&1 || echo "bench: CHECKPOINT refused; the first scenario may share the disk with one" >&2
fi

# --- the services ---
"$bin/demo-game-server" --fast --bind "127.0.0.1:$gs_port" >"$out/game-server.log" 2>&1 &
gs_pid=$!
pids+=("$gs_pid")
wait_ready "http://127.0.0.1:$gs_port/healthz" "$(date +%s%N)" >/dev/null

t0=$(date +%s%N)
"$bin/matchmaker" serve >"$out/matchmaker.log" 2>&1 &
mm_pid=$!
pids+=("$mm_pid")
startup_ms=$(wait_ready "http://127.0.0.1:$mm_port/readyz" "$t0")
# Memory with the big lobby loaded and nothing else listed yet (the target's "with 10,000
# listed"); the end of the run holds whatever the scenarios left listed too.
ready_mem=()
for _ in $(seq 100); do
  held=$(curl -sf "http://127.0.0.1:$mm_port/metrics" | sed -n 's/^matchmaker_lobby_cache_games //p')
  if [ -n "$held" ] && [ "${held%.*}" -ge "$big_lobby" ]; then
    rss_kb=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$mm_pid/status")
    ready_mem=(--ready-rss-mb "$(awk -v k="$rss_kb" 'BEGIN { printf "%.1f", k / 1024 }')" --ready-listed "${held%.*}")
    break
  fi
  sleep 0.1
done
[ ${#ready_mem[@]} -gt 0 ] || echo "bench: the big lobby did not show as loaded; no memory reading at ready" >&2

colyseus=()
if [ "${BENCH_COLYSEUS:-1}" != 0 ]; then
  if command -v node >/dev/null && command -v npm >/dev/null; then
    echo "bench: Colyseus: npm ci (bench/colyseus/package-lock.json) ..." >&2
    if (cd "$root/bench/colyseus" && npm ci --ignore-scripts --no-audit --no-fund) >"$out/colyseus-npm.log" 2>&1; then
      cy_port=$(free_port)
      PORT=$cy_port NODE_ENV=production COLYSEUS_AUTH_SECRET=$secret node "$root/bench/colyseus/server.js" >"$out/colyseus.log" 2>&1 &
      cy_pid=$!
      pids+=("$cy_pid")
      if wait_ready "http://127.0.0.1:$cy_port/healthz" "$(date +%s%N)" >/dev/null; then
        colyseus=(--colyseus "http://127.0.0.1:$cy_port" --watch colyseus="$cy_pid")
      else
        echo "bench: Colyseus did not start (see $out/colyseus.log); its scenario is skipped" >&2
      fi
    else
      echo "bench: npm ci failed (see $out/colyseus-npm.log); the Colyseus scenario is skipped" >&2
    fi
  else
    echo "bench: no node/npm: the Colyseus scenario is skipped" >&2
  fi
fi

perf_pid=""
if [ -n "${BENCH_PERF:-}" ]; then
  perf record -a -g -F 499 -o "$out/perf.data" >"$out/perf-record.log" 2>&1 &
  perf_pid=$!
fi

# --- every scenario, closed loop then open loop at half its peak ---
open_loop=(--open-loop-at-half)
[ "${BENCH_OPEN_LOOP:-1}" != 0 ] || open_loop=()
pg_watch=()
[ -z "$pg_pid" ] || pg_watch=(--watch-tree postgres="$pg_pid")
echo "bench: loadgen (${BENCH_SCENARIOS:-all}) ..." >&2
# shellcheck disable=SC2086 # a list of scenario names
"$bin/loadgen" ${BENCH_SCENARIOS:-all} \
  --base-url "http://127.0.0.1:$mm_port" --token-secret "$secret" \
  --redis "$REDIS_URL" --stream-key "$stream_key" \
  --product exrps --open-product exrps_open --quick-product exrps_quick \
  --big-lobby-product exrps_big --big-lobby-games "$big_lobby" \
  --clients "$clients" --duration "$secs" --events "$events" --join-games "$join_games" \
  --game-server "http://127.0.0.1:$gs_port" \
  --watch matchmaker="$mm_pid" --watch game-server="$gs_pid" "${pg_watch[@]}" "${colyseus[@]}" \
  --service matchmaker --startup-ms "$startup_ms" "${ready_mem[@]}" \
  "${open_loop[@]}" "${ceilings[@]}" \
  --json-out "$out/bench.json" >"$out/bench.txt" &
lg_pid=$!
lg_rc=0
wait "$lg_pid" || lg_rc=$?
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
          else if (c == "postgres") k = "postgres"; else if (c == "node") k = "node (colyseus)";
          else if (c == "swapper") k = "idle"; else k = "other processes";
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

{
  if [ ${#ceiling_lines[@]} -gt 0 ]; then
    echo
    echo "ceilings (pgbench -M prepared, $clients clients, -j 2, ${secs}s each, before the service started; tps, its own mean latency, PostgreSQL CPU per transaction):"
    for line in "${ceiling_lines[@]}"; do echo "$line"; done
  fi
  echo
  echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), load average $(cut -d' ' -f1-3 /proc/loadavg); $(psql -Atc 'show server_version' "$DATABASE_URL" | head -n 1) (fsync $(psql -Atc 'show fsync' "$DATABASE_URL"), synchronous_commit $(psql -Atc 'show synchronous_commit' "$DATABASE_URL"))"
  echo "run: $(date -u '+%Y-%m-%d %H:%M UTC'), ${secs}s per scenario, $((($(date +%s) - ${BENCH_STARTED:-$(date +%s)}))) s wall including the build; results in $out"
} | tee -a "$out/bench.txt"
exit "$lg_rc"
