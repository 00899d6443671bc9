//! A bounded pool for token evaluation in the HTTP servers, apart from the
//! async runtime.
//!
//! Verifying signatures and evaluating Datalog is CPU work that a token
//! holder can make cost up to the verifier's run limits. Run on the async
//! runtime's few worker threads, a handful of such requests would hold every
//! worker and delay what must keep its timing: registry heartbeats, revocation
//! streams, health checks and other requests. An [`EvalPool`] runs each
//! evaluation on tokio's blocking threads instead, at most `workers` at once,
//! with at most `queue` more requests waiting for a worker, and gives every
//! request one deadline (wait plus evaluation). A request that finds the queue
//! full, or waits past its deadline, is [`PoolError::Overloaded`]; one whose
//! evaluation outlives the deadline is [`PoolError::DeadlineExceeded`]. Both
//! are answered with 503 and `Retry-After`, never with a decision.
//!
//! A blocking closure cannot be interrupted, so an evaluation whose deadline
//! fired keeps its worker until it returns (the verifier's run limits bound
//! how long that is): the pool stays bounded even when callers give up. It
//! must never run more than `workers` evaluations at once, let a waiting
//! request hold no bound, or turn an unfinished evaluation into an answer.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

/// Seconds a client is told to wait (`Retry-After`) when the pool refused it.
pub const RETRY_AFTER_SECS: u64 = 1;
/// The default per-request deadline: waiting for a worker plus evaluating.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(2);
/// By default, this many requests per worker may wait for a worker. A warm
/// decision takes a fraction of a millisecond, so a queue this long drains
/// well within [`DEFAULT_DEADLINE`]; a shorter one turned every client with
/// more than a handful of requests in flight into 503s. The deadline, not the
/// queue, bounds how long a request waits.
pub const DEFAULT_QUEUE_PER_WORKER: usize = 64;

/// Why the pool gave no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// Every worker was busy and the queue full, or no worker came free before
    /// the deadline. Retry later (HTTP 503, code `overloaded`).
    #[error("the verifier is overloaded ({workers} workers busy, {queue} requests may wait); retry later")]
    Overloaded {
        /// Evaluations the pool runs at once.
        workers: usize,
        /// Requests the pool lets wait for a worker.
        queue: usize,
    },
    /// The evaluation did not finish within the deadline; nothing was decided
    /// (HTTP 503, code `deadline_exceeded`).
    #[error("the evaluation did not finish within {}", humantime::format_duration(*.deadline))]
    DeadlineExceeded {
        /// The per-request deadline.
        deadline: Duration,
    },
    /// The evaluation panicked or the runtime is shutting down (HTTP 500).
    #[error("the evaluation did not complete")]
    Failed,
}

impl PoolError {
    /// The code of the one JSON error shape for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            PoolError::Overloaded { .. } => "overloaded",
            PoolError::DeadlineExceeded { .. } => "deadline_exceeded",
            PoolError::Failed => "internal",
        }
    }
}

/// A bounded pool of evaluation slots with a per-request deadline. Cheap to
/// clone; clones share the slots, so one pool can serve several routers.
#[derive(Debug, Clone)]
pub struct EvalPool {
    /// One permit per evaluation that may run at once.
    workers: Arc<Semaphore>,
    /// One permit per request that may be running or waiting.
    admitted: Arc<Semaphore>,
    worker_count: usize,
    queue: usize,
    deadline: Duration,
}

impl Default for EvalPool {
    /// As many workers as the machine has cores (at least one),
    /// [`DEFAULT_QUEUE_PER_WORKER`] waiting requests per worker, a deadline of
    /// two seconds.
    fn default() -> EvalPool {
        EvalPool::new(EvalPool::default_workers(), DEFAULT_DEADLINE)
    }
}

impl EvalPool {
    /// The default number of workers: the machine's cores, at least one.
    pub fn default_workers() -> usize {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    }

    /// A pool running at most `workers` evaluations at once (at least one),
    /// with [`DEFAULT_QUEUE_PER_WORKER`] waiting requests per worker, each
    /// request answered or refused within `deadline`.
    pub fn new(workers: usize, deadline: Duration) -> EvalPool {
        let workers = workers.max(1);
        EvalPool::with_queue(
            workers,
            workers.saturating_mul(DEFAULT_QUEUE_PER_WORKER),
            deadline,
        )
    }

    /// As [`EvalPool::new`], with at most `queue` requests waiting for a
    /// worker; `0` refuses every request that finds all workers busy.
    pub fn with_queue(workers: usize, queue: usize, deadline: Duration) -> EvalPool {
        let workers = workers.clamp(1, Semaphore::MAX_PERMITS / 2);
        let queue = queue.min(Semaphore::MAX_PERMITS / 2);
        EvalPool {
            workers: Arc::new(Semaphore::new(workers)),
            admitted: Arc::new(Semaphore::new(workers + queue)),
            worker_count: workers,
            queue,
            deadline,
        }
    }

    /// Evaluations run at once.
    pub fn workers(&self) -> usize {
        self.worker_count
    }

    /// Requests that may wait for a worker.
    pub fn queue(&self) -> usize {
        self.queue
    }

    /// The per-request deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Evaluations running now.
    pub fn running(&self) -> usize {
        self.worker_count
            .saturating_sub(self.workers.available_permits())
    }

    /// Requests admitted now: running or waiting for a worker.
    pub fn admitted(&self) -> usize {
        (self.worker_count + self.queue).saturating_sub(self.admitted.available_permits())
    }

