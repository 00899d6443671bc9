//! The revocation log on PostgreSQL: one log shared by every registry replica (and every
//! `mandate serve --store postgres://…`) that points at the same database.
//!
//! [`PgRevocationStore`] implements the registry's [`RevocationStore`] contract, the one
//! the sled store keeps, across processes:
//!
//! - **One identity.** The epoch lives in the database (`mandate_revocation_log`, one
//!   row), written by whichever replica starts first (`INSERT … ON CONFLICT DO NOTHING`)
//!   and read by all, so a verifier can move between replicas and resume by sequence.
//! - **Sequence order is commit order.** Every append calls one SQL function,
//!   `mandate_append_revocations` (see `migrations/registry`), that takes a
//!   transaction-scoped advisory lock, reads `max(seq)`, inserts `max + 1 …` and
//!   notifies, all in the caller's transaction. The lock is released only at commit, so
//!   the next append — from this replica or any other — reads `max(seq)` after the
//!   previous batch committed: seqs are allocated in the order they commit. A reader that
//!   lists `seq > n` therefore never sees `n + 2` while `n + 1` is still to commit, and
//!   never skips an entry that would commit later. (A sequence object would not do:
//!   `nextval` hands out numbers in call order, and a transaction that took 11 can commit
//!   before the one that took 10.)
//! - **Durable before acknowledged.** An append returns after `COMMIT` returned, which
//!   with PostgreSQL's default `synchronous_commit = on` means the WAL is flushed.
//! - **Group commit.** Appends serialize on the lock, and each commit waits for a WAL
//!   flush; so the concurrent appends of one process are committed together, in one
//!   transaction ([`batch`]), one flush for all of them.
//! - **A failed append is never visible.** A transaction that did not commit leaves no
//!   row, so its seq may be taken by the next entry: no reader saw it. When the outcome
//!   of a `COMMIT` is unknown (the connection dropped during it), the entry is either
//!   committed under its seq or absent; the caller got an error and may retry, and the
//!   log stays gap-free either way.
//! - **Unavailable, not panicking.** A database that cannot be reached makes every call
//!   return [`Error::Storage`]; readiness (`check_writable`) reports it, so the registry
//!   is not ready and refuses writes.
//!
//! New entries appended by other replicas are announced with `NOTIFY
//! mandate_revocations` (payload: the entries themselves, signed under the log's
//! notification key, when they fit; else the newest seq); [`ChangeListener`] keeps a
//! `LISTEN` session open and wakes its owner on each notification and periodically with
//! a [`SessionReader`], which serves the entries notified when they are signed,
//! consecutive and complete, and otherwise reads by sequence on the session's own
//! connection; so a missed notification only delays an entry until the next catch-up.
//!
//! This module must never: allocate a seq outside the append function's lock; list an
//! entry that has not committed; or expose a PostgreSQL type in a public signature.

mod batch;
mod listen;
mod notice;
mod reader;

use std::time::SystemTime;

use mandate_registry::{Error, NewRevocation, Result, RevocationEntry, RevocationStore};

use crate::off_runtime::OwnedPool;
use crate::pool::{Pool, PoolOptions};

pub use listen::ChangeListener;
pub use reader::SessionReader;

/// The channel every append notifies, with the new entries (or the newest seq) as payload.
pub const CHANNEL: &str = "mandate_revocations";

/// The table refinery records this crate's registry migrations in (each store family
/// keeps its own history, so their migrations never collide).
const MIGRATION_TABLE: &str = "mandate_registry_migrations";

mod embedded {
    refinery::embed_migrations!("migrations/registry");
}

/// The longest a readiness probe waits for a connection: `/readyz` answers
/// "not ready" promptly while the database is gone, instead of after the
/// pool's whole connect timeout (load balancers' probes time out sooner).
const PROBE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The revocation log in a PostgreSQL database, shared by every process that opens it.
pub struct PgRevocationStore {
    /// Closed on a plain thread when dropped (the sync client cannot close on a
    /// runtime thread, where a server drops its store).
    pool: OwnedPool,
    epoch: String,
    batcher: batch::Batcher,
}

