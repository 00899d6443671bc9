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

/// Tasks in sled.
#[derive(Debug, Clone)]
pub struct SledTaskStore {
    db: sled::Db,
    tasks: sled::Tree,
}

fn backend(error: sled::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

impl SledTaskStore {
    /// Opens (or creates) the store in the folder `path`.
    ///
    /// # Errors
    /// The folder cannot be opened as a sled database.
    pub fn open(path: &Path) -> Result<SledTaskStore, StoreError> {
        let db = sled::open(path).map_err(backend)?;
        let tasks = db.open_tree("tasks").map_err(backend)?;
        Ok(SledTaskStore { db, tasks })
    }
}

impl TaskStore for SledTaskStore {
    fn create(&self, task: &Task) -> Result<(), StoreError> {
        let swapped = self
            .tasks
            .compare_and_swap(
                task.id.as_bytes(),
                None as Option<&[u8]>,
                Some(encode(task)),
            )
            .map_err(backend)?;
        swapped.map_err(|_| StoreError::Exists(task.id.clone()))
    }

    fn get(&self, id: &str) -> Result<Option<Task>, StoreError> {
        match self.tasks.get(id.as_bytes()).map_err(backend)? {
            Some(bytes) => decode(id, &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn replace(&self, current: &Task, new: &Task) -> Result<bool, StoreError> {
        let swapped = self
            .tasks
            .compare_and_swap(
                current.id.as_bytes(),
                Some(encode(current)),
                Some(encode(new)),
            )
            .map_err(backend)?;
        if swapped.is_ok() && new.state == TaskState::Closed {
            self.db.flush().map_err(backend)?;
        }
        Ok(swapped.is_ok())
    }

    fn overdue(&self, now: SystemTime, limit: usize) -> Result<Vec<Task>, StoreError> {
        let mut found = Vec::new();
        for item in self.tasks.iter() {
            let (key, bytes) = item.map_err(backend)?;
            let task = decode(&String::from_utf8_lossy(&key), &bytes)?;
            if task.state == TaskState::Open && task.deadline <= now {
                found.push(task);
                if found.len() >= limit {
                    break;
                }
            }
        }
        Ok(found)
    }

    fn prune_closed(&self, closed_before: SystemTime, limit: usize) -> Result<usize, StoreError> {
        // Collect first, then remove each record only if it is still the
        // one read: a record that changed meanwhile is left for next time.
        let mut found = Vec::new();
        for item in self.tasks.iter() {
            if found.len() >= limit {
                break;
            }
            let (key, bytes) = item.map_err(backend)?;
            // An undecodable record is never removed: nothing can say it is closed.
            let Ok(task) = decode(&String::from_utf8_lossy(&key), &bytes) else {
                continue;
            };
            if task.prunable(closed_before) {
                found.push((key, bytes));
            }
        }
        let mut removed = 0;
        for (key, bytes) in found {
            let swapped = self
                .tasks
                .compare_and_swap(key, Some(bytes), None as Option<&[u8]>)
                .map_err(backend)?;
            removed += usize::from(swapped.is_ok());
        }
        Ok(removed)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(backend)
    }
}
