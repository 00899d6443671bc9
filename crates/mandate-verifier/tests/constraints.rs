//! Typed constraints compiled to Datalog, decided per call: numeric ranges,
//! one-of values, exact resources and URL host allow-lists.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, SystemTime};

use mandate_core::{delegate, KeySet, Request, ResourcePath, Restrictions, RootKey, SecretKey};
use mandate_issuer::{mint, MintRequest};
use mandate_verifier::{Reason, Verifier};

/// A bearer mandate granting `fetch:get` and `refunds:refund`, narrowed by
/// `restrictions` in one delegated block.
fn narrowed(restrictions: Restrictions) -> (Verifier, String) {
    let root = SecretKey::generate();
    let public = root.public();
    let mandate = mint(
        &RootKey {
            secret: root,
            key_id: None,
        },
        &MintRequest {
            principal: "carol".into(),
            agent: "support".into(),
            agent_key: None,
            task: Some("t".into()),
            rights: vec![
                "fetch:get".parse().unwrap(),
                "refunds:refund".parse().unwrap(),
            ],
            ttl: Duration::from_secs(600),
            restrictions: Restrictions::default(),
            now: SystemTime::now(),
        },
    )
    .unwrap();
    let child = delegate(&mandate.to_unverified().unwrap(), &restrictions).unwrap();
    let verifier = Verifier::builder()
        .root_keys(KeySet::single(public))
        .build()
        .unwrap();
    (verifier, child.to_base64().unwrap())
}

fn decide(
    verifier: &Verifier,
    token: &str,
    service: &str,
    op: &str,
    resource: &str,
    attrs: &[&str],
) -> (bool, String) {
    let mut request = Request::new(
        service,
        op,
        ResourcePath::parse(resource).unwrap(),
        SystemTime::now(),
    );
    for attr in attrs {
        request = request.with_attr_arg(attr).unwrap();
    }
    let d = verifier.authorize(token, &request).unwrap();
    (d.allowed, d.reason.to_string())
}

#[test]
fn numeric_range_and_one_of_are_decided_from_request_attributes() {
    let (v, t) = narrowed(Restrictions {
        attr_range: vec![Restrictions::parse_attr_range("amount=1..200").unwrap()],
        attr_in: vec![Restrictions::parse_attr_in("method=card,wallet").unwrap()],
        ..Restrictions::default()
    });
    let refund = |attrs: &[&str]| decide(&v, &t, "refunds", "refund", "/orders/1", attrs);
    let (allowed, reason) = refund(&["amount=200", "method=card"]);
    assert!(allowed, "{reason}");
    let (allowed, reason) = refund(&["amount=1", "method=wallet"]);
    assert!(allowed, "{reason}");
    let (allowed, reason) = refund(&["amount=201", "method=card"]);
    assert!(!allowed);
    assert!(
        reason.contains("$v >= 1") && reason.contains("$v <= 200"),
        "{reason}"
    );
    let (allowed, reason) = refund(&["amount=0", "method=card"]);
    assert!(!allowed, "{reason}");
    let (allowed, reason) = refund(&["amount=50", "method=cash"]);
    assert!(!allowed);
    assert!(reason.contains("contains($v)"), "{reason}");
    // A missing attribute fails closed.
    let (allowed, reason) = refund(&["method=card"]);
    assert!(!allowed);
    assert!(reason.contains("attr(\"amount\""), "{reason}");
}

#[test]
fn url_hosts_are_compared_after_normalisation() {
    let (v, t) = narrowed(Restrictions {
        url_hosts: vec![Restrictions::parse_url_hosts("url=api.example.com").unwrap()],
        ..Restrictions::default()
    });
    let fetch = |url: &str| decide(&v, &t, "fetch", "get", "/", &[&format!("url={url}")]);
    assert!(fetch("https://api.example.com/v1/x").0);
    assert!(fetch("https://API.Example.com./v1/x").0);
    assert!(fetch("https://evil.com@api.example.com:8443/").0);
    for bad in [
        "https://api.example.com.evil.com/",
        "https://api.example.com@evil.com/",
        "ftp://api.example.com/",
        "not a url",
    ] {
        let (allowed, reason) = fetch(bad);
        assert!(!allowed, "{bad} allowed");
        assert!(reason.contains("attr_host"), "{bad}: {reason}");
    }
}

#[test]
fn exact_resources_admit_only_the_listed_ones() {
    let (v, t) = narrowed(Restrictions {
        resources: vec![
            ResourcePath::parse("/orders/1").unwrap(),
            ResourcePath::parse("/orders/2/").unwrap(),
        ],
        ..Restrictions::default()
    });
    let refund = |r: &str| decide(&v, &t, "refunds", "refund", r, &[]);
    assert!(refund("/orders/1").0);
    assert!(refund("/orders/2").0);
    let (allowed, reason) = refund("/orders/1/items");
    assert!(!allowed);
    assert!(reason.contains("resource($r)"), "{reason}");
    assert!(matches!(
        v.authorize(
            &t,
            &Request::new(
                "refunds",
                "refund",
                ResourcePath::parse("/orders/3").unwrap(),
                SystemTime::now()
            )
        )
        .unwrap()
        .reason,
        Reason::FailedChecks { .. }
    ));
}
