//! A token's blocks read from their signed protobuf encoding: facts, the
//! shape of rules and checks, and who signed each block.
//!
//! This is the only place Mandate reads what a block says. It decodes the
//! same bytes biscuit-auth evaluates (`format::schema`) and resolves symbols
//! with the same tables biscuit-auth builds (the token's table for the
//! authority block and unsigned blocks; the block's own table for a
//! third-party block), so what Mandate reports is exactly what biscuit
//! decides on. It never prints a block and parses the text back.
//!
//! Everything here walks attacker-shaped data, so every walk is bounded
//! before it starts: the structural limits in [`bounds`] are checked first,
//! iteratively, and a block over any of them makes the token unreadable
//! (verifiers deny it). The only recursion left (closure bodies, nested
//! collections) is capped by those limits, far below what a 2 MiB thread
//! stack survives.

use prost::Message as _;

use biscuit_auth::format::schema;

use crate::bounds;
use crate::keys::AgentKey;
use crate::narrowing::{self, Narrowing};
use crate::print;
use crate::symbols::Symbols;
use crate::vocab::HOP;

/// A term of a fact, as far as Mandate reads it. Collections are kept one
/// level deep; anything deeper is [`Value::Nested`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A date, in seconds since the Unix epoch.
    Date(u64),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A boolean.
    Bool(bool),
    /// `null`.
    Null,
    /// A set of plain values.
    Set(Vec<Value>),
    /// A variable, an array, a map, or a collection inside a collection.
    Nested,
}

/// A fact: a predicate name and its terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// The predicate name.
    pub name: String,
    /// Its terms.
    pub terms: Vec<Value>,
}

/// One rule body or check query, as the predicates it joins and what its
/// expressions may cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The rule or check as Datalog, escaped and shortened: for messages only.
    pub text: String,
    /// The names of the predicates its body joins, in order.
    pub predicates: Vec<String>,
    /// Closures with parameters (`$x -> ...`) in its expressions: each can
    /// iterate a collection, and nested ones multiply. (`||` and `&&` are
    /// parameterless closures in biscuit and are not counted.)
    pub closures: usize,
    /// Elements of collection literals in its body and expressions.
    pub literal_elements: usize,
    /// Regular-expression matches (`.matches(...)`) in its expressions:
    /// biscuit compiles each pattern on every evaluation.
    pub regexes: usize,
    /// Operations in its expressions, closure bodies included: what one
    /// evaluation of the query's constraints costs at least.
    pub ops: usize,
    /// Additions among them: each can concatenate strings, so a chain of
    /// them builds a string as long as all its operands together.
    pub adds: usize,
    /// Whether it is a rule's body (evaluated with every other rule before
    /// biscuit looks at its clock) rather than a check's query.
    pub is_rule: bool,
}

/// One block of a token, read structurally.
#[derive(Debug, Clone, Default)]
pub struct BlockContents {
    /// The block's facts.
    pub facts: Vec<Fact>,
    /// Heads of the block's rules.
    pub rule_heads: Vec<String>,
    /// Rule bodies and check queries.
    pub queries: Vec<Query>,
    /// Each check as escaped Datalog, in block order (what a failed check
    /// reports).
    pub checks: Vec<String>,
    /// The whole block as escaped Datalog, for display only.
    pub source: String,
    /// Facts + rules + checks.
    pub statements: usize,
    /// The longest string the block defines, in bytes.
    pub longest_string: usize,
    /// Elements of every collection the block writes (in facts, rule heads
    /// and query literals, nested ones included): no set an expression
    /// builds from the block's terms, by union or otherwise, is larger than
    /// all of them together. Zero when read with [`Detail::Scope`].
    pub collection_elements: usize,
    /// The agent key that signed the block, for a third-party block.
    pub signer: Option<AgentKey>,
    /// What the block's checks narrow, for those of a recognised form
    /// (`narrowing.rs`), in block order. Empty when read with
    /// [`Detail::Structure`].
    pub(crate) narrowings: Vec<Narrowing>,
}

