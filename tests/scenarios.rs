//! The five scenarios of PRODUCT.md, run end to end exactly as the programs
//! in `examples/` run them, with their key outcomes checked again here: each
//! decision *and* its reason (the failing check, its block and its author,
//! or the revocation).
//!
//! Each example's `run` already fails on an unexpected decision; these
//! assertions restate the contract independently of the examples' own
//! checks, so weakening an example cannot silently weaken CI.
//!
//! Every decision of a scenario is then recorded in an audit log as a
//! service records it (`DecisionRecord::new`, through an `AuditWriter`),
//! the log is verified, and the records read back are checked: who, for
//! whom, via which chain (each link with its key fingerprint), what, the
//! outcome and the kind of reason, as `mandate audit --json` shows them.
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

use std::sync::Arc;

use mandate_audit::{
    AuditLog, AuditWriter, DecisionContext, DecisionRecord, Event, Filter, MemoryLog,
    Outcome as Decided, Record, WriterConfig, WriterKey,
};
use mandate_verifier::{Decision, FailedCheck, Reason, RevocationDenial};

/// Records `events` in a fresh audit log, through its writer as a server
/// does, verifies the log, and returns every record read back from it.
fn record_all(events: Vec<Event>) -> Vec<Record> {
    let log: Arc<dyn AuditLog> = Arc::new(MemoryLog::new());
    let writer = AuditWriter::start(
        Arc::clone(&log),
        WriterKey::generate(),
        WriterConfig::default(),
    )
    .unwrap();
    for event in events {
        writer.append_blocking(event).unwrap();
    }
    writer.close_blocking().unwrap();
    let verified = mandate_audit::verify(&*log, &[]).unwrap().unwrap();
    let records = mandate_audit::query_all(&*log, &Filter::default(), None).unwrap();
    assert_eq!(verified.records, records.len() as u64);
    records
}

/// The decision event of `decision`, as a verifier in this process records it.
fn decision_event(decision: &Decision) -> Event {
    let context = DecisionContext {
        api: "scenario",
        request_id: String::new(),
        verifier: "scenarios".into(),
        revocation_seq: None,
        token_fingerprint: String::new(),
    };
    Event::Decision(DecisionRecord::new(decision, &context))
}

/// Records `decisions` and returns their records, in order, each checked
/// against the decision it was made from.
fn recorded(decisions: &[&Decision]) -> Vec<DecisionRecord> {
    let records = record_all(decisions.iter().map(|d| decision_event(d)).collect());
    assert_eq!(records.len(), decisions.len());
    records
        .into_iter()
        .zip(decisions)
        .map(|(record, decision)| {
            let Event::Decision(record) = record.event else {
                panic!("expected a decision record: {record:?}");
            };
            assert_eq!(record.principal, decision.principal);
            assert_eq!(record.agent, decision.agent);
            assert_eq!(record.task, decision.task);
            assert_eq!(
                (
                    record.service.as_str(),
                    record.operation.as_str(),
                    record.resource.as_str()
                ),
                (
                    decision.service.as_str(),
                    decision.operation.as_str(),
                    decision.resource.as_str()
                )
            );
            assert_eq!(record.token_id, decision.token_id);
            record
        })
        .collect()
}

/// The chain's agent names.
fn chain(record: &DecisionRecord) -> Vec<&str> {
    // Every agent of the scenarios holds a key, so every link names its fingerprint.
    for link in &record.chain {
        assert!(link.key.starts_with("sha256:"), "{record:?}");
    }
    record.chain.iter().map(|l| l.name.as_str()).collect()
}

/// `allow` or `deny` and the reason's kind, as `mandate audit --json` shows them.
fn verdict(record: &DecisionRecord) -> (Decided, String) {
    let json = serde_json::to_value(&record.reason).unwrap();
    (record.decision, json["kind"].as_str().unwrap().to_owned())
}

