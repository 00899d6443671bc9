//! A small grammar of hostile Biscuit blocks, and the properties every block a
//! token holder appends must keep, shared by the property tests
//! (`tests/properties.rs`, through proptest strategies) and the fuzz targets
//! (`fuzz/fuzz_targets/appended_block.rs`, which derives `Arbitrary` for the
//! same types under cargo-fuzz's `fuzzing` cfg).
//!
//! The grammar builds blocks with biscuit-auth's public builder types only,
//! never through Datalog text, so it can express what the parser would refuse
//! and what the printer would mangle: strings with quotes, backslashes and
//! comment markers, predicate names that are not identifiers, expression
//! stacks that are malformed, and well-formed expressions nested hundreds of
//! levels deep. Generation is flat (depths are numbers, not recursive types),
//! so neither generator needs a deep stack; only the code under test does.
//! This module must never assert anything about *how* a block is refused:
//! only that a refusal is an error or a denial, and that no block changes
//! what the verifier reports about the mandate it was appended to.

#![allow(dead_code)] // reason: each includer uses a different part.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use biscuit_auth::builder::{Binary, Unary};
use biscuit_auth::builder::{
    BlockBuilder, Check, CheckKind, Expression, Fact, MapKey, Op, Predicate, Rule, Scope, Term,
};
use biscuit_auth::Biscuit;
use mandate_core::{
    delegate, inspect, KeySet, Mandate, Proof, Request, ResourcePath, Restrictions, RootKey,
    SecretKey, UnverifiedMandate,
};
use mandate_issuer::{mint, MintRequest};
use mandate_verifier::{Decision, Verifier};

/// Strings found to break the print→parse round trip, or to cost a lot.
pub const HOSTILE_STRINGS: &[&str] = &[
    r#"alice"); task("other"#,
    r#"x"); /*"#,
    r#"*/ check if true; //"#,
    "\\",
    "\"",
    "a\\\"b",
    "ends in a backslash\\",
    "\n",
    "line\nprincipal(\"mallory\");",
    r#"principal("mallory")"#,
    r#""), hop("thief", "ed25519/00"#,
    "/*",
    "*/",
    "//",
    "(?:.{100}){200}",
    "",
    "é\u{0}\u{202e}",
    "$x",
    "{param}",
];

/// Regular expressions for `matches`: costly, invalid, or plain.
pub const PATTERNS: &[&str] = &[
    "(?:.{100}){200}",
    "(?:(?:a{50}){50}){50}",
    "(a+)+$",
    "[",
    "^a*$",
    ".*",
    "\\",
];

/// Predicate names: Mandate's vocabulary, a few free ones, and (through
/// [`NameAst::Free`]) anything at all.
pub const NAMES: &[&str] = &[
    "principal",
    "agent",
    "task",
    "hop",
    "right",
    "expires_at",
    "issued_at",
    "time",
    "service",
    "operation",
    "resource",
    "attr",
    "acting_agent",
    "delegation_depth",
    "restricts",
    "query",
    "f",
];

/// The deepest nesting the generators ask for. The crash class of the
/// findings starts at a few hundred levels.
pub const MAX_DEPTH: u16 = 2_000;

/// A string term.
#[derive(Debug, Clone)]
#[cfg_attr(fuzzing, derive(arbitrary::Arbitrary))]
pub enum StrAst {
    /// One of [`HOSTILE_STRINGS`].
    Hostile(u8),
    /// Any text.
    Text(String),
    /// One of [`HOSTILE_STRINGS`] repeated (long strings).
    Repeat { unit: u8, times: u16 },
}

/// A term that holds no other term.
#[derive(Debug, Clone)]
#[cfg_attr(fuzzing, derive(arbitrary::Arbitrary))]
pub enum LeafAst {
    Int(i64),
    Str(StrAst),
    Date(u64),
    Bytes(Vec<u8>),
    Bool(bool),
    Null,
    /// `$v0` .. `$v3`.
    Var(u8),
}

