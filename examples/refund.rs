//! Scenario 3, refunds with runtime conditions: dana, who leads customer
//! support, lets a helpdesk agent handle refunds; the helpdesk agent hands
//! the refund work to a refund agent with three delegated checks: an amount
//! between 1 and 100, a card or voucher payment, a gold or platinum
//! customer. Each call is decided from the attributes it carries, under the
//! refunds service's own policy (`datalog/policies/refunds.datalog`), which
//! requires every refund to state all three. The trail is printed read back
//! from the refunds service's audit store.
//!
//! `cargo run -p mandate-cli --example refund`

#[path = "common/mod.rs"]
mod common;

use std::path::Path;

use anyhow::{Context as _, Result};
use common::{
    expect_allowed, expect_denied, say_call, Agent, AuditTrail, Issuer, Service, StoredTrail,
};
use mandate_core::{AttrValue, Restrictions};
use mandate_verifier::{Decision, Policy};

/// Every call of the scenario, as the refunds service decided it.
pub struct Outcome {
    /// 80 on a card for a gold customer: allowed.
    pub within: Decision,
    /// 250: denied by the amount range.
    pub too_much: Decision,
    /// -40, a charge dressed as a refund: denied by the amount range.
    pub negative: Decision,
    /// Paid by bank transfer: denied by the payment method check.
    pub bank_transfer: Decision,
    /// A basic-tier customer: denied by the tier check.
    pub basic_tier: Decision,
    /// No tier stated: denied by the tier check and the service policy.
    pub no_tier: Decision,
    /// The refunds service's audit trail, read back from its store.
    pub trail: StoredTrail,
}

impl Outcome {
    /// Every decision, in call order.
    pub fn decisions(&self) -> [&Decision; 6] {
        [
            &self.within,
            &self.too_much,
            &self.negative,
            &self.bank_transfer,
            &self.basic_tier,
            &self.no_tier,
        ]
    }
}

/// Loads the refunds service's policy from the repository's `datalog/`.
fn refunds_policy() -> Result<Policy> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datalog/policies/refunds.datalog");
    Policy::from_file(&path).with_context(|| format!("loading {}", path.display()))
}

/// Runs the scenario, printing the audit trail read back from the store;
/// fails unless every call was decided as expected.
pub fn run() -> Result<Outcome> {
    println!("Scenario 3: refunds decided per call from amount, payment method and tier\n");
    let issuer = Issuer::generate();
    let helpdesk = Agent::new("helpdesk-agent");
    let refunder = Agent::new("refund-agent");
    let mandate = issuer.mint(
        "dana",
        &helpdesk,
        "refunds-queue-2026-09-28",
        &["refunds:refund"],
        Restrictions::default(),
    )?;
    let words = |values: &[&str]| values.iter().map(|v| AttrValue::parse(v)).collect();
    let conditions = Restrictions {
        attr_range: vec![("amount".into(), 1, 100)],
        attr_in: vec![
            ("method".into(), words(&["card", "voucher"])),
            ("tier".into(), words(&["gold", "platinum"])),
        ],
        ..Restrictions::default()
    };
    let token = helpdesk.hand_to(&mandate, &refunder, &conditions)?;
    println!("1. the issuer mints dana's mandate for helpdesk-agent: refunds:refund");
    println!("2. helpdesk-agent hands refund-agent the refunds, signed, only when");
    println!("   amount is 1..=100, method is card or voucher, tier is gold or platinum\n");

    let trail = AuditTrail::open()?;
    let refunds = Service::new(
        "refunds",
        issuer.trusted_keys(),
        refunds_policy()?,
        common::in_process_revocations()?,
        &trail,
    )?;
    println!("3. refund-agent asks the refunds service (policy refunds.datalog), which");
    println!("   decides each call from its attributes and records the decision:");
    let refund = |order: &str, attrs: &[&str]| -> Result<Decision> {
        say_call(&refunder.name, "refund", order, attrs);
        refunds.call(&refunder, &token, "refund", order, attrs)
    };
    let within = refund("/orders/1001", &["amount=80", "method=card", "tier=gold"])?;
    let too_much = refund("/orders/1002", &["amount=250", "method=card", "tier=gold"])?;
    let negative = refund("/orders/1003", &["amount=-40", "method=card", "tier=gold"])?;
    let bank_transfer = refund(
        "/orders/1004",
        &["amount=60", "method=bank_transfer", "tier=platinum"],
    )?;
    let basic_tier = refund(
        "/orders/1005",
        &["amount=20", "method=voucher", "tier=basic"],
    )?;
    let no_tier = refund("/orders/1006", &["amount=20", "method=voucher"])?;
    drop(refunds);
    println!();
    let outcome = Outcome {
        within,
        too_much,
        negative,
        bank_transfer,
        basic_tier,
        no_tier,
        trail: trail.read_back("4. the refunds service's audit trail, read back from its store")?,
    };

    expect_allowed(&outcome.within)?;
    let amount = r#"attr("amount", $v), $v >= 1, $v <= 100"#;
    expect_denied(&outcome.too_much, amount)?;
    expect_denied(&outcome.negative, amount)?;
    expect_denied(
        &outcome.bank_transfer,
        r#"{"card", "voucher"}.contains($v)"#,
    )?;
    expect_denied(&outcome.basic_tier, r#"{"gold", "platinum"}.contains($v)"#)?;
    expect_denied(&outcome.no_tier, "of the service policy failed")?;
    outcome.trail.expect_recorded(&outcome.decisions())?;
    println!("\nScenario 3 held: one refund allowed; each condition, and the policy's demand");
    println!("that every refund state all three, denied a call on its own.");
    Ok(outcome)
}

fn main() -> Result<()> {
    run().map(drop)
}
