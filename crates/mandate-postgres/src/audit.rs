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
//! A process writing a log bounds each of its calls to the database
//! (`deadline`): a database that stops answering fails the writer, which
//! refuses decisions, instead of holding every decision forever. Every
//! column is read with `try_get`: a row someone with write access altered is
//! an error, never a panic.
//!
//! This module must never hold a pooled connection while waiting for
//! anything but the database.

mod deadline;
mod writer_session;

use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

use mandate_audit::integrity::{SignedHead, StoredEntry};
use mandate_audit::{AuditLog, Trail, TrailEntry};
use postgres::Client;

use crate::off_runtime::{self, OwnedPool};
use crate::{Error, Pool, PoolOptions};
use writer_session::WriterSession;

/// The migration table of the audit schema.
pub(crate) const AUDIT_MIGRATIONS: &str = "mandate_audit_migrations";

/// How long a readiness probe waits for a connection.
const PROBE_WAIT: Duration = Duration::from_secs(1);
/// The longest a writer's call to the database may take: a healthy append
/// takes milliseconds, and the pool waits 5 s for a connection. Past it the
/// writer fails (decisions are refused) rather than hang.
const WRITE_WAIT: Duration = Duration::from_secs(10);

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

    /// The audit store that already exists in the database `url` names, to
    /// read only, through a pool bounded by `options` (a one-shot reader's):
    /// nothing is created or migrated, so a role that may only read the
    /// tables can verify them, and a database without an audit trail is an
    /// error, never an empty trail.
    ///
    /// # Errors
    /// A malformed URL, a database that cannot be reached, or one that holds
    /// no audit trail.
    pub fn connect_to_read(url: &str, options: &PoolOptions) -> Result<PgAuditStore, Error> {
        let pool = off_runtime::connect_with(url, options)?;
        let pool = off_runtime::run(move || {
            let found: bool = pool
                .get()?
                .query_one(
                    "SELECT to_regclass('mandate_audit_logs') IS NOT NULL
                        AND to_regclass('mandate_audit_entries') IS NOT NULL
                        AND to_regclass('mandate_audit_heads') IS NOT NULL",
                    &[],
                )
                .map_err(query)?
                .try_get(0)
                .map_err(query)?;
            if !found {
                return Err(Error::Query(
                    "this database holds no audit trail (no mandate_audit_* tables)".into(),
                ));
            }
            Ok(pool)
        })?;
        Ok(PgAuditStore {
            pool: Arc::new(OwnedPool::new(pool)),
        })
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
            .try_get(0)
            .map_err(query)?;
        drop(client);
        let session = WriterSession::take(self.pool_ref()?, &log_id)?;
        Ok(PgAuditLog {
            rows: LogRows {
                pool: Arc::clone(&self.pool),
                log_id,
            },
            writer: writer.to_owned(),
            session: Some(Arc::new(Mutex::new(session))),
            workers: deadline::Workers::default(),
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
        rows.iter()
            .map(|row| {
                Ok(PgAuditLog {
                    rows: LogRows {
                        pool: Arc::clone(&self.pool),
                        log_id: row.try_get(0).map_err(query)?,
                    },
                    writer: row.try_get(1).map_err(query)?,
                    session: None,
                    workers: deadline::Workers::default(),
                })
            })
            .collect()
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
    rows: LogRows,
    writer: String,
    /// The writer's session (holding the log's lock, carrying its
    /// appends) while this process writes the log; `None` for readers.
    session: Option<Arc<Mutex<WriterSession>>>,
    /// The threads the writer's calls run on, each within [`WRITE_WAIT`].
    workers: deadline::Workers,
}

impl std::fmt::Debug for PgAuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAuditLog")
            .field("log_id", &self.rows.log_id)
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

    /// The first record whose position in the merged trail does not come
    /// after its predecessor's, if any. Positions are allocated in commit
    /// order and a writer commits its records in sequence, so each writer's
    /// positions rise with its sequence numbers: one that does not was moved
    /// (positions swapped in the database). Positions are not signed, so a
    /// swap between two writers' records cannot be told this way.
    ///
    /// # Errors
    /// The database cannot be used.
    pub fn first_out_of_trail_order(&self) -> Result<Option<u64>, Error> {
        let mut client = self.rows.pool.get()?;
        let row = client
            .query_opt(
                "SELECT seq FROM (
                     SELECT seq, pos, lag(pos) OVER (ORDER BY seq) AS before
                     FROM mandate_audit_entries WHERE log_id = $1
                 ) ordered WHERE pos <= before ORDER BY seq LIMIT 1",
                &[&self.rows.log_id],
            )
            .map_err(query)?;
        row.map(|row| {
            let seq: i64 = row.try_get(0).map_err(query)?;
            u64::try_from(seq).map_err(|_| Error::Query(format!("a negative seq: {seq}")))
        })
        .transpose()
    }

    /// Runs `work` on the log's rows: within [`WRITE_WAIT`] when this process
    /// writes the log (a decision waits for it), as it comes otherwise.
    fn run<T: Send + 'static>(
        &self,
        action: &'static str,
        work: impl FnOnce(&LogRows) -> mandate_audit::Result<T> + Send + 'static,
    ) -> mandate_audit::Result<T> {
        if self.session.is_none() {
            return work(&self.rows);
        }
        let rows = self.rows.clone();
        self.workers.within(action, WRITE_WAIT, move || work(&rows))
    }

    /// Runs `work` on the writer's session within [`WRITE_WAIT`].
    fn on_session(
        &self,
        action: &'static str,
        work: impl FnOnce(&mut WriterSession, &str) -> Result<(), String> + Send + 'static,
    ) -> mandate_audit::Result<()> {
        let Some(session) = &self.session else {
            return Err(mandate_audit::Error::storage(
                action,
                "this log was opened to read",
            ));
        };
        let session = Arc::clone(session);
        let log_id = self.rows.log_id.clone();
        self.workers.within(action, WRITE_WAIT, move || {
            // A call from an earlier attempt that is still waiting for the
            // database holds the session: fail at once rather than pile up
            // one waiting thread per retry while the database is stalled.
            let mut held = match session.try_lock() {
                Ok(held) => held,
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {
                    return Err(mandate_audit::Error::storage(
                        action,
                        "an earlier call is still waiting for the database",
                    ))
                }
            };
            work(&mut held, &log_id).map_err(|e| mandate_audit::Error::storage(action, e))
        })
    }
}

