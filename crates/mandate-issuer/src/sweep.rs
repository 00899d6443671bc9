//! Retention: how long the issuer keeps what is finished, and the pruning
//! that keeps its stores bounded.
//!
//! Closed tasks and settled requests for more rights (granted, denied or
//! expired) are removed once they are older than their [`Retention`];
//! open tasks and pending requests are never removed. A closed task is
//! kept at least as long as a mandate lives ([`Retention::tasks_cutoff`]),
//! so by the time it goes every mandate minted for it has expired and a
//! revocation still being retried has no token left to stop. A removed
//! record answers as one that never existed (404, `invalid_grant`).
//!
//! Pruning runs in batches of [`PRUNE_BATCH`], at most [`MAX_BATCHES`] per
//! run, each batch one call into a store: nothing here holds a lock across
//! a call back into the issuer. It is blocking work; the sweeper runs it
//! on Tokio's blocking threads. The audit trail is not touched: removing a
//! finished record changes no one's authority, so it is logged, not audited.

use std::time::{Duration, SystemTime};

use crate::requests::RequestStore;
use crate::tasks::TaskStore;

/// Closed tasks are kept this long after they close, by default.
pub const DEFAULT_CLOSED_TASKS: Duration = Duration::from_secs(30 * 24 * 3600);

/// Settled requests are kept this long after their expiry, by default.
pub const DEFAULT_DECIDED_REQUESTS: Duration = Duration::from_secs(7 * 24 * 3600);

/// The most records one batch removes.
pub const PRUNE_BATCH: usize = 1000;

/// The most batches one run removes; what is left waits for the next run.
pub const MAX_BATCHES: usize = 10;

/// The longest time between two runs, however long the retention.
pub const MAX_PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How long finished records are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// How long a closed task is kept after it closed.
    pub closed_tasks: Duration,
    /// How long a granted, denied or expired request is kept after its
    /// expiry (at most the request lifetime after its decision).
    pub decided_requests: Duration,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            closed_tasks: DEFAULT_CLOSED_TASKS,
            decided_requests: DEFAULT_DECIDED_REQUESTS,
        }
    }
}

impl Retention {
    /// Tasks closed at or before this instant may go: `closed_tasks` ago,
    /// or `mandate_ttl` ago if that is longer, so no mandate of a removed
    /// task is still alive.
    pub fn tasks_cutoff(&self, now: SystemTime, mandate_ttl: Duration) -> SystemTime {
        before(now, self.closed_tasks.max(mandate_ttl))
    }

    /// Requests settled and expired at or before this instant may go.
    pub fn requests_cutoff(&self, now: SystemTime) -> SystemTime {
        before(now, self.decided_requests)
    }

    /// How often to prune when the sweeper ticks every `sweep_interval`:
    /// a tenth of the shorter retention, no more often than the sweeper
    /// and at least every [`MAX_PRUNE_EVERY`].
    pub fn every(&self, sweep_interval: Duration) -> Duration {
        (self.closed_tasks.min(self.decided_requests) / 10)
            .min(MAX_PRUNE_EVERY)
            .max(sweep_interval)
    }
}

fn before(now: SystemTime, age: Duration) -> SystemTime {
    now.checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH)
}

/// What one run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Closed tasks removed.
    pub tasks: usize,
    /// Settled requests removed.
    pub requests: usize,
}

/// Removes closed tasks that closed at or before `cutoff`, batch by batch.
///
/// # Errors
/// The store failed; what was removed before stays removed.
pub fn prune_tasks(
    store: &dyn TaskStore,
    cutoff: SystemTime,
) -> Result<usize, crate::tasks::StoreError> {
    in_batches(|limit| store.prune_closed(cutoff, limit))
}

/// Removes settled requests that expired at or before `cutoff`, batch by
/// batch.
///
/// # Errors
/// The store failed; what was removed before stays removed.
pub fn prune_requests(
    store: &dyn RequestStore,
    cutoff: SystemTime,
) -> Result<usize, crate::requests::StoreError> {
    in_batches(|limit| store.prune_settled(cutoff, limit))
}

