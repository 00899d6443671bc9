//! The revocation store a server owns, chosen by its location: a sled folder (one
//! machine) or a PostgreSQL database shared by several replicas.
//!
//! Either way the server reads its own index in-process (`IndexingStore`). With a folder
//! this process is the log's only writer, so the index is always current. With
//! PostgreSQL other replicas append too: a `LISTEN` session ([`ChangeListener`]) wakes on
//! their notifications and on every tick, takes what is new — the entries a signed
//! notification carried, or a read by sequence on the session's own connection —
//! applies it to the index and hands it to this replica's open streams. The index is then fresh only
//! while those catch-ups succeed: when the database is gone for longer than the
//! staleness bound, this replica denies and reports not ready, like a verifier that lost
//! its registry.
//!
//! The one-shot commands that act on a store themselves (`mandate revoke --store`,
//! `revocations list --store`, `authorize --store`) open it here too, with
//! [`open_existing`]: the same backends, never creating a folder, and on PostgreSQL one
//! connection that gives up within seconds.
//!
//! This module must never print a connection URL's password (it names a store by
//! [`StoreLocation`]'s `Display`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use mandate_audit::AuditWriter;
use mandate_postgres::revocations::{ChangeListener, ListenTarget, PgRevocationStore};
use mandate_postgres::{PoolOptions, StoreLocation};
use mandate_registry::{IndexingStore, RegistryState, RevocationStore, SledStore};

use crate::audit::AuditedStore;

/// The store as the server uses it: every backend behind one type.
pub type LocalStore = IndexingStore<Box<dyn RevocationStore>>;

/// An opened store, and what following other replicas needs.
pub struct OpenedStore {
    /// The store, with its in-process index.
    pub store: Arc<LocalStore>,
    /// Set when the store is shared with other replicas.
    shared: Option<ListenTarget>,
}

/// Opens the store at `location` (a folder is created when missing; a database is
/// migrated), wrapped so every write is recorded in `audit` when given. A shared store's
/// index goes stale after `staleness` without a successful catch-up.
///
/// # Errors
/// A store that cannot be opened, migrated or read.
pub fn open(
    location: &StoreLocation,
    audit: Option<&Arc<AuditWriter>>,
    staleness: Duration,
) -> Result<OpenedStore> {
    // The PostgreSQL client blocks on a runtime of its own, which it may not do on a
    // thread that drives an async runtime (`bind` runs on one): open on a thread of its
    // own.
    std::thread::scope(|scope| {
        scope
            .spawn(|| open_blocking(location, audit, staleness))
            .join()
            .unwrap_or_else(|_| {
                Err(anyhow::anyhow!(
                    "opening store {location}: the opening thread panicked"
                ))
            })
    })
}

/// The pool of a one-shot command: it runs one statement at a time, and an unreachable
/// database is reported within seconds, not after a server's patience.
const COMMAND_POOL: PoolOptions = PoolOptions {
    max_size: 1,
    connect_timeout: Duration::from_secs(2),
    statement_timeout: Duration::from_secs(10),
    // Reported once, in the command's error.
    log_connect_failures: false,
};

/// Opens the store at `location` for a one-shot command, on the backend a server would
/// use: a folder must already hold a store (a mistyped path is an error, never an empty
/// log that revokes nothing); a database is migrated as a server migrates it, through
/// one connection that gives up after two seconds. Dropping the store closes its
/// connection.
///
/// Call it, and use the store, outside any async runtime (the PostgreSQL client runs
/// one of its own).
///
/// # Errors
/// [`mandate_registry::Error::StoreNotFound`] for a folder that holds no store;
/// [`mandate_registry::Error::Storage`] when the store cannot be opened, the database
/// reached or migrated.
pub fn open_existing(
    location: &StoreLocation,
) -> mandate_registry::Result<Box<dyn RevocationStore>> {
    backend(location, Opening::Command).map(|(store, _)| store)
}

/// Who opens a store, which decides how.
#[derive(Clone, Copy)]
enum Opening {
    /// The server that owns it: a missing folder becomes an empty store, the pool
    /// has the server's bounds.
    Server,
    /// A one-shot command: the store must exist, the pool is [`COMMAND_POOL`].
    Command,
}

/// The backend at `location`, and where to listen for other replicas' appends when
/// it is shared.
fn backend(
    location: &StoreLocation,
    opening: Opening,
) -> mandate_registry::Result<(Box<dyn RevocationStore>, Option<ListenTarget>)> {
    Ok(match (location, opening) {
        (StoreLocation::Folder(dir), Opening::Server) => (Box::new(SledStore::open(dir)?), None),
        (StoreLocation::Folder(dir), Opening::Command) => {
            (Box::new(SledStore::open_existing(dir)?), None)
        }
        (StoreLocation::Postgres(url), opening) => {
            let store = match opening {
                Opening::Server => PgRevocationStore::connect(url)?,
                Opening::Command => PgRevocationStore::connect_with(url, &COMMAND_POOL)?,
            };
            let target = store.listen_target();
            (Box::new(store), target)
        }
    })
}

fn open_blocking(
    location: &StoreLocation,
    audit: Option<&Arc<AuditWriter>>,
    staleness: Duration,
) -> Result<OpenedStore> {
    let (inner, shared) =
        backend(location, Opening::Server).with_context(|| format!("opening store {location}"))?;
    // With an audit trail, every registry write is recorded once durable.
    let inner: Box<dyn RevocationStore> = match audit {
        Some(writer) => Box::new(AuditedStore::new(inner, Arc::clone(writer))),
        None => inner,
    };
    let store = match shared {
        Some(_) => IndexingStore::shared(inner, staleness)?,
        None => IndexingStore::new(inner)?,
    };
    Ok(OpenedStore {
        store: Arc::new(store),
        shared,
    })
}

impl OpenedStore {
    /// For a shared store: starts following the other replicas' appends, every
    /// `tick` and on each notification, feeding the index and `registry`'s streams.
    /// `None` for a folder, whose only writer is this process.
    ///
    /// # Errors
    /// When the listening thread cannot be started.
    pub fn follow(
        &self,
        registry: Option<RegistryState>,
        tick: Duration,
    ) -> Result<Option<ChangeListener>> {
        let Some(target) = &self.shared else {
            return Ok(None);
        };
        let store = Arc::clone(&self.store);
        let listener = ChangeListener::spawn(target, tick, move |reader| {
            match store.apply_listed(|after, limit| reader.list_after(after, limit)) {
                Ok(entries) => {
                    // Current as of the moment the read of the log began; entries
                    // only notified say nothing of what committed after them.
                    if let Some(started) = reader.read_started() {
                        store.index().mark_fresh(started);
                    }
                    if let Some(registry) = &registry {
                        registry.publish(&entries);
                    }
                }
                Err(error) => {
                    tracing::warn!(
                        error = %anyhow::Error::from(error),
                        "cannot read new revocations from the shared store"
                    );
                }
            }
        })
        .context("starting the revocation listener")?;
        Ok(Some(listener))
    }
}
