//! The five scenarios of PRODUCT.md as a deployment runs them: the first
//! mandate comes from an [`Origin`] (a root key file with `mandate issue`,
//! or a person's login exchanged at `mandate issuer serve`), agents narrow
//! and hand it on with `mandate delegate`, sign each call with `mandate
//! pop`, and `mandate serve` decides it over `POST /v1/authorize` and
//! records it in its audit trail, read back with `mandate audit --url`.
//!
//! Each scenario function asserts every decision *and* its reason (the
//! failing check, its block and its author, or the revocation), then the
//! trail. What differs between origins is only who the principal is called
//! ([`Origin::principal`]) and which task id the issuer chose; every step
//! after the first mandate is shared.
#![allow(dead_code)] // reason: each test binary uses its own subset.

use serde_json::json;

use super::http::Reply;
use super::mandate;
use super::stage::{Origin, Stage};

/// The operator's reason in the kill switch, which every denial must carry.
pub const KILL_REASON: &str = "kill switch: the session was compromised";

/// One failed check of a denial, as the API names it.
#[derive(Debug, PartialEq, Eq)]
pub struct Failed {
    pub block: Option<u64>,
    pub check: u64,
    pub author: String,
    pub rule: String,
}

/// Asserts a 200 allow.
#[track_caller]
pub fn allowed(reply: &Reply) {
    reply.assert_allowed();
    assert_eq!(reply.body["reason_kind"], "allowed", "{}", reply.body);
}

/// Asserts a 403 denial by failed checks; returns them.
#[track_caller]
pub fn failed_checks(reply: &Reply) -> Vec<Failed> {
    assert_eq!(reply.status, 403, "expected a denial: {}", reply.body);
    assert_eq!(reply.body["decision"], "deny", "{}", reply.body);
    assert_eq!(reply.body["reason_kind"], "failed_checks", "{}", reply.body);
    reply.body["failed_checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Failed {
            block: c["block"].as_u64(),
            check: c["check"].as_u64().unwrap(),
            author: c["author"].as_str().unwrap().to_owned(),
            rule: c["rule"].as_str().unwrap().to_owned(),
        })
        .collect()
}

/// Asserts a denial by exactly one failed check; returns it.
#[track_caller]
pub fn only_failed_check(reply: &Reply) -> Failed {
    let mut checks = failed_checks(reply);
    assert_eq!(checks.len(), 1, "expected one failed check: {checks:?}");
    checks.remove(0)
}

/// Asserts who a decision names: the principal, the chain (first agent to
/// acting agent) and the task.
#[track_caller]
pub fn names(reply: &Reply, principal: &str, chain: &[&str], task: &str) {
    let body = &reply.body;
    assert_eq!(body["principal"], principal, "{body}");
    assert_eq!(body["chain"], json!(chain), "{body}");
    assert_eq!(body["agent"], json!(chain.last().unwrap()), "{body}");
    assert_eq!(body["task"], task, "{body}");
}

fn says(
    decision: &str,
    kind: &str,
    principal: &str,
    chain: &[&str],
) -> (String, String, String, Vec<String>) {
    (
        decision.to_owned(),
        kind.to_owned(),
        principal.to_owned(),
        chain.iter().map(|s| (*s).to_owned()).collect(),
    )
}

// ---------------------------------------------------------------------------
// Scenario 1: expense report
// ---------------------------------------------------------------------------

/// The one report the expense agent may submit.
pub const REPORT: &str = "/reports/alice/2026-q3";

