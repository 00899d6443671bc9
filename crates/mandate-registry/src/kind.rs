//! What a revocation names: a token (by block revocation id), a principal,
//! an agent or a task, and the wire names of those kinds.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a revocation entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RevocationKind {
    /// One block's revocation id (lowercase hex). Any token that contains the block is
    /// revoked, so revoking a token also revokes every token delegated from it.
    TokenId,
    /// Every token issued on behalf of this principal.
    Principal,
    /// Every token in which this agent (by name or by public-key string) appears in the chain.
    Agent,
    /// Every token minted for this task id.
    Task,
}

impl RevocationKind {
    /// All kinds, in wire order.
    pub const ALL: [RevocationKind; 4] = [
        RevocationKind::TokenId,
        RevocationKind::Principal,
        RevocationKind::Agent,
        RevocationKind::Task,
    ];

    /// The wire name (`token_id`, `principal`, `agent`, `task`).
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationKind::TokenId => "token_id",
            RevocationKind::Principal => "principal",
            RevocationKind::Agent => "agent",
            RevocationKind::Task => "task",
        }
    }

    /// Whether a revocation of this kind may later be lifted.
    pub fn is_liftable(self) -> bool {
        matches!(self, RevocationKind::Principal | RevocationKind::Agent)
    }
}

impl fmt::Display for RevocationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A revocation kind that is not one of `token_id`, `principal`, `agent`,
/// `task`: the name as given, cut to 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown revocation kind {0:?} (expected token_id, principal, agent or task)")]
pub struct UnknownKind(pub String);

impl FromStr for RevocationKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, UnknownKind> {
        RevocationKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownKind(s.chars().take(64).collect()))
    }
}
