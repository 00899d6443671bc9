//! Durable, append-only storage for the revocation log.
//!
//! [`RevocationStore`] is the only thing the server needs from storage: append an entry and
//! get its sequence number, read entries after a sequence number, and ask for the newest
//! sequence number. [`SledStore`] is the embedded default (one directory, no server);
//! [`MemoryStore`] serves tests and ephemeral deployments.
//!
//! Invariants every implementation keeps: sequence numbers start at 1 and increase by
//! exactly one per append, even under concurrent appends; `append` returns only after the
//! entry is durable (for sled: after `flush`, so an acknowledged revocation survives
//! `kill -9`); entries are never rewritten or deleted. No backend type (sled's `Db`, `IVec`,
//! `Error`) may appear in this module's public signatures. Store methods block: async
//! callers run them on a blocking thread.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use crate::entry::{NewRevocation, RevocationEntry};
use crate::error::{Error, Result};

/// Storage for the revocation log.
pub trait RevocationStore: Send + Sync {
    /// Appends `new` with the next sequence number (the first is 1) and the current time.
    /// The entry is durable when this returns `Ok`.
    ///
    /// # Errors
    /// [`Error::Storage`] when the backend fails; the entry then has no sequence number.
    fn append(&self, new: NewRevocation) -> Result<RevocationEntry>;

    /// Up to `limit` entries with `seq > after_seq`, in sequence order.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupt`].
    fn list_after(&self, after_seq: u64, limit: usize) -> Result<Vec<RevocationEntry>>;

    /// The sequence number of the newest entry, or 0 when the log is empty.
    ///
    /// # Errors
    /// [`Error::Storage`].
    fn current_seq(&self) -> Result<u64>;

    /// Flushes anything buffered; called on shutdown. Appends are already durable, so the
    /// default does nothing.
    ///
    /// # Errors
    /// [`Error::Storage`].
    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

/// Recovers a poisoned lock. Safe here because every critical section in this module
/// either completes its update or leaves the protected data unchanged before it can panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An in-memory store. Nothing survives the process; meant for tests and demos.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<Vec<RevocationEntry>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl RevocationStore for MemoryStore {
    fn append(&self, new: NewRevocation) -> Result<RevocationEntry> {
        let mut entries = lock(&self.entries);
        // `entries[i].seq == i + 1` always holds, so the next seq is the length plus one.
        let seq = entries.len() as u64 + 1;
        let entry = new.into_entry(seq, SystemTime::now());
        entries.push(entry.clone());
        Ok(entry)
    }

    fn list_after(&self, after_seq: u64, limit: usize) -> Result<Vec<RevocationEntry>> {
        let entries = lock(&self.entries);
        let start = usize::try_from(after_seq).unwrap_or(usize::MAX);
        Ok(entries.iter().skip(start).take(limit).cloned().collect())
    }

    fn current_seq(&self) -> Result<u64> {
        Ok(lock(&self.entries).len() as u64)
    }
}

/// The embedded default store: one sled 0.34 database directory.
///
/// Keys are the sequence number as a big-endian `u64` (so sled's key order is log order);
/// values are the entry as JSON. Every append is flushed before it returns.
pub struct SledStore {
    db: sled::Db,
    log: sled::Tree,
    /// Serialises appends and holds the newest sequence number.
    last_seq: Mutex<u64>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("last_seq", &*lock(&self.last_seq))
            .finish_non_exhaustive()
    }
}

const LOG_TREE: &str = "revocations";

impl SledStore {
    /// Opens (or creates) the store in directory `path`.
    ///
    /// # Errors
    /// [`Error::Storage`] when sled cannot open the directory (for example, another process
    /// holds it), [`Error::Corrupt`] when the newest key is not a sequence number.
    pub fn open(path: &Path) -> Result<Self> {
        let db = sled::open(path).map_err(|e| Error::storage("opening the sled database", e))?;
        let log = db
            .open_tree(LOG_TREE)
            .map_err(|e| Error::storage("opening the revocation tree", e))?;
        let last_seq = match log
            .last()
            .map_err(|e| Error::storage("reading the newest entry", e))?
        {
            Some((key, _)) => decode_key(&key)?,
            None => 0,
        };
        Ok(Self {
            db,
            log,
            last_seq: Mutex::new(last_seq),
        })
    }
}

