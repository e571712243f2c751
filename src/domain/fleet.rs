//! A product's fleet: the game-server instances its games are placed on (docs/fleets.md).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{LobbyError, Product};

/// Longest instance id, region and URL accepted.
const MAX_ID: usize = 100;
const MAX_REGION: usize = 64;
const MAX_URL: usize = 2048;
/// Largest capacity one instance may declare.
pub const MAX_CAPACITY: u32 = 1_000_000;

/// An instance as the configuration or a registration describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    pub id: String,
    /// Base URL of its four calls.
    pub url: String,
    /// Where players connect (`target_game_server`).
    pub socket_url: String,
    /// Games at once; `None` = no limit (a product's single `game_server_url`).
    pub capacity: Option<u32>,
    pub region: Option<String>,
}

/// The id a product's single `game_server_url` is known by in its fleet of one.
pub const DEFAULT_INSTANCE: &str = "default";

impl InstanceSpec {
    /// Checks what a registration sent; the message names the field.
    pub fn check(self) -> Result<Self, LobbyError> {
        let bad = |m: String| Err(LobbyError::InvalidInstance(m));
        if !valid_instance_id(&self.id) {
            return bad(format!(
                "`id` must be 1 to {MAX_ID} letters, digits, '-', '_' or '.'"
            ));
        }
        if !valid_http_url(&self.url) {
            return bad("`url` must be an http:// or https:// URL".into());
        }
        if self.socket_url.trim().is_empty()
            || self.socket_url.len() > MAX_URL
            || self.socket_url.chars().any(char::is_control)
        {
            return bad(format!(
                "`socket_url` must be 1 to {MAX_URL} characters, without control characters"
            ));
        }
        match self.capacity {
            Some(c) if (1..=MAX_CAPACITY).contains(&c) => {}
            _ => return bad(format!("`capacity` must be between 1 and {MAX_CAPACITY}")),
        }
        if let Some(region) = &self.region {
            check_region(region)?;
        }
        Ok(self)
    }
}

pub fn valid_instance_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

fn valid_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
        && url.len() <= MAX_URL
        && !url.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// A region label: what a create may ask for and an instance may declare.
pub fn check_region(region: &str) -> Result<(), LobbyError> {
    if region.is_empty()
        || region.len() > MAX_REGION
        || !region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(LobbyError::InvalidRegion(format!(
            "a region is 1 to {MAX_REGION} letters, digits, '-', '_' or '.'"
        )));
    }
    Ok(())
}

/// Where a game's calls go: the instance incarnation it was placed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// `None` for a game older than fleets: the product's `game_server_url`.
    pub server_key: Option<Uuid>,
    pub instance_id: String,
    pub url: String,
    pub socket_url: String,
}

impl Placement {
    /// A game's placement from its instance's columns; a game older than fleets (or whose
    /// instance was forgotten) goes to the product's single game server.
    pub fn resolve(
        product: &Product,
        server_key: Option<Uuid>,
        instance_id: Option<String>,
        url: Option<String>,
        socket_url: Option<String>,
    ) -> Self {
        match (url, socket_url) {
            (Some(url), Some(socket_url)) => Self {
                server_key,
                instance_id: instance_id.unwrap_or_default(),
                url,
                socket_url,
            },
            _ => Self {
                server_key: None,
                instance_id: DEFAULT_INSTANCE.into(),
                url: product.game_server_url.clone(),
                socket_url: product.game_socket_url.clone(),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "instance_state", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Takes new games.
    Active,
    /// Keeps its games, takes no new ones.
    Draining,
    /// Missed its heartbeats or was removed: its games ended, nothing is sent to it.
    Lost,
}

/// An instance as the fleet's list shows it.
#[derive(Debug, Clone)]
pub struct Instance {
    pub server_key: Uuid,
    pub id: String,
    pub url: String,
    pub socket_url: String,
    pub capacity: Option<i32>,
    pub region: Option<String>,
    pub state: InstanceState,
    /// From the configuration (needs no heartbeat) rather than registered.
    pub configured: bool,
    /// Games it holds (not ended), creates in flight included.
    pub games: i64,
    pub heartbeat_at: DateTime<Utc>,
    pub registered_at: DateTime<Utc>,
    /// Whether calls to it are going through (its circuit breaker, in this process, is closed).
    pub healthy: bool,
}
