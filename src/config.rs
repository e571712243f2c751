//! Settings: command line and environment (`clap`) over a TOML file over defaults.
//!
//! Every setting has exactly one TOML key and one environment variable; `matchmaker --help`
//! lists them all. Validation happens once, here, so the rest of the code can trust `Settings`.

use std::{collections::HashSet, fmt, net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, builder::BoolishValueParser};
use serde::Deserialize;
use serde_json::{Map, Value};

pub use crate::domain::{Expiry, Product};

/// Lobby and matchmaking service for multiplayer web games.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub overrides: Overrides,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API and run the background tasks (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print a portal-style access token (HS256, signed with secret_key) for trying the API.
    Token {
        /// The player's user id.
        #[arg(long)]
        user_id: String,
        /// The player's username.
        #[arg(long)]
        username: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl_secs: u64,
    },
}

/// Settings given on the command line or in the environment; each wins over the TOML file.
#[derive(Args, Default)]
pub struct Overrides {
    /// TOML configuration file.
    #[arg(long = "config", env = "MATCHMAKER_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address to serve on [toml: bind] [default: 0.0.0.0:5050]
    #[arg(long, env = "MATCHMAKER_BIND", global = true)]
    pub bind: Option<String>,
    /// Postgres URL [toml: database_url] (required)
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// HS256 secret shared with the portal [toml: secret_key] (required)
    #[arg(
        long,
        env = "MATCHMAKER_SECRET_KEY",
        global = true,
        hide_env_values = true
    )]
    pub secret_key: Option<String>,
    /// Refuse tokens without `exp` [toml: require_token_expiry] [default: false]
    #[arg(long, env = "MATCHMAKER_REQUIRE_TOKEN_EXPIRY", global = true, value_parser = BoolishValueParser::new())]
    pub require_token_expiry: Option<bool>,
    /// Redis URL (with database number) of the game-event stream; unset = stream intake off [toml: event_stream_url]
    #[arg(
        long,
        env = "MATCHMAKER_EVENT_STREAM_URL",
        global = true,
        hide_env_values = true
    )]
    pub event_stream_url: Option<String>,
    /// Redis stream key [toml: event_stream_key] [default: game_event_stream]
    #[arg(long, env = "MATCHMAKER_EVENT_STREAM_KEY", global = true)]
    pub event_stream_key: Option<String>,
    /// Time limit of one game-server call, in ms [toml: game_server_timeout_ms] [default: 5000]
    #[arg(long, env = "MATCHMAKER_GAME_SERVER_TIMEOUT_MS", global = true)]
    pub game_server_timeout_ms: Option<u64>,
    /// Default open-games page size [toml: lobby_page_size] [default: 10]
    #[arg(long, env = "MATCHMAKER_LOBBY_PAGE_SIZE", global = true)]
    pub lobby_page_size: Option<u32>,
    /// Largest open-games page size [toml: lobby_max_page_size] [default: 25]
    #[arg(long, env = "MATCHMAKER_LOBBY_MAX_PAGE_SIZE", global = true)]
    pub lobby_max_page_size: Option<u32>,
    /// Allowed CORS origins, comma-separated; empty = any [toml: cors_origins] [default: any]
    #[arg(
        long,
        env = "MATCHMAKER_CORS_ORIGINS",
        global = true,
        value_delimiter = ','
    )]
    pub cors_origins: Option<Vec<String>>,
    /// Apply pending migrations when `serve` starts [toml: migrate_on_start] [default: true]
    #[arg(long, env = "MATCHMAKER_MIGRATE_ON_START", global = true, value_parser = BoolishValueParser::new())]
    pub migrate_on_start: Option<bool>,
    /// Largest number of database connections [toml: database_max_connections] [default: 16]
    #[arg(long, env = "MATCHMAKER_DATABASE_MAX_CONNECTIONS", global = true)]
    pub database_max_connections: Option<u32>,
    /// Seconds a game may stay `created` [toml: expiry.created] [default: 60]
    #[arg(long, env = "MATCHMAKER_EXPIRY__CREATED", global = true)]
    pub expiry_created: Option<u64>,
    /// Seconds a game may stay `creator_joined` without a change [toml: expiry.creator_joined] [default: 60]
    #[arg(long, env = "MATCHMAKER_EXPIRY__CREATOR_JOINED", global = true)]
    pub expiry_creator_joined: Option<u64>,
    /// Seconds a game may stay `all_players_joined` [toml: expiry.all_players_joined] [default: 600]
    #[arg(long, env = "MATCHMAKER_EXPIRY__ALL_PLAYERS_JOINED", global = true)]
    pub expiry_all_players_joined: Option<u64>,
    /// Seconds a game may stay `in_progress` [toml: expiry.in_progress] [default: 1200]
    #[arg(long, env = "MATCHMAKER_EXPIRY__IN_PROGRESS", global = true)]
    pub expiry_in_progress: Option<u64>,
    /// Seconds a game may stay `ended` [toml: expiry.ended] [default: 300]
    #[arg(long, env = "MATCHMAKER_EXPIRY__ENDED", global = true)]
    pub expiry_ended: Option<u64>,
    /// How often the reaper looks for expired games, in ms [toml: reaper_interval_ms] [default: 1000]
    #[arg(long, env = "MATCHMAKER_REAPER_INTERVAL_MS", global = true)]
    pub reaper_interval_ms: Option<u64>,
    /// Age at which an unconfirmed seat reservation is released, in ms (more than game_server_timeout_ms) [toml: reservation_timeout_ms] [default: 15000]
    #[arg(long, env = "MATCHMAKER_RESERVATION_TIMEOUT_MS", global = true)]
    pub reservation_timeout_ms: Option<u64>,
    /// Attempts at an owed game-server call before giving up [toml: outbox_max_attempts] [default: 10]
    #[arg(long, env = "MATCHMAKER_OUTBOX_MAX_ATTEMPTS", global = true)]
    pub outbox_max_attempts: Option<u32>,
    /// First retry delay of an owed game-server call, in ms; doubles per attempt [toml: outbox_backoff_ms] [default: 500]
    #[arg(long, env = "MATCHMAKER_OUTBOX_BACKOFF_MS", global = true)]
    pub outbox_backoff_ms: Option<u64>,
    /// Longest graceful shutdown, in ms [toml: shutdown_timeout_ms] [default: 10000]
    #[arg(long, env = "MATCHMAKER_SHUTDOWN_TIMEOUT_MS", global = true)]
    pub shutdown_timeout_ms: Option<u64>,
    /// Interval of the live lobby stream's heartbeat comments, in ms [toml: lobby_stream_heartbeat_ms] [default: 15000]
    #[arg(long, env = "MATCHMAKER_LOBBY_STREAM_HEARTBEAT_MS", global = true)]
    pub lobby_stream_heartbeat_ms: Option<u64>,
    /// Lobby changes a live-lobby subscriber may fall behind by before it is dropped [toml: lobby_stream_buffer] [default: 256]
    #[arg(long, env = "MATCHMAKER_LOBBY_STREAM_BUFFER", global = true)]
    pub lobby_stream_buffer: Option<usize>,
    /// Largest request body, in bytes; larger ones get 413 [toml: max_body_bytes] [default: 65536]
    #[arg(long, env = "MATCHMAKER_MAX_BODY_BYTES", global = true)]
    pub max_body_bytes: Option<u64>,
    /// Time a client has to send a request's headers, in ms [toml: header_read_timeout_ms] [default: 10000]
    #[arg(long, env = "MATCHMAKER_HEADER_READ_TIMEOUT_MS", global = true)]
    pub header_read_timeout_ms: Option<u64>,
    /// Creates and joins one player may start per minute; 0 = no limit [toml: rate_limit_player_per_minute] [default: 0]
    #[arg(long, env = "MATCHMAKER_RATE_LIMIT_PLAYER_PER_MINUTE", global = true)]
    pub rate_limit_player_per_minute: Option<u32>,
    /// Creates and joins one client IP address may start per minute; 0 = no limit [toml: rate_limit_ip_per_minute] [default: 0]
    #[arg(long, env = "MATCHMAKER_RATE_LIMIT_IP_PER_MINUTE", global = true)]
    pub rate_limit_ip_per_minute: Option<u32>,
    /// Games one player may have waiting for players at once; 0 = no limit [toml: max_open_games_per_player] [default: 3]
    #[arg(long, env = "MATCHMAKER_MAX_OPEN_GAMES_PER_PLAYER", global = true)]
    pub max_open_games_per_player: Option<u32>,
    /// Log format, `text` or `json` [toml: log_format] [default: text]
    #[arg(long, env = "MATCHMAKER_LOG_FORMAT", global = true)]
    pub log_format: Option<String>,
}