impl BlockContents {
    /// The names of the block's facts, one per fact.
    pub fn fact_names(&self) -> impl Iterator<Item = &str> {
        self.facts.iter().map(|f| f.name.as_str())
    }

    /// The facts named `name`.
    pub fn facts_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Fact> + 'a {
        self.facts.iter().filter(move |f| f.name == name)
    }
}

/// Why a token's blocks could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// A block exceeds one of the structural [`bounds`].
    #[error("block {block} exceeds a limit: {what}")]
    OverLimit {
        /// The block (0: the authority block).
        block: usize,
        /// Which limit, with the value found.
        what: String,
    },
    /// A block's bytes are not a Biscuit block Mandate can read.
    #[error("block {block} is malformed: {what}")]
    Malformed {
        /// The block (0: the authority block).
        block: usize,
        /// What is wrong.
        what: String,
    },
}

/// How much of a block to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Facts, signers and what checks narrow: what a delegation needs to
    /// find the holder and refuse a widening. After the authority block,
    /// only `hop` facts are kept (the others are checked to resolve, not
    /// copied). No cost shape (`queries` and `rule_heads` stay empty) and
    /// no display text.
    Scope,
    /// Facts and the shape of rules and checks: what claims, chains and
    /// cost bounds need to decide a request. No display text (`source`,
    /// `checks` and query texts stay empty), so deciding a request prints
    /// nothing, and no scope (the verifier evaluates every check).
    Structure,
    /// Everything: the structure, the scope and the escaped display text of
    /// every statement.
    Text,
}

impl ReadError {
    /// The block that could not be read (0: the authority block).
    pub fn block(&self) -> usize {
        match self {
            ReadError::OverLimit { block, .. } | ReadError::Malformed { block, .. } => *block,
        }
    }
}

/// Reads every block of a serialized token, checking the structural bounds
/// first. `token` is biscuit-auth's protobuf view of the container.
///
/// # Errors
/// [`ReadError`] naming the first block that is over a bound or malformed.
pub(crate) fn read_all(
    token: &schema::Biscuit,
    detail: Detail,
) -> Result<Vec<BlockContents>, ReadError> {
    let count = 1 + token.blocks.len();
    if count > bounds::MAX_BLOCKS {
        return Err(ReadError::OverLimit {
            block: count - 1,
            what: format!("{count} blocks, at most {}", bounds::MAX_BLOCKS),
        });
    }
    let signed = std::iter::once(&token.authority).chain(token.blocks.iter());
    let mut decoded = Vec::with_capacity(count);
    for (index, block) in signed.enumerate() {
        let proto = schema::Block::decode(&block.block[..]).map_err(|e| ReadError::Malformed {
            block: index,
            what: e.to_string(),
        })?;
        let signer = match &block.external_signature {
            None => None,
            Some(external) => Some(signer_key(index, &external.public_key)?),
        };
        check_bounds(index, &proto)?;
        decoded.push((proto, signer));
    }
    // The token's symbol table, as biscuit-auth builds it: the defaults,
    // then the symbols of the authority block and of every block without an
    // external signature, in order. A third-party block resolves against the
    // defaults and its own symbols only.
    let token_symbols: Vec<&str> = decoded
        .iter()
        .enumerate()
        .filter(|(index, (_, signer))| *index == 0 || signer.is_none())
        .flat_map(|(_, (proto, _))| proto.symbols.iter().map(String::as_str))
        .collect();
    let mut blocks = Vec::with_capacity(count);
    for (index, (proto, signer)) in decoded.iter().enumerate() {
        let own: Vec<&str>;
        let symbols = if index == 0 || signer.is_none() {
            Symbols(&token_symbols)
        } else {
            own = proto.symbols.iter().map(String::as_str).collect();
            Symbols(&own)
        };
        blocks.push(read_block(index, proto, *signer, symbols, detail)?);
    }
    Ok(blocks)
}

