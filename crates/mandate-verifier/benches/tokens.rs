//! What Mandate costs over raw biscuit-auth doing the identical work, and
//! how large signed delegation chains grow.
//!
//! Each operation is measured twice in the same run: through Mandate's
//! library call, and through biscuit-auth directly with the same facts,
//! checks, policy, request facts and run limits:
//!
//! - `mint`: `mandate_issuer::mint` vs `Biscuit::builder()` with the same
//!   authority facts and checks;
//! - `delegate`: `mandate_core::delegate` (one plain restriction block) vs
//!   `UnverifiedBiscuit::append` of a block with the same facts and checks;
//! - `authorize/N`: base64 text → decision for a bearer token with N plain
//!   restriction blocks after the authority, vs `Biscuit::from_base64`, an
//!   `AuthorizerBuilder` holding the same policy and request facts
//!   (`acting_agent`, `delegation_depth` included),
//!   `set_limits(default_run_limits())`, `authorize()`, and the claim queries
//!   (principal, agent, task, expires_at) that fill a decision. One verifier
//!   serves every call, so after the first call it knows the token: these
//!   rows are *warm*;
//! - `delegate_signed/hopK`: `mandate_core::delegate_signed` appending signed
//!   hop K to a token with K-1 hops, vs `third_party_request`, `create_block`
//!   with the holder's private key and `append_third_party` of a block with
//!   the same `hop` fact and checks;
//! - `authorize_pop/N`: base64 text → decision for a keyed mandate after N
//!   signed hops, with a proof of possession by the acting agent. Both sides
//!   read the *same* token text. Raw biscuit-auth does the authorization
//!   above plus the raw equivalent of the proof check: derive the token digest,
//!   rebuild the signed message, one Ed25519 `verify_strict`, the window
//!   check. Raw is told the acting agent's name and key; Mandate rebuilds
//!   them from the chain's signatures, which raw does not do. Ours is
//!   measured twice: `ours_cold` gets a verifier built in the setup of every
//!   iteration (outside the timed region), which has never seen the token, so
//!   it reads every block once; `ours_warm` uses one long-lived verifier that
//!   has seen the token before. Every iteration gets a freshly signed proof,
//!   made in the setup, because a verifier accepts a nonce only once.
//!
//! At startup the bench checks that both sides produce the same block
//! sources, signers and token sizes, that both reach the same decision, and
//! that the raw proof check accepts Mandate's proofs, so the raw side cannot
//! silently drift from what Mandate writes.
//!
//! Ratios: criterion does not compare two functions, and two separate
//! criterion runs on a shared 2-core machine drift by more than the 10 % we
//! want to see. So after the criterion groups (run only under `cargo bench`,
//! not `cargo test`), [`ratio_table`] times each pair *interleaved*: 31
//! rounds, each timing a batch of about 10 ms of ours and one of raw back to
//! back (the order alternating), and reports the median per-call time of
//! each side and the median of the 31 per-round ratios. Load from other
//! processes hits both batches of a round alike, so the per-round ratio is
//! steadier than a ratio of two separately measured medians. Inputs are made
//! before and outputs dropped after each timed batch. Set
//! `MANDATE_BENCH_TABLE=0` to skip the table. [`size_table`] then prints the
//! token size after 0 to 8 signed hops.
//!
//! Instruction counts are steadier still: see [`Counting`] for running one
//! side of one table row under callgrind.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use biscuit_auth::builder::{self, AuthorizerBuilder, BlockBuilder, Rule};
use biscuit_auth::{Biscuit, KeyPair, UnverifiedBiscuit};
use criterion::{BatchSize, Criterion};
use ed25519_dalek::{Signature, VerifyingKey};
use mandate_core::{
    default_run_limits, delegate, delegate_signed, AttrValue, KeySet, NextAgent, Proof, PublicKey,
    Request, ResourcePath, Restrictions, RootKey, SecretKey, UnverifiedMandate,
};
use mandate_issuer::MintRequest;
use mandate_verifier::{Decision, Policy, Reason, Verifier};
use sha2::{Digest as _, Sha256};

const POLICY: &str = include_str!("../../../datalog/policies/default.datalog");
const ROOT_KEY_ID: u32 = 1;
/// Plain restriction blocks in the bearer `authorize` rows.
const BLOCK_COUNTS: [usize; 3] = [1, 4, 8];
/// Signed hops in the `delegate_signed` and `authorize_pop` rows.
const HOP_COUNTS: [usize; 3] = [1, 4, 8];
/// The size table runs from 0 to this many signed hops.
const MAX_HOPS: usize = 8;
/// The verifier's default proof window; the raw side applies the same.
const POP_WINDOW: Duration = Duration::from_secs(30);

/// Calls that hit biscuit-auth's time limit: on a loaded shared machine a
/// thread can be descheduled for longer than the limit. Such a call is
/// counted and reported rather than aborting the run.
static TIME_LIMIT_HITS: AtomicUsize = AtomicUsize::new(0);

/// Counts a decision that hit a run limit.
fn counted(decision: Decision) -> Decision {
    if let Reason::RunLimit { .. } = decision.reason {
        TIME_LIMIT_HITS.fetch_add(1, Ordering::Relaxed);
    }
    decision
}