    /// Runs `f` on a blocking thread once a worker is free, and returns its
    /// result if it arrives within the deadline.
    ///
    /// `f` keeps its worker until it returns, even when the deadline fired or
    /// this future was dropped; its late result is discarded.
    ///
    /// # Errors
    /// [`PoolError::Overloaded`] when the queue is full or no worker came free
    /// within the deadline (`f` never ran); [`PoolError::DeadlineExceeded`]
    /// when `f` did not return in time; [`PoolError::Failed`] when `f`
    /// panicked.
    pub async fn run<T, F>(&self, f: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let overloaded = PoolError::Overloaded {
            workers: self.worker_count,
            queue: self.queue,
        };
        let until = tokio::time::Instant::now() + self.deadline;
        // Held until this request has its answer, so waiting requests stay
        // bounded by `workers + queue`.
        let Ok(_admitted) = Arc::clone(&self.admitted).try_acquire_owned() else {
            return Err(overloaded);
        };
        // tokio's semaphore is fair: waiters get workers in arrival order.
        let worker =
            match tokio::time::timeout_at(until, Arc::clone(&self.workers).acquire_owned()).await {
                Ok(Ok(worker)) => worker,
                // The semaphore is never closed; a closed one can serve nobody.
                Ok(Err(_)) | Err(_) => return Err(overloaded),
            };
        let task = tokio::task::spawn_blocking(move || {
            let _worker = worker;
            f()
        });
        match tokio::time::timeout_at(until, task).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_join)) => Err(PoolError::Failed),
            Err(_) => Err(PoolError::DeadlineExceeded {
                deadline: self.deadline,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_the_closure_and_returns_its_value() {
        let pool = EvalPool::new(1, Duration::from_secs(5));
        assert_eq!(pool.run(|| 6 * 7).await, Ok(42));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_evaluation_past_the_deadline_is_refused_and_keeps_its_worker() {
        let pool = EvalPool::with_queue(1, 0, Duration::from_millis(50));
        let (release, released) = mpsc::channel::<()>();
        let finished = Arc::new(AtomicUsize::new(0));
        let done = Arc::clone(&finished);
        let slow = pool
            .run(move || {
                // Blocks until the test lets it go: far past the deadline.
                let _ = released.recv_timeout(Duration::from_secs(10));
                done.fetch_add(1, Ordering::SeqCst);
            })
            .await;
        assert_eq!(
            slow,
            Err(PoolError::DeadlineExceeded {
                deadline: Duration::from_millis(50)
            })
        );
        assert_eq!(slow.unwrap_err().code(), "deadline_exceeded");
        // The abandoned evaluation still holds the only worker: the next
        // request is refused, it never runs beside it.
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&ran);
        let next = pool
            .run(move || counter.fetch_add(1, Ordering::SeqCst))
            .await;
        assert_eq!(
            next,
            Err(PoolError::Overloaded {
                workers: 1,
                queue: 0
            })
        );
        assert_eq!(
            ran.load(Ordering::SeqCst),
            0,
            "a refused closure never runs"
        );
        // Once it returns, the worker is free again.
        release.send(()).unwrap();
        let mut freed = None;
        for _ in 0..200 {
            if let Ok(value) = pool.run(|| "ran").await {
                freed = Some(value);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(freed, Some("ran"));
        assert_eq!(finished.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_is_refused_at_once_and_a_waiter_gives_up_at_its_deadline() {
        let pool = EvalPool::with_queue(1, 1, Duration::from_secs(1));
        let (release, released) = mpsc::channel::<()>();
        let busy = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.run(move || {
                    let _ = released.recv_timeout(Duration::from_secs(10));
                })
                .await
            }
        });
        // Wait until the first request holds the worker.
        while pool.workers.available_permits() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // One request may wait; a second finds the queue full.
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(|| "waited").await }
        });
        while pool.admitted.available_permits() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let refused = pool.run(|| "never").await;
        assert_eq!(
            refused,
            Err(PoolError::Overloaded {
                workers: 1,
                queue: 1
            })
        );
        assert_eq!(refused.unwrap_err().code(), "overloaded");
        // The waiter never got the worker within its deadline: overloaded,
        // and its closure never ran.
        assert_eq!(
            waiting.await.unwrap(),
            Err(PoolError::Overloaded {
                workers: 1,
                queue: 1
            })
        );
        release.send(()).unwrap();
        assert_eq!(
            busy.await.unwrap(),
            Err(PoolError::DeadlineExceeded {
                deadline: Duration::from_secs(1)
            })
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_evaluation_is_a_failure_not_an_answer() {
        let pool = EvalPool::new(1, Duration::from_secs(5));
        let result: Result<(), PoolError> = pool.run(|| panic!("boom")).await;
        assert_eq!(result, Err(PoolError::Failed));
        // The worker came back when the closure unwound.
        assert_eq!(pool.run(|| 1).await, Ok(1));
    }

    #[test]
    fn workers_are_at_least_one_and_the_queue_follows_them() {
        let pool = EvalPool::new(0, DEFAULT_DEADLINE);
        assert_eq!(pool.workers(), 1);
        assert_eq!(pool.queue(), DEFAULT_QUEUE_PER_WORKER);
        assert!(EvalPool::default().workers() >= 1);
        assert_eq!(EvalPool::default().deadline(), DEFAULT_DEADLINE);
    }
}
