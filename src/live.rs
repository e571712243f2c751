//! The live lobby: open-games changes as Server-Sent Events.
//!
//! A trigger on `games` sends `NOTIFY matchmaker_lobby` in the transaction of every change to
//! the list, so the notification exists exactly when the change committed, whichever process
//! made it. Each process holds one `PgListener`, reads the changed game once, and fans it out to
//! its own subscribers through a bounded `tokio::sync::broadcast` channel: a subscriber that
//! falls more than `lobby_stream_buffer` changes behind is dropped (its stream ends; an
//! `EventSource` reconnects and starts again from a fresh page) instead of slowing anyone.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::response::sse::Event;
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    app::AppState,
    error::{ApiError, ApiResult},
    model::{GameState, PartialGame},
    store::games as store,
};

pub const CHANNEL: &str = "matchmaker_lobby";
/// How long a new subscriber waits for the listener to be (re)connected.
const READY_WAIT: Duration = Duration::from_secs(5);
/// How long the listener waits before reconnecting after an error.
const RECONNECT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Listed,
    Changed,
    Unlisted,
    /// Notifications may have been missed (the listener reconnected): subscribers must start
    /// over from a fresh page.
    Resync,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Listed => "listed",
            Self::Changed => "changed",
            Self::Unlisted => "unlisted",
            Self::Resync => "resync",
        }
    }
}

/// One change of a product's open-games list, serialised once for every subscriber.
#[derive(Debug)]
pub struct Change {
    pub kind: Kind,
    pub product_id: String,
    /// The game's settings, for subscribers' filters (`None` for `unlisted`).
    pub settings: Option<Value>,
    /// The SSE `data`: the partial game, or `{"game_id": ...}` for `unlisted`.
    pub data: String,
}

/// This process's fan-out of lobby changes.
pub struct Hub {
    changes: broadcast::Sender<Arc<Change>>,
    ready: watch::Sender<bool>,
    closed: CancellationToken,
}

impl Hub {
    pub fn new(buffer: usize) -> Self {
        Self {
            changes: broadcast::Sender::new(buffer.max(1)),
            ready: watch::Sender::new(false),
            closed: CancellationToken::new(),
        }
    }

    /// A receiver of every change from now on; 503 if the listener is not connected (changes
    /// would be missed).
    pub async fn subscribe(&self) -> ApiResult<broadcast::Receiver<Arc<Change>>> {
        let mut ready = self.ready.subscribe();
        let waited = tokio::time::timeout(READY_WAIT, ready.wait_for(|r| *r)).await;
        if !matches!(waited, Ok(Ok(_))) || self.closed.is_cancelled() {
            return Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "Game Lobby: The live lobby is temporarily unavailable. Please retry shortly.",
            ));
        }
        Ok(self.changes.subscribe())
    }

    pub fn publish(&self, change: Change) {
        // No receivers is not an error: nobody is watching.
        let _ = self.changes.send(Arc::new(change));
    }

    pub fn subscribers(&self) -> usize {
        self.changes.receiver_count()
    }

    /// Ends every stream (shutdown).
    pub fn close(&self) {
        self.closed.cancel();
    }

    pub fn closed(&self) -> CancellationToken {
        self.closed.clone()
    }
}

#[derive(Deserialize)]
struct Notice {
    kind: String,
    product_id: String,
    game_id: String,
}

/// Listens for lobby changes until `shutdown`, reconnecting after failures.
pub async fn run_listener(state: AppState, shutdown: CancellationToken) {
    let hub = &state.lobby;
    while !shutdown.is_cancelled() {
        let mut listener = match PgListener::connect_with(&state.db).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "live lobby: cannot listen; retrying");
                pause(&shutdown).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "live lobby: cannot listen; retrying");
            pause(&shutdown).await;
            continue;
        }
        // From here on no change is missed: new subscribers may start.
        hub.ready.send_replace(true);
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => break,
                n = listener.try_recv() => n,
            };
            match next {
                Ok(Some(notice)) => {
                    if let Err(e) = forward(&state, notice.payload()).await {
                        tracing::warn!(error = %e, "live lobby: change not forwarded");
                    }
                }
                // The connection dropped: what happened meanwhile is lost. New subscribers wait
                // for a fresh LISTEN; current ones start over.
                Ok(None) => {
                    hub.ready.send_replace(false);
                    resync(hub);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "live lobby: listener failed; reconnecting");
                    hub.ready.send_replace(false);
                    resync(hub);
                    pause(&shutdown).await;
                    break;
                }
            }
        }
    }
    hub.ready.send_replace(false);
    hub.close();
}

async fn pause(shutdown: &CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(RECONNECT) => {}
    }
}

fn resync(hub: &Hub) {
    tracing::info!("live lobby: notifications may have been missed; subscribers start over");
    hub.publish(Change {
        kind: Kind::Resync,
        product_id: String::new(),
        settings: None,
        data: String::new(),
    });
}

