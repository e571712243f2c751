//! HTTP adapter for game servers: `POST {url}/{call}` with JSON to the instance a game is
//! placed on (docs/lifecycle.md, "Who owes which call"; docs/fleets.md).
//!
//! Outcomes are typed: a refusal (non-2xx) is the game server's decision; unreachable and bad
//! answers are faults of the exchange. Faults feed each instance's circuit breaker.

mod breaker;

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

pub use breaker::Breakers;

use crate::{
    domain::{GameServerFault, fleet::Placement},
    metrics::{CallKindLabels, CallLabels, InstanceCallLabels, Metrics},
};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum GameServerError {
    /// The game server answered with a non-2xx status.
    #[error("refused with status {status}: {message}")]
    Refused { status: u16, message: String },
    /// No connection could be made: the request was never sent.
    #[error("could not connect: {0}")]
    NotConnected(String),
    /// The call ran past its time limit or the answer was cut off, after the request was sent.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// A 2xx answer we could not use (not JSON, missing `gameToken`, ...).
    #[error("bad answer: {0}")]
    BadAnswer(String),
}

impl GameServerError {
    /// Worth retrying later: the server may answer differently next time.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Refused { status, .. } => *status >= 500 || *status == 429,
            Self::NotConnected(_) | Self::Unreachable(_) | Self::BadAnswer(_) => true,
        }
    }

    /// A failure that says the instance is unwell rather than that it decided something: no
    /// connection, no timely or usable answer, a 5xx. These open its breaker.
    pub fn is_fault(&self) -> bool {
        match self {
            Self::Refused { status, .. } => *status >= 500,
            Self::NotConnected(_) | Self::Unreachable(_) | Self::BadAnswer(_) => true,
        }
    }

    /// Whether the game server may have done what it was asked although the call failed. A
    /// 4xx refusal is its decision not to; a 5xx may come after the work was done, a timeout or
    /// a garbled answer after it was received. Whoever sees a failure that may have acted owes
    /// the game server the undoing call (`remove_game`, `remove_player`).
    pub fn may_have_acted(&self) -> bool {
        match self {
            Self::Refused { status, .. } => *status >= 500,
            Self::NotConnected(_) => false,
            Self::Unreachable(_) | Self::BadAnswer(_) => true,
        }
    }

    /// The fault as the client is told, for failures that are not refusals.
    pub fn fault(&self) -> Option<GameServerFault> {
        match self {
            Self::Refused { .. } => None,
            Self::NotConnected(_) | Self::Unreachable(_) => Some(GameServerFault::Unreachable),
            Self::BadAnswer(_) => Some(GameServerFault::BadAnswer),
        }
    }
}

/// The two calls that seat a player answer with a game token.
#[derive(Debug, Deserialize)]
struct TokenAnswer {
    #[serde(rename = "gameToken")]
    game_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SeatCall<'a> {
    game_id: &'a str,
    user_id: &'a str,
    username: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RemoveGameCall<'a> {
    game_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RemovePlayerCall<'a> {
    game_id: &'a str,
    user_id: &'a str,
}

#[derive(Deserialize)]
struct Refusal {
    message: Option<String>,
}

/// Where a call goes: a product's instance.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub product_id: &'a str,
    pub at: &'a Placement,
}

/// One shared reqwest client (connection pool) for every game server.
#[derive(Clone)]
pub struct GameServerClient {
    http: reqwest::Client,
    metrics: Arc<Metrics>,
    breakers: Arc<Breakers>,
}

