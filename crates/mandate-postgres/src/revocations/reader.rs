//! Catching up on the `LISTEN` session itself: the read by sequence on the session's
//! own connection, with the statement it prepared once, in one round trip.
//!
//! A wake-up's [`SessionReader`] lists entries as [`RevocationStore::list_after`] does,
//! from the same log, without a pool checkout or a prepare.
//!
//! This module must never serve an entry out of sequence.
//!
//! [`RevocationStore::list_after`]: mandate_registry::RevocationStore::list_after

use std::time::Instant;

use mandate_registry::{Result, RevocationEntry};
use postgres::{Client, Statement};

use super::{entries_after, storage};

/// The session's connection and its prepared read, while connected.
pub(super) struct Reading<'a> {
    pub(super) client: &'a mut Client,
    pub(super) list_after: &'a Statement,
}

/// Lists the log's entries for one wake-up of the listening session.
pub struct SessionReader<'a> {
    reading: Option<Reading<'a>>,
    /// When the first read by sequence of this wake-up began.
    read_started: Option<Instant>,
    /// A read failed on the connection: the session reconnects.
    broken: bool,
}

impl std::fmt::Debug for SessionReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionReader")
            .field("connected", &self.reading.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> SessionReader<'a> {
    /// A reader on `reading` (`None` while disconnected: every read fails).
    pub(super) fn new(reading: Option<Reading<'a>>) -> Self {
        SessionReader {
            reading,
            read_started: None,
            broken: false,
        }
    }

    /// The entries after `after_seq`, at most `limit`, in order, as
    /// [`mandate_registry::RevocationStore::list_after`] lists them.
    ///
    /// # Errors
    /// [`mandate_registry::Error::Storage`] when the log cannot be read (disconnected,
    /// or the read failed: the session then reconnects);
    /// [`mandate_registry::Error::Corrupt`] for a stored entry that does not decode or a
    /// gap in the log.
    pub fn list_after(&mut self, after_seq: u64, limit: usize) -> Result<Vec<RevocationEntry>> {
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

    /// When this wake-up's first read of the log by sequence began: everything committed
    /// before then has been listed. `None` when it did not read.
    pub fn read_started(&self) -> Option<Instant> {
        self.read_started
    }

    /// A read failed on the connection, which the session then replaces.
    pub(super) fn broken(&self) -> bool {
        self.broken
    }
}
