//! The five scenarios of PRODUCT.md, run end to end exactly as the programs
//! in `examples/` run them, with their key outcomes checked again here: each
//! decision *and* its reason (the failing check, its block and its author,
//! or the revocation).
//!
//! Each example's `run` already fails on an unexpected decision; these
//! assertions restate the contract independently of the examples' own
//! checks, so weakening an example cannot silently weaken CI.
//!
//! Each example is a crate of its own that declares the shared
//! `examples/common` (and `kill_switch` also declares scenario 2); gathered
//! here, those files are compiled once per example that declares them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.
#![allow(clippy::duplicate_mod)] // reason: each example declares examples/common itself.

#[allow(dead_code)] // reason: the example's `main` is not used here.
#[path = "../examples/expense_report.rs"]
mod expense_report;

#[allow(dead_code)]
#[path = "../examples/quarterly_analytics.rs"]
mod quarterly_analytics;

#[allow(dead_code)]
#[path = "../examples/refund.rs"]
mod refund;

#[allow(dead_code)]
#[path = "../examples/insurance_claim.rs"]
mod insurance_claim;

#[allow(dead_code)]
#[path = "../examples/kill_switch.rs"]
mod kill_switch;

use mandate_verifier::{Decision, FailedCheck, Reason, RevocationDenial};

/// The checks a denial failed on; panics when it was not denied by checks.
#[track_caller]
fn failed_checks(decision: &Decision) -> &[FailedCheck] {
    assert!(!decision.allowed, "expected a denial: {decision:?}");
    match &decision.reason {
        Reason::FailedChecks { checks } => checks,
        other => panic!("expected failed checks, got {other:?}"),
    }
}

/// The one check a denial failed on.
#[track_caller]
fn only_failed_check(decision: &Decision) -> &FailedCheck {
    match failed_checks(decision) {
        [check] => check,
        checks => panic!("expected exactly one failed check, got {checks:?}"),
    }
}

#[track_caller]
fn assert_allowed(decision: &Decision) {
    assert!(
        decision.allowed && matches!(decision.reason, Reason::Allowed { .. }),
        "expected an allow: {decision:?}"
    );
}