/// Runs `batch` until one comes back short or [`MAX_BATCHES`] ran.
fn in_batches<E>(mut batch: impl FnMut(usize) -> Result<usize, E>) -> Result<usize, E> {
    let mut total = 0;
    for _ in 0..MAX_BATCHES {
        let removed = batch(PRUNE_BATCH)?;
        total += removed;
        if removed < PRUNE_BATCH {
            break;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use mandate_core::SecretKey;

    use super::*;
    use crate::requests::{MemoryRequestStore, RequestState, RightRequest, SledRequestStore};
    use crate::tasks::{MemoryTaskStore, SledTaskStore, Task, TaskState};

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_590_400 + secs)
    }

    fn task(id: &str, closed_at: Option<SystemTime>) -> Task {
        Task {
            id: id.into(),
            principal: "alice@example.com".into(),
            agent: "orchestrator".into(),
            agent_key: SecretKey::generate().public(),
            rights: vec!["files:read".parse().unwrap()],
            description: "read".into(),
            state: if closed_at.is_some() {
                TaskState::Closed
            } else {
                TaskState::Open
            },
            created: at(0),
            deadline: at(100),
            mandates: 1,
            closed_by: closed_at.map(|_| "agent".into()),
            closed_at,
            identity: None,
        }
    }

    fn request(id: &str, state: RequestState, expires: u64) -> RightRequest {
        RightRequest {
            id: id.into(),
            task: "task-1".into(),
            principal: "alice@example.com".into(),
            agent: "orchestrator".into(),
            rights: vec!["payments:transfer".parse().unwrap()],
            reason: "pay".into(),
            policy_reason: "needs approval".into(),
            state,
            created: at(0),
            expires_at: at(expires),
            decided_by: None,
        }
    }

    /// Each task store: only closed tasks past the cutoff go, in batches.
    fn prunes_closed_tasks(store: &dyn TaskStore) {
        store.create(&task("open", None)).unwrap();
        store.create(&task("closed-early", Some(at(10)))).unwrap();
        store.create(&task("closed-late", Some(at(50)))).unwrap();
        // Closed before close times were kept: counts from its deadline.
        let mut legacy = task("legacy", Some(at(10)));
        legacy.closed_at = None;
        store.create(&legacy).unwrap();
        assert_eq!(prune_tasks(store, at(20)).unwrap(), 1);
        assert!(store.get("closed-early").unwrap().is_none());
        assert!(store.get("closed-late").unwrap().is_some());
        assert!(store.get("legacy").unwrap().is_some());
        assert_eq!(prune_tasks(store, at(1000)).unwrap(), 2);
        assert!(store.get("open").unwrap().is_some(), "open tasks stay");
        assert_eq!(store.prune_closed(at(1000), 10).unwrap(), 0);
        for i in 0..5 {
            store.create(&task(&format!("t{i}"), Some(at(10)))).unwrap();
        }
        assert_eq!(store.prune_closed(at(1000), 2).unwrap(), 2, "bounded");
        assert_eq!(prune_tasks(store, at(1000)).unwrap(), 3);
    }

    #[test]
    fn memory_and_sled_prune_only_closed_tasks_past_retention() {
        prunes_closed_tasks(&MemoryTaskStore::new());
        let dir = tempfile::tempdir().unwrap();
        prunes_closed_tasks(&SledTaskStore::open(dir.path()).unwrap());
    }

    fn prunes_settled_requests(store: &dyn RequestStore) {
        store
            .create(&request("pending", RequestState::Pending, 10))
            .unwrap();
        store
            .create(&request("granted", RequestState::Granted, 10))
            .unwrap();
        store
            .create(&request("denied", RequestState::Denied, 50))
            .unwrap();
        store
            .create(&request("expired", RequestState::Expired, 10))
            .unwrap();
        assert_eq!(prune_requests(store, at(20)).unwrap(), 2);
        assert!(store.get("granted").unwrap().is_none());
        assert!(store.get("expired").unwrap().is_none());
        assert!(store.get("denied").unwrap().is_some());
        assert_eq!(prune_requests(store, at(1000)).unwrap(), 1);
        // Pending in its record: the sweeper ends it first.
        assert!(store.get("pending").unwrap().is_some());
    }

    #[test]
    fn memory_and_sled_prune_only_settled_requests_past_retention() {
        prunes_settled_requests(&MemoryRequestStore::new());
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn RequestStore> = Arc::new(SledRequestStore::open(dir.path()).unwrap());
        prunes_settled_requests(store.as_ref());
    }

    #[test]
    fn a_closed_task_outlives_its_mandates_and_runs_are_spaced() {
        let retention = Retention {
            closed_tasks: Duration::from_secs(1),
            decided_requests: Duration::from_secs(3600),
        };
        let now = at(1000);
        assert_eq!(
            retention.tasks_cutoff(now, Duration::from_secs(300)),
            at(700)
        );
        assert_eq!(
            retention.requests_cutoff(now),
            now - Duration::from_secs(3600)
        );
        assert_eq!(
            retention.every(Duration::from_secs(5)),
            Duration::from_secs(5)
        );
        assert_eq!(
            Retention::default().every(Duration::from_secs(5)),
            MAX_PRUNE_EVERY
        );
    }
}