/// alice's expense agent may read her expenses and submit one report under
/// 500, nothing else; the audit trail names alice, the agent and each call.
pub fn expense_report(stage: &Stage, origin: &dyn Origin) {
    let alice = origin.principal("alice");
    stage.agent("expense-agent");
    let task = origin.first_mandate(
        stage,
        "alice",
        "expense-agent",
        "expense-report-2026-q3",
        &["expenses:read", "expenses:submit"],
        "expense.first",
    );
    // The agent keeps to the task before its first call: its own signed
    // block, each condition for one operation.
    let reads_only_her_expenses = r#"check if operation("read"), resource($r), $r.starts_with("/expenses/alice/") or operation("submit")"#;
    let one_report_under_500 = format!(
        r#"check if operation("submit"), resource("{REPORT}"), attr("amount", $a), $a <= 499 or operation("read")"#
    );
    stage.narrow(
        "expense.first",
        "expense-agent",
        &[
            "--check",
            reads_only_her_expenses,
            "--check",
            &one_report_under_500,
        ],
        "expense.token",
    );
    let call = |operation: &str, resource: &str, attrs: &[&str]| {
        let reply = stage.call(
            "expense-agent",
            "expense.token",
            "expenses",
            operation,
            resource,
            attrs,
        );
        names(&reply, &alice, &["expense-agent"], &task);
        reply
    };

    allowed(&call("read", "/expenses/alice/2026-09-14-train", &[]));
    allowed(&call("submit", REPORT, &["amount=420"]));

    let over = only_failed_check(&call("submit", REPORT, &["amount=900"]));
    assert_eq!(
        (over.block, over.author.as_str()),
        (Some(1), "agent expense-agent"),
        "{over:?}"
    );
    assert!(over.rule.contains("$a <= 499"), "{over:?}");

    let second = only_failed_check(&call("submit", "/reports/alice/2026-q4", &["amount=80"]));
    assert!(second.rule.contains(REPORT), "{second:?}");

    let elsewhere = only_failed_check(&call("read", "/expenses/bob/2026-09-01-taxi", &[]));
    assert!(elsewhere.rule.contains("/expenses/alice/"), "{elsewhere:?}");

    let delete = failed_checks(&call("delete", "/expenses/alice/2026-09-14-train", &[]));
    assert!(
        delete
            .iter()
            .any(|c| c.rule == "check if service($s), operation($o), right($s, $o)"),
        "{delete:?}"
    );

    let agent = ["expense-agent"];
    assert_eq!(
        stage.decisions(&task),
        [
            says("allow", "allowed", &alice, &agent),
            says("allow", "allowed", &alice, &agent),
            says("deny", "failed_checks", &alice, &agent),
            says("deny", "failed_checks", &alice, &agent),
            says("deny", "failed_checks", &alice, &agent),
            says("deny", "failed_checks", &alice, &agent),
        ]
    );
}

// ---------------------------------------------------------------------------
// Scenario 2: quarterly analytics, multi-hop
// ---------------------------------------------------------------------------

/// The dataset the analytics agent may read.
pub const DATASET: &str = "/datasets/q3";
/// The slice of it the charting agent may read.
pub const SLICE: &str = "/datasets/q3/revenue";

/// bob's three agents and their tokens: files `orchestrator.token`,
/// `analytics.token` and `charting.token` in the stage.
pub struct BobsChain {
    pub bob: String,
    pub task: String,
}

/// Scenario 2's chain: bob's first mandate for the orchestrator, handed
/// read-only on [`DATASET`] to analytics-agent, which hands [`SLICE`] to
/// charting-agent; each hop signed by the agent handing on, offline.
pub fn bobs_chain(stage: &Stage, origin: &dyn Origin) -> BobsChain {
    for agent in ["orchestrator", "analytics-agent", "charting-agent"] {
        stage.agent(agent);
    }
    let task = origin.first_mandate(
        stage,
        "bob",
        "orchestrator",
        "quarterly-analytics",
        &["datasets:read", "datasets:write"],
        "orchestrator.token",
    );
    stage.hand(
        "orchestrator.token",
        "orchestrator",
        "analytics-agent",
        &["--operation", "read", "--resource-prefix", DATASET],
        "analytics.token",
    );
    stage.hand(
        "analytics.token",
        "analytics-agent",
        "charting-agent",
        &["--resource-prefix", SLICE],
        "charting.token",
    );
    BobsChain {
        bob: origin.principal("bob"),
        task,
    }
}

/// What someone holding a copy of the token in file `token` and a key of
/// their own (`{forger}.key`) can do with biscuit-auth alone: append a
/// block signed by that key, claiming a hop to themselves. Written to `out`.
pub fn forge_hop(stage: &Stage, token: &str, forger: &str, out: &str) {
    use biscuit_auth::builder::{bytes, fact, string, BlockBuilder};

    let text = std::fs::read_to_string(stage.dir.file(token)).unwrap();
    let token = biscuit_auth::UnverifiedBiscuit::from_base64(text.trim()).unwrap();
    let key = mandate_core::SecretKey::read(&stage.dir.file(&format!("{forger}.key"))).unwrap();
    let claim = fact(
        mandate_core::vocab::HOP,
        &[string(forger), bytes(&key.public().to_bytes())],
    );
    let block = token
        .third_party_request()
        .unwrap()
        .create_block(
            &key.key_pair().private(),
            BlockBuilder::new().fact(claim).unwrap(),
        )
        .unwrap()
        .serialize()
        .unwrap();
    let forged = token
        .append_third_party(&block)
        .unwrap()
        .to_base64()
        .unwrap();
    std::fs::write(stage.dir.file(out), forged).unwrap();
}

