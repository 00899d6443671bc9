//! Right requests in a sled tree (the embedded default).
//!
//! A new request is not flushed on its own (a lost pending request only
//! makes its agent ask again); a decision is flushed before it is
//! acknowledged, so a request granted or denied before a crash stays so
//! after it.

use std::path::Path;
use std::time::SystemTime;

use super::record::{decode, encode};
use super::{RequestState, RequestStore, RightRequest, StoreError};

/// Requests in sled.
#[derive(Debug, Clone)]
pub struct SledRequestStore {
    db: sled::Db,
    requests: sled::Tree,
}

fn backend(error: sled::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

impl SledRequestStore {
    /// Opens (or creates) the store in the folder `path`.
    ///
    /// # Errors
    /// The folder cannot be opened as a sled database.
    pub fn open(path: &Path) -> Result<SledRequestStore, StoreError> {
        let db = sled::open(path).map_err(backend)?;
        let requests = db.open_tree("requests").map_err(backend)?;
        Ok(SledRequestStore { db, requests })
    }
}

impl RequestStore for SledRequestStore {
    fn create(&self, request: &RightRequest) -> Result<(), StoreError> {
        let swapped = self
            .requests
            .compare_and_swap(
                request.id.as_bytes(),
                None as Option<&[u8]>,
                Some(encode(request)),
            )
            .map_err(backend)?;
        swapped.map_err(|_| StoreError::Exists(request.id.clone()))
    }

    fn get(&self, id: &str) -> Result<Option<RightRequest>, StoreError> {
        match self.requests.get(id.as_bytes()).map_err(backend)? {
            Some(bytes) => decode(id, &bytes).map(Some),
            None => Ok(None),
        }
    }

    fn replace(&self, current: &RightRequest, new: &RightRequest) -> Result<bool, StoreError> {
        let swapped = self
            .requests
            .compare_and_swap(
                current.id.as_bytes(),
                Some(encode(current)),
                Some(encode(new)),
            )
            .map_err(backend)?;
        if swapped.is_ok() && new.state != RequestState::Pending {
            self.db.flush().map_err(backend)?;
        }
        Ok(swapped.is_ok())
    }

    fn find(
        &self,
        keep: &dyn Fn(&RightRequest) -> bool,
        limit: usize,
    ) -> Result<Vec<RightRequest>, StoreError> {
        let mut found = Vec::new();
        for item in self.requests.iter() {
            let (key, bytes) = item.map_err(backend)?;
            let request = decode(&String::from_utf8_lossy(&key), &bytes)?;
            if keep(&request) {
                found.push(request);
            }
        }
        found.sort_by_key(|r| r.created);
        found.truncate(limit);
        Ok(found)
    }

    fn prune_settled(&self, expired_before: SystemTime, limit: usize) -> Result<usize, StoreError> {
        // Collect first, then remove each record only if it is still the
        // one read: a decision landing meanwhile keeps its request.
        let mut found = Vec::new();
        for item in self.requests.iter() {
            if found.len() >= limit {
                break;
            }
            let (key, bytes) = item.map_err(backend)?;
            // An undecodable record is never removed: nothing can say it is settled.
            let Ok(request) = decode(&String::from_utf8_lossy(&key), &bytes) else {
                continue;
            };
            if request.prunable(expired_before) {
                found.push((key, bytes));
            }
        }
        let mut removed = 0;
        for (key, bytes) in found {
            let swapped = self
                .requests
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
