//! The one writer of a log: group commit, links, signed heads, and the
//! failure state servers consult before answering.
//!
//! Callers hand an [`Event`] to [`AuditWriter::append`], which returns once
//! the record is durable (by default). A single thread takes every event
//! waiting in the queue, gives each its sequence number, time and link,
//! writes them as one batch and flushes once, then acknowledges them all:
//! durability costs each caller the latency of one flush, not one flush per
//! record. The thread signs the head with the writer's key at least every
//! [`WriterConfig::sign_every`] while records are unsigned, on the first
//! batch of a log and on [`AuditWriter::close`].
//!
//! When a batch cannot be written, every record of it is refused, the writer
//! turns *failed* (new events are refused at once, without queueing) and
//! retries every second to reopen the store; [`AuditWriter::health`] says
//! why until it succeeds. A server answers nothing it could not record.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{oneshot, watch};

use crate::integrity::{entry_hash, Hash, StoredEntry, WriterKey, GENESIS};
use crate::log::AuditLog;
use crate::record::{Event, RecordRef};
use crate::trail::{LogTrail, Trail};
use crate::{Error, Result};

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// After the batch holding it is flushed to disk (the default).
    #[default]
    Durable,
    /// **Loses records on a crash.** As soon as the batch is written to the
    /// store's memory; flushed every `flush_every`, which is the loss window.
    Buffered {
        /// How often the writer flushes.
        flush_every: Duration,
    },
}

/// How a writer batches and signs.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// When appends are acknowledged.
    pub durability: Durability,
    /// Most records in one batch.
    pub max_batch: usize,
    /// Most events waiting for the writer; beyond it appends are refused.
    pub queue: usize,
    /// Longest time records stay without a signed head.
    pub sign_every: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            durability: Durability::Durable,
            max_batch: 4096,
            queue: 16_384,
            sign_every: Duration::from_millis(250),
        }
    }
}

/// How often a failed writer tries to reopen its store.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Wait of an idle writer with nothing to sign or flush.
const IDLE: Duration = Duration::from_secs(3600);

enum Job {
    Append {
        // Boxed: the queue's slots are allocated up front, so they stay small.
        event: Box<Event>,
        done: oneshot::Sender<Result<u64>>,
    },
    Close(oneshot::Sender<Result<()>>),
}

#[derive(Debug, Default)]
struct Status {
    failed: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl Status {
    fn fail(&self, reason: String) {
        *self.reason.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
        self.failed.store(true, Ordering::Release);
    }

    fn clear(&self) {
        *self.reason.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.failed.store(false, Ordering::Release);
    }

    fn reason(&self) -> Option<String> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        self.reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .or_else(|| Some("failed".into()))
    }
}

/// The handle to a log's writer thread. Clones share it.
#[derive(Clone)]
pub struct AuditWriter {
    tx: SyncSender<Job>,
    status: Arc<Status>,
    fingerprint: String,
    durability: Durability,
    log: Arc<dyn AuditLog>,
    /// What readers read, when it is more than this writer's own log.
    shared: Option<Arc<dyn Trail>>,
    progress: watch::Receiver<u64>,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter")
            .field("writer", &self.fingerprint)
            .field("durability", &self.durability)
            .field("failed", &self.status.reason())
            .finish_non_exhaustive()
    }
}

impl AuditWriter {
    /// Starts the writer thread of `log`, signing with `key`.
    ///
    /// # Errors
    /// [`Error::Storage`] when the log cannot be read.
    pub fn start(log: Arc<dyn AuditLog>, key: WriterKey, config: WriterConfig) -> Result<Self> {
        let log_id = log.log_id()?;
        let tip = match log.last()? {
            Some(entry) => (entry.seq, entry.hash()),
            None => (0, GENESIS),
        };
        let signed = log.heads()?.last().map_or(0, |h| h.seq);
        if let Durability::Buffered { flush_every } = config.durability {
            tracing::warn!(
                loss_window = ?flush_every,
                "AUDIT BUFFERED: decisions are answered before their records reach the disk; \
                 a crash loses up to the loss window of records"
            );
        }
        let (tx, rx) = mpsc::sync_channel(config.queue.max(1));
        let (published, progress) = watch::channel(tip.0);
        let status = Arc::new(Status::default());
        let fingerprint = key.fingerprint();
        let durability = config.durability;
        let thread = Thread {
            log: Arc::clone(&log),
            key,
            log_id,
            config,
            status: Arc::clone(&status),
            fingerprint: fingerprint.clone(),
            tip,
            signed,
            last_sign: Instant::now(),
            dirty: false,
            body_hint: 1024,
            published,
        };
        std::thread::Builder::new()
            .name("mandate-audit-writer".into())
            .spawn(move || thread.run(rx))
            .map_err(|e| Error::storage("starting the audit writer", e))?;
        Ok(AuditWriter {
            tx,
            status,
            fingerprint,
            durability,
            log,
            shared: None,
            progress,
        })
    }