// Secrets never reach a log line, not even through `{:?}`.
impl fmt::Debug for Overrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Overrides")
            .field("config", &self.config)
            .field("bind", &self.bind)
            .finish_non_exhaustive()
    }
}

/// The TOML file, as written. Unknown keys are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<String>,
    database_url: Option<String>,
    secret_key: Option<String>,
    require_token_expiry: Option<bool>,
    event_stream_url: Option<String>,
    event_stream_key: Option<String>,
    game_server_timeout_ms: Option<u64>,
    lobby_page_size: Option<u32>,
    lobby_max_page_size: Option<u32>,
    cors_origins: Option<Vec<String>>,
    migrate_on_start: Option<bool>,
    database_max_connections: Option<u32>,
    log_format: Option<String>,
    reaper_interval_ms: Option<u64>,
    reservation_timeout_ms: Option<u64>,
    outbox_max_attempts: Option<u32>,
    outbox_backoff_ms: Option<u64>,
    shutdown_timeout_ms: Option<u64>,
    lobby_stream_heartbeat_ms: Option<u64>,
    lobby_stream_buffer: Option<usize>,
    max_body_bytes: Option<u64>,
    header_read_timeout_ms: Option<u64>,
    rate_limit_player_per_minute: Option<u32>,
    rate_limit_ip_per_minute: Option<u32>,
    max_open_games_per_player: Option<u32>,
    expiry: Option<FileExpiry>,
    games: Option<Vec<FileGame>>,
    sample_players: Option<Vec<SamplePlayer>>,
}

