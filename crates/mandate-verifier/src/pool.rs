//! A bounded pool for token evaluation in the HTTP servers, apart from the
//! async runtime.
//!
//! Verifying signatures and evaluating Datalog is CPU work that a token
//! holder can make cost up to the verifier's run limits. Run on the async
//! runtime's few worker threads, a handful of such requests would hold every
//! worker and delay what must keep its timing: registry heartbeats, revocation
//! streams, health checks and other requests. An [`EvalPool`] runs each
//! evaluation on one of `workers` dedicated threads instead, with at most
//! `queue` more requests waiting for a thread, and gives every request one
//! deadline (wait plus evaluation). A request that finds the queue full, or
//! waits past its deadline, is [`PoolError::Overloaded`]; one whose
//! evaluation outlives the deadline is [`PoolError::DeadlineExceeded`]. Both
//! are answered with 503 and `Retry-After`, never with a decision.
//!
//! The threads are the pool's own (started on first use, ended when the last
//! clone of the pool is dropped), fed by one queue; each answer goes back
//! through a oneshot channel. Tokio's blocking pool served here before: it
//! started a thread whenever none was idle at the instant of the call, so
//! two evaluation slots ran on 26 to 42 threads under load, each with its
//! own allocator state, and paid for the hand-over twice.
//!
//! A running evaluation cannot be interrupted, so one whose deadline fired
//! keeps its thread until it returns (the verifier's run limits bound how
//! long that is): the pool stays bounded even when callers give up. It must
//! never run more than `workers` evaluations at once, let a waiting request
//! hold no bound, or turn an unfinished evaluation into an answer; a request
//! given up before a thread took it never runs.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::sync::oneshot;

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
/// The most worker threads a pool starts.
pub const MAX_WORKERS: usize = 1024;

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
    /// The evaluation panicked or the pool could not start a thread (HTTP 500).
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

/// Where a queued request stands; moved only by compare-and-swap, so a
/// request is either run by a worker or given up by its caller, never both.
const WAITING: u8 = 0;
const RUNNING: u8 = 1;
const GIVEN_UP: u8 = 2;

/// One queued evaluation: runs the closure and sends its result.
struct Job {
    state: Arc<AtomicU8>,
    run: Box<dyn FnOnce() + Send>,
}

/// What the workers share with the pool's handles.
struct Shared {
    jobs: Mutex<Jobs>,
    ready: Condvar,
    /// Requests admitted now: waiting for a worker or running, and not yet
    /// answered. At most `workers + queue`.
    admitted: AtomicUsize,
    /// Evaluations running now, abandoned ones included.
    running: AtomicUsize,
}

struct Jobs {
    queue: VecDeque<Job>,
    /// No handle is left: workers drain nothing more and end.
    closed: bool,
}

