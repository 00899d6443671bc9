//! Where the issuer keeps its tasks and agents' requests for more rights:
//! sled folders on one machine, or one PostgreSQL database that any number
//! of issuer replicas share (compare-and-swap there decides a refresh
//! racing a close across replicas, as sled does within one process).

use std::sync::Arc;

use anyhow::{Context as _, Result};
use mandate_issuer::requests::{RequestStore, SledRequestStore};
use mandate_issuer::{SledTaskStore, TaskStore};
use mandate_postgres::{PgRequestStore, PgTaskStore, StoreLocation};

/// The task store at `location`.
///
/// # Errors
/// The folder cannot be opened, or the database reached or migrated.
pub fn open_tasks(location: &StoreLocation) -> Result<Arc<dyn TaskStore>> {
    let context = || format!("opening task store {location}");
    Ok(match location {
        StoreLocation::Folder(dir) => Arc::new(SledTaskStore::open(dir).with_context(context)?),
        StoreLocation::Postgres(url) => Arc::new(PgTaskStore::connect(url).with_context(context)?),
    })
}

/// The request store at `location`.
///
/// # Errors
/// The folder cannot be opened, or the database reached or migrated.
pub fn open_requests(location: &StoreLocation) -> Result<Arc<dyn RequestStore>> {
    let context = || format!("opening request store {location}");
    Ok(match location {
        StoreLocation::Folder(dir) => Arc::new(SledRequestStore::open(dir).with_context(context)?),
        StoreLocation::Postgres(url) => {
            Arc::new(PgRequestStore::connect(url).with_context(context)?)
        }
    })
}
