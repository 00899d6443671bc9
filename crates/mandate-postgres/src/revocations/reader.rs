//! Catching up on the `LISTEN` session itself: the entries its notifications carried,
//! and the read by sequence on its own connection when they do not cover the log.
//!
//! A wake-up's [`SessionReader`] lists entries as [`RevocationStore::list_after`] does.
//! It serves them from what this wake-up's notifications carried ([`Told`]: signed
//! entries only) when those are consecutive from the caller's seq and reach the newest
//! seq any of them announced; otherwise — a gap, a payload without entries, an unsigned
//! or unreadable one, and on every timer and (re)connection wake-up, which exist to find
//! what no notification announced — it reads the rest by sequence with the statement
//! the session prepared once, in one round trip. Entries served either way are the same
//! entries: a payload's are checked as a read's are.
//!
//! This module must never serve an entry out of sequence, nor report a catch-up as a read
//! of the log when it served only what notifications told.
//!
//! [`RevocationStore::list_after`]: mandate_registry::RevocationStore::list_after

use std::collections::BTreeMap;
use std::time::Instant;

use mandate_registry::{Result, RevocationEntry};
use postgres::{Client, Statement};

use super::notice::Notice;
use super::{entries_after, storage};

/// What one wake-up's notifications told.
#[derive(Default)]
pub(super) struct Told {
    /// Entries carried, by seq.
    entries: BTreeMap<u64, RevocationEntry>,
    /// The newest seq announced.
    upto: u64,
    /// A notification did not say how far.
    unknown: bool,
}

impl Told {
    /// Takes in one notification's payload, signed under `key`.
    pub(super) fn hear(&mut self, payload: &str, key: &[u8]) {
        match Notice::parse(payload, key) {
            Notice::Entries(entries) => {
                if let Some(last) = entries.last() {
                    self.upto = self.upto.max(last.seq);
                }
                self.entries
                    .extend(entries.into_iter().map(|entry| (entry.seq, entry)));
            }
            Notice::Upto(seq) => self.upto = self.upto.max(seq),
            Notice::Unknown => self.unknown = true,
        }
    }

    /// Forgets everything: the next wake-up starts afresh.
    pub(super) fn clear(&mut self) {
        *self = Told::default();
    }
}

/// The session's connection and its prepared read, while connected.
pub(super) struct Reading<'a> {
    pub(super) client: &'a mut Client,
    pub(super) list_after: &'a Statement,
}

/// Lists the log's entries for one wake-up of the listening session.
pub struct SessionReader<'a> {
    reading: Option<Reading<'a>>,
    told: &'a Told,
    /// This wake-up must read the log (a timer or a (re)connection).
    must_read: bool,
    /// When the first read by sequence of this wake-up began.
    read_started: Option<Instant>,
    /// A read failed on the connection: the session reconnects.
    broken: bool,
}

impl std::fmt::Debug for SessionReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionReader")
            .field("connected", &self.reading.is_some())
            .field("must_read", &self.must_read)
            .finish_non_exhaustive()
    }
}

impl<'a> SessionReader<'a> {
    /// A reader on `reading` (`None` while disconnected: every read fails), serving
    /// what `told` carried unless the wake-up `must_read`.
    pub(super) fn new(reading: Option<Reading<'a>>, told: &'a Told, must_read: bool) -> Self {
        SessionReader {
            reading,
            told,
            must_read,
            read_started: None,
            broken: false,
        }
    }

    /// The entries after `after_seq`, at most `limit`, in order, as
    /// [`mandate_registry::RevocationStore::list_after`] lists them.
    ///
    /// # Errors
    /// [`mandate_registry::Error::Storage`] when the log must be read and cannot be
    /// (disconnected, or the read failed); [`mandate_registry::Error::Corrupt`] for a
    /// stored entry that does not decode or a gap in the log.
    pub fn list_after(&mut self, after_seq: u64, limit: usize) -> Result<Vec<RevocationEntry>> {
        let mut out: Vec<RevocationEntry> = Vec::new();
        let mut next = after_seq.saturating_add(1);
        while out.len() < limit {
            let Some(entry) = self.told.entries.get(&next) else {
                break;
            };
            out.push(entry.clone());
            next = next.saturating_add(1);
        }
        let reached = after_seq.saturating_add(out.len() as u64);
        let told_all = !self.must_read && !self.told.unknown && reached >= self.told.upto;
        if told_all || out.len() >= limit {
            return Ok(out);
        }
        let rest = self.read(reached, limit - out.len())?;
        out.extend(rest);
        Ok(out)
    }

    /// When this wake-up's first read of the log by sequence began: everything committed
    /// before then has been listed. `None` when it served only what notifications told
    /// (more may have committed since, its notification still on the way).
    pub fn read_started(&self) -> Option<Instant> {
        self.read_started
    }

    /// A read failed on the connection, which the session then replaces.
    pub(super) fn broken(&self) -> bool {
        self.broken
    }

    /// Reads the entries after `after_seq` by sequence, on the session's connection.
    fn read(&mut self, after_seq: u64, limit: usize) -> Result<Vec<RevocationEntry>> {
        // Seqs are BIGINT: nothing lies beyond i64::MAX.
        let Ok(after) = i64::try_from(after_seq) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let Some(reading) = self.reading.as_mut() else {
            return Err(storage(
                "reading entries",
                "the listening session is not connected",
            ));
        };
        self.read_started.get_or_insert_with(Instant::now);
        let rows = match reading.client.query(reading.list_after, &[&after, &limit]) {
            Ok(rows) => rows,
            Err(error) => {
                self.broken = true;
                return Err(storage("reading entries", error));
            }
        };
        entries_after(after_seq, &rows)
    }
}
