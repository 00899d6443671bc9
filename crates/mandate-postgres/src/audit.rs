//! The audit trail in PostgreSQL, shared by every server replica.
//!
//! Each writer — one per audit key, so one per replica — keeps a log of its
//! own: its records hash-chained by sequence number and its own signed heads,
//! exactly as a log in a folder, so `verify` checks each chain on its own and
//! a replica cannot edit another's records without breaking that writer's
//! heads. Every record also gets a position in one merged trail, allocated in
//! commit order under one lock (see the migration), which queries and
//! followers read: a reader that continues after the newest position it saw
//! never misses a record.
//!
//! A log has one writer process at a time: opening it for writing takes a
//! session advisory lock on a connection of its own, which then carries the
//! writer's appends (one prepared statement, one round trip and one commit a
//! batch); and the append function refuses a batch that does not follow the
//! log's newest entry, so even a second process with the same key cannot
//! fork the chain.
//!
//! This module must never hold a pooled connection while waiting for
//! anything but the database.

mod writer_session;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mandate_audit::integrity::{SignedHead, StoredEntry};
use mandate_audit::{AuditLog, Trail, TrailEntry};
use postgres::Client;

use crate::off_runtime::{self, OwnedPool};
use crate::{Error, Pool};
use writer_session::WriterSession;

/// The migration table of the audit schema.
pub(crate) const AUDIT_MIGRATIONS: &str = "mandate_audit_migrations";

/// How long a readiness probe waits for a connection.
const PROBE_WAIT: Duration = Duration::from_secs(1);

mod embedded {
    refinery::embed_migrations!("migrations/audit");
}

/// Applies the audit schema's migrations once per database.
pub(crate) fn migrate(pool: &Pool) -> Result<(), Error> {
    crate::migrate::run(pool, embedded::migrations::runner(), AUDIT_MIGRATIONS)
}

/// The audit logs of every writer in one database.
#[derive(Debug, Clone)]
pub struct PgAuditStore {
    pool: Arc<OwnedPool>,
}

impl PgAuditStore {
    /// The audit store in the database `pool` reaches, its schema migrated.
    /// Safe to call inside an async runtime (the work runs on a plain thread).
    ///
    /// # Errors
    /// The database cannot be reached or migrated.
    pub fn open(pool: Pool) -> Result<PgAuditStore, Error> {
        Ok(PgAuditStore {
            pool: Arc::new(OwnedPool::migrated(pool, migrate)?),
        })
    }

    /// Connects to `url` (a pool with default bounds) and opens the store.
    ///
    /// # Errors
    /// A malformed URL, or a database that cannot be reached or migrated.
    pub fn connect(url: &str) -> Result<PgAuditStore, Error> {
        PgAuditStore::open(off_runtime::connect(url)?)
    }

    /// The log that `writer` (a public key's text) writes, created on first
    /// use, with this process as its only writer until the log is dropped.
    /// Call it on a thread that is not driving an async runtime.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when another process writes this log (it holds
    /// the key too), or the database cannot be used.
    pub fn writer_log(&self, writer: &str) -> Result<PgAuditLog, Error> {
        let mut client = self.pool.get()?;
        let fresh = uuid::Uuid::new_v4().simple().to_string();
        client
            .execute(
                "INSERT INTO mandate_audit_logs (log_id, writer) VALUES ($1, $2)
                 ON CONFLICT (writer) DO NOTHING",
                &[&fresh, &writer],
            )
            .map_err(query)?;
        let log_id: String = client
            .query_one(
                "SELECT log_id FROM mandate_audit_logs WHERE writer = $1",
                &[&writer],
            )
            .map_err(query)?
            .get(0);
        drop(client);
        let session = WriterSession::take(self.pool_ref()?, &log_id)?;
        Ok(PgAuditLog {
            pool: Arc::clone(&self.pool),
            log_id,
            writer: writer.to_owned(),
            session: Some(Mutex::new(session)),
        })
    }

