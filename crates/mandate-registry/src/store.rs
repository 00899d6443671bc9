//! Durable, append-only storage for the revocation log.
//!
//! [`RevocationStore`] is the only thing the server needs from storage: append an entry and
//! get its sequence number, read entries after a sequence number, ask for the newest
//! sequence number, and name the log (its epoch). [`SledStore`] is the embedded default
//! (one directory, no server); [`MemoryStore`] serves tests and ephemeral deployments.
//!
//! Invariants every implementation keeps: sequence numbers start at 1 and increase by
//! exactly one per append, even under concurrent appends; `append` returns only after the
//! entry is durable (for sled: after `flush`, so an acknowledged revocation survives
//! `kill -9`); readers never see an entry before its append has succeeded, and a failed
//! append never hands its sequence number to a different entry; entries are never
//! rewritten or deleted; the epoch is created with the store and never changes. No
//! backend type (sled's `Db`, `IVec`, `Error`) may appear in this module's public
//! signatures. Store methods block: async callers run them on a blocking thread.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use crate::api::is_valid_epoch;
use crate::entry::{NewRevocation, RevocationEntry};
use crate::error::{Error, Result};

/// Storage for the revocation log.
pub trait RevocationStore: Send + Sync {
    /// Appends `new` with the next sequence number (the first is 1) and the current time.
    /// The entry is durable when this returns `Ok`.
    ///
    /// # Errors
    /// [`Error::Storage`] when the backend fails; the entry then has no sequence number
    /// and is never listed under the one it would have had.
    fn append(&self, new: NewRevocation) -> Result<RevocationEntry>;

    /// Up to `limit` entries with `seq > after_seq`, in sequence order; only entries whose
    /// append has returned `Ok`.
    ///
    /// # Errors
    /// [`Error::Storage`] or [`Error::Corrupt`].
    fn list_after(&self, after_seq: u64, limit: usize) -> Result<Vec<RevocationEntry>>;

    /// The sequence number of the newest entry, or 0 when the log is empty.
    ///
    /// # Errors
    /// [`Error::Storage`].
    fn current_seq(&self) -> Result<u64>;

    /// The log's epoch: a random id (1 to 64 printable ASCII characters) created with the
    /// store and kept for its whole life. Sequence numbers are only comparable within one
    /// epoch; a store that is wiped, replaced or re-created gets a new one, which tells
    /// subscribers to discard what they hold and resync from seq 0.
    ///
    /// # Errors
    /// [`Error::Storage`].
    fn epoch(&self) -> Result<String>;

    /// Flushes anything buffered; called on shutdown. Appends are already durable, so the
    /// default does nothing.
    ///
    /// # Errors
    /// [`Error::Storage`].
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// Whether an append would be accepted now: readiness probes ask it. The default
    /// (a store in memory) always can.
    ///
    /// # Errors
    /// [`Error::Storage`] when the backend cannot take a write.
    fn check_writable(&self) -> Result<()> {
        Ok(())
    }
}

/// A boxed store is a store, so a server can pick its backend at run time.
impl<S: RevocationStore + ?Sized> RevocationStore for Box<S> {
    fn append(&self, new: NewRevocation) -> Result<RevocationEntry> {
        (**self).append(new)
    }

    fn list_after(&self, after_seq: u64, limit: usize) -> Result<Vec<RevocationEntry>> {
        (**self).list_after(after_seq, limit)
    }

    fn current_seq(&self) -> Result<u64> {
        (**self).current_seq()
    }

    fn epoch(&self) -> Result<String> {
        (**self).epoch()
    }

    fn flush(&self) -> Result<()> {
        (**self).flush()
    }

    fn check_writable(&self) -> Result<()> {
        (**self).check_writable()
    }
}