/// A player the lobby page at `/` offers ready-made tokens for (development only: anyone who
/// can load the page can act as these players).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SamplePlayer {
    pub user_id: String,
    pub username: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileExpiry {
    created: Option<u64>,
    creator_joined: Option<u64>,
    all_players_joined: Option<u64>,
    in_progress: Option<u64>,
    ended: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGame {
    product_id: String,
    game_server_url: String,
    game_socket_url: String,
    #[serde(default)]
    settings: Map<String, Value>,
    event_key: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Validated settings.
#[derive(Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    pub database_url: String,
    pub database_max_connections: u32,
    pub secret_key: String,
    pub require_token_expiry: bool,
    pub event_stream_url: Option<String>,
    pub event_stream_key: String,
    pub game_server_timeout: Duration,
    pub lobby_page_size: u32,
    pub lobby_max_page_size: u32,
    /// Empty means any origin.
    pub cors_origins: Vec<String>,
    pub migrate_on_start: bool,
    pub log_format: LogFormat,
    pub expiry: Expiry,
    pub reaper_interval: Duration,
    pub reservation_timeout: Duration,
    pub outbox_max_attempts: u32,
    pub outbox_backoff: Duration,
    pub shutdown_timeout: Duration,
    pub lobby_stream_heartbeat: Duration,
    pub lobby_stream_buffer: usize,
    /// Players the lobby page offers tokens for; empty outside development.
    pub sample_players: Vec<SamplePlayer>,
    pub max_body_bytes: usize,
    pub header_read_timeout: Duration,
    /// Per-minute quotas of creates and joins; 0 = off.
    pub rate_limit_player_per_minute: u32,
    pub rate_limit_ip_per_minute: u32,
    /// 0 = no limit.
    pub max_open_games_per_player: u32,
    pub products: Vec<Product>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("bind", &self.bind)
            .field("database_url", &"<redacted>")
            .field("database_max_connections", &self.database_max_connections)
            .field("secret_key", &"<redacted>")
            .field("require_token_expiry", &self.require_token_expiry)
            .field(
                "event_stream_url",
                &self.event_stream_url.as_ref().map(|_| "<redacted>"),
            )
            .field("event_stream_key", &self.event_stream_key)
            .field("game_server_timeout", &self.game_server_timeout)
            .field("lobby_page_size", &self.lobby_page_size)
            .field("lobby_max_page_size", &self.lobby_max_page_size)
            .field("cors_origins", &self.cors_origins)
            .field("migrate_on_start", &self.migrate_on_start)
            .field("log_format", &self.log_format)
            .field("expiry", &self.expiry)
            .field("reaper_interval", &self.reaper_interval)
            .field("reservation_timeout", &self.reservation_timeout)
            .field("outbox_max_attempts", &self.outbox_max_attempts)
            .field("outbox_backoff", &self.outbox_backoff)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("lobby_stream_heartbeat", &self.lobby_stream_heartbeat)
            .field("lobby_stream_buffer", &self.lobby_stream_buffer)
            .field("sample_players", &self.sample_players)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("header_read_timeout", &self.header_read_timeout)
            .field(
                "rate_limit_player_per_minute",
                &self.rate_limit_player_per_minute,
            )
            .field("rate_limit_ip_per_minute", &self.rate_limit_ip_per_minute)
            .field("max_open_games_per_player", &self.max_open_games_per_player)
            .field("products", &self.products)
            .finish()
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {key}: {problem}")]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

fn bad(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        problem: problem.into(),
    }
}

impl Settings {
    /// Reads the TOML file named by `--config`/`MATCHMAKER_CONFIG` (if any) and applies overrides.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        let file = match &overrides.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| bad("config", format!("cannot read {}: {e}", path.display())))?;
                Self::parse_file(&text)
                    .map_err(|e| bad(e.key, format!("in {}: {}", path.display(), e.problem)))?
            }
            None => FileConfig::default(),
        };
        Self::resolve(file, overrides)
    }

    /// Settings from TOML text and overrides (tests use this directly).
    pub fn from_toml(text: &str, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::resolve(Self::parse_file(text)?, overrides)
    }

    fn parse_file(text: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| bad("config", e.message().to_string()))
    }

    fn resolve(file: FileConfig, o: &Overrides) -> Result<Self, ConfigError> {
        let bind_text = pick(&o.bind, file.bind).unwrap_or_else(|| "0.0.0.0:5050".into());
        let bind = bind_text.parse().map_err(|e| {
            bad(
                "bind",
                format!("{bind_text:?} is not an address:port ({e})"),
            )
        })?;

        let database_url = pick(&o.database_url, file.database_url)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("database_url", "missing (set DATABASE_URL)"))?;
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Err(bad(
                "database_url",
                "must be a postgres:// or postgresql:// URL",
            ));
        }

        let secret_key = pick(&o.secret_key, file.secret_key)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("secret_key", "missing (set MATCHMAKER_SECRET_KEY)"))?;

        let event_stream_url =
            pick(&o.event_stream_url, file.event_stream_url).filter(|s| !s.is_empty());
        if let Some(url) = &event_stream_url {
            redis::parse_redis_url(url).ok_or_else(|| {
                bad(
                    "event_stream_url",
                    "not a redis:// URL (e.g. redis://host:6379/1)",
                )
            })?;
        }
        let event_stream_key = pick(&o.event_stream_key, file.event_stream_key)
            .unwrap_or_else(|| "game_event_stream".into());
        if event_stream_key.is_empty() {
            return Err(bad("event_stream_key", "must not be empty"));
        }

        let timeout_ms =
            pick(&o.game_server_timeout_ms, file.game_server_timeout_ms).unwrap_or(5000);
        if timeout_ms == 0 {
            return Err(bad("game_server_timeout_ms", "must be at least 1"));
        }

        let lobby_page_size = pick(&o.lobby_page_size, file.lobby_page_size).unwrap_or(10);
        let lobby_max_page_size =
            pick(&o.lobby_max_page_size, file.lobby_max_page_size).unwrap_or(25);
        if lobby_max_page_size == 0 || lobby_max_page_size > 1000 {
            return Err(bad("lobby_max_page_size", "must be between 1 and 1000"));
        }
        if lobby_page_size == 0 || lobby_page_size > lobby_max_page_size {
            return Err(bad(
                "lobby_page_size",
                "must be between 1 and lobby_max_page_size",
            ));
        }

        let cors_origins: Vec<String> = pick(&o.cors_origins, file.cors_origins)
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        for origin in &cors_origins {
            let looks_right = origin == "*"
                || ((origin.starts_with("http://") || origin.starts_with("https://"))
                    && origin.bytes().all(|b| b.is_ascii_graphic()));
            if !looks_right {
                return Err(bad(
                    "cors_origins",
                    format!("{origin:?} is not an origin like https://portal.example.com"),
                ));
            }
        }

        let database_max_connections =
            pick(&o.database_max_connections, file.database_max_connections).unwrap_or(16);
        if database_max_connections < 2 {
            return Err(bad("database_max_connections", "must be at least 2"));
        }

        let log_format = match pick(&o.log_format, file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(bad(
                    "log_format",
                    format!("{other:?} is neither \"text\" nor \"json\""),
                ));
            }
        };

        let fe = file.expiry.unwrap_or_default();
        let expiry_of = |key: &str, over: &Option<u64>, file: Option<u64>, default: u64| {
            let secs = pick(over, file).unwrap_or(default);
            if secs == 0 {
                return Err(bad(format!("expiry.{key}"), "must be at least 1 second"));
            }
            Ok(Duration::from_secs(secs))
        };
        let expiry = Expiry {
            created: expiry_of("created", &o.expiry_created, fe.created, 60)?,
            creator_joined: expiry_of(
                "creator_joined",
                &o.expiry_creator_joined,
                fe.creator_joined,
                60,
            )?,
            all_players_joined: expiry_of(
                "all_players_joined",
                &o.expiry_all_players_joined,
                fe.all_players_joined,
                600,
            )?,
            in_progress: expiry_of("in_progress", &o.expiry_in_progress, fe.in_progress, 1200)?,
            ended: expiry_of("ended", &o.expiry_ended, fe.ended, 300)?,
        };

        let millis = |key: &str, over: &Option<u64>, file: Option<u64>, default: u64| {
            let ms = pick(over, file).unwrap_or(default);
            if ms == 0 {
                return Err(bad(key, "must be at least 1"));
            }
            Ok(Duration::from_millis(ms))
        };
        let reaper_interval = millis(
            "reaper_interval_ms",
            &o.reaper_interval_ms,
            file.reaper_interval_ms,
            1000,
        )?;
        let reservation_timeout = millis(
            "reservation_timeout_ms",
            &o.reservation_timeout_ms,
            file.reservation_timeout_ms,
            15_000,
        )?;
        if reservation_timeout.as_millis() <= u128::from(timeout_ms) {
            return Err(bad(
                "reservation_timeout_ms",
                "must be longer than game_server_timeout_ms (a join in flight must not lose its seat)",
            ));
        }
        let outbox_backoff = millis(
            "outbox_backoff_ms",
            &o.outbox_backoff_ms,
            file.outbox_backoff_ms,
            500,
        )?;
        let shutdown_timeout = millis(
            "shutdown_timeout_ms",
            &o.shutdown_timeout_ms,
            file.shutdown_timeout_ms,
            10_000,
        )?;
        let lobby_stream_heartbeat = millis(
            "lobby_stream_heartbeat_ms",
            &o.lobby_stream_heartbeat_ms,
            file.lobby_stream_heartbeat_ms,
            15_000,
        )?;
        let lobby_stream_buffer =
            pick(&o.lobby_stream_buffer, file.lobby_stream_buffer).unwrap_or(256);
        if !(1..=65_536).contains(&lobby_stream_buffer) {
            return Err(bad("lobby_stream_buffer", "must be between 1 and 65536"));
        }
        let sample_players = file.sample_players.unwrap_or_default();
        for (i, p) in sample_players.iter().enumerate() {
            if p.user_id.trim().is_empty() || p.username.trim().is_empty() {
                return Err(bad(
                    format!("sample_players[{i}]"),
                    "user_id and username must not be empty",
                ));
            }
        }
        let header_read_timeout = millis(
            "header_read_timeout_ms",
            &o.header_read_timeout_ms,
            file.header_read_timeout_ms,
            10_000,
        )?;
        let max_body_bytes = pick(&o.max_body_bytes, file.max_body_bytes).unwrap_or(64 * 1024);
        if !(1024..=64 * 1024 * 1024).contains(&max_body_bytes) {
            return Err(bad("max_body_bytes", "must be between 1024 and 67108864"));
        }
        let outbox_max_attempts =
            pick(&o.outbox_max_attempts, file.outbox_max_attempts).unwrap_or(10);
        if outbox_max_attempts == 0 {
            return Err(bad("outbox_max_attempts", "must be at least 1"));
        }

        let products = match file.games {
            Some(games) => games
                .into_iter()
                .enumerate()
                .map(|(i, g)| product(i, g))
                .collect::<Result<Vec<_>, _>>()?,
            None => vec![example_product()],
        };
        let mut seen = HashSet::new();
        for p in &products {
            if !seen.insert(p.product_id.as_str()) {
                return Err(bad(
                    "games.product_id",
                    format!("duplicate product id {:?}", p.product_id),
                ));
            }
        }

        Ok(Settings {
            bind,
            database_url,
            database_max_connections,
            secret_key,
            require_token_expiry: pick(&o.require_token_expiry, file.require_token_expiry)
                .unwrap_or(false),
            event_stream_url,
            event_stream_key,
            game_server_timeout: Duration::from_millis(timeout_ms),
            lobby_page_size,
            lobby_max_page_size,
            cors_origins,
            migrate_on_start: pick(&o.migrate_on_start, file.migrate_on_start).unwrap_or(true),
            log_format,
            expiry,
            reaper_interval,
            reservation_timeout,
            outbox_max_attempts,
            outbox_backoff,
            shutdown_timeout,
            lobby_stream_heartbeat,
            lobby_stream_buffer,
            sample_players,
            // Bounded to 64 MiB above, so it fits.
            max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
            header_read_timeout,
            rate_limit_player_per_minute: pick(
                &o.rate_limit_player_per_minute,
                file.rate_limit_player_per_minute,
            )
            .unwrap_or(0),
            rate_limit_ip_per_minute: pick(
                &o.rate_limit_ip_per_minute,
                file.rate_limit_ip_per_minute,
            )
            .unwrap_or(0),
            max_open_games_per_player: pick(
                &o.max_open_games_per_player,
                file.max_open_games_per_player,
            )
            .unwrap_or(3),
            products,
        })
    }

    pub fn product(&self, product_id: &str) -> Option<&Product> {
        self.products.iter().find(|p| p.product_id == product_id)
    }
}

