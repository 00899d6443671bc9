//! Right requests in memory, for tests.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use super::{RequestStore, RightRequest, StoreError};

/// Requests in a map behind a lock.
#[derive(Debug, Default)]
pub struct MemoryRequestStore {
    requests: Mutex<BTreeMap<String, RightRequest>>,
}

impl MemoryRequestStore {
    /// An empty store.
    pub fn new() -> MemoryRequestStore {
        MemoryRequestStore::default()
    }

    fn lock(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, RightRequest>>, StoreError> {
        self.requests
            .lock()
            .map_err(|_| StoreError::Backend("lock poisoned".into()))
    }
}

impl RequestStore for MemoryRequestStore {
    fn create(&self, request: &RightRequest) -> Result<(), StoreError> {
        let mut requests = self.lock()?;
        if requests.contains_key(&request.id) {
            return Err(StoreError::Exists(request.id.clone()));
        }
        requests.insert(request.id.clone(), request.clone());
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Option<RightRequest>, StoreError> {
        Ok(self.lock()?.get(id).cloned())
    }

    fn replace(&self, current: &RightRequest, new: &RightRequest) -> Result<bool, StoreError> {
        let mut requests = self.lock()?;
        match requests.get_mut(&current.id) {
            Some(stored) if stored == current => {
                *stored = new.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn find(
        &self,
        keep: &dyn Fn(&RightRequest) -> bool,
        limit: usize,
    ) -> Result<Vec<RightRequest>, StoreError> {
        let mut found: Vec<RightRequest> =
            self.lock()?.values().filter(|r| keep(r)).cloned().collect();
        found.sort_by_key(|r| r.created);
        found.truncate(limit);
        Ok(found)
    }

    fn prune_settled(&self, expired_before: SystemTime, limit: usize) -> Result<usize, StoreError> {
        let mut requests = self.lock()?;
        let gone: Vec<String> = requests
            .values()
            .filter(|r| r.prunable(expired_before))
            .take(limit)
            .map(|r| r.id.clone())
            .collect();
        for id in &gone {
            requests.remove(id);
        }
        Ok(gone.len())
    }
}
