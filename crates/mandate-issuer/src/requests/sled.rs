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
use crate::sled_records::{SledRecord, SledRecords};

/// Requests in sled.
#[derive(Debug, Clone)]
pub struct SledRequestStore {
    requests: SledRecords,
}

fn backend(error: &sled::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

impl SledRecord for RightRequest {
    type Error = StoreError;

    fn id(&self) -> &str {
        &self.id
    }

    fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    fn decode(id: &str, bytes: &[u8]) -> Result<RightRequest, StoreError> {
        decode(id, bytes)
    }

    fn backend(error: &sled::Error) -> StoreError {
        backend(error)
    }

    fn exists(id: String) -> StoreError {
        StoreError::Exists(id)
    }
}

impl SledRequestStore {
    /// Opens (or creates) the store in the folder `path`.
    ///
    /// # Errors
    /// The folder cannot be opened as a sled database.
    pub fn open(path: &Path) -> Result<SledRequestStore, StoreError> {
        let requests = SledRecords::open(path, "requests").map_err(|e| backend(&e))?;
        Ok(SledRequestStore { requests })
    }
}

impl RequestStore for SledRequestStore {
    fn create(&self, request: &RightRequest) -> Result<(), StoreError> {
        self.requests.create(request)
    }

    fn get(&self, id: &str) -> Result<Option<RightRequest>, StoreError> {
        self.requests.get(id)
    }

    fn replace(&self, current: &RightRequest, new: &RightRequest) -> Result<bool, StoreError> {
        self.requests
            .replace(current, new, new.state != RequestState::Pending)
    }

    fn find(
        &self,
        keep: &dyn Fn(&RightRequest) -> bool,
        limit: usize,
    ) -> Result<Vec<RightRequest>, StoreError> {
        let mut found = self.requests.scan(keep, None)?;
        found.sort_by_key(|r| r.created);
        found.truncate(limit);
        Ok(found)
    }

    fn prune_settled(&self, expired_before: SystemTime, limit: usize) -> Result<usize, StoreError> {
        self.requests.prune(
            |request: &RightRequest| request.prunable(expired_before),
            limit,
        )
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.requests.flush().map_err(|e| backend(&e))
    }
}
