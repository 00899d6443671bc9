//! What queries read: records in one order that only grows — a single log
//! in its sequence order, or the logs of several writers sharing one store,
//! merged in the order their records were committed.
//!
//! A position says where a reader is: it continues after the newest
//! position it read and never misses a record committed later at a lower
//! one (a trail hands out positions in commit order).

use std::sync::Arc;

use crate::log::AuditLog;
use crate::Result;

/// A stored record at its position in a trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailEntry {
    /// Where the record stands in the trail; only grows.
    pub position: u64,
    /// The record's sequence number in its writer's log.
    pub seq: u64,
    /// The record, JSON, as stored.
    pub body: Vec<u8>,
}

/// Records in the order queries read them.
pub trait Trail: Send + Sync + std::fmt::Debug {
    /// Up to `limit` entries at positions after `after`, in order.
    ///
    /// # Errors
    /// [`crate::Error::Storage`] or [`crate::Error::Corrupt`].
    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<TrailEntry>>;
}

/// One log as a trail: its positions are its sequence numbers.
#[derive(Debug, Clone)]
pub struct LogTrail(pub Arc<dyn AuditLog>);

impl Trail for LogTrail {
    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<TrailEntry>> {
        let entries = self.0.read(after.saturating_add(1), limit)?;
        Ok(entries
            .into_iter()
            .map(|entry| TrailEntry {
                position: entry.seq,
                seq: entry.seq,
                body: entry.body,
            })
            .collect())
    }
}
