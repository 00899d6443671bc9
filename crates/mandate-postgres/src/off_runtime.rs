//! The synchronous `postgres` client runs a small Tokio runtime of its own
//! per connection: opening, using or closing one on a thread that is
//! driving an async runtime panics. The stores are used from
//! `spawn_blocking` threads, but they are opened while a server starts and
//! may be dropped when it stops, both inside its runtime. This module moves
//! those two moments to a plain thread.

use crate::Pool;

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
}

impl Drop for OwnedPool {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            run(move || drop(pool));
        }
    }
}
