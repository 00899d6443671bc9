//! Tasks: what a mandate's life is tied to.
//!
//! Every token exchange opens a [`Task`] (id, principal, agent and key,
//! rights, state, creation time, deadline). Mandates for it are short-lived
//! and refreshed while it is open; it closes by request or by reaching its
//! deadline, and a closed task never opens again.
//!
//! Records live behind [`TaskStore`]. Every state change is a
//! compare-and-swap of the whole record ([`TaskStore::replace`]), so a
//! refresh racing a close is decided by which swap lands first: a refresh
//! whose swap fails mints nothing it returns. [`SledTaskStore`] is the
//! default; [`MemoryTaskStore`] serves tests and benchmarks. No sled type
//! appears in a public signature.

mod memory;
pub(crate) mod record;
mod sled;

use std::time::SystemTime;

use mandate_core::{PublicKey, Right};

use crate::idp::Identity;

pub use self::memory::MemoryTaskStore;
pub use self::record::{identity_from_json, identity_to_json};
pub use self::sled::SledTaskStore;

/// Whether a task can still have mandates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Mandates may be refreshed until the deadline.
    Open,
    /// Closed for good; its revocation was written (or is being retried).
    Closed,
}

impl TaskState {
    /// `open` or `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Open => "open",
            TaskState::Closed => "closed",
        }
    }
}

/// One task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Its id (a canonical task name).
    pub id: String,
    /// The verified principal.
    pub principal: String,
    /// The agent.
    pub agent: String,
    /// The agent's key; refresh and close need its proof.
    pub agent_key: PublicKey,
    /// The rights granted; a refresh never grants more.
    pub rights: Vec<Right>,
    /// What the task is for, as the agent described it.
    pub description: String,
    /// Open or closed.
    pub state: TaskState,
    /// When it opened.
    pub created: SystemTime,
    /// When it closes itself; no mandate outlives it.
    pub deadline: SystemTime,
    /// How many mandates were minted for it.
    pub mandates: u64,
    /// Who closed it (`agent`, `deadline`, `operator`), once closed.
    pub closed_by: Option<String>,
    /// When it closed, once closed. `None` for tasks closed before close
    /// times were kept: retention then counts from the deadline.
    pub closed_at: Option<SystemTime>,
    /// The verified login the task was opened with: the issuance policy
    /// sees the same identity facts (`subject`, `email`, `group`, `claim`,
    /// `idp`) when the agent asks for more rights at run time. `None` for
    /// tasks stored before identities were kept.
    pub identity: Option<Identity>,
}

impl Task {
    /// Whether it may be pruned under a retention whose cutoff is
    /// `closed_before`: closed, and closed (or, without a close time, due)
    /// at or before it.
    pub fn prunable(&self, closed_before: SystemTime) -> bool {
        self.state == TaskState::Closed && self.closed_at.unwrap_or(self.deadline) <= closed_before
    }
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend failed.
    #[error("task store: {0}")]
    Backend(String),
    /// A stored record does not decode.
    #[error("task store holds a corrupt record for `{0}`")]
    Corrupt(String),
    /// A task with this id exists already.
    #[error("task `{0}` exists already")]
    Exists(String),
}

/// Storage for tasks.
pub trait TaskStore: Send + Sync {
    /// Stores a new task.
    ///
    /// # Errors
    /// [`StoreError::Exists`] when the id is taken, or a backend failure.
    fn create(&self, task: &Task) -> Result<(), StoreError>;

    /// The task with `id`.
    ///
    /// # Errors
    /// A backend failure or a corrupt record.
    fn get(&self, id: &str) -> Result<Option<Task>, StoreError>;

    /// Replaces `current` by `new` only if the stored record still equals
    /// `current`; `Ok(false)` when it changed meanwhile. A change to
    /// [`TaskState::Closed`] is durable when this returns.
    ///
    /// # Errors
    /// A backend failure.
    fn replace(&self, current: &Task, new: &Task) -> Result<bool, StoreError>;

    /// Up to `limit` open tasks whose deadline is at or before `now`.
    ///
    /// # Errors
    /// A backend failure or a corrupt record.
    fn overdue(&self, now: SystemTime, limit: usize) -> Result<Vec<Task>, StoreError>;

    /// Removes up to `limit` closed tasks that closed at or before
    /// `closed_before` (tasks closed before close times were kept count
    /// from their deadline); returns how many went. Open tasks are never
    /// removed. A removed task answers as one that never existed.
    ///
    /// # Errors
    /// A backend failure.
    fn prune_closed(&self, closed_before: SystemTime, limit: usize) -> Result<usize, StoreError>;

    /// Flushes anything buffered (on shutdown).
    ///
    /// # Errors
    /// A backend failure.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
