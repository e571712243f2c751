//! Background work, each a `run(self, shutdown)` loop around a step that tests call directly:
//! the reaper (`reap_once`), the outbox (`dispatch_once`), the stream intake, the lobby
//! listener. All run in every process; `FOR UPDATE SKIP LOCKED` or an advisory lock decides
//! which process handles what.

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
