//! The default [`AuditLog`]: a sled folder, one process at a time.
//!
//! Layout, in the tree `audit`: `r` + seq (8 bytes, big-endian) → the previous
//! hash (32 bytes) then the record's JSON; `h` + seq → a signed head (JSON);
//! `m/id` → the log id. A batch is one sled batch (atomic) and, when
//! durable, one flush. No sled type leaves this module.
//!
//! After a failed write sled refuses further writes on the same handle, so
//! [`AuditLog::recover`] drops the handle and opens the folder again; the
//! writer then re-reads the newest entry, so a batch that never reached the
//! disk is simply not part of the log.

use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};

use crate::integrity::{Hash, SignedHead, StoredEntry};
use crate::log::AuditLog;
use crate::{Error, Result};

const TREE: &str = "audit";
const RECORD: u8 = b'r';
const HEAD: u8 = b'h';
const ID_KEY: &[u8] = b"m/id";
/// Written and flushed by readiness probes, outside the log's tree.
const PROBE_KEY: &[u8] = b"audit-readiness-probe";

/// An [`AuditLog`] on a sled folder.
#[derive(Debug)]
pub struct SledLog {
    path: PathBuf,
    db: RwLock<Option<sled::Db>>,
}

fn key(prefix: u8, seq: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = prefix;
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn decode_entry(key: &[u8], value: &[u8]) -> Result<StoredEntry> {
    let seq = key
        .get(1..9)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| Error::Corrupt {
            seq: 0,
            message: "a record key is not a sequence number".into(),
        })?;
    if value.len() < 32 {
        return Err(Error::Corrupt {
            seq,
            message: "shorter than its link".into(),
        });
    }
    let (prev, body) = value.split_at(32);
    let mut link: Hash = [0; 32];
    link.copy_from_slice(prev);
    Ok(StoredEntry {
        seq,
        prev: link,
        body: body.to_vec(),
    })
}

/// Opens the sled database in `path`, waiting briefly for a lock a closing
/// handle still holds.
fn open_db(path: &Path) -> Result<sled::Db> {
    // Durability is decided per batch by `append`; no background flush
    // should make a buffered batch look durable earlier or later.
    mandate_sled::open(&sled::Config::new().path(path).flush_every_ms(None))
        .map_err(|e| Error::storage("opening the audit store", e))
}

impl SledLog {
    /// Opens the folder `path`, creating the log if it does not exist.
    ///
    /// # Errors
    /// [`Error::Storage`] when it cannot be opened (another process holds it).
    pub fn open(path: &Path) -> Result<SledLog> {
        let db = open_db(path)?;
        let tree = db
            .open_tree(TREE)
            .map_err(|e| Error::storage("opening the audit tree", e))?;
        if tree
            .get(ID_KEY)
            .map_err(|e| Error::storage("reading the log id", e))?
            .is_none()
        {
            let id = uuid::Uuid::new_v4().simple().to_string();
            tree.insert(ID_KEY, id.as_bytes())
                .map_err(|e| Error::storage("writing the log id", e))?;
            db.flush()
                .map_err(|e| Error::storage("flushing the log id", e))?;
        }
        Ok(SledLog {
            path: path.to_owned(),
            db: RwLock::new(Some(db)),
        })
    }

    /// Opens an existing log; a folder that holds none is an error, never a
    /// fresh empty log that would verify as "nothing to see".
    ///
    /// # Errors
    /// [`Error::Storage`] when `path` holds no audit log or cannot be opened.
    pub fn open_existing(path: &Path) -> Result<SledLog> {
        if !path.join("db").is_file() {
            return Err(Error::storage(
                "opening the audit store",
                format!("{} holds no audit log", path.display()),
            ));
        }
        let db = open_db(path)?;
        let holds_log = db
            .tree_names()
            .iter()
            .any(|name| name.as_ref() == TREE.as_bytes())
            && db
                .open_tree(TREE)
                .and_then(|tree| tree.contains_key(ID_KEY))
                .unwrap_or(false);
        if !holds_log {
            return Err(Error::storage(
                "opening the audit store",
                format!("{} holds no audit log", path.display()),
            ));
        }
        Ok(SledLog {
            path: path.to_owned(),
            db: RwLock::new(Some(db)),
        })
    }

