//! The delegation chain: who holds the authority, rebuilt from signatures.
//!
//! The first agent is named by the authority block (signed by the issuer).
//! A *hop* hands the authority on: it is a Biscuit third-party block signed
//! by the current holder's agent key, stating `hop(Name, Key)` for the next
//! holder. The chain is rebuilt from the blocks' signing keys alone: hop `k`
//! counts only if the key that signed it is the key the previous link named.
//! A `hop` fact in a block without that signature is never believed; it
//! breaks the chain.

use biscuit_parser::builder::Term;

use crate::blocks::BlockContents;
use crate::inspect::AuthorityClaims;
use crate::keys::PublicKey;
use crate::vocab;

/// One agent in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The agent's name.
    pub name: String,
    /// The agent's key; `None` for the first agent of a bearer mandate.
    pub key: Option<PublicKey>,
    /// The block that named this agent (0: the authority block).
    pub block: usize,
    /// `key` as `ed25519/<hex>` (empty for none), formatted once: revocation
    /// checks compare it on every call.
    key_text: String,
}

impl Link {
    /// A link naming `name` with `key`, stated in block `block`.
    pub fn new(name: String, key: Option<PublicKey>, block: usize) -> Link {
        let key_text = key.map(|k| k.to_string()).unwrap_or_default();
        Link {
            name,
            key,
            block,
            key_text,
        }
    }

    /// The key as `ed25519/<hex>`, or `""` for a bearer first agent.
    pub fn key_text(&self) -> &str {
        &self.key_text
    }
}

/// Who wrote a block, as far as signatures prove it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Author {
    /// The authority block, signed by the issuer's root key.
    Issuer,
    /// A block signed by this agent's key (a hop or a signed restriction).
    Agent(String),
    /// A block with no agent signature, appended while this agent held the
    /// authority; anyone holding the token bytes could have written it.
    Unsigned {
        /// The holder at the time.
        holder: String,
    },
}

impl std::fmt::Display for Author {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Author::Issuer => f.write_str("the issuer"),
            Author::Agent(name) => write!(f, "agent {name}"),
            Author::Unsigned { holder } => {
                write!(
                    f,
                    "an unsigned block appended while {holder} held the token"
                )
            }
        }
    }
}

/// Why the chain could not be rebuilt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// A block signed by a key that is not the current holder's.
    #[error("block {block} is signed by {signer}, not by the holder {holder}")]
    WrongSigner {
        /// The block.
        block: usize,
        /// The key that signed it.
        signer: String,
        /// The agent holding the authority before that block.
        holder: String,
    },
    /// A block states a hop without the holder's signature.
    #[error(
        "block {block} names agent {claimed} as the next holder without the holder's signature"
    )]
    UnsignedHop {
        /// The block.
        block: usize,
        /// The name the block claims.
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
    /// A block could not be read back.
    #[error("block {block} cannot be read: {reason}")]
    Unreadable {
        /// The block.
        block: usize,
        /// What failed.
        reason: String,
    },
}

/// The rebuilt chain and each block's author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// From the first agent to the acting agent.
    pub links: Vec<Link>,
    /// The author of each block, authority first.
    pub authors: Vec<Author>,
}

impl Chain {
    /// The agent holding the authority now.
    pub fn holder(&self) -> &Link {
        // `links` always holds the first agent: `rebuild` refuses a token
        // without one.
        &self.links[self.links.len() - 1]
    }

    /// Number of hops from the first agent.
    pub fn depth(&self) -> u32 {
        u32::try_from(self.links.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }

    /// The agents' names, first to acting.
    pub fn names(&self) -> Vec<String> {
        self.links.iter().map(|l| l.name.clone()).collect()
    }
}

/// Reads the authority block's claims and rebuilds the chain from blocks
/// parsed once ([`crate::blocks::read_all`]).
pub(crate) fn read(blocks: &[BlockContents]) -> (AuthorityClaims, Result<Chain, ChainError>) {
    match blocks.first() {
        Some(authority) => {
            let claims = AuthorityClaims::from_facts(&authority.facts);
            let chain = rebuild(blocks, &claims);
            (claims, chain)
        }
        None => (AuthorityClaims::default(), Err(ChainError::NoAgent)),
    }
}

fn rebuild(blocks: &[BlockContents], claims: &AuthorityClaims) -> Result<Chain, ChainError> {
    let Some((name, key)) = claims.agents.first().cloned() else {
        return Err(ChainError::NoAgent);
    };
    let key = if key.is_empty() {
        None
    } else {
        match key.parse::<PublicKey>() {
            Ok(key) => Some(key),
            Err(e) => {
                return Err(ChainError::MalformedHop {
                    block: 0,
                    reason: e.to_string(),
                })
            }
        }
    };
    let mut links = vec![Link::new(name, key, 0)];
    let mut authors = vec![Author::Issuer];
    for (index, block) in blocks.iter().enumerate().skip(1) {
        let holder = links[links.len() - 1].clone();
        let signer = block.signer;
        let hops = hops_in(&block.facts);
        match signer {
            None => {
                if let Some((claimed, _)) = hops.first() {
                    return Err(ChainError::UnsignedHop {
                        block: index,
                        claimed: claimed.clone(),
                    });
                }
                authors.push(Author::Unsigned {
                    holder: holder.name.clone(),
                });
            }
            Some(signer) => {
                if holder.key != Some(signer) {
                    return Err(ChainError::WrongSigner {
                        block: index,
                        signer: signer.to_string(),
                        holder: holder.name.clone(),
                    });
                }
                authors.push(Author::Agent(holder.name.clone()));
                match hops.as_slice() {
                    [] => {}
                    [(name, key)] => {
                        let key = key.parse::<PublicKey>().map_err(|e| e.to_string());
                        match key {
                            Ok(key) => links.push(Link::new(name.clone(), Some(key), index)),
                            Err(reason) => {
                                return Err(ChainError::MalformedHop {
                                    block: index,
                                    reason,
                                })
                            }
                        }
                    }
                    _ => {
                        return Err(ChainError::MalformedHop {
                            block: index,
                            reason: "it names more than one next agent".into(),
                        })
                    }
                }
            }
        }
    }
    Ok(Chain { links, authors })
}

fn hops_in(facts: &[(String, Vec<Term>)]) -> Vec<(String, String)> {
    facts
        .iter()
        .filter(|(name, _)| name == vocab::HOP)
        .map(|(_, terms)| match terms.as_slice() {
            [Term::Str(name), Term::Str(key)] => (name.clone(), key.clone()),
            // A hop fact of another shape still claims a hop; report it.
            other => (format!("{other:?}"), String::new()),
        })
        .collect()
}
