//! The verifier's view of revocation state: a check consulted on every call.
//!
//! The verifier does not know where revocations come from; the registry
//! crate implements [`RevocationCheck`] for its subscribed index. A check
//! that cannot vouch for its state (stale, never synced) must deny.

use mandate_core::Link;

/// What a revocation check looks at: every block id of the token, the
/// principal, the task and every agent of the chain.
#[derive(Debug, Clone, Copy)]
pub struct RevocationSubject<'a> {
    /// Every block's revocation id, authority first.
    pub revocation_ids: &'a [Vec<u8>],
    /// `principal(P)`.
    pub principal: &'a str,
    /// `task(Id)`.
    pub task: &'a str,
    /// The chain, first agent to acting agent.
    pub agents: &'a [Link],
}

/// Why the revocation check refused a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationDenial {
    /// Something the token depends on is revoked.
    #[error("revoked: {kind} {value} (revocation #{seq}{})", reason_suffix(.reason))]
    Revoked {
        /// What kind of thing was revoked (`principal`, `task`, ...).
        kind: String,
        /// Its value.
        value: String,
        /// The revocation's sequence number.
        seq: u64,
        /// The operator's reason.
        reason: String,
    },
    /// The revocation state cannot be vouched for, so nothing is allowed.
    #[error("revocation state stale: {detail}")]
    Stale {
        /// Since when, and the bound.
        detail: String,
    },
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

/// Revocation state consulted on every authorization.
pub trait RevocationCheck: Send + Sync + std::fmt::Debug {
    /// `Ok` when nothing in `subject` is revoked and the state is current.
    ///
    /// # Errors
    /// [`RevocationDenial`] when revoked or when the state is unknown.
    fn check(&self, subject: &RevocationSubject<'_>) -> Result<(), RevocationDenial>;
}
