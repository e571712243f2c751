//! Settings, in layers: built-in defaults < TOML file < environment < command line.
//!
//! `figment` merges the layers and deserializes the result straight into [`Settings`], so a
//! setting is written down in three places: its flag and environment variable ([`Overrides`],
//! which is what `matchmaker --help` prints), its field in [`Settings`] (with the rule that
//! checks it), and its default in `DEFAULTS`. A test holds the help text to the other two.
//! clap reads the environment, so flags win over variables; both win over the file.
//!
//! Validation happens once, here, so the rest of the code can trust `Settings`. Every problem
//! names its TOML key (`games[0].settings.num_players`), whichever layer the value came from.

use std::{collections::HashSet, net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, builder::BoolishValueParser};
use figment::{
    Figment, Metadata, Profile, Provider,
    error::Kind,
    providers::{Format, Toml},
    value::{Dict, Value as Layered},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::fleet::InstanceSpec;
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
///
/// Serialized, a field's name is its TOML key (a dot nests it); unset fields leave the lower
/// layers alone.
#[derive(Args, Default, Serialize)]
pub struct Overrides {
    /// TOML configuration file.
    #[arg(long = "config", env = "MATCHMAKER_CONFIG", global = true)]
    #[serde(skip)]
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
    #[serde(rename = "expiry.created")]
    pub expiry_created: Option<u64>,
    /// Seconds a game may stay `creator_joined` without a change [toml: expiry.creator_joined] [default: 60]
    #[arg(long, env = "MATCHMAKER_EXPIRY__CREATOR_JOINED", global = true)]
    #[serde(rename = "expiry.creator_joined")]
    pub expiry_creator_joined: Option<u64>,
    /// Seconds a game may stay `all_players_joined` [toml: expiry.all_players_joined] [default: 600]
    #[arg(long, env = "MATCHMAKER_EXPIRY__ALL_PLAYERS_JOINED", global = true)]
    #[serde(rename = "expiry.all_players_joined")]
    pub expiry_all_players_joined: Option<u64>,
    /// Seconds a game may stay `in_progress` [toml: expiry.in_progress] [default: 1200]
    #[arg(long, env = "MATCHMAKER_EXPIRY__IN_PROGRESS", global = true)]
    #[serde(rename = "expiry.in_progress")]
    pub expiry_in_progress: Option<u64>,
    /// Seconds a game may stay `ended` [toml: expiry.ended] [default: 300]
    #[arg(long, env = "MATCHMAKER_EXPIRY__ENDED", global = true)]
    #[serde(rename = "expiry.ended")]
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
    /// Serve the open-games list from this process's memory, kept in step by the database's notifications [toml: lobby_cache] [default: true]
    #[arg(long, env = "MATCHMAKER_LOBBY_CACHE", global = true, value_parser = BoolishValueParser::new())]
    pub lobby_cache: Option<bool>,
    /// Live-lobby streams one process serves at once; beyond it the stream route answers 503; 0 = no cap [toml: lobby_stream_max] [default: 1000]
    #[arg(long, env = "MATCHMAKER_LOBBY_STREAM_MAX", global = true)]
    pub lobby_stream_max: Option<usize>,
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
    /// Time without a heartbeat after which a registered game-server instance is lost, in ms [toml: instance_timeout_ms] [default: 10000]
    #[arg(long, env = "MATCHMAKER_INSTANCE_TIMEOUT_MS", global = true)]
    pub instance_timeout_ms: Option<u64>,
    /// How long a game-server instance that keeps failing gets no new games before a probe, in ms [toml: breaker_open_ms] [default: 5000]
    #[arg(long, env = "MATCHMAKER_BREAKER_OPEN_MS", global = true)]
    pub breaker_open_ms: Option<u64>,
    /// Log format, `text` or `json` [toml: log_format] [default: text]
    #[arg(long, env = "MATCHMAKER_LOG_FORMAT", global = true)]
    pub log_format: Option<String>,
}

// Secrets never reach a log line, not even through `{:?}`.
impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overrides")
            .field("config", &self.config)
            .field("bind", &self.bind)
            .finish_non_exhaustive()
    }
}

