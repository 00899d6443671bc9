//! Records kept by id in one sled tree, as the issuer's task and request
//! stores keep them: created only when the id is free, replaced only when
//! the stored record is still the one the caller read (compare-and-swap),
//! and pruned the same way, so a change landing meanwhile is never lost.
//!
//! An undecodable record is never pruned: nothing can say it is settled.

use std::path::Path;

/// A record stored by [`SledRecords`].
pub(crate) trait SledRecord: Sized {
    /// The store's error.
    type Error;
    /// The key the record is stored under.
    fn id(&self) -> &str;
    /// The stored bytes.
    fn encode(&self) -> Vec<u8>;
    /// The record stored under `id`.
    ///
    /// # Errors
    /// The bytes are not a record.
    fn decode(id: &str, bytes: &[u8]) -> Result<Self, Self::Error>;
    /// A failure of sled.
    fn backend(error: &sled::Error) -> Self::Error;
    /// The id `id` is taken.
    fn exists(id: String) -> Self::Error;
}

/// One sled tree of records, and the database it lives in (flushed as a
/// whole).
#[derive(Debug, Clone)]
pub(crate) struct SledRecords {
    db: sled::Db,
    tree: sled::Tree,
}

impl SledRecords {
    /// Opens (or creates) the database in the folder `path` and its tree
    /// `name`, waiting briefly for a lock a closing handle still holds.
    pub(crate) fn open(path: &Path, name: &str) -> Result<SledRecords, sled::Error> {
        let db = mandate_sled::open(&sled::Config::new().path(path))?;
        let tree = db.open_tree(name)?;
        Ok(SledRecords { db, tree })
    }

    /// Stores `record` unless its id is taken.
    pub(crate) fn create<R: SledRecord>(&self, record: &R) -> Result<(), R::Error> {
        let swapped = self
            .tree
            .compare_and_swap(
                record.id().as_bytes(),
                None as Option<&[u8]>,
                Some(record.encode()),
            )
            .map_err(|e| R::backend(&e))?;
        swapped.map_err(|_| R::exists(record.id().to_owned()))
    }

    /// The record stored under `id`.
    pub(crate) fn get<R: SledRecord>(&self, id: &str) -> Result<Option<R>, R::Error> {
        match self.tree.get(id.as_bytes()).map_err(|e| R::backend(&e))? {
            Some(bytes) => R::decode(id, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Replaces `current` by `new` if `current` is still what is stored;
    /// flushes before returning when `durable`. Whether it was replaced.
    pub(crate) fn replace<R: SledRecord>(
        &self,
        current: &R,
        new: &R,
        durable: bool,
    ) -> Result<bool, R::Error> {
        let swapped = self
            .tree
            .compare_and_swap(
                current.id().as_bytes(),
                Some(current.encode()),
                Some(new.encode()),
            )
            .map_err(|e| R::backend(&e))?;
        if swapped.is_ok() && durable {
            self.db.flush().map_err(|e| R::backend(&e))?;
        }
        Ok(swapped.is_ok())
    }

    /// The records `keep` accepts, in key order, at most `limit` (all of
    /// them with `None`).
    pub(crate) fn scan<R: SledRecord>(
        &self,
        mut keep: impl FnMut(&R) -> bool,
        limit: Option<usize>,
    ) -> Result<Vec<R>, R::Error> {
        let mut found = Vec::new();
        for item in self.tree.iter() {
            if limit.is_some_and(|limit| found.len() >= limit) {
                break;
            }
            let (key, bytes) = item.map_err(|e| R::backend(&e))?;
            let record = R::decode(&String::from_utf8_lossy(&key), &bytes)?;
            if keep(&record) {
                found.push(record);
            }
        }
        Ok(found)
    }

    /// Removes at most `limit` records `prunable` accepts, each only if it
    /// is still the one read; how many were removed.
    pub(crate) fn prune<R: SledRecord>(
        &self,
        prunable: impl Fn(&R) -> bool,
        limit: usize,
    ) -> Result<usize, R::Error> {
        // Collect first, then remove each record only if it is still the
        // one read: a record that changed meanwhile is left for next time.
        let mut found = Vec::new();
        for item in self.tree.iter() {
            if found.len() >= limit {
                break;
            }
            let (key, bytes) = item.map_err(|e| R::backend(&e))?;
            let Ok(record) = R::decode(&String::from_utf8_lossy(&key), &bytes) else {
                continue;
            };
            if prunable(&record) {
                found.push((key, bytes));
            }
        }
        let mut removed = 0;
        for (key, bytes) in found {
            let swapped = self
                .tree
                .compare_and_swap(key, Some(bytes), None as Option<&[u8]>)
                .map_err(|e| R::backend(&e))?;
            removed += usize::from(swapped.is_ok());
        }
        Ok(removed)
    }

    /// Flushes the database.
    pub(crate) fn flush(&self) -> Result<(), sled::Error> {
        self.db.flush().map(|_| ())
    }
}
