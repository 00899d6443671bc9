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

/// One rule body or check query, as the predicates it joins and the size of
/// its expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The start of the rule or check as written (at most 80 characters).
    pub text: String,
    /// The names of the predicates its body joins, in order.
    pub predicates: Vec<String>,
    /// Closures with parameters (`$x -> ...`) in its expressions: each can
    /// iterate a collection, and nested ones multiply. (`||` and `&&` are
    /// parameterless closures in biscuit and are not counted.)
    pub closures: usize,
    /// Elements of collection literals (sets, arrays, maps) in its
    /// expressions.
    pub literal_elements: usize,
}

/// Measures the expressions of a rule body: (closures with parameters,
/// collection-literal elements).
fn expression_cost(rule: &biscuit_parser::builder::Rule) -> (usize, usize) {
    use biscuit_parser::builder::Op;
    fn term_size(term: &Term) -> usize {
        match term {
            Term::Set(items) => items.len() + items.iter().map(term_size).sum::<usize>(),
            Term::Array(items) => items.len() + items.iter().map(term_size).sum::<usize>(),
            Term::Map(items) => items.len() + items.values().map(term_size).sum::<usize>(),
            _ => 0,
        }
    }
    fn walk(ops: &[Op], acc: &mut (usize, usize)) {
        for op in ops {
            match op {
                Op::Value(term) => acc.1 += term_size(term),
                // `a || b` and `a && b` are parameterless closures (lazy
                // evaluation); only closures with parameters iterate.
                Op::Closure(params, inner) => {
                    acc.0 += usize::from(!params.is_empty());
                    walk(inner, acc);
                }
                Op::Unary(_) | Op::Binary(_) => {}
            }
        }
    }
    let mut acc = (0, 0);
    for expression in &rule.expressions {
        walk(&expression.ops, &mut acc);
    }
    for predicate in &rule.body {
        acc.1 += predicate.terms.iter().map(term_size).sum::<usize>();
    }
    acc
}

fn query(text: &str, rule: &biscuit_parser::builder::Rule) -> Query {
    let (closures, literal_elements) = expression_cost(rule);
    Query {
        text: text.chars().take(80).collect(),
        predicates: rule.body.iter().map(|p| p.name.clone()).collect(),
        closures,
        literal_elements,
    }
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
        let mut queries = Vec::new();
        for (text, rule) in &parsed.rules {
            queries.push(query(text, rule));
        }
        for (text, check) in &parsed.checks {
            for q in &check.queries {
                queries.push(query(text, q));
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