/// Validated settings: the layers merged, then deserialized. A field's TOML key is its name
/// unless it says otherwise; `rule::…` is what a value must satisfy. Build it with
/// [`Settings::load`] or [`Settings::from_toml`], which also check the rules between fields.
/// Secrets never reach a log line, not even through `{:?}`.
#[derive(Clone, Deserialize, derive_more::Debug)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(deserialize_with = "rule::address")]
    pub bind: SocketAddr,
    #[serde(deserialize_with = "rule::postgres_url")]
    #[debug("<redacted>")]
    pub database_url: String,
    #[serde(deserialize_with = "rule::at_least::<2, _, _>")]
    pub database_max_connections: u32,
    #[serde(deserialize_with = "rule::required")]
    #[debug("<redacted>")]
    pub secret_key: String,
    pub require_token_expiry: bool,
    #[serde(default, deserialize_with = "rule::redis_url")]
    #[debug("{:?}", event_stream_url.as_ref().map(|_| "<redacted>"))]
    pub event_stream_url: Option<String>,
    #[serde(deserialize_with = "rule::non_empty")]
    pub event_stream_key: String,
    #[serde(rename = "game_server_timeout_ms", deserialize_with = "rule::millis")]
    pub game_server_timeout: Duration,
    /// At most `lobby_max_page_size` (checked after deserializing).
    pub lobby_page_size: u32,
    #[serde(deserialize_with = "rule::between::<1, 1000, _, _>")]
    pub lobby_max_page_size: u32,
    /// Empty means any origin.
    #[serde(deserialize_with = "rule::origins")]
    pub cors_origins: Vec<String>,
    pub migrate_on_start: bool,
    #[serde(deserialize_with = "rule::log_format")]
    pub log_format: LogFormat,
    #[serde(with = "ExpirySecs")]
    pub expiry: Expiry,
    #[serde(rename = "reaper_interval_ms", deserialize_with = "rule::millis")]
    pub reaper_interval: Duration,
    /// Longer than `game_server_timeout` (checked after deserializing).
    #[serde(rename = "reservation_timeout_ms", deserialize_with = "rule::millis")]
    pub reservation_timeout: Duration,
    #[serde(deserialize_with = "rule::at_least::<1, _, _>")]
    pub outbox_max_attempts: u32,
    #[serde(rename = "outbox_backoff_ms", deserialize_with = "rule::millis")]
    pub outbox_backoff: Duration,
    #[serde(rename = "shutdown_timeout_ms", deserialize_with = "rule::millis")]
    pub shutdown_timeout: Duration,
    #[serde(
        rename = "lobby_stream_heartbeat_ms",
        deserialize_with = "rule::millis"
    )]
    pub lobby_stream_heartbeat: Duration,
    #[serde(deserialize_with = "rule::between::<1, 65_536, _, _>")]
    pub lobby_stream_buffer: usize,
    #[serde(deserialize_with = "rule::between::<0, 1_000_000, _, _>")]
    pub lobby_stream_max: usize,
    pub lobby_cache: bool,
    /// Players the lobby page offers tokens for; empty outside development.
    pub sample_players: Vec<SamplePlayer>,
    #[serde(deserialize_with = "rule::between::<1024, 67_108_864, _, _>")]
    pub max_body_bytes: usize,
    #[serde(rename = "header_read_timeout_ms", deserialize_with = "rule::millis")]
    pub header_read_timeout: Duration,
    /// Per-minute quotas of creates and joins; 0 = off.
    pub rate_limit_player_per_minute: u32,
    pub rate_limit_ip_per_minute: u32,
    /// 0 = no limit.
    pub max_open_games_per_player: u32,
    #[serde(rename = "instance_timeout_ms", deserialize_with = "rule::millis")]
    pub instance_timeout: Duration,
    #[serde(rename = "breaker_open_ms", deserialize_with = "rule::millis")]
    pub breaker_open: Duration,
    /// The `[[games]]` tables; product ids are unique (checked after deserializing).
    #[serde(rename = "games", deserialize_with = "rule::products")]
    pub products: Vec<Product>,
}

/// The lowest layer: every default, spelled as the TOML file would spell it. `database_url`
/// and `secret_key` have none; `event_stream_url` is off unless set.
const DEFAULTS: &str = r#"
bind = "0.0.0.0:5050"
database_max_connections = 16
require_token_expiry = false
event_stream_key = "game_event_stream"
game_server_timeout_ms = 5000
lobby_page_size = 10
lobby_max_page_size = 25
cors_origins = []
migrate_on_start = true
log_format = "text"
reaper_interval_ms = 1000
reservation_timeout_ms = 15000
outbox_max_attempts = 10
outbox_backoff_ms = 500
shutdown_timeout_ms = 10000
lobby_stream_heartbeat_ms = 15000
lobby_stream_buffer = 256
lobby_stream_max = 1000
lobby_cache = true
sample_players = []
max_body_bytes = 65536
header_read_timeout_ms = 10000
rate_limit_player_per_minute = 0
rate_limit_ip_per_minute = 0
max_open_games_per_player = 3
instance_timeout_ms = 10000
breaker_open_ms = 5000

[expiry]
created = 60
creator_joined = 60
all_players_joined = 600
in_progress = 1200
ended = 300

