//! The live lobby: this process's fan-out of open-games changes.
//!
//! A trigger on `games` sends `NOTIFY matchmaker_lobby` in the transaction of every change to
//! the list, so the notification exists exactly when the change committed, whichever process
//! made it. Each process holds one listener (`workers::lobby_listener`), reads the changed game
//! once, and publishes it here; the hub fans it out to its subscribers through a bounded
//! `tokio::sync::broadcast` channel: a subscriber that falls more than `lobby_stream_buffer`
//! changes behind is dropped (its stream ends; an `EventSource` reconnects and starts again from
//! a fresh page) instead of slowing anyone.

use std::{sync::Arc, time::Duration};

use futures::Stream;
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::domain::{LobbyError, SettingsFilter};

/// How long a new subscriber waits for the listener to be (re)connected.
const READY_WAIT: Duration = Duration::from_secs(5);

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
    /// Most subscribers at once: idle streams must not take every file descriptor (and with
    /// them the connections the lobby's writes need).
    max_subscribers: usize,
    ready: watch::Sender<bool>,
    closed: CancellationToken,
}

impl Hub {
    pub fn new(buffer: usize, max_subscribers: usize) -> Self {
        Self {
            changes: broadcast::Sender::new(buffer.max(1)),
            max_subscribers,
            ready: watch::Sender::new(false),
            closed: CancellationToken::new(),
        }
    }

    /// A receiver of every change from now on; unavailable while the listener is not
    /// connected (changes would be missed).
    pub async fn subscribe(&self) -> Result<broadcast::Receiver<Arc<Change>>, LobbyError> {
        // 0: no cap.
        if self.max_subscribers > 0 && self.subscribers() >= self.max_subscribers {
            return Err(LobbyError::LiveFull);
        }
        let mut ready = self.ready.subscribe();
        let waited = tokio::time::timeout(READY_WAIT, ready.wait_for(|r| *r)).await;
        if !matches!(waited, Ok(Ok(_))) || self.closed.is_cancelled() {
            return Err(LobbyError::LiveUnavailable);
        }
        Ok(self.changes.subscribe())
    }

    /// Tells subscribers whether changes flow: `false` makes new subscribers wait.
    pub fn set_ready(&self, ready: bool) {
        self.ready.send_replace(ready);
    }

    /// Notifications may have been missed: current subscribers start over.
    pub fn resync(&self) {
        tracing::info!("live lobby: notifications may have been missed; subscribers start over");
        self.publish(Change {
            kind: Kind::Resync,
            product_id: String::new(),
            settings: None,
            data: String::new(),
        });
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

/// The changes one subscriber sees: the product's that match the filter. Ends when the
/// subscriber lags behind, on a resync, or when the hub closes.
pub fn changes(
    changes: broadcast::Receiver<Arc<Change>>,
    product_id: String,
    filter: SettingsFilter,
    closed: CancellationToken,
) -> impl Stream<Item = Arc<Change>> {
    let state = (changes, product_id, filter, closed);
    futures::stream::unfold(
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
                    if !filter.matches(settings) {
                        continue;
                    }
                }
                return Some((change, (changes, product_id, filter, closed)));
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use serde_json::json;

    fn change(kind: Kind, product: &str) -> Change {
        Change {
            kind,
            product_id: product.into(),
            settings: Some(json!({"mode": "ranked"})),
            data: "{}".into(),
        }
    }

    fn ranked() -> SettingsFilter {
        SettingsFilter::parse([("settings.mode", "ranked")]).unwrap()
    }

    async fn count(stream: impl Stream<Item = Arc<Change>>) -> usize {
        stream.collect::<Vec<_>>().await.len()
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_dropped() {
        let hub = Hub::new(2, 8);
        let rx = hub.changes.subscribe();
        for _ in 0..5 {
            hub.publish(change(Kind::Listed, "exrps"));
        }
        let stream = changes(rx, "exrps".into(), SettingsFilter::default(), hub.closed());
        // the stream ends at the first change it missed
        assert_eq!(count(stream).await, 0);
    }

    #[tokio::test]
    async fn streams_filter_and_end_on_resync() {
        let hub = Hub::new(16, 8);
        let rx = hub.changes.subscribe();
        hub.publish(change(Kind::Listed, "exrps"));
        hub.publish(change(Kind::Listed, "other"));
        let mut casual = change(Kind::Changed, "exrps");
        casual.settings = Some(json!({"mode": "casual"}));
        hub.publish(casual);
        hub.publish(change(Kind::Unlisted, "exrps"));
        hub.resync();
        hub.publish(change(Kind::Listed, "exrps"));
        let stream = changes(rx, "exrps".into(), ranked(), hub.closed());
        // listed (exrps, ranked), unlisted; then the resync ends it
        assert_eq!(count(stream).await, 2);
    }

    #[tokio::test]
    async fn subscribers_beyond_the_cap_are_refused() {
        let hub = Hub::new(4, 2);
        hub.set_ready(true);
        let _one = hub.subscribe().await.unwrap();
        let two = hub.subscribe().await.unwrap();
        assert_eq!(hub.subscribe().await.unwrap_err(), LobbyError::LiveFull);
        drop(two);
        assert!(hub.subscribe().await.is_ok());
    }

    #[tokio::test]
    async fn closing_the_hub_ends_the_streams() {
        let hub = Hub::new(4, 8);
        let rx = hub.changes.subscribe();
        hub.close();
        let stream = changes(rx, "exrps".into(), SettingsFilter::default(), hub.closed());
        assert_eq!(count(stream).await, 0);
    }
}