/// Where a [`ChangeListener`] connects: the store's database, without its pool.
#[derive(Clone)]
pub struct ListenTarget(postgres::Config);

impl std::fmt::Debug for ListenTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration may hold a password.
        f.debug_struct("ListenTarget").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PgRevocationStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRevocationStore")
            .field("pool", &self.pool)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// A storage error for `operation`, keeping the cause.
pub(crate) fn storage(
    operation: &'static str,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> Error {
    Error::Storage {
        operation,
        source: source.into(),
    }
}

impl PgRevocationStore {
    /// Connects to `url` with a pool of default bounds, applies the registry's
    /// migrations and reads (or creates) the log's epoch.
    ///
    /// # Errors
    /// [`Error::Storage`] when the URL is unusable, the database cannot be reached or
    /// migrated; [`Error::Corrupt`] when the stored epoch is malformed.
    pub fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, &PoolOptions::default())
    }

    /// As [`PgRevocationStore::connect`], with a pool of `options`' bounds: a one-shot
    /// command holds one connection and gives up on an unreachable database sooner
    /// than a server does.
    ///
    /// # Errors
    /// As [`PgRevocationStore::connect`].
    pub fn connect_with(url: &str, options: &PoolOptions) -> Result<Self> {
        let pool = crate::off_runtime::connect_with(url, options)
            .map_err(|e| storage("connecting to PostgreSQL", e))?;
        Self::open(pool)
    }

    /// As [`PgRevocationStore::connect`], on an existing pool.
    ///
    /// # Errors
    /// As [`PgRevocationStore::connect`].
    /// Safe to call inside an async runtime (the work runs on a plain thread).
    pub fn open(pool: Pool) -> Result<Self> {
        let (pool, epoch) = crate::off_runtime::run(move || {
            migrate(&pool)?;
            let epoch = load_or_create_epoch(&pool)?;
            Ok::<_, Error>((pool, epoch))
        })?;
        Ok(PgRevocationStore {
            batcher: batch::Batcher::new(),
            pool: OwnedPool::new(pool),
            epoch,
        })
    }

    /// Where a [`ChangeListener`] for this store's database connects.
    pub fn listen_target(&self) -> Option<ListenTarget> {
        self.pool
            .pool()
            .map(|pool| ListenTarget(pool.config().clone()))
    }

    /// The pool, while the store is not being dropped.
    fn pool(&self, operation: &'static str) -> Result<&Pool> {
        self.pool
            .pool()
            .ok_or_else(|| storage(operation, "the store is closed"))
    }
}

/// Applies the registry's migrations, one replica at a time.
fn migrate(pool: &Pool) -> Result<()> {
    crate::migrate::run(pool, embedded::migrations::runner(), MIGRATION_TABLE)
        .map_err(|e| storage("applying the registry's migrations", e))
}

/// Reads the log's epoch, creating it when this is the log's first start.
fn load_or_create_epoch(pool: &Pool) -> Result<String> {
    let mut conn = pool
        .get()
        .map_err(|e| storage("reading the log epoch", e))?;
    let fresh = uuid::Uuid::new_v4().simple().to_string();
    conn.execute(
        "INSERT INTO mandate_revocation_log (epoch) VALUES ($1) ON CONFLICT (singleton) DO NOTHING",
        &[&fresh],
    )
    .map_err(|e| storage("writing the log epoch", e))?;
    let row = conn
        .query_one("SELECT epoch FROM mandate_revocation_log", &[])
        .map_err(|e| storage("reading the log epoch", e))?;
    let epoch: String = row.get(0);
    if epoch.is_empty() || epoch.len() > 64 || !epoch.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Corrupt {
            key: "mandate_revocation_log.epoch".to_owned(),
            source: "the log epoch is not 1 to 64 printable ASCII characters".into(),
        });
    }
    Ok(epoch)
}

impl RevocationStore for PgRevocationStore {
    fn append(&self, new: NewRevocation) -> Result<RevocationEntry> {
        self.batcher.append(self.pool("appending an entry")?, new)
    }