fn signer_key(index: usize, key: &schema::PublicKey) -> Result<AgentKey, ReadError> {
    let malformed = |what: String| ReadError::Malformed { block: index, what };
    if key.algorithm != schema::public_key::Algorithm::Ed25519 as i32 {
        return Err(malformed(
            "a block is signed with a key that is not Ed25519".into(),
        ));
    }
    // biscuit-auth verified the block's signature with this key; its bytes
    // are what the chain compares.
    AgentKey::from_slice(&key.key).map_err(|e| malformed(e.to_string()))
}

/// Checks every structural bound of one block, without recursion: nested
/// closures and collections are walked with an explicit work list.
fn check_bounds(index: usize, block: &schema::Block) -> Result<(), ReadError> {
    let limit = |what: String| ReadError::OverLimit { block: index, what };
    let over = |what: String| Err(limit(what));
    let statements = block.facts.len() + block.rules.len() + block.checks.len();
    if statements > bounds::MAX_STATEMENTS {
        return over(format!(
            "{statements} statements, at most {}",
            bounds::MAX_STATEMENTS
        ));
    }
    if block.symbols.len() > bounds::MAX_SYMBOLS {
        return over(format!(
            "{} symbols, at most {}",
            block.symbols.len(),
            bounds::MAX_SYMBOLS
        ));
    }
    if let Some(long) = block
        .symbols
        .iter()
        .find(|s| s.len() > bounds::MAX_SYMBOL_LEN)
    {
        return over(format!(
            "a {}-byte string, at most {}",
            long.len(),
            bounds::MAX_SYMBOL_LEN
        ));
    }
    let mut rules: Vec<&schema::Rule> = block.rules.iter().collect();
    for check in &block.checks {
        if check.queries.len() > bounds::MAX_QUERIES {
            return over(format!(
                "a check with {} alternatives, at most {}",
                check.queries.len(),
                bounds::MAX_QUERIES
            ));
        }
        rules.extend(check.queries.iter());
    }
    for fact in &block.facts {
        check_predicate(&fact.predicate).map_err(limit)?;
    }
    for rule in rules {
        if rule.body.len() > bounds::MAX_BODY {
            return over(format!(
                "a rule joining {} predicates, at most {}",
                rule.body.len(),
                bounds::MAX_BODY
            ));
        }
        if rule.expressions.len() > bounds::MAX_EXPRESSIONS {
            return over(format!(
                "{} expressions in one rule, at most {}",
                rule.expressions.len(),
                bounds::MAX_EXPRESSIONS
            ));
        }
        let mut elements = 0;
        for predicate in std::iter::once(&rule.head).chain(rule.body.iter()) {
            elements += check_predicate(predicate).map_err(limit)?;
        }
        for expression in &rule.expressions {
            elements += check_expression(expression).map_err(limit)?;
        }
        if elements > bounds::MAX_ELEMENTS {
            return over(format!(
                "{elements} collection elements in one rule, at most {}",
                bounds::MAX_ELEMENTS
            ));
        }
    }
    Ok(())
}

/// Checks a predicate's arity and its terms' nesting; returns the number of
/// collection elements it holds.
fn check_predicate(predicate: &schema::Predicate) -> Result<usize, String> {
    if predicate.terms.len() > bounds::MAX_TERMS {
        return Err(format!(
            "a predicate with {} terms, at most {}",
            predicate.terms.len(),
            bounds::MAX_TERMS
        ));
    }
    let mut elements = 0;
    for term in &predicate.terms {
        elements += check_term(term)?;
    }
    Ok(elements)
}