    /// The writer's key fingerprint, as records name it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// When appends are acknowledged.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// The log written to (for queries and verification in the same process).
    pub fn log(&self) -> Arc<dyn AuditLog> {
        Arc::clone(&self.log)
    }

    /// The newest sequence number written (durable, unless buffered), now
    /// and as it changes: followers of the log wait on it instead of polling.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.progress.clone()
    }

    /// Readers of this writer's store read `trail`: the records of every
    /// writer sharing the store (replicas on one database), not just its own.
    #[must_use]
    pub fn serving(mut self, trail: Arc<dyn Trail>) -> AuditWriter {
        self.shared = Some(trail);
        self
    }

    /// What readers of the store read: the shared trail given to
    /// [`AuditWriter::serving`], or else this writer's own log.
    pub fn trail(&self) -> Arc<dyn Trail> {
        match &self.shared {
            Some(trail) => Arc::clone(trail),
            None => Arc::new(LogTrail(Arc::clone(&self.log))),
        }
    }

    /// Whether other writers add to [`AuditWriter::trail`]: then this
    /// writer's progress does not announce every new record.
    pub fn shares_trail(&self) -> bool {
        self.shared.is_some()
    }

    /// `Ok` while records can be written; otherwise why not.
    ///
    /// # Errors
    /// The reason of the last failure, until the writer has recovered.
    pub fn health(&self) -> std::result::Result<(), String> {
        match self.status.reason() {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    fn enqueue(&self, event: Event) -> Result<oneshot::Receiver<Result<u64>>> {
        if let Some(reason) = self.status.reason() {
            return Err(Error::Unavailable(reason));
        }
        let (done, wait) = oneshot::channel();
        match self.tx.try_send(Job::Append {
            event: Box::new(event),
            done,
        }) {
            Ok(()) => Ok(wait),
            Err(TrySendError::Full(_)) => {
                Err(Error::Unavailable("the writer's queue is full".into()))
            }
            Err(TrySendError::Disconnected(_)) => {
                Err(Error::Unavailable("the writer stopped".into()))
            }
        }
    }

    /// Queues `event` now and returns what resolves to its sequence number
    /// once it is durable (or, buffered, written): [`AuditWriter::append`]
    /// for a caller that must not hold the writer or the event while it
    /// waits.
    pub fn submit(&self, event: Event) -> Pending {
        Pending(Some(self.enqueue(event)))
    }

    /// Appends `event`; returns its sequence number once it is durable (or,
    /// buffered, written).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the writer is failed, full or stopped;
    /// [`Error::Storage`] when this record's batch could not be written.
    pub async fn append(&self, event: Event) -> Result<u64> {
        self.submit(event).await
    }

    /// As [`AuditWriter::append`], from a thread that may block (never an
    /// async runtime thread).
    ///
    /// # Errors
    /// As [`AuditWriter::append`].
    pub fn append_blocking(&self, event: Event) -> Result<u64> {
        let wait = self.enqueue(event)?;
        wait.blocking_recv()
            .map_err(|_| Error::Unavailable("the writer stopped".into()))?
    }

    /// Signs the head, flushes and stops the writer; later appends are
    /// refused. Returns once done.
    ///
    /// # Errors
    /// The final write failing.
    pub async fn close(&self) -> Result<()> {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Job::Close(done)).is_err() {
            return Ok(());
        }
        wait.await.unwrap_or(Ok(()))
    }

    /// As [`AuditWriter::close`], blocking.
    ///
    /// # Errors
    /// As [`AuditWriter::close`].
    pub fn close_blocking(&self) -> Result<()> {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Job::Close(done)).is_err() {
            return Ok(());
        }
        wait.blocking_recv().unwrap_or(Ok(()))
    }
}

