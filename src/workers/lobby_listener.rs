//! Keeps the open-games list in step, for this process's in-memory list
//! (`lobby::read_model`) and its live-lobby subscribers (`live::Hub`): `LISTEN
//! matchmaker_lobby`, load every listed game, then for each batch of notifications read the
//! changed games once and apply them. A lost connection means notifications may have been
//! missed: pages come from the database, the hub's subscribers start over and new ones wait,
//! until the listener is back and has loaded again.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::TryStreamExt;
use serde::Deserialize;
use sqlx::{PgPool, postgres::PgListener};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    domain::{Game, Product, Products, SettingsFilter},
    live::{Change, Hub, Kind},
    lobby::read_model::{Entry, Loaded, ReadModel},
    metrics::Metrics,
    store::games,
};

pub const CHANNEL: &str = "matchmaker_lobby";
/// How long the listener waits before reconnecting after an error.
const RECONNECT: Duration = Duration::from_secs(1);
/// Most notifications applied together (their games read in one statement).
const BATCH: usize = 256;

pub struct LobbyListener {
    pub db: PgPool,
    pub hub: Arc<Hub>,
    pub read_model: Arc<ReadModel>,
    pub products: Products,
    pub metrics: Arc<Metrics>,
    /// Turns a listed game into the JSON of an open-games entry (the HTTP layer's partial game).
    pub render: fn(&Game, &Product) -> serde_json::Result<String>,
}

/// A read model's fence (`lobby::read_model`).
#[derive(Deserialize)]
struct Fence {
    fence: u64,
    instance: String,
}

/// A notification on the lobby channel: a read model's fence, or a change the trigger sent.
#[derive(Deserialize)]
#[serde(untagged)]
enum Message {
    Fence(Fence),
    Change(Notice),
}

#[derive(Deserialize)]
struct Notice {
    kind: String,
    product_id: String,
    game_id: String,
    /// When the change was made, in seconds since the epoch.
    at: Option<f64>,
    /// The transaction that made it (a commit fence waits for it).
    tx: Option<i64>,
}

