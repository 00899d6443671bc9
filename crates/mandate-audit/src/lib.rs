//! Mandate's audit trail: who did what, for whom, through which chain,
//! allowed or denied and why — kept so that nobody can quietly edit it.
//!
//! - [`Record`] / [`Event`]: the one record type for every event — decisions
//!   ([`DecisionRecord`], made from the verifier's `Decision`), refusals,
//!   registry revocations and lifts ([`RegistryEvent`]) and issuer events
//!   ([`IssuerEvent`]). Plain data: never a token, a proof or a key.
//! - [`AuditLog`]: the append-only storage trait; [`FileLog`] (segment
//!   files, the default), [`SledLog`] (older stores) and [`MemoryLog`]
//!   (tests); [`store::open`] picks the one a folder holds.
//! - [`AuditWriter`]: the one writer of a log — group commit, hash links,
//!   signed heads, and the failure state that makes servers fail closed.
//! - [`verify()`]: detects an edited, deleted, reordered, truncated or
//!   re-linked log and names the first bad record.
//! - [`Trail`]: what queries read — one log ([`LogTrail`]) or, in a store
//!   shared by several writers, their logs merged in commit order.
//! - [`query()`] and [`trace()`]: reading it back.
//!
//! This crate does no HTTP; servers call it before they answer.

pub mod access;
#[cfg(feature = "testing")]
pub mod contract;
mod decision;
mod error;
mod file_log;
pub mod integrity;
mod issuer;
mod log;
mod memory_log;
pub mod query;
mod record;
mod registry;
mod sled_log;
pub mod store;
pub mod trace;
mod trail;
mod verify;
mod writer;

pub use decision::{
    attrs_digest, key_fingerprint, ChainLink, CheckRecord, DecisionContext, DecisionRecord,
    Outcome, ReasonRecord, RefusalRecord,
};
pub use error::{Error, Result};
pub use file_log::FileLog;
pub use integrity::{SignedHead, StoredEntry, WriterKey};
pub use issuer::IssuerEvent;
pub use log::AuditLog;
pub use memory_log::MemoryLog;
pub use query::{parse_time_bound, query, query_all, Filter, Page};
pub use record::{Event, Record};
pub use registry::{RegistryAction, RegistryEvent};
pub use sled_log::SledLog;
pub use trace::trace;
pub use trail::{LogTrail, Trail, TrailEntry};
pub use verify::{verify, verify_with_witnesses, Tampered, Verdict, Verified};
pub use writer::{AuditWriter, Durability, Pending, WriterConfig};