/// A map key.
#[derive(Debug, Clone)]
#[cfg_attr(fuzzing, derive(arbitrary::Arbitrary))]
pub enum KeyAst {
    Int(i64),
    Str(StrAst),
}

/// A term, with nested collections.
#[derive(Debug, Clone)]
#[cfg_attr(fuzzing, derive(arbitrary::Arbitrary))]
pub enum TermAst {
    Leaf(LeafAst),
    Set(Vec<LeafAst>),
    Array(Vec<LeafAst>),
    Map(Vec<(KeyAst, LeafAst)>),
    /// `leaf` wrapped `depth` times in sets (0), arrays (1) or maps (2).
    Nested {
        kind: u8,
        depth: u16,
        leaf: LeafAst,
    },
}

/// An expression operation that holds no closure.
#[derive(Debug, Clone)]
#[cfg_attr(fuzzing, derive(arbitrary::Arbitrary))]
pub enum FlatOpAst {
    Value(TermAst),
    Unary(u8),
    Binary(u8),
}

/// One step of an expression, in biscuit's stack (postfix) order.
#[derive(Debug, Clone)]
#[cfg_attr(fuzzing, derive(arbitrary::Arbitrary))]
pub enum OpAst {
    Flat(FlatOpAst),
    /// `$p -> body` (then usually `.any` or `.all`).
    Closure {
        params: Vec<u8>,
        body: Vec<FlatOpAst>,
    },
    /// A well-formed value nested `depth` deep; `shape` picks how
    /// (see [`deep_ops`]).
    Deep {
        shape: u8,
        depth: u16,
    },
    /// `subject.matches(pattern)`, with `pattern` from [`PATTERNS`] or any
    /// string.
    Regex {
        subject: StrAst,
        pattern: Result<u8, StrAst>,
    },
}

/// An expression: a list of operations.
#[derive(Debug, Clone)]
#[cfg_attr(fuzzing, derive(arbitrary::Arbitrary))]
pub struct ExprAst {
    pub ops: Vec<OpAst>,
}

/// A predicate name.
#[derive(Debug, Clone)]
#[cfg_attr(fuzzing, derive(arbitrary::Arbitrary))]
pub enum NameAst {
    /// One of [`NAMES`].
    Known(u8),
    /// Anything, including text that is not an identifier.
    Free(StrAst),
}

/// A predicate.
#[derive(Debug, Clone)]
#[cfg_attr(fuzzing, derive(arbitrary::Arbitrary))]
pub struct PredAst {
    pub name: NameAst,
    pub terms: Vec<TermAst>,
}

/// A rule body, with its expressions and `trusting` scopes
/// (0 = authority, 1 = previous, other = the holder's key).
#[derive(Debug, Clone)]
#[cfg_attr(fuzzing, derive(arbitrary::Arbitrary))]
pub struct BodyAst {
    pub preds: Vec<PredAst>,
    pub exprs: Vec<ExprAst>,
    pub scopes: Vec<u8>,
}

/// A rule.
#[derive(Debug, Clone)]
#[cfg_attr(fuzzing, derive(arbitrary::Arbitrary))]
pub struct RuleAst {
    pub head: PredAst,
    pub body: BodyAst,
}

/// A check: `check if` (0), `check all` (1) or `reject if` (2), with its
/// alternative queries.
#[derive(Debug, Clone)]
#[cfg_attr(fuzzing, derive(arbitrary::Arbitrary))]
pub struct CheckAst {
    pub kind: u8,
    pub queries: Vec<BodyAst>,
}

/// A block.
#[derive(Debug, Clone)]
#[cfg_attr(fuzzing, derive(arbitrary::Arbitrary))]
pub struct BlockAst {
    pub facts: Vec<PredAst>,
    pub rules: Vec<RuleAst>,
    pub checks: Vec<CheckAst>,
    pub context: Option<StrAst>,
}

