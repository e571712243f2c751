//! Background work that keeps the lobby clean (SPEC §3): the reaper expires games and frees
//! abandoned reservations; the dispatcher sends the game-server calls they owe.
//!
//! Each is one testable step (`reap_once`, `dispatch_once`) and a loop around it. Both run in
//! every process: `FOR UPDATE SKIP LOCKED` hands each game and each owed call to one of them.

use std::time::Duration;

use futures::StreamExt;
use rand::Rng;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use crate::{
    app::AppState,
    game_server::GameServerError,
    metrics::ReapLabels,
    model::GameState,
    store::{
        games, intents,
        outbox::{self, Call, Owed},
    },
};

/// Games (or reservations, or owed calls) handled per transaction.
const BATCH: i64 = 100;
/// Owed calls in flight at once per process.
const SENDS_IN_FLIGHT: usize = 8;
/// The dispatcher's fallback poll when no notification arrives.
const DISPATCH_POLL: Duration = Duration::from_secs(1);
/// Longest wait between two attempts at an owed call.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    /// Games deleted (each owes a `remove_game`).
    pub expired: usize,
    /// Full games reset: the joiner who never connected lost the seat (owes a `remove_player`).
    pub reset: usize,
    /// Reservations whose join never confirmed (each owes a `remove_player`).
    pub reservations_released: usize,
    /// Creates whose process died before saving the game (each owes a `remove_game`).
    pub creates_abandoned: usize,
}

/// One pass of the reaper: every game and reservation overdue now, oldest deadline first.
pub async fn reap_once(state: &AppState) -> sqlx::Result<Reaped> {
    let expiry = &state.settings.expiry;
    let mut reaped = Reaped::default();
    loop {
        let mut tx = state.db.begin().await?;
        let batch = games::lock_expired(&mut tx, BATCH).await?;
        for game in &batch {
            let stalled_full =
                game.state == GameState::CreatorJoined && game.seats_taken >= game.num_players;
            if stalled_full {
                if let Some(player) = games::newest_joiner(&mut tx, game.game_id).await? {
                    games::remove_player(&mut tx, game.game_id, &player).await?;
                    games::restart_clock(&mut tx, game.game_id, &expiry.all_secs()).await?;
                    outbox::owe_remove_player(&mut *tx, &game.product_id, game.game_id, &player)
                        .await?;
                    tracing::info!(game_id = %game.game_id.simple(), player, "game reset: a joiner never connected");
                    reaped.reset += 1;
                    continue;
                }
            }
            games::delete(&mut *tx, game.game_id, &game.product_id).await?;
            outbox::owe_remove_game(&mut *tx, &game.product_id, game.game_id).await?;
            tracing::info!(game_id = %game.game_id.simple(), state = %game.state, "game expired");
            reaped.expired += 1;
        }
        tx.commit().await?;
        if (batch.len() as i64) < BATCH {
            break;
        }
    }
    let older_than = state.settings.reservation_timeout.as_secs_f64();
    loop {
        let mut tx = state.db.begin().await?;
        let stale = games::release_stale_reservations(&mut tx, older_than, BATCH).await?;
        for seat in &stale {
            games::restart_clock(&mut tx, seat.game_id, &expiry.all_secs()).await?;
            outbox::owe_remove_player(&mut *tx, &seat.product_id, seat.game_id, &seat.player_id)
                .await?;
            tracing::warn!(game_id = %seat.game_id.simple(), player = seat.player_id, "unconfirmed seat reservation released");
        }
        tx.commit().await?;
        reaped.reservations_released += stale.len();
        if (stale.len() as i64) < BATCH {
            break;
        }
    }
    loop {
        let mut tx = state.db.begin().await?;
        let stale = intents::take_abandoned(&mut tx, older_than, BATCH).await?;
        for (game_id, product_id) in &stale {
            outbox::owe_remove_game(&mut *tx, product_id, *game_id).await?;
            tracing::warn!(game_id = %game_id.simple(), "abandoned create: the game server is owed a remove_game");
        }
        tx.commit().await?;
        reaped.creates_abandoned += stale.len();
        if (stale.len() as i64) < BATCH {
            break;
        }
    }
    state.rate_limits.forget_idle();
    // Idempotency keys are replayed for a day, then forgotten.
    let purged = crate::store::idempotency::purge(&state.db).await?;
    if purged > 0 {
        tracing::debug!(purged, "old idempotency keys deleted");
    }
    Ok(reaped)
}

fn count_reaped(state: &AppState, reaped: Reaped) {
    for (action, n) in [
        ("expired", reaped.expired),
        ("reset", reaped.reset),
        ("reservation_released", reaped.reservations_released),
        ("create_abandoned", reaped.creates_abandoned),
    ] {
        if n > 0 {
            state
                .metrics
                .reaper
                .get_or_create(&ReapLabels { action })
                .inc_by(n as u64);
        }
    }
}