fn now() -> SystemTime {
    humantime::parse_rfc3339("2026-01-01T00:00:00Z").unwrap()
}

fn mint_request(agent_key: Option<PublicKey>) -> MintRequest {
    MintRequest {
        principal: "alice".into(),
        agent: "expense-agent".into(),
        agent_key,
        task: Some("expense-report-q3".into()),
        rights: vec![
            "expenses:read".parse().unwrap(),
            "expenses:submit".parse().unwrap(),
        ],
        ttl: Duration::from_secs(3600),
        restrictions: Restrictions::default(),
        now: now(),
    }
}

fn prefix() -> ResourcePath {
    ResourcePath::parse("/reports/alice").unwrap()
}

/// The restriction block every delegation adds.
fn restrictions() -> Restrictions {
    Restrictions {
        operations: vec!["submit".into()],
        resource_prefixes: vec![prefix()],
        attr_max: vec![("amount".into(), 499)],
        ..Restrictions::default()
    }
}

fn request() -> Request {
    Request::new(
        "expenses",
        "submit",
        ResourcePath::parse("/reports/alice/r1").unwrap(),
        now() + Duration::from_secs(60),
    )
    .with_attr_arg("amount=120")
    .unwrap()
}

/// An agent of the signed chains: its key, and how a hop names it.
struct Agent {
    key: SecretKey,
    next: NextAgent,
    /// The public key as raw Ed25519 bytes, which is how raw code holds it.
    public: [u8; 32],
}

/// Agent 0 is the minted mandate's agent; agent K is named by hop K.
fn agents() -> Vec<Agent> {
    (0..=MAX_HOPS)
        .map(|i| {
            let key = SecretKey::generate();
            let name = if i == 0 {
                "expense-agent".to_string()
            } else {
                format!("sub-agent-{i}")
            };
            Agent {
                public: key.public().as_biscuit().to_bytes().try_into().unwrap(),
                next: NextAgent {
                    name,
                    key: key.public(),
                },
                key,
            }
        })
        .collect()
}

/// What a signed hop restricts besides naming the next agent.
#[derive(Debug, Clone, Copy)]
enum HopScope {
    /// Only `hop(Name, Key)`.
    Pure,
    /// One restriction: a resource prefix.
    OneRestriction,
    /// The block every plain delegation adds (operation, prefix, amount).
    Full,
}

impl HopScope {
    const ALL: [HopScope; 3] = [HopScope::Pure, HopScope::OneRestriction, HopScope::Full];

    fn label(self) -> &'static str {
        match self {
            HopScope::Pure => "pure hop",
            HopScope::OneRestriction => "hop + 1 restriction (prefix)",
            HopScope::Full => "hop + 3 restrictions (op, prefix, amount)",
        }
    }

    fn restrictions(self) -> Restrictions {
        match self {
            HopScope::Pure => Restrictions::default(),
            HopScope::OneRestriction => Restrictions {
                resource_prefixes: vec![prefix()],
                ..Restrictions::default()
            },
            HopScope::Full => restrictions(),
        }
    }

    /// The same restrictions, written by hand for raw biscuit-auth.
    fn raw(self, block: BlockBuilder) -> BlockBuilder {
        match self {
            HopScope::Pure => block,
            HopScope::OneRestriction => prefix_code_raw(block),
            HopScope::Full => restriction_code_raw(block),
        }
    }
}

// ---- raw biscuit-auth: the same Datalog, written by hand ----------------

fn params(pairs: &[(&str, builder::Term)]) -> HashMap<String, builder::Term> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect()
}

/// The authority block `mandate_issuer::mint` writes for [`mint_request`].
fn mint_raw(root: &KeyPair, agent_key: &[u8]) -> Biscuit {
    let now = now();
    let expires = now + Duration::from_secs(3600);
    Biscuit::builder()
        .fact(builder::fact("principal", &[builder::string("alice")]))
        .unwrap()
        .fact(builder::fact(
            "agent",
            &[builder::string("expense-agent"), builder::bytes(agent_key)],
        ))
        .unwrap()
        .fact(builder::fact(
            "task",
            &[builder::string("expense-report-q3")],
        ))
        .unwrap()
        .fact(builder::fact("issued_at", &[builder::date(&now)]))
        .unwrap()
        .fact(builder::fact("expires_at", &[builder::date(&expires)]))
        .unwrap()
        .fact(builder::fact(
            "right",
            &[builder::string("expenses"), builder::string("read")],
        ))
        .unwrap()
        .fact(builder::fact(
            "right",
            &[builder::string("expenses"), builder::string("submit")],
        ))
        .unwrap()
        .code_with_params(
            "check if time($t), $t <= {expires};\n\
             check if service($s), operation($o), right($s, $o);",
            params(&[("expires", builder::date(&expires))]),
            HashMap::new(),
        )
        .unwrap()
        .root_key_id(ROOT_KEY_ID)
        .build(root)
        .unwrap()
}

/// What [`restrictions`] compiles to.
fn restriction_code_raw(block: BlockBuilder) -> BlockBuilder {
    block
        .code_with_params(
            "check if operation({op});\n\
             check if resource($r), ($r + \"/\").starts_with({below0});\n\
             check if attr({key}, $v), $v <= {max};",
            params(&[
                ("op", builder::string("submit")),
                ("below0", builder::string("/reports/alice/")),
                ("key", builder::string("amount")),
                ("max", builder::int(499)),
            ]),
            HashMap::new(),
        )
        .unwrap()
}

