//! Scenario 2, quarterly analytics over several hops: bob's orchestrator
//! hands read-only access to the Q3 dataset to an analytics agent, which
//! hands the revenue slice to a charting agent. Each hop is signed by the
//! agent handing on, offline. A call outside the slice is denied naming the
//! failing check and its author; a hop forged with an unrelated key is
//! rejected. The trail is printed read back from the datasets service's
//! audit store.
//!
//! `cargo run -p mandate-cli --example quarterly_analytics`

// Public so that scenario 5 (`kill_switch.rs`), which reuses this chain,
// reaches the same types.
#[path = "common/mod.rs"]
pub mod common;

use anyhow::{ensure, Result};
use biscuit_auth::builder::{bytes, fact, string, BlockBuilder};
use biscuit_auth::UnverifiedBiscuit;
use common::{
    expect_allowed, expect_denied, say_call, Agent, AuditTrail, Issuer, Service, StoredTrail,
};
use mandate_core::{vocab, ResourcePath, Restrictions};
use mandate_verifier::{Decision, Policy, Reason};

/// The dataset the analytics agent may read.
pub const DATASET: &str = "/datasets/q3";
/// The slice of it the charting agent may read.
pub const SLICE: &str = "/datasets/q3/revenue";

/// bob's three agents and the mandate each one holds.
pub struct BobsChain {
    /// The first agent, holding bob's mandate.
    pub orchestrator: Agent,
    /// The second, holding read-only access to [`DATASET`].
    pub analytics: Agent,
    /// The third, holding read-only access to [`SLICE`].
    pub charting: Agent,
    /// The orchestrator's mandate, as minted.
    pub orchestrator_token: String,
    /// The orchestrator → analytics-agent hop.
    pub analytics_token: String,
    /// The analytics-agent → charting-agent hop.
    pub charting_token: String,
}

/// Mints bob's mandate and delegates it twice, each hop signed by the agent
/// handing it on. No network, no issuer involvement after minting.
pub fn delegate_chain(issuer: &Issuer) -> Result<BobsChain> {
    let orchestrator = Agent::new("orchestrator");
    let analytics = Agent::new("analytics-agent");
    let charting = Agent::new("charting-agent");
    let orchestrator_token = issuer.mint(
        "bob",
        &orchestrator,
        "quarterly-analytics",
        &["datasets:read", "datasets:write"],
        Restrictions::default(),
    )?;
    let analytics_token = orchestrator.hand_to(
        &orchestrator_token,
        &analytics,
        &Restrictions {
            operations: vec!["read".into()],
            resource_prefixes: vec![ResourcePath::parse(DATASET)?],
            ..Restrictions::default()
        },
    )?;
    let charting_token = analytics.hand_to(
        &analytics_token,
        &charting,
        &Restrictions {
            resource_prefixes: vec![ResourcePath::parse(SLICE)?],
            ..Restrictions::default()
        },
    )?;
    Ok(BobsChain {
        orchestrator,
        analytics,
        charting,
        orchestrator_token,
        analytics_token,
        charting_token,
    })
}

/// What someone holding a copy of `token` and a key of their own can do
/// with biscuit-auth alone: append a block signed by that key, claiming a
/// hop to `forger`.
fn forge_hop(token: &str, forger: &Agent) -> Result<String> {
    let token = UnverifiedBiscuit::from_base64(token)?;
    let claim = fact(
        vocab::HOP,
        &[string(&forger.name), bytes(&forger.public().to_bytes())],
    );
    let block = token
        .third_party_request()?
        .create_block(
            &forger.secret_key().key_pair().private(),
            BlockBuilder::new().fact(claim)?,
        )?
        .serialize()?;
    Ok(token.append_third_party(&block)?.to_base64()?)
}