# The old service's shipped example product. A file's own [[games]] replace it.
[[games]]
product_id = "exrps"
game_server_url = "http://game-rps:8080"
game_socket_url = "rps.varcade.local:8085"
settings = { num_players = 2 }
"#;

/// A player the lobby page at `/` offers ready-made tokens for (development only: anyone who
/// can load the page can act as these players).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SamplePlayer {
    pub user_id: String,
    pub username: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Product ids appear in paths and log lines: keep them to a plain alphabet.
pub fn valid_product_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// The `[expiry]` table: whole seconds per state.
#[derive(Deserialize)]
#[serde(remote = "Expiry", deny_unknown_fields)]
struct ExpirySecs {
    #[serde(deserialize_with = "rule::seconds")]
    created: Duration,
    #[serde(deserialize_with = "rule::seconds")]
    creator_joined: Duration,
    #[serde(deserialize_with = "rule::seconds")]
    all_players_joined: Duration,
    #[serde(deserialize_with = "rule::seconds")]
    in_progress: Duration,
    #[serde(deserialize_with = "rule::seconds")]
    ended: Duration,
}

/// One `[[games]]` table, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Game {
    #[serde(deserialize_with = "rule::product_id")]
    product_id: String,
    /// With `game_socket_url`: the product's single game server (a fleet of one).
    #[serde(default, deserialize_with = "rule::optional_http_url")]
    game_server_url: Option<String>,
    #[serde(default, deserialize_with = "rule::optional_non_empty")]
    game_socket_url: Option<String>,
    /// Or a fleet (docs/fleets.md); neither: instances register themselves.
    #[serde(default)]
    servers: Vec<Server>,
    #[serde(default)]
    settings: GameSettings,
    #[serde(default, deserialize_with = "rule::event_key")]
    event_key: Option<String>,
}

/// One `[[games.servers]]` table: a configured instance.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Server {
    #[serde(deserialize_with = "rule::instance_id")]
    id: String,
    #[serde(deserialize_with = "rule::http_url")]
    url: String,
    #[serde(deserialize_with = "rule::non_empty")]
    socket_url: String,
    #[serde(deserialize_with = "rule::between::<1, 1_000_000, _, _>")]
    capacity: u32,
    #[serde(default, deserialize_with = "rule::region")]
    region: Option<String>,
}

/// A game's `settings`: free-form, passed to the game server as written; the matchmaker reads
/// only `num_players`.
#[derive(Default, Deserialize)]
struct GameSettings {
    #[serde(default, deserialize_with = "rule::num_players")]
    num_players: Option<i32>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

impl TryFrom<Game> for Product {
    type Error = String;

    /// The instances: the single game server, or `servers`, never both.
    fn try_from(game: Game) -> Result<Self, String> {
        let GameSettings {
            num_players,
            rest: mut settings,
        } = game.settings;
        if let Some(n) = num_players {
            settings.insert("num_players".into(), n.into());
        }
        let (single, servers) = match (game.game_server_url, game.game_socket_url) {
            (Some(url), Some(socket_url)) if game.servers.is_empty() => {
                (Some((url, socket_url)), Vec::new())
            }
            (None, None) => {
                let mut ids = HashSet::new();
                for s in &game.servers {
                    if !ids.insert(s.id.as_str()) {
                        return Err(format!("servers: duplicate instance id {:?}", s.id));
                    }
                }
                let servers = game
                    .servers
                    .into_iter()
                    .map(|s| InstanceSpec {
                        id: s.id,
                        url: s.url,
                        socket_url: s.socket_url,
                        capacity: Some(s.capacity),
                        region: s.region,
                    })
                    .collect();
                (None, servers)
            }
            (Some(_), Some(_)) => {
                return Err(
                    "give either game_server_url and game_socket_url (one game server) or [[games.servers]], not both"
                        .into(),
                );
            }
            _ => {
                return Err(
                    "game_server_url and game_socket_url go together: give both or neither".into(),
                );
            }
        };
        let (game_server_url, game_socket_url) = single.unwrap_or_default();
        Ok(Product {
            product_id: game.product_id,
            game_server_url,
            game_socket_url,
            servers,
            settings,
            num_players: num_players.unwrap_or(2),
            event_key: game.event_key,
        })
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
        let Some(path) = &overrides.config else {
            return Self::extract(layers(None, overrides));
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad("config", format!("cannot read {}: {e}", path.display())))?;
        Self::extract(layers(
            Some((&path.display().to_string(), &text)),
            overrides,
        ))
    }

    /// Settings from TOML text and overrides (tests use this directly).
    pub fn from_toml(text: &str, overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::extract(layers(Some(("the configuration text", text)), overrides))
    }

