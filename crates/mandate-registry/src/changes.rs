//! Change notification for a [`SharedIndex`]: a counter that moves whenever a check
//! could start denying a subject it allowed, so a service can stop calls already in
//! flight instead of only refusing the next ones.
//!
//! Two kinds of change exist. Events — an entry applied, a reset, a lost confirmation —
//! move the counter where they happen (`index.rs`). The passing of time is the other:
//! an index turns stale when its last heartbeat grows older than the bound, with no
//! event at all. So while anyone watches, a timer task wakes at the moment freshness
//! would run out (and at least every half bound while stale) and moves the counter when
//! it did. The timer stops once the last receiver is gone and starts again with the
//! next subscriber; it never runs without a tokio runtime.
//!
//! This module must never move the counter backwards or skip a staleness transition it
//! woke for, and must never keep a timer alive for nobody.

use std::sync::PoisonError;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::index::SharedIndex;

/// The longest the timer sleeps at once, so an index whose bound is practically
/// infinite (an in-process store) still notices when its watchers are gone.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// The shortest sleep while stale, so a tiny bound cannot spin the timer.
const MIN_SLEEP: Duration = Duration::from_millis(5);

impl SharedIndex {
    /// A receiver of the index's change counter: it moves when an entry is applied, the
    /// index is reset or loses its confirmation, and when it turns stale because no
    /// heartbeat came within the bound. Re-check what you hold when it moves.
    ///
    /// Called within a tokio runtime, it also keeps the staleness timer running for as
    /// long as any receiver lives; outside one, staleness is noticed only by a check.
    pub fn subscribe_changes(&self) -> watch::Receiver<u64> {
        let mut running = self
            .changes
            .timer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let receiver = self.changes.sender.subscribe();
        if !*running {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                *running = true;
                runtime.spawn(staleness_timer(self.clone()));
            }
        }
        receiver
    }
}

/// Moves the counter each time the index turns stale by the passing of time; exits
/// when nobody watches.
async fn staleness_timer(index: SharedIndex) {
    let mut fresh = index.freshness(Instant::now()).is_ok();
    loop {
        let wait = next_wake(&index, fresh);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = index.changes.sender.closed() => {}
        }
        {
            let mut running = index
                .changes
                .timer
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if index.changes.sender.receiver_count() == 0 {
                *running = false;
                return;
            }
        }
        let now_fresh = index.freshness(Instant::now()).is_ok();
        if fresh && !now_fresh {
            index.changes.bump();
        }
        fresh = now_fresh;
    }
}

/// How long to sleep: while fresh, until just past the moment freshness runs out
/// (heartbeats only move it later, so waking then is never too late); while stale,
/// half the bound, to see freshness come back.
fn next_wake(index: &SharedIndex, fresh: bool) -> Duration {
    let bound = index.staleness_bound();
    let wait = match index.last_heartbeat() {
        Some(last) if fresh => last.checked_add(bound).map_or(MAX_SLEEP, |deadline| {
            deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(1)
        }),
        _ => bound / 2,
    };
    wait.clamp(MIN_SLEEP, MAX_SLEEP)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

    use std::time::SystemTime;

    use super::*;
    use crate::entry::RevocationEntry;
    use crate::kind::RevocationKind;

    /// Bounds each wait so a broken timer fails instead of hanging; never asserted on.
    const HUNG: Duration = Duration::from_secs(20);

    fn task_entry(seq: u64) -> RevocationEntry {
        RevocationEntry {
            seq,
            kind: RevocationKind::Task,
            value: format!("task-{seq}"),
            reason: String::new(),
            revoked_by: "ops".into(),
            at: SystemTime::now(),
            lifted: false,
        }
    }

    #[tokio::test]
    async fn applying_resetting_and_losing_confirmation_move_the_counter() {
        let index = SharedIndex::new(Duration::from_secs(3600));
        index.mark_fresh(Instant::now());
        let mut changes = index.subscribe_changes();
        assert!(!changes.has_changed().unwrap());

        index.apply(&task_entry(1)).unwrap();
        assert!(changes.has_changed().unwrap());
        changes.borrow_and_update();

        // A refused entry changes nothing.
        assert!(index.apply(&task_entry(5)).is_err());
        assert!(!changes.has_changed().unwrap());

        index.mark_stale();
        assert!(changes.has_changed().unwrap());
        changes.borrow_and_update();

        index.reset();
        assert!(changes.has_changed().unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn turning_stale_with_time_moves_the_counter() {
        let index = SharedIndex::new(Duration::from_millis(50));
        index.mark_fresh(Instant::now());
        let mut changes = index.subscribe_changes();
        tokio::time::timeout(HUNG, changes.changed())
            .await
            .expect("staleness never reported")
            .unwrap();
        // Reported only once it is true.
        assert!(index.freshness(Instant::now()).is_err());

        // Confirmed again, then stale again: reported again.
        changes.borrow_and_update();
        index.mark_fresh(Instant::now());
        tokio::time::timeout(HUNG, changes.changed())
            .await
            .expect("the second staleness never reported")
            .unwrap();
        assert!(index.freshness(Instant::now()).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_timer_runs_only_while_someone_watches() {
        let index = SharedIndex::new(Duration::from_millis(20));
        assert!(!index.changes.timer_running());
        let changes = index.subscribe_changes();
        assert!(index.changes.timer_running());
        drop(changes);
        tokio::time::timeout(HUNG, async {
            while index.changes.timer_running() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the timer outlived its watchers");
        let _again = index.subscribe_changes();
        assert!(index.changes.timer_running());
    }

    #[test]
    fn outside_a_runtime_events_still_notify() {
        let index = SharedIndex::new(Duration::from_secs(1));
        let changes = index.subscribe_changes();
        assert!(!index.changes.timer_running());
        index.apply(&task_entry(1)).unwrap();
        assert!(changes.has_changed().unwrap());
    }
}
