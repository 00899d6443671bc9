//! PostgreSQL behind Mandate's store traits, so several replicas of the registry,
//! the issuer and the servers share one database. sled stays the embedded default
//! for one machine; a store location that is a `postgres://` URL selects this crate.
//! Stores: the revocation log, the audit trail (one chain per writer, merged in
//! commit order), the issuer's tasks and rights requests.
//!
//! This crate must never: expose a PostgreSQL type in a public signature of the
//! store crates; print a connection URL's password; or hold a pooled connection
//! while waiting for anything but the database.

pub mod audit;
mod location;
mod migrate;
mod millis;
mod off_runtime;
mod pool;
mod records;
mod requests;
mod tasks;

pub mod revocations;

pub use audit::{PgAuditLog, PgAuditStore, PgAuditTrail};
pub use location::StoreLocation;
pub use pool::{is_postgres_url, Error, Pool, PoolOptions};
pub use requests::PgRequestStore;
pub use tasks::PgTaskStore;
pub mod testing;