/// What a lone resource prefix compiles to.
fn prefix_code_raw(block: BlockBuilder) -> BlockBuilder {
    block
        .code_with_params(
            "check if resource($r), ($r + \"/\").starts_with({below0});",
            params(&[("below0", builder::string("/reports/alice/"))]),
            HashMap::new(),
        )
        .unwrap()
}

/// The block `mandate_core::delegate` writes for [`restrictions`].
fn restriction_block_raw() -> BlockBuilder {
    restriction_code_raw(BlockBuilder::new())
}

/// What `mandate_core::delegate_signed` does, with biscuit-auth alone: a
/// third-party block signed by the holder, naming the next agent.
fn append_hop_raw(
    token: &UnverifiedBiscuit,
    holder: &SecretKey,
    next: &NextAgent,
    scope: HopScope,
) -> UnverifiedBiscuit {
    let hop = builder::fact(
        "hop",
        &[
            builder::string(&next.name),
            builder::bytes(&next.key.to_bytes()),
        ],
    );
    let block = scope.raw(BlockBuilder::new().fact(hop).unwrap());
    let signed = token
        .third_party_request()
        .unwrap()
        .create_block(&holder.key_pair().private(), block)
        .unwrap()
        .serialize()
        .unwrap();
    token.append_third_party(&signed).unwrap()
}

