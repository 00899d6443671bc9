//! The storage behind the audit trail: an append-only log of
//! [`StoredEntry`]s and the [`SignedHead`]s over them.
//!
//! Implementations store bytes; they never build, hash or sign records (the
//! [`crate::AuditWriter`] does) and never rewrite an entry once written. A
//! write of a batch is all or nothing; with `durable` it has reached the disk
//! when it returns.

use crate::integrity::{SignedHead, StoredEntry};
use crate::Result;

/// An append-only store of audit entries and signed heads.
pub trait AuditLog: Send + Sync + std::fmt::Debug {
    /// The log's id: random, created with the log, signed into every head,
    /// so a head cannot be carried over from another log.
    ///
    /// # Errors
    /// [`crate::Error::Storage`].
    fn log_id(&self) -> Result<String>;

    /// The newest entry, if any.
    ///
    /// # Errors
    /// [`crate::Error::Storage`] or [`crate::Error::Corrupt`].
    fn last(&self) -> Result<Option<StoredEntry>>;

    /// Appends `entries` (consecutive, following [`AuditLog::last`]) and, when
    /// given, `head`, in one atomic write; with `durable`, flushed to disk
    /// before returning.
    ///
    /// # Errors
    /// [`crate::Error::Storage`]: nothing of the batch may be relied on.
    fn append(
        &self,
        entries: &[StoredEntry],
        head: Option<&SignedHead>,
        durable: bool,
    ) -> Result<()>;

    /// Flushes anything written without `durable`.
    ///
    /// # Errors
    /// [`crate::Error::Storage`].
    fn flush(&self) -> Result<()>;

    /// Up to `limit` entries with `seq >= from`, in order.
    ///
    /// # Errors
    /// [`crate::Error::Storage`] or [`crate::Error::Corrupt`].
    fn read(&self, from: u64, limit: usize) -> Result<Vec<StoredEntry>>;

    /// Every signed head, in sequence order.
    ///
    /// # Errors
    /// [`crate::Error::Storage`] or [`crate::Error::Corrupt`].
    fn heads(&self) -> Result<Vec<SignedHead>>;

    /// After a failed write: whatever the backend needs to take writes again
    /// (reopening its files). The default does nothing.
    ///
    /// # Errors
    /// [`crate::Error::Storage`] while it still cannot.
    fn recover(&self) -> Result<()> {
        Ok(())
    }

    /// Whether a durable write would succeed now (a probe outside the log).
    ///
    /// # Errors
    /// [`crate::Error::Storage`].
    fn check_writable(&self) -> Result<()> {
        Ok(())
    }
}
