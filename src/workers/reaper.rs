//! The reaper (docs/lifecycle.md): expires games, resets full games whose last joiner never
//! connected, frees reservations whose join died, and turns abandoned create intents into owed
//! `remove_game` calls. Each owed call is written in the transaction that decides it. It also
//! declares lost the game-server instances whose heartbeats stopped (docs/fleets.md).
//! Housekeeping rides along: day-old idempotency keys and idle rate-limit keys are forgotten.

use std::{sync::Arc, time::Duration};

use rand::Rng;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{
    domain::{Expiry, GameState},
    lobby::limits::RateLimits,
    metrics::{Metrics, ReapLabels},
    store::{games, idempotency, instances, intents, outbox},
};

/// Games (or reservations, or intents) handled per transaction.
const BATCH: i64 = 100;
/// How long a lost instance stays in the fleet's list.
const FORGET_LOST_AFTER: Duration = Duration::from_secs(3600);

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
    /// Registered game-server instances that stopped sending heartbeats.
    pub instances_lost: usize,
    /// Games those instances held, ended.
    pub games_ended: usize,
}

pub struct Reaper {
    pub db: PgPool,
    pub expiry: Expiry,
    /// Age at which an unconfirmed reservation or create intent is given up.
    pub reservation_timeout: Duration,
    /// A registered instance without a heartbeat for this long is lost.
    pub instance_timeout: Duration,
    pub interval: Duration,
    pub metrics: Arc<Metrics>,
    pub rate_limits: Arc<RateLimits>,
}

impl Reaper {
    /// One pass: every game, reservation and intent overdue now, oldest deadline first.
    pub async fn reap_once(&self) -> sqlx::Result<Reaped> {
        let expiry = &self.expiry;
        let mut reaped = Reaped::default();
        loop {
            let mut tx = self.db.begin().await?;
            let batch = games::lock_expired(&mut tx, BATCH).await?;
            for game in &batch {
                let stalled_full =
                    game.state == GameState::CreatorJoined && game.seats_taken >= game.num_players;
                if stalled_full {
                    if let Some(player) = games::newest_joiner(&mut tx, game.game_id).await? {
                        games::remove_player(&mut tx, game.game_id, &player).await?;
                        games::restart_clock(&mut tx, game.game_id, &expiry.all_secs()).await?;
                        outbox::owe_remove_player(
                            &mut *tx,
                            &game.product_id,
                            game.game_id,
                            &player,
                        )
                        .await?;
                        tracing::info!(game_id = %game.game_id.simple(), player, "game reset: a joiner never connected");
                        reaped.reset += 1;
                        continue;
                    }
                }
                games::delete(&mut *tx, game.game_id, &game.product_id).await?;
                outbox::owe_remove_game(&mut *tx, &game.product_id, game.game_id, game.server_key)
                    .await?;
                tracing::info!(game_id = %game.game_id.simple(), state = %game.state, "game expired");
                reaped.expired += 1;
            }
            tx.commit().await?;
            if (batch.len() as i64) < BATCH {
                break;
            }
        }
        let older_than = self.reservation_timeout.as_secs_f64();
        loop {
            let mut tx = self.db.begin().await?;
            let stale = games::release_stale_reservations(&mut tx, older_than, BATCH).await?;
            for seat in &stale {
                games::restart_clock(&mut tx, seat.game_id, &expiry.all_secs()).await?;
                outbox::owe_remove_player(
                    &mut *tx,
                    &seat.product_id,
                    seat.game_id,
                    &seat.player_id,
                )
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
            let mut tx = self.db.begin().await?;
            let stale = intents::take_abandoned(&mut tx, older_than, BATCH).await?;
            for (game_id, product_id, server_key) in &stale {
                outbox::owe_remove_game(&mut *tx, product_id, *game_id, *server_key).await?;
                tracing::warn!(game_id = %game_id.simple(), "abandoned create: the game server is owed a remove_game");
            }
            tx.commit().await?;
            reaped.creates_abandoned += stale.len();
            if (stale.len() as i64) < BATCH {
                break;
            }
        }
        let (lost, ended) = self.lose_silent_instances().await?;
        reaped.instances_lost = lost;
        reaped.games_ended = ended;
        Ok(reaped)
    }

    /// Declares lost the registered instances whose heartbeats stopped, and ends their games
    /// (docs/fleets.md): in one transaction, so no create or join sees half of it.
    async fn lose_silent_instances(&self) -> sqlx::Result<(usize, usize)> {
        let mut tx = self.db.begin().await?;
        let lost = instances::take_lost(&mut tx, self.instance_timeout.as_secs_f64()).await?;
        if lost.is_empty() {
            return Ok((0, 0));
        }
        let keys: Vec<_> = lost.iter().map(|(key, ..)| *key).collect();
        let ended =
            instances::end_games_of(&mut tx, &keys, self.expiry.secs(GameState::Ended)).await?;
        tx.commit().await?;
        for (_, product, instance) in &lost {
            tracing::warn!(product, instance, "game-server instance lost: no heartbeat");
        }
        if !ended.is_empty() {
            tracing::warn!(games = ended.len(), "games of lost instances ended");
        }
        Ok((lost.len(), ended.len()))
    }

    /// Forgets what no longer matters: day-old idempotency keys, idle rate-limit keys.
    pub async fn housekeep_once(&self) -> sqlx::Result<u64> {
        self.rate_limits.forget_idle();
        instances::forget_lost(&self.db, FORGET_LOST_AFTER.as_secs_f64()).await?;
        let purged = idempotency::purge(&self.db).await?;
        if purged > 0 {
            tracing::debug!(purged, "old idempotency keys deleted");
        }
        Ok(purged)
    }

    fn count(&self, reaped: Reaped) {
        for (action, n) in [
            ("expired", reaped.expired),
            ("reset", reaped.reset),
            ("reservation_released", reaped.reservations_released),
            ("create_abandoned", reaped.creates_abandoned),
            ("instance_lost", reaped.instances_lost),
            ("instance_game_ended", reaped.games_ended),
        ] {
            if n > 0 {
                self.metrics
                    .reaper
                    .get_or_create(&ReapLabels { action })
                    .inc_by(n as u64);
            }
        }
    }

    /// A pass every `interval` until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        // Start at a random offset so replicas started together do not all look at once.
        let offset = rand::thread_rng().gen_range(0..=self.interval.as_millis() as u64);
        let mut wait = Duration::from_millis(offset);
        while super::sleep_or_stop(&shutdown, wait).await {
            wait = self.interval;
            match self.reap_once().await {
                Ok(reaped) => self.count(reaped),
                Err(e) => tracing::warn!(error = %e, "reaper pass failed; retrying next interval"),
            }
            if let Err(e) = self.housekeep_once().await {
                tracing::warn!(error = %e, "housekeeping failed; retrying next interval");
            }
        }
    }
}