/// A block and how it is appended.
#[derive(Debug, Clone)]
#[cfg_attr(fuzzing, derive(arbitrary::Arbitrary))]
pub struct Appended {
    pub block: BlockAst,
    /// Signed by the holder's key (a third-party block) or not.
    pub signed: bool,
}

fn pick<T: Clone>(items: &[T], i: impl Into<usize>) -> T {
    items[i.into() % items.len()].clone()
}

impl StrAst {
    pub fn text(&self) -> String {
        match self {
            StrAst::Hostile(i) => pick(HOSTILE_STRINGS, *i).to_string(),
            StrAst::Text(s) => s.clone(),
            // Bounded so a token stays under the size limit often enough
            // for the interesting paths to run.
            StrAst::Repeat { unit, times } => {
                pick(HOSTILE_STRINGS, *unit).repeat(usize::from(*times % 4_096))
            }
        }
    }
}

impl LeafAst {
    fn term(&self) -> Term {
        match self {
            LeafAst::Int(n) => Term::Integer(*n),
            LeafAst::Str(s) => Term::Str(s.text()),
            LeafAst::Date(d) => Term::Date(*d),
            LeafAst::Bytes(b) => Term::Bytes(b.clone()),
            LeafAst::Bool(b) => Term::Bool(*b),
            LeafAst::Null => Term::Null,
            LeafAst::Var(v) => Term::Variable(format!("v{}", v % 4)),
        }
    }
}

impl KeyAst {
    fn key(&self) -> MapKey {
        match self {
            KeyAst::Int(n) => MapKey::Integer(*n),
            KeyAst::Str(s) => MapKey::Str(s.text()),
        }
    }
}

/// The deepest nesting a fuzzed input asks for. Building a block costs
/// biscuit-auth's encoder time quadratic in its depth (each level measures
/// its children again), which at [`MAX_DEPTH`] was most of every input's
/// time; anything past Mandate's own bounds (256 operations, 8 closures,
/// 4 collections) is refused by the same checks at 320 levels as at 2,000,
/// which the property tests keep covering.
#[cfg(fuzzing)]
const GENERATED_DEPTH: u16 = 320;
#[cfg(not(fuzzing))]
const GENERATED_DEPTH: u16 = MAX_DEPTH;

fn depth(d: u16) -> usize {
    usize::from(d % (GENERATED_DEPTH + 1))
}

impl TermAst {
    pub fn term(&self) -> Term {
        match self {
            TermAst::Leaf(l) => l.term(),
            TermAst::Set(ls) => Term::Set(ls.iter().map(LeafAst::term).collect()),
            TermAst::Array(ls) => Term::Array(ls.iter().map(LeafAst::term).collect()),
            TermAst::Map(kvs) => Term::Map(kvs.iter().map(|(k, v)| (k.key(), v.term())).collect()),
            TermAst::Nested {
                kind,
                depth: d,
                leaf,
            } => {
                let mut term = leaf.term();
                for _ in 0..depth(*d) {
                    term = match kind % 3 {
                        0 => Term::Set([term].into_iter().collect()),
                        1 => Term::Array(vec![term]),
                        _ => Term::Map([(MapKey::Integer(0), term)].into_iter().collect()),
                    };
                }
                term
            }
        }
    }
}

const UNARY: &[Unary] = &[Unary::Negate, Unary::Parens, Unary::Length, Unary::TypeOf];
const BINARY: &[Binary] = &[
    Binary::LessThan,
    Binary::GreaterThan,
    Binary::LessOrEqual,
    Binary::GreaterOrEqual,
    Binary::Equal,
    Binary::Contains,
    Binary::Prefix,
    Binary::Suffix,
    Binary::Regex,
    Binary::Add,
    Binary::Sub,
    Binary::Mul,
    Binary::Div,
    Binary::And,
    Binary::Or,
    Binary::Intersection,
    Binary::Union,
    Binary::BitwiseAnd,
    Binary::BitwiseOr,
    Binary::BitwiseXor,
    Binary::NotEqual,
    Binary::HeterogeneousEqual,
    Binary::HeterogeneousNotEqual,
    Binary::LazyAnd,
    Binary::LazyOr,
    Binary::All,
    Binary::Any,
    Binary::Get,
    Binary::TryOr,
];

