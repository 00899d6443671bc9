//! What a verified mandate states: the authority block's claims (the
//! principal, the task, the rights, the expiry) and its delegation chain.
//!
//! Claims are read only from the authority block (signed by the issuer's
//! root key), from facts read structurally (`blocks.rs`). [`Claims`] comes
//! only from a verified [`crate::Mandate`]; [`AuthorityClaims`] also serves
//! inspection reports, which say whether they were verified.

use std::time::SystemTime;

use crate::authority::AuthorityClaims;
use crate::chain::{Chain, ChainError};
use crate::restrict::Right;

/// What a verified mandate states, and its delegation chain.
#[derive(Debug, Clone)]
pub struct Claims {
    /// `principal(P)`.
    pub principal: String,
    /// `task(Id)`.
    pub task: String,
    /// `right(S, O)` facts.
    pub rights: Vec<Right>,
    /// `expires_at(T)`.
    pub expires_at: Option<SystemTime>,
    /// The chain from the first agent to the acting agent, or why it is
    /// broken (a broken chain must be denied).
    pub chain: Result<Chain, ChainError>,
}

impl Claims {
    pub(crate) fn new(authority: AuthorityClaims, chain: Result<Chain, ChainError>) -> Claims {
        Claims {
            principal: authority.principal.unwrap_or_default(),
            task: authority.task.unwrap_or_default(),
            rights: authority.rights,
            expires_at: authority.expires_at,
            chain,
        }
    }

    /// Claims of a token that could not be read: nobody, and a broken chain.
    pub(crate) fn unreadable(error: ChainError) -> Claims {
        Claims::new(AuthorityClaims::default(), Err(error))
    }
}