impl GameServerClient {
    pub fn new(
        timeout: Duration,
        breaker_open: Duration,
        metrics: Arc<Metrics>,
    ) -> reqwest::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            metrics,
            breakers: Arc::new(Breakers::new(breaker_open)),
        })
    }

    /// This process's view of each instance's health.
    pub fn breakers(&self) -> &Breakers {
        &self.breakers
    }

    /// `create_game`: returns the game token.
    pub async fn create_game(
        &self,
        to: Target<'_>,
        game_id: &str,
        user_id: &str,
        username: &str,
    ) -> Result<String, GameServerError> {
        self.seat_call(to, "create_game", game_id, user_id, username)
            .await
    }

    /// `join_game`: returns the game token.
    pub async fn join_game(
        &self,
        to: Target<'_>,
        game_id: &str,
        user_id: &str,
        username: &str,
    ) -> Result<String, GameServerError> {
        self.seat_call(to, "join_game", game_id, user_id, username)
            .await
    }

    /// `remove_game`; a game already gone answers 200 too.
    pub async fn remove_game(&self, to: Target<'_>, game_id: &str) -> Result<(), GameServerError> {
        self.post::<serde_json::Value>(to, "remove_game", &RemoveGameCall { game_id })
            .await
            .map(drop)
    }

    /// `remove_player`; 404 (player not in the game) counts as done.
    pub async fn remove_player(
        &self,
        to: Target<'_>,
        game_id: &str,
        user_id: &str,
    ) -> Result<(), GameServerError> {
        match self
            .post::<serde_json::Value>(to, "remove_player", &RemovePlayerCall { game_id, user_id })
            .await
        {
            Ok(_) | Err(GameServerError::Refused { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn seat_call(
        &self,
        to: Target<'_>,
        call: &'static str,
        game_id: &str,
        user_id: &str,
        username: &str,
    ) -> Result<String, GameServerError> {
        let body = SeatCall {
            game_id,
            user_id,
            username,
        };
        let answer: TokenAnswer = self.post(to, call, &body).await?;
        match answer.game_token {
            Some(token) if !token.is_empty() => Ok(token),
            _ => Err(GameServerError::BadAnswer(format!(
                "{call} answered without a gameToken"
            ))),
        }
    }

    /// One call, counted and timed by product, instance, call and outcome; its outcome feeds
    /// the instance's breaker.
    async fn post<T: DeserializeOwned>(
        &self,
        to: Target<'_>,
        call: &'static str,
        body: &impl Serialize,
    ) -> Result<T, GameServerError> {
        let started = std::time::Instant::now();
        let result = self.exchange(&to.at.url, call, body).await;
        if let Some(key) = to.at.server_key {
            self.breakers.record(
                key,
                result.as_ref().err().is_some_and(GameServerError::is_fault),
            );
        }
        let outcome = match &result {
            Ok(_) => "ok",
            Err(GameServerError::Refused { status: 404, .. }) if call == "remove_player" => "ok",
            Err(GameServerError::Refused { .. }) => "refused",
            Err(GameServerError::NotConnected(_) | GameServerError::Unreachable(_)) => {
                "unreachable"
            }
            Err(GameServerError::BadAnswer(_)) => "bad_answer",
        };
        let product_id = to.product_id.to_string();
        self.metrics
            .game_server_calls
            .get_or_create(&CallLabels {
                product: product_id.clone(),
                call,
                outcome,
            })
            .inc();
        self.metrics
            .instance_calls
            .get_or_create(&InstanceCallLabels {
                product: product_id.clone(),
                game_server: to.at.instance_id.clone(),
                outcome,
            })
            .inc();
        self.metrics
            .game_server_duration
            .get_or_create(&CallKindLabels {
                product: product_id,
                call,
            })
            .observe(started.elapsed().as_secs_f64());
        result
    }

    #[tracing::instrument(name = "game_server", skip(self, body), fields(url = %base))]
    async fn exchange<T: DeserializeOwned>(
        &self,
        base: &str,
        call: &str,
        body: &impl Serialize,
    ) -> Result<T, GameServerError> {
        let url = format!("{base}/{call}");
        let response = self.http.post(&url).json(body).send().await.map_err(|e| {
            if e.is_connect() {
                tracing::warn!(call, error = %e, "game server could not be connected to");
                return GameServerError::NotConnected(format!("{call}: could not connect"));
            }
            let what = if e.is_timeout() {
                "timed out"
            } else {
                "failed"
            };
            tracing::warn!(call, error = %e, "game server call {what}");
            GameServerError::Unreachable(format!("{call}: {what}"))
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| {
            tracing::warn!(call, error = %e, "game server answer was cut off");
            GameServerError::Unreachable(format!("{call}: answer cut off"))
        })?;
        if !status.is_success() {
            let message = serde_json::from_slice::<Refusal>(&bytes)
                .ok()
                .and_then(|r| r.message)
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(200).collect());
            tracing::info!(call, status = status.as_u16(), %message, "game server refused");
            return Err(GameServerError::Refused {
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            tracing::warn!(call, error = %e, "game server answer is not the expected JSON");
            GameServerError::BadAnswer(format!("{call}: answer is not the expected JSON"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refusal_below_500_or_no_connection_means_nothing_was_done() {
        let refused = |status| GameServerError::Refused {
            status,
            message: String::new(),
        };
        assert!(!refused(400).may_have_acted());
        assert!(!refused(404).may_have_acted());
        assert!(refused(500).may_have_acted());
        assert!(refused(503).may_have_acted());
        assert!(!GameServerError::NotConnected(String::new()).may_have_acted());
        assert!(GameServerError::Unreachable(String::new()).may_have_acted());
        assert!(GameServerError::BadAnswer(String::new()).may_have_acted());
    }
}
