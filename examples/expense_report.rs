//! Scenario 1, expense report: alice asks an expense agent to file her Q3
//! report. The agent may read her expenses and submit one report of less
//! than 500, nothing else, and every call it makes leaves an audit record
//! naming alice, the agent and the call; the trail is printed read back
//! from the expense service's audit store.
//!
//! `cargo run -p mandate-cli --example expense_report`

#[path = "common/mod.rs"]
mod common;

use anyhow::{ensure, Result};
use common::{
    expect_allowed, expect_denied, say_call, Agent, AuditTrail, Issuer, Service, StoredTrail,
};
use mandate_core::Restrictions;
use mandate_verifier::{Decision, Policy};

/// The one report the agent may submit.
pub const REPORT: &str = "/reports/alice/2026-q3";

/// Every call of the scenario, as the expense service decided it.
pub struct Outcome {
    /// Reading one of alice's expenses: allowed.
    pub read: Decision,
    /// Submitting the report, for 420: allowed.
    pub submit: Decision,
    /// Submitting it for 900: denied by the amount bound.
    pub over_limit: Decision,
    /// Submitting a second report: denied, one report only.
    pub second_report: Decision,
    /// Deleting an expense: denied, the mandate grants no delete.
    pub delete: Decision,
    /// The expense service's audit trail, read back from its store.
    pub trail: StoredTrail,
}

impl Outcome {
    /// Every decision, in call order.
    pub fn decisions(&self) -> [&Decision; 5] {
        [
            &self.read,
            &self.submit,
            &self.over_limit,
            &self.second_report,
            &self.delete,
        ]
    }
}

/// Runs the scenario, printing the audit trail read back from the store;
/// fails unless every call was decided as expected.
pub fn run() -> Result<Outcome> {
    println!("Scenario 1: alice's expense agent files her Q3 report\n");
    let issuer = Issuer::generate();
    let agent = Agent::new("expense-agent");

    // Each condition applies to one operation, so each is a raw check saying
    // "this operation under its condition, or the other operation": a
    // structured `attr_max` would apply to every call and demand an amount
    // on reads too.
    let reads_only_her_expenses = r#"check if operation("read"), resource($r), $r.starts_with("/expenses/alice/") or operation("submit")"#;
    let one_report_under_500 = format!(
        r#"check if operation("submit"), resource("{REPORT}"), attr("amount", $a), $a <= 499 or operation("read")"#
    );
    let scope = Restrictions {
        checks: vec![reads_only_her_expenses.into(), one_report_under_500],
        ..Restrictions::default()
    };
    let token = issuer.mint(
        "alice",
        &agent,
        "expense-report-2026-q3",
        &["expenses:read", "expenses:submit"],
        scope,
    )?;
    println!("1. the issuer mints alice's mandate for expense-agent: expenses:read on");
    println!("   /expenses/alice, expenses:submit of {REPORT} under 500, 15 minutes\n");

    let trail = AuditTrail::open()?;
    let expenses = Service::new(
        "expenses",
        issuer.trusted_keys(),
        Policy::default_policy(),
        common::in_process_revocations()?,
        &trail,
    )?;
    println!("2. expense-agent calls the expense service, which records each decision:");
    let call = |operation: &str, resource: &str, attrs: &[&str]| -> Result<Decision> {
        say_call(&agent.name, operation, resource, attrs);
        expenses.call(&agent, &token, operation, resource, attrs)
    };
    let read = call("read", "/expenses/alice/2026-09-14-train", &[])?;
    let submit = call("submit", REPORT, &["amount=420"])?;
    let over_limit = call("submit", REPORT, &["amount=900"])?;
    let second_report = call("submit", "/reports/alice/2026-q4", &["amount=80"])?;
    let delete = call("delete", "/expenses/alice/2026-09-14-train", &[])?;
    drop(expenses);
    println!();
    let outcome = Outcome {
        read,
        submit,
        over_limit,
        second_report,
        delete,
        trail: trail.read_back("3. the expense service's audit trail, read back from its store")?,
    };

    expect_allowed(&outcome.read)?;
    expect_allowed(&outcome.submit)?;
    expect_denied(&outcome.over_limit, "$a <= 499")?;
    expect_denied(&outcome.second_report, REPORT)?;
    expect_denied(&outcome.delete, "right($s, $o)")?;
    for decision in outcome.decisions() {
        ensure!(
            decision.principal == "alice"
                && decision.agent == "expense-agent"
                && decision.chain == ["expense-agent"]
                && decision.task == "expense-report-2026-q3",
            "the audit record of {} {} does not name alice and expense-agent",
            decision.operation,
            decision.resource
        );
    }
    outcome.trail.expect_recorded(&outcome.decisions())?;
    println!("\nScenario 1 held: two calls allowed, three denied, each record names alice and expense-agent.");
    Ok(outcome)
}

fn main() -> Result<()> {
    run().map(drop)
}
