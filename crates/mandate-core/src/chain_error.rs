//! Why a delegation chain could not be rebuilt from a token's blocks.

use crate::blocks::ReadError;

/// Why the chain could not be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// A block signed by a key that is not the current holder's.
    #[error("block {block} is signed by {signer}, not by the holder {holder}")]
    WrongSigner {
        /// The block.
        block: usize,
        /// The key that signed it, `ed25519/<hex>`.
        signer: String,
        /// The agent holding the authority before that block.
        holder: String,
    },
    /// A block states a hop without the holder's signature.
    #[error("block {block} names agent \"{}\" as the next holder without the holder's signature", crate::print::escape(.claimed))]
    UnsignedHop {
        /// The block.
        block: usize,
        /// The name the block claims (empty when the hop is malformed).
        claimed: String,
    },
    /// A hop block that does not name exactly one next agent with a valid key.
    #[error("block {block} is not a valid hop: {reason}")]
    MalformedHop {
        /// The block.
        block: usize,
        /// What is wrong.
        reason: String,
    },
    /// The authority block names no agent.
    #[error("the authority block names no agent")]
    NoAgent,
    /// The authority block states a vocabulary fact twice or with the wrong
    /// shape.
    #[error("the authority block is malformed: {reason}")]
    MalformedAuthority {
        /// What is wrong.
        reason: String,
    },
    /// The token's blocks could not be read.
    #[error("the token cannot be read: {0}")]
    Unreadable(#[source] ReadError),
}
