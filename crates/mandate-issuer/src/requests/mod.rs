//! Rights asked for at run time: the records of an agent's requests for more
//! than its task was given, and how they are decided.
//!
//! An agent holding a task's mandate asks for more rights with a reason
//! ([`Negotiator::ask`]). The issuance policy grants (the task's rights grow
//! and a mandate with them is minted), refuses, or asks a person. A request
//! that needs a person is stored as a [`RightRequest`] in state
//! [`RequestState::Pending`] until the task's principal or a member of a
//! configured approver group approves or denies it, or it expires
//! (default 15 minutes); the agent long-polls for the outcome.
//!
//! A token exchange the policy answers with `ask` stores the same kind of
//! request, on a task that holds nothing until it is approved; the agent
//! collects that task's first mandate with the approval grant
//! (`at_exchange`, [`Negotiator::defer`], [`Negotiator::collect`]).
//!
//! Records live behind [`RequestStore`]. Every state change is a
//! compare-and-swap of the whole record ([`RequestStore::replace`]), so two
//! concurrent approvals grant once and an approval racing a denial has one
//! winner; a pending request past its expiry is swapped to
//! [`RequestState::Expired`] by whoever sees it first and can never be
//! approved. [`SledRequestStore`] is the default; [`MemoryRequestStore`]
//! serves tests. No sled type appears in a public signature.

mod admission;
mod at_exchange;
mod memory;
mod negotiator;
mod record;
mod signal;
mod sled;

use std::time::SystemTime;

use mandate_core::Right;

pub use self::admission::{MAX_PENDING_PER_PRINCIPAL, MAX_PENDING_PER_TASK};
pub use self::at_exchange::{APPROVAL_GRANT_TYPE, POLL_INTERVAL};
pub use self::memory::MemoryRequestStore;
pub use self::negotiator::{
    Approver, Asked, Negotiator, NegotiatorOptions, Polled, RequestError, DEFAULT_REQUEST_TTL,
    MAX_LISTED, MAX_REASON, MAX_RIGHTS, MAX_WAIT,
};
pub use self::signal::DecisionSignal;
pub use self::sled::SledRequestStore;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestState {
    /// Waiting for a person.
    Pending,
    /// Approved: the task's rights include the request's.
    Granted,
    /// Denied by a person.
    Denied,
    /// Nobody decided before its expiry; it can no longer be approved.
    Expired,
}

