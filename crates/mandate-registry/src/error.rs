//! The registry crate's single error type.
//!
//! Every fallible operation in this crate (validation, storage, the HTTP client) returns
//! [`Error`]. Variants are structured so callers can match on the cause; the storage and
//! transport variants keep their underlying error as `source()` but never name the
//! backend's type (no sled or reqwest type appears in this enum's public shape).

use std::path::PathBuf;
use std::time::Duration;

use crate::kind::{RevocationKind, UnknownKind};

/// A boxed error from a backend (sled, serde_json, reqwest, ...), kept as `source()`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used throughout this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the revocation registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The revocation kind is not one of `token_id`, `principal`, `agent`, `task`.
    #[error(transparent)]
    UnknownKind(#[from] UnknownKind),

    /// A revocation value is malformed for its kind.
    #[error("invalid {kind} value: {problem}")]
    InvalidValue {
        /// The kind whose value was rejected.
        kind: RevocationKind,
        /// What is wrong with it.
        problem: &'static str,
    },

    /// A principal, agent or task value is not a canonical name: the rules
    /// `mandate issue` applies (`mandate_core::name`), so a revocation can
    /// only name what a token could carry.
    #[error("invalid {kind} `{name}`: {problem}")]
    InvalidName {
        /// The kind whose value was rejected.
        kind: RevocationKind,
        /// The value, escaped for display and cut to 64 characters.
        name: String,
        /// The rule it breaks.
        problem: mandate_core::name::NameProblem,
    },

    /// A bounded field is longer than its limit.
    #[error("{field} is {len} bytes, over the limit of {max}")]
    TooLong {
        /// Which field (`value`, `reason`, `revoked_by`).
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },

    /// Token-id and task revocations are permanent; only principals and agents can be lifted.
    #[error("{kind} revocations are permanent and cannot be lifted")]
    NotLiftable {
        /// The kind that was asked to be lifted.
        kind: RevocationKind,
    },

    /// Entries were applied out of order: the index needs `expected` next.
    #[error("revocation entries out of order: expected seq {expected}, got {got}")]
    SeqGap {
        /// The sequence number the index needed next.
        expected: u64,
        /// The sequence number it was given.
        got: u64,
    },

    /// The revocation store failed.
    #[error("revocation store failed while {operation}")]
    Storage {
        /// What the store was doing (for example `"appending an entry"`).
        operation: &'static str,
        /// The backend's error.
        #[source]
        source: BoxError,
    },

    /// A stored entry could not be decoded, or its key and contents disagree.
    #[error("stored revocation entry {key} is corrupt")]
    Corrupt {
        /// The storage key (the sequence number when it could be read).
        key: String,
        /// Why it could not be decoded.
        #[source]
        source: BoxError,
    },

    /// [`crate::SledStore::open_existing`] found no revocation store at `path`.
    #[error("no revocation store at {}: {problem}", path.display())]
    StoreNotFound {
        /// The directory that was given.
        path: PathBuf,
        /// What is missing (the directory, or the database inside it).
        problem: &'static str,
    },

    /// The registry serves a different log than the one an index was built from (its
    /// log epoch differs: the registry was restarted on another, wiped or replaced
    /// store). Entries of one log must never be applied on top of another's.
    #[error(
        "the registry serves log epoch {registry:?}, but the index holds {}",
        held.as_deref().map_or_else(|| "entries of an unknown log".to_owned(), |e| format!("log epoch {e:?}"))
    )]
    LogChanged {
        /// The epoch of the log the index holds, or `None` when it was never recorded.
        held: Option<String>,
        /// The epoch the registry announced.
        registry: String,
    },

    /// The registry URL given to the client is unusable.
    #[error("invalid registry URL {url:?}")]
    InvalidUrl {
        /// The URL as given, with any user and password replaced by `***`.
        url: String,
        /// Why it was rejected.
        #[source]
        source: BoxError,
    },

    /// A list of registry replicas cannot be followed.
    #[error("registry replicas: {problem}")]
    Replicas {
        /// What is wrong with the list.
        problem: String,
    },

    /// A request to the registry failed before an answer arrived.
    #[error("registry request failed while {operation}")]
    Transport {
        /// What the client was doing.
        operation: &'static str,
        /// The transport error.
        #[source]
        source: BoxError,
    },

    /// The registry answered with an error.
    #[error("registry answered {status} {code}: {message}")]
    Api {
        /// HTTP status code.
        status: u16,
        /// Machine-readable error code from the JSON error body.
        code: String,
        /// Human-readable message from the JSON error body.
        message: String,
    },

    /// The registry sent something this client cannot understand.
    #[error("registry sent a malformed {what}")]
    Protocol {
        /// What was malformed (for example `"revocation event"`).
        what: &'static str,
        /// The decoding error.
        #[source]
        source: BoxError,
    },

    /// The revocation stream carried no event (not even a heartbeat) for too long.
    #[error("revocation stream idle for {idle:?}")]
    StreamIdle {
        /// How long the client waited.
        idle: Duration,
    },

    /// The mandate given to authenticate to the registry cannot be used: it is
    /// not a token, or a proof of possession cannot be made for it.
    #[error("the registry mandate cannot be used")]
    Credentials {
        /// Why.
        #[source]
        source: mandate_core::Error,
    },

    /// The in-memory revocation index cannot hold another distinct value or reason.
    #[error("the revocation index is full ({limit} values)")]
    IndexFull {
        /// How many it can hold.
        limit: usize,
    },

    /// The HTTP server failed.
    #[error("registry server failed")]
    Serve {
        /// The I/O error from the listener or a connection.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn storage(operation: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Storage {
            operation,
            source: source.into(),
        }
    }

    pub(crate) fn transport(operation: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Transport {
            operation,
            source: source.into(),
        }
    }

    pub(crate) fn protocol(what: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Protocol {
            what,
            source: source.into(),
        }
    }
}

/// Formats an error and its `source()` chain on one line, for logs.
pub(crate) fn report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}
