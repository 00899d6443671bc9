//! A bounded pool of connections to one database, with timeouts, shared by the
//! stores of one process.

use std::time::Duration;

use r2d2_postgres::postgres::{Config, NoTls};
use r2d2_postgres::PostgresConnectionManager;

/// A failure to reach or use the database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The location is not a usable `postgres://` URL.
    #[error("invalid PostgreSQL URL: {0}")]
    Url(String),
    /// No connection could be made or borrowed within the timeout.
    #[error("PostgreSQL unavailable: {0}")]
    Unavailable(String),
    /// A statement failed.
    #[error("PostgreSQL error: {0}")]
    Query(String),
}

/// Bounds of a [`Pool`].
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Most connections open at once.
    pub max_size: u32,
    /// Longest wait to borrow (or open) a connection.
    pub connect_timeout: Duration,
    /// Longest any one statement may run before the server cancels it.
    pub statement_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_size: 8,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

/// Whether a store location names PostgreSQL rather than a local folder.
pub fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// A pool of connections to one database. Cloning shares the pool.
#[derive(Clone)]
pub struct Pool {
    inner: r2d2::Pool<PostgresConnectionManager<NoTls>>,
    config: Config,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration may hold a password: name only where it points.
        f.debug_struct("Pool")
            .field("hosts", &self.config.get_hosts().len())
            .field("dbname", &self.config.get_dbname())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Connects to `url` (checking one connection at once).
    ///
    /// # Errors
    /// [`Error::Url`] for a malformed URL, [`Error::Unavailable`] when no
    /// connection can be made within the timeout.
    pub fn connect(url: &str, options: &PoolOptions) -> Result<Pool, Error> {
        let mut config: Config = url
            .parse()
            .map_err(|e: postgres::Error| Error::Url(e.to_string()))?;
        config.connect_timeout(options.connect_timeout);
        config.options(&format!(
            "-c statement_timeout={}",
            options.statement_timeout.as_millis()
        ));
        let manager = PostgresConnectionManager::new(config.clone(), NoTls);
        let inner = r2d2::Pool::builder()
            .max_size(options.max_size)
            .connection_timeout(options.connect_timeout)
            .build(manager)
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        Ok(Pool { inner, config })
    }

    /// Borrows a connection, waiting at most the pool's timeout.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when none is free or can be opened in time.
    pub fn get(&self) -> Result<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>, Error> {
        self.inner
            .get()
            .map_err(|e| Error::Unavailable(e.to_string()))
    }

    /// Borrows a connection, waiting at most `timeout` (a readiness probe
    /// answers within its own bound, not the pool's).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when none is free or can be opened in time.
    pub fn get_within(
        &self,
        timeout: Duration,
    ) -> Result<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>, Error> {
        self.inner
            .get_timeout(timeout)
            .map_err(|e| Error::Unavailable(e.to_string()))
    }

    /// The connection settings, for a dedicated connection outside the pool
    /// (a `LISTEN` session).
    pub fn config(&self) -> &Config {
        &self.config
    }
}