/// An append on its way ([`AuditWriter::submit`]): resolves to the
/// record's sequence number once durable, or to why it was not written.
#[derive(Debug)]
#[must_use = "the record is acknowledged only once this resolves"]
pub struct Pending(Option<Result<oneshot::Receiver<Result<u64>>>>);

impl Future for Pending {
    type Output = Result<u64>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<u64>> {
        match self.0.as_mut() {
            Some(Ok(wait)) => {
                match Pin::new(wait).poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(done) => {
                        self.0 = None;
                        Poll::Ready(done.unwrap_or_else(|_| {
                            Err(Error::Unavailable("the writer stopped".into()))
                        }))
                    }
                }
            }
            Some(Err(_)) => match self.0.take() {
                Some(Err(error)) => Poll::Ready(Err(error)),
                _ => Poll::Ready(Err(Error::Unavailable("polled again".into()))),
            },
            None => Poll::Ready(Err(Error::Unavailable("polled after completion".into()))),
        }
    }
}

/// The writer thread's state.
struct Thread {
    log: Arc<dyn AuditLog>,
    key: WriterKey,
    log_id: String,
    config: WriterConfig,
    status: Arc<Status>,
    fingerprint: String,
    /// The newest record: its sequence number and hash.
    tip: (u64, Hash),
    /// The newest signed head's sequence number.
    signed: u64,
    last_sign: Instant,
    /// Buffered records not yet flushed.
    dirty: bool,
    /// Capacity to give a record's encoding up front.
    body_hint: usize,
    /// The newest durable (or, buffered, written) sequence number, for
    /// followers of the log.
    published: watch::Sender<u64>,
}

impl Thread {
    /// Finishes the log, lets go of it (a sled store is locked while open),
    /// and only then acknowledges: whoever waited on `close` may reopen it.
    fn close(mut self, done: oneshot::Sender<Result<()>>) {
        let result = self.finish();
        drop(self);
        let _ = done.send(result);
    }