    /// Every writer's log, oldest first, to read (not to write).
    ///
    /// # Errors
    /// The database cannot be used.
    pub fn logs(&self) -> Result<Vec<PgAuditLog>, Error> {
        let mut client = self.pool.get()?;
        let rows = client
            .query(
                "SELECT log_id, writer FROM mandate_audit_logs ORDER BY created_at, log_id",
                &[],
            )
            .map_err(query)?;
        Ok(rows
            .iter()
            .map(|row| PgAuditLog {
                pool: Arc::clone(&self.pool),
                log_id: row.get(0),
                writer: row.get(1),
                session: None,
            })
            .collect())
    }

    /// The records of every writer in commit order.
    pub fn trail(&self) -> PgAuditTrail {
        PgAuditTrail {
            pool: Arc::clone(&self.pool),
        }
    }

    fn pool_ref(&self) -> Result<&Pool, Error> {
        self.pool
            .pool()
            .ok_or_else(|| Error::Unavailable("the store is closed".into()))
    }
}

/// One writer's log in the shared store.
pub struct PgAuditLog {
    pool: Arc<OwnedPool>,
    log_id: String,
    writer: String,
    /// The writer's session (holding the log's lock, carrying its
    /// appends) while this process writes the log; `None` for readers.
    session: Option<Mutex<WriterSession>>,
}

impl std::fmt::Debug for PgAuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAuditLog")
            .field("log_id", &self.log_id)
            .field("writer", &self.writer)
            .field("writing", &self.session.is_some())
            .finish_non_exhaustive()
    }
}

impl PgAuditLog {
    /// The public key (text) of the log's writer.
    pub fn writer(&self) -> &str {
        &self.writer
    }

    /// The writer's session; a log opened to read has none.
    fn writer_session(
        &self,
        action: &'static str,
    ) -> mandate_audit::Result<&Mutex<WriterSession>> {
        self.session
            .as_ref()
            .ok_or_else(|| mandate_audit::Error::storage(action, "this log was opened to read"))
    }

    fn client(
        &self,
        action: &'static str,
    ) -> mandate_audit::Result<impl std::ops::DerefMut<Target = Client>> {
        self.pool
            .get()
            .map_err(|e| mandate_audit::Error::storage(action, e))
    }
}

fn query(error: postgres::Error) -> Error {
    Error::Query(error.to_string())
}

fn storage(action: &'static str) -> impl Fn(postgres::Error) -> mandate_audit::Error {
    move |error| mandate_audit::Error::storage(action, writer_session::message(error))
}

