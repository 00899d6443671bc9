//! PostgreSQL behind Mandate's store traits, so several replicas of the registry,
//! the issuer and the servers share one database. sled stays the embedded default
//! for one machine; a store location that is a `postgres://` URL selects this crate.
//!
//! This crate must never: expose a PostgreSQL type in a public signature of the
//! store crates; print a connection URL's password; or hold a pooled connection
//! while waiting for anything but the database.

mod location;
mod migrate;
mod millis;
mod off_runtime;
mod pool;
mod requests;
mod tasks;

pub mod revocations;

pub use location::StoreLocation;
pub use pool::{is_postgres_url, Error, Pool, PoolOptions};
pub use requests::PgRequestStore;
pub use tasks::PgTaskStore;
pub mod testing;
