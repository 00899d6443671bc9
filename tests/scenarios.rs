//! The five scenarios of PRODUCT.md, run end to end exactly as the programs
//! in `examples/` run them, with their key outcomes checked again here: each
//! decision *and* its reason (the failing check, its block and its author,
//! or the revocation).
//!
//! Each example's `run` already fails on an unexpected decision; these
//! assertions restate the contract independently of the examples' own
//! checks, so weakening an example cannot silently weaken CI.
//!
//! Each scenario's services record every decision (and the kill switch's
//! registry its revocation) in an audit store through the real audit
//! writer, and the scenario prints its trail read back from that store. Here
//! the real binary reads the same store afterwards: the trail the scenario
//! printed must be what `mandate audit --store` shows, line for line; the
//! log must pass `mandate audit verify`; and the records `mandate audit
//! --json` reads back are checked: who, for whom, via which chain (each link
//! with its key fingerprint), what, the outcome and the kind of reason.
//!
//! Each example is a crate of its own that declares the shared
//! `examples/common` (and `kill_switch` also declares scenario 2); gathered
//! here, those files are compiled once per example that declares them.
//!
//! Then each scenario runs once more as a deployment runs it, from a root
//! key file: `mandate issue`, `mandate delegate`, `mandate pop` and `mandate
//! serve` over HTTP, with the steps of `tests/common/scenario.rs`, which
//! `tests/scenarios_login.rs` runs again starting from a person's login.

#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.
#![allow(clippy::duplicate_mod)] // reason: each example declares examples/common itself.

#[path = "common/mod.rs"]
mod common;

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

use std::path::Path;

use common::scenario;
use common::stage::{RootKeyFile, Stage};

use mandate_audit::{DecisionRecord, Event, Outcome as Decided, Record};
use mandate_verifier::{Decision, FailedCheck, Reason, RevocationDenial};

use common::mandate;

