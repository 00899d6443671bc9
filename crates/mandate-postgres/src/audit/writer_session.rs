//! One writer per audit log, on a session of its own: it holds a session
//! advisory lock named after the log for as long as the process writes it,
//! and carries the writer's appends with the append statement prepared once,
//! so a durable batch is one round trip and one commit.
//!
//! The lock belongs to the session, so it goes when the connection does
//! (the process died, or the database restarted); [`WriterSession::keep`]
//! takes it again on a new session before the writer resumes after a
//! failure.

use postgres::types::ToSql;
use postgres::{Client, NoTls, Statement};

use crate::off_runtime;
use crate::{Error, Pool};

/// Appends a batch (and a head) in the statement's own transaction.
const APPEND: &str = "SELECT mandate_append_audit($1, $2, $3, $4, $5, $6)";

/// The held lock, the session holding it and its prepared append.
pub(super) struct WriterSession {
    session: Option<(Client, Statement)>,
}

impl WriterSession {
    /// Takes the lock of `log_id` on a new session, or says who has it.
    pub(super) fn take(pool: &Pool, log_id: &str) -> Result<WriterSession, Error> {
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
        let append = session
            .prepare(APPEND)
            .map_err(|e| Error::Query(e.to_string()))?;
        Ok(WriterSession {
            session: Some((session, append)),
        })
    }

    /// Makes sure the lock is still held, taking it again on a new session
    /// when the old one is gone.
    pub(super) fn keep(&mut self, pool: &Pool, log_id: &str) -> Result<(), Error> {
        if let Some((session, _)) = self.session.as_mut() {
            if !session.is_closed() && session.simple_query("SELECT 1").is_ok() {
                return Ok(());
            }
        }
        let gone = self.session.take();
        drop(gone);
        *self = WriterSession::take(pool, log_id)?;
        Ok(())
    }

    /// Runs the append with `params`: in autocommit when `durable` (the
    /// statement is its transaction; it returns once the commit is flushed),
    /// otherwise in a transaction that does not wait for the flush.
    pub(super) fn append(
        &mut self,
        params: &[&(dyn ToSql + Sync)],
        durable: bool,
    ) -> Result<(), String> {
        let (session, append) = self.session.as_mut().ok_or_else(closed)?;
        if durable {
            return session.execute(&*append, params).map(drop).map_err(message);
        }
        let run = |session: &mut Client| {
            let mut tx = session.transaction()?;
            tx.batch_execute("SET LOCAL synchronous_commit = off")?;
            tx.execute(&*append, params)?;
            tx.commit()
        };
        run(session).map_err(message)
    }

    /// A synchronous commit, which flushes the write-ahead log up to itself
    /// and so every commit made before it without waiting.
    pub(super) fn flush(&mut self, log_id: &str) -> Result<(), String> {
        let (session, _) = self.session.as_mut().ok_or_else(closed)?;
        session
            .execute(
                "UPDATE mandate_audit_logs SET flushed_at = now() WHERE log_id = $1",
                &[&log_id],
            )
            .map(drop)
            .map_err(message)
    }
}

/// Only a failed [`WriterSession::keep`] leaves no session.
fn closed() -> String {
    "the writer's session is gone; it is opened again when the writer recovers".into()
}

/// The server's own message when there is one (a refused batch says why).
pub(super) fn message(error: postgres::Error) -> String {
    error
        .as_db_error()
        .map_or_else(|| error.to_string(), |db| db.message().to_owned())
}

impl Drop for WriterSession {
    fn drop(&mut self) {
        // The synchronous client must not be used or closed on a thread
        // driving an async runtime.
        if let Some((mut session, _)) = self.session.take() {
            off_runtime::run(move || {
                // Released at once, so the next writer need not wait for the
                // server to notice the session has gone.
                let _released = session.simple_query("SELECT pg_advisory_unlock_all()");
                drop(session);
            });
        }
    }
}
