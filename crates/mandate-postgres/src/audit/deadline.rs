//! A bound on the writer's calls to the database.
//!
//! The synchronous client has no deadline of its own: the server's
//! `statement_timeout` ends a slow statement, but a server or network that
//! stops answering (a stalled host, a partition that drops packets) leaves a
//! call blocked until the operating system gives up on the socket, minutes
//! later. A decision waits for its record, so the writer must fail within a
//! bound instead: then the decision is refused and the server reports itself
//! not ready. The call runs on a thread of its own; when the bound passes,
//! the caller gets an error and the thread finishes (or fails) whenever the
//! socket does, returning its connection to the pool then.
//!
//! This module must never be used to bound a read that a healthy database
//! may legitimately take long to answer (a reader's `verify` of a big log).

use std::sync::mpsc;
use std::time::Duration;

/// Runs `work` on a new thread and waits at most `wait` for its answer.
///
/// # Errors
/// `work`'s error, or a storage error naming `action` when no answer came
/// within `wait` (or the thread could not be started, or panicked).
pub(super) fn within<T: Send + 'static>(
    action: &'static str,
    wait: Duration,
    work: impl FnOnce() -> mandate_audit::Result<T> + Send + 'static,
) -> mandate_audit::Result<T> {
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("mandate-audit-pg".into())
        .spawn(move || {
            // The caller may have stopped waiting; the answer is then dropped.
            let _ = tx.send(work());
        })
        .map_err(|e| mandate_audit::Error::storage(action, e))?;
    match rx.recv_timeout(wait) {
        Ok(answer) => answer,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(mandate_audit::Error::storage(
            action,
            format!("no answer from PostgreSQL within {wait:?}"),
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(mandate_audit::Error::storage(
            action,
            "the database call ended without an answer",
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, Instant};

    use super::within;

    #[test]
    fn a_call_that_does_not_answer_fails_within_the_bound() {
        let started = Instant::now();
        let answer = within("testing", Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_secs(2));
            Ok(())
        });
        let error = answer.unwrap_err().to_string();
        assert!(error.contains("no answer from PostgreSQL"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn an_answer_within_the_bound_is_returned() {
        let answer = within("testing", Duration::from_secs(5), || Ok(7));
        assert_eq!(answer.unwrap(), 7);
    }
}