impl FlatOpAst {
    fn op(&self) -> Op {
        match self {
            FlatOpAst::Value(t) => Op::Value(t.term()),
            FlatOpAst::Unary(u) => Op::Unary(pick(UNARY, *u)),
            FlatOpAst::Binary(b) => Op::Binary(pick(BINARY, *b)),
        }
    }
}

/// A well-formed expression that evaluates to `true` (or fails to
/// evaluate), nested `depth` levels deep:
/// 0 `((((true))))`, 1 `!!!!false`-style negations, 2 a right-nested `&&`
/// chain, 3 a left-nested `&&` chain, 4 nested closures
/// `[true].any($c0 -> [true].any($c1 -> ...))`, 5 `.type()` chains,
/// 6 right-nested lazy `&&` (closures in biscuit's representation).
pub fn deep_ops(shape: u8, depth: usize) -> Vec<Op> {
    let t = || Op::Value(Term::Bool(true));
    let mut ops = Vec::new();
    match shape % 7 {
        0 => {
            ops.push(t());
            ops.extend((0..depth).map(|_| Op::Unary(Unary::Parens)));
        }
        1 => {
            ops.push(Op::Value(Term::Bool(depth % 2 == 1)));
            ops.extend((0..depth).map(|_| Op::Unary(Unary::Negate)));
        }
        2 => {
            ops.extend((0..=depth).map(|_| t()));
            ops.extend((0..depth).map(|_| Op::Binary(Binary::And)));
        }
        3 => {
            ops.push(t());
            for _ in 0..depth {
                ops.push(t());
                ops.push(Op::Binary(Binary::And));
            }
        }
        4 => {
            // Built inside out, iteratively.
            let mut inner = vec![t()];
            for level in (0..depth).rev() {
                inner = vec![
                    Op::Value(Term::Array(vec![Term::Bool(true)])),
                    Op::Closure(vec![format!("c{level}")], inner),
                    Op::Binary(Binary::Any),
                ];
            }
            ops = inner;
        }
        5 => {
            ops.push(t());
            ops.extend((0..depth).map(|_| Op::Unary(Unary::TypeOf)));
            ops.push(Op::Value(Term::Str("string".into())));
            ops.push(Op::Binary(Binary::Equal));
        }
        _ => {
            let mut inner = vec![t()];
            for _ in 0..depth {
                inner = vec![t(), Op::Closure(vec![], inner), Op::Binary(Binary::LazyAnd)];
            }
            ops = inner;
        }
    }
    ops
}

impl ExprAst {
    pub fn expression(&self) -> Expression {
        let mut ops = Vec::new();
        for op in &self.ops {
            match op {
                OpAst::Flat(f) => ops.push(f.op()),
                OpAst::Closure { params, body } => ops.push(Op::Closure(
                    params.iter().map(|p| format!("v{}", p % 4)).collect(),
                    body.iter().map(FlatOpAst::op).collect(),
                )),
                OpAst::Deep { shape, depth: d } => ops.extend(deep_ops(*shape, depth(*d))),
                OpAst::Regex { subject, pattern } => {
                    let pattern = match pattern {
                        Ok(i) => pick(PATTERNS, *i).to_string(),
                        Err(s) => s.text(),
                    };
                    ops.push(Op::Value(Term::Str(subject.text())));
                    ops.push(Op::Value(Term::Str(pattern)));
                    ops.push(Op::Binary(Binary::Regex));
                }
            }
        }
        Expression { ops }
    }
}