/// A fresh log epoch: 32 hex digits from a random (v4) UUID.
fn new_epoch() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Recovers a poisoned lock. Safe here because every critical section in this module
/// either completes its update or leaves the protected data unchanged before it can panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An in-memory store. Nothing survives the process; meant for tests and demos. Each
/// instance is its own log with its own random epoch.
#[derive(Debug)]
pub struct MemoryStore {
    entries: Mutex<Vec<RevocationEntry>>,
    epoch: String,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            entries: Mutex::default(),
            epoch: new_epoch(),
        }
    }
}

impl MemoryStore {
    /// An empty store with a new epoch.
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

    fn epoch(&self) -> Result<String> {
        Ok(self.epoch.clone())
    }
}

/// The embedded default store: one sled 0.34 database directory.
///
/// Keys are the sequence number as a big-endian `u64` (so sled's key order is log order);
/// values are the entry as JSON. Every append is flushed before it returns. The epoch
/// lives in a separate tree, written and flushed when the store is first opened.
pub struct SledStore {
    db: sled::Db,
    log: sled::Tree,
    epoch: String,
    /// Serialises appends.
    writer: Mutex<Writer>,
    /// The newest committed (flushed and acknowledged) seq. sled makes an insert visible
    /// before it is flushed, so readers never look past this.
    committed: AtomicU64,
}