impl RequestState {
    /// `pending`, `granted`, `denied` or `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Granted => "granted",
            RequestState::Denied => "denied",
            RequestState::Expired => "expired",
        }
    }

    /// The state named `text`.
    pub fn parse(text: &str) -> Option<RequestState> {
        [
            RequestState::Pending,
            RequestState::Granted,
            RequestState::Denied,
            RequestState::Expired,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// One agent's request for more rights on its task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RightRequest {
    /// Its id (`req-<uuid>`).
    pub id: String,
    /// The task whose rights would grow.
    pub task: String,
    /// The task's principal (who may approve).
    pub principal: String,
    /// The task's agent, which asked.
    pub agent: String,
    /// The rights asked for that the task does not hold, sorted.
    pub rights: Vec<Right>,
    /// Why the agent says it needs them.
    pub reason: String,
    /// Why the issuance policy asked a person.
    pub policy_reason: String,
    /// Where it stands.
    pub state: RequestState,
    /// When it was asked.
    pub created: SystemTime,
    /// After this a pending request can no longer be approved.
    pub expires_at: SystemTime,
    /// The principal that approved or denied it, or `expiry`.
    pub decided_by: Option<String>,
}

impl RightRequest {
    /// Whether it may be pruned under a retention whose cutoff is
    /// `expired_before`: settled in its record, and expired by then.
    pub fn prunable(&self, expired_before: SystemTime) -> bool {
        self.state != RequestState::Pending && self.expires_at <= expired_before
    }

    /// Its state at `now`: a pending request past its expiry is expired,
    /// whether or not the record says so yet.
    pub fn state_at(&self, now: SystemTime) -> RequestState {
        if self.state == RequestState::Pending && now >= self.expires_at {
            RequestState::Expired
        } else {
            self.state
        }
    }
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend failed.
    #[error("request store: {0}")]
    Backend(String),
    /// A stored record does not decode.
    #[error("request store holds a corrupt record for `{0}`")]
    Corrupt(String),
    /// A request with this id exists already.
    #[error("request `{0}` exists already")]
    Exists(String),
}

/// Storage for right requests.
pub trait RequestStore: Send + Sync {
    /// Stores a new request.
    ///
    /// # Errors
    /// [`StoreError::Exists`] when the id is taken, or a backend failure.
    fn create(&self, request: &RightRequest) -> Result<(), StoreError>;

    /// The request with `id`.
    ///
    /// # Errors
    /// A backend failure or a corrupt record.
    fn get(&self, id: &str) -> Result<Option<RightRequest>, StoreError>;

    /// Replaces `current` by `new` only if the stored record still equals
    /// `current`; `Ok(false)` when it changed meanwhile. A decision is
    /// durable when this returns.
    ///
    /// # Errors
    /// A backend failure.
    fn replace(&self, current: &RightRequest, new: &RightRequest) -> Result<bool, StoreError>;

    /// Up to `limit` requests `keep` accepts, oldest first.
    ///
    /// # Errors
    /// A backend failure or a corrupt record.
    fn find(
        &self,
        keep: &dyn Fn(&RightRequest) -> bool,
        limit: usize,
    ) -> Result<Vec<RightRequest>, StoreError>;

    /// Removes up to `limit` requests that are no longer pending (granted,
    /// denied or expired) and whose expiry is at or before
    /// `expired_before`; returns how many went. A request whose record
    /// still says pending is never removed, even past its expiry: the
    /// sweeper first ends it (and any exchange waiting on it).
    ///
    /// # Errors
    /// A backend failure.
    fn prune_settled(&self, expired_before: SystemTime, limit: usize) -> Result<usize, StoreError>;

    /// Flushes anything buffered (on shutdown).
    ///
    /// # Errors
    /// A backend failure.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use super::*;

    /// Alice's pending request `id` on `task`, made `now`, waiting a minute.
    pub(super) fn pending_at(id: &str, task: &str, now: SystemTime) -> RightRequest {
        RightRequest {
            id: id.into(),
            task: task.into(),
            principal: "alice@example.com".into(),
            agent: "orchestrator".into(),
            rights: vec!["payments:transfer".parse().unwrap()],
            reason: "pay the supplier".into(),
            policy_reason: "needs approval".into(),
            state: RequestState::Pending,
            created: now,
            expires_at: now + Duration::from_secs(60),
            decided_by: None,
        }
    }

    fn pending(id: &str) -> RightRequest {
        // Whole milliseconds: the stored form keeps no finer time.
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_590_400_123);
        pending_at(id, "task-1", now)
    }

    /// Each store: a decision swaps once; a stale swap fails.
    fn decides_once(store: &dyn RequestStore) {
        let request = pending("req-1");
        store.create(&request).unwrap();
        assert!(matches!(store.create(&request), Err(StoreError::Exists(_))));
        let granted = RightRequest {
            state: RequestState::Granted,
            decided_by: Some("alice@example.com".into()),
            ..request.clone()
        };
        let denied = RightRequest {
            state: RequestState::Denied,
            decided_by: Some("carol@example.com".into()),
            ..request.clone()
        };
        assert!(store.replace(&request, &granted).unwrap());
        assert!(!store.replace(&request, &denied).unwrap());
        assert!(!store.replace(&request, &granted).unwrap());
        let stored = store.get("req-1").unwrap().unwrap();
        assert_eq!(stored, granted);
        store.create(&pending("req-2")).unwrap();
        let found = store
            .find(&|r| r.state == RequestState::Pending, 10)
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, "req-2");
        assert!(store.get("req-3").unwrap().is_none());
    }

    #[test]
    fn the_memory_store_decides_once() {
        decides_once(&MemoryRequestStore::new());
    }

    #[test]
    fn the_sled_store_decides_once_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        decides_once(&SledRequestStore::open(dir.path()).unwrap());
        // Reopened: the decision is still there.
        let store = SledRequestStore::open(dir.path()).unwrap();
        assert_eq!(
            store.get("req-1").unwrap().unwrap().state,
            RequestState::Granted
        );
    }

    #[test]
    fn a_pending_request_past_its_expiry_reads_as_expired() {
        let request = pending("req-1");
        assert_eq!(request.state_at(request.created), RequestState::Pending);
        assert_eq!(request.state_at(request.expires_at), RequestState::Expired);
        let granted = RightRequest {
            state: RequestState::Granted,
            ..request.clone()
        };
        assert_eq!(granted.state_at(request.expires_at), RequestState::Granted);
    }
}
