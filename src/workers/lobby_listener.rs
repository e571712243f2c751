//! Feeds the live lobby: `LISTEN matchmaker_lobby`, read each changed game once, publish it to
//! this process's hub. A lost connection means notifications may have been missed: the hub's
//! subscribers start over and new ones wait until the listener is back.

use std::{sync::Arc, time::Duration};

use serde::Deserialize;
use sqlx::{PgPool, postgres::PgListener};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    domain::Products,
    live::{Change, Hub, Kind},
    store::games,
};

pub const CHANNEL: &str = "matchmaker_lobby";
/// How long the listener waits before reconnecting after an error.
const RECONNECT: Duration = Duration::from_secs(1);

pub struct LobbyListener {
    pub db: PgPool,
    pub hub: Arc<Hub>,
    pub products: Products,
    /// Turns a listed game into the JSON subscribers receive (the HTTP layer's partial game).
    pub render: fn(&crate::domain::Game, &crate::domain::Product) -> serde_json::Result<String>,
}

#[derive(Deserialize)]
struct Notice {
    kind: String,
    product_id: String,
    game_id: String,
}

impl LobbyListener {
    /// Listens until `shutdown`, reconnecting after failures.
    pub async fn run(self, shutdown: CancellationToken) {
        let hub = &self.hub;
        while !shutdown.is_cancelled() {
            let mut listener = match self.listen().await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "live lobby: cannot listen; retrying");
                    super::sleep_or_stop(&shutdown, RECONNECT).await;
                    continue;
                }
            };
            // From here on no change is missed: new subscribers may start.
            hub.set_ready(true);
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    n = listener.try_recv() => n,
                };
                match next {
                    Ok(Some(notice)) => {
                        if let Err(e) = self.forward_once(notice.payload()).await {
                            tracing::warn!(error = %e, "live lobby: change not forwarded");
                        }
                    }
                    // The connection dropped: what happened meanwhile is lost.
                    Ok(None) => {
                        hub.set_ready(false);
                        hub.resync();
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "live lobby: listener failed; reconnecting");
                        hub.set_ready(false);
                        hub.resync();
                        super::sleep_or_stop(&shutdown, RECONNECT).await;
                        break;
                    }
                }
            }
        }
        hub.set_ready(false);
        hub.close();
    }

    async fn listen(&self) -> sqlx::Result<PgListener> {
        let mut listener = PgListener::connect_with(&self.db).await?;
        listener.listen(CHANNEL).await?;
        Ok(listener)
    }

    /// Turns one notification into a change for the subscribers (reading the game once).
    pub async fn forward_once(&self, payload: &str) -> anyhow::Result<()> {
        if self.hub.subscribers() == 0 {
            return Ok(());
        }
        let notice: Notice = serde_json::from_str(payload)?;
        let Some(product) = self.products.get(&notice.product_id) else {
            return Ok(());
        };
        let kind = match notice.kind.as_str() {
            "listed" => Kind::Listed,
            "changed" => Kind::Changed,
            "unlisted" => Kind::Unlisted,
            other => anyhow::bail!("unknown lobby change {other:?}"),
        };
        if kind == Kind::Unlisted {
            self.hub.publish(Change {
                kind,
                product_id: notice.product_id,
                settings: None,
                data: serde_json::json!({ "game_id": notice.game_id }).to_string(),
            });
            return Ok(());
        }
        let game_id = Uuid::try_parse(&notice.game_id)?;
        // The game as it is now. If it is no longer listed, a later notification unlists it.
        let Some(game) = games::fetch(&self.db, game_id, &notice.product_id).await? else {
            return Ok(());
        };
        if !game.is_listed() {
            return Ok(());
        }
        let data = (self.render)(&game, &product)?;
        self.hub.publish(Change {
            kind,
            product_id: notice.product_id,
            settings: Some(game.settings),
            data,
        });
        Ok(())
    }
}
