//! The delegation chain: who holds the authority, rebuilt from signatures.
//!
//! The first agent is named by the authority block (signed by the issuer).
//! A *hop* hands the authority on: it is a Biscuit third-party block signed
//! by the current holder's agent key, stating `hop(Name, Key)` for the next
//! holder. The chain is rebuilt from the blocks' signing keys alone: hop `k`
//! counts only if the key that signed it is the key the previous link named.
//! A `hop` fact in a block without that signature is never believed; it
//! breaks the chain.

use crate::authority::{agent_key, AuthorityClaims};
use crate::blocks::{BlockContents, Fact, Value};
pub use crate::chain_error::ChainError;
use crate::keys::AgentKey;
use crate::name::NameKind;
use crate::vocab;

/// One agent in the chain.
#[derive(Debug, Clone)]
pub struct Link {
    /// The agent's name.
    pub name: String,
    /// The agent's key; `None` for the first agent of a bearer mandate.
    pub key: Option<AgentKey>,
    /// The block that named this agent (0: the authority block).
    pub block: usize,
    /// `key` as `ed25519/<hex>` (empty for none), formatted at most once,
    /// on first use: revocation checks compare it on every call, while a
    /// delegation never needs it.
    key_text: std::sync::OnceLock<String>,
}

impl Link {
    /// A link naming `name` with `key`, stated in block `block`.
    pub fn new(name: String, key: Option<AgentKey>, block: usize) -> Link {
        Link {
            name,
            key,
            block,
            key_text: std::sync::OnceLock::new(),
        }
    }

    /// The key as `ed25519/<hex>`, or `""` for a bearer first agent.
    pub fn key_text(&self) -> &str {
        self.key_text
            .get_or_init(|| self.key.map(|k| k.to_string()).unwrap_or_default())
    }
}

// Equality ignores the cached key text, which is a function of the key.
impl PartialEq for Link {
    fn eq(&self, other: &Link) -> bool {
        self.name == other.name && self.key == other.key && self.block == other.block
    }
}

