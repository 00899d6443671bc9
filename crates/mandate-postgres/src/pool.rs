//! A bounded pool of connections to one database, with timeouts, shared by the
//! stores of one process.

use std::sync::{Arc, Mutex, PoisonError};
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
    /// Log every failed connection attempt as an error (a server's operators should
    /// see each); without it they are debug lines, and the newest one still ends the
    /// error a timeout returns (a one-shot command reports it there, once).
    pub log_connect_failures: bool,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_size: 8,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
            log_connect_failures: true,
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
    failures: ConnectFailures,
}

/// The newest failed connection attempt, with its causes: r2d2 keeps only the top
/// line of the client's error ("db error", "error connecting to server"), which says
/// nothing an operator can act on. Forgotten once a connection succeeds.
#[derive(Debug, Clone)]
struct ConnectFailures {
    newest: Arc<Mutex<Option<String>>>,
    log: bool,
}

impl ConnectFailures {
    fn newest(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // Each critical section is one assignment: a poisoned lock holds a whole value.
        self.newest.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The error of a connection that could not be had within `timeout`.
    fn unavailable(&self, timeout: Duration) -> Error {
        Error::Unavailable(match self.newest().take() {
            Some(cause) => format!("no connection within {timeout:?}: {cause}"),
            None => format!("no connection free within {timeout:?}"),
        })
    }
}

impl r2d2::HandleError<postgres::Error> for ConnectFailures {
    fn handle_error(&self, error: postgres::Error) {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        if self.log {
            tracing::error!(error = %text, "cannot connect to PostgreSQL");
        } else {
            tracing::debug!(error = %text, "cannot connect to PostgreSQL");
        }
        *self.newest() = Some(text);
    }
}

impl r2d2::event::HandleEvent for ConnectFailures {
    fn handle_acquire(&self, _: r2d2::event::AcquireEvent) {
        *self.newest() = None;
    }
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
        let failures = ConnectFailures {
            newest: Arc::default(),
            log: options.log_connect_failures,
        };
        let inner = r2d2::Pool::builder()
            .max_size(options.max_size)
            .connection_timeout(options.connect_timeout)
            .error_handler(Box::new(failures.clone()))
            .event_handler(Box::new(failures.clone()))
            .build(manager)
            .map_err(|_| failures.unavailable(options.connect_timeout))?;
        Ok(Pool {
            inner,
            config,
            failures,
        })
    }

    /// Borrows a connection, waiting at most the pool's timeout.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when none is free or can be opened in time.
    pub fn get(&self) -> Result<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>, Error> {
        self.inner
            .get()
            .map_err(|_| self.failures.unavailable(self.inner.connection_timeout()))
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
            .map_err(|_| self.failures.unavailable(timeout))
    }

    /// The connection settings, for a dedicated connection outside the pool
    /// (a `LISTEN` session).
    pub fn config(&self) -> &Config {
        &self.config
    }
}
