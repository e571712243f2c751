//! Circuit breakers, one per instance, in this process (docs/fleets.md, "An instance that
//! keeps failing"): after a few faults in a row an instance gets no new games for a while;
//! then one create is let through as a probe, and its outcome closes or reopens the breaker.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use uuid::Uuid;

/// Faults in a row that open a breaker.
pub const FAULTS_TO_OPEN: u32 = 3;

#[derive(Debug, Default)]
struct Breaker {
    faults: u32,
    /// Open until then; `None` while closed.
    open_until: Option<Instant>,
    /// A probe was let through at this time and has not reported yet.
    probe_since: Option<Instant>,
}

#[derive(Debug)]
pub struct Breakers {
    open_for: Duration,
    by_instance: Mutex<HashMap<Uuid, Breaker>>,
}

impl Breakers {
    pub fn new(open_for: Duration) -> Self {
        Self {
            open_for,
            by_instance: Mutex::default(),
        }
    }

    /// A call's outcome: a fault, or anything else (an answer, even a refusal).
    pub fn record(&self, key: Uuid, fault: bool) {
        let mut all = self.lock();
        if !fault {
            all.remove(&key);
            return;
        }
        let b = all.entry(key).or_default();
        b.faults += 1;
        if b.faults >= FAULTS_TO_OPEN || b.probe_since.is_some() {
            if b.open_until.is_none() || b.probe_since.is_some() {
                tracing::warn!(server_key = %key, faults = b.faults, "game-server instance failing: breaker open");
            }
            b.open_until = Some(Instant::now() + self.open_for);
            b.probe_since = None;
        }
    }

    /// Instances a new game must not go to now. An open breaker whose time is up lets this one
    /// caller through (the probe) and keeps the others away until the probe reports.
    pub fn excluded(&self) -> Vec<Uuid> {
        let now = Instant::now();
        let mut all = self.lock();
        let mut out = Vec::new();
        for (key, b) in all.iter_mut() {
            let Some(until) = b.open_until else { continue };
            if now < until {
                out.push(*key);
                continue;
            }
            match b.probe_since {
                // A probe that never reported (placed elsewhere, or still running) blocks the
                // others for one open period at most.
                Some(since) if now < since + self.open_for => out.push(*key),
                _ => b.probe_since = Some(now),
            }
        }
        out
    }

    /// Whether calls to the instance are going through (its breaker is closed).
    pub fn healthy(&self, key: Uuid) -> bool {
        self.lock().get(&key).is_none_or(|b| b.open_until.is_none())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Breaker>> {
        self.by_instance
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_faults_in_a_row_then_probes_once() {
        let breakers = Breakers::new(Duration::from_millis(30));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        breakers.record(a, true);
        breakers.record(a, true);
        breakers.record(a, false); // an answer resets the count
        breakers.record(a, true);
        breakers.record(a, true);
        assert!(breakers.excluded().is_empty() && breakers.healthy(a));
        breakers.record(a, true);
        assert_eq!(breakers.excluded(), vec![a]);
        assert!(!breakers.healthy(a) && breakers.healthy(b));

        std::thread::sleep(Duration::from_millis(40));
        assert!(breakers.excluded().is_empty(), "the probe goes through");
        assert_eq!(breakers.excluded(), vec![a], "the others wait for it");
        breakers.record(a, true);
        assert_eq!(
            breakers.excluded(),
            vec![a],
            "a failed probe reopens at once"
        );

        std::thread::sleep(Duration::from_millis(40));
        assert!(breakers.excluded().is_empty());
        breakers.record(a, false);
        assert!(breakers.excluded().is_empty() && breakers.healthy(a));
    }
}
