//! The Mandate vocabulary and everything a holder can do with a mandate offline.
//!
//! A *mandate* is a Biscuit token whose authority block binds a principal, the
//! agent acting for them, a task, the rights granted for that task and an
//! expiry. This crate owns the names of those facts ([`vocab`]), the key
//! types ([`keys`]), the split between bytes that were merely parsed
//! ([`UnverifiedMandate`]) and a token whose root signature was checked
//! ([`Mandate`]), the structural reader of a token's signed blocks
//! ([`blocks`]) and its escaped display ([`print`]), the restriction
//! builders that compile to Datalog checks ([`Restrictions`]), offline
//! delegation ([`delegate`]) and inspection ([`inspect`]).
//!
//! This crate never decides a request (that is `mandate-verifier`), never
//! performs network or storage I/O beyond reading and writing key files, and
//! never reads a claim from an unverified token for any purpose other than a
//! report that says it is unverified.

mod authority;
pub mod blocks;
pub mod bounds;
pub mod chain;
mod chain_error;
mod claims;
mod delegate;
mod error;
pub mod inspect;
pub mod keys;
pub mod name;
mod narrowing;
mod pop;
pub mod print;
mod request;
mod restrict;
mod scope;
mod symbols;
pub mod text_file;
mod token;
pub mod vocab;

pub use blocks::{BlockContents, Detail, Query, ReadError};
pub use chain::{Author, Chain, ChainError, Link};
pub use claims::Claims;
pub use delegate::{delegate, delegate_signed, NextAgent};
pub use error::{check_datalog, parse_datalog, DatalogKind, Error};
pub use inspect::{inspect, BlockReport, Inspection, SignatureStatus};
pub use keys::{AgentKey, KeySet, PublicKey, RootKey, SecretKey, Validity};
pub use name::{check_name, display_label, display_name, NameKind};
pub use pop::{PopError, Proof};
pub use request::{url_host, AttrValue, Request, ResourcePath};
pub use restrict::{Restrictions, Right};
pub use scope::check_within_rights;
pub use token::{fingerprint, read_token_text, Mandate, UnverifiedMandate, MAX_TOKEN_LEN};

/// The Datalog engine limits every evaluation in Mandate runs under, unless a
/// caller chooses others.
///
/// biscuit-auth's default time limit (1 ms) fires spuriously on a loaded
/// two-core machine (79 of 617k calls under contention were measured to fail
/// that way), and even 50 ms fired for registry writes in a debug build
/// under heavy parallel test load, which would turn load into denials. The
/// time limit is a backstop: the verifier bounds the cost of a token's checks
/// statically before evaluating (biscuit checks time only between rule
/// iterations). The fact and iteration limits stay tight because mandates are
/// small: a token with a few dozen blocks produces a few hundred facts.
pub fn default_run_limits() -> biscuit_auth::datalog::RunLimits {
    biscuit_auth::datalog::RunLimits {
        max_facts: 10_000,
        max_iterations: 100,
        max_time: std::time::Duration::from_millis(250),
    }
}