/// Checks a term's collection nesting with a work list; returns the number
/// of collection elements inside it.
fn check_term(term: &schema::Term) -> Result<usize, String> {
    use schema::term::Content;
    let mut elements = 0usize;
    let mut work: Vec<(&schema::Term, usize)> = vec![(term, 0)];
    while let Some((term, depth)) = work.pop() {
        let children: Vec<&schema::Term> = match &term.content {
            Some(Content::Set(set)) => set.set.iter().collect(),
            Some(Content::Array(array)) => array.array.iter().collect(),
            Some(Content::Map(map)) => map.entries.iter().map(|e| &e.value).collect(),
            _ => continue,
        };
        if depth + 1 > bounds::MAX_TERM_DEPTH {
            return Err(format!(
                "collections nested deeper than {}",
                bounds::MAX_TERM_DEPTH
            ));
        }
        elements += children.len();
        if elements > bounds::MAX_ELEMENTS {
            return Err(format!(
                "more than {} collection elements",
                bounds::MAX_ELEMENTS
            ));
        }
        work.extend(children.into_iter().map(|c| (c, depth + 1)));
    }
    Ok(elements)
}

/// Checks an expression's size and closure nesting with a work list;
/// returns the number of collection elements in its literals.
fn check_expression(expression: &schema::Expression) -> Result<usize, String> {
    use schema::op::Content;
    let mut ops = 0usize;
    let mut elements = 0usize;
    let mut work: Vec<(&[schema::Op], usize)> = vec![(&expression.ops, 0)];
    while let Some((list, depth)) = work.pop() {
        ops += list.len();
        if ops > bounds::MAX_OPS {
            return Err(format!(
                "an expression of more than {} operations",
                bounds::MAX_OPS
            ));
        }
        for op in list {
            match &op.content {
                Some(Content::Value(term)) => elements += check_term(term)?,
                Some(Content::Closure(closure)) => {
                    if depth + 1 > bounds::MAX_CLOSURE_DEPTH {
                        return Err(format!(
                            "closures nested deeper than {}",
                            bounds::MAX_CLOSURE_DEPTH
                        ));
                    }
                    work.push((&closure.ops, depth + 1));
                }
                _ => {}
            }
        }
    }
    Ok(elements)
}

/// Reads one block whose bounds were checked.
fn read_block(
    index: usize,
    block: &schema::Block,
    signer: Option<AgentKey>,
    symbols: Symbols<'_>,
    detail: Detail,
) -> Result<BlockContents, ReadError> {
    let malformed = |what: String| ReadError::Malformed { block: index, what };
    let name = |i: u64| {
        symbols
            .get(i)
            .map(str::to_string)
            .ok_or_else(|| malformed(format!("unknown symbol {i}")))
    };
    let mut facts = Vec::with_capacity(block.facts.len());
    for fact in &block.facts {
        // A delegation reads claims from the authority block and, after it,
        // only `hop` facts (the chain). Other facts are still checked to
        // resolve, so a block is as readable as before, but not copied.
        if detail == Detail::Scope && index > 0 && symbols.get(fact.predicate.name) != Some(HOP) {
            let resolves = symbols.get(fact.predicate.name).is_some()
                && fact.predicate.terms.iter().all(|t| resolves(t, symbols));
            if !resolves {
                return Err(malformed("a fact names an unknown symbol".into()));
            }
            continue;
        }
        let terms = fact
            .predicate
            .terms
            .iter()
            .map(|t| value(t, symbols))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| malformed("a fact names an unknown symbol".into()))?;
        facts.push(Fact {
            name: name(fact.predicate.name)?,
            terms,
        });
    }
    // Deciding a request needs no scope: the verifier evaluates every check.
    let narrowings = if detail == Detail::Structure {
        Vec::new()
    } else {
        block
            .checks
            .iter()
            .filter_map(|check| narrowing::recognise(check, symbols))
            .collect()
    };
    if detail == Detail::Scope {
        return Ok(BlockContents {
            statements: block.facts.len() + block.rules.len() + block.checks.len(),
            longest_string: block.symbols.iter().map(String::len).max().unwrap_or(0),
            facts,
            signer,
            narrowings,
            ..BlockContents::default()
        });
    }
    // With text, every statement is printed once; the block's source joins
    // them.
    let printer = (detail == Detail::Text).then(|| print::Printer::new(symbols));
    let mut source = String::new();
    if let Some(printer) = &printer {
        for fact in &block.facts {
            print::push_statement(&mut source, printer.fact(fact));
        }
    }
    let mut queries = Vec::new();
    let mut rule_heads = Vec::with_capacity(block.rules.len());
    for rule in &block.rules {
        rule_heads.push(name(rule.head.name)?);
        let text = printer.as_ref().map(|p| p.rule(rule)).unwrap_or_default();
        if printer.is_some() {
            print::push_statement(&mut source, text.clone());
        }
        queries.push(query(rule, text, true, symbols).map_err(malformed)?);
    }
    let mut checks = Vec::with_capacity(block.checks.len());
    for check in &block.checks {
        let text = printer.as_ref().map(|p| p.check(check)).unwrap_or_default();
        for rule in &check.queries {
            queries.push(query(rule, text.clone(), false, symbols).map_err(malformed)?);
        }
        if printer.is_some() {
            print::push_statement(&mut source, text.clone());
            checks.push(text);
        }
    }
    // Bounds were checked: each count is of a bounded statement.
    let mut collection_elements: usize = queries.iter().map(|q| q.literal_elements).sum();
    for predicate in block
        .facts
        .iter()
        .map(|fact| &fact.predicate)
        .chain(block.rules.iter().map(|rule| &rule.head))
    {
        collection_elements += check_predicate(predicate).map_err(malformed)?;
    }
    Ok(BlockContents {
        collection_elements,
        statements: block.facts.len() + block.rules.len() + block.checks.len(),
        longest_string: block.symbols.iter().map(String::len).max().unwrap_or(0),
        source,
        facts,
        rule_heads,
        queries,
        checks,
        signer,
        narrowings,
    })
}

