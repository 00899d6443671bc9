//! A bound on the writer's calls to the database.
//!
//! The synchronous client has no deadline of its own: the server's
//! `statement_timeout` ends a slow statement, but a server or network that
//! stops answering (a stalled host, a partition that drops packets) leaves a
//! call blocked until the operating system gives up on the socket, minutes
//! later. A decision waits for its record, so the writer must fail within a
//! bound instead: then the decision is refused and the server reports itself
//! not ready. The call runs on a worker thread of [`Workers`]; when the bound
//! passes, the caller gets an error and that worker is given up: it finishes
//! (or fails) whenever the socket does, returns its connection to the pool
//! then and exits. Workers that answered in time are kept for the next call
//! (a batch does not pay for starting a thread); calls made at the same time
//! (the writer's append, a reader's page) each get a worker of their own.
//!
//! This module must never be used to bound a read that a healthy database
//! may legitimately take long to answer (a reader's `verify` of a big log).

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send>;

/// Most idle workers kept for later calls; more concurrent calls start
/// threads that exit once their call is done.
const MAX_IDLE: usize = 4;

/// Threads that run database calls, each call awaited at most a bound.
#[derive(Default)]
pub(super) struct Workers {
    idle: Mutex<Vec<SyncSender<Job>>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers").finish_non_exhaustive()
    }
}

impl Workers {
    /// Runs `work` on an idle worker (or a new one) and waits at most `wait`
    /// for its answer.
    ///
    /// # Errors
    /// `work`'s error, or a storage error naming `action` when no answer came
    /// within `wait` (or no thread could be started, or the call panicked).
    pub(super) fn within<T: Send + 'static>(
        &self,
        action: &'static str,
        wait: Duration,
        work: impl FnOnce() -> mandate_audit::Result<T> + Send + 'static,
    ) -> mandate_audit::Result<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            // The caller may have stopped waiting; the answer is then dropped.
            let _ = tx.send(work());
        });
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let sent = match idle {
            Some(worker) => worker.try_send(job).map(|()| worker).map_err(|refused| {
                // Not expected (an idle worker's queue is empty and only a
                // worker that answered is kept), but never fatal: start another.
                match refused {
                    mpsc::TrySendError::Full(job) | mpsc::TrySendError::Disconnected(job) => job,
                }
            }),
            None => Err(job),
        };
        let worker = match sent {
            Ok(worker) => worker,
            Err(job) => {
                let worker = spawn().map_err(|e| mandate_audit::Error::storage(action, e))?;
                worker
                    .try_send(job)
                    .map_err(|_| mandate_audit::Error::storage(action, "the worker stopped"))?;
                worker
            }
        };
        match rx.recv_timeout(wait) {
            Ok(answer) => {
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                if idle.len() < MAX_IDLE {
                    idle.push(worker);
                }
                answer
            }
            // The worker is dropped here: it exits after its call, whenever
            // that ends.
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
}

/// A worker thread running the jobs sent to it, one at a time, until its
/// sender is dropped.
fn spawn() -> std::io::Result<SyncSender<Job>> {
    let (jobs, queue): (SyncSender<Job>, Receiver<Job>) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("mandate-audit-pg".into())
        .spawn(move || {
            for job in queue {
                job();
            }
        })?;
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, Instant};

    use super::Workers;

    #[test]
    fn a_call_that_does_not_answer_fails_within_the_bound() {
        let started = Instant::now();
        let answer = Workers::default().within("testing", Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_secs(2));
            Ok(())
        });
        let error = answer.unwrap_err().to_string();
        assert!(error.contains("no answer from PostgreSQL"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn an_answer_within_the_bound_is_returned() {
        let answer = Workers::default().within("testing", Duration::from_secs(5), || Ok(7));
        assert_eq!(answer.unwrap(), 7);
    }

    #[test]
    fn a_worker_that_answered_serves_the_next_call_and_one_that_did_not_is_given_up() {
        let workers = Workers::default();
        let thread = || Ok(std::thread::current().id());
        let first = workers
            .within("testing", Duration::from_secs(5), thread)
            .unwrap();
        let second = workers
            .within("testing", Duration::from_secs(5), thread)
            .unwrap();
        assert_eq!(first, second, "an idle worker is reused");
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let late = workers.within("testing", Duration::from_millis(20), move || {
            let _ = hold.recv();
            Ok(std::thread::current().id())
        });
        assert!(late.is_err());
        // The late worker is still held and no longer idle: the next call
        // runs on another thread (queued behind the held one it would fail
        // its bound, and this unwrap with it).
        let next = workers
            .within("testing", Duration::from_secs(5), thread)
            .unwrap();
        assert_ne!(next, first);
        drop(release);
    }

    #[test]
    fn a_call_that_panics_fails_and_the_next_call_still_answers() {
        let workers = Workers::default();
        let panicked = workers.within(
            "testing",
            Duration::from_secs(5),
            || -> mandate_audit::Result<()> { panic!("the call failed") },
        );
        assert!(panicked.is_err());
        let answer = workers.within("testing", Duration::from_secs(5), || Ok(3));
        assert_eq!(answer.unwrap(), 3);
    }
}
