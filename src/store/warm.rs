//! Connections for the hot paths (create, join, quick match) that skip sqlx's release ping.
//!
//! sqlx sends a round trip to the database every time a connection goes back to its pool, in
//! case the work was cancelled half-way: half of a join's round trips. `Warm` keeps a share of
//! the pool's connections checked out; a connection whose work ran to the end (every statement
//! answered, every transaction ended) goes back to `Warm` without that ping, and any other one
//! (an error, a cancelled request) goes back to sqlx, which pings or closes it. A connection
//! left idle for `GRACE` goes back to sqlx too, so that the pool's other users (and other
//! `Warm`s on the same pool) never wait for one that nothing uses (docs/performance.md,
//! *Connections without the release ping*).

use std::{
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use sqlx::{Connection, PgConnection, PgPool, Postgres, pool::PoolConnection};
use tokio::sync::{Notify, Semaphore};

/// A connection kept this long goes back to sqlx (and its lifetime limit) once done.
const RECYCLE: Duration = Duration::from_secs(30 * 60);
/// A connection idle this long goes back to sqlx (checked as often while any is idle).
const GRACE: Duration = Duration::from_millis(20);

struct Held {
    conn: PoolConnection<Postgres>,
    since: Instant,
    idle_at: Instant,
}

type Idle = Mutex<Vec<Held>>;

/// Wakes the hand-back task when a connection is kept, and when its `Warm` goes.
#[derive(Default)]
struct Wake {
    kept: Notify,
    gone: AtomicBool,
}

pub struct Warm {
    pool: PgPool,
    size: usize,
    /// One per connection `Warm` may hold: work waits here, not in sqlx's queue.
    permits: Semaphore,
    idle: Arc<Idle>,
    wake: Arc<Wake>,
}

impl Warm {
    /// Up to `size` of `pool`'s connections; 0 runs everything on the pool as it is. Idle
    /// ones are handed back by a task on the current runtime, if there is one.
    pub fn new(pool: PgPool, size: usize) -> Self {
        Self::with_grace(pool, size, GRACE)
    }

    /// As [`Warm::new`], with idle connections handed back after `grace`.
    pub fn with_grace(pool: PgPool, size: usize, grace: Duration) -> Self {
        let idle = Arc::new(Mutex::new(Vec::with_capacity(size)));
        let wake = Arc::new(Wake::default());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(hand_back_idle(Arc::downgrade(&idle), wake.clone(), grace));
        }
        Self {
            pool,
            size,
            permits: Semaphore::new(size),
            idle,
            wake,
        }
    }

    /// Runs `f`'s statements on a connection, each its own transaction (use
    /// [`Warm::transaction`] for one around them).
    pub async fn run<R>(
        &self,
        f: impl AsyncFnOnce(&mut PgConnection) -> sqlx::Result<R>,
    ) -> sqlx::Result<R> {
        if self.size == 0 {
            let mut conn = self.pool.acquire().await?;
            return f(&mut conn).await;
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.idle().pop();
        let mut held = match idle {
            Some(held) => held,
            None => {
                let conn = self.pool.acquire().await?;
                let now = Instant::now();
                Held {
                    conn,
                    since: now,
                    idle_at: now,
                }
            }
        };
        // Dropped here when `f` fails or is cancelled: back to sqlx, which checks it.
        let out = f(&mut held.conn).await;
        if out.is_ok() && !held.conn.is_in_transaction() && held.since.elapsed() < RECYCLE {
            held.idle_at = Instant::now();
            self.idle().push(held);
            self.wake.kept.notify_one();
        }
        out
    }

    /// Runs `f` in one transaction, committed when `f` answers `Ok` and rolled back otherwise.
    pub async fn transaction<R>(
        &self,
        f: impl AsyncFnOnce(&mut PgConnection) -> sqlx::Result<R>,
    ) -> sqlx::Result<R> {
        self.run(async |conn| {
            let mut tx = conn.begin().await?;
            let out = f(&mut tx).await?;
            tx.commit().await?;
            Ok(out)
        })
        .await
    }

    /// Connections held idle right now.
    pub fn idle_count(&self) -> usize {
        self.idle().len()
    }

    /// Gives every idle connection back to sqlx (at shutdown).
    pub fn release_all(&self) {
        self.idle().clear();
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Held>> {
        lock(&self.idle)
    }
}

impl Drop for Warm {
    fn drop(&mut self) {
        // The hand-back task may be asleep with nothing idle: let it see that `Warm` is gone
        // (a wake-up it has not waited for yet is kept for it).
        self.wake.gone.store(true, Ordering::Release);
        self.wake.kept.notify_one();
    }
}

fn lock(idle: &Idle) -> MutexGuard<'_, Vec<Held>> {
    idle.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every `grace` while any connection is idle, those idle that long go back to sqlx; with
/// none idle it sleeps until one is kept. Ends with its `Warm`.
async fn hand_back_idle(idle: Weak<Idle>, wake: Arc<Wake>, grace: Duration) {
    loop {
        let none_idle = match idle.upgrade() {
            Some(idle) => lock(&idle).is_empty(),
            None => return,
        };
        if none_idle {
            // A connection kept meanwhile left a permit: this returns at once.
            wake.kept.notified().await;
        }
        if wake.gone.load(Ordering::Acquire) {
            return;
        }
        tokio::time::sleep(grace).await;
        let Some(idle) = idle.upgrade() else { return };
        // Oldest first: the list is pushed and popped at its end.
        let stale: Vec<Held> = {
            let mut held = lock(&idle);
            let fresh = held
                .iter()
                .position(|h| h.idle_at.elapsed() < grace)
                .unwrap_or(held.len());
            held.drain(..fresh).collect()
        };
        drop(stale);
    }
}