fn millis(t: SystemTime) -> u64 {
    u64::try_from(t.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// The message a proof of possession signs, as `mandate_core::pop` lays it
/// out (domain, then length-prefixed fields). Startup checks that the raw
/// check accepts Mandate's proofs, so a change of layout fails loudly.
fn pop_message(token_id: &str, request: &Request, timestamp_ms: u64, nonce: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"mandate-pop-v1\0");
    let mut field = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    field(token_id.as_bytes());
    field(request.service.as_bytes());
    field(request.operation.as_bytes());
    field(request.resource.as_str().as_bytes());
    let mut attrs: Vec<(&str, Vec<u8>)> = request
        .attrs
        .iter()
        .map(|(k, v)| {
            let value = match v {
                AttrValue::Int(n) => [b"i".as_slice(), &n.to_be_bytes()].concat(),
                AttrValue::Str(s) => [b"s".as_slice(), s.as_bytes()].concat(),
            };
            (k.as_str(), value)
        })
        .collect();
    attrs.sort();
    field(&(attrs.len() as u64).to_be_bytes());
    for (key, value) in &attrs {
        field(key.as_bytes());
        field(value);
    }
    field(&timestamp_ms.to_be_bytes());
    field(nonce);
    out
}

/// The raw equivalent of the verifier's proof check: one Ed25519
/// verification over the token digest and the request, and the window.
fn verify_pop_raw(
    biscuit: &Biscuit,
    key: &[u8; 32],
    request: &Request,
    signature: &[u8; 64],
) -> Result<(), String> {
    let proof = request.proof.as_ref().ok_or("no proof")?;
    let mut digest = Sha256::new();
    for id in biscuit.revocation_identifiers() {
        digest.update((id.len() as u64).to_be_bytes());
        digest.update(&id);
    }
    let token_digest = hex::encode(digest.finalize());
    let message = pop_message(&token_digest, request, proof.timestamp_ms, &proof.nonce);
    VerifyingKey::from_bytes(key)
        .and_then(|k| k.verify_strict(&message, &Signature::from_bytes(signature)))
        .map_err(|e| e.to_string())?;
    let window = u64::try_from(POP_WINDOW.as_millis()).unwrap();
    if millis(request.time).abs_diff(proof.timestamp_ms) > window {
        return Err("proof outside the window".into());
    }
    Ok(())
}

/// A proof's signature bytes (the raw side receives the proof as text).
fn signature_bytes(proof: &Proof) -> [u8; 64] {
    let text = proof.to_text();
    let hex = text.rsplit('.').next().unwrap();
    hex::decode(hex).unwrap().try_into().unwrap()
}

/// What the verifier does per call, with biscuit-auth alone.
struct RawVerifier {
    root: biscuit_auth::PublicKey,
    base: AuthorizerBuilder,
    queries: [Rule; 4],
}

/// The claims a decision carries, read by queries.
type RawClaims = (
    Vec<(String,)>,
    Vec<(String, Vec<u8>)>,
    Vec<(String,)>,
    Vec<(SystemTime,)>,
);

type RawOutcome = (Result<usize, String>, RawClaims);

impl RawVerifier {
    fn new(root: biscuit_auth::PublicKey) -> RawVerifier {
        let rule = |s: &str| Rule::try_from(s).unwrap();
        RawVerifier {
            root,
            // Parsed once, as the verifier parses its policy once.
            base: AuthorizerBuilder::new().code(POLICY).unwrap(),
            queries: [
                rule("q($p) <- principal($p)"),
                rule("q($n, $k) <- agent($n, $k)"),
                rule("q($t) <- task($t)"),
                rule("q($e) <- expires_at($e)"),
            ],
        }
    }

    /// A bearer call: no proof to check.
    fn authorize(&self, token: &str, request: &Request, acting: &str, depth: i64) -> RawOutcome {
        let biscuit = Biscuit::from_base64(token, self.root).unwrap();
        self.decide(&biscuit, request, acting, depth)
    }

    /// A call whose acting agent (`acting`, `key`) must prove possession.
    fn authorize_pop(
        &self,
        token: &str,
        request: &Request,
        (acting, key): (&str, &[u8; 32]),
        signature: &[u8; 64],
        depth: i64,
    ) -> RawOutcome {
        let biscuit = Biscuit::from_base64(token, self.root).unwrap();
        if let Err(refused) = verify_pop_raw(&biscuit, key, request, signature) {
            return (Err(refused), RawClaims::default());
        }
        self.decide(&biscuit, request, acting, depth)
    }

    fn decide(&self, biscuit: &Biscuit, request: &Request, acting: &str, depth: i64) -> RawOutcome {
        let mut builder = self.base.clone().set_limits(default_run_limits());
        let mut facts = vec![
            builder::fact("time", &[builder::date(&request.time)]),
            builder::fact("service", &[builder::string(&request.service)]),
            builder::fact("operation", &[builder::string(&request.operation)]),
            builder::fact("resource", &[builder::string(request.resource.as_str())]),
            builder::fact("acting_agent", &[builder::string(acting)]),
            builder::fact("delegation_depth", &[builder::int(depth)]),
        ];
        for (key, value) in &request.attrs {
            facts.push(builder::fact(
                "attr",
                &[builder::string(key), value.to_term()],
            ));
        }
        for fact in facts {
            builder = builder.fact(fact).unwrap();
        }
        let mut authorizer = builder.build(biscuit).unwrap();
        let outcome = authorizer.authorize().map_err(|e| {
            if matches!(e, biscuit_auth::error::Token::RunLimit(_)) {
                TIME_LIMIT_HITS.fetch_add(1, Ordering::Relaxed);
                format!("run limit: {e}")
            } else {
                e.to_string()
            }
        });
        // Queries share the authorizer's time limit; a query that hits it
        // leaves its claim empty, as the call is already counted.
        let [principal, agent, task, expires_at] = &self.queries;
        let claims = (
            authorizer.query(principal.clone()).unwrap_or_default(),
            authorizer.query(agent.clone()).unwrap_or_default(),
            authorizer.query(task.clone()).unwrap_or_default(),
            authorizer.query(expires_at.clone()).unwrap_or_default(),
        );
        (outcome, claims)
    }
}

// ---- fixtures -------------------------------------------------------------

/// A keyed mandate after 0..=MAX_HOPS signed hops, built by each side.
struct SignedChain {
    ours: Vec<UnverifiedMandate>,
    raw: Vec<UnverifiedBiscuit>,
}

/// One token of the `authorize_pop` rows, as both sides receive it.
struct PopToken {
    hops: usize,
    text: String,
    id: String,
}

/// The per-call input of an `authorize_pop` row, made outside the timing.
struct PopCall {
    /// A verifier that never saw the token (cold rows), or none to use the
    /// fixture's long-lived one (warm rows).
    verifier: Option<Verifier>,
    /// The request with a fresh proof by the acting agent.
    request: Request,
    /// The proof's signature as bytes, for the raw side.
    signature: [u8; 64],
}

struct Fixture {
    root: RootKey,
    agents: Vec<Agent>,
    keys: KeySet,
    policy: Policy,
    /// Serves every warm row; it has seen every token before it is timed.
    verifier: Verifier,
    raw: RawVerifier,
    /// One keyed minted mandate, as both sides' delegation input.
    minted: UnverifiedMandate,
    minted_raw: UnverifiedBiscuit,
    /// (blocks after the authority, ours, raw) bearer tokens as text.
    tokens: Vec<(usize, String, String)>,
    /// Hops with the full restriction block.
    signed: SignedChain,
    pop_tokens: Vec<PopToken>,
}

fn fixture() -> Fixture {
    let secret = SecretKey::generate();
    let root = RootKey {
        secret,
        key_id: Some(ROOT_KEY_ID),
    };
    let agents = agents();
    let keys = KeySet::single(root.secret.public());
    let policy = Policy::from_source("default", POLICY).unwrap();
    let raw = RawVerifier::new(*root.secret.public().as_biscuit());

    let minted = mandate_issuer::mint(&root, &mint_request(Some(agents[0].key.public())))
        .unwrap()
        .to_unverified()
        .unwrap();
    let minted_raw = UnverifiedBiscuit::from_base64(
        mint_raw(root.secret.key_pair(), &agents[0].key.public().to_bytes())
            .to_base64()
            .unwrap(),
    )
    .unwrap();

    let bearer = mandate_issuer::mint(&root, &mint_request(None))
        .unwrap()
        .to_unverified()
        .unwrap();
    let bearer_raw = mint_raw(root.secret.key_pair(), &[]);
    let tokens = BLOCK_COUNTS
        .iter()
        .map(|&n| {
            let (mut ours, mut raw) = (bearer.clone(), bearer_raw.clone());
            for _ in 0..n {
                ours = delegate(&ours, &restrictions()).unwrap();
                raw = raw.append(restriction_block_raw()).unwrap();
            }
            (n, ours.to_base64().unwrap(), raw.to_base64().unwrap())
        })
        .collect();

    let signed = signed_chain(&minted, &minted_raw, &agents, HopScope::Full);
    let pop_tokens = HOP_COUNTS
        .iter()
        .map(|&hops| PopToken {
            hops,
            text: signed.ours[hops].to_base64().unwrap(),
            id: signed.ours[hops].digest_hex(),
        })
        .collect();

    let fixture = Fixture {
        verifier: fresh_verifier(&keys, &policy),
        root,
        agents,
        keys,
        policy,
        raw,
        minted,
        minted_raw,
        tokens,
        signed,
        pop_tokens,
    };
    // Under valgrind (instruction counting) biscuit's time limit cuts the
    // raw side's claim queries short, so the startup checks run only in
    // normal runs, which must pass them first.
    if counting().is_none() {
        fixture.assert_identical_work();
    }
    fixture
}

fn fresh_verifier(keys: &KeySet, policy: &Policy) -> Verifier {
    Verifier::builder()
        .root_keys(keys.clone())
        .policy(policy.clone())
        .limits(default_run_limits())
        .pop_window(POP_WINDOW)
        .build()
        .unwrap()
}

/// Both sides hand the authority from agent K to agent K+1, eight times.
fn signed_chain(
    minted: &UnverifiedMandate,
    minted_raw: &UnverifiedBiscuit,
    agents: &[Agent],
    scope: HopScope,
) -> SignedChain {
    let mut chain = SignedChain {
        ours: vec![minted.clone()],
        raw: vec![minted_raw.clone()],
    };
    for k in 0..MAX_HOPS {
        let (holder, next) = (&agents[k], &agents[k + 1]);
        let ours = delegate_signed(
            &chain.ours[k],
            &holder.key,
            Some(&next.next),
            &scope.restrictions(),
        )
        .unwrap();
        let raw = append_hop_raw(&chain.raw[k], &holder.key, &next.next, scope);
        chain.ours.push(ours);
        chain.raw.push(raw);
    }
    chain
}

/// Bytes of a token's wire form before base64.
fn byte_len(text: &str) -> usize {
    UnverifiedBiscuit::from_base64(text)
        .unwrap()
        .to_vec()
        .unwrap()
        .len()
}

impl SignedChain {
    /// Every hop block reads the same and is signed by the same key on both
    /// sides, and the tokens are equally long.
    fn assert_identical(&self, scope: HopScope) {
        for (k, (ours, raw)) in self.ours.iter().zip(&self.raw).enumerate() {
            let ours_keys = ours.external_keys();
            let raw_keys = raw.external_public_keys();
            for block in 0..ours.block_count() {
                assert_eq!(
                    ours.block_source(block).unwrap(),
                    raw.print_block_source(block).unwrap(),
                    "{scope:?}, {k} hops: raw block {block} drifted from delegate_signed"
                );
                assert_eq!(
                    ours_keys[block].map(|key| *key.as_biscuit()),
                    raw_keys[block],
                    "{scope:?}, {k} hops: block {block} signed by another key"
                );
            }
            let (ours, raw) = (ours.to_base64().unwrap(), raw.to_base64().unwrap());
            assert_eq!(ours.len(), raw.len(), "{scope:?}, {k} hops: sizes differ");
        }
    }
}

impl Fixture {
    fn fresh_verifier(&self) -> Verifier {
        fresh_verifier(&self.keys, &self.policy)
    }

    /// Both sides write the same Datalog and reach the same decision;
    /// otherwise the comparison would be meaningless. Also warms
    /// [`Fixture::verifier`] with every token.
    fn assert_identical_work(&self) {
        let ours = self.minted.block_source(0).unwrap();
        let raw = self.minted_raw.print_block_source(0).unwrap();
        assert_eq!(ours, raw, "raw mint drifted from mandate_issuer::mint");
        let ours = delegate(&self.minted, &restrictions()).unwrap();
        let raw = self.minted_raw.append(restriction_block_raw()).unwrap();
        assert_eq!(
            ours.block_source(1).unwrap(),
            raw.print_block_source(1).unwrap(),
            "raw restriction block drifted from mandate_core::delegate"
        );
        for (n, ours, raw) in &self.tokens {
            let decision = self.verifier.authorize(ours, &request()).unwrap();
            assert!(decision.allowed, "{n} blocks: {:?}", decision.reason);
            let (outcome, claims) = self.raw.authorize(raw, &request(), "expense-agent", 0);
            assert!(outcome.is_ok(), "{n} blocks, raw: {outcome:?}");
            assert_eq!(claims.0[0].0, decision.principal);
            assert_eq!(claims.1[0].0, decision.agent);
        }
        self.signed.assert_identical(HopScope::Full);
        for token in &self.pop_tokens {
            let acting = &self.agents[token.hops].next.name;
            for cold in [true, false] {
                let decision = self.authorize_pop_ours(token, &self.pop_call(token, cold));
                assert_eq!(&decision.agent, acting);
                assert_eq!(decision.depth as usize, token.hops);
                assert_eq!(decision.chain.len(), token.hops + 1);
            }
            let (_, claims) = self.authorize_pop_raw(token, &self.pop_call(token, false));
            assert_eq!(claims.0[0].0, "alice");
            // The proof is bound to the request on both sides.
            let mut call = self.pop_call(token, true);
            call.request.resource = ResourcePath::parse("/reports/alice/r2").unwrap();
            let denied = call
                .verifier
                .as_ref()
                .unwrap()
                .authorize(&token.text, &call.request)
                .unwrap();
            assert!(!denied.allowed, "a proof for another request was accepted");
            let biscuit = Biscuit::from_base64(&token.text, self.raw.root).unwrap();
            let key = &self.agents[token.hops].public;
            assert!(verify_pop_raw(&biscuit, key, &call.request, &call.signature).is_err());
        }
    }

    fn authorize_bearer_ours(&self, token: &str, request: &Request) -> Decision {
        counted(self.verifier.authorize(token, request).unwrap())
    }

    /// A request for `token` with a fresh proof by its acting agent.
    fn pop_call(&self, token: &PopToken, cold: bool) -> PopCall {
        let request = request();
        let holder = &self.agents[token.hops].key;
        let proof = Proof::sign(holder, &token.id, &request, request.time);
        PopCall {
            verifier: cold.then(|| self.fresh_verifier()),
            signature: signature_bytes(&proof),
            request: request.with_proof(proof),
        }
    }

    fn authorize_pop_ours(&self, token: &PopToken, call: &PopCall) -> Decision {
        let verifier = call.verifier.as_ref().unwrap_or(&self.verifier);
        let decision = counted(verifier.authorize(&token.text, &call.request).unwrap());
        // A denial (say, a full replay cache) would be cheaper than the
        // work being measured; refuse to time it.
        let timed_out = matches!(decision.reason, Reason::RunLimit { .. });
        assert!(decision.allowed || timed_out, "{:?}", decision.reason);
        decision
    }

    fn authorize_pop_raw(&self, token: &PopToken, call: &PopCall) -> RawOutcome {
        let agent = &self.agents[token.hops];
        let depth = i64::try_from(token.hops).unwrap();
        let identity = (agent.next.name.as_str(), &agent.public);
        let outcome =
            self.raw
                .authorize_pop(&token.text, &call.request, identity, &call.signature, depth);
        if let Err(e) = &outcome.0 {
            assert!(e.starts_with("run limit"), "{e}");
        }
        outcome
    }

    fn mint_ours(&self) -> impl Sized {
        mandate_issuer::mint(&self.root, &mint_request(Some(self.agents[0].key.public()))).unwrap()
    }

    fn mint_raw(&self) -> impl Sized {
        mint_raw(
            self.root.secret.key_pair(),
            &self.agents[0].key.public().to_bytes(),
        )
    }

    fn delegate_ours(&self) -> impl Sized {
        delegate(&self.minted, &restrictions()).unwrap()
    }

    fn delegate_raw(&self) -> impl Sized {
        self.minted_raw.append(restriction_block_raw()).unwrap()
    }

    /// Signed hop `hop` onto the token with `hop - 1` hops.
    fn delegate_signed_ours(&self, hop: usize) -> impl Sized {
        delegate_signed(
            &self.signed.ours[hop - 1],
            &self.agents[hop - 1].key,
            Some(&self.agents[hop].next),
            &restrictions(),
        )
        .unwrap()
    }

    fn delegate_signed_ours_from(&self, text: &str, hop: usize) -> impl Sized {
        delegate_signed(
            &UnverifiedMandate::from_base64(text).unwrap(),
            &self.agents[hop - 1].key,
            Some(&self.agents[hop].next),
            &restrictions(),
        )
        .unwrap()
    }

    fn delegate_signed_raw_from(&self, text: &str, hop: usize) -> impl Sized {
        append_hop_raw(
            &UnverifiedBiscuit::from_base64(text).unwrap(),
            &self.agents[hop - 1].key,
            &self.agents[hop].next,
            HopScope::Full,
        )
    }

    fn delegate_signed_raw(&self, hop: usize) -> impl Sized {
        append_hop_raw(
            &self.signed.raw[hop - 1],
            &self.agents[hop - 1].key,
            &self.agents[hop].next,
            HopScope::Full,
        )
    }
}

// ---- criterion groups -----------------------------------------------------

fn bench_mint(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("mint");
    group.bench_function("ours", |b| b.iter(|| black_box(f.mint_ours())));
    group.bench_function("raw", |b| b.iter(|| black_box(f.mint_raw())));
    group.finish();
}

fn bench_delegate(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("delegate");
    group.bench_function("ours", |b| b.iter(|| black_box(f.delegate_ours())));
    group.bench_function("raw", |b| b.iter(|| black_box(f.delegate_raw())));
    group.finish();
    for hop in HOP_COUNTS {
        let mut group = c.benchmark_group(format!("delegate_signed/hop{hop}"));
        group.bench_function("ours", |b| {
            b.iter(|| black_box(f.delegate_signed_ours(hop)))
        });
        group.bench_function("raw", |b| b.iter(|| black_box(f.delegate_signed_raw(hop))));
        group.finish();
    }
}

fn bench_authorize(c: &mut Criterion, f: &Fixture) {
    let request = request();
    for (n, ours, raw) in &f.tokens {
        let mut group = c.benchmark_group(format!("authorize/{n}"));
        group.bench_function("ours", |b| {
            b.iter(|| black_box(f.authorize_bearer_ours(black_box(ours), &request)))
        });
        group.bench_function("raw", |b| {
            b.iter(|| {
                black_box(
                    f.raw
                        .authorize(black_box(raw), &request, "expense-agent", 0),
                )
            })
        });
        group.finish();
    }
    for token in &f.pop_tokens {
        let mut group = c.benchmark_group(format!("authorize_pop/{}", token.hops));
        for (name, cold) in [("ours_cold", true), ("ours_warm", false)] {
            group.bench_function(name, |b| {
                b.iter_batched_ref(
                    || f.pop_call(token, cold),
                    |call| f.authorize_pop_ours(token, call),
                    BatchSize::SmallInput,
                )
            });
        }
        group.bench_function("raw", |b| {
            b.iter_batched_ref(
                || f.pop_call(token, false),
                |call| f.authorize_pop_raw(token, call),
                BatchSize::SmallInput,
            )
        });
        group.finish();
    }
}

// ---- the ratio table ------------------------------------------------------

/// One row of the table: median per-call time of each side, and the median
/// of the per-round ratios (each round's two batches ran back to back, so
/// their ratio is the least disturbed by load from other processes).
struct Row {
    name: String,
    ours: Duration,
    raw: Duration,
    ratio: f64,
}

/// Instruction counting, steadier than time on a shared machine: with
/// `MANDATE_BENCH_COUNT=ours` (or `raw`) and `MANDATE_BENCH_ROW` set to the
/// start of a table row's name, the bench skips everything else after its
/// fixture and runs that side of that row [`COUNTED_CALLS`] times inside
/// [`counted_calls`], inputs made before. Under
/// `valgrind --tool=callgrind --toggle-collect='*counted_calls*'` the
/// program total divided by [`COUNTED_CALLS`] is the instructions per call.
/// The startup checks are skipped in this mode (see [`fixture`]), so the
/// verifier of the warm rows has not seen the tokens yet.
struct Counting {
    ours: bool,
    row: String,
}

const COUNTED_CALLS: usize = 100;

fn counting() -> Option<Counting> {
    let side = std::env::var("MANDATE_BENCH_COUNT").ok()?;
    Some(Counting {
        ours: side == "ours",
        row: std::env::var("MANDATE_BENCH_ROW").unwrap_or_default(),
    })
}

#[inline(never)]
fn counted_calls<I, A>(inputs: &mut [I], mut call: impl FnMut(&mut I) -> A) -> Vec<A> {
    inputs.iter_mut().map(|i| black_box(call(i))).collect()
}

/// Times `ours` and `raw` in interleaved batches. `setup` makes one input
/// per call before a batch is timed; inputs and outputs are dropped after.
/// Under [`Counting`], runs the chosen side of the chosen row only.
fn interleaved<I, A, B>(
    name: String,
    mut setup: impl FnMut() -> I,
    mut ours: impl FnMut(&mut I) -> A,
    mut raw: impl FnMut(&mut I) -> B,
) -> Row {
    if let Some(counting) = counting() {
        if name.starts_with(&counting.row) {
            let mut inputs: Vec<I> = (0..COUNTED_CALLS).map(|_| setup()).collect();
            if counting.ours {
                drop(counted_calls(&mut inputs, &mut ours));
            } else {
                drop(counted_calls(&mut inputs, &mut raw));
            }
            println!(
                "counted {COUNTED_CALLS} calls of `{name}`, {}",
                if counting.ours { "ours" } else { "raw" }
            );
        }
        return Row {
            name,
            ours: Duration::ZERO,
            raw: Duration::ZERO,
            ratio: 0.0,
        };
    }
    const ROUNDS: usize = 31;
    const BATCH_TARGET: Duration = Duration::from_millis(10);
    let mut time = |ours_side: bool, n: u32| {
        let mut inputs: Vec<I> = (0..n).map(|_| setup()).collect();
        let mut kept_ours = Vec::with_capacity(inputs.len());
        let mut kept_raw = Vec::with_capacity(inputs.len());
        let start = Instant::now();
        for input in &mut inputs {
            if ours_side {
                kept_ours.push(black_box(ours(input)));
            } else {
                kept_raw.push(black_box(raw(input)));
            }
        }
        let elapsed = start.elapsed();
        drop((kept_ours, kept_raw, inputs));
        elapsed / n
    };
    // Calibrate: enough calls per batch for about BATCH_TARGET.
    let one = time(true, 3).max(Duration::from_nanos(100));
    let n = u32::try_from((BATCH_TARGET.as_nanos() / one.as_nanos()).clamp(1, 100_000)).unwrap();
    let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (o, r) = if round % 2 == 0 {
            let o = time(true, n);
            (o, time(false, n))
        } else {
            let r = time(false, n);
            (time(true, n), r)
        };
        a.push(o);
        b.push(r);
        ratios.push(o.as_secs_f64() / r.as_secs_f64());
    }
    a.sort();
    b.sort();
    ratios.sort_by(f64::total_cmp);
    Row {
        name,
        ours: a[ROUNDS / 2],
        raw: b[ROUNDS / 2],
        ratio: ratios[ROUNDS / 2],
    }
}