impl Shared {
    fn jobs(&self) -> MutexGuard<'_, Jobs> {
        // A worker never panics while holding the lock (closures run outside
        // it, under `catch_unwind`); a poisoned lock is still consistent.
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn work(&self) {
        loop {
            let job = {
                let mut jobs = self.jobs();
                loop {
                    if let Some(job) = jobs.queue.pop_front() {
                        break job;
                    }
                    if jobs.closed {
                        return;
                    }
                    jobs = self
                        .ready
                        .wait(jobs)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
            };
            // A caller that gave up (deadline, or its connection closed)
            // before a worker took its request: the closure never runs.
            if job
                .state
                .compare_exchange(WAITING, RUNNING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            self.running.fetch_add(1, Ordering::Relaxed);
            // A panic drops the reply sender, which the caller reads as
            // `Failed`; the worker lives on.
            let _ = catch_unwind(AssertUnwindSafe(job.run));
            self.running.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Ends the workers when the last handle of a pool is dropped.
struct Handle {
    shared: Arc<Shared>,
    /// The threads, started on the first request.
    started: OnceLock<bool>,
    workers: usize,
}

impl Handle {
    /// Starts the workers once; `false` if the system refused a thread.
    fn start(&self) -> bool {
        *self.started.get_or_init(|| {
            let mut all = true;
            for n in 0..self.workers {
                let shared = Arc::clone(&self.shared);
                let spawned = std::thread::Builder::new()
                    .name(format!("mandate-eval-{n}"))
                    .spawn(move || shared.work());
                all &= spawned.is_ok();
            }
            all
        })
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.jobs().closed = true;
        self.shared.ready.notify_all();
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("workers", &self.workers)
            .field("started", &self.started.get().is_some())
            .finish_non_exhaustive()
    }
}

/// A bounded pool of evaluation threads with a per-request deadline. Cheap to
/// clone; clones share the threads, so one pool can serve several routers.
#[derive(Debug, Clone)]
pub struct EvalPool {
    handle: Arc<Handle>,
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

/// Gives up a request that no worker took yet, and releases its admission,
/// when the caller stops waiting for whatever reason.
struct Admission<'a> {
    shared: &'a Shared,
    state: Arc<AtomicU8>,
}

impl Admission<'_> {
    /// `true` if the request was given up before it ran: it never will.
    fn give_up(&self) -> bool {
        self.state
            .compare_exchange(WAITING, GIVEN_UP, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.give_up();
        self.shared.admitted.fetch_sub(1, Ordering::AcqRel);
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
        let workers = workers.clamp(1, MAX_WORKERS);
        EvalPool::with_queue(
            workers,
            workers.saturating_mul(DEFAULT_QUEUE_PER_WORKER),
            deadline,
        )
    }

    /// As [`EvalPool::new`], with at most `queue` requests waiting for a
    /// worker; `0` refuses every request that finds all workers busy.
    /// Threads are started on the first request, at most [`MAX_WORKERS`].
    pub fn with_queue(workers: usize, queue: usize, deadline: Duration) -> EvalPool {
        let workers = workers.clamp(1, MAX_WORKERS);
        let queue = queue.min(usize::MAX / 2);
        EvalPool {
            handle: Arc::new(Handle {
                shared: Arc::new(Shared {
                    jobs: Mutex::new(Jobs {
                        queue: VecDeque::new(),
                        closed: false,
                    }),
                    ready: Condvar::new(),
                    admitted: AtomicUsize::new(0),
                    running: AtomicUsize::new(0),
                }),
                started: OnceLock::new(),
                workers,
            }),
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

    /// Evaluations running now (an abandoned one still counts: it holds its
    /// thread).
    pub fn running(&self) -> usize {
        self.handle.shared.running.load(Ordering::Relaxed)
    }

    /// Requests admitted now: running or waiting for a worker.
    pub fn admitted(&self) -> usize {
        self.handle.shared.admitted.load(Ordering::Relaxed)
    }

    /// Runs `f` on a worker thread once one is free, and returns its result
    /// if it arrives within the deadline.
    ///
    /// `f` keeps its worker until it returns, even when the deadline fired or
    /// this future was dropped; its late result is discarded. If this future
    /// is dropped or the deadline passes before a worker took `f`, `f` never
    /// runs.
    ///
    /// # Errors
    /// [`PoolError::Overloaded`] when the queue is full or no worker came free
    /// within the deadline (`f` never ran); [`PoolError::DeadlineExceeded`]
    /// when `f` did not return in time; [`PoolError::Failed`] when `f`
    /// panicked or no worker thread could be started.
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
        let shared = &*self.handle.shared;
        // Admission: at most `workers + queue` requests between here and
        // their answer. Busy workers beyond that (abandoned evaluations)
        // make admitted requests wait, and time out, rather than pile up.
        let capacity = self.worker_count + self.queue;
        if shared
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < capacity).then_some(n + 1)
            })
            .is_err()
        {
            return Err(overloaded);
        }
        let admission = Admission {
            shared,
            state: Arc::new(AtomicU8::new(WAITING)),
        };
        if !self.handle.start() {
            return Err(PoolError::Failed);
        }
        let (reply, answer) = oneshot::channel();
        {
            let mut jobs = shared.jobs();
            // Requests given up while waiting stay queued until a worker
            // skips them; past the capacity, drop them here so the queue
            // stays bounded even while every worker is stuck.
            if jobs.queue.len() >= capacity {
                jobs.queue
                    .retain(|job| job.state.load(Ordering::Acquire) == WAITING);
            }
            jobs.queue.push_back(Job {
                state: Arc::clone(&admission.state),
                run: Box::new(move || {
                    let _ = reply.send(f());
                }),
            });
        }
        shared.ready.notify_one();
        match tokio::time::timeout_at(until, answer).await {
            Ok(Ok(value)) => Ok(value),
            // The sender was dropped unsent: `f` panicked.
            Ok(Err(_)) => Err(PoolError::Failed),
            Err(_) if admission.give_up() => Err(overloaded),
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
        while pool.running() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // One request may wait; a second finds the queue full.
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(|| "waited").await }
        });
        while pool.admitted() < 2 {
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_given_up_before_it_ran_never_runs() {
        let pool = EvalPool::with_queue(1, 4, Duration::from_secs(30));
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
        while pool.running() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A caller that goes away (its connection closed) while its request
        // waits: the request is dropped with it.
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&ran);
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.run(move || counter.fetch_add(1, Ordering::SeqCst))
                    .await
            }
        });
        while pool.admitted() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        waiting.abort();
        let _ = waiting.await;
        assert_eq!(pool.admitted(), 1, "the abandoned request left the queue");
        release.send(()).unwrap();
        assert_eq!(busy.await.unwrap(), Ok(()));
        // The worker took the abandoned request after the busy one, and
        // skipped it; the next request runs.
        assert_eq!(pool.run(|| "next").await, Ok("next"));
        assert_eq!(
            ran.load(Ordering::SeqCst),
            0,
            "a given-up request never runs"
        );
    }

    #[test]
    fn workers_are_at_least_one_and_the_queue_follows_them() {
        let pool = EvalPool::new(0, DEFAULT_DEADLINE);
        assert_eq!(pool.workers(), 1);
        assert_eq!(pool.queue(), DEFAULT_QUEUE_PER_WORKER);
        assert_eq!(
            EvalPool::new(usize::MAX, DEFAULT_DEADLINE).workers(),
            MAX_WORKERS
        );
        assert!(EvalPool::default().workers() >= 1);
        assert_eq!(EvalPool::default().deadline(), DEFAULT_DEADLINE);
    }
}
