//! The open-games list.

use std::sync::Arc;

use super::{Lobby, LobbyResult, read_model};
use crate::{
    domain::{Game, Product, SettingsFilter},
    store::games,
};

/// A page of the list as the client asked for it; `None` takes the configured default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Page {
    pub count: Option<u64>,
    pub page: Option<u64>,
    /// Read the database even when the in-memory list could answer: the snapshot a live
    /// stream starts from must not trail the changes the stream will then send.
    pub fresh: bool,
}

/// A page of the list: from memory, already the JSON array of the answer, or read from the
/// database (the read model is out of sync or off).
pub enum Listing {
    Json(String),
    Games(Arc<Product>, Vec<Game>),
    /// The list of a product that is not configured is empty, not an error.
    UnknownProduct,
}

impl Lobby {
    /// A page of the product's listed games, oldest in the lobby first.
    pub async fn open_games(
        &self,
        product_id: &str,
        page: Page,
        filter: &SettingsFilter,
    ) -> LobbyResult<Listing> {
        let Some(product) = self.product(product_id) else {
            return Ok(Listing::UnknownProduct);
        };
        let count = page
            .count
            .unwrap_or(self.config.page_size.into())
            .min(self.config.max_page_size.into());
        if count == 0 {
            return Ok(Listing::Json("[]".into()));
        }
        let offset = page.page.unwrap_or(0).saturating_mul(count);
        let in_memory = (!page.fresh)
            .then(|| {
                self.read_model.page(
                    product_id,
                    usize::try_from(offset).unwrap_or(usize::MAX),
                    count as usize,
                    filter,
                )
            })
            .flatten();
        if let Some(json) = in_memory {
            return Ok(Listing::Json(json));
        }
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let games =
            games::open_page(&self.db, product_id, count as i64, offset, filter.as_json()).await?;
        Ok(Listing::Games(product, games))
    }

    pub fn read_model(&self) -> &Arc<read_model::ReadModel> {
        &self.read_model
    }

    /// After a change this process made to the open-games list: this process's later pages
    /// show it (see `read_model`).
    pub async fn fence(&self) {
        let Some((n, payload)) = self.read_model.next_fence() else {
            return;
        };
        let sent = self
            .warm
            .run(async |c| games::notify_lobby(c, &payload).await)
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "lobby fence not sent");
            self.read_model.fence_failed(n);
        }
    }
}
