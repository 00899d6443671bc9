//! Attacks found in review, each pinned by a test: tokens that share their
//! last block, mandates from a foreign root, closures and printing blow-ups
//! in delegated blocks, and raw checks that smuggle statements.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, SystemTime};

use biscuit_auth::builder::BlockBuilder;
use biscuit_auth::KeyPair;
use mandate_core::{
    delegate, KeySet, Mandate, Proof, Request, ResourcePath, Restrictions, RootKey, SecretKey,
    UnverifiedMandate,
};
use mandate_issuer::{mint, MintRequest};
use mandate_verifier::{Reason, Verifier};

fn root(secret: SecretKey) -> RootKey {
    RootKey {
        secret,
        key_id: None,
    }
}

fn minted(root: &RootKey, principal: &str, agent_key: &SecretKey) -> Mandate {
    mint(
        root,
        &MintRequest {
            principal: principal.into(),
            agent: format!("{principal}-bot"),
            agent_key: Some(agent_key.public()),
            task: Some(format!("{principal}-task")),
            rights: vec!["payments:transfer".parse().unwrap()],
            ttl: Duration::from_secs(600),
            restrictions: Restrictions::default(),
            now: SystemTime::now(),
        },
    )
    .unwrap()
}

fn transfer(at: SystemTime) -> Request {
    Request::new(
        "payments",
        "transfer",
        ResourcePath::parse("/acct/1").unwrap(),
        at,
    )
}

fn signed(key: &SecretKey, token: &str, request: Request) -> Request {
    let digest = UnverifiedMandate::from_base64(token).unwrap().digest_hex();
    let proof = Proof::sign(key, &digest, &request, request.time);
    request.with_proof(proof)
}

/// A verifier trusting a fresh root, and a mandate for `p` held by `agent`.
fn fixture() -> (Verifier, SecretKey, Mandate) {
    let root = root(SecretKey::generate());
    let verifier = Verifier::builder()
        .root_keys(KeySet::single(root.secret.public()))
        .build()
        .unwrap();
    let agent = SecretKey::generate();
    let mandate = minted(&root, "p", &agent);
    (verifier, agent, mandate)
}

/// Appends the same two blocks, signed with the same fixed key pairs, so
/// both tokens end in an identical last block (and share a token id).
fn with_shared_tail(mandate: &Mandate, first: &KeyPair, second: &KeyPair) -> String {
    let block = || BlockBuilder::new().code("check if time($t);").unwrap();
    mandate
        .biscuit()
        .append_with_keypair(first, block())
        .unwrap()
        .append_with_keypair(second, block())
        .unwrap()
        .to_base64()
        .unwrap()
}

#[test]
fn tokens_sharing_their_last_block_do_not_share_cached_claims() {
    let root = root(SecretKey::generate());
    let keys = KeySet::single(root.secret.public());
    let (alice_key, mallory_key) = (SecretKey::generate(), SecretKey::generate());
    let alice = minted(&root, "alice", &alice_key);
    let mallory = minted(&root, "mallory", &mallory_key);
    let (k, l) = (KeyPair::new(), KeyPair::new());
    let stolen = with_shared_tail(&alice, &k, &l);
    let own = with_shared_tail(&mallory, &k, &l);
    let ids = |t: &str| UnverifiedMandate::from_base64(t).unwrap().token_id_hex();
    assert_eq!(
        ids(&stolen),
        ids(&own),
        "the attack needs a shared token id"
    );

    let verifier = Verifier::builder().root_keys(keys).build().unwrap();
    let now = SystemTime::now();
    let first = verifier
        .authorize(&own, &signed(&mallory_key, &own, transfer(now)))
        .unwrap();
    assert!(first.allowed, "{}", first.reason);
    assert_eq!(first.principal, "mallory");
    // Mallory now presents alice's token with a proof made with her own key.
    let attack = verifier
        .authorize(&stolen, &signed(&mallory_key, &stolen, transfer(now)))
        .unwrap();
    assert!(!attack.allowed);
    assert_eq!(attack.principal, "alice");
    assert!(
        matches!(&attack.reason, Reason::ProofOfPossession { error: mandate_core::PopError::BadSignature { agent } } if agent == "alice-bot"),
        "{:?}",
        attack.reason
    );
}

#[test]
fn a_mandate_verified_under_another_root_is_refused() {
    let (ours, theirs) = (SecretKey::generate(), SecretKey::generate());
    let verifier = Verifier::builder()
        .root_keys(KeySet::single(ours.public()))
        .build()
        .unwrap();
    let agent = SecretKey::generate();
    let foreign = minted(&root(theirs), "eve", &agent);
    let err = verifier
        .authorize_mandate(&foreign, &transfer(SystemTime::now()))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("root this verifier does not trust"),
        "{err}"
    );
}