    pub fn product(&self, product_id: &str) -> Option<&Product> {
        self.products.iter().find(|p| p.product_id == product_id)
    }

    fn extract(layers: Figment) -> Result<Self, ConfigError> {
        layers
            .extract::<Self>()
            .map_err(|e| config_error(&layers, e))?
            .check()
    }

    /// The rules that involve more than one value.
    fn check(self) -> Result<Self, ConfigError> {
        if self.lobby_page_size == 0 || self.lobby_page_size > self.lobby_max_page_size {
            return Err(bad(
                "lobby_page_size",
                "must be between 1 and lobby_max_page_size",
            ));
        }
        if self.reservation_timeout <= self.game_server_timeout {
            return Err(bad(
                "reservation_timeout_ms",
                "must be longer than game_server_timeout_ms (a join in flight must not lose its seat)",
            ));
        }
        for (i, p) in self.sample_players.iter().enumerate() {
            if p.user_id.trim().is_empty() || p.username.trim().is_empty() {
                return Err(bad(
                    format!("sample_players[{i}]"),
                    "user_id and username must not be empty",
                ));
            }
        }
        let mut seen = HashSet::new();
        for p in &self.products {
            if !seen.insert(p.product_id.as_str()) {
                return Err(bad(
                    "games.product_id",
                    format!("duplicate product id {:?}", p.product_id),
                ));
            }
        }
        Ok(self)
    }
}

/// Built-in defaults < the file (its name and text) < command line and environment.
fn layers(file: Option<(&str, &str)>, overrides: &Overrides) -> Figment {
    let mut layers = Figment::from(Named("the built-in defaults", Toml::string(DEFAULTS)));
    if let Some((name, text)) = file {
        layers = layers.merge(Named(name, Toml::string(text)));
    }
    layers.merge(Given(overrides))
}

/// A provider under a name of our choosing, for the "(in …)" of error messages.
struct Named<'a, P>(&'a str, P);

impl<P: Provider> Provider for Named<'_, P> {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.0.to_string())
    }

    fn data(&self) -> figment::Result<figment::value::Map<Profile, Dict>> {
        self.1.data()
    }
}

/// The flags and environment variables that were given, each at its TOML key path.
struct Given<'a>(&'a Overrides);

impl Provider for Given<'_> {
    fn metadata(&self) -> Metadata {
        Metadata::named("the command line or environment")
    }

    fn data(&self) -> figment::Result<figment::value::Map<Profile, Dict>> {
        let mut given = Dict::new();
        for (key, value) in Layered::serialize(self.0)?.into_dict().unwrap_or_default() {
            // Not given: the lower layers decide.
            if !matches!(value, Layered::Empty(..)) {
                insert(&mut given, &key, value);
            }
        }
        Ok(Profile::Default.collect(given))
    }
}

/// Puts `value` at the dotted key `path` of `dict`.
fn insert(dict: &mut Dict, path: &str, value: Layered) {
    match path.split_once('.') {
        None => {
            dict.insert(path.into(), value);
        }
        Some((head, rest)) => {
            let inner = dict
                .entry(head.into())
                .or_insert_with(|| Dict::new().into());
            if let Layered::Dict(_, inner) = inner {
                insert(inner, rest, value);
            }
        }
    }
}

/// The problem `rule::required` reports; [`config_error`] adds where to set the value.
const MISSING: &str = "missing";

/// figment's error, as "key: problem (in source)", the key written as the TOML file writes it.
fn config_error(layers: &Figment, e: figment::Error) -> ConfigError {
    let mut path = e.path.clone();
    let problem = match &e.kind {
        Kind::UnknownField(field, expected) => {
            let expected: Vec<String> = expected.iter().map(|f| format!("`{f}`")).collect();
            format!(
                "unknown field `{field}`, expected one of {}",
                expected.join(", ")
            )
        }
        Kind::MissingField(field) => {
            path.push(field.to_string());
            MISSING.into()
        }
        // (A TOML syntax error ends in a newline.)
        kind => kind.to_string().trim_end().to_string(),
    };
    let mut key = String::new();
    for part in &path {
        if part.parse::<usize>().is_ok() {
            key.push_str(&format!("[{part}]"));
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(part);
        }
    }
    if key.is_empty() {
        key = "config".into();
    }
    // A rule's own error carries no source; the layer that supplied the value tells it.
    let source = e.metadata.clone().or_else(|| source_of(layers, &path));
    let problem = match (problem.as_str(), source) {
        (MISSING, _) => match env_of(&key) {
            Some(env) => format!("{MISSING} (set {env})"),
            None => MISSING.into(),
        },
        (_, Some(source)) => format!("{problem} (in {})", source.name),
        (_, None) => problem,
    };
    bad(key, problem)
}

