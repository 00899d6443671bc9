//! A static bound on the work a token's blocks can ask of the Datalog engine.
//!
//! biscuit-auth checks its time limit only between rule iterations and never
//! while it evaluates a check, so a check that joins many predicates can hold
//! a verifier for seconds whatever the run limits say — and anyone holding a
//! token can append one. Before evaluating, the verifier therefore estimates
//! how many fact visits every rule body and check query of every block after
//! the authority block could cost: biscuit scans all visible facts for each
//! predicate of a join, so a query costs about
//! `facts × predicates × Π matches(predicate)`.
//! Each visit also evaluates the query's expressions, and biscuit never
//! interrupts one query: a chain of additions concatenating a long string
//! for every visited pair held a verifier for twenty seconds. So the bytes of
//! strings a query's expressions may process are bounded too
//! ([`BYTE_BUDGET`]), and so are the collection elements they may process
//! ([`ELEMENT_BUDGET`]): a chain of `.union()` calls over sets written in
//! a block's own facts copies every element at each step, and held a
//! verifier for over a minute while visiting only a few hundred fact
//! combinations; joins binding such a collection copy it at every visit.
//! And because biscuit applies every rule before it checks its clock, the
//! rules of a token together are bounded as well ([`TOTAL_FACTOR`] times
//! each budget): hundreds of rules each within budget held a verifier for
//! seconds.
//! Tokens over a budget are denied, and so are delegated blocks with
//! closures (`.any($x -> ...)`, which iterate inside one step), regular
//! expressions ([`MAX_REGEXES`]) or more than [`MAX_LITERAL_ELEMENTS`]
//! collection elements in a query. The estimate is
//! conservative: it
//! counts the facts of every block whatever their scope, and the fact limit
//! for any predicate a rule can produce.
//!
//! The token's shape is read once per token id and cached (`cache.rs`); the
//! estimate itself uses the request's real fact counts and costs a few
//! multiplications per query.

use std::collections::{HashMap, HashSet};

use mandate_core::{vocab, BlockContents, Request};

/// Most fact visits one rule body or check query may cost (about 1.5 µs each
/// when measured, so the budget bounds one query to well under the 250 ms
/// default time limit).
pub const STEP_BUDGET: u64 = 20_000;
/// Most bytes of strings the expressions of one query may process, over all
/// the fact combinations it visits (64 MiB: tens of milliseconds). Each visit
/// evaluates every operation, and a chain of additions can concatenate
/// strings into one as long as all its operands, so the estimate is
/// `visits × operations × (additions + 1) × longest string`.
pub const BYTE_BUDGET: u64 = 64 * 1024 * 1024;
/// Most collection elements one query may process, over all the fact
/// combinations it visits (each element copy or comparison costs tens of
/// nanoseconds, so this is tens of milliseconds). Each visit evaluates every
/// operation and copies the variables bound so far, and a set operation or
/// a bound variable may hold a collection as large as every collection
/// element the token writes together (a union builds no element that was
/// not written), so the estimate is
/// `visits × (operations + predicates) × elements`.
pub const ELEMENT_BUDGET: u64 = 1_000_000;
/// Most elements of collection literals in one query of a delegated block.
pub const MAX_LITERAL_ELEMENTS: usize = 256;
/// Regular-expression matches a delegated block may use: none. biscuit
/// compiles each pattern on every evaluation and checks its time limit only
/// between iterations, so one pattern such as `(?:.{100}){200}` can hold a
/// verifier for a long time; Mandate's own restrictions never need one.
/// (The issuer's authority block and the service policy may.)
pub const MAX_REGEXES: usize = 0;

/// The rules of a token's delegated blocks together may cost this many
/// times each budget: biscuit applies every rule of every block in one
/// iteration before it checks its time limit, so many rules each within
/// budget must not add up to a stall. (Checks are not summed: biscuit
/// checks its clock after each.)
pub const TOTAL_FACTOR: u64 = 4;

