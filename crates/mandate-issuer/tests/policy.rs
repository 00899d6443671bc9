//! The issuance policy, `datalog/policies/issuance.datalog`, decided case by
//! case through one helper; then what a policy file may not do.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, SystemTime};

use mandate_core::{Right, SecretKey};
use mandate_issuer::idp::{ClaimValue, Identity};
use mandate_issuer::policy::{IssuancePolicy, Outcome, PolicyError, PolicyInput};

fn identity(groups: &[&str]) -> Identity {
    Identity {
        issuer: "https://idp.test".into(),
        subject: "sub-1".into(),
        principal: "alice@example.com".into(),
        email: Some("alice@example.com".into()),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        claims: vec![("department".into(), ClaimValue::Str("finance".into()))],
    }
}

fn rights(text: &str) -> Vec<Right> {
    text.split(' ').map(|r| r.parse().unwrap()).collect()
}

fn decide(policy: &IssuancePolicy, groups: &[&str], asked: &str) -> Outcome {
    let key = SecretKey::generate().public();
    let identity = identity(groups);
    let rights = rights(asked);
    policy.decide(&PolicyInput {
        identity: &identity,
        agent: "helper",
        agent_key: &key,
        rights: &rights,
        audience: &[],
        ttl: Duration::from_secs(7200),
        description: "",
        now: SystemTime::now(),
    })
}

fn allow(granted: &str, max_ttl: Option<u64>) -> Outcome {
    Outcome::Allow {
        rights: rights(granted),
        max_ttl: max_ttl.map(Duration::from_secs),
    }
}

#[test]
fn the_default_policy_decides_each_case() {
    let policy = IssuancePolicy::default_policy().unwrap();
    let deny = |reason: &str| Outcome::Deny {
        reason: reason.into(),
    };
    let none = "the issuance policy grants none of the requested rights";
    // (groups, rights asked, outcome)
    let cases: Vec<(&[&str], &str, Outcome)> = vec![
        (
            &["staff"],
            "analytics:read",
            allow("analytics:read", Some(3600)),
        ),
        // Narrower than asked: only what a rule grants.
        (
            &["staff"],
            "analytics:read analytics:write",
            allow("analytics:read", Some(3600)),
        ),
        (
            &["staff"],
            "expenses:submit expenses:read",
            allow("expenses:read expenses:submit", Some(3600)),
        ),
        (&[], "analytics:read", deny(none)),
        (
            &["staff", "contractors"],
            "analytics:admin analytics:read",
            deny("contractors may not be granted admin rights"),
        ),
        (
            &["staff"],
            "payments:transfer",
            Outcome::Ask {
                reason: "payments:transfer needs approval".into(),
            },
        ),
        // Mandate's own services are for operators, not for logins: a
        // staff member's agent once read the whole audit trail this way.
        (
            &["staff"],
            "audit:read",
            deny("audit:read is a right on Mandate's own audit service: for operators, never granted to a login"),
        ),
        (
            &["staff"],
            "analytics:read registry:read",
            deny("registry:read is a right on Mandate's own registry service: for operators, never granted to a login"),
        ),
        (
            &["staff", "approvers"],
            "requests:approve",
            deny("requests:approve is a right on Mandate's own requests service: for operators, never granted to a login"),
        ),
        (
            &["staff"],
            "tasks:close",
            deny("tasks:close is a right on Mandate's own tasks service: for operators, never granted to a login"),
        ),
        // Deny wins over ask.
        (
            &["contractors"],
            "payments:transfer payments:admin",
            deny("contractors may not be granted admin rights"),
        ),
    ];
    for (groups, asked, expected) in cases {
        assert_eq!(
            decide(&policy, groups, asked),
            expected,
            "{groups:?} asking {asked}"
        );
    }
}

#[test]
fn claims_reach_the_policy_as_values() {
    let policy = IssuancePolicy::from_source(
        "claims",
        r#"grant($s, $o) <- requested_right($s, $o), claim("department", "finance");
           max_ttl(60) <- email($e), $e.ends_with("@example.com");"#,
    )
    .unwrap();
    assert_eq!(
        decide(&policy, &[], "ledger:read"),
        allow("ledger:read", Some(60))
    );
}

#[test]
fn a_policy_may_not_state_what_the_issuer_states() {
    for (source, fact) in [
        (r#"group("staff");"#, "group"),
        (
            r#"requested_right("a", "b") <- subject($s);"#,
            "requested_right",
        ),
        (r#"right("a", "b");"#, "right"),
    ] {
        match IssuancePolicy::from_source("bad", source) {
            Err(PolicyError::DefinesInput { fact: got, .. }) => assert_eq!(got, fact),
            other => panic!("{source}: {other:?}"),
        }
    }
    assert!(matches!(
        IssuancePolicy::from_source("bad", "allow if true;"),
        Err(PolicyError::NotRules(_))
    ));
    assert!(matches!(
        IssuancePolicy::from_source("bad", "grant($s <- "),
        Err(PolicyError::Parse(_))
    ));
}

#[test]
fn a_policy_that_exceeds_its_limits_denies() {
    // Every pair of 120 facts: more facts than the run limits allow (10,000).
    let mut source: String = (0..120).map(|i| format!("a({i});\n")).collect();
    source.push_str("pair($x, $y) <- a($x), a($y);\n");
    source.push_str("grant($s, $o) <- requested_right($s, $o), pair(1, 2);\n");
    let policy = IssuancePolicy::from_source("runaway", &source).unwrap();
    match decide(&policy, &["staff"], "analytics:read") {
        Outcome::Deny { reason } => assert!(reason.contains("could not be evaluated"), "{reason}"),
        other => panic!("{other:?}"),
    }
}