fn bearer_child(check: &str) -> (Verifier, String) {
    let root = SecretKey::generate();
    let verifier = Verifier::builder()
        .root_keys(KeySet::single(root.public()))
        .build()
        .unwrap();
    let mandate = mint(
        &RootKey {
            secret: root,
            key_id: None,
        },
        &MintRequest {
            principal: "p".into(),
            agent: "a".into(),
            agent_key: None,
            task: None,
            rights: vec!["payments:transfer".parse().unwrap()],
            ttl: Duration::from_secs(600),
            restrictions: Restrictions::default(),
            now: SystemTime::now(),
        },
    )
    .unwrap();
    let child = delegate(
        &mandate.to_unverified().unwrap(),
        &Restrictions {
            checks: vec![check.into()],
            ..Restrictions::default()
        },
    )
    .unwrap();
    (verifier, child.to_base64().unwrap())
}

#[test]
fn closures_in_delegated_blocks_are_denied_before_evaluation() {
    let (verifier, token) = bearer_child(
        "check if time($t), [1, 2, 3].any($a -> [1, 2, 3].any($b -> $a + $b == -1)) or time($t)",
    );
    let d = verifier
        .authorize(&token, &transfer(SystemTime::now()))
        .unwrap();
    assert!(!d.allowed);
    assert!(
        matches!(&d.reason, Reason::TooComplex { message } if message.contains("closure")),
        "{:?}",
        d.reason
    );
    // `||` is not a closure for this purpose.
    let (verifier, token) = bearer_child("check if time($t), true || false");
    assert!(
        verifier
            .authorize(&token, &transfer(SystemTime::now()))
            .unwrap()
            .allowed
    );
}

#[test]
fn raw_checks_cannot_smuggle_facts_or_rules() {
    let smuggled = Restrictions {
        checks: vec![r#"check if true; right("bank", "transfer"); principal("root")"#.into()],
        ..Restrictions::default()
    };
    let err = smuggled.to_block(0).unwrap_err();
    assert!(err.to_string().contains("exactly one check"), "{err}");
}

#[test]
fn a_block_over_the_structural_bounds_is_refused_before_anything_walks_it() {
    let (verifier, agent, mandate) = fixture();
    // One 10 KB string (over the 4 KiB symbol bound) referenced 1 000 times
    // (over the 256-statement bound).
    let big = "x".repeat(10_000);
    let mut block = BlockBuilder::new();
    for i in 0..1_000 {
        block = block
            .fact(biscuit_auth::builder::fact(
                "f",
                &[
                    biscuit_auth::builder::string(&big),
                    biscuit_auth::builder::int(i),
                ],
            ))
            .unwrap();
    }
    let token = mandate
        .biscuit()
        .append_with_keypair(&KeyPair::new(), block)
        .unwrap()
        .to_base64()
        .unwrap();
    let request = signed(&agent, &token, transfer(SystemTime::now()));
    let d = verifier.authorize(&token, &request).unwrap();
    assert!(!d.allowed);
    assert!(
        matches!(
            &d.reason,
            Reason::ChainBroken {
                error: mandate_core::ChainError::Unreadable(mandate_core::ReadError::OverLimit {
                    block: 1,
                    ..
                })
            }
        ),
        "{:?}",
        d.reason
    );
}

/// The deepest nesting a token can carry (biscuit's decoder stops at 100
/// nested protobuf messages, two per closure level) is decided on a thread
/// with an eighth of the 2 MiB default stack: verification, the structural
/// read and the denial together stay far inside the stack a server thread
/// has.
#[test]
fn the_deepest_token_is_decided_on_a_quarter_megabyte_stack() {
    use biscuit_auth::builder::{self, Binary, Check, CheckKind, Expression, Op, Rule, Term};
    let (verifier, agent, mandate) = fixture();
    let mut ops = vec![Op::Value(Term::Bool(true))];
    for _ in 0..45 {
        ops = vec![
            Op::Value(Term::Bool(true)),
            Op::Closure(vec![], ops),
            Op::Binary(Binary::LazyAnd),
        ];
    }
    let check = Check {
        queries: vec![Rule::new(
            builder::pred::<Term>("query", &[]),
            vec![],
            vec![Expression { ops }],
            vec![],
        )],
        kind: CheckKind::One,
    };
    let token = mandate
        .biscuit()
        .append_with_keypair(&KeyPair::new(), BlockBuilder::new().check(check).unwrap())
        .unwrap()
        .to_base64()
        .unwrap();
    let request = signed(&agent, &token, transfer(SystemTime::now()));
    let decision = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || verifier.authorize(&token, &request).unwrap())
        .unwrap()
        .join()
        .unwrap();
    assert!(!decision.allowed);
    assert!(
        matches!(
            &decision.reason,
            Reason::ChainBroken {
                error: mandate_core::ChainError::Unreadable(mandate_core::ReadError::OverLimit {
                    block: 1,
                    ..
                })
            }
        ),
        "{:?}",
        decision.reason
    );
}