impl NameAst {
    fn name(&self) -> String {
        match self {
            NameAst::Known(i) => pick(NAMES, *i).to_string(),
            NameAst::Free(s) => s.text(),
        }
    }
}

impl PredAst {
    pub fn predicate(&self) -> Predicate {
        Predicate::new(
            self.name.name(),
            self.terms.iter().map(TermAst::term).collect::<Vec<_>>(),
        )
    }
}

impl BodyAst {
    fn rule(&self, head: Predicate, holder: &biscuit_auth::PublicKey) -> Rule {
        let scopes = self
            .scopes
            .iter()
            .map(|s| match s % 3 {
                0 => Scope::Authority,
                1 => Scope::Previous,
                _ => Scope::PublicKey(*holder),
            })
            .collect();
        Rule::new(
            head,
            self.preds.iter().map(PredAst::predicate).collect(),
            self.exprs.iter().map(ExprAst::expression).collect(),
            scopes,
        )
    }
}

impl BlockAst {
    /// The block as biscuit-auth's builder holds it. Statements the builder
    /// refuses (unbound parameters) are left out: the point is what a token
    /// can carry, and biscuit refuses those before signing.
    pub fn builder(&self, holder: &biscuit_auth::PublicKey) -> BlockBuilder {
        let mut block = BlockBuilder::new();
        for fact in &self.facts {
            let p = fact.predicate();
            block = match block.clone().fact(Fact::new(p.name, p.terms)) {
                Ok(b) => b,
                Err(_) => block,
            };
        }
        for rule in &self.rules {
            let r = rule.body.rule(rule.head.predicate(), holder);
            block = match block.clone().rule(r) {
                Ok(b) => b,
                Err(_) => block,
            };
        }
        for check in &self.checks {
            let queries = check
                .queries
                .iter()
                .map(|q| q.rule(Predicate::new("query".into(), Vec::<Term>::new()), holder))
                .collect();
            let kind = match check.kind % 3 {
                0 => CheckKind::One,
                1 => CheckKind::All,
                _ => CheckKind::Reject,
            };
            block = match block.clone().check(Check { queries, kind }) {
                Ok(b) => b,
                Err(_) => block,
            };
        }
        if let Some(context) = &self.context {
            block = block.context(context.text());
        }
        block
    }

    /// Names of `hop` facts whose first term is a plain string: the only
    /// agents a block signed by the holder may legitimately add to the chain.
    pub fn hop_names(&self) -> Vec<String> {
        self.facts
            .iter()
            .filter(|f| f.name.name() == "hop")
            .filter_map(|f| match f.terms.first().map(TermAst::term) {
                Some(Term::Str(s)) => Some(s),
                _ => None,
            })
            .collect()
    }
}