/// Where one log's rows are: cloned onto the thread that reads or writes
/// them under a deadline.
#[derive(Clone)]
struct LogRows {
    pool: Arc<OwnedPool>,
    log_id: String,
}

impl LogRows {
    fn client(
        &self,
        action: &'static str,
    ) -> mandate_audit::Result<impl std::ops::DerefMut<Target = Client>> {
        self.pool
            .get()
            .map_err(|e| mandate_audit::Error::storage(action, e))
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
        row.map(|row| entry(&row, ACTION)).transpose()
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
        rows.iter().map(|row| entry(row, ACTION)).collect()
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
                // The column only indexes the head; the signed JSON says
                // which record it covers. Either unreadable, or the two
                // disagreeing, is an edited row.
                let column = row
                    .try_get::<_, i64>(0)
                    .ok()
                    .and_then(|seq| u64::try_from(seq).ok());
                let corrupt = |seq: u64, message: String| mandate_audit::Error::Corrupt {
                    seq,
                    message: format!("signed head: {message}"),
                };
                let text: &str = row
                    .try_get(1)
                    .map_err(|e| corrupt(column.unwrap_or(0), e.to_string()))?;
                let head: SignedHead = serde_json::from_str(text)
                    .map_err(|e| corrupt(column.unwrap_or(0), e.to_string()))?;
                if column != Some(head.seq) {
                    return Err(corrupt(
                        head.seq,
                        "its row was moved to another record number".into(),
                    ));
                }
                Ok(head)
            })
            .collect()
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
            .try_get(0)
            .map_err(storage(ACTION))?;
        if standby {
            return Err(mandate_audit::Error::storage(
                ACTION,
                "the database is a read-only standby; point the audit store at the primary",
            ));
        }
        Ok(())
    }
}

