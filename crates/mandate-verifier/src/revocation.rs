//! The verifier's view of revocation state: a check consulted on every call.
//!
//! The verifier does not know where revocations come from; the registry
//! crate implements [`RevocationCheck`] for its subscribed index. A check
//! that cannot vouch for its state (stale, never synced) must deny.
//!
//! A source that can say *when* its answers may have changed
//! ([`RevocationCheck::changes`]) lets a service stop a call already in
//! flight: whoever holds a call's [`Dependencies`] re-checks them on every
//! change instead of polling.

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
    /// Something the token depends on is revoked. Displayed escaped: the
    /// value and the operator's reason may hold any text, and must never
    /// print as more than they are.
    #[error(
        "revoked: {kind} {} (revocation #{seq}{})",
        mandate_core::name::display_name(.value),
        reason_suffix(.reason)
    )]
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
        format!(": {}", mandate_core::print::escape(reason))
    }
}

/// Everything an allowed mandate's revocation state depends on, owned: its
/// block ids, principal, task and chain. Read once from a verified mandate
/// (`Verifier::authorize_with_dependencies`), so re-checking a call in flight
/// needs neither the token nor its blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependencies {
    revocation_ids: Vec<Vec<u8>>,
    principal: String,
    task: String,
    agents: Vec<Link>,
}

impl Dependencies {
    /// Only the verifier builds these, from a mandate it verified.
    pub(crate) fn new(
        revocation_ids: Vec<Vec<u8>>,
        principal: String,
        task: String,
        agents: Vec<Link>,
    ) -> Dependencies {
        Dependencies {
            revocation_ids,
            principal,
            task,
            agents,
        }
    }

    /// The subject a [`RevocationCheck`] looks at.
    pub fn subject(&self) -> RevocationSubject<'_> {
        RevocationSubject {
            revocation_ids: &self.revocation_ids,
            principal: &self.principal,
            task: &self.task,
            agents: &self.agents,
        }
    }
}

/// Revocation state consulted on every authorization.
pub trait RevocationCheck: Send + Sync + std::fmt::Debug {
    /// `Ok` when nothing in `subject` is revoked and the state is current.
    ///
    /// # Errors
    /// [`RevocationDenial`] when revoked or when the state is unknown.
    fn check(&self, subject: &RevocationSubject<'_>) -> Result<(), RevocationDenial>;

    /// A counter that moves whenever the answer of [`RevocationCheck::check`]
    /// may have changed for some subject: an entry applied, the state reset,
    /// or the state turning stale. Receivers re-check their subjects when it
    /// moves; it never says what changed.
    ///
    /// `None` (the default) when this source cannot notify; a watcher then
    /// polls. A source whose state goes stale with the passing of time must
    /// notice that on its own while any receiver is alive, so that a call in
    /// flight is stopped no later than it would be refused.
    #[cfg(feature = "http")]
    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}