/// Whether [`value`] can read `term` (every symbol it names is in the
/// table), without copying it.
fn resolves(term: &schema::Term, symbols: Symbols<'_>) -> bool {
    use schema::term::Content;
    match &term.content {
        Some(Content::String(i)) => symbols.get(*i).is_some(),
        Some(Content::Set(set)) => set.set.iter().all(|t| match &t.content {
            Some(Content::Set(_) | Content::Array(_) | Content::Map(_)) => true,
            _ => resolves(t, symbols),
        }),
        _ => true,
    }
}

/// A fact's term; `None` for a symbol the table lacks.
fn value(term: &schema::Term, symbols: Symbols<'_>) -> Option<Value> {
    use schema::term::Content;
    Some(match &term.content {
        Some(Content::String(i)) => Value::Str(symbols.get(*i)?.to_string()),
        Some(Content::Integer(n)) => Value::Int(*n),
        Some(Content::Date(d)) => Value::Date(*d),
        Some(Content::Bytes(b)) => Value::Bytes(b.clone()),
        Some(Content::Bool(b)) => Value::Bool(*b),
        Some(Content::Null(_)) => Value::Null,
        Some(Content::Set(set)) => Value::Set(
            set.set
                .iter()
                .map(|t| match &t.content {
                    Some(Content::Set(_) | Content::Array(_) | Content::Map(_)) => {
                        Some(Value::Nested)
                    }
                    _ => value(t, symbols),
                })
                .collect::<Option<_>>()?,
        ),
        Some(Content::Variable(_) | Content::Array(_) | Content::Map(_)) | None => Value::Nested,
    })
}

