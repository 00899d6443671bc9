//! The Rust side of the Python package's benchmark (`python/bench/run.sh`):
//! the same calls the Python script times (a signed hop, a proof of
//! possession, proof + authorize), timed the same way — 15 batches of 200
//! calls, the median batch's time per call — so the two can be compared.
//!
//! `cargo bench -p mandate-python --bench calls` prints one JSON object.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a benchmark with fixed inputs.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use mandate_core::{
    delegate_signed, NextAgent, Proof, Request, ResourcePath, Restrictions, Right, RootKey,
    SecretKey,
};
use mandate_issuer::MintRequest;
use mandate_verifier::Verifier;

const BATCHES: usize = 15;
const PER_BATCH: u32 = 200;

/// Median over batches of the time per call, in microseconds.
fn median_us(mut call: impl FnMut()) -> f64 {
    for _ in 0..PER_BATCH {
        call();
    }
    let mut per_call: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..PER_BATCH {
                call();
            }
            start.elapsed().as_secs_f64() * 1e6 / f64::from(PER_BATCH)
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    per_call[BATCHES / 2]
}

fn main() {
    let root = RootKey {
        secret: SecretKey::generate(),
        key_id: Some(1),
    };
    let orchestrator = SecretKey::generate();
    let analytics = SecretKey::generate();
    let token = mandate_issuer::mint(
        &root,
        &MintRequest {
            principal: "bob".into(),
            agent: "orchestrator".into(),
            agent_key: Some(orchestrator.public()),
            task: Some("q3-report".into()),
            rights: vec!["analytics:read".parse::<Right>().unwrap()],
            ttl: Duration::from_secs(3600),
            restrictions: Restrictions::default(),
            now: SystemTime::now(),
        },
    )
    .unwrap()
    .to_unverified()
    .unwrap();
    let restrictions = Restrictions {
        operations: vec!["read".into()],
        resource_prefixes: vec![ResourcePath::parse("/datasets/q3").unwrap()],
        ..Restrictions::default()
    };
    let next = NextAgent {
        name: "analytics".into(),
        key: analytics.public(),
    };
    let child = delegate_signed(&token, &orchestrator, Some(&next), &restrictions).unwrap();
    let child_text = child.to_base64().unwrap();
    let verifier = Verifier::builder()
        .root_keys(mandate_core::KeySet::single(root.secret.public()))
        .require_pop(true)
        .build()
        .unwrap();
    let request = || {
        Request::validated(
            "analytics",
            "read",
            "/datasets/q3/revenue",
            Vec::new(),
            SystemTime::now(),
        )
        .unwrap()
    };

    let delegate = median_us(|| {
        black_box(delegate_signed(&token, &orchestrator, Some(&next), &restrictions).unwrap());
    });
    let pop = median_us(|| {
        let request = request();
        black_box(Proof::sign(&analytics, &child.digest_hex(), &request, request.time).to_text());
    });
    let authorize = median_us(|| {
        let request = request();
        let proof = Proof::sign(&analytics, &child.digest_hex(), &request, request.time);
        let decision = verifier
            .authorize(&child_text, &request.with_proof(proof))
            .unwrap();
        assert!(decision.allowed);
    });
    println!(
        "{{\"delegate_us\": {delegate:.2}, \"pop_us\": {pop:.2}, \"pop_authorize_us\": {authorize:.2}}}"
    );
}
