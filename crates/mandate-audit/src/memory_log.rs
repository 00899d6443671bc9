//! An audit log in memory, for tests: nothing survives the process.

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::integrity::{SignedHead, StoredEntry};
use crate::log::AuditLog;
use crate::Result;

/// An [`AuditLog`] in memory.
#[derive(Debug)]
pub struct MemoryLog {
    id: String,
    state: Mutex<(Vec<StoredEntry>, Vec<SignedHead>)>,
}

impl Default for MemoryLog {
    fn default() -> Self {
        MemoryLog {
            id: uuid::Uuid::new_v4().simple().to_string(),
            state: Mutex::default(),
        }
    }
}

impl MemoryLog {
    /// A fresh, empty log.
    pub fn new() -> MemoryLog {
        MemoryLog::default()
    }

    /// Recovers a poisoned lock: every critical section below completes its
    /// update or changes nothing before it could panic.
    fn lock(&self) -> MutexGuard<'_, (Vec<StoredEntry>, Vec<SignedHead>)> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AuditLog for MemoryLog {
    fn log_id(&self) -> Result<String> {
        Ok(self.id.clone())
    }

    fn last(&self) -> Result<Option<StoredEntry>> {
        Ok(self.lock().0.last().cloned())
    }

    fn append(
        &self,
        entries: &[StoredEntry],
        head: Option<&SignedHead>,
        _durable: bool,
    ) -> Result<()> {
        let mut state = self.lock();
        state.0.extend_from_slice(entries);
        if let Some(head) = head {
            state.1.push(head.clone());
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn read(&self, from: u64, limit: usize) -> Result<Vec<StoredEntry>> {
        let state = self.lock();
        let start = state.0.partition_point(|e| e.seq < from);
        Ok(state.0.iter().skip(start).take(limit).cloned().collect())
    }

    fn heads(&self) -> Result<Vec<SignedHead>> {
        Ok(self.lock().1.clone())
    }
}
