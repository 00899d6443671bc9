//! How many requests may wait for a person at once: at most
//! [`MAX_PENDING_PER_TASK`] per task and [`MAX_PENDING_PER_PRINCIPAL`] over
//! all of a principal's tasks.
//!
//! Counting the waiting requests and storing the new one are two store
//! calls; asks arriving together would each count the same room and all be
//! stored. An [`Admission`] counts under a lock and hands back a guard the
//! caller holds until the new request is stored, so the asks of one issuer
//! are admitted one after another. Issuers sharing a database each hold
//! their own lock: at the same instant each may admit one more.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use super::{RequestState, RequestStore, RightRequest, StoreError};

/// The most requests one task may have waiting for a person.
pub const MAX_PENDING_PER_TASK: usize = 16;
/// The most requests one principal's tasks may have waiting for a person:
/// every exchange that asks opens a task of its own, so the cap per task
/// alone let one login store requests without end and bury everyone
/// else's in the approvers' list.
pub const MAX_PENDING_PER_PRINCIPAL: usize = 64;

/// Why a request may not wait.
#[derive(Debug)]
pub(super) enum Crowded {
    /// Its task has [`MAX_PENDING_PER_TASK`] waiting.
    Task,
    /// Its principal has [`MAX_PENDING_PER_PRINCIPAL`] waiting.
    Principal,
    /// The waiting requests could not be read.
    Unreadable(StoreError),
}

/// Admits requests to wait, one at a time.
#[derive(Debug, Default)]
pub(super) struct Admission {
    lock: Mutex<()>,
}

/// One admitted request: hold it until the request is stored.
#[must_use = "the request is admitted only while this is held"]
pub(super) struct Admitted<'a>(
    #[allow(dead_code)] // reason: held for its drop, never read.
    MutexGuard<'a, ()>,
);

impl Admission {
    /// Whether one more request of `principal` on `task` may wait in
    /// `store` at `now`. Blocking.
    ///
    /// # Errors
    /// [`Crowded`]: which cap is reached, or the store failed.
    pub(super) fn admit(
        &self,
        store: &dyn RequestStore,
        principal: &str,
        task: &str,
        now: SystemTime,
    ) -> Result<Admitted<'_>, Crowded> {
        // Nothing held under the lock can be left half changed.
        let guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let waiting = store
            .find(
                &|r: &RightRequest| {
                    r.principal == principal && r.state_at(now) == RequestState::Pending
                },
                MAX_PENDING_PER_PRINCIPAL,
            )
            .map_err(Crowded::Unreadable)?;
        if waiting.len() >= MAX_PENDING_PER_PRINCIPAL {
            return Err(Crowded::Principal);
        }
        if waiting.iter().filter(|r| r.task == task).count() >= MAX_PENDING_PER_TASK {
            return Err(Crowded::Task);
        }
        Ok(Admitted(guard))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use super::*;
    use crate::requests::{MemoryRequestStore, StoreError};

    /// A store whose writes take a while, as a database's do.
    struct SlowStore(MemoryRequestStore);

    impl RequestStore for SlowStore {
        fn create(&self, request: &RightRequest) -> Result<(), StoreError> {
            std::thread::sleep(Duration::from_millis(20));
            self.0.create(request)
        }
        fn get(&self, id: &str) -> Result<Option<RightRequest>, StoreError> {
            self.0.get(id)
        }
        fn replace(&self, current: &RightRequest, new: &RightRequest) -> Result<bool, StoreError> {
            self.0.replace(current, new)
        }
        fn find(
            &self,
            keep: &dyn Fn(&RightRequest) -> bool,
            limit: usize,
        ) -> Result<Vec<RightRequest>, StoreError> {
            self.0.find(keep, limit)
        }
        fn prune_settled(
            &self,
            expired_before: SystemTime,
            limit: usize,
        ) -> Result<usize, StoreError> {
            self.0.prune_settled(expired_before, limit)
        }
    }

    fn pending(id: usize, task: usize, now: SystemTime) -> RightRequest {
        crate::requests::tests::pending_at(&format!("req-{id}"), &format!("task-{task}"), now)
    }

    #[test]
    fn asks_made_at_once_are_counted_one_after_another() {
        let store = SlowStore(MemoryRequestStore::new());
        let admission = Admission::default();
        let now = SystemTime::now();
        let asks = MAX_PENDING_PER_PRINCIPAL + 16;
        let outcomes: Vec<Result<(), Crowded>> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..asks)
                .map(|i| {
                    let (store, admission) = (&store, &admission);
                    // A task of its own each: only the principal's cap binds.
                    scope.spawn(move || {
                        let task = format!("task-{i}");
                        let _admitted = admission.admit(store, "alice@example.com", &task, now)?;
                        store
                            .create(&pending(i, i, now))
                            .map_err(Crowded::Unreadable)
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let admitted = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(admitted, MAX_PENDING_PER_PRINCIPAL);
        assert!(outcomes
            .iter()
            .filter_map(|o| o.as_ref().err())
            .all(|e| matches!(e, Crowded::Principal)));
        let stored = store.find(&|_| true, usize::MAX).unwrap();
        assert_eq!(stored.len(), MAX_PENDING_PER_PRINCIPAL);
    }

    #[test]
    fn a_task_has_its_own_smaller_share() {
        let store = MemoryRequestStore::new();
        let admission = Admission::default();
        let now = SystemTime::now();
        for i in 0..MAX_PENDING_PER_TASK {
            let _admitted = admission
                .admit(&store, "alice@example.com", "task-1", now)
                .unwrap();
            store.create(&pending(i, 1, now)).unwrap();
        }
        assert!(matches!(
            admission.admit(&store, "alice@example.com", "task-1", now),
            Err(Crowded::Task)
        ));
        // Another task of the same principal still has room; another
        // principal is not counted.
        assert!(admission
            .admit(&store, "alice@example.com", "task-2", now)
            .is_ok());
        assert!(admission
            .admit(&store, "bob@example.com", "task-1", now)
            .is_ok());
    }
}