#[test]
fn expense_agent_reads_and_submits_one_report_under_500_and_nothing_else() {
    let outcome = expense_report::run().unwrap();
    assert_allowed(&outcome.read);
    assert_allowed(&outcome.submit);

    let over = only_failed_check(&outcome.over_limit);
    assert_eq!((over.block, over.author.as_str()), (Some(0), "the issuer"));
    assert!(
        over.rule.contains(r#"attr("amount", $a), $a <= 499"#),
        "{over:?}"
    );
    let second = only_failed_check(&outcome.second_report);
    assert!(second.rule.contains(expense_report::REPORT), "{second:?}");

    let delete = failed_checks(&outcome.delete);
    assert!(
        delete
            .iter()
            .any(|c| c.rule == "check if service($s), operation($o), right($s, $o)"),
        "{delete:?}"
    );

    let trail = outcome.trail();
    let calls: Vec<(&str, &str)> = trail
        .iter()
        .map(|d| (d.operation.as_str(), d.resource.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("read", "/expenses/alice/2026-09-14-train"),
            ("submit", "/reports/alice/2026-q3"),
            ("submit", "/reports/alice/2026-q3"),
            ("submit", "/reports/alice/2026-q4"),
            ("delete", "/expenses/alice/2026-09-14-train"),
        ]
    );
    for decision in trail {
        assert_eq!(decision.principal, "alice");
        assert_eq!(decision.agent, "expense-agent");
        assert_eq!(decision.chain, ["expense-agent"]);
        assert_eq!(decision.service, "expenses");
    }
}

#[test]
fn charting_agent_stays_in_its_slice_and_a_forged_hop_is_rejected() {
    let outcome = quarterly_analytics::run().unwrap();
    assert_allowed(&outcome.analytics_read);
    assert_eq!(
        outcome.analytics_read.chain,
        ["orchestrator", "analytics-agent"]
    );
    assert_allowed(&outcome.in_slice);
    assert_eq!(
        outcome.in_slice.chain,
        ["orchestrator", "analytics-agent", "charting-agent"]
    );
    assert_eq!(
        (outcome.in_slice.principal.as_str(), outcome.in_slice.depth),
        ("bob", 2)
    );

    let outside = only_failed_check(&outcome.outside_slice);
    assert_eq!(
        (outside.block, outside.author.as_str()),
        (Some(2), "agent analytics-agent")
    );
    assert!(
        outside
            .rule
            .contains(r#"$r.starts_with("/datasets/q3/revenue/")"#),
        "{outside:?}"
    );
    let write = only_failed_check(&outcome.write);
    assert_eq!(
        (write.block, write.author.as_str()),
        (Some(1), "agent orchestrator")
    );
    assert!(write.rule.contains(r#"{"read"}.contains($o)"#), "{write:?}");

    assert!(!outcome.forged.allowed);
    match &outcome.forged.reason {
        Reason::ChainBroken { error } => assert!(
            error
                .to_string()
                .starts_with("block 2 is signed by ed25519/")
                && error
                    .to_string()
                    .ends_with("not by the holder analytics-agent"),
            "{error}"
        ),
        other => panic!("expected a broken chain, got {other:?}"),
    }
    assert!(outcome.forged.chain.is_empty() && outcome.forged.agent.is_empty());
}

#[test]
fn refunds_are_decided_per_call_from_amount_method_and_tier() {
    let outcome = refund::run().unwrap();
    assert_allowed(&outcome.within);
    assert_eq!(outcome.within.chain, ["helpdesk-agent", "refund-agent"]);

    let by_helpdesk = |decision: &Decision, check: u32, rule: &str| {
        let failed = only_failed_check(decision);
        assert_eq!(
            (failed.block, failed.check, failed.author.as_str()),
            (Some(1), check, "agent helpdesk-agent"),
            "{failed:?}"
        );
        assert_eq!(failed.rule, rule);
    };
    let amount = r#"check if attr("amount", $v), $v >= 1, $v <= 100"#;
    by_helpdesk(&outcome.too_much, 0, amount);
    by_helpdesk(&outcome.negative, 0, amount);
    by_helpdesk(
        &outcome.bank_transfer,
        1,
        r#"check if attr("method", $v), {"card", "voucher"}.contains($v)"#,
    );
    by_helpdesk(
        &outcome.basic_tier,
        2,
        r#"check if attr("tier", $v), {"gold", "platinum"}.contains($v)"#,
    );

    // Without a tier, the service policy (refunds.datalog) refuses the call
    // on its own, besides the delegated tier check.
    let no_tier = failed_checks(&outcome.no_tier);
    assert!(
        no_tier.iter().any(|c| c.block.is_none()
            && c.author == "the service policy"
            && c.rule.contains(r#"attr("tier", $t)"#)),
        "{no_tier:?}"
    );
}

#[test]
fn each_claim_service_accepts_only_the_token_narrowed_for_it() {
    let outcome = insurance_claim::run().unwrap();
    assert_eq!(outcome.matrix.len(), 9);
    for cell in &outcome.matrix {
        let decision = &cell.decision;
        assert_eq!(decision.service, cell.service);
        assert_eq!(
            (decision.principal.as_str(), decision.task.as_str()),
            ("erin", "claim-8812")
        );
        if cell.token_for == cell.service {
            assert_allowed(decision);
            continue;
        }
        let only_its_own = format!(
            r#"check if service($s), {{"{}"}}.contains($s)"#,
            cell.token_for
        );
        let checks = failed_checks(decision);
        assert!(
            checks.iter().any(|c| c.rule == only_its_own
                && c.block == Some(1)
                && c.author == "agent claims-agent"),
            "{} token at {}: {checks:?}",
            cell.token_for,
            cell.service
        );
    }
    let over = only_failed_check(&outcome.over_payout);
    assert_eq!(over.rule, r#"check if attr("amount", $v), $v <= 2500"#);
}

#[test]
fn kill_switch_stops_every_agent_and_the_call_in_flight_within_the_bound() {
    let outcome = kill_switch::run().unwrap();
    let entry = &outcome.revocation;
    assert_eq!(entry.value, "bob");
    assert_eq!(entry.reason, kill_switch::REASON);
    assert_eq!(entry.revoked_by, "ops-team via operator");
    let expected = format!(
        "revoked: principal bob (revocation #{}: {})",
        entry.seq,
        kill_switch::REASON
    );

    let agents: Vec<&str> = outcome
        .agents
        .iter()
        .map(|run| run.denied.agent.as_str())
        .collect();
    assert_eq!(
        agents,
        ["orchestrator", "analytics-agent", "charting-agent"]
    );
    for run in &outcome.agents {
        assert!(run.allowed >= 1 && run.first_allowed.allowed);
        assert_eq!(run.denied.principal, "bob");
        assert!(matches!(run.denied.reason, Reason::Revoked { .. }));
        assert_eq!(run.denied.reason.to_string(), expected);
        assert!(
            run.denied_after <= kill_switch::BOUND,
            "{} denied after {:?}",
            run.denied.agent,
            run.denied_after
        );
    }

    let export = &outcome.in_flight;
    assert_allowed(&export.started);
    match &export.stopped {
        RevocationDenial::Revoked { kind, value, .. } => {
            assert_eq!((kind.as_str(), value.as_str()), ("principal", "bob"));
        }
        other => panic!("the export stopped for another reason: {other}"),
    }
    assert!(export.stopped_after <= kill_switch::BOUND);
    assert!(outcome.slowest <= kill_switch::BOUND);
}
