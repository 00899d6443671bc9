//! Library-level tests of chain verification and proof of possession that
//! the CLI cannot express: replay inside one verifier, and the shared replay
//! cache between clones.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, SystemTime};

use mandate_core::{
    delegate_signed, KeySet, NextAgent, Proof, Request, ResourcePath, Restrictions, RootKey,
    SecretKey,
};
use mandate_issuer::{mint, MintRequest};
use mandate_verifier::{Reason, Verifier};

struct Fixture {
    keys: KeySet,
    verifier: Verifier,
    token: String,
    token_id: String,
    holder: SecretKey,
}

/// bob → orchestrator → analytics, read-only on /datasets/q3.
fn fixture() -> Fixture {
    let root = SecretKey::generate();
    let orchestrator = SecretKey::generate();
    let analytics = SecretKey::generate();
    let root_public = root.public();
    let mandate = mint(
        &RootKey {
            secret: root,
            key_id: Some(1),
        },
        &MintRequest {
            principal: "bob".into(),
            agent: "orchestrator".into(),
            agent_key: Some(orchestrator.public()),
            task: Some("q3".into()),
            rights: vec!["analytics:read".parse().unwrap()],
            ttl: Duration::from_secs(3600),
            restrictions: Restrictions::default(),
            now: SystemTime::now(),
        },
    )
    .unwrap();
    let hop = delegate_signed(
        &mandate.to_unverified().unwrap(),
        &orchestrator,
        Some(&NextAgent {
            name: "analytics".into(),
            key: analytics.public(),
        }),
        &Restrictions {
            resource_prefixes: vec![ResourcePath::parse("/datasets/q3").unwrap()],
            ..Restrictions::default()
        },
    )
    .unwrap();
    let mut keys = KeySet::new();
    keys.insert(Some(1), root_public);
    Fixture {
        verifier: Verifier::builder().root_keys(keys.clone()).build().unwrap(),
        keys,
        token: hop.to_base64().unwrap(),
        token_id: hop.digest_hex(),
        holder: analytics,
    }
}

fn read(resource: &str, at: SystemTime) -> Request {
    Request::new(
        "analytics",
        "read",
        ResourcePath::parse(resource).unwrap(),
        at,
    )
}

fn signed(f: &Fixture, request: Request) -> Request {
    let proof = Proof::sign(&f.holder, &f.token_id, &request, request.time);
    request.with_proof(proof)
}

#[test]
fn chain_and_depth_are_reported() {
    let f = fixture();
    let d = f
        .verifier
        .authorize(
            &f.token,
            &signed(&f, read("/datasets/q3/rev", SystemTime::now())),
        )
        .unwrap();
    assert!(d.allowed, "{}", d.reason);
    assert_eq!(d.chain, ["orchestrator", "analytics"]);
    assert_eq!(d.agent, "analytics");
    assert_eq!(d.depth, 1);
    assert_eq!(d.principal, "bob");
}

#[test]
fn a_replayed_proof_is_denied_even_by_a_clone() {
    let f = fixture();
    let request = signed(&f, read("/datasets/q3/rev", SystemTime::now()));
    let first = f.verifier.authorize(&f.token, &request).unwrap();
    assert!(first.allowed, "{}", first.reason);
    for verifier in [&f.verifier, &f.verifier.clone()] {
        let again = verifier.authorize(&f.token, &request).unwrap();
        assert!(!again.allowed);
        assert!(
            matches!(
                &again.reason,
                Reason::ProofOfPossession {
                    error: mandate_core::PopError::Replayed
                }
            ),
            "{:?}",
            again.reason
        );
    }
}

#[test]
fn a_full_replay_cache_fails_closed() {
    let f = fixture();
    let tiny = Verifier::builder()
        .root_keys(f.keys.clone())
        .replay_capacity(1)
        .build()
        .unwrap();
    let now = SystemTime::now();
    let first = tiny
        .authorize(&f.token, &signed(&f, read("/datasets/q3/a", now)))
        .unwrap();
    assert!(first.allowed, "{}", first.reason);
    let second = tiny
        .authorize(&f.token, &signed(&f, read("/datasets/q3/b", now)))
        .unwrap();
    assert!(!second.allowed);
    assert!(
        second.reason.to_string().contains("replay cache full"),
        "{}",
        second.reason
    );
}
