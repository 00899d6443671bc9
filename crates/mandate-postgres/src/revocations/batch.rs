//! Group commit for appends: the concurrent appends of one process share one
//! transaction and one WAL flush.
//!
//! Appends serialize on the log's advisory lock (that is what keeps seq order equal to
//! commit order), and the lock is held through the commit's flush; so one append per
//! transaction would cap the log at one flush per entry. Instead each appender queues
//! its entry; whoever finds no commit in progress becomes the leader, takes everything
//! queued (at most [`MAX_BATCH`]) and commits it in one call of
//! `mandate_append_revocations`; the others wait for their result or for their turn to
//! lead. An entry is acknowledged only after the transaction that holds it committed.
//!
//! This module must never acknowledge an entry before its commit returned, nor let a
//! batch's failure be reported as success for any entry in it.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use mandate_registry::{NewRevocation, Result, RevocationEntry};

use super::storage;
use crate::pool::Pool;

/// The most entries committed in one transaction.
pub(super) const MAX_BATCH: usize = 512;

/// Queued appends and the results of committed ones.
#[derive(Default)]
struct State {
    next_ticket: u64,
    queue: Vec<(u64, NewRevocation)>,
    done: HashMap<u64, Result<RevocationEntry>>,
    /// A leader is committing a batch now.
    leading: bool,
}

pub(super) struct Batcher {
    state: Mutex<State>,
    /// Signalled whenever a batch finished.
    finished: Condvar,
}

impl Batcher {
    pub(super) fn new() -> Batcher {
        Batcher {
            state: Mutex::default(),
            finished: Condvar::new(),
        }
    }

    /// Every critical section below completes its update before it could panic, so a
    /// poisoned lock still guards consistent data.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends `new`, durably, in some batch; returns its entry once that batch committed.
    pub(super) fn append(&self, pool: &Pool, new: NewRevocation) -> Result<RevocationEntry> {
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queue.push((ticket, new));
        loop {
            if let Some(result) = state.done.remove(&ticket) {
                return result;
            }
            if state.leading {
                state = self
                    .finished
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            state.leading = true;
            let take = state.queue.len().min(MAX_BATCH);
            let batch: Vec<(u64, NewRevocation)> = state.queue.drain(..take).collect();
            drop(state);
            let results = commit(pool, batch);
            state = self.lock();
            state.leading = false;
            state.done.extend(results);
            self.finished.notify_all();
        }
    }
}

/// Commits `batch` in one transaction; every ticket gets its entry or an error.
fn commit(pool: &Pool, batch: Vec<(u64, NewRevocation)>) -> Vec<(u64, Result<RevocationEntry>)> {
    let (tickets, news): (Vec<u64>, Vec<NewRevocation>) = batch.into_iter().unzip();
    match insert(pool, &news) {
        Ok(stamped) => tickets
            .into_iter()
            .zip(news)
            .zip(stamped)
            .map(|((ticket, new), (seq, at))| (ticket, Ok(new.into_entry(seq, at))))
            .collect(),
        Err(error) => {
            let text = mandate_registry_report(&error);
            tracing::error!(entries = tickets.len(), error = %text, "revocation append failed");
            tickets
                .into_iter()
                .map(|ticket| (ticket, Err(storage("appending an entry", text.clone()))))
                .collect()
        }
    }
}

/// Runs the append function for `news`; their seqs and time, in order.
fn insert(pool: &Pool, news: &[NewRevocation]) -> Result<Vec<(u64, SystemTime)>> {
    let kinds: Vec<&str> = news.iter().map(|n| n.kind().as_str()).collect();
    let values: Vec<&str> = news.iter().map(NewRevocation::value).collect();
    let reasons: Vec<&str> = news.iter().map(NewRevocation::reason).collect();
    let actors: Vec<&str> = news.iter().map(NewRevocation::revoked_by).collect();
    let lifted: Vec<bool> = news.iter().map(NewRevocation::is_lift).collect();
    let mut conn = pool.get().map_err(|e| storage("appending an entry", e))?;
    // An explicit transaction, so that success means COMMIT itself answered: rows
    // of an implicit one can arrive before its commit is known to have succeeded.
    let mut transaction = conn
        .transaction()
        .map_err(|e| storage("appending an entry", e))?;
    let rows = transaction
        .query(
            "SELECT new_seq, new_at FROM mandate_append_revocations($1, $2, $3, $4, $5) \
                 ORDER BY new_seq",
            &[&kinds, &values, &reasons, &actors, &lifted],
        )
        .map_err(|e| storage("appending an entry", e))?;
    if rows.len() != news.len() {
        return Err(storage(
            "appending an entry",
            format!("{} entries given, {} stored", news.len(), rows.len()),
        ));
    }
    let stamped = rows
        .iter()
        .map(|row| {
            let seq: i64 = row
                .try_get(0)
                .map_err(|e| storage("appending an entry", e))?;
            let at: SystemTime = row
                .try_get(1)
                .map_err(|e| storage("appending an entry", e))?;
            let seq = u64::try_from(seq)
                .map_err(|_| storage("appending an entry", "a negative sequence number"))?;
            Ok((seq, at))
        })
        .collect::<Result<Vec<_>>>()?;
    // Durable (WAL flushed, synchronous_commit = on) once this returns Ok; dropping
    // the transaction on any error above rolls it back.
    transaction
        .commit()
        .map_err(|e| storage("committing an appended entry", e))?;
    Ok(stamped)
}

/// An error and its causes on one line.
fn mandate_registry_report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}
