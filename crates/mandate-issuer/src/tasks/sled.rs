//! Tasks in a sled tree (the embedded default).
//!
//! Creation and refresh counts are not flushed one by one (a lost refresh
//! count is harmless, a lost new task only fails its refreshes, closed);
//! a close is flushed before it is acknowledged, so a task closed before a
//! crash stays closed after it.

use std::path::Path;
use std::time::SystemTime;

use super::record::{decode, encode};
use super::{StoreError, Task, TaskState, TaskStore};
use crate::sled_records::{SledRecord, SledRecords};

/// Tasks in sled.
#[derive(Debug, Clone)]
pub struct SledTaskStore {
    tasks: SledRecords,
}

fn backend(error: &sled::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

impl SledRecord for Task {
    type Error = StoreError;

    fn id(&self) -> &str {
        &self.id
    }

    fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    fn decode(id: &str, bytes: &[u8]) -> Result<Task, StoreError> {
        decode(id, bytes)
    }

    fn backend(error: &sled::Error) -> StoreError {
        backend(error)
    }

    fn exists(id: String) -> StoreError {
        StoreError::Exists(id)
    }
}

impl SledTaskStore {
    /// Opens (or creates) the store in the folder `path`.
    ///
    /// # Errors
    /// The folder cannot be opened as a sled database.
    pub fn open(path: &Path) -> Result<SledTaskStore, StoreError> {
        let tasks = SledRecords::open(path, "tasks").map_err(|e| backend(&e))?;
        Ok(SledTaskStore { tasks })
    }
}

impl TaskStore for SledTaskStore {
    fn create(&self, task: &Task) -> Result<(), StoreError> {
        self.tasks.create(task)
    }

    fn get(&self, id: &str) -> Result<Option<Task>, StoreError> {
        self.tasks.get(id)
    }

    fn replace(&self, current: &Task, new: &Task) -> Result<bool, StoreError> {
        self.tasks
            .replace(current, new, new.state == TaskState::Closed)
    }

    fn overdue(&self, now: SystemTime, limit: usize) -> Result<Vec<Task>, StoreError> {
        self.tasks.scan(
            |task: &Task| task.state == TaskState::Open && task.deadline <= now,
            Some(limit),
        )
    }

    fn prune_closed(&self, closed_before: SystemTime, limit: usize) -> Result<usize, StoreError> {
        self.tasks
            .prune(|task: &Task| task.prunable(closed_before), limit)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.tasks.flush().map_err(|e| backend(&e))
    }
}