fn seq_of(value: i64, action: &'static str) -> mandate_audit::Result<u64> {
    u64::try_from(value).map_err(|_| mandate_audit::Error::storage(action, "a negative number"))
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn entry(seq: i64, prev: &[u8], body: Vec<u8>) -> mandate_audit::Result<StoredEntry> {
    let seq = seq_of(seq, "reading the audit log")?;
    let prev = prev.try_into().map_err(|_| mandate_audit::Error::Corrupt {
        seq,
        message: "the previous hash is not 32 bytes".into(),
    })?;
    Ok(StoredEntry { seq, prev, body })
}

impl AuditLog for PgAuditLog {
    fn log_id(&self) -> mandate_audit::Result<String> {
        Ok(self.log_id.clone())
    }

    fn last(&self) -> mandate_audit::Result<Option<StoredEntry>> {
        const ACTION: &str = "reading the audit log";
        let row = self
            .client(ACTION)?
            .query_opt(
                "SELECT seq, prev, body FROM mandate_audit_entries
                 WHERE log_id = $1 ORDER BY seq DESC LIMIT 1",
                &[&self.log_id],
            )
            .map_err(storage(ACTION))?;
        row.map(|row| entry(row.get(0), row.get(1), row.get(2)))
            .transpose()
    }

    fn append(
        &self,
        entries: &[StoredEntry],
        head: Option<&SignedHead>,
        durable: bool,
    ) -> mandate_audit::Result<()> {
        const ACTION: &str = "appending to the audit log";
        let session = self.writer_session(ACTION)?;
        let seqs: Vec<i64> = entries.iter().map(|e| to_i64(e.seq)).collect();
        let prevs: Vec<&[u8]> = entries.iter().map(|e| e.prev.as_slice()).collect();
        let bodies: Vec<&[u8]> = entries.iter().map(|e| e.body.as_slice()).collect();
        let head_seq = head.map(|h| to_i64(h.seq));
        let head_json = head
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| mandate_audit::Error::storage(ACTION, e))?;
        session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .append(
                &[
                    &self.log_id,
                    &seqs,
                    &prevs,
                    &bodies,
                    &head_seq,
                    &head_json,
                ],
                durable,
            )
            .map_err(|e| mandate_audit::Error::storage(ACTION, e))
    }

    fn flush(&self) -> mandate_audit::Result<()> {
        const ACTION: &str = "flushing the audit log";
        self.writer_session(ACTION)?
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush(&self.log_id)
            .map_err(|e| mandate_audit::Error::storage(ACTION, e))
    }

    fn read(&self, from: u64, limit: usize) -> mandate_audit::Result<Vec<StoredEntry>> {
        const ACTION: &str = "reading the audit log";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client(ACTION)?
            .query(
                "SELECT seq, prev, body FROM mandate_audit_entries
                 WHERE log_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
                &[&self.log_id, &to_i64(from), &limit],
            )
            .map_err(storage(ACTION))?;
        rows.iter()
            .map(|row| entry(row.get(0), row.get(1), row.get(2)))
            .collect()
    }

    fn heads(&self) -> mandate_audit::Result<Vec<SignedHead>> {
        const ACTION: &str = "reading the audit log's heads";
        let rows = self
            .client(ACTION)?
            .query(
                "SELECT seq, head FROM mandate_audit_heads WHERE log_id = $1 ORDER BY id",
                &[&self.log_id],
            )
            .map_err(storage(ACTION))?;
        rows.iter()
            .map(|row| {
                let seq = seq_of(row.get(0), ACTION)?;
                serde_json::from_str(row.get(1)).map_err(|e| mandate_audit::Error::Corrupt {
                    seq,
                    message: format!("signed head: {e}"),
                })
            })
            .collect()
    }

    fn recover(&self) -> mandate_audit::Result<()> {
        let Some(session) = &self.session else {
            return Ok(());
        };
        let pool = self.pool.pool().ok_or_else(|| {
            mandate_audit::Error::storage("reopening the audit log", "the store is closed")
        })?;
        session
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keep(pool, &self.log_id)
            .map_err(|e| mandate_audit::Error::storage("reopening the audit log", e))
    }

    fn check_writable(&self) -> mandate_audit::Result<()> {
        const ACTION: &str = "checking the audit store";
        let pool = self
            .pool
            .pool()
            .ok_or_else(|| mandate_audit::Error::storage(ACTION, "the store is closed"))?;
        let mut client = pool
            .get_within(PROBE_WAIT)
            .map_err(|e| mandate_audit::Error::storage(ACTION, e))?;
        let standby: bool = client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .map_err(storage(ACTION))?
            .get(0);
        if standby {
            return Err(mandate_audit::Error::storage(
                ACTION,
                "the database is a read-only standby; point the audit store at the primary",
            ));
        }
        Ok(())
    }
}

/// Every writer's records in the order they were committed.
#[derive(Debug, Clone)]
pub struct PgAuditTrail {
    pool: Arc<OwnedPool>,
}

impl Trail for PgAuditTrail {
    fn read_after(&self, after: u64, limit: usize) -> mandate_audit::Result<Vec<TrailEntry>> {
        const ACTION: &str = "reading the audit trail";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .pool
            .get()
            .map_err(|e| mandate_audit::Error::storage(ACTION, e))?
            .query(
                "SELECT pos, seq, body FROM mandate_audit_entries
                 WHERE pos > $1 ORDER BY pos LIMIT $2",
                &[&to_i64(after), &limit],
            )
            .map_err(storage(ACTION))?;
        rows.iter()
            .map(|row| {
                Ok(TrailEntry {
                    position: seq_of(row.get(0), ACTION)?,
                    seq: seq_of(row.get(1), ACTION)?,
                    body: row.get(2),
                })
            })
            .collect()
    }
}