/// `(decision, reason kind)` for people writing expectations.
fn says(decision: Decided, kind: &str) -> (Decided, String) {
    (decision, kind.to_owned())
}

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

    let records = recorded(&trail);
    let seen: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.principal.as_str(),
                chain(r),
                r.task.as_str(),
                r.service.as_str(),
                r.operation.as_str(),
                verdict(r),
            )
        })
        .collect();
    let expected = |operation, said| {
        (
            "alice",
            vec!["expense-agent"],
            "expense-report-2026-q3",
            "expenses",
            operation,
            said,
        )
    };
    assert_eq!(
        seen,
        [
            expected("read", says(Decided::Allow, "allowed")),
            expected("submit", says(Decided::Allow, "allowed")),
            expected("submit", says(Decided::Deny, "failed_checks")),
            expected("submit", says(Decided::Deny, "failed_checks")),
            expected("delete", says(Decided::Deny, "failed_checks")),
        ]
    );
    // Submitting an expense carries an amount: the record keeps its digest only.
    assert!(!records[2].attrs_sha256.is_empty());
    match &records[2].reason {
        mandate_audit::ReasonRecord::FailedChecks { checks } => {
            assert_eq!(
                (checks[0].block, checks[0].author.as_str()),
                (Some(0), "the issuer")
            );
            assert!(checks[0].rule.contains("499"), "{checks:?}");
        }
        other => panic!("{other:?}"),
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
            .contains(r#"($r + "/").starts_with("/datasets/q3/revenue/")"#),
        "{outside:?}"
    );
    let write = only_failed_check(&outcome.write);
    assert_eq!(
        (write.block, write.author.as_str()),
        (Some(1), "agent orchestrator")
    );
    assert!(write.rule.contains(r#"operation("read")"#), "{write:?}");

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

    let records = recorded(&[
        &outcome.analytics_read,
        &outcome.in_slice,
        &outcome.outside_slice,
        &outcome.write,
        &outcome.forged,
    ]);
    let analytics = ["orchestrator", "analytics-agent"];
    let charting = ["orchestrator", "analytics-agent", "charting-agent"];
    let seen: Vec<_> = records[..4]
        .iter()
        .map(|r| (r.principal.as_str(), chain(r), verdict(r)))
        .collect();
    assert_eq!(
        seen,
        [
            ("bob", analytics.to_vec(), says(Decided::Allow, "allowed")),
            ("bob", charting.to_vec(), says(Decided::Allow, "allowed")),
            (
                "bob",
                charting.to_vec(),
                says(Decided::Deny, "failed_checks")
            ),
            (
                "bob",
                charting.to_vec(),
                says(Decided::Deny, "failed_checks")
            ),
        ]
    );
    assert!(
        records[1].to_string().starts_with(
            "charting-agent (via orchestrator → analytics-agent) for bob: datasets read "
        ),
        "{}",
        records[1]
    );
    // Nothing of a forged chain is believed: no agent, no chain.
    let forged = &records[4];
    assert_eq!(verdict(forged), says(Decided::Deny, "chain_broken"));
    assert!(
        forged.chain.is_empty() && forged.agent.is_empty(),
        "{forged:?}"
    );
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

    let records = recorded(&[
        &outcome.within,
        &outcome.too_much,
        &outcome.negative,
        &outcome.bank_transfer,
        &outcome.basic_tier,
        &outcome.no_tier,
    ]);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record.principal, "dana");
        assert_eq!(record.task, "refunds-queue-2026-09-28");
        assert_eq!(chain(record), ["helpdesk-agent", "refund-agent"]);
        assert!(!record.attrs_sha256.is_empty(), "{record:?}");
        let expected = if i == 0 {
            says(Decided::Allow, "allowed")
        } else {
            says(Decided::Deny, "failed_checks")
        };
        assert_eq!(verdict(record), expected, "{record}");
    }
    // Each refusal names the helpdesk agent's block that refused it.
    for record in &records[1..5] {
        let mandate_audit::ReasonRecord::FailedChecks { checks } = &record.reason else {
            panic!("{record:?}");
        };
        assert!(
            checks
                .iter()
                .any(|c| c.block == Some(1) && c.author == "agent helpdesk-agent"),
            "{checks:?}"
        );
    }
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
        let only_its_own = format!(r#"check if service("{}")"#, cell.token_for);
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

    let mut decisions: Vec<&Decision> = outcome.matrix.iter().map(|c| &c.decision).collect();
    decisions.push(&outcome.over_payout);
    let records = recorded(&decisions);
    for (record, cell) in records.iter().zip(&outcome.matrix) {
        assert_eq!(
            (record.principal.as_str(), record.task.as_str()),
            ("erin", "claim-8812")
        );
        assert_eq!(record.service, cell.service);
        assert_eq!(chain(record).first(), Some(&"claims-agent"), "{record}");
        let expected = if cell.token_for == cell.service {
            says(Decided::Allow, "allowed")
        } else {
            says(Decided::Deny, "failed_checks")
        };
        assert_eq!(verdict(record), expected, "{record}");
    }
    let over = records.last().unwrap();
    assert_eq!(verdict(over), says(Decided::Deny, "failed_checks"));
    assert_eq!(over.principal, "erin");
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

    // The trail: each agent's first call allowed, the registry's revocation,
    // then each agent denied by it.
    let mut events: Vec<Event> = outcome
        .agents
        .iter()
        .map(|run| decision_event(&run.first_allowed))
        .collect();
    events.push(decision_event(&export.started));
    events.push(Event::Registry(mandate_server::audit::registry_event(
        entry,
    )));
    events.extend(outcome.agents.iter().map(|run| decision_event(&run.denied)));
    let records = record_all(events);
    assert_eq!(records.len(), 8);
    let mut chains = Vec::new();
    for record in &records {
        match &record.event {
            Event::Decision(d) => {
                assert_eq!(
                    (d.principal.as_str(), d.task.as_str()),
                    ("bob", "quarterly-analytics")
                );
                chains.push((chain(d).last().copied().unwrap(), verdict(d)));
                if d.decision == Decided::Deny {
                    assert_eq!(
                        d.reason,
                        mandate_audit::ReasonRecord::Revoked {
                            revoked_kind: "principal".into(),
                            value: "bob".into(),
                            revocation: entry.seq,
                            reason: kill_switch::REASON.into(),
                        }
                    );
                }
            }
            Event::Registry(r) => {
                assert_eq!(record.seq, 5);
                assert_eq!(
                    (
                        r.kind.as_str(),
                        r.value.as_str(),
                        r.by.as_str(),
                        r.revocation
                    ),
                    ("principal", "bob", "ops-team via operator", entry.seq)
                );
            }
            other => panic!("unexpected record {other:?}"),
        }
    }
    let allow = says(Decided::Allow, "allowed");
    let revoked = says(Decided::Deny, "revoked");
    assert_eq!(
        chains,
        [
            ("orchestrator", allow.clone()),
            ("analytics-agent", allow.clone()),
            ("charting-agent", allow.clone()),
            (chain_end(&export.started), allow.clone()),
            ("orchestrator", revoked.clone()),
            ("analytics-agent", revoked.clone()),
            ("charting-agent", revoked),
        ]
    );
    // `mandate audit trace` of the task tells the whole story, ended by the revocation.
    let story = mandate_audit::trace(&records, "quarterly-analytics");
    assert_eq!(story.len(), 8);
    let lines = mandate_audit::trace::story("quarterly-analytics", &story);
    assert!(
        lines[0].ends_with("8 record(s), 4 allowed, 3 denied"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("  ended by: #5 ops-team via operator: revoked principal bob")),
        "{lines:?}"
    );
}

/// The acting agent of `decision` (the last of its chain).
fn chain_end(decision: &Decision) -> &str {
    decision.chain.last().map_or("", String::as_str)
}
