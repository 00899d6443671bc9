//! The revocation store a server owns, chosen by its location: a sled folder (one
//! machine) or a PostgreSQL database shared by several replicas.
//!
//! Either way the server reads its own index in-process (`IndexingStore`). With a folder
//! this process is the log's only writer, so the index is always current. With
//! PostgreSQL other replicas append too: a `LISTEN` session ([`ChangeListener`]) wakes on
//! their notifications and on every tick, reads what is new by sequence, applies it to
//! the index and hands it to this replica's open streams. The index is then fresh only
//! while those catch-ups succeed: when the database is gone for longer than the
//! staleness bound, this replica denies and reports not ready, like a verifier that lost
//! its registry.
//!
//! This module must never print a connection URL's password (it names a store by
//! [`StoreLocation`]'s `Display`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use mandate_audit::AuditWriter;
use mandate_postgres::revocations::{ChangeListener, ListenTarget, PgRevocationStore};
use mandate_postgres::StoreLocation;
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

fn open_blocking(
    location: &StoreLocation,
    audit: Option<&Arc<AuditWriter>>,
    staleness: Duration,
) -> Result<OpenedStore> {
    let (inner, shared): (Box<dyn RevocationStore>, Option<ListenTarget>) = match location {
        StoreLocation::Folder(dir) => (
            Box::new(
                SledStore::open(dir).with_context(|| format!("opening store {}", dir.display()))?,
            ),
            None,
        ),
        StoreLocation::Postgres(url) => {
            let store = PgRevocationStore::connect(url)
                .with_context(|| format!("opening store {location}"))?;
            let target = store.listen_target();
            (Box::new(store), target)
        }
    };
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
        let listener = ChangeListener::spawn(target, tick, move || match store.catch_up() {
            Ok(entries) => {
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
        })
        .context("starting the revocation listener")?;
        Ok(Some(listener))
    }
}