/// The block shapes of the attack findings, `size` setting the depth or the
/// repetition: 0 nested parens, 1 a string with an escaped quote that spells
/// other claims, 2 the comment pair `x"); /*` … `*/ check if true; //`,
/// 3 `"a".matches("(?:.{100}){200}")` repeated, 4 nested closures,
/// 5 a right-nested `&&` chain.
pub fn finding_block(which: u8, size: u16) -> BlockAst {
    let s = |i: usize| TermAst::Leaf(LeafAst::Str(StrAst::Text(HOSTILE_STRINGS[i].into())));
    let check = |exprs: Vec<ExprAst>, preds: Vec<PredAst>| CheckAst {
        kind: 0,
        queries: vec![BodyAst {
            preds,
            exprs,
            scopes: Vec::new(),
        }],
    };
    let deep = |shape: u8| {
        check(
            vec![ExprAst {
                ops: vec![OpAst::Deep { shape, depth: size }],
            }],
            Vec::new(),
        )
    };
    let time = || PredAst {
        name: NameAst::Known(7),
        terms: vec![TermAst::Leaf(LeafAst::Var(0))],
    };
    let checks = match which % 6 {
        0 => vec![deep(0)],
        1 => vec![check(
            vec![ExprAst {
                ops: vec![
                    OpAst::Flat(FlatOpAst::Value(s(0))),
                    OpAst::Flat(FlatOpAst::Value(s(10))),
                    // `!=`
                    OpAst::Flat(FlatOpAst::Binary(20)),
                ],
            }],
            vec![time()],
        )],
        2 => {
            let eq = |i: usize| ExprAst {
                ops: vec![
                    OpAst::Flat(FlatOpAst::Value(TermAst::Leaf(LeafAst::Var(0)))),
                    OpAst::Flat(FlatOpAst::Value(s(i))),
                    // `!==`
                    OpAst::Flat(FlatOpAst::Binary(22)),
                ],
            };
            vec![
                check(vec![eq(1)], vec![time()]),
                check(vec![eq(2)], vec![time()]),
            ]
        }
        3 => {
            let one = OpAst::Regex {
                subject: StrAst::Text("a".into()),
                pattern: Ok(0),
            };
            let n = usize::from(size % 300).max(1);
            let mut ops = vec![one.clone()];
            for _ in 1..n {
                ops.push(one.clone());
                // `||`
                ops.push(OpAst::Flat(FlatOpAst::Binary(14)));
            }
            vec![check(vec![ExprAst { ops }], Vec::new())]
        }
        4 => vec![deep(4)],
        _ => vec![deep(2)],
    };
    let facts = if which % 6 == 1 {
        vec![PredAst {
            name: NameAst::Known(16),
            terms: vec![s(0), s(4), s(6)],
        }]
    } else {
        Vec::new()
    };
    BlockAst {
        facts,
        rules: Vec::new(),
        checks,
        context: None,
    }
}

// ---------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------

/// The request time of every decision: fixed, so tokens minted for seeds do
/// not expire and proofs are reproducible.
pub fn request_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_790_000_000)
}