/// Runs the reaper every `reaper_interval` until `shutdown`.
pub async fn run_reaper(state: AppState, shutdown: CancellationToken) {
    let interval = state.settings.reaper_interval;
    // Start at a random offset so replicas started together do not all look at once.
    let offset = rand::thread_rng().gen_range(0..=interval.as_millis() as u64);
    let mut wait = Duration::from_millis(offset);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = interval;
        match reap_once(&state).await {
            Ok(reaped) => count_reaped(&state, reaped),
            Err(e) => tracing::warn!(error = %e, "reaper pass failed; retrying next interval"),
        }
    }
}

/// What one owed call came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Done,
    Retry,
    GaveUp,
}

/// Sends every owed call that is due now; returns how many were attempted.
pub async fn dispatch_once(state: &AppState) -> sqlx::Result<usize> {
    // The lease outlives the call's own time limit, so only a dead dispatcher's claims expire.
    let lease = state.settings.game_server_timeout.as_secs_f64() + 5.0;
    let owed = outbox::claim(&state.db, BATCH, lease).await?;
    let count = owed.len();
    let results: Vec<sqlx::Result<Sent>> = futures::stream::iter(owed)
        .map(|o| send(state, o))
        .buffer_unordered(SENDS_IN_FLIGHT)
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok(count)
}

async fn send(state: &AppState, owed: Owed) -> sqlx::Result<Sent> {
    let game_id = owed.game_id.simple().to_string();
    let Some(product) = state.product(&owed.product_id) else {
        tracing::error!(
            game_id,
            product = owed.product_id,
            "owed game-server call abandoned: product no longer configured"
        );
        outbox::give_up(&state.db, owed.id, "product no longer configured").await?;
        return Ok(Sent::GaveUp);
    };
    let result = match (owed.call, owed.player_id.as_deref()) {
        (Call::RemoveGame, _) => state.game_servers.remove_game(&product, &game_id).await,
        (Call::RemovePlayer, Some(player)) => {
            state
                .game_servers
                .remove_player(&product, &game_id, player)
                .await
        }
        (Call::RemovePlayer, None) => Err(GameServerError::BadAnswer("no player id".into())),
    };
    let call = match owed.call {
        Call::RemoveGame => "remove_game",
        Call::RemovePlayer => "remove_player",
    };
    match result {
        Ok(()) => {
            outbox::done(&state.db, owed.id).await?;
            Ok(Sent::Done)
        }
        Err(e)
            if !e.is_transient() || owed.attempts >= state.settings.outbox_max_attempts as i32 =>
        {
            tracing::error!(game_id, call, attempts = owed.attempts, error = %e, "owed game-server call abandoned");
            outbox::give_up(&state.db, owed.id, &e.to_string()).await?;
            Ok(Sent::GaveUp)
        }
        Err(e) => {
            let delay = backoff(state.settings.outbox_backoff, owed.attempts);
            tracing::warn!(game_id, call, attempts = owed.attempts, retry_in_ms = delay.as_millis() as u64, error = %e, "owed game-server call failed; will retry");
            outbox::retry_later(&state.db, owed.id, delay.as_secs_f64(), &e.to_string()).await?;
            Ok(Sent::Retry)
        }
    }
}

/// Exponential backoff with jitter: `base * 2^(attempt-1)`, capped, scaled by 0.5 to 1.0.
fn backoff(base: Duration, attempt: i32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.clamp(1, 20).saturating_sub(1));
    exp.min(MAX_BACKOFF)
        .mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

/// Runs the dispatcher until `shutdown`: woken by `NOTIFY matchmaker_outbox` on every commit that
/// owes a call, and by a poll for retries that fall due.
pub async fn run_dispatcher(state: AppState, shutdown: CancellationToken) {
    let mut listener = match PgListener::connect_with(&state.db).await {
        Ok(mut l) => match l.listen("matchmaker_outbox").await {
            Ok(()) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "outbox notifications unavailable; polling");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "outbox notifications unavailable; polling");
            None
        }
    };
    while !state.db.is_closed() {
        match dispatch_once(&state).await {
            // A full batch: there may be more due right now.
            Ok(n) if n as i64 >= BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "outbox dispatch failed; retrying"),
        }
        let notified = async {
            match listener.as_mut() {
                // PgListener reconnects on the next call; after an error, wait a poll.
                Some(l) => {
                    if l.recv().await.is_err() {
                        tokio::time::sleep(DISPATCH_POLL).await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = notified => {}
            _ = tokio::time::sleep(DISPATCH_POLL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(500);
        for _ in 0..20 {
            let first = backoff(base, 1);
            assert!(first >= Duration::from_millis(250) && first <= base);
            let fourth = backoff(base, 4);
            assert!(fourth >= Duration::from_millis(2000) && fourth <= Duration::from_millis(4000));
            assert!(backoff(base, 40) <= MAX_BACKOFF);
        }
    }
}