/// A batch's columns, owned so a thread of its own can send them.
struct Batch {
    seqs: Vec<i64>,
    prevs: Vec<Vec<u8>>,
    bodies: Vec<Vec<u8>>,
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

/// A column of `row`; a value of another type (or a NULL) is an error, never
/// a panic: someone who can write the database may have changed the table.
fn column<'a, T: postgres::types::FromSql<'a>>(
    row: &'a postgres::Row,
    index: usize,
    action: &'static str,
) -> mandate_audit::Result<T> {
    row.try_get(index).map_err(storage(action))
}

fn entry(row: &postgres::Row, action: &'static str) -> mandate_audit::Result<StoredEntry> {
    let seq = seq_of(column(row, 0, action)?, action)?;
    let corrupt = |message: &str| mandate_audit::Error::Corrupt {
        seq,
        message: message.into(),
    };
    let prev: &[u8] = row
        .try_get(1)
        .map_err(|_| corrupt("the previous hash is not bytes"))?;
    let prev = prev
        .try_into()
        .map_err(|_| corrupt("the previous hash is not 32 bytes"))?;
    let body: Vec<u8> = row
        .try_get(2)
        .map_err(|_| corrupt("the record is not bytes"))?;
    Ok(StoredEntry { seq, prev, body })
}

impl AuditLog for PgAuditLog {
    fn log_id(&self) -> mandate_audit::Result<String> {
        Ok(self.rows.log_id.clone())
    }

    fn last(&self) -> mandate_audit::Result<Option<StoredEntry>> {
        self.run("reading the audit log", |rows| rows.last())
    }

    fn append(
        &self,
        entries: &[StoredEntry],
        head: Option<&SignedHead>,
        durable: bool,
    ) -> mandate_audit::Result<()> {
        const ACTION: &str = "appending to the audit log";
        let batch = Batch {
            seqs: entries.iter().map(|e| to_i64(e.seq)).collect(),
            prevs: entries.iter().map(|e| e.prev.to_vec()).collect(),
            bodies: entries.iter().map(|e| e.body.clone()).collect(),
        };
        let head = head
            .map(|h| serde_json::to_string(h).map(|json| (to_i64(h.seq), json)))
            .transpose()
            .map_err(|e| mandate_audit::Error::storage(ACTION, e))?;
        let (head_seq, head_json) = head.unzip();
        self.on_session(ACTION, move |session, log_id| {
            session.append(
                &[
                    &log_id,
                    &batch.seqs,
                    &batch.prevs,
                    &batch.bodies,
                    &head_seq,
                    &head_json,
                ],
                durable,
            )
        })
    }

    fn flush(&self) -> mandate_audit::Result<()> {
        self.on_session("flushing the audit log", |session, log_id| {
            session.flush(log_id)
        })
    }

    fn read(&self, from: u64, limit: usize) -> mandate_audit::Result<Vec<StoredEntry>> {
        self.run("reading the audit log", move |rows| rows.read(from, limit))
    }

    fn heads(&self) -> mandate_audit::Result<Vec<SignedHead>> {
        self.run("reading the audit log's heads", LogRows::heads)
    }

    fn recover(&self) -> mandate_audit::Result<()> {
        const ACTION: &str = "reopening the audit log";
        if self.session.is_none() {
            return Ok(());
        }
        let pool = Arc::clone(&self.rows.pool);
        self.on_session(ACTION, move |session, log_id| {
            let pool = pool.pool().ok_or("the store is closed")?;
            session.keep(pool, log_id).map_err(|e| e.to_string())
        })
    }

    fn check_writable(&self) -> mandate_audit::Result<()> {
        self.run("checking the audit store", LogRows::check_writable)
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
                    position: seq_of(column(row, 0, ACTION)?, ACTION)?,
                    seq: seq_of(column(row, 1, ACTION)?, ACTION)?,
                    body: column(row, 2, ACTION)?,
                })
            })
            .collect()
    }
}
