//! The open-games list.

use std::sync::Arc;

use super::{Lobby, LobbyResult};
use crate::{
    domain::{Game, Product, SettingsFilter},
    store::games,
};

/// A page of the list as the client asked for it; `None` takes the configured default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Page {
    pub count: Option<u64>,
    pub page: Option<u64>,
}

impl Lobby {
    /// A page of the product's listed games, oldest in the lobby first; `None` for a product
    /// that is not configured (the list of an unknown product is empty, not an error).
    pub async fn open_games(
        &self,
        product_id: &str,
        page: Page,
        filter: &SettingsFilter,
    ) -> LobbyResult<Option<(Arc<Product>, Vec<Game>)>> {
        let Some(product) = self.product(product_id) else {
            return Ok(None);
        };
        let count = page
            .count
            .unwrap_or(self.config.page_size.into())
            .min(self.config.max_page_size.into());
        if count == 0 {
            return Ok(Some((product, Vec::new())));
        }
        let offset =
            i64::try_from(page.page.unwrap_or(0).saturating_mul(count)).unwrap_or(i64::MAX);
        let games =
            games::open_page(&self.db, product_id, count as i64, offset, filter.as_json()).await?;
        Ok(Some((product, games)))
    }
}
