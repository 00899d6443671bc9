//! Scenario 4, an insurance claim's tool chain: one task of erin's, one
//! mandate, three services (document analysis, fraud detection, payment).
//! The claims agent never sends the mandate itself anywhere: it narrows it,
//! offline and signed with its own key, to what each service needs, and
//! sends each service only its own narrowed token. Every service's verifier
//! then refuses a token narrowed for another service, so a token that leaks
//! from one service (or is misrouted) is worth nothing at the next. The
//! services share one audit store, and the trail is printed read back from it.
//!
//! `cargo run -p mandate-cli --example insurance_claim`

#[path = "common/mod.rs"]
mod common;

use anyhow::{ensure, Result};
use common::{
    expect_allowed, expect_denied, say_call, Agent, AuditTrail, Issuer, Service, StoredTrail,
};
use mandate_core::{ResourcePath, Restrictions};
use mandate_registry::SharedIndex;
use mandate_verifier::{Decision, Policy};

const CLAIM: &str = "/claims/8812";

/// One service of the tool chain and the one call the claim makes to it.
struct Step {
    service: Service,
    operation: &'static str,
    resource: String,
    attrs: &'static [&'static str],
    /// What the claims agent hands this service, and nothing more.
    scope: Restrictions,
}

/// One cell of the matrix: a token narrowed for `token_for`, presented to
/// `service`.
pub struct Cell {
    /// The service the token was narrowed for.
    pub token_for: String,
    /// The service it was presented to.
    pub service: String,
    /// That service's decision.
    pub decision: Decision,
}

/// Every call of the scenario.
pub struct Outcome {
    /// Each narrowed token presented to each service, with that service's
    /// operation: allowed exactly where the two match.
    pub matrix: Vec<Cell>,
    /// The payment token asking for more than the claim's payout: denied.
    pub over_payout: Decision,
    /// The three services' audit trail, read back from their store.
    pub trail: StoredTrail,
}

impl Outcome {
    /// Every decision, in call order: the matrix row by row, then the
    /// payout over the limit.
    pub fn decisions(&self) -> Vec<&Decision> {
        let matrix = self.matrix.iter().map(|cell| &cell.decision);
        matrix.chain([&self.over_payout]).collect()
    }
}

fn steps(issuer: &Issuer, revocations: &SharedIndex, trail: &AuditTrail) -> Result<Vec<Step>> {
    let service = |name: &str| {
        Service::new(
            name,
            issuer.trusted_keys(),
            Policy::default_policy(),
            revocations.clone(),
            trail,
        )
    };
    let only = |service: &str, operation: &str, resources: Vec<ResourcePath>| Restrictions {
        services: vec![service.into()],
        operations: vec![operation.into()],
        resource_prefixes: resources,
        ..Restrictions::default()
    };
    let documents = format!("{CLAIM}/documents");
    let payout = format!("{CLAIM}/payout");
    Ok(vec![
        Step {
            service: service("documents")?,
            operation: "analyze",
            resource: format!("{documents}/police-report.pdf"),
            attrs: &[],
            scope: only(
                "documents",
                "analyze",
                vec![ResourcePath::parse(&documents)?],
            ),
        },
        Step {
            service: service("fraud")?,
            operation: "score",
            resource: CLAIM.into(),
            attrs: &[],
            scope: only("fraud", "score", vec![ResourcePath::parse(CLAIM)?]),
        },
        Step {
            service: service("payments")?,
            operation: "pay",
            resource: payout.clone(),
            attrs: &["amount=1800"],
            scope: Restrictions {
                attr_max: vec![("amount".into(), 2500)],
                ..only("payments", "pay", vec![ResourcePath::parse(&payout)?])
            },
        },
    ])
}

/// Runs the scenario, printing the audit trail read back from the store;
/// fails unless every call was decided as expected.
pub fn run() -> Result<Outcome> {
    println!("Scenario 4: one claim, three services, each seeing only what it needs\n");
    let issuer = Issuer::generate();
    let claims_agent = Agent::new("claims-agent");
    let mandate = issuer.mint(
        "erin",
        &claims_agent,
        "claim-8812",
        &["documents:analyze", "fraud:score", "payments:pay"],
        Restrictions::default(),
    )?;
    println!("1. the issuer mints erin's mandate for claims-agent, task claim-8812:");
    println!("   documents:analyze, fraud:score, payments:pay\n");

    let trail = AuditTrail::open()?;
    let steps = steps(&issuer, &common::in_process_revocations()?, &trail)?;
    let mut tokens = Vec::new();
    println!("2. claims-agent narrows it once per service, signed with its own key:");
    for step in &steps {
        tokens.push(claims_agent.narrow(&mandate, &step.scope)?);
        let under: Vec<&str> = step
            .scope
            .resource_prefixes
            .iter()
            .map(ResourcePath::as_str)
            .collect();
        println!(
            "   for {:<9} only {} under {}{}",
            step.service.name,
            step.operation,
            under.join(", "),
            if step.scope.attr_max.is_empty() {
                ""
            } else {
                ", amount <= 2500"
            }
        );
    }

    println!("\n3. claims-agent presents each token to each service, which records its decision:");
    let mut matrix = Vec::new();
    for step in &steps {
        for (token, token_for) in tokens.iter().zip(&steps) {
            let caller = format!(
                "the {} token at {}",
                token_for.service.name, step.service.name
            );
            say_call(&caller, step.operation, &step.resource, step.attrs);
            let decision = step.service.call(
                &claims_agent,
                token,
                step.operation,
                &step.resource,
                step.attrs,
            )?;
            matrix.push(Cell {
                token_for: token_for.service.name.clone(),
                service: step.service.name.clone(),
                decision,
            });
        }
    }
    let payments = &steps[2];
    let over = ["amount=9000"];
    say_call(
        "the payments token at payments, over the payout",
        "pay",
        &payments.resource,
        &over,
    );
    let over_payout =
        payments
            .service
            .call(&claims_agent, &tokens[2], "pay", &payments.resource, &over)?;

    for cell in &matrix {
        if cell.token_for == cell.service {
            expect_allowed(&cell.decision)?;
        } else {
            let only_its_own = format!("service(\"{}\")", cell.token_for);
            expect_denied(&cell.decision, &only_its_own)?;
        }
        ensure!(
            cell.decision.principal == "erin" && cell.decision.task == "claim-8812",
            "a decision does not name erin's claim"
        );
    }
    expect_denied(&over_payout, "$v <= 2500")?;

    let names: Vec<String> = steps.iter().map(|s| s.service.name.clone()).collect();
    drop(steps);
    println!();
    let outcome = Outcome {
        matrix,
        over_payout,
        trail: trail.read_back("4. the services' audit trail, read back from their store")?,
    };
    outcome.trail.expect_recorded(&outcome.decisions())?;

    println!("\n5. which service accepted which token:");
    let header: String = names.iter().map(|name| format!("{name:<11}")).collect();
    println!("   {:<16}{}", "token for", header.trim_end());
    for row in &names {
        let verdicts: String = outcome
            .matrix
            .iter()
            .filter(|cell| &cell.token_for == row)
            .map(|cell| {
                format!(
                    "{:<11}",
                    if cell.decision.allowed {
                        "allow"
                    } else {
                        "deny"
                    }
                )
            })
            .collect();
        println!("   {:<16}{}", row, verdicts.trim_end());
    }
    println!("\nScenario 4 held: every service accepted only the token narrowed for it.");
    Ok(outcome)
}

fn main() -> Result<()> {
    run().map(drop)
}