impl LobbyListener {
    /// Listens until `shutdown`, reconnecting after failures.
    pub async fn run(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let mut listener = match self.listen().await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "lobby listener: cannot listen; retrying");
                    super::sleep_or_stop(&shutdown, RECONNECT).await;
                    continue;
                }
            };
            // From here on no change is missed: load, then apply what arrives.
            if let Err(e) = self.load_once().await {
                tracing::warn!(error = %e, "lobby listener: cannot load the open games; retrying");
                super::sleep_or_stop(&shutdown, RECONNECT).await;
                continue;
            }
            self.hub.set_ready(true);
            // One task reads notifications as they come, so that the changes that arrive while
            // a batch is applied are applied together next.
            let (tx, mut rx) = mpsc::unbounded_channel();
            let reader = tokio::spawn(async move {
                loop {
                    let next = match listener.try_recv().await {
                        Ok(Some(n)) => Some(n.payload().to_string()),
                        Ok(None) => None,
                        Err(e) => {
                            tracing::warn!(error = %e, "lobby listener: connection failed; reconnecting");
                            None
                        }
                    };
                    let lost = next.is_none();
                    if tx.send(next).is_err() || lost {
                        return;
                    }
                }
            });
            loop {
                let first = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    n = rx.recv() => n.flatten(),
                };
                let Some(first) = first else {
                    // The connection dropped: what happened meanwhile is lost.
                    self.lose_sync();
                    super::sleep_or_stop(&shutdown, RECONNECT).await;
                    break;
                };
                let mut batch = vec![first];
                let mut lost = false;
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(Some(payload)) => batch.push(payload),
                        Ok(None) => {
                            lost = true;
                            break;
                        }
                        Err(_) => break,
                    }
                }
                if let Err(e) = self.forward_once(&batch).await {
                    // A change not applied would leave the list stale: start over.
                    tracing::warn!(error = %e, "lobby listener: changes not applied; reloading");
                    lost = true;
                }
                if lost {
                    self.lose_sync();
                    break;
                }
            }
            reader.abort();
        }
        self.lose_sync();
        self.hub.close();
    }

    fn lose_sync(&self) {
        self.read_model.lose_sync();
        self.metrics.lobby_cache_in_sync.set(0);
        self.hub.set_ready(false);
        self.hub.resync();
    }

    async fn listen(&self) -> sqlx::Result<PgListener> {
        let mut listener = PgListener::connect_with(&self.db).await?;
        listener.listen(CHANNEL).await?;
        Ok(listener)
    }

    /// Reads every listed game into the in-memory list (call with the listener connected).
    pub async fn load_once(&self) -> anyhow::Result<usize> {
        if !self.read_model.enabled() {
            return Ok(0);
        }
        let fences_before = self.read_model.fences_sent();
        let mut listed = Loaded::default();
        let all = SettingsFilter::default();
        for product in self.products.iter() {
            let mut games =
                games::open_games(&self.db, &product.product_id, i64::MAX, 0, all.as_json());
            while let Some(game) = games.try_next().await? {
                let entry = self.entry(&game, product)?;
                listed.add(&game, entry);
            }
        }
        let n = listed.len();
        self.read_model.load(listed, fences_before);
        self.metrics.lobby_cache_in_sync.set(1);
        self.metrics.lobby_cache_games.set(n as i64);
        tracing::info!(games = n, "lobby listener: open games loaded");
        Ok(n)
    }

    fn entry(&self, game: &Game, product: &Product) -> serde_json::Result<Entry> {
        Ok(Entry::new(&game.settings, (self.render)(game, product)?))
    }

    /// Applies a batch of notifications: the changed games are read once, as they are now,
    /// and each goes into (or out of) the in-memory list and to the live-lobby subscribers.
    pub async fn forward_once(&self, payloads: &[String]) -> anyhow::Result<()> {
        let mut notices = Vec::with_capacity(payloads.len());
        let mut fences = Vec::new();
        let mut commits = Vec::new();
        for payload in payloads {
            match serde_json::from_str::<Message>(payload) {
                Ok(Message::Fence(fence)) => fences.push(fence),
                Ok(Message::Change(n)) => {
                    commits.extend(n.tx);
                    if self.products.get(&n.product_id).is_some() {
                        notices.push(n);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "lobby listener: bad notification"),
            }
        }
        let watched = self.hub.subscribers() > 0;
        if !notices.is_empty() && (watched || self.read_model.enabled()) {
            self.apply(&notices, watched).await?;
        }
        // Fences count as seen once every change before them is applied.
        for fence in fences {
            self.read_model.saw_fence(&fence.instance, fence.fence);
        }
        self.read_model.applied_commits(commits);
        Ok(())
    }

    async fn apply(&self, notices: &[Notice], watched: bool) -> anyhow::Result<()> {
        let mut ids: Vec<Uuid> = notices
            .iter()
            .filter_map(|n| Uuid::try_parse(&n.game_id).ok())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let current: HashMap<Uuid, Game> = games::fetch_many(&self.db, &ids, None)
            .await?
            .into_iter()
            .map(|g| (g.game_id, g))
            .collect();
        let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
        for notice in notices {
            let Some(product) = self.products.get(&notice.product_id) else {
                continue;
            };
            let Ok(game_id) = Uuid::try_parse(&notice.game_id) else {
                continue;
            };
            let game = current
                .get(&game_id)
                .filter(|g| g.product_id == notice.product_id);
            let listed = game.filter(|g| g.is_listed());
            let entry = listed.map(|g| self.entry(g, &product)).transpose()?;
            if let Some(at) = notice.at {
                self.metrics.lobby_cache_lag.observe((now - at).max(0.0));
            }
            if watched {
                self.publish(notice, listed, entry.as_ref());
            }
            self.read_model
                .apply(&notice.product_id, game_id, listed.zip(entry));
        }
        self.metrics
            .lobby_cache_games
            .set(self.read_model.len() as i64);
        Ok(())
    }

    fn publish(&self, notice: &Notice, listed: Option<&Game>, entry: Option<&Entry>) {
        let kind = match notice.kind.as_str() {
            "listed" => Kind::Listed,
            "changed" => Kind::Changed,
            "unlisted" => Kind::Unlisted,
            other => {
                tracing::warn!(kind = other, "lobby listener: unknown lobby change");
                return;
            }
        };
        if kind == Kind::Unlisted {
            self.hub.publish(Change {
                kind,
                product_id: notice.product_id.clone(),
                settings: None,
                data: serde_json::json!({ "game_id": notice.game_id }).to_string(),
            });
            return;
        }
        // The game as it is now. If it is no longer listed, a later notification unlists it.
        if let (Some(game), Some(entry)) = (listed, entry) {
            self.hub.publish(Change {
                kind,
                product_id: notice.product_id.clone(),
                settings: Some(game.settings.clone()),
                data: entry.json.to_string(),
            });
        }
    }
}