fn ratio_table(f: &Fixture) {
    let request = request();
    let mut rows = vec![
        interleaved("mint".into(), || (), |_| f.mint_ours(), |_| f.mint_raw()),
        interleaved(
            "delegate, plain block".into(),
            || (),
            |_| f.delegate_ours(),
            |_| f.delegate_raw(),
        ),
    ];
    for hop in HOP_COUNTS {
        rows.push(interleaved(
            format!("delegate_signed, hop {hop}"),
            || (),
            |_| f.delegate_signed_ours(hop),
            |_| f.delegate_signed_raw(hop),
        ));
    }
    // The first delegation from a token just received as text: both sides
    // parse it, ours also reads its scope and chain once.
    for hop in HOP_COUNTS {
        let ours_text = f.signed.ours[hop - 1].to_base64().unwrap();
        let raw_text = f.signed.raw[hop - 1].to_base64().unwrap();
        rows.push(interleaved(
            format!("delegate_signed from text, hop {hop}"),
            || (),
            |_| f.delegate_signed_ours_from(&ours_text, hop),
            |_| f.delegate_signed_raw_from(&raw_text, hop),
        ));
    }
    for (n, ours, raw) in &f.tokens {
        rows.push(interleaved(
            format!("authorize bearer, {n} block(s), warm"),
            || (),
            |_| f.authorize_bearer_ours(ours, &request),
            |_| f.raw.authorize(raw, &request, "expense-agent", 0),
        ));
    }
    for (label, cold) in [("cold", true), ("warm", false)] {
        for token in &f.pop_tokens {
            rows.push(interleaved(
                format!("authorize + PoP, {} signed hop(s), {label}", token.hops),
                || f.pop_call(token, cold),
                |call| f.authorize_pop_ours(token, call),
                |call| f.authorize_pop_raw(token, call),
            ));
        }
    }

    if counting().is_some() {
        return;
    }
    let us = |d: Duration| format!("{:.1} µs", d.as_secs_f64() * 1e6);
    println!();
    println!("Mandate vs raw biscuit-auth, 31 interleaved rounds (goal: ours/raw ≤ 1.10)");
    println!("| operation | ours (median) | raw (median) | ours/raw (median of rounds) |");
    println!("|---|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {} | {:.2}× |",
            row.name,
            us(row.ours),
            us(row.raw),
            row.ratio
        );
    }
    println!("Goal: authorize + PoP, 4 signed hops, cold ≤ 400 µs median.");
}

