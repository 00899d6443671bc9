//! Tasks in memory, for tests and benchmarks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use super::{StoreError, Task, TaskState, TaskStore};

/// Tasks in a map behind a lock.
#[derive(Debug, Default)]
pub struct MemoryTaskStore {
    tasks: Mutex<HashMap<String, Task>>,
}

impl MemoryTaskStore {
    /// An empty store.
    pub fn new() -> MemoryTaskStore {
        MemoryTaskStore::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Task>>, StoreError> {
        self.tasks
            .lock()
            .map_err(|_| StoreError::Backend("lock poisoned".into()))
    }
}

impl TaskStore for MemoryTaskStore {
    fn create(&self, task: &Task) -> Result<(), StoreError> {
        let mut tasks = self.lock()?;
        if tasks.contains_key(&task.id) {
            return Err(StoreError::Exists(task.id.clone()));
        }
        tasks.insert(task.id.clone(), task.clone());
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Option<Task>, StoreError> {
        Ok(self.lock()?.get(id).cloned())
    }

    fn replace(&self, current: &Task, new: &Task) -> Result<bool, StoreError> {
        let mut tasks = self.lock()?;
        match tasks.get_mut(&current.id) {
            Some(stored) if stored == current => {
                *stored = new.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn overdue(&self, now: SystemTime, limit: usize) -> Result<Vec<Task>, StoreError> {
        Ok(self
            .lock()?
            .values()
            .filter(|t| t.state == TaskState::Open && t.deadline <= now)
            .take(limit)
            .cloned()
            .collect())
    }

    fn prune_closed(&self, closed_before: SystemTime, limit: usize) -> Result<usize, StoreError> {
        let mut tasks = self.lock()?;
        let gone: Vec<String> = tasks
            .values()
            .filter(|t| t.prunable(closed_before))
            .take(limit)
            .map(|t| t.id.clone())
            .collect();
        for id in &gone {
            tasks.remove(id);
        }
        Ok(gone.len())
    }
}