    fn tree(&self) -> Result<sled::Tree> {
        let db = self.db.read().unwrap_or_else(PoisonError::into_inner);
        let db = db.as_ref().ok_or_else(|| {
            Error::storage("using the audit store", "closed after a failed write")
        })?;
        db.open_tree(TREE)
            .map_err(|e| Error::storage("opening the audit tree", e))
    }

    fn db(&self) -> Result<sled::Db> {
        let db = self.db.read().unwrap_or_else(PoisonError::into_inner);
        db.clone()
            .ok_or_else(|| Error::storage("using the audit store", "closed after a failed write"))
    }
}

impl AuditLog for SledLog {
    fn log_id(&self) -> Result<String> {
        let id = self
            .tree()?
            .get(ID_KEY)
            .map_err(|e| Error::storage("reading the log id", e))?
            .ok_or_else(|| Error::storage("reading the log id", "missing"))?;
        String::from_utf8(id.to_vec()).map_err(|_| Error::Corrupt {
            seq: 0,
            message: "the log id is not text".into(),
        })
    }

    fn last(&self) -> Result<Option<StoredEntry>> {
        let last = self
            .tree()?
            .scan_prefix([RECORD])
            .next_back()
            .transpose()
            .map_err(|e| Error::storage("reading the newest record", e))?;
        last.map(|(k, v)| decode_entry(&k, &v)).transpose()
    }

    fn append(
        &self,
        entries: &[StoredEntry],
        head: Option<&SignedHead>,
        durable: bool,
    ) -> Result<()> {
        let db = self.db()?;
        let tree = db
            .open_tree(TREE)
            .map_err(|e| Error::storage("opening the audit tree", e))?;
        let mut batch = sled::Batch::default();
        for entry in entries {
            let mut value = Vec::with_capacity(32 + entry.body.len());
            value.extend_from_slice(&entry.prev);
            value.extend_from_slice(&entry.body);
            batch.insert(&key(RECORD, entry.seq), value);
        }
        if let Some(head) = head {
            batch.insert(&key(HEAD, head.seq), serde_json::to_vec(head)?);
        }
        tree.apply_batch(batch)
            .map_err(|e| Error::storage("writing audit records", e))?;
        if durable {
            db.flush()
                .map_err(|e| Error::storage("flushing audit records", e))?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.db()?
            .flush()
            .map(drop)
            .map_err(|e| Error::storage("flushing audit records", e))
    }

    fn read(&self, from: u64, limit: usize) -> Result<Vec<StoredEntry>> {
        let tree = self.tree()?;
        let mut out = Vec::with_capacity(limit.min(4096));
        for item in tree
            .range(key(RECORD, from)..=key(RECORD, u64::MAX))
            .take(limit)
        {
            let (k, v) = item.map_err(|e| Error::storage("reading audit records", e))?;
            out.push(decode_entry(&k, &v)?);
        }
        Ok(out)
    }

    fn heads(&self) -> Result<Vec<SignedHead>> {
        let mut out = Vec::new();
        for item in self.tree()?.scan_prefix([HEAD]) {
            let (k, v) = item.map_err(|e| Error::storage("reading signed heads", e))?;
            let head: SignedHead = serde_json::from_slice(&v).map_err(|e| Error::Corrupt {
                seq: decode_entry(&k, &[0; 32]).map_or(0, |e| e.seq),
                message: format!("signed head unreadable: {e}"),
            })?;
            out.push(head);
        }
        Ok(out)
    }

    fn recover(&self) -> Result<()> {
        let mut db = self.db.write().unwrap_or_else(PoisonError::into_inner);
        // The old handle goes first: sled holds the folder's lock until every
        // handle is dropped.
        *db = None;
        *db = Some(open_db(&self.path)?);
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        let db = self.db()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        db.insert(PROBE_KEY, &now.to_be_bytes())
            .map_err(|e| Error::storage("writing the readiness probe", e))?;
        db.flush()
            .map(drop)
            .map_err(|e| Error::storage("flushing the readiness probe", e))
    }
}
