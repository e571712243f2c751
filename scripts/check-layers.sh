#!/usr/bin/env bash
# Fails when a module imports against the direction of the layers (docs/design.md):
#   main -> startup -> {http, workers} -> {lobby, events, live} -> {domain, store, game_server}
# and when anything outside src/http/ uses axum or utoipa. src/bin/ holds other programs (the
# demo game server), which are not layers of the service.
set -euo pipefail
cd "$(dirname "$0")/../src"
status=0

web=$(grep -rnE '\b(axum|utoipa|utoipa_axum|utoipa_swagger_ui)(::|\b.*;)' --include='*.rs' . \
  | grep -v '^\./http/' | grep -v '^\./bin/' | grep -vE '^[^:]+:[0-9]+:\s*//' || true)
if [ -n "$web" ]; then
  echo "axum/utoipa outside src/http/:"; echo "$web"; status=1
fi

# Lines of the given files that name crate module $1 as a path (`crate::x`, `x::...` inside a
# `use crate::{...}` block), comments aside.
uses() {
  local module=$1; shift
  grep -HnE "crate::$module\b|(^|[^A-Za-z0-9_:])$module::" "$@" 2>/dev/null \
    | grep -vE '^[^:]+:[0-9]+:\s*//' || true
}

# layer: the crate modules it must not import
forbidden() {
  case "$1" in
    domain)      echo "store game_server lobby events live workers http startup config metrics auth" ;;
    store)       echo "game_server lobby events live workers http startup config" ;;
    game_server) echo "store lobby events live workers http startup config" ;;
    lobby|events|live) echo "workers http startup config" ;;
    workers)     echo "http startup config" ;;
    http)        echo "workers startup" ;;
    *)           echo "" ;;
  esac
}
for layer in domain store game_server lobby events live workers http; do
  files=$( { [ -d "$layer" ] && find "$layer" -name '*.rs'; [ -f "$layer.rs" ] && echo "$layer.rs"; } || true)
  for bad in $(forbidden "$layer"); do
    hits=$(uses "$bad" $files)
    if [ -n "$hits" ]; then
      echo "src/$layer imports $bad:"; echo "$hits" | sed "s|^|  |"; status=1
    fi
  done
done
# The use-case modules do not lean on each other.
for pair in "lobby events" "lobby live" "events lobby" "events live" "live lobby" "live events"; do
  set -- $pair
  files=$(find "$1" -name '*.rs')
  hits=$(uses "$2" $files)
  if [ -n "$hits" ]; then
    echo "src/$1 imports its sibling $2:"; echo "$hits" | sed "s|^|  |"; status=1
  fi
done
[ $status -eq 0 ] && echo "layers: ok"
exit $status