/// Measures one rule body or check query (bounds already checked, so the
/// walks are short).
fn query(
    rule: &schema::Rule,
    text: String,
    is_rule: bool,
    symbols: Symbols<'_>,
) -> Result<Query, String> {
    use schema::op::Content;
    use schema::op_binary::Kind;
    let mut predicates = Vec::with_capacity(rule.body.len());
    let mut literal_elements = 0;
    for predicate in &rule.body {
        let name = symbols
            .get(predicate.name)
            .ok_or_else(|| format!("unknown symbol {}", predicate.name))?;
        predicates.push(name.to_string());
        for term in &predicate.terms {
            literal_elements += check_term(term)?;
        }
    }
    let (mut closures, mut regexes, mut count, mut adds) = (0, 0, 0, 0);
    let mut work: Vec<&[schema::Op]> = rule.expressions.iter().map(|e| &e.ops[..]).collect();
    while let Some(ops) = work.pop() {
        count += ops.len();
        for op in ops {
            match &op.content {
                Some(Content::Value(term)) => literal_elements += check_term(term)?,
                Some(Content::Closure(closure)) => {
                    closures += usize::from(!closure.params.is_empty());
                    work.push(&closure.ops);
                }
                Some(Content::Binary(binary)) if binary.kind == Kind::Regex as i32 => regexes += 1,
                Some(Content::Binary(binary)) if binary.kind == Kind::Add as i32 => adds += 1,
                _ => {}
            }
        }
    }
    Ok(Query {
        text,
        predicates,
        closures,
        literal_elements,
        regexes,
        ops: count,
        adds,
        is_rule,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::symbols::{DEFAULT_SYMBOLS, SYMBOL_OFFSET};

    use biscuit_auth::builder::{self as b, BlockBuilder};

    fn root_token(block: BlockBuilder) -> biscuit_auth::Biscuit {
        let root = biscuit_auth::KeyPair::new();
        biscuit_auth::Biscuit::builder()
            .merge(block)
            .build(&root)
            .unwrap()
    }

    fn read(token: &biscuit_auth::Biscuit) -> Result<Vec<BlockContents>, ReadError> {
        read_all(&token.container().to_proto(), Detail::Text)
    }

    #[test]
    fn strings_read_back_exactly_and_print_escaped() {
        let hostile = r#"x"); principal("alice"); //"#;
        let token = root_token(
            BlockBuilder::new()
                .fact(b::fact("principal", &[b::string("bob")]))
                .unwrap()
                .fact(b::fact("note", &[b::string(hostile)]))
                .unwrap(),
        );
        let blocks = read(&token).unwrap();
        let facts = &blocks[0].facts;
        assert_eq!(facts.len(), 2);
        assert_eq!(facts[1].terms, vec![Value::Str(hostile.into())]);
        assert_eq!(blocks[0].facts_named("principal").count(), 1);
        assert!(
            blocks[0]
                .source
                .contains(r#"note("x\"); principal(\"alice\"); //");"#),
            "{}",
            blocks[0].source
        );
    }

    #[test]
    fn a_third_party_block_resolves_its_own_symbols() {
        let token = root_token(
            BlockBuilder::new()
                .fact(b::fact("principal", &[b::string("bob")]))
                .unwrap(),
        );
        let agent = biscuit_auth::KeyPair::new();
        let block = BlockBuilder::new()
            .fact(b::fact("hop", &[b::string("next"), b::bytes(&[7; 32])]))
            .unwrap();
        let request = token.third_party_request().unwrap();
        let signed = request.create_block(&agent.private(), block).unwrap();
        let token = token.append_third_party(agent.public(), signed).unwrap();
        let blocks = read(&token).unwrap();
        assert_eq!(blocks[1].facts[0].name, "hop");
        assert_eq!(
            blocks[1].facts[0].terms,
            vec![Value::Str("next".into()), Value::Bytes(vec![7; 32])]
        );
        assert_eq!(
            blocks[1].signer.map(|k| k.as_bytes().to_vec()),
            Some(agent.public().to_bytes())
        );
        assert_eq!(blocks[0].signer, None);
    }

    #[test]
    fn blocks_over_a_bound_are_refused_before_they_are_read() {
        let over = |block: BlockBuilder| match read(&root_token(block)) {
            Err(ReadError::OverLimit { block: 0, what }) => what,
            other => panic!("expected a bound to refuse it, got {other:?}"),
        };
        let mut many = BlockBuilder::new();
        for i in 0..=bounds::MAX_STATEMENTS {
            many = many.fact(b::fact("f", &[b::int(i as i64)])).unwrap();
        }
        assert!(over(many).contains("statements"));

        let mut ops = vec![b::Op::Value(b::Term::Bool(true))];
        ops.extend((0..bounds::MAX_OPS).map(|_| b::Op::Unary(b::Unary::Parens)));
        let check = b::Check {
            queries: vec![b::Rule::new(
                b::pred::<b::Term>("q", &[]),
                vec![],
                vec![b::Expression { ops }],
                vec![],
            )],
            kind: b::CheckKind::One,
        };
        assert!(over(BlockBuilder::new().check(check).unwrap()).contains("operations"));

        let mut term = b::int(1);
        for _ in 0..=bounds::MAX_TERM_DEPTH {
            term = b::Term::Array(vec![term]);
        }
        let nested = BlockBuilder::new().fact(b::fact("f", &[term])).unwrap();
        assert!(over(nested).contains("nested deeper"));

        let long = "x".repeat(bounds::MAX_SYMBOL_LEN + 1);
        let block = BlockBuilder::new()
            .fact(b::fact("f", &[b::string(&long)]))
            .unwrap();
        assert!(over(block).contains("-byte string"));
    }

    #[test]
    fn a_delegation_read_keeps_claims_and_hops_and_still_refuses_unknown_symbols() {
        use prost::Message as _;
        let token = root_token(
            BlockBuilder::new()
                .fact(b::fact("principal", &[b::string("bob")]))
                .unwrap()
                .fact(b::fact("note", &[b::string("kept")]))
                .unwrap(),
        )
        .append(
            BlockBuilder::new()
                .fact(b::fact("note", &[b::string("skipped")]))
                .unwrap()
                .fact(b::fact("hop", &[b::string("next"), b::bytes(&[7; 32])]))
                .unwrap(),
        )
        .unwrap();
        let mut proto = token.container().to_proto();
        let blocks = read_all(&proto, Detail::Scope).unwrap();
        // The authority block keeps every fact (its claims); later blocks
        // keep only `hop` facts, which is all a delegation reads there.
        let names: Vec<&str> = blocks[0].fact_names().collect();
        assert_eq!(names, ["principal", "note"]);
        let names: Vec<&str> = blocks[1].fact_names().collect();
        assert_eq!(names, ["hop"]);
        // A skipped fact naming a symbol no table has still makes the block
        // unreadable, as it does when every fact is read.
        let mut block = schema::Block::decode(&proto.blocks[0].block[..]).unwrap();
        block.facts[0].predicate.terms[0] = schema::Term {
            content: Some(schema::term::Content::String(SYMBOL_OFFSET + 999)),
        };
        proto.blocks[0].block = block.encode_to_vec();
        for detail in [Detail::Scope, Detail::Structure] {
            assert!(matches!(
                read_all(&proto, detail),
                Err(ReadError::Malformed { block: 1, .. })
            ));
        }
    }

    #[test]
    fn default_symbols_match_biscuit() {
        // biscuit-auth interns the default symbols without adding them to a
        // block's table: a block naming only defaults defines no symbols,
        // and its fact reads back with the default names.
        let root = biscuit_auth::KeyPair::new();
        let mut builder = biscuit_auth::Biscuit::builder();
        for name in DEFAULT_SYMBOLS {
            builder = builder
                .fact(biscuit_auth::builder::fact(
                    name,
                    &[biscuit_auth::builder::string(name)],
                ))
                .unwrap();
        }
        let token = builder.build(&root).unwrap();
        let proto = token.container().to_proto();
        let blocks = read_all(&proto, Detail::Text).unwrap();
        let names: Vec<&str> = blocks[0].fact_names().collect();
        assert_eq!(names, DEFAULT_SYMBOLS);
        assert_eq!(token.block_symbols(0).unwrap(), Vec::<String>::new());
        for fact in &blocks[0].facts {
            assert_eq!(fact.terms, vec![Value::Str(fact.name.clone())]);
        }
    }
}
