//! Background work, each a struct holding its dependencies with a `run(self, shutdown)` loop:
//! the reaper and the outbox around a step tests call directly (`Reaper::reap_once`,
//! `Dispatcher::dispatch_once`), the stream intake (tested through Redis) and the lobby
//! listener (`forward_once` per notification). All run in every process; `FOR UPDATE SKIP
//! LOCKED` or an advisory lock decides which process handles what.

pub mod lobby_listener;
pub mod outbox;
pub mod reaper;
pub mod stream_intake;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Sleeps for `wait`; false when `shutdown` came first.
async fn sleep_or_stop(shutdown: &CancellationToken, wait: Duration) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = tokio::time::sleep(wait) => true,
    }
}