/// Turns one notification into a change for the subscribers (reading the game once).
async fn forward(state: &AppState, payload: &str) -> anyhow::Result<()> {
    if state.lobby.subscribers() == 0 {
        return Ok(());
    }
    let notice: Notice = serde_json::from_str(payload)?;
    let Some(product) = state.product(&notice.product_id) else {
        return Ok(());
    };
    let kind = match notice.kind.as_str() {
        "listed" => Kind::Listed,
        "changed" => Kind::Changed,
        "unlisted" => Kind::Unlisted,
        other => anyhow::bail!("unknown lobby change {other:?}"),
    };
    if kind == Kind::Unlisted {
        state.lobby.publish(Change {
            kind,
            product_id: notice.product_id,
            settings: None,
            data: serde_json::json!({ "game_id": notice.game_id }).to_string(),
        });
        return Ok(());
    }
    let game_id = Uuid::try_parse(&notice.game_id)?;
    // The game as it is now. If it is no longer open, a later notification unlists it.
    let Some(game) = store::fetch(&state.db, game_id, &notice.product_id).await? else {
        return Ok(());
    };
    let open = game.state == GameState::CreatorJoined
        && game.seats_taken < game.num_players
        && game.join_code.is_none();
    if !open {
        return Ok(());
    }
    let settings = game.settings.clone();
    let partial: PartialGame = game.partial(&product.game_server_url);
    state.lobby.publish(Change {
        kind,
        product_id: notice.product_id,
        settings: Some(settings),
        data: serde_json::to_string(&partial)?,
    });
    Ok(())
}

/// Whether `value` contains `filter`, as Postgres' jsonb `@>` decides it.
pub fn contains(value: &Value, filter: &Value) -> bool {
    match (value, filter) {
        (Value::Object(v), Value::Object(f)) => f
            .iter()
            .all(|(k, fv)| v.get(k).is_some_and(|vv| contains(vv, fv))),
        (Value::Array(v), Value::Array(f)) => {
            f.iter().all(|fv| v.iter().any(|vv| contains(vv, fv)))
        }
        (Value::Array(v), scalar) if !scalar.is_object() && !scalar.is_array() => {
            v.iter().any(|vv| vv == scalar)
        }
        (v, f) => v == f,
    }
}

/// The SSE events of one subscriber: the snapshot, then the product's changes that match the
/// filter. Ends when the subscriber lags behind, on a resync, or when the hub closes.
pub fn events(
    snapshot: String,
    changes: broadcast::Receiver<Arc<Change>>,
    product_id: String,
    filter: Value,
    closed: CancellationToken,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let first = Event::default()
        .event("snapshot")
        .data(snapshot)
        .retry(Duration::from_secs(2));
    let state = (changes, product_id, filter, closed);
    let rest = futures::stream::unfold(
        state,
        |(mut changes, product_id, filter, closed)| async move {
            loop {
                let change = tokio::select! {
                    _ = closed.cancelled() => return None,
                    c = changes.recv() => c,
                };
                let change = match change {
                    Ok(c) => c,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::info!(missed, "live lobby: slow subscriber dropped");
                        return None;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                if change.kind == Kind::Resync {
                    return None;
                }
                if change.product_id != product_id {
                    continue;
                }
                if let Some(settings) = &change.settings {
                    if !contains(settings, &filter) {
                        continue;
                    }
                }
                let event = Event::default()
                    .event(change.kind.as_str())
                    .data(change.data.as_str());
                return Some((event, (changes, product_id, filter, closed)));
            }
        },
    );
    futures::stream::once(async move { first })
        .chain(rest)
        .map(Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containment_matches_postgres() {
        let settings = json!({"mode": "ranked", "num_players": 4, "tags": ["a", "b"]});
        assert!(contains(&settings, &json!({})));
        assert!(contains(&settings, &json!({"mode": "ranked"})));
        assert!(contains(
            &settings,
            &json!({"mode": "ranked", "num_players": 4})
        ));
        assert!(!contains(&settings, &json!({"num_players": "4"})));
        assert!(contains(&settings, &json!({"tags": ["b"]})));
        assert!(!contains(&settings, &json!({"tags": ["c"]})));
        assert!(!contains(&settings, &json!({"other": 1})));
    }

    fn change(kind: Kind, product: &str) -> Change {
        Change {
            kind,
            product_id: product.into(),
            settings: Some(json!({"mode": "ranked"})),
            data: "{}".into(),
        }
    }

    async fn kinds(stream: impl Stream<Item = Result<Event, Infallible>>) -> usize {
        stream.collect::<Vec<_>>().await.len()
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_dropped() {
        let hub = Hub::new(2);
        let rx = hub.changes.subscribe();
        for _ in 0..5 {
            hub.publish(change(Kind::Listed, "exrps"));
        }
        let stream = events("[]".into(), rx, "exrps".into(), json!({}), hub.closed());
        // only the snapshot: the stream ends at the first change it missed
        assert_eq!(kinds(stream).await, 1);
    }

    #[tokio::test]
    async fn streams_filter_and_end_on_resync() {
        let hub = Hub::new(16);
        let rx = hub.changes.subscribe();
        hub.publish(change(Kind::Listed, "exrps"));
        hub.publish(change(Kind::Listed, "other"));
        let mut casual = change(Kind::Changed, "exrps");
        casual.settings = Some(json!({"mode": "casual"}));
        hub.publish(casual);
        hub.publish(change(Kind::Unlisted, "exrps"));
        hub.publish(change(Kind::Resync, ""));
        hub.publish(change(Kind::Listed, "exrps"));
        let stream = events(
            "[]".into(),
            rx,
            "exrps".into(),
            json!({"mode": "ranked"}),
            hub.closed(),
        );
        // snapshot, listed (exrps, ranked), unlisted; then the resync ends it
        assert_eq!(kinds(stream).await, 3);
    }

    #[tokio::test]
    async fn closing_the_hub_ends_the_streams() {
        let hub = Hub::new(4);
        let rx = hub.changes.subscribe();
        hub.close();
        let stream = events("[]".into(), rx, "exrps".into(), json!({}), hub.closed());
        assert_eq!(kinds(stream).await, 1);
    }
}