/// State of the single writer.
#[derive(Debug)]
struct Writer {
    /// The newest committed seq.
    last_seq: u64,
    /// An append failed after its entry may have reached the tree. Its seq must not be
    /// given to a different entry, and what sled holds is uncertain, so the store takes
    /// no more appends; reopening it reads back whatever was made durable.
    failed: bool,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("epoch", &self.epoch)
            .field("committed", &self.committed.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

const LOG_TREE: &str = "revocations";
/// Store metadata (the epoch), kept apart from the log so that every key of the log
/// tree is a sequence number.
const META_TREE: &str = "meta";
const EPOCH_KEY: &[u8] = b"epoch";
/// The file sled 0.34 keeps its data in, inside the store directory.
const SLED_DB_FILE: &str = "db";

impl SledStore {
    /// Opens the store in directory `path`, creating the directory and an empty store
    /// (with a new epoch) when there is none. See [`SledStore::open_existing`] to refuse
    /// a missing store instead.
    ///
    /// # Errors
    /// [`Error::Storage`] when sled cannot open the directory (for example, another process
    /// holds it) or the epoch cannot be written, [`Error::Corrupt`] when the newest key is
    /// not a sequence number or the stored epoch is malformed.
    pub fn open(path: &Path) -> Result<Self> {
        let db = open_sled(path).map_err(|e| Error::storage("opening the sled database", e))?;
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
        let epoch = load_or_create_epoch(&db, last_seq)?;
        Ok(Self {
            db,
            log,
            epoch,
            writer: Mutex::new(Writer {
                last_seq,
                failed: false,
            }),
            committed: AtomicU64::new(last_seq),
        })
    }

    /// Opens the store in directory `path`, which must already hold one; never creates a
    /// directory or a database. For commands that read or write an existing registry's
    /// store, where a typo in the path must not silently start an empty log.
    ///
    /// # Errors
    /// [`Error::StoreNotFound`] when `path` is not a directory or holds no sled database;
    /// otherwise as [`SledStore::open`].
    pub fn open_existing(path: &Path) -> Result<Self> {
        let not_found = |problem| Error::StoreNotFound {
            path: path.to_owned(),
            problem,
        };
        if !path.is_dir() {
            return Err(not_found("the directory does not exist"));
        }
        if !path.join(SLED_DB_FILE).is_file() {
            return Err(not_found("the directory holds no sled database"));
        }
        Self::open(path)
    }

    /// Appends with `flush` as the durability step (the real one is `Db::flush`; tests
    /// inject failures).
    fn append_with(
        &self,
        new: NewRevocation,
        flush: impl FnOnce(&sled::Db) -> sled::Result<()>,
    ) -> Result<RevocationEntry> {
        let mut writer = lock(&self.writer);
        if writer.failed {
            return Err(Error::storage(
                "appending an entry",
                "an earlier append failed part-way; reopen the store (restart the registry)",
            ));
        }
        let seq = writer
            .last_seq
            .checked_add(1)
            .ok_or_else(|| Error::storage("appending an entry", "sequence numbers exhausted"))?;
        let entry = new.into_entry(seq, SystemTime::now());
        let value =
            serde_json::to_vec(&entry).map_err(|e| Error::storage("encoding an entry", e))?;
        let key = seq.to_be_bytes();
        let written = self
            .log
            .insert(key, value)
            .map_err(|e| Error::storage("appending an entry", e))
            .and_then(|_| {
                flush(&self.db).map_err(|e| Error::storage("flushing an appended entry", e))
            });
        if let Err(error) = written {
            // Not acknowledged, and never listed: readers stop at `committed`. Take it
            // back out as well, so a later reopen is unlikely to find it; but sled may
            // already have written it, so this seq is never reused in this process.
            writer.failed = true;
            if let Err(remove) = self.log.remove(key) {
                tracing::error!(seq, error = %remove, "could not remove unflushed revocation entry");
            }
            tracing::error!(
                seq,
                "revocation append failed; the store refuses further appends until reopened"
            );
            return Err(error);
        }
        writer.last_seq = seq;
        self.committed.store(seq, Ordering::Release);
        Ok(entry)
    }
}

/// Reads the store's epoch, or creates and durably writes one: for a new store, and for
/// a store written before epochs existed (its subscribers then resync once).
fn load_or_create_epoch(db: &sled::Db, last_seq: u64) -> Result<String> {
    let meta = db
        .open_tree(META_TREE)
        .map_err(|e| Error::storage("opening the metadata tree", e))?;
    if let Some(stored) = meta
        .get(EPOCH_KEY)
        .map_err(|e| Error::storage("reading the log epoch", e))?
    {
        return match std::str::from_utf8(&stored) {
            Ok(epoch) if is_valid_epoch(epoch) => Ok(epoch.to_owned()),
            _ => Err(Error::Corrupt {
                key: "meta/epoch".to_owned(),
                source: "the log epoch is not 1 to 64 printable ASCII characters".into(),
            }),
        };
    }
    let epoch = new_epoch();
    meta.insert(EPOCH_KEY, epoch.as_bytes())
        .map_err(|e| Error::storage("writing the log epoch", e))?;
    db.flush()
        .map_err(|e| Error::storage("flushing the log epoch", e))?;
    if last_seq > 0 {
        tracing::info!(%epoch, last_seq, "revocation store had no log epoch; created one");
    }
    Ok(epoch)
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
        self.append_with(new, |db| db.flush().map(drop))
    }

    fn list_after(&self, after_seq: u64, limit: usize) -> Result<Vec<RevocationEntry>> {
        // Only committed entries: an insert is visible in sled before its flush returns.
        let committed = self.committed.load(Ordering::Acquire);
        if after_seq >= committed || limit == 0 {
            return Ok(Vec::new());
        }
        let start = after_seq + 1;
        let mut out = Vec::with_capacity(limit.min(1024));
        let range = self
            .log
            .range(start.to_be_bytes()..=committed.to_be_bytes());
        for (expected, item) in (start..).zip(range.take(limit)) {
            let (key, value) = item.map_err(|e| Error::storage("reading entries", e))?;
            let seq = decode_key(&key)?;
            if seq != expected {
                return Err(Error::Corrupt {
                    key: expected.to_string(),
                    source: "a committed entry is missing from the log".into(),
                });
            }
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
        Ok(self.committed.load(Ordering::Acquire))
    }

    fn epoch(&self) -> Result<String> {
        Ok(self.epoch.clone())
    }

    fn flush(&self) -> Result<()> {
        self.db
            .flush()
            .map(drop)
            .map_err(|e| Error::storage("flushing", e))
    }

    /// Writes and flushes a probe key outside the log: the disk takes writes and no
    /// earlier append failed part-way.
    fn check_writable(&self) -> Result<()> {
        if lock(&self.writer).failed {
            return Err(Error::storage(
                "checking the store",
                "an earlier append failed part-way; reopen the store (restart the registry)",
            ));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.db
            .insert(PROBE_KEY, &now.to_be_bytes())
            .map_err(|e| Error::storage("writing the readiness probe", e))?;
        self.db
            .flush()
            .map(drop)
            .map_err(|e| Error::storage("flushing the readiness probe", e))
    }
}

/// The key readiness probes write, in the database's default tree (never the log).
const PROBE_KEY: &[u8] = b"readiness-probe";

/// Opens the sled database in `path`, waiting briefly for a lock a closing
/// handle still holds.
fn open_sled(path: &Path) -> std::result::Result<sled::Db, sled::Error> {
    // No background flusher: every append flushes before it is
    // acknowledged anyway.
    mandate_sled::open(&sled::Config::new().path(path).flush_every_ms(None))
}

/// Reads the whole log of `store` into a fresh index bound to the store's epoch. The
/// index counts as current as of now: it was read from the authoritative store itself.
/// For a one-shot check in the process that owns the store.
///
/// # Errors
/// [`Error::Storage`] when the store cannot be read, [`Error::SeqGap`] when
/// the log has a gap.
pub fn load_index(
    store: &dyn RevocationStore,
    staleness_bound: std::time::Duration,
) -> Result<crate::index::SharedIndex> {
    let index = crate::index::SharedIndex::new(staleness_bound);
    index.adopt_epoch(&store.epoch()?)?;
    // Page by page, each applied before the next is read: a log of millions of
    // entries never sits in memory as a whole, only its compact index does.
    let mut after = 0;
    loop {
        let page = store.list_after(after, LOAD_PAGE)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        index.apply_all(&page)?;
    }
    index.mark_fresh(std::time::Instant::now());
    Ok(index)
}

/// Entries read per page while a whole log is loaded: large enough that a store's
/// per-read cost (a database round trip) is small beside the rows, small enough that
/// one page's entries are a few megabytes.
const LOAD_PAGE: usize = 10_000;

/// Every entry of `store` with `seq > after`, in order, read page by page.
///
/// # Errors
/// As [`RevocationStore::list_after`].
pub fn entries_after(store: &dyn RevocationStore, after: u64) -> Result<Vec<RevocationEntry>> {
    let mut all = Vec::new();
    let mut after = after;
    loop {
        let page = store.list_after(after, 1000)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        all.extend(page);
    }
    Ok(all)
}

/// A store that also keeps an in-process index current: every acknowledged
/// append is applied to `index` before `append` returns. For a process that is
/// both registry and verifier (`mandate serve --store`).
///
/// Made with [`IndexingStore::new`], this process is the log's only writer: the
/// index's staleness bound is `Duration::MAX`, so it stays fresh only as long as every
/// appended entry reached it; when one cannot be applied, the index is marked stale
/// for good (every check denied) and `append` returns the error.
///
/// Made with [`IndexingStore::shared`], other processes append to the same log (a
/// database shared by replicas): their entries reach the index through
/// [`IndexingStore::catch_up`], which its owner calls when told of new entries and on
/// a timer, and the index is fresh only while catch-ups succeed within its bound.
pub struct IndexingStore<S> {
    inner: S,
    index: crate::index::SharedIndex,
    /// Serialises append + apply and catch-ups, so entries reach the index in seq order.
    order: Mutex<()>,
    /// Other processes append to `inner` too.
    shared: bool,
}

/// Entries read per page while an index catches up.
const CATCH_UP_PAGE: usize = 1000;

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
            shared: false,
        })
    }

    /// Loads the whole log of `inner`, a log other processes append to as well, into a
    /// new index that is stale once no [`IndexingStore::catch_up`] succeeded for
    /// `staleness_bound`.
    ///
    /// # Errors
    /// As [`load_index`].
    pub fn shared(inner: S, staleness_bound: std::time::Duration) -> Result<Self> {
        let index = load_index(&inner, staleness_bound)?;
        Ok(IndexingStore {
            inner,
            index,
            order: Mutex::new(()),
            shared: true,
        })
    }

    /// Applies, in order, every entry the log holds beyond the index (appended by other
    /// processes), then counts the index current as of the moment the read started.
    /// Returns the entries applied.
    ///
    /// # Errors
    /// As [`RevocationStore::list_after`] and [`crate::SharedIndex::apply`]; the index
    /// keeps what it applied and is not marked current.
    pub fn catch_up(&self) -> Result<Vec<RevocationEntry>> {
        let _order = lock(&self.order);
        let started = std::time::Instant::now();
        let applied = self.apply_up_to(u64::MAX, &mut |after, limit| {
            self.inner.list_after(after, limit)
        })?;
        self.index.mark_fresh(started);
        Ok(applied)
    }

    /// Applies, in order, every entry `list_after` lists beyond the index: another
    /// reader of the same log (a session of the owner's own, which may also know of
    /// entries it was told of). Unlike [`IndexingStore::catch_up`], it does not count the
    /// index current: only the owner knows whether, and as of when, its reader read the
    /// whole log; it says so with [`crate::SharedIndex::mark_fresh`].
    ///
    /// `list_after` must behave as [`RevocationStore::list_after`] on this store's log.
    ///
    /// # Errors
    /// As `list_after` and [`crate::SharedIndex::apply`]; the index keeps what it applied.
    pub fn apply_listed(
        &self,
        mut list_after: impl FnMut(u64, usize) -> Result<Vec<RevocationEntry>>,
    ) -> Result<Vec<RevocationEntry>> {
        let _order = lock(&self.order);
        self.apply_up_to(u64::MAX, &mut list_after)
    }

    /// Applies the entries `list_after` lists after the index's last, up to seq `last`.
    /// Called with `order` held.
    fn apply_up_to(
        &self,
        last: u64,
        list_after: &mut dyn FnMut(u64, usize) -> Result<Vec<RevocationEntry>>,
    ) -> Result<Vec<RevocationEntry>> {
        let mut applied = Vec::new();
        loop {
            let after = self.index.last_seq();
            if after >= last {
                return Ok(applied);
            }
            let page = list_after(after, CATCH_UP_PAGE)?;
            let full = page.len() == CATCH_UP_PAGE;
            for entry in page {
                if entry.seq > last {
                    return Ok(applied);
                }
                self.index.apply(&entry)?;
                applied.push(entry);
            }
            if !full {
                return Ok(applied);
            }
        }
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
        if self.shared {
            // Entries other processes committed just before this one come first.
            let applied = self
                .apply_up_to(entry.seq.saturating_sub(1), &mut |after, limit| {
                    self.inner.list_after(after, limit)
                })
                .and_then(|_| self.index.apply(&entry));
            if let Err(error) = applied {
                // Durable, so acknowledged; but until a catch-up succeeds the index
                // cannot vouch for the log: deny meanwhile.
                self.index.mark_stale();
                tracing::warn!(
                    seq = entry.seq,
                    error = %crate::error::report(&error),
                    "could not bring the in-process index up to an appended revocation; \
                     stale until the next catch-up"
                );
            }
            return Ok(entry);
        }
        if let Err(error) = self.index.apply(&entry) {
            // The entry is durable but the index lacks it: fail closed rather than let
            // the index keep vouching for a log it no longer matches.
            self.index.mark_stale();
            tracing::error!(
                seq = entry.seq,
                error = %crate::error::report(&error),
                "could not apply an appended revocation to the in-process index; it is now stale"
            );
            return Err(error);
        }
        Ok(entry)
    }

    fn list_after(&self, after_seq: u64, limit: usize) -> Result<Vec<RevocationEntry>> {
        self.inner.list_after(after_seq, limit)
    }

    fn current_seq(&self) -> Result<u64> {
        self.inner.current_seq()
    }

    fn epoch(&self) -> Result<String> {
        self.inner.epoch()
    }

    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }

    fn check_writable(&self) -> Result<()> {
        self.inner.check_writable()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::kind::RevocationKind;

    fn task(value: &str) -> NewRevocation {
        NewRevocation::revoke(RevocationKind::Task, value, "", "ops").unwrap()
    }

    fn seqs(entries: &[RevocationEntry]) -> Vec<u64> {
        entries.iter().map(|e| e.seq).collect()
    }

    /// sled shows an insert to readers before the flush that makes it durable; such an
    /// entry is not committed and must not be listed or counted.
    #[test]
    fn an_inserted_but_uncommitted_entry_is_never_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        store.append(task("t1")).unwrap();
        let pending = task("t2").into_entry(2, SystemTime::now());
        store
            .log
            .insert(2u64.to_be_bytes(), serde_json::to_vec(&pending).unwrap())
            .unwrap();

        assert_eq!(seqs(&store.list_after(0, 10).unwrap()), [1]);
        assert!(store.list_after(1, 10).unwrap().is_empty());
        assert_eq!(store.current_seq().unwrap(), 1);
    }

    /// A failed flush must not leave its entry visible, nor let a later append give the
    /// same seq to a different entry.
    #[test]
    fn a_failed_append_is_not_listed_and_its_seq_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            store.append(task("t1")).unwrap();
            let failed = store.append_with(task("t2"), |_| {
                Err(sled::Error::Io(std::io::Error::other("disk full")))
            });
            match failed {
                Err(Error::Storage { operation, .. }) => {
                    assert_eq!(operation, "flushing an appended entry");
                }
                other => panic!("expected a storage error, got {other:?}"),
            }
            assert_eq!(seqs(&store.list_after(0, 10).unwrap()), [1]);
            assert_eq!(store.current_seq().unwrap(), 1);

            match store.append(task("t3")) {
                Err(Error::Storage { operation, source }) => {
                    assert_eq!(operation, "appending an entry");
                    assert!(source.to_string().contains("reopen"), "{source}");
                }
                other => panic!("seq 2 must not go to another entry, got {other:?}"),
            }
            assert_eq!(seqs(&store.list_after(0, 10).unwrap()), [1]);
        }
        // Reopening reads back what is durable; the log is whole and takes appends.
        let store = SledStore::open(dir.path()).unwrap();
        let listed = store.list_after(0, 10).unwrap();
        assert_eq!(seqs(&listed), [1]);
        assert_eq!(store.append(task("t4")).unwrap().seq, 2);
    }

    #[test]
    fn a_store_gets_an_epoch_once_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let epoch = SledStore::open(dir.path()).unwrap().epoch().unwrap();
        assert_eq!(epoch.len(), 32, "{epoch}");
        assert!(crate::api::is_valid_epoch(&epoch));
        assert_eq!(SledStore::open(dir.path()).unwrap().epoch().unwrap(), epoch);

        // A store written before epochs existed gets one on its next open, durably.
        let old = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(old.path()).unwrap();
            store.append(task("t1")).unwrap();
            let meta = store.db.open_tree(META_TREE).unwrap();
            meta.remove(EPOCH_KEY).unwrap();
            store.db.flush().unwrap();
        }
        let first = SledStore::open(old.path()).unwrap().epoch().unwrap();
        assert_ne!(first, epoch);
        assert_eq!(SledStore::open(old.path()).unwrap().epoch().unwrap(), first);
    }

    #[test]
    fn a_malformed_stored_epoch_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            let meta = store.db.open_tree(META_TREE).unwrap();
            meta.insert(EPOCH_KEY, &b"not an epoch\n"[..]).unwrap();
            store.db.flush().unwrap();
        }
        assert!(matches!(
            SledStore::open(dir.path()),
            Err(Error::Corrupt { key, .. }) if key == "meta/epoch"
        ));
    }
}
