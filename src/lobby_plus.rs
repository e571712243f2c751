//! What the lobby offers beyond the old service (issue 6): game status, leave, quick match and
//! joining by code. The rules of `lobby.rs` hold here too: game-server calls happen outside any
//! transaction, and calls owed to a game server go through the outbox in the owing transaction.

use crate::{
    app::AppState,
    auth::Player,
    config::Product,
    error::{ApiError, ApiResult},
    lobby::parse_game_id,
    model::GameView,
    store::games as store,
};

/// The game as the caller may see it: full (with `target_game_server`) for its players,
/// partial for anyone else.
pub async fn game_status(
    state: &AppState,
    product: &Product,
    player: &Player,
    raw_game_id: &str,
) -> ApiResult<GameView> {
    let not_found = || {
        ApiError::not_found(format!(
            "Game Lobby: Game not found. Game ID: \"{raw_game_id}\", Product ID: {}.",
            product.product_id
        ))
    };
    let game_id = parse_game_id(raw_game_id)?.ok_or_else(not_found)?;
    tracing::Span::current().record("game_id", raw_game_id);
    let game = store::fetch(&state.db, game_id, &product.product_id)
        .await?
        .ok_or_else(not_found)?;
    Ok(if game.players.contains(&player.user_id) {
        GameView::Full(game.full(&product.game_server_url, Some(&product.game_socket_url)))
    } else {
        GameView::Partial(game.partial(&product.game_server_url))
    })
}