fn pick<T: Clone>(over: &Option<T>, file: Option<T>) -> Option<T> {
    over.clone().or(file)
}

/// The old service's shipped example product.
fn example_product() -> Product {
    let mut settings = Map::new();
    settings.insert("num_players".into(), Value::from(2));
    Product {
        product_id: "exrps".into(),
        game_server_url: "http://game-rps:8080".into(),
        game_socket_url: "rps.varcade.local:8085".into(),
        settings,
        num_players: 2,
        event_key: None,
    }
}

/// Product ids appear in paths and log lines: keep them to a plain alphabet.
pub fn valid_product_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

fn product(index: usize, g: FileGame) -> Result<Product, ConfigError> {
    let key = |field: &str| format!("games[{index}].{field}");
    if !valid_product_id(&g.product_id) {
        return Err(bad(
            key("product_id"),
            format!(
                "{:?} must be 1-64 characters of letters, digits, '-', '_' or '.'",
                g.product_id
            ),
        ));
    }
    let url = reqwest::Url::parse(&g.game_server_url).map_err(|e| {
        bad(
            key("game_server_url"),
            format!("{:?}: {e}", g.game_server_url),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad(
            key("game_server_url"),
            format!("{:?} must be an http:// or https:// URL", g.game_server_url),
        ));
    }
    if g.game_socket_url.is_empty() {
        return Err(bad(key("game_socket_url"), "must not be empty"));
    }
    let num_players = match g.settings.get("num_players") {
        None => 2,
        Some(v) => v
            .as_i64()
            .filter(|n| (2..=1000).contains(n))
            .ok_or_else(|| {
                bad(
                    key("settings.num_players"),
                    format!("{v} must be a whole number from 2 to 1000"),
                )
            })? as i32,
    };
    if let Some(k) = &g.event_key {
        if k.len() < 8 {
            return Err(bad(key("event_key"), "must be at least 8 characters"));
        }
    }
    Ok(Product {
        product_id: g.product_id,
        game_server_url: g.game_server_url.trim_end_matches('/').to_string(),
        game_socket_url: g.game_socket_url,
        settings: g.settings,
        num_players,
        event_key: g.event_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Overrides {
        Overrides {
            database_url: Some("postgres://localhost/db".into()),
            secret_key: Some("s3cret".into()),
            ..Default::default()
        }
    }

    fn err(toml: &str) -> String {
        Settings::from_toml(toml, &base()).unwrap_err().to_string()
    }

    #[test]
    fn defaults_give_the_example_product() {
        let s = Settings::from_toml("", &base()).unwrap();
        assert_eq!(s.bind.to_string(), "0.0.0.0:5050");
        assert_eq!(s.products.len(), 1);
        assert_eq!(s.products[0].product_id, "exrps");
        assert_eq!(s.products[0].num_players, 2);
        assert_eq!((s.lobby_page_size, s.lobby_max_page_size), (10, 25));
    }

    #[test]
    fn overrides_win_over_the_file() {
        let mut o = base();
        o.bind = Some("127.0.0.1:7000".into());
        let s = Settings::from_toml("bind = \"127.0.0.1:6000\"", &o).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:7000");
    }

    #[test]
    fn bad_configurations_name_the_key() {
        assert!(err("colour = 1").contains("unknown field `colour`"));
        assert!(
            Settings::from_toml("", &Overrides::default())
                .unwrap_err()
                .to_string()
                .contains("database_url")
        );
        let mut no_secret = base();
        no_secret.secret_key = None;
        assert!(
            Settings::from_toml("", &no_secret)
                .unwrap_err()
                .to_string()
                .contains("secret_key")
        );
        let game = |extra: &str| {
            format!(
                "[[games]]\nproduct_id = \"a\"\ngame_server_url = \"http://x:1\"\ngame_socket_url = \"x:2\"\n{extra}"
            )
        };
        assert!(err(&format!("{}\n{}", game(""), game(""))).contains("duplicate product id"));
        assert!(
            err(&game("settings = { num_players = 1 }")).contains("games[0].settings.num_players")
        );
        assert!(
            err(&game("").replace("http://x:1", "not a url")).contains("games[0].game_server_url")
        );
        assert!(err("bind = \"nowhere\"").contains("bind"));
    }
}
