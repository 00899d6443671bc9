//! One writer per audit log: a session advisory lock named after the log,
//! held on a connection of its own for as long as the process writes it.
//!
//! The lock belongs to that session, so it goes when the connection does
//! (the process died, or the database restarted); [`WriterLock::keep`] takes
//! it again before the writer resumes after a failure.

use postgres::{Client, NoTls};

use crate::off_runtime;
use crate::{Error, Pool};

/// The held lock and the session holding it.
pub(super) struct WriterLock {
    session: Option<Client>,
}

impl WriterLock {
    /// Takes the lock of `log_id` on a new session, or says who has it.
    pub(super) fn take(pool: &Pool, log_id: &str) -> Result<WriterLock, Error> {
        let mut session = pool
            .config()
            .connect(NoTls)
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        let key = crate::migrate::lock_key(&format!("mandate-audit-writer:{log_id}"));
        let held: bool = session
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .map_err(|e| Error::Query(e.to_string()))?
            .get(0);
        if !held {
            return Err(Error::Unavailable(format!(
                "another process is writing audit log {log_id} (it uses the same audit key); \
                 give each replica a key of its own"
            )));
        }
        Ok(WriterLock {
            session: Some(session),
        })
    }

    /// Makes sure the lock is still held, taking it again on a new session
    /// when the old one is gone.
    pub(super) fn keep(&mut self, pool: &Pool, log_id: &str) -> Result<(), Error> {
        if let Some(session) = self.session.as_mut() {
            if !session.is_closed() && session.simple_query("SELECT 1").is_ok() {
                return Ok(());
            }
        }
        let gone = self.session.take();
        drop(gone);
        *self = WriterLock::take(pool, log_id)?;
        Ok(())
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        // The synchronous client must not be used or closed on a thread
        // driving an async runtime.
        if let Some(mut session) = self.session.take() {
            off_runtime::run(move || {
                // Released at once, so the next writer need not wait for the
                // server to notice the session has gone.
                let _released = session.simple_query("SELECT pg_advisory_unlock_all()");
                drop(session);
            });
        }
    }
}