/// A secret key from a fixed seed, through the key-file reader (the only
/// public way to load a given key).
pub fn fixed_key(seed: u8) -> SecretKey {
    let dir = std::env::temp_dir().join(format!("mandate-grammar-{}-{seed}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("key");
    let _ = std::fs::write(&path, format!("ed25519-private/{}\n", hex32(seed)));
    // Key files readable by others are refused, as ssh refuses them.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    let key = SecretKey::read(&path).unwrap_or_else(|e| panic!("fixed key {seed}: {e}"));
    let _ = std::fs::remove_dir_all(&dir);
    key
}

fn hex32(seed: u8) -> String {
    (0..32u8)
        .map(|i| format!("{:02x}", i.wrapping_mul(31).wrapping_add(seed).max(1)))
        .collect()
}

/// The requests every appended block is judged on: `(service, operation,
/// resource)`.
pub const REQUESTS: &[(&str, &str, &str)] = &[
    ("payments", "transfer", "/acct/1"),
    ("payments", "transfer", "/other/1"),
    ("payments", "refund", "/acct/1"),
    ("ledger", "read", "/acct/1"),
    ("ledger", "write", "/acct/1"),
];

/// What a decision says about the mandate (not about the request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub principal: String,
    pub task: String,
    pub chain: Vec<String>,
}

impl Reported {
    fn of(d: &Decision) -> Reported {
        Reported {
            principal: d.principal.clone(),
            task: d.task.clone(),
            chain: d.chain.clone(),
        }
    }
}

/// A minted mandate, a verifier that trusts its root, and the parent's
/// decisions on [`REQUESTS`].
pub struct Harness {
    pub root: RootKey,
    pub keys: KeySet,
    pub agent: SecretKey,
    pub verifier: Verifier,
    pub parent: Mandate,
    pub reported: Reported,
    pub parent_allows: Vec<bool>,
}

impl Harness {
    /// Mints alice's mandate (payments:transfer and ledger:read, resources
    /// under `/acct`) to an agent with a key.
    pub fn new() -> Harness {
        let root_secret = fixed_key(1);
        let mut keys = KeySet::new();
        keys.insert(Some(7), root_secret.public());
        let agent = fixed_key(2);
        let root = RootKey {
            secret: root_secret,
            key_id: Some(7),
        };
        let parent = mint(
            &root,
            &MintRequest {
                principal: "alice@example.com".into(),
                agent: "alice-bot".into(),
                agent_key: Some(agent.public()),
                task: Some("expenses-q3".into()),
                rights: vec![
                    "payments:transfer"
                        .parse()
                        .unwrap_or_else(|_| unreachable!()),
                    "ledger:read".parse().unwrap_or_else(|_| unreachable!()),
                ],
                ttl: Duration::from_secs(3_600),
                restrictions: Restrictions {
                    resource_prefixes: vec![
                        ResourcePath::parse("/acct").unwrap_or_else(|_| unreachable!())
                    ],
                    ..Restrictions::default()
                },
                now: request_time() - Duration::from_secs(60),
            },
        )
        .unwrap_or_else(|e| panic!("minting the parent: {e}"));
        let verifier = Verifier::builder()
            .root_keys(keys.clone())
            .build()
            .unwrap_or_else(|e| panic!("verifier: {e}"));
        let text = parent.to_base64().unwrap_or_else(|e| panic!("{e}"));
        let mut harness = Harness {
            root,
            keys,
            agent,
            verifier,
            parent,
            reported: Reported {
                principal: "alice@example.com".into(),
                task: "expenses-q3".into(),
                chain: vec!["alice-bot".into()],
            },
            parent_allows: Vec::new(),
        };
        for i in 0..REQUESTS.len() {
            let d = harness
                .decide(&text, i)
                .unwrap_or_else(|e| panic!("parent decision {i}: {e}"));
            assert_eq!(Reported::of(&d), harness.reported, "the parent's claims");
            harness.parent_allows.push(d.allowed);
        }
        assert_eq!(harness.parent_allows, [true, false, false, true, false]);
        harness
    }

    /// Request `i` of [`REQUESTS`] for `token`, with a fresh proof by the
    /// holder's key.
    pub fn request(&self, token: &str, i: usize) -> Request {
        let (service, operation, resource) = REQUESTS[i];
        let resource = ResourcePath::parse(resource).unwrap_or_else(|_| unreachable!());
        let request = Request::new(service, operation, resource, request_time());
        match UnverifiedMandate::from_base64(token) {
            Ok(t) => {
                let proof = Proof::sign(&self.agent, &t.digest_hex(), &request, request_time());
                request.with_proof(proof)
            }
            Err(_) => request,
        }
    }

    pub fn decide(&self, token: &str, i: usize) -> Result<Decision, mandate_verifier::Error> {
        self.verifier.authorize(token, &self.request(token, i))
    }

    /// Appends `block` to the parent (signed by the holder's key when
    /// `signed`). `None` when biscuit-auth refuses to build it.
    pub fn append(&self, appended: &Appended) -> Option<String> {
        // The attacker's side: biscuit's own builder converts nested terms
        // recursively, so a block hundreds of levels deep is built on a large
        // stack. Mandate's side (verify, authorize, inspect, delegate) then
        // runs on the caller's ordinary thread.
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .stack_size(512 * 1024 * 1024)
                .spawn_scoped(scope, || self.append_here(appended))
                .ok()?
                .join()
                .ok()
                .flatten()
        })
    }

    fn append_here(&self, appended: &Appended) -> Option<String> {
        let biscuit: &Biscuit = self.parent.biscuit();
        let holder = self.agent.public();
        let block = appended.block.builder(holder.as_biscuit());
        let child = if appended.signed {
            let request = biscuit.third_party_request().ok()?;
            let signed = request
                .create_block(&self.agent.key_pair().private(), block)
                .ok()?;
            biscuit
                .append_third_party(self.agent.key_pair().public(), signed)
                .ok()?
        } else {
            biscuit.append(block).ok()?
        };
        child.to_base64().ok()
    }

    /// Every property of an appended block; `Err` names the one broken.
    ///
    /// - verifying, authorizing, inspecting and delegating never panic and
    ///   return (a decision or an error);
    /// - no request the parent denies is allowed;
    /// - every decision names the parent's principal and task, and the
    ///   parent's chain, or (signed by the holder) the parent's chain plus one
    ///   agent the block names in a `hop` fact, or an empty chain on a denial
    ///   for a broken chain;
    /// - inspection reports the same principal and task.
    pub fn check(&self, appended: &Appended) -> Result<(), String> {
        let Some(token) = self.append(appended) else {
            return Ok(());
        };
        let hops = appended.block.hop_names();
        let chain_ok = |chain: &[String], allowed: bool| {
            chain == self.reported.chain.as_slice()
                || (chain.is_empty() && !allowed)
                || (appended.signed
                    && chain.len() == self.reported.chain.len() + 1
                    && chain.starts_with(&self.reported.chain)
                    && chain.last().is_some_and(|n| hops.contains(n)))
        };
        let _ = self.verifier.verify(&token);
        for (i, parent_allows) in self.parent_allows.iter().enumerate() {
            let Ok(d) = self.decide(&token, i) else {
                continue;
            };
            if d.allowed && !parent_allows {
                return Err(format!(
                    "request {:?} denied by the parent is allowed after appending: {}",
                    REQUESTS[i], d.reason
                ));
            }
            if d.principal != self.reported.principal || d.task != self.reported.task {
                return Err(format!(
                    "the decision names principal {:?}, task {:?}; the mandate was minted for {:?}, {:?}",
                    d.principal, d.task, self.reported.principal, self.reported.task
                ));
            }
            if !chain_ok(&d.chain, d.allowed) {
                return Err(format!(
                    "the decision names chain {:?}; the parent's is {:?} (block hops {hops:?})",
                    d.chain, self.reported.chain
                ));
            }
        }
        if let Ok(unverified) = UnverifiedMandate::from_base64(&token) {
            if let Ok(report) = inspect(&unverified, Some(&self.keys), request_time()) {
                if report.principal.as_deref() != Some(self.reported.principal.as_str()) {
                    return Err(format!(
                        "inspect names principal {:?}; the mandate was minted for {:?}",
                        report.principal, self.reported.principal
                    ));
                }
                if report.task.as_deref() != Some(self.reported.task.as_str()) {
                    return Err(format!(
                        "inspect names task {:?}; the mandate was minted for {:?}",
                        report.task, self.reported.task
                    ));
                }
                let broken = report.chain_error.is_some();
                if !chain_ok(&report.chain, !broken) {
                    return Err(format!(
                        "inspect names chain {:?}; the parent's is {:?} (block hops {hops:?})",
                        report.chain, self.reported.chain
                    ));
                }
            }
            let narrower = Restrictions {
                operations: vec!["transfer".into()],
                ..Restrictions::default()
            };
            if let Ok(child) = delegate(&unverified, &narrower) {
                if let Ok(child) = child.to_base64() {
                    for (i, request) in REQUESTS.iter().enumerate() {
                        if let Ok(d) = self.decide(&child, i) {
                            if d.allowed && !self.parent_allows[i] {
                                return Err(format!(
                                    "request {request:?} denied by the parent is allowed after delegating: {}",
                                    d.reason
                                ));
                            }
                            if d.principal != self.reported.principal {
                                return Err(format!(
                                    "after delegating, the decision names principal {:?}",
                                    d.principal
                                ));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
