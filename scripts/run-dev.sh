#!/usr/bin/env bash
# `make run`: the matchmaker on :5050 and the demo game server on :8080, with a development
# secret and ready-made tokens for two sample players.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/debug"
export MATCHMAKER_SECRET_KEY=${MATCHMAKER_SECRET_KEY:-dev-secret-change-me}
export MATCHMAKER_CONFIG=${MATCHMAKER_CONFIG:-$root/config/dev.toml}
export MATCHMAKER_BIND=${MATCHMAKER_BIND:-127.0.0.1:5050}
if [ -n "${REDIS_URL:-}" ]; then
  export MATCHMAKER_EVENT_STREAM_URL=${MATCHMAKER_EVENT_STREAM_URL:-$REDIS_URL}
fi

"$bin/matchmaker" migrate
"$bin/demo-game-server" --bind 127.0.0.1:8080 --matchmaker-url "http://$MATCHMAKER_BIND" &
demo=$!
trap 'kill $demo 2>/dev/null || true' EXIT

alice=$("$bin/matchmaker" token --user-id alice --username Alice)
bob=$("$bin/matchmaker" token --user-id bob --username Bob)
cat <<MSG

  matchmaker   http://$MATCHMAKER_BIND   (Swagger UI: http://$MATCHMAKER_BIND/swagger-ui/)
  lobby page   http://$MATCHMAKER_BIND/   (pick Alice or Bob, one per browser window)
  game server  http://127.0.0.1:8080     (demo-game-server, product exrps)
  secret       $MATCHMAKER_SECRET_KEY
  token alice  $alice
  token bob    $bob

  export ALICE=$alice
  export BOB=$bob

MSG
"$bin/matchmaker" serve
