//! The synchronous `postgres` client runs a small Tokio runtime of its own
//! per connection: opening, using or closing one on a thread that is
//! driving an async runtime panics. The stores are used from
//! `spawn_blocking` threads, but they are opened while a server starts and
//! may be dropped when it stops, both inside its runtime. This module moves
//! those two moments to a plain thread.

use r2d2_postgres::postgres::NoTls;

use crate::{Error, Pool, PoolOptions};

/// Runs `work` on a fresh thread (no runtime context) and waits for it.
pub(crate) fn run<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| match scope.spawn(work).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// A pool whose connections are closed on a plain thread when it is
/// dropped, wherever the drop happens.
#[derive(Debug)]
pub(crate) struct OwnedPool(Option<Pool>);

impl OwnedPool {
    pub(crate) fn new(pool: Pool) -> OwnedPool {
        OwnedPool(Some(pool))
    }

    pub(crate) fn pool(&self) -> Option<&Pool> {
        self.0.as_ref()
    }

    /// `pool` with `migrate` applied, both on a plain thread.
    pub(crate) fn migrated(
        pool: Pool,
        migrate: fn(&Pool) -> Result<(), Error>,
    ) -> Result<OwnedPool, Error> {
        let pool = run(move || migrate(&pool).map(|()| pool))?;
        Ok(OwnedPool::new(pool))
    }

    /// A connection from the pool, unless the store is being dropped.
    pub(crate) fn get(
        &self,
    ) -> Result<r2d2::PooledConnection<r2d2_postgres::PostgresConnectionManager<NoTls>>, Error>
    {
        self.pool()
            .ok_or_else(|| Error::Unavailable("the store is closed".into()))?
            .get()
    }
}

/// A pool with default bounds to `url`, connected on a plain thread.
pub(crate) fn connect(url: &str) -> Result<Pool, Error> {
    connect_with(url, &PoolOptions::default())
}

/// A pool with `options` to `url`, connected on a plain thread.
pub(crate) fn connect_with(url: &str, options: &PoolOptions) -> Result<Pool, Error> {
    run(|| Pool::connect(url, options))
}

impl Drop for OwnedPool {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            run(move || drop(pool));
        }
    }
}