/// The records a scenario left in its audit store, as the real binary reads
/// them from the folder (`mandate audit --store DIR --json`), once it has
/// checked that the trail the scenario printed is the store's, line for line
/// (`mandate audit --store DIR`), and that the log verifies.
/// (Each example compiles its own copy of the scenarios' shared module, so
/// this takes the trail's parts rather than one of its types.)
fn stored(store: &Path, printed: &[String]) -> Vec<Record> {
    let store = store.display().to_string();
    let shown = mandate(&["audit", "--store", &store]);
    let printed: Vec<&str> = printed.iter().map(|line| line.trim()).collect();
    assert_eq!(
        shown.ok().lines().collect::<Vec<_>>(),
        printed,
        "the printed trail is not the store's\n{shown}"
    );
    assert!(!printed.is_empty(), "the scenario printed no trail");
    let verify = mandate(&["audit", "verify", "--store", &store]);
    assert!(
        verify
            .ok()
            .starts_with(&format!("ok: {} record(s)", printed.len())),
        "{verify}"
    );
    let json = mandate(&["audit", "--store", &store, "--json"]);
    json.ok()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// The decision records among `records`, in order, each checked against the
/// decision it was made from.
fn recorded(records: &[Record], decisions: &[&Decision]) -> Vec<DecisionRecord> {
    assert_eq!(records.len(), decisions.len(), "{records:?}");
    records
        .iter()
        .zip(decisions)
        .map(|(record, decision)| {
            let Event::Decision(record) = &record.event else {
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
            assert_eq!(record.api, quarterly_analytics::common::API);
            record.clone()
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

    let trail = outcome.decisions();
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

    let store = stored(&outcome.trail.store, &outcome.trail.printed);
    let records = recorded(&store, &trail);
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

    let store = stored(&outcome.trail.store, &outcome.trail.printed);
    let records = recorded(&store, &outcome.decisions());
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

    let store = stored(&outcome.trail.store, &outcome.trail.printed);
    let records = recorded(&store, &outcome.decisions());
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

    let store = stored(&outcome.trail.store, &outcome.trail.printed);
    let records = recorded(&store, &outcome.decisions());
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
fn kill_switch_stops_every_agent_and_the_call_in_flight_once_revoked_and_the_trail_says_so() {
    // Order and outcome, not time: how soon each agent is stopped is the
    // example program's own claim (`kill_switch::BOUND`, checked by its
    // `main`) and the propagation benchmark's; a loaded machine can break
    // any bound, and no load can reorder what is asserted here.
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
    }

    let export = &outcome.in_flight;
    assert_allowed(&export.started);
    match &export.stopped {
        RevocationDenial::Revoked { kind, value, .. } => {
            assert_eq!((kind.as_str(), value.as_str()), ("principal", "bob"));
        }
        other => panic!("the export stopped for another reason: {other}"),
    }

    // The trail, as the store holds it: the registry's one record of the
    // revocation; each agent's calls allowed (as many as it made) and then
    // its one denial, after the revocation's record and naming it; the
    // export's start, allowed, before it.
    let records = stored(&outcome.trail.store, &outcome.trail.printed);
    let registry: Vec<(usize, &Record)> = records
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r.event, Event::Registry(_)))
        .collect();
    let [(revoked_at, revocation)] = registry.as_slice() else {
        panic!("expected one registry record: {records:?}");
    };
    let Event::Registry(r) = &revocation.event else {
        unreachable!()
    };
    assert_eq!(
        (
            r.kind.as_str(),
            r.value.as_str(),
            r.by.as_str(),
            r.revocation
        ),
        ("principal", "bob", "ops-team via operator", entry.seq)
    );
    let decisions: Vec<(usize, &DecisionRecord)> = records
        .iter()
        .enumerate()
        .filter_map(|(at, r)| match &r.event {
            Event::Decision(d) => Some((at, d)),
            _ => None,
        })
        .collect();
    assert_eq!(decisions.len() + 1, records.len(), "{records:?}");
    let revoked = mandate_audit::ReasonRecord::Revoked {
        revoked_kind: "principal".into(),
        value: "bob".into(),
        revocation: entry.seq,
        reason: kill_switch::REASON.into(),
    };
    for (at, d) in &decisions {
        assert_eq!(
            (d.principal.as_str(), d.task.as_str()),
            ("bob", "quarterly-analytics"),
            "{d}"
        );
        assert_eq!(chain(d).last().copied(), Some(d.agent.as_str()), "{d}");
        if d.decision == Decided::Deny {
            assert_eq!(d.reason, revoked, "{d}");
            assert!(at > revoked_at, "a denial before the revocation: {d}");
            assert!(d.revocation_seq >= Some(entry.seq), "{d:?}");
        } else {
            assert_eq!(verdict(d), says(Decided::Allow, "allowed"), "{d}");
        }
    }
    let calls = |agent: &str, resource: &str| -> Vec<(usize, (Decided, String))> {
        decisions
            .iter()
            .filter(|(_, d)| d.agent == agent && d.resource == resource)
            .map(|(at, d)| (*at, verdict(d)))
            .collect()
    };
    for run in &outcome.agents {
        let calls = calls(&run.denied.agent, &run.denied.resource);
        let verdicts: Vec<_> = calls.iter().map(|(_, v)| v.clone()).collect();
        let mut want = vec![says(Decided::Allow, "allowed"); run.allowed];
        want.push(says(Decided::Deny, "revoked"));
        assert_eq!(verdicts, want, "{}'s calls", run.denied.agent);
    }
    let export_calls = calls(chain_end(&export.started), &export.started.resource);
    assert!(
        matches!(export_calls.as_slice(), [(at, v)] if at < revoked_at && *v == says(Decided::Allow, "allowed")),
        "{export_calls:?}"
    );

    // `mandate audit trace` of the task tells the whole story, ended by the revocation.
    let store = outcome.trail.store.display().to_string();
    let trace = mandate(&["audit", "trace", "quarterly-analytics", "--store", &store]);
    let lines: Vec<&str> = trace.ok().lines().collect();
    let allowed = decisions.len() - outcome.agents.len();
    assert_eq!(
        lines[0],
        format!(
            "trace of quarterly-analytics: {} record(s), {allowed} allowed, 3 denied",
            records.len()
        ),
        "{trace}"
    );
    let ended = format!(
        "  ended by: #{} ops-team via operator: revoked principal bob",
        revocation.seq
    );
    assert!(lines.iter().any(|l| l.starts_with(&ended)), "{trace}");
}

/// The acting agent of `decision` (the last of its chain).
fn chain_end(decision: &Decision) -> &str {
    decision.chain.last().map_or("", String::as_str)
}

// ---------------------------------------------------------------------------
// The same scenarios through the binary and `mandate serve`, from a root key file
// ---------------------------------------------------------------------------

#[test]
fn expense_report_through_mandate_serve() {
    scenario::expense_report(&Stage::start(None), &RootKeyFile);
}

#[test]
fn quarterly_analytics_through_mandate_serve() {
    scenario::quarterly_analytics(&Stage::start(None), &RootKeyFile);
}

#[test]
fn refund_through_mandate_serve() {
    scenario::refund(&Stage::start(Some("refunds.datalog")), &RootKeyFile);
}

#[test]
fn insurance_claim_through_mandate_serve() {
    scenario::insurance_claim(&Stage::start(None), &RootKeyFile);
}

#[test]
fn kill_switch_through_mandate_serve() {
    scenario::kill_switch(&Stage::start(None), &RootKeyFile);
}