// ---- the size table -------------------------------------------------------

/// Token size after 0..=MAX_HOPS signed hops, for each kind of hop.
fn size_table(f: &Fixture) {
    let sizes: Vec<Vec<(usize, usize)>> = HopScope::ALL
        .iter()
        .map(|&scope| {
            let chain = signed_chain(&f.minted, &f.minted_raw, &f.agents, scope);
            chain.assert_identical(scope);
            chain
                .ours
                .iter()
                .map(|token| {
                    let text = token.to_base64().unwrap();
                    (text.len(), byte_len(&text))
                })
                .collect()
        })
        .collect();

    println!();
    println!(
        "Token size after N signed hops: base64 characters / bytes (goal: ≤ 2,400 bytes at 4 hops)"
    );
    let header: Vec<&str> = HopScope::ALL.iter().map(|s| s.label()).collect();
    println!("| signed hops | {} |", header.join(" | "));
    println!("|---:|{}", "---:|".repeat(header.len()));
    for hops in 0..=MAX_HOPS {
        let cells: Vec<String> = sizes
            .iter()
            .map(|s| format!("{} / {}", s[hops].0, s[hops].1))
            .collect();
        println!("| {hops} | {} |", cells.join(" | "));
    }
    let growth: Vec<String> = sizes
        .iter()
        .map(|s| {
            let per_hop = |side: fn(&(usize, usize)) -> usize| {
                (side(&s[MAX_HOPS]) - side(&s[0])) as f64 / MAX_HOPS as f64
            };
            let steps: Vec<usize> = s.windows(2).map(|w| w[1].1 - w[0].1).collect();
            format!(
                "{:.0} / {:.0} (bytes per hop {}–{})",
                per_hop(|x| x.0),
                per_hop(|x| x.1),
                steps.iter().min().unwrap(),
                steps.iter().max().unwrap()
            )
        })
        .collect();
    println!("| growth per hop | {} |", growth.join(" | "));
}

fn main() {
    let fixture = fixture();
    if counting().is_some() {
        ratio_table(&fixture);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    bench_mint(&mut c, &fixture);
    bench_delegate(&mut c, &fixture);
    bench_authorize(&mut c, &fixture);
    c.final_summary();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // then criterion runs each benchmark once as a smoke test.
    let benching = std::env::args().any(|a| a == "--bench");
    if benching && std::env::var("MANDATE_BENCH_TABLE").as_deref() != Ok("0") {
        ratio_table(&fixture);
    }
    if benching {
        size_table(&fixture);
        let hits = TIME_LIMIT_HITS.load(Ordering::Relaxed);
        if hits > 0 {
            println!("{hits} call(s) hit biscuit-auth's time limit under load (ours and raw).");
        }
    }
}