/// The layer the merged value at `path` came from.
fn source_of(layers: &Figment, path: &[String]) -> Option<Metadata> {
    let mut value = layers.find_value("").ok()?;
    for part in path {
        value = match value {
            Layered::Dict(_, mut dict) => dict.remove(part)?,
            Layered::Array(_, mut items) => {
                let i: usize = part.parse().ok()?;
                (i < items.len()).then(|| items.swap_remove(i))?
            }
            _ => return None,
        };
    }
    layers.get_metadata(value.tag()).cloned()
}

/// The environment variable of a top-level setting, as `--help` shows it.
fn env_of(key: &str) -> Option<String> {
    Overrides::augment_args(clap::Command::new("matchmaker"))
        .get_arguments()
        .find(|arg| arg.get_id() == key)
        .and_then(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
}

/// What a single value must satisfy, one deserializer each. figment names the key on error.
mod rule {
    use std::{net::SocketAddr, time::Duration};

    use serde::{Deserialize, Deserializer, de::Error};
    use serde_json::Value;

    use super::{Game, LogFormat, MISSING, Product, valid_product_id};

    pub fn at_least<'de, const MIN: u64, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: TryFrom<u64>,
    {
        let n = u64::deserialize(d)?;
        if n < MIN {
            return Err(D::Error::custom(format!("must be at least {MIN}")));
        }
        T::try_from(n).map_err(|_| D::Error::custom(format!("{n} is too large")))
    }

    pub fn between<'de, const MIN: u64, const MAX: u64, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: TryFrom<u64>,
    {
        let n = u64::deserialize(d)?;
        if !(MIN..=MAX).contains(&n) {
            return Err(D::Error::custom(format!("must be between {MIN} and {MAX}")));
        }
        T::try_from(n).map_err(|_| D::Error::custom(format!("{n} is too large")))
    }

    /// Whole milliseconds, at least 1.
    pub fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        at_least::<1, D, u64>(d).map(Duration::from_millis)
    }

    /// Whole seconds, at least 1.
    pub fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match u64::deserialize(d)? {
            0 => Err(D::Error::custom("must be at least 1 second")),
            secs => Ok(Duration::from_secs(secs)),
        }
    }

    pub fn address<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|e| D::Error::custom(format!("{text:?} is not an address:port ({e})")))
    }

    /// Not empty; an empty value counts as unset.
    pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Err(D::Error::custom(MISSING));
        }
        Ok(text)
    }

    pub fn postgres_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let url = required(d)?;
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(D::Error::custom(
                "must be a postgres:// or postgresql:// URL",
            ));
        }
        Ok(url)
    }

    pub fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Err(D::Error::custom("must not be empty"));
        }
        Ok(text)
    }

    /// A Redis URL with database number; empty = unset.
    pub fn redis_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let url = Option::<String>::deserialize(d)?.filter(|s| !s.is_empty());
        if let Some(url) = &url {
            if redis::parse_redis_url(url).is_none() {
                return Err(D::Error::custom(
                    "not a redis:// URL (e.g. redis://host:6379/1)",
                ));
            }
        }
        Ok(url)
    }

    /// CORS origins; blank entries are dropped (so `""` from the environment means any).
    pub fn origins<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let origins: Vec<String> = Vec::<String>::deserialize(d)?
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        for origin in &origins {
            let looks_right = origin == "*"
                || ((origin.starts_with("http://") || origin.starts_with("https://"))
                    && origin.bytes().all(|b| b.is_ascii_graphic()));
            if !looks_right {
                return Err(D::Error::custom(format!(
                    "{origin:?} is not an origin like https://portal.example.com"
                )));
            }
        }
        Ok(origins)
    }

    pub fn log_format<'de, D: Deserializer<'de>>(d: D) -> Result<LogFormat, D::Error> {
        match String::deserialize(d)?.as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(D::Error::custom(format!(
                "{other:?} is neither \"text\" nor \"json\""
            ))),
        }
    }

    pub fn products<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Product>, D::Error> {
        let games = Vec::<Game>::deserialize(d)?;
        games
            .into_iter()
            .enumerate()
            .map(|(i, g)| {
                Product::try_from(g).map_err(|e| D::Error::custom(format!("games[{i}]: {e}")))
            })
            .collect()
    }

    pub fn instance_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let id = String::deserialize(d)?;
        if !crate::domain::fleet::valid_instance_id(&id) {
            return Err(D::Error::custom(format!(
                "{id:?} must be 1-100 characters of letters, digits, '-', '_' or '.'"
            )));
        }
        Ok(id)
    }

    pub fn region<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let region = Option::<String>::deserialize(d)?;
        if let Some(r) = &region {
            crate::domain::fleet::check_region(r).map_err(D::Error::custom)?;
        }
        Ok(region)
    }

    pub fn optional_http_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        http_url(d).map(Some)
    }

    pub fn optional_non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        non_empty(d).map(Some)
    }

    pub fn product_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let id = String::deserialize(d)?;
        if !valid_product_id(&id) {
            return Err(D::Error::custom(format!(
                "{id:?} must be 1-64 characters of letters, digits, '-', '_' or '.'"
            )));
        }
        Ok(id)
    }

    /// An http(s) URL with a host, without the trailing slash.
    pub fn http_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let text = String::deserialize(d)?;
        let url =
            reqwest::Url::parse(&text).map_err(|e| D::Error::custom(format!("{text:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(D::Error::custom(format!(
                "{text:?} must be an http:// or https:// URL"
            )));
        }
        Ok(text.trim_end_matches('/').to_string())
    }

    pub fn event_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let key = Option::<String>::deserialize(d)?;
        if key.as_ref().is_some_and(|k| k.len() < 8) {
            return Err(D::Error::custom("must be at least 8 characters"));
        }
        Ok(key)
    }

    pub fn num_players<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
        let v = Value::deserialize(d)?;
        v.as_i64()
            .filter(|n| (2..=1000).contains(n))
            .and_then(|n| i32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("{v} must be a whole number from 2 to 1000")))
    }
}