fn decode_key(key: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| Error::Corrupt {
        key: hex::encode(key),
        source: "key is not an 8-byte sequence number".into(),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

impl RevocationStore for SledStore {
    fn append(&self, new: NewRevocation) -> Result<RevocationEntry> {
        let mut last_seq = lock(&self.last_seq);
        let seq = *last_seq + 1;
        let entry = new.into_entry(seq, SystemTime::now());
        let value =
            serde_json::to_vec(&entry).map_err(|e| Error::storage("encoding an entry", e))?;
        let key = seq.to_be_bytes();
        self.log
            .insert(key, value)
            .map_err(|e| Error::storage("appending an entry", e))?;
        if let Err(e) = self.db.flush() {
            // The entry was not acknowledged, so take it back out rather than let a reader
            // see it; the next append reuses the sequence number either way.
            if let Err(remove) = self.log.remove(key) {
                tracing::error!(seq, error = %remove, "could not remove unflushed revocation entry");
            }
            return Err(Error::storage("flushing an appended entry", e));
        }
        *last_seq = seq;
        Ok(entry)
    }

    fn list_after(&self, after_seq: u64, limit: usize) -> Result<Vec<RevocationEntry>> {
        let Some(start) = after_seq.checked_add(1) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in self.log.range(start.to_be_bytes()..).take(limit) {
            let (key, value) = item.map_err(|e| Error::storage("reading entries", e))?;
            let seq = decode_key(&key)?;
            let entry: RevocationEntry =
                serde_json::from_slice(&value).map_err(|e| Error::Corrupt {
                    key: seq.to_string(),
                    source: e.into(),
                })?;
            if entry.seq != seq {
                return Err(Error::Corrupt {
                    key: seq.to_string(),
                    source: format!("entry carries seq {}", entry.seq).into(),
                });
            }
            out.push(entry);
        }
        Ok(out)
    }

    fn current_seq(&self) -> Result<u64> {
        Ok(*lock(&self.last_seq))
    }

    fn flush(&self) -> Result<()> {
        self.db
            .flush()
            .map(drop)
            .map_err(|e| Error::storage("flushing", e))
    }
}

/// Reads the whole log of `store` into a fresh index. The index counts as
/// current as of now: it was read from the authoritative store itself. For
/// a one-shot check in the process that owns the store.
///
/// # Errors
/// [`Error::Storage`] when the store cannot be read, [`Error::SeqGap`] when
/// the log has a gap.
pub fn load_index(
    store: &dyn RevocationStore,
    staleness_bound: std::time::Duration,
) -> Result<crate::index::SharedIndex> {
    let index = crate::index::SharedIndex::new(staleness_bound);
    let mut after = 0;
    loop {
        let page = store.list_after(after, 1000)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for entry in &page {
            index.apply(entry)?;
        }
    }
    index.mark_fresh(std::time::Instant::now());
    Ok(index)
}

/// A store that also keeps an in-process index current: every acknowledged
/// append is applied to `index` before `append` returns. For a single
/// process that is both registry and verifier (`mandate serve --store`),
/// where the index cannot go stale because the store is local.
pub struct IndexingStore<S> {
    inner: S,
    index: crate::index::SharedIndex,
    /// Serialises append + apply, so entries reach the index in seq order.
    order: Mutex<()>,
}

impl<S: RevocationStore> IndexingStore<S> {
    /// Loads the whole log of `inner` into a new index that never goes stale
    /// (the store is in the same process), and keeps it current.
    ///
    /// # Errors
    /// As [`load_index`].
    pub fn new(inner: S) -> Result<Self> {
        // `Duration::MAX` as the bound: freshness is guaranteed by `append`,
        // not by heartbeats.
        let index = load_index(&inner, std::time::Duration::MAX)?;
        Ok(IndexingStore {
            inner,
            index,
            order: Mutex::new(()),
        })
    }

    /// The index verifiers in this process consult.
    pub fn index(&self) -> crate::index::SharedIndex {
        self.index.clone()
    }
}

impl<S: RevocationStore> RevocationStore for IndexingStore<S> {
    fn append(&self, new: NewRevocation) -> Result<RevocationEntry> {
        let _order = lock(&self.order);
        let entry = self.inner.append(new)?;
        self.index.apply(&entry)?;
        Ok(entry)
    }

    fn list_after(&self, after_seq: u64, limit: usize) -> Result<Vec<RevocationEntry>> {
        self.inner.list_after(after_seq, limit)
    }

    fn current_seq(&self) -> Result<u64> {
        self.inner.current_seq()
    }

    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
}
