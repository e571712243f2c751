# Image with both binaries: `matchmaker` (the default entrypoint, `serve`) and `demo-game-server`.
#
#   docker build -t matchmaker .
#   docker run --rm -e DATABASE_URL=... -e MATCHMAKER_SECRET_KEY=... -p 5050:5050 matchmaker
#
# sqlx checks its queries at compile time from the committed `.sqlx/` folder (SQLX_OFFLINE), so
# no database is needed to build. Regenerate it with `cargo sqlx prepare` after changing a query.

ARG RUST_VERSION=1.95

# --- chef: the Rust toolchain plus cargo-chef ----------------------------------------------------
FROM rust:${RUST_VERSION}-bookworm AS chef
ARG CARGO_CHEF_VERSION=0.1.77
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /app

# --- planner: the dependency recipe (changes only when manifests or the lock file do) -----------
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# --- builder: dependencies first (a cached layer), then the project ------------------------------
FROM chef AS builder
ENV SQLX_OFFLINE=true
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin matchmaker --bin demo-game-server

# --- runtime -------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
# Not pinned: bookworm's point releases replace these packages (and drop the old versions from
# the archive), so a pinned version would break the build at the next security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 matchmaker \
    && useradd --system --uid 10001 --gid matchmaker --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin matchmaker
WORKDIR /app
COPY --from=builder /app/target/release/matchmaker /usr/local/bin/matchmaker
COPY --from=builder /app/target/release/demo-game-server /usr/local/bin/demo-game-server
COPY migrations ./migrations
# Numeric, so an orchestrator can verify the image does not run as root (runAsNonRoot).
USER 10001:10001
EXPOSE 5050
# For `matchmaker serve`; the demo game server listens elsewhere (see docker-compose.yml).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "http://127.0.0.1:5050/healthz"]
ENTRYPOINT ["matchmaker"]
CMD ["serve"]