#[cfg(test)]
// figment's `Jail` takes closures that return `figment::Result`, whose error is large.
#[allow(clippy::result_large_err)]
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

    #[test]
    fn bad_values_name_their_key_and_where_they_came_from() {
        let e = err("lobby_page_size = \"ten\"");
        assert!(e.contains("lobby_page_size: invalid type"), "{e}");
        assert!(e.contains("(in the configuration text)"), "{e}");
        assert!(
            err("reservation_timeout_ms = 5000").contains("reservation_timeout_ms: must be longer")
        );
        assert!(err("[expiry]\ncreated = 0").contains("expiry.created: must be at least 1 second"));
        assert!(
            err("max_body_bytes = 10")
                .contains("max_body_bytes: must be between 1024 and 67108864")
        );
        assert!(err("log_format = \"xml\"").contains("log_format: \"xml\" is neither"));
        assert!(
            err("cors_origins = [\"portal\"]")
                .contains("cors_origins: \"portal\" is not an origin")
        );
        assert!(
            err("event_stream_url = \"http://x\"").contains("event_stream_url: not a redis:// URL")
        );
        assert!(
            err("[[sample_players]]\nuser_id = \"\"\nusername = \"A\"")
                .contains("sample_players[0]")
        );
        let mut o = base();
        o.lobby_stream_buffer = Some(0);
        let e = Settings::from_toml("", &o).unwrap_err().to_string();
        assert!(
            e.contains("lobby_stream_buffer: must be between 1 and 65536 (in the command line or environment)"),
            "{e}"
        );
        o = base();
        o.database_url = Some("mysql://x/db".into());
        let e = Settings::from_toml("", &o).unwrap_err().to_string();
        assert!(e.contains("database_url: must be a postgres://"), "{e}");
        o.database_url = Some(String::new());
        let e = Settings::from_toml("", &o).unwrap_err().to_string();
        assert_eq!(e, "configuration: database_url: missing (set DATABASE_URL)");
        let e = Settings::from_toml(
            "",
            &Overrides {
                secret_key: None,
                ..base()
            },
        )
        .unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.problem.as_str()),
            ("secret_key", "missing (set MATCHMAKER_SECRET_KEY)")
        );
        let e = err("bind = ");
        assert!(
            e.starts_with("configuration: config: TOML parse error"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_are_refused_at_every_level() {
        let e = err("colour = 1");
        assert!(
            e.starts_with("configuration: colour: unknown field `colour`, expected one of `bind`"),
            "{e}"
        );
        assert!(err("config = \"x.toml\"").contains("unknown field `config`"));
        assert!(err("[expiry]\ncolour = 1").contains("expiry.colour: unknown field `colour`"));
        assert!(
            err("[[games]]\nproduct_id = \"a\"\ngame_server_url = \"http://x:1\"\ngame_socket_url = \"x:2\"\ncolour = 1")
                .contains("games[0].colour: unknown field `colour`")
        );
        // The overrides use the same names, so none of them is unknown.
        let all = Cli::try_parse_from([
            "matchmaker",
            "--expiry-created",
            "5",
            "--cors-origins",
            "https://a.example",
            "--log-format",
            "json",
            "--require-token-expiry",
            "yes",
            "--max-body-bytes",
            "2048",
        ])
        .unwrap();
        let s = Settings::from_toml(
            "",
            &Overrides {
                database_url: base().database_url,
                secret_key: base().secret_key,
                ..all.overrides
            },
        )
        .unwrap();
        assert_eq!(s.expiry.created, Duration::from_secs(5));
        assert_eq!(s.log_format, LogFormat::Json);
    }

    #[test]
    fn a_file_replaces_the_example_games_and_merges_tables() {
        let s = Settings::from_toml(
            "[expiry]\ncreated = 5\n[[games]]\nproduct_id = \"quad\"\ngame_server_url = \"http://x:1/\"\ngame_socket_url = \"x:2\"\nsettings = { num_players = 4, mode = \"ranked\" }\nevent_key = \"12345678\"",
            &base(),
        )
        .unwrap();
        assert_eq!(s.expiry.created, Duration::from_secs(5));
        assert_eq!(s.expiry.ended, Duration::from_secs(300));
        assert_eq!(s.products.len(), 1);
        let p = s.product("quad").unwrap();
        assert_eq!(
            (p.num_players, p.game_server_url.as_str()),
            (4, "http://x:1")
        );
        assert_eq!(
            p.settings,
            serde_json::json!({"num_players": 4, "mode": "ranked"})
                .as_object()
                .cloned()
                .unwrap()
        );
        assert!(
            Settings::from_toml("games = []", &base())
                .unwrap()
                .products
                .is_empty()
        );
    }

    #[test]
    fn the_shipped_files_load() {
        for text in [
            include_str!("../config/dev.toml"),
            include_str!("../config/docker.toml"),
        ] {
            let s = Settings::from_toml(text, &base()).unwrap();
            assert_eq!(s.products[0].product_id, "exrps");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let o = Overrides {
            database_url: Some("postgres://user:hunter2-db@host/db".into()),
            secret_key: Some("hunter2-key".into()),
            event_stream_url: Some("redis://:hunter2-redis@host:6379/1".into()),
            ..Default::default()
        };
        let game = "[[games]]\nproduct_id = \"a\"\ngame_server_url = \"http://x:1\"\ngame_socket_url = \"x:2\"\nevent_key = \"hunter2-event\"";
        let s = Settings::from_toml(game, &o).unwrap();
        let printed = format!("{s:?} {o:?} {:#?}", s.clone());
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(
            printed.contains("bind: 0.0.0.0:5050") && printed.contains("<redacted>"),
            "{printed}"
        );
    }

    /// `--help` is the list of settings: each flag names its TOML key and default, and those
    /// must be the ones `Settings` reads and `DEFAULTS` holds.
    #[test]
    fn help_lists_every_setting_with_its_key_and_default() {
        use clap::CommandFactory;
        let defaults = Figment::from(Toml::string(DEFAULTS));
        let mut in_help = std::collections::BTreeSet::new();
        for arg in Cli::command().get_arguments() {
            let id = arg.get_id().as_str();
            if ["config", "help", "version"].contains(&id) {
                continue;
            }
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let tag = |name: &str| {
                let start = help.find(&format!("[{name}: "))? + name.len() + 3;
                Some(help[start..start + help[start..].find(']')?].to_string())
            };
            let key = tag("toml").unwrap_or_else(|| panic!("--{id} names no [toml: key]"));
            assert!(
                arg.get_env().is_some(),
                "--{id} has no environment variable"
            );
            match (tag("default").as_deref(), defaults.find_value(&key)) {
                (Some("any"), Ok(Layered::Array(_, a))) => assert!(a.is_empty()),
                (Some(doc), Ok(value)) => {
                    let value = match value {
                        Layered::String(_, s) => s,
                        Layered::Bool(_, b) => b.to_string(),
                        Layered::Num(_, n) => n.to_i128().unwrap().to_string(),
                        other => panic!("{key}: {other:?}"),
                    };
                    assert_eq!(
                        doc, value,
                        "--{id}: [default: {doc}] but DEFAULTS has {value}"
                    );
                }
                (None, Ok(value)) => {
                    panic!("--{id}: no [default] in the help, DEFAULTS has {value:?}")
                }
                (Some(doc), Err(_)) => panic!("--{id}: [default: {doc}] but none in DEFAULTS"),
                (None, Err(_)) => {}
            }
            in_help.insert(key);
        }
        // The keys the overrides layer writes are the keys the help names…
        let written: std::collections::BTreeSet<String> = Layered::serialize(Overrides::default())
            .unwrap()
            .into_dict()
            .unwrap()
            .into_keys()
            .collect();
        assert_eq!(in_help, written);
        // …and all of Settings' keys but the file-only tables.
        let e = layers(Some(("probe", "probe = 1")), &base())
            .extract::<Settings>()
            .unwrap_err();
        let Kind::UnknownField(_, fields) = e.kind else {
            panic!("{e}")
        };
        let mut fields: std::collections::BTreeSet<&str> = fields.iter().copied().collect();
        fields.retain(|f| !["games", "sample_players"].contains(f));
        let top: std::collections::BTreeSet<&str> = in_help
            .iter()
            .map(|k| k.split('.').next().unwrap())
            .collect();
        assert_eq!(fields, top);
    }

    /// What `main` does: clap reads flags and environment, then `load` reads the file.
    fn from_cli(args: &[&str]) -> Result<Settings, String> {
        let cli = Cli::try_parse_from(std::iter::once("matchmaker").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        Settings::load(&cli.overrides).map_err(|e| e.to_string())
    }

    /// A jail with only the required variables set and a config file `m.toml` in its directory.
    fn jail(jail: &mut figment::Jail, file: &str) -> figment::Result<()> {
        jail.clear_env();
        jail.set_env("DATABASE_URL", "postgres://localhost/db");
        jail.set_env("MATCHMAKER_SECRET_KEY", "s3cret");
        jail.create_file("m.toml", file)?;
        Ok(())
    }

    #[test]
    fn environment_wins_over_the_file_and_flags_over_the_environment() {
        figment::Jail::expect_with(|j| {
            jail(j, "bind = \"127.0.0.1:6000\"\nlobby_page_size = 5")?;
            let s = from_cli(&["--config", "m.toml"])?;
            assert_eq!(s.bind.to_string(), "127.0.0.1:6000");
            j.set_env("MATCHMAKER_BIND", "127.0.0.1:7000");
            let s = from_cli(&["--config", "m.toml"])?;
            assert_eq!(s.bind.to_string(), "127.0.0.1:7000");
            assert_eq!(s.lobby_page_size, 5);
            let s = from_cli(&["--config", "m.toml", "--bind", "127.0.0.1:8000"])?;
            assert_eq!(s.bind.to_string(), "127.0.0.1:8000");
            // The file may come from MATCHMAKER_CONFIG too; a missing one is an error.
            j.set_env("MATCHMAKER_CONFIG", "m.toml");
            assert_eq!(from_cli(&[])?.lobby_page_size, 5);
            let e = from_cli(&["--config", "nowhere.toml"]).unwrap_err();
            assert!(
                e.starts_with("configuration: config: cannot read nowhere.toml"),
                "{e}"
            );
            Ok(())
        });
    }

    #[test]
    fn environment_values_are_parsed_like_flags() {
        figment::Jail::expect_with(|j| {
            jail(
                j,
                "migrate_on_start = false\nrequire_token_expiry = true\n[expiry]\ncreated = 7\nended = 8",
            )?;
            for (text, value) in [
                ("true", true),
                ("yes", true),
                ("1", true),
                ("false", false),
                ("no", false),
                ("0", false),
            ] {
                j.set_env("MATCHMAKER_MIGRATE_ON_START", text);
                j.set_env("MATCHMAKER_REQUIRE_TOKEN_EXPIRY", text);
                let s = from_cli(&["--config", "m.toml"])?;
                assert_eq!(
                    (s.migrate_on_start, s.require_token_expiry),
                    (value, value),
                    "{text}"
                );
            }
            j.set_env(
                "MATCHMAKER_CORS_ORIGINS",
                "https://a.example, https://b.example",
            );
            j.set_env("MATCHMAKER_EXPIRY__CREATED", "30");
            let s = from_cli(&["--config", "m.toml"])?;
            assert_eq!(s.cors_origins, ["https://a.example", "https://b.example"]);
            assert_eq!(s.expiry.created, Duration::from_secs(30));
            assert_eq!(s.expiry.ended, Duration::from_secs(8));
            assert_eq!(s.expiry.in_progress, Duration::from_secs(1200));
            j.set_env("MATCHMAKER_EXPIRY__CREATED", "0");
            let e = from_cli(&["--config", "m.toml"]).unwrap_err();
            assert!(
                e.contains(
                    "expiry.created: must be at least 1 second (in the command line or environment)"
                ),
                "{e}"
            );
            j.set_env("MATCHMAKER_EXPIRY__CREATED", "soon");
            assert!(from_cli(&[]).unwrap_err().contains("--expiry-created"));
            Ok(())
        });
    }

    #[test]
    fn other_programs_variables_are_left_alone() {
        figment::Jail::expect_with(|j| {
            jail(j, "")?;
            j.set_env("MATCHMAKER_REQUIRE_BROWSER", "1");
            j.set_env("MATCHMAKER_BIN", "target/debug/matchmaker");
            j.set_env("MATCHMAKER_COLOUR", "blue");
            from_cli(&[])?;
            Ok(())
        });
    }
}