/// What evaluating a query (or all of them) may cost, in each budget's unit.
#[derive(Debug, Default, Clone, Copy)]
struct Cost {
    steps: u64,
    bytes: u64,
    elements: u64,
}

impl Cost {
    fn plus(&self, other: &Cost) -> Cost {
        Cost {
            steps: self.steps.saturating_add(other.steps),
            bytes: self.bytes.saturating_add(other.bytes),
            elements: self.elements.saturating_add(other.elements),
        }
    }

    /// The first budget (times `factor`) this cost exceeds, as the rest of
    /// a sentence ("may visit N facts, more than the M accepted").
    fn over(&self, factor: u64) -> Option<String> {
        let (steps, bytes, elements) = (
            STEP_BUDGET * factor,
            BYTE_BUDGET * factor,
            ELEMENT_BUDGET * factor,
        );
        if self.steps > steps {
            Some(format!(
                "visit {} facts, more than the {steps} accepted",
                self.steps
            ))
        } else if self.elements > elements {
            Some(format!(
                "process {} collection elements, more than the {elements} accepted",
                self.elements
            ))
        } else if self.bytes > bytes {
            Some(format!(
                "process {} bytes of strings, more than the {bytes} accepted",
                self.bytes
            ))
        } else {
            None
        }
    }
}

/// Facts and rule heads a policy contributes to every evaluation.
#[derive(Debug, Clone, Default)]
pub(crate) struct FactCounts {
    pub facts: HashMap<String, u64>,
    pub heads: HashSet<String>,
}

/// What the estimate needs to know of one query of a delegated block.
#[derive(Debug)]
struct QueryCost {
    block: usize,
    text: String,
    predicates: Vec<String>,
    ops: u64,
    adds: u64,
    is_rule: bool,
}

/// What the estimate needs to know of a token.
#[derive(Debug, Default)]
pub(crate) struct Shape {
    counts: FactCounts,
    queries: Vec<QueryCost>,
    /// The longest string any block defines.
    longest_string: u64,
    /// Collection elements every block writes, together.
    collection_elements: u64,
}

impl Shape {
    pub(crate) fn read(blocks: &[BlockContents]) -> Result<Shape, String> {
        // Structural bounds (blocks, statements, nesting) were checked when
        // the blocks were read; only the cost of evaluation is judged here.
        if blocks.is_empty() {
            return Err("the token's blocks cannot be read".into());
        }
        let mut shape = Shape::default();
        for (index, block) in blocks.iter().enumerate() {
            shape.longest_string = shape.longest_string.max(block.longest_string as u64);
            shape.collection_elements = shape
                .collection_elements
                .saturating_add(block.collection_elements as u64);
            for name in block.fact_names() {
                *shape.counts.facts.entry(name.to_string()).or_default() += 1;
            }
            shape.counts.heads.extend(block.rule_heads.iter().cloned());
            // The authority block is the issuer's; only later blocks are vetted.
            if index > 0 {
                for query in &block.queries {
                    // Closures iterate collections inside one evaluation step,
                    // where biscuit never checks its time limit; delegated
                    // blocks have no use for them.
                    if query.closures > 0 {
                        return Err(format!(
                            "block {index} uses a closure (`$x -> ...`) in `{}`; delegated blocks may not",
                            query.text
                        ));
                    }
                    if query.regexes > MAX_REGEXES {
                        return Err(format!(
                            "block {index} matches a regular expression in `{}`; delegated blocks may not",
                            query.text
                        ));
                    }
                    if query.literal_elements > MAX_LITERAL_ELEMENTS {
                        return Err(format!(
                            "block {index} has {} collection elements in `{}`, more than the {MAX_LITERAL_ELEMENTS} accepted",
                            query.literal_elements, query.text
                        ));
                    }
                    shape.queries.push(QueryCost {
                        block: index,
                        text: query.text.clone(),
                        predicates: query.predicates.clone(),
                        ops: query.ops as u64,
                        adds: query.adds as u64,
                        is_rule: query.is_rule,
                    });
                }
            }
        }
        Ok(shape)
    }