/// bob's orchestrator hands read-only access to one dataset to an analytics
/// agent, which hands a narrower slice to a charting agent; a call outside
/// the slice is denied with the failing check named; a forged hop is
/// rejected.
pub fn quarterly_analytics(stage: &Stage, origin: &dyn Origin) {
    let BobsChain { bob, task } = bobs_chain(stage, origin);
    let analytics = ["orchestrator", "analytics-agent"];
    let charting = ["orchestrator", "analytics-agent", "charting-agent"];

    let read = stage.call(
        "analytics-agent",
        "analytics.token",
        "datasets",
        "read",
        "/datasets/q3/costs",
        &[],
    );
    allowed(&read);
    names(&read, &bob, &analytics, &task);

    let in_slice = stage.call(
        "charting-agent",
        "charting.token",
        "datasets",
        "read",
        "/datasets/q3/revenue/emea",
        &[],
    );
    allowed(&in_slice);
    names(&in_slice, &bob, &charting, &task);

    let outside = stage.call(
        "charting-agent",
        "charting.token",
        "datasets",
        "read",
        "/datasets/q3/costs",
        &[],
    );
    names(&outside, &bob, &charting, &task);
    let outside = only_failed_check(&outside);
    assert_eq!(
        (outside.block, outside.author.as_str()),
        (Some(2), "agent analytics-agent"),
        "{outside:?}"
    );
    assert!(
        outside
            .rule
            .contains(r#"($r + "/").starts_with("/datasets/q3/revenue/")"#),
        "{outside:?}"
    );

    let write = only_failed_check(&stage.call(
        "charting-agent",
        "charting.token",
        "datasets",
        "write",
        "/datasets/q3/revenue/emea",
        &[],
    ));
    assert_eq!(
        (write.block, write.author.as_str()),
        (Some(1), "agent orchestrator"),
        "{write:?}"
    );
    assert!(write.rule.contains(r#"operation("read")"#), "{write:?}");

    // mallory holds a copy of analytics-agent's token. The CLI will not
    // sign a hop with a key that does not hold it...
    stage.agent("mallory");
    let (copy, mallory_key, mallory_pub) = (
        format!("@{}", stage.path("analytics.token")),
        stage.path("mallory.key"),
        stage.path("mallory.key.pub"),
    );
    mandate(&[
        "delegate",
        "--token",
        &copy,
        "--signer-key",
        &mallory_key,
        "--to",
        "mallory",
        "--to-key",
        &mallory_pub,
    ])
    .error("holder");
    // ...and a hop she signs with biscuit-auth herself breaks the chain.
    forge_hop(stage, "analytics.token", "mallory", "forged.token");
    let forged = stage.call(
        "mallory",
        "forged.token",
        "datasets",
        "read",
        "/datasets/q3/costs",
        &[],
    );
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert_eq!(
        forged.body["reason_kind"], "chain_broken",
        "{}",
        forged.body
    );
    let reason = forged.reason();
    assert!(
        reason.contains("block 2 is signed by ed25519/")
            && reason.ends_with("not by the holder analytics-agent"),
        "{reason}"
    );
    assert_eq!(forged.body["chain"], json!([]), "{}", forged.body);
    assert_eq!(forged.body["agent"], "", "{}", forged.body);

    let trail = stage.decisions(&task);
    assert_eq!(
        trail[..4],
        [
            says("allow", "allowed", &bob, &analytics),
            says("allow", "allowed", &bob, &charting),
            says("deny", "failed_checks", &bob, &charting),
            says("deny", "failed_checks", &bob, &charting),
        ]
    );
    // Nothing of a forged chain is believed: no agent, no chain.
    assert_eq!(trail[4..], [says("deny", "chain_broken", &bob, &[])]);
}

// ---------------------------------------------------------------------------
// Scenario 3: refunds with runtime conditions
// ---------------------------------------------------------------------------

/// dana's helpdesk agent hands refunds to a refund agent only when amount,
/// payment method and customer tier satisfy its signed checks, decided per
/// call from the request's attributes under `refunds.datalog` (the stage
/// must run that policy).
pub fn refund(stage: &Stage, origin: &dyn Origin) {
    let dana = origin.principal("dana");
    stage.agent("helpdesk-agent");
    stage.agent("refund-agent");
    let task = origin.first_mandate(
        stage,
        "dana",
        "helpdesk-agent",
        "refunds-queue-2026-09-28",
        &["refunds:refund"],
        "helpdesk.token",
    );
    stage.hand(
        "helpdesk.token",
        "helpdesk-agent",
        "refund-agent",
        &[
            "--attr-range",
            "amount=1..100",
            "--attr-in",
            "method=card,voucher",
            "--attr-in",
            "tier=gold,platinum",
        ],
        "refund.token",
    );
    let refund = |order: &str, attrs: &[&str]| {
        let reply = stage.call(
            "refund-agent",
            "refund.token",
            "refunds",
            "refund",
            order,
            attrs,
        );
        names(&reply, &dana, &["helpdesk-agent", "refund-agent"], &task);
        reply
    };
    let by_helpdesk = |reply: &Reply, check: u64, rule: &str| {
        assert_eq!(
            only_failed_check(reply),
            Failed {
                block: Some(1),
                check,
                author: "agent helpdesk-agent".into(),
                rule: rule.into()
            }
        );
    };

    allowed(&refund(
        "/orders/1001",
        &["amount=80", "method=card", "tier=gold"],
    ));
    let amount = r#"check if attr("amount", $v), $v >= 1, $v <= 100"#;
    by_helpdesk(
        &refund("/orders/1002", &["amount=250", "method=card", "tier=gold"]),
        0,
        amount,
    );
    by_helpdesk(
        &refund("/orders/1003", &["amount=-40", "method=card", "tier=gold"]),
        0,
        amount,
    );
    by_helpdesk(
        &refund(
            "/orders/1004",
            &["amount=60", "method=bank_transfer", "tier=platinum"],
        ),
        1,
        r#"check if attr("method", $v), {"card", "voucher"}.contains($v)"#,
    );
    by_helpdesk(
        &refund(
            "/orders/1005",
            &["amount=20", "method=voucher", "tier=basic"],
        ),
        2,
        r#"check if attr("tier", $v), {"gold", "platinum"}.contains($v)"#,
    );
    // Without a tier, the service policy refuses the call on its own,
    // besides the delegated tier check.
    let no_tier = failed_checks(&refund("/orders/1006", &["amount=20", "method=voucher"]));
    assert!(
        no_tier.iter().any(|c| c.block.is_none()
            && c.author == "the service policy"
            && c.rule.contains(r#"attr("tier", $t)"#)),
        "{no_tier:?}"
    );

    let chain = ["helpdesk-agent", "refund-agent"];
    let mut expected = vec![says("allow", "allowed", &dana, &chain)];
    expected.extend((0..5).map(|_| says("deny", "failed_checks", &dana, &chain)));
    assert_eq!(stage.decisions(&task), expected);
}

// ---------------------------------------------------------------------------
// Scenario 4: insurance claim tool chain
// ---------------------------------------------------------------------------

/// The claim of scenario 4.
pub const CLAIM: &str = "/claims/8812";

/// One service of the claim's tool chain, the one call the claim makes to
/// it, and what the claims agent narrows its mandate to for it (`mandate
/// delegate` flags besides the service and operation).
struct ClaimStep<'a> {
    service: &'static str,
    operation: &'static str,
    resource: String,
    attrs: &'static [&'static str],
    narrowing: Vec<&'a str>,
}

/// One task of erin's invokes document analysis, fraud detection and
/// payment; the claims agent narrows its mandate once per service, signed,
/// and each service accepts only the token narrowed for it.
pub fn insurance_claim(stage: &Stage, origin: &dyn Origin) {
    let erin = origin.principal("erin");
    stage.agent("claims-agent");
    let task = origin.first_mandate(
        stage,
        "erin",
        "claims-agent",
        "claim-8812",
        &["documents:analyze", "fraud:score", "payments:pay"],
        "claim.token",
    );
    let (documents, payout) = (format!("{CLAIM}/documents"), format!("{CLAIM}/payout"));
    let steps = [
        ClaimStep {
            service: "documents",
            operation: "analyze",
            resource: format!("{documents}/police-report.pdf"),
            attrs: &[],
            narrowing: vec!["--resource-prefix", documents.as_str()],
        },
        ClaimStep {
            service: "fraud",
            operation: "score",
            resource: CLAIM.to_owned(),
            attrs: &[],
            narrowing: vec!["--resource-prefix", CLAIM],
        },
        ClaimStep {
            service: "payments",
            operation: "pay",
            resource: payout.clone(),
            attrs: &["amount=1800"],
            narrowing: vec![
                "--resource-prefix",
                payout.as_str(),
                "--attr-max",
                "amount=2500",
            ],
        },
    ];
    for step in &steps {
        let mut restrictions = vec!["--service", step.service, "--operation", step.operation];
        restrictions.extend_from_slice(&step.narrowing);
        stage.narrow(
            "claim.token",
            "claims-agent",
            &restrictions,
            &format!("{}.token", step.service),
        );
    }
    let mut expected = Vec::new();
    for step in &steps {
        let service = step.service;
        for token_for in steps.iter().map(|s| s.service) {
            let reply = stage.call(
                "claims-agent",
                &format!("{token_for}.token"),
                service,
                step.operation,
                &step.resource,
                step.attrs,
            );
            names(&reply, &erin, &["claims-agent"], &task);
            if token_for == service {
                allowed(&reply);
                expected.push(says("allow", "allowed", &erin, &["claims-agent"]));
                continue;
            }
            let only_its_own = format!(r#"check if service("{token_for}")"#);
            let checks = failed_checks(&reply);
            assert!(
                checks.iter().any(|c| c.rule == only_its_own
                    && c.block == Some(1)
                    && c.author == "agent claims-agent"),
                "{token_for} token at {service}: {checks:?}"
            );
            expected.push(says("deny", "failed_checks", &erin, &["claims-agent"]));
        }
    }
    let over = only_failed_check(&stage.call(
        "claims-agent",
        "payments.token",
        "payments",
        "pay",
        &payout,
        &["amount=9000"],
    ));
    assert_eq!(over.rule, r#"check if attr("amount", $v), $v <= 2500"#);
    expected.push(says("deny", "failed_checks", &erin, &["claims-agent"]));
    assert_eq!(stage.decisions(&task), expected);
}

// ---------------------------------------------------------------------------
// Scenario 5: kill switch mid-task
// ---------------------------------------------------------------------------

/// What each of bob's agents does with its token in scenario 5: (agent,
/// token file, dataset read), each inside its own scope.
pub const BOBS_WORK: [(&str, &str, &str); 3] = [
    ("orchestrator", "orchestrator.token", "/datasets/q3/revenue"),
    ("analytics-agent", "analytics.token", "/datasets/q3/costs"),
    (
        "charting-agent",
        "charting.token",
        "/datasets/q3/revenue/emea",
    ),
];

/// While scenario 2's agents are at work, the operator revokes bob's
/// principal at the registry; every agent's next call is denied with the
/// revocation as the reason, and the trail shows it.
pub fn kill_switch(stage: &Stage, origin: &dyn Origin) {
    let BobsChain { bob, task } = bobs_chain(stage, origin);
    let call = |(agent, token, resource): (&str, &str, &str)| {
        stage.call(agent, token, "datasets", "read", resource, &[])
    };
    for step in BOBS_WORK {
        allowed(&call(step));
    }

    stage.revoke_principal(&bob, KILL_REASON);
    let mut revocation = None;
    for step in BOBS_WORK {
        let denied = call(step);
        assert_eq!(denied.status, 403, "{}", denied.body);
        assert_eq!(denied.body["reason_kind"], "revoked", "{}", denied.body);
        assert_eq!(denied.body["principal"], bob.as_str(), "{}", denied.body);
        let reason = denied.reason().to_owned();
        assert!(
            reason.starts_with(&format!("revoked: principal {bob} (revocation #"))
                && reason.ends_with(&format!(": {KILL_REASON})")),
            "{reason}"
        );
        // One revocation stops them all.
        assert_eq!(*revocation.get_or_insert_with(|| reason.clone()), reason);
    }

    let chains: [&[&str]; 3] = [
        &["orchestrator"],
        &["orchestrator", "analytics-agent"],
        &["orchestrator", "analytics-agent", "charting-agent"],
    ];
    let mut expected: Vec<_> = chains
        .iter()
        .map(|chain| says("allow", "allowed", &bob, chain))
        .collect();
    expected.extend(
        chains
            .iter()
            .map(|chain| says("deny", "revoked", &bob, chain)),
    );
    assert_eq!(stage.decisions(&task), expected);
    // The registry's record of the kill switch is in bob's trail, between
    // the last allowed call and the first denied one.
    let story: Vec<String> = stage
        .audit(&["--principal", &bob])
        .iter()
        .map(|r| match r["event"].as_str().unwrap() {
            "registry" => {
                assert_eq!(r["kind"], "principal", "{r}");
                assert_eq!(r["value"], bob.as_str(), "{r}");
                "revoked".to_owned()
            }
            _ => r["decision"].as_str().unwrap().to_owned(),
        })
        .collect();
    assert_eq!(
        story,
        ["allow", "allow", "allow", "revoked", "deny", "deny", "deny"]
    );
}