/// Every call of the scenario, as the datasets service decided it.
pub struct Outcome {
    /// analytics-agent reads costs, inside its dataset: allowed.
    pub analytics_read: Decision,
    /// charting-agent reads revenue, inside its slice: allowed.
    pub in_slice: Decision,
    /// charting-agent reads costs, outside its slice: denied by the
    /// analytics agent's check.
    pub outside_slice: Decision,
    /// charting-agent writes: denied by the orchestrator's read-only check.
    pub write: Decision,
    /// mallory, with a hop she signed herself: denied, broken chain.
    pub forged: Decision,
    /// The datasets service's audit trail, read back from its store.
    pub trail: StoredTrail,
}

impl Outcome {
    /// Every decision, in call order.
    pub fn decisions(&self) -> [&Decision; 5] {
        [
            &self.analytics_read,
            &self.in_slice,
            &self.outside_slice,
            &self.write,
            &self.forged,
        ]
    }
}

/// Runs the scenario, printing the audit trail read back from the store;
/// fails unless every call was decided as expected.
pub fn run() -> Result<Outcome> {
    println!("Scenario 2: bob's quarterly analytics, three agents deep\n");
    let issuer = Issuer::generate();
    let chain = delegate_chain(&issuer)?;
    println!("1. the issuer mints bob's mandate for orchestrator: datasets:read, datasets:write");
    println!(
        "2. orchestrator hands analytics-agent read-only {DATASET} (hop signed by orchestrator)"
    );
    println!("3. analytics-agent hands charting-agent {SLICE} (hop signed by analytics-agent)\n");

    let trail = AuditTrail::open()?;
    let datasets = Service::new(
        "datasets",
        issuer.trusted_keys(),
        Policy::default_policy(),
        common::in_process_revocations()?,
        &trail,
    )?;
    let call = |agent: &Agent, token: &str, operation: &str, resource: &str| -> Result<Decision> {
        say_call(&agent.name, operation, resource, &[]);
        datasets.call(agent, token, operation, resource, &[])
    };
    println!("4. the agents call the datasets service, which records each decision:");
    let analytics_read = call(
        &chain.analytics,
        &chain.analytics_token,
        "read",
        "/datasets/q3/costs",
    )?;
    let in_slice = call(
        &chain.charting,
        &chain.charting_token,
        "read",
        "/datasets/q3/revenue/emea",
    )?;
    let outside_slice = call(
        &chain.charting,
        &chain.charting_token,
        "read",
        "/datasets/q3/costs",
    )?;
    let write = call(
        &chain.charting,
        &chain.charting_token,
        "write",
        "/datasets/q3/revenue/emea",
    )?;

    println!("\n5. mallory copies analytics-agent's token and appends, with biscuit-auth and");
    println!("   her own key, a hop to herself:");
    let mallory = Agent::new("mallory");
    let forged_token = forge_hop(&chain.analytics_token, &mallory)?;
    let forged = call(&mallory, &forged_token, "read", "/datasets/q3/costs")?;
    drop(datasets);
    println!();
    let trail =
        trail.read_back("6. the datasets service's audit trail, read back from its store")?;

    expect_allowed(&analytics_read)?;
    expect_allowed(&in_slice)?;
    ensure!(
        in_slice.chain == ["orchestrator", "analytics-agent", "charting-agent"]
            && in_slice.principal == "bob",
        "the allowed call does not name bob's whole chain: {:?}",
        in_slice.chain
    );
    expect_denied(&outside_slice, "(by agent analytics-agent) failed")?;
    expect_denied(&outside_slice, SLICE)?;
    expect_denied(&write, "(by agent orchestrator) failed")?;
    expect_denied(&forged, "not by the holder analytics-agent")?;
    ensure!(
        matches!(forged.reason, Reason::ChainBroken { .. }) && forged.chain.is_empty(),
        "the forged hop was not refused as a broken chain: {}",
        forged.reason
    );
    let outcome = Outcome {
        analytics_read,
        in_slice,
        outside_slice,
        write,
        forged,
        trail,
    };
    outcome.trail.expect_recorded(&outcome.decisions())?;
    println!("\nScenario 2 held: the chain is named on every record, the slice and the");
    println!(
        "read-only hop are enforced by the checks their authors signed, the forgery is refused."
    );
    Ok(outcome)
}

fn main() -> Result<()> {
    run().map(drop)
}