    /// Checks every query of the token against the budget for `request`.
    pub(crate) fn check(
        &self,
        request: &Request,
        policy: &FactCounts,
        max_facts: u64,
    ) -> Result<(), String> {
        let attrs = request.attrs.len() as u64;
        let request_facts = |name: &str| -> u64 {
            match name {
                vocab::ATTR | vocab::ATTR_HOST => attrs,
                vocab::TIME
                | vocab::SERVICE
                | vocab::OPERATION
                | vocab::RESOURCE
                | vocab::ACTING_AGENT
                | vocab::DELEGATION_DEPTH => 1,
                _ => 0,
            }
        };
        let produced = |name: &str| self.counts.heads.contains(name) || policy.heads.contains(name);
        let cardinality = |name: &str| -> u64 {
            if produced(name) {
                return max_facts;
            }
            request_facts(name)
                + self.counts.facts.get(name).copied().unwrap_or(0)
                + policy.facts.get(name).copied().unwrap_or(0)
        };
        let mut visible: u64 = 6
            + 2 * attrs
            + self.counts.facts.values().sum::<u64>()
            + policy.facts.values().sum::<u64>();
        if !self.counts.heads.is_empty() || !policy.heads.is_empty() {
            visible = visible.saturating_add(max_facts);
        }
        // The longest string an expression can start from: the token's, the
        // request's, or a short literal of the policy.
        let longest = request
            .attrs
            .iter()
            .map(|(key, value)| {
                key.len()
                    + match value {
                        mandate_core::AttrValue::Str(text) => text.len(),
                        // An integer prints in at most 20 characters.
                        mandate_core::AttrValue::Int(_) => 20,
                    }
            })
            .chain([
                request.resource.as_str().len(),
                request.service.len(),
                request.operation.len(),
                64,
            ])
            .max()
            .unwrap_or(64) as u64;
        let longest = longest.max(self.longest_string);
        let mut rules = Cost::default();
        for query in &self.queries {
            // biscuit scans the visible facts once per predicate of the body
            // for every combination of the predicates before it: at most
            // `visible × predicates × Π matches`.
            let predicates = query.predicates.len().max(1) as u64;
            let steps = query
                .predicates
                .iter()
                .map(|name| cardinality(name).max(1))
                .fold(visible.saturating_mul(predicates), u64::saturating_mul);
            // Every visit may evaluate every operation, and copies the
            // variables bound so far (a variable bound to a collection copies
            // all of it); each operation may touch a string as long as all
            // additions can make it, or a set of as many strings as the token
            // writes elements.
            let elements = self.collection_elements.saturating_add(1);
            let per_operation = query.adds.saturating_add(1).max(elements);
            let cost = Cost {
                steps,
                bytes: steps
                    .saturating_mul(query.ops)
                    .saturating_mul(per_operation)
                    .saturating_mul(longest),
                elements: steps
                    .saturating_mul(query.ops.saturating_add(predicates))
                    .saturating_mul(self.collection_elements),
            };
            let text = || -> String { query.text.chars().take(80).collect() };
            if let Some(over) = cost.over(1) {
                return Err(format!(
                    "block {} is too costly to evaluate: `{}` may {over}",
                    query.block,
                    text()
                ));
            }
            if query.is_rule {
                rules = rules.plus(&cost);
            }
        }
        // biscuit applies every rule of every block before it looks at the
        // clock again (it does after each check), so the rules together are
        // bounded too.
        if let Some(over) = rules.over(TOTAL_FACTOR) {
            return Err(format!(
                "the token's rules are too costly to evaluate: together they may {over}"
            ));
        }
        Ok(())
    }
}
