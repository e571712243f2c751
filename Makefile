# matchmaker: the two commands a newcomer needs are `make run` and `make test`.
# Without DATABASE_URL / REDIS_URL, both start throwaway servers under target/services/.

SHELL := /bin/bash
export SQLX_OFFLINE ?= true
DEV_SECRET ?= dev-secret-change-me
CARGO ?= cargo

.PHONY: run test lint prepare migrate build bench clean-services api-fuzz chaos

build:
	$(CARGO) build --bins

## Serve on :5050 with the demo game server on :8080 (config/dev.toml).
run: build
	@scripts/with-services.sh --redis --db matchmaker --durable -- scripts/run-dev.sh

## The whole test suite (unit + integration) against real Postgres and Redis.
test:
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  scripts/with-services.sh --redis -- $(CARGO) nextest run --no-fail-fast; \
	else \
	  scripts/with-services.sh --redis -- $(CARGO) test --no-fail-fast; \
	fi

## The fault suite's long variant: 30 kill -9 rounds, then the Postgres and Redis outages.
chaos:
	@CRASH_ROUNDS=$${CRASH_ROUNDS:-30} scripts/with-services.sh --redis -- $(CARGO) nextest run crash --no-capture

## schemathesis (PyPI) and scripts/hostile_fuzz.py (NUL, invalid UTF-8, huge values, hostile tokens
## and headers) against every documented operation, fixed seed. API_FUZZ=hostile: only the latter.
api-fuzz: build
	@scripts/with-services.sh -- scripts/schemathesis.sh

lint:
	$(CARGO) fmt --all --check
	scripts/check-layers.sh
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Load test against the database's own ceilings (pgbench: the service's SQL and the minimal
## job), closed and open loop, CPU per operation, Colyseus beside quick_match; see
## docs/performance.md. Builds --release (into $$CARGO_TARGET_DIR if set); starts throwaway
## servers unless DATABASE_URL/REDIS_URL. Smoke test: BENCH_SECS=3 BENCH_EVENTS=2000 make bench.
bench:
	@bench/run.sh

## Regenerate .sqlx/ (sqlx's offline query data); needs sqlx-cli 0.8.
prepare:
	@command -v sqlx >/dev/null || { echo "install sqlx-cli: cargo install sqlx-cli --version 0.8.6 --no-default-features --features postgres,rustls"; exit 1; }
	scripts/with-services.sh -- bash -c 'sqlx migrate run && SQLX_OFFLINE=false $(CARGO) sqlx prepare -- --all-targets'

## Apply migrations to $$DATABASE_URL.
migrate:
	@test -n "$$DATABASE_URL" || { echo "set DATABASE_URL"; exit 1; }
	$(CARGO) run --bin matchmaker -- migrate

clean-services:
	rm -rf target/services
