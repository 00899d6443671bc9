//! A token's blocks read back once: their facts, the shape of their rules
//! and checks, and who signed them.
//!
//! biscuit-auth keeps block contents private, so blocks are printed as
//! Datalog and parsed again. Names that could print ambiguously (quotes,
//! backslashes) are refused when mandates are built, so the round trip is
//! faithful for every block Mandate writes; a foreign block that does not
//! parse back makes the token unreadable, which verifiers deny.

use biscuit_parser::builder::Term;

use crate::keys::PublicKey;

/// One rule body or check query, as the predicates it joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The rule or check as written.
    pub text: String,
    /// The names of the predicates its body joins, in order.
    pub predicates: Vec<String>,
}

/// One block of a token, parsed.
#[derive(Debug, Clone, Default)]
pub struct BlockContents {
    /// Facts as (predicate name, terms).
    pub(crate) facts: Vec<(String, Vec<Term>)>,
    /// Heads of the block's rules.
    pub rule_heads: Vec<String>,
    /// Rule bodies and check queries.
    pub queries: Vec<Query>,
    /// Facts + rules + checks.
    pub statements: usize,
    /// The agent key that signed the block, for a third-party block.
    pub signer: Option<PublicKey>,
}

impl BlockContents {
    /// Parses a block printed by biscuit-auth.
    ///
    /// # Errors
    /// A description of the parse failure.
    pub(crate) fn parse(source: &str, signer: Option<PublicKey>) -> Result<BlockContents, String> {
        let parsed = biscuit_parser::parser::parse_block_source(source)
            .map_err(|_| "its Datalog does not parse back".to_string())?;
        let names = |body: &[biscuit_parser::builder::Predicate]| -> Vec<String> {
            body.iter().map(|p| p.name.clone()).collect()
        };
        let mut queries = Vec::new();
        for (text, rule) in &parsed.rules {
            queries.push(Query {
                text: text.to_string(),
                predicates: names(&rule.body),
            });
        }
        for (text, check) in &parsed.checks {
            for query in &check.queries {
                queries.push(Query {
                    text: text.to_string(),
                    predicates: names(&query.body),
                });
            }
        }
        Ok(BlockContents {
            statements: parsed.facts.len() + parsed.rules.len() + parsed.checks.len(),
            rule_heads: parsed
                .rules
                .iter()
                .map(|(_, r)| r.head.name.clone())
                .collect(),
            facts: parsed
                .facts
                .into_iter()
                .map(|(_, f)| (f.predicate.name, f.predicate.terms))
                .collect(),
            queries,
            signer,
        })
    }

    /// The names of the block's facts, one per fact.
    pub fn fact_names(&self) -> impl Iterator<Item = &str> {
        self.facts.iter().map(|(name, _)| name.as_str())
    }
}

/// Reads every block of a token: `source(i)` prints block `i`, `signer(i)`
/// is its third-party signer.
pub(crate) fn read_all(
    count: usize,
    source: impl Fn(usize) -> Result<String, biscuit_auth::error::Token>,
    signer: impl Fn(usize) -> Option<PublicKey>,
) -> Result<Vec<BlockContents>, (usize, String)> {
    (0..count)
        .map(|index| {
            let text = source(index).map_err(|e| (index, e.to_string()))?;
            BlockContents::parse(&text, signer(index)).map_err(|e| (index, e))
        })
        .collect()
}
