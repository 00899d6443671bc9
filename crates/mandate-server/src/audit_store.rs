//! Where an audit trail is kept, chosen by its location: a folder (one
//! writer's log, segment files) or a PostgreSQL database shared by several
//! replicas, each writing a log of its own, read as one trail merged in
//! commit order.
//!
//! This module must never print a connection URL's password (it names a
//! store by [`StoreLocation`]'s `Display`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use mandate_audit::{AuditLog, LogTrail, Trail};
use mandate_postgres::{PgAuditStore, PoolOptions, StoreLocation};

/// The pool of a command that reads a shared store: one statement at a
/// time, an unreachable database reported once within seconds, and room for
/// a reader's longer scans.
const READER_POOL: PoolOptions = PoolOptions {
    max_size: 1,
    connect_timeout: Duration::from_secs(5),
    statement_timeout: Duration::from_secs(60),
    // Reported once, in the command's error.
    log_connect_failures: false,
};

/// The log a writer appends to, and the trail its readers read when that is
/// more than the log (a store shared with other writers).
pub struct WriterStore {
    /// This writer's log.
    pub log: Arc<dyn AuditLog>,
    /// Every writer's records, when the store is shared.
    pub shared: Option<Arc<dyn Trail>>,
}

/// Opens the log that the writer with public key `writer` appends to at
/// `location`: the folder's log (created when missing), or this writer's log
/// in the database (created on first use; migrated). Call it on a thread
/// that is not driving an async runtime.
///
/// # Errors
/// A store that cannot be opened, or (PostgreSQL) a log another process
/// writes with the same key.
pub fn open_writer(location: &StoreLocation, writer: &str) -> Result<WriterStore> {
    match location {
        StoreLocation::Folder(dir) => Ok(WriterStore {
            log: mandate_audit::store::open(dir)
                .with_context(|| format!("opening audit store {}", dir.display()))?,
            shared: None,
        }),
        StoreLocation::Postgres(url) => {
            let store = PgAuditStore::connect(url)
                .with_context(|| format!("opening audit store {location}"))?;
            let log = store
                .writer_log(writer)
                .with_context(|| format!("opening audit store {location}"))?;
            Ok(WriterStore {
                log: Arc::new(log),
                shared: Some(Arc::new(store.trail())),
            })
        }
    }
}

/// One writer's log in a store.
pub struct WriterLog {
    /// The writer's public key (text), when the store records it (a folder
    /// does not: its heads name it).
    pub writer: Option<String>,
    /// The log.
    pub log: Arc<dyn AuditLog>,
    /// The first record whose place in the merged trail comes before its
    /// predecessor's (positions moved in the database), when the store
    /// keeps such places (a database does).
    pub out_of_trail_order: Option<u64>,
}

/// An existing audit store, opened to read and verify.
pub enum AuditStore {
    /// A folder: one writer's log.
    Folder(Arc<dyn AuditLog>),
    /// A database: one log per writer.
    Shared(PgAuditStore),
}

impl std::fmt::Debug for AuditStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditStore::Folder(log) => f.debug_tuple("Folder").field(log).finish(),
            AuditStore::Shared(store) => f.debug_tuple("Shared").field(store).finish(),
        }
    }
}

impl AuditStore {
    /// Opens the store at `location` to read; a folder that holds no log (or
    /// a database that holds no audit trail) is an error, never an empty
    /// log. A database is not migrated: reading needs only `SELECT` on the
    /// audit tables. Call it on a thread that is not driving
    /// an async runtime.
    ///
    /// # Errors
    /// No log there, or a store that cannot be opened.
    pub fn open_existing(location: &StoreLocation) -> Result<AuditStore> {
        match location {
            StoreLocation::Folder(dir) => Ok(AuditStore::Folder(
                mandate_audit::store::open_existing(dir)?,
            )),
            StoreLocation::Postgres(url) => Ok(AuditStore::Shared(
                PgAuditStore::connect_to_read(url, &READER_POOL)
                    .with_context(|| format!("opening audit store {location}"))?,
            )),
        }
    }

    /// Every record, in the order queries read them.
    pub fn trail(&self) -> Arc<dyn Trail> {
        match self {
            AuditStore::Folder(log) => Arc::new(LogTrail(Arc::clone(log))),
            AuditStore::Shared(store) => Arc::new(store.trail()),
        }
    }

    /// Each writer's log, each verified on its own.
    ///
    /// # Errors
    /// The store cannot be read.
    pub fn logs(&self) -> Result<Vec<WriterLog>> {
        match self {
            AuditStore::Folder(log) => Ok(vec![WriterLog {
                writer: None,
                log: Arc::clone(log),
                out_of_trail_order: None,
            }]),
            AuditStore::Shared(store) => store
                .logs()?
                .into_iter()
                .map(|log| {
                    Ok(WriterLog {
                        writer: Some(log.writer().to_owned()),
                        out_of_trail_order: log.first_out_of_trail_order()?,
                        log: Arc::new(log),
                    })
                })
                .collect(),
        }
    }
}
