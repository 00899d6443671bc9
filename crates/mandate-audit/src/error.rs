//! The audit crate's one error type.

/// What went wrong with the audit log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The storage backend failed (disk full, unwritable, lock held).
    #[error("audit store: {action}: {message}")]
    Storage {
        /// What was being done.
        action: &'static str,
        /// The backend's message.
        message: String,
    },
    /// A stored entry cannot be read (not what this crate writes).
    #[error("audit store: record #{seq} is unreadable: {message}")]
    Corrupt {
        /// The record.
        seq: u64,
        /// Why.
        message: String,
    },
    /// The writer is not taking records now: it failed and has not
    /// recovered, its queue is full, or it was shut down. A decision that
    /// cannot be recorded is not answered.
    #[error("audit log unavailable: {0}")]
    Unavailable(String),
    /// The writer key cannot be used.
    #[error("audit writer key: {0}")]
    Key(#[from] mandate_core::Error),
    /// A record could not be encoded.
    #[error("encoding an audit record: {0}")]
    Encode(#[from] serde_json::Error),
}

impl Error {
    /// A storage failure while doing `action`.
    pub fn storage(action: &'static str, error: impl std::fmt::Display) -> Error {
        Error::Storage {
            action,
            message: error.to_string(),
        }
    }
}

/// This crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