    fn run(mut self, rx: Receiver<Job>) {
        loop {
            match rx.recv_timeout(self.wait()) {
                Ok(Job::Append { event, done }) => {
                    let mut batch = vec![(event, done)];
                    let mut close = None;
                    while batch.len() < self.config.max_batch {
                        match rx.try_recv() {
                            Ok(Job::Append { event, done }) => batch.push((event, done)),
                            Ok(Job::Close(done)) => {
                                close = Some(done);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.write_batch(batch);
                    if let Some(done) = close {
                        self.close(done);
                        return;
                    }
                }
                Ok(Job::Close(done)) => {
                    self.close(done);
                    return;
                }
                Err(RecvTimeoutError::Timeout) => self.tick(),
                Err(RecvTimeoutError::Disconnected) => {
                    if let Err(error) = self.finish() {
                        tracing::error!(%error, "closing the audit log");
                    }
                    return;
                }
            }
        }
    }

    /// How long to wait for the next event before there is work of its own.
    fn wait(&self) -> Duration {
        if self.status.failed.load(Ordering::Acquire) {
            return RETRY_EVERY;
        }
        let mut wait = IDLE;
        if self.tip.0 > self.signed {
            wait = wait.min(
                self.config
                    .sign_every
                    .saturating_sub(self.last_sign.elapsed()),
            );
        }
        if let (true, Durability::Buffered { flush_every }) = (self.dirty, self.config.durability) {
            wait = wait.min(flush_every);
        }
        wait.max(Duration::from_millis(1))
    }

    /// Work without events: retry a failed store, sign, flush.
    fn tick(&mut self) {
        if self.status.failed.load(Ordering::Acquire) {
            self.try_recover();
            return;
        }
        let head = (self.tip.0 > self.signed && self.last_sign.elapsed() >= self.config.sign_every)
            .then(|| self.sign());
        if head.is_none() && !self.dirty {
            return;
        }
        match self.log.append(&[], head.as_ref(), true) {
            Ok(()) => {
                self.dirty = false;
                if let Some(head) = head {
                    self.signed = head.seq;
                }
            }
            Err(error) => self.fail(&error),
        }
    }

    fn sign(&mut self) -> crate::integrity::SignedHead {
        self.last_sign = Instant::now();
        let head = self
            .key
            .sign_head(&self.log_id, self.tip.0, &self.tip.1, now_text());
        // A copy outside the store: `mandate audit verify --expect-head`
        // checks a log against heads kept from these lines.
        tracing::info!(
            target: "mandate::audit",
            head = %format!("{}:{}", head.seq, head.hash),
            writer = %self.fingerprint,
            "audit head signed"
        );
        head
    }

    fn write_batch(&mut self, batch: Vec<(Box<Event>, oneshot::Sender<Result<u64>>)>) {
        if self.status.failed.load(Ordering::Acquire) {
            for (_, done) in batch {
                let _ = done.send(Err(Error::Unavailable(
                    self.status.reason().unwrap_or_default(),
                )));
            }
            return;
        }
        let before = self.tip;
        let time = now_text();
        let mut entries = Vec::with_capacity(batch.len());
        let mut waiting = Vec::with_capacity(batch.len());
        for (event, done) in batch {
            let seq = self.tip.0 + 1;
            // Borrowed: the time and the writer are the batch's, not copies.
            let record = RecordRef {
                seq,
                time: &time,
                writer: &self.fingerprint,
                event: &event,
            };
            let mut body = Vec::with_capacity(self.body_hint);
            match serde_json::to_writer(&mut body, &record).map(|()| body) {
                Ok(body) => {
                    self.body_hint = self.body_hint.max(body.len().next_power_of_two().min(8192));
                    let entry = StoredEntry {
                        seq,
                        prev: self.tip.1,
                        body,
                    };
                    self.tip = (seq, entry_hash(seq, &entry.prev, &entry.body));
                    entries.push(entry);
                    waiting.push((seq, done));
                }
                Err(error) => {
                    let _ = done.send(Err(Error::Encode(error)));
                }
            }
        }
        if entries.is_empty() {
            return;
        }
        let sign = self.signed == 0 || self.last_sign.elapsed() >= self.config.sign_every;
        let head = sign.then(|| self.sign());
        let durable = matches!(self.config.durability, Durability::Durable);
        match self.log.append(&entries, head.as_ref(), durable) {
            Ok(()) => {
                if let Some(head) = head {
                    self.signed = head.seq;
                }
                self.dirty = !durable;
                self.published.send_replace(self.tip.0);
                for (seq, done) in waiting {
                    let _ = done.send(Ok(seq));
                }
            }
            Err(error) => {
                self.tip = before;
                let reason = error.to_string();
                self.fail(&error);
                for (_, done) in waiting {
                    let _ = done.send(Err(Error::Unavailable(reason.clone())));
                }
            }
        }
    }

    fn fail(&self, error: &Error) {
        tracing::error!(%error, "audit log not writable: refusing decisions until it recovers");
        self.status.fail(error.to_string());
    }

    fn try_recover(&mut self) {
        let recovered = self
            .log
            .recover()
            .and_then(|()| self.log.check_writable())
            .and_then(|()| self.log.last());
        match recovered {
            Ok(last) => {
                self.tip = last.map_or((0, GENESIS), |e| (e.seq, e.hash()));
                self.signed = self
                    .log
                    .heads()
                    .ok()
                    .and_then(|h| h.last().map(|h| h.seq))
                    .unwrap_or(0);
                self.dirty = false;
                self.status.clear();
                self.published.send_replace(self.tip.0);
                tracing::info!(seq = self.tip.0, "audit log writable again");
            }
            Err(error) => {
                tracing::debug!(%error, "audit log still not writable");
                self.status.fail(error.to_string());
            }
        }
    }

    fn finish(&mut self) -> Result<()> {
        if self.status.failed.load(Ordering::Acquire) {
            self.try_recover();
        }
        let head = (self.tip.0 > self.signed).then(|| self.sign());
        self.log.append(&[], head.as_ref(), true)?;
        self.status.fail("the audit writer is closed".into());
        Ok(())
    }
}

fn now_text() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}