    fn list_after(&self, after_seq: u64, limit: usize) -> Result<Vec<RevocationEntry>> {
        // Seqs are BIGINT: nothing lies beyond i64::MAX.
        let Ok(after) = i64::try_from(after_seq) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut conn = self
            .pool("reading entries")?
            .get()
            .map_err(|e| storage("reading entries", e))?;
        let rows = conn
            .query(LIST_AFTER, &[&after, &limit])
            .map_err(|e| storage("reading entries", e))?;
        entries_after(after_seq, &rows)
    }

    fn current_seq(&self) -> Result<u64> {
        let mut conn = self
            .pool("reading the newest seq")?
            .get()
            .map_err(|e| storage("reading the newest seq", e))?;
        let row = conn
            .query_one("SELECT COALESCE(MAX(seq), 0) FROM mandate_revocations", &[])
            .map_err(|e| storage("reading the newest seq", e))?;
        let seq: i64 = row.get(0);
        u64::try_from(seq).map_err(|_| Error::Corrupt {
            key: seq.to_string(),
            source: "a negative sequence number".into(),
        })
    }

    fn epoch(&self) -> Result<String> {
        Ok(self.epoch.clone())
    }

    /// The database answers and takes writes: it is reachable and not a read-only standby.
    fn check_writable(&self) -> Result<()> {
        let mut conn = self
            .pool("checking the store")?
            .get_within(PROBE_WAIT)
            .map_err(|e| storage("checking the store", e))?;
        let row = conn
            .query_one("SELECT pg_is_in_recovery()", &[])
            .map_err(|e| storage("checking the store", e))?;
        let standby: bool = row.get(0);
        if standby {
            return Err(storage(
                "checking the store",
                "the database is a read-only standby; point the registry at the primary",
            ));
        }
        Ok(())
    }
}

/// The entries after seq `$1`, at most `$2`, in order: every read by sequence.
const LIST_AFTER: &str = "SELECT seq, kind, value, reason, revoked_by, recorded_at, lifted \
     FROM mandate_revocations WHERE seq > $1 ORDER BY seq LIMIT $2";

/// The rows [`LIST_AFTER`] returned for entries after `after_seq`, as entries: they
/// must be `after_seq + 1, + 2, …` with no gap.
fn entries_after(after_seq: u64, rows: &[postgres::Row]) -> Result<Vec<RevocationEntry>> {
    let mut out = Vec::with_capacity(rows.len());
    for (expected, row) in (after_seq + 1..).zip(rows) {
        let seq: i64 = row.try_get(0).map_err(|e| Error::Corrupt {
            key: expected.to_string(),
            source: e.into(),
        })?;
        if u64::try_from(seq).ok() != Some(expected) {
            return Err(Error::Corrupt {
                key: expected.to_string(),
                source: "a committed entry is missing from the log".into(),
            });
        }
        out.push(decode(expected, row)?);
    }
    Ok(out)
}

/// One stored row as an entry, checked as every entry read back is.
fn decode(seq: u64, row: &postgres::Row) -> Result<RevocationEntry> {
    let corrupt = |source: Box<dyn std::error::Error + Send + Sync>| Error::Corrupt {
        key: seq.to_string(),
        source,
    };
    // Borrowed from the row: only the value, reason and actor are copied out.
    let kind: &str = row.try_get(1).map_err(|e| corrupt(e.into()))?;
    let kind = kind
        .parse()
        .map_err(|e: mandate_registry::UnknownKind| corrupt(e.into()))?;
    let at: SystemTime = row.try_get(5).map_err(|e| corrupt(e.into()))?;
    let entry = RevocationEntry {
        seq,
        kind,
        value: row.try_get(2).map_err(|e| corrupt(e.into()))?,
        reason: row.try_get(3).map_err(|e| corrupt(e.into()))?,
        revoked_by: row.try_get(4).map_err(|e| corrupt(e.into()))?,
        at,
        lifted: row.try_get(6).map_err(|e| corrupt(e.into()))?,
    };
    entry.validate().map_err(|e| corrupt(e.into()))?;
    Ok(entry)
}