impl Eq for Link {}

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
            Author::Agent(name) => write!(f, "agent {}", crate::print::escape(name)),
            Author::Unsigned { holder } => {
                write!(
                    f,
                    "an unsigned block appended while {} held the token",
                    crate::print::escape(holder)
                )
            }
        }
    }
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
/// read once ([`crate::blocks`]).
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
    if let Some(reason) = &claims.malformed {
        return Err(ChainError::MalformedAuthority {
            reason: reason.clone(),
        });
    }
    let Some((name, key)) = claims.agents.first() else {
        return Err(ChainError::NoAgent);
    };
    // Names are compared byte for byte by revocation; a spelling the issuer
    // would never write (padding, another case, a confusable script) could
    // slip past a revocation of the canonical one, so it is not believed.
    let names = [
        (
            "principal",
            NameKind::Principal,
            claims.principal.as_deref(),
        ),
        ("task", NameKind::Task, claims.task.as_deref()),
        ("agent", NameKind::Agent, Some(name.as_str())),
    ];
    for (what, kind, value) in names {
        if let Some(problem) = value.and_then(|v| crate::name::problem(kind, v)) {
            return Err(ChainError::MalformedAuthority {
                reason: format!("the {what} name is not canonical: {problem}"),
            });
        }
    }
    let key = key
        .clone()
        .map_err(|reason| ChainError::MalformedHop { block: 0, reason })?;
    let mut links = vec![Link::new(name.clone(), key, 0)];
    let mut authors = vec![Author::Issuer];
    for (index, block) in blocks.iter().enumerate().skip(1) {
        let holder = &links[links.len() - 1];
        let hops: Vec<&Fact> = block.facts_named(vocab::HOP).collect();
        let Some(signer) = block.signer else {
            if let Some(hop) = hops.first() {
                let claimed = match hop.terms.first() {
                    Some(Value::Str(name)) => name.clone(),
                    _ => String::new(),
                };
                return Err(ChainError::UnsignedHop {
                    block: index,
                    claimed,
                });
            }
            authors.push(Author::Unsigned {
                holder: holder.name.clone(),
            });
            continue;
        };
        // The block's external signature verified against `signer`; it
        // counts only if `signer` is the key the previous link named.
        if holder.key != Some(signer) {
            return Err(ChainError::WrongSigner {
                block: index,
                signer: signer.to_string(),
                holder: holder.name.clone(),
            });
        }
        authors.push(Author::Agent(holder.name.clone()));
        let malformed = |reason: String| ChainError::MalformedHop {
            block: index,
            reason,
        };
        match hops.as_slice() {
            [] => {}
            [hop] => match hop.terms.as_slice() {
                [Value::Str(name), _] if !crate::name::is_canonical(NameKind::Agent, name) => {
                    return Err(malformed(format!(
                        "the next agent's name \"{}\" is not canonical",
                        crate::print::escape(name)
                    )))
                }
                [Value::Str(name), key] => match agent_key(key).map_err(malformed)? {
                    Some(key) => links.push(Link::new(name.clone(), Some(key), index)),
                    None => return Err(malformed("the next agent has no key".into())),
                },
                _ => return Err(malformed("`hop` is not (name, key bytes)".into())),
            },
            _ => return Err(malformed("it names more than one next agent".into())),
        }
    }
    Ok(Chain { links, authors })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::blocks::{read_all, Detail};
    use biscuit_auth::builder::{self as b, BlockBuilder};
    use biscuit_auth::{Biscuit, KeyPair};

    fn key_bytes(key: &KeyPair) -> Vec<u8> {
        key.public().to_bytes()
    }

    /// A token for bob whose first agent `a` holds `first`, plus `extra`
    /// authority facts.
    fn minted(first: &KeyPair, extra: &[b::Fact]) -> Biscuit {
        let mut block = BlockBuilder::new()
            .fact(b::fact("principal", &[b::string("bob")]))
            .unwrap()
            .fact(b::fact("task", &[b::string("t")]))
            .unwrap()
            .fact(b::fact(
                "agent",
                &[b::string("a"), b::bytes(&key_bytes(first))],
            ))
            .unwrap();
        for fact in extra {
            block = block.fact(fact.clone()).unwrap();
        }
        Biscuit::builder()
            .merge(block)
            .build(&KeyPair::new())
            .unwrap()
    }

    fn hop(name: &str, to: &KeyPair) -> b::Fact {
        b::fact("hop", &[b::string(name), b::bytes(&key_bytes(to))])
    }

    fn signed(token: &Biscuit, by: &KeyPair, facts: &[b::Fact]) -> Biscuit {
        let mut block = BlockBuilder::new();
        for fact in facts {
            block = block.fact(fact.clone()).unwrap();
        }
        let request = token.third_party_request().unwrap();
        let made = request.create_block(&by.private(), block).unwrap();
        token.append_third_party(by.public(), made).unwrap()
    }

    fn chain_of(token: &Biscuit) -> Result<Chain, ChainError> {
        let blocks = read_all(&token.container().to_proto(), Detail::Structure).unwrap();
        read(&blocks).1
    }

    #[test]
    fn a_hop_signed_by_the_holder_extends_the_chain() {
        let (a, b_key) = (KeyPair::new(), KeyPair::new());
        let token = signed(&minted(&a, &[]), &a, &[hop("b", &b_key)]);
        let chain = chain_of(&token).unwrap();
        assert_eq!(chain.names(), vec!["a", "b"]);
        assert_eq!(chain.depth(), 1);
        assert_eq!(
            chain.holder().key.map(|k| k.as_bytes().to_vec()),
            Some(key_bytes(&b_key))
        );
        assert_eq!(
            chain.authors,
            vec![Author::Issuer, Author::Agent("a".into())]
        );
    }

    #[test]
    fn a_hop_signed_by_another_key_breaks_the_chain() {
        let (a, b_key, mallory) = (KeyPair::new(), KeyPair::new(), KeyPair::new());
        let token = signed(&minted(&a, &[]), &mallory, &[hop("b", &b_key)]);
        assert!(matches!(
            chain_of(&token),
            Err(ChainError::WrongSigner { block: 1, ref holder, .. }) if holder == "a"
        ));
    }

    #[test]
    fn an_unsigned_hop_breaks_the_chain() {
        let (a, thief) = (KeyPair::new(), KeyPair::new());
        let token = minted(&a, &[])
            .append(BlockBuilder::new().fact(hop("thief", &thief)).unwrap())
            .unwrap();
        assert_eq!(
            chain_of(&token),
            Err(ChainError::UnsignedHop {
                block: 1,
                claimed: "thief".into()
            })
        );
    }

    #[test]
    fn malformed_hops_break_the_chain() {
        let (a, b_key, c_key) = (KeyPair::new(), KeyPair::new(), KeyPair::new());
        let two = signed(&minted(&a, &[]), &a, &[hop("b", &b_key), hop("c", &c_key)]);
        assert!(matches!(
            chain_of(&two),
            Err(ChainError::MalformedHop { block: 1, .. })
        ));
        let padded = signed(&minted(&a, &[]), &a, &[hop("b ", &b_key)]);
        assert!(matches!(
            chain_of(&padded),
            Err(ChainError::MalformedHop { block: 1, .. })
        ));
        let short = b::fact("hop", &[b::string("b"), b::bytes(&[1, 2, 3])]);
        let short = signed(&minted(&a, &[]), &a, &[short]);
        assert!(matches!(
            chain_of(&short),
            Err(ChainError::MalformedHop { block: 1, .. })
        ));
    }

    #[test]
    fn an_authority_block_stating_a_claim_twice_is_malformed() {
        let a = KeyPair::new();
        let twice = minted(&a, &[b::fact("principal", &[b::string("alice")])]);
        assert!(matches!(
            chain_of(&twice),
            Err(ChainError::MalformedAuthority { ref reason }) if reason.contains("principal")
        ));
        let once = minted(&a, &[]);
        let blocks = read_all(&once.container().to_proto(), Detail::Structure).unwrap();
        assert!(read(&blocks).1.is_ok());
    }
}
