//! What the issuer reads of the revocation state before it mints.
//!
//! Verifiers are where an agent's revocation is enforced; the issuer makes
//! sure it does not hand out a fresh mandate that would undo one. The server
//! composing the issuer supplies a [`RevocationCheck`] (the registry's index
//! it subscribes to, or the store it writes to); without one nothing is
//! checked here.
//!
//! Two rules, by what the caller presents:
//! - **A mandate** (refresh, a request for more rights, its poll): refused
//!   when the mandate's token, any of its blocks, its principal, task or any
//!   agent of its chain is revoked, and refused while the state is stale or
//!   unknown — otherwise a token revoked by its id (which a fresh mandate
//!   would not carry) could be traded for a new one.
//! - **No mandate** (a token exchange, collecting an approved one): refused
//!   when the principal or the agent is revoked. While the state is stale it
//!   proceeds: the new mandate names that principal and agent, which every
//!   verifier judges by value under its own state.
//!
//! This module never writes revocations ([`crate::revoke`] does).

use std::sync::Arc;

use mandate_core::{AgentKey, Link, Mandate};
use mandate_verifier::{RevocationCheck, RevocationDenial, RevocationSubject};

/// The revocation state the issuer consults, when it was given one.
#[derive(Debug, Clone, Default)]
pub(crate) struct Revocations {
    check: Option<Arc<dyn RevocationCheck>>,
}

impl Revocations {
    /// Consults `check`.
    pub(crate) fn new(check: Arc<dyn RevocationCheck>) -> Revocations {
        Revocations { check: Some(check) }
    }

    /// Whether a mandate presented to the issuer may still be used to mint.
    ///
    /// # Errors
    /// The revocation that names it, or the staleness that keeps the state
    /// from answering.
    pub(crate) fn presented(&self, mandate: &Mandate) -> Result<(), RevocationDenial> {
        let Some(check) = &self.check else {
            return Ok(());
        };
        let claims = mandate.claims();
        let ids = mandate.revocation_ids();
        let agents = claims
            .chain
            .as_ref()
            .map(|chain| chain.links.clone())
            .unwrap_or_default();
        let subject = RevocationSubject {
            revocation_ids: &ids,
            principal: &claims.principal,
            task: &claims.task,
            agents: &agents,
        };
        check.check(&subject)
    }

    /// The revocation, if any, of `principal` or of the agent `name` holding
    /// `key`, for what `task` would mint. A stale state is no answer here
    /// (see the module documentation).
    pub(crate) fn holder(
        &self,
        principal: &str,
        task: &str,
        name: &str,
        key: AgentKey,
    ) -> Option<RevocationDenial> {
        let check = self.check.as_ref()?;
        let agents = [Link::new(name.to_owned(), Some(key), 0)];
        let subject = RevocationSubject {
            revocation_ids: &[],
            principal,
            task,
            agents: &agents,
        };
        match check.check(&subject) {
            Err(denial @ RevocationDenial::Revoked { .. }) => Some(denial),
            Err(denial) => {
                tracing::debug!(%denial, "minting for an unrevoked holder while the revocation state is stale");
                None
            }
            Ok(()) => None,
        }
    }
}
