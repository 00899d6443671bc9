//! What every scenario shares: an issuer holding a root key, agents holding
//! their own keys, services that verify each call, and the audit record the
//! scenarios print.
//!
//! Nothing here decides a request: every decision comes from
//! [`mandate_verifier::Verifier`], as it would in a real service, and tokens
//! pass between agents as base64 text, as they would on the wire. Keys are
//! generated afresh on every run and never written anywhere.

#![allow(dead_code)] // reason: each scenario uses a different part of this module.

use std::time::{Duration, SystemTime};

use anyhow::{ensure, Result};
use mandate_core::{
    delegate_signed, KeySet, NextAgent, Proof, PublicKey, Request, ResourcePath, Restrictions,
    RootKey, SecretKey, UnverifiedMandate,
};
use mandate_issuer::MintRequest;
use mandate_registry::{IndexingStore, MemoryStore, SharedIndex};
use mandate_verifier::{Decision, Policy, Reason, Verifier};

/// How long the scenarios' mandates live: one task, a quarter of an hour.
pub const TASK_TTL: Duration = Duration::from_secs(15 * 60);

/// The issuer: the only holder of the root key every service trusts.
pub struct Issuer {
    root: RootKey,
}

impl Issuer {
    /// A fresh root key, with key id 1.
    pub fn generate() -> Issuer {
        Issuer {
            root: RootKey {
                secret: SecretKey::generate(),
                key_id: Some(1),
            },
        }
    }

    /// The public root key, which is all a service needs to trust mandates.
    pub fn trusted_keys(&self) -> KeySet {
        let mut keys = KeySet::new();
        keys.insert(self.root.key_id, self.root.secret.public());
        keys
    }

    /// Mints a mandate for `principal`'s task, held by `agent` (whose public
    /// key only is bound into it), granting `rights` (`SERVICE:OPERATION`)
    /// under `restrictions`.
    pub fn mint(
        &self,
        principal: &str,
        agent: &Agent,
        task: &str,
        rights: &[&str],
        restrictions: Restrictions,
    ) -> Result<String> {
        let rights = rights
            .iter()
            .map(|right| right.parse())
            .collect::<Result<Vec<_>, _>>()?;
        let mandate = mandate_issuer::mint(
            &self.root,
            &MintRequest {
                principal: principal.into(),
                agent: agent.name.clone(),
                agent_key: Some(agent.public()),
                task: Some(task.into()),
                rights,
                ttl: TASK_TTL,
                restrictions,
                now: SystemTime::now(),
            },
        )?;
        Ok(mandate.to_base64()?)
    }
}

/// An agent: a name and the secret key that proves it holds a mandate.
pub struct Agent {
    /// The name mandates and decisions know it by.
    pub name: String,
    key: SecretKey,
}

impl Agent {
    /// An agent with a freshly generated key.
    pub fn new(name: &str) -> Agent {
        Agent {
            name: name.into(),
            key: SecretKey::generate(),
        }
    }

    /// The agent's public key.
    pub fn public(&self) -> PublicKey {
        self.key.public()
    }

    /// The agent's secret key (the forger in scenario 2 signs with it
    /// through biscuit-auth directly).
    pub fn secret_key(&self) -> &SecretKey {
        &self.key
    }

    /// The agent's key, for a client that signs its own proofs (the
    /// registry client signs one per request).
    pub fn into_secret_key(self) -> SecretKey {
        self.key
    }

    /// Hands `token` on to `next`, offline: a hop signed with this agent's
    /// key, narrowed by `restrictions`. Only `next` can use the result.
    pub fn hand_to(
        &self,
        token: &str,
        next: &Agent,
        restrictions: &Restrictions,
    ) -> Result<String> {
        let next = NextAgent {
            name: next.name.clone(),
            key: next.public(),
        };
        let token = UnverifiedMandate::from_base64(token)?;
        Ok(delegate_signed(&token, &self.key, Some(&next), restrictions)?.to_base64()?)
    }

    /// Narrows `token`, offline, with restrictions signed by this agent; the
    /// agent keeps holding the authority.
    pub fn narrow(&self, token: &str, restrictions: &Restrictions) -> Result<String> {
        let token = UnverifiedMandate::from_base64(token)?;
        Ok(delegate_signed(&token, &self.key, None, restrictions)?.to_base64()?)
    }

    /// This agent's proof of possession of `token` for `request`.
    pub fn prove(&self, token: &str, request: &Request) -> Result<Proof> {
        let digest = UnverifiedMandate::from_base64(token)?.digest_hex();
        Ok(Proof::sign(&self.key, &digest, request, request.time))
    }

    /// A call as this agent makes it, now: the request with `attrs`
    /// (`KEY=VALUE`) and the agent's proof of possession of `token`.
    pub fn request(
        &self,
        token: &str,
        service: &str,
        operation: &str,
        resource: &str,
        attrs: &[&str],
    ) -> Result<Request> {
        let mut request = Request::new(
            service,
            operation,
            ResourcePath::parse(resource)?,
            SystemTime::now(),
        );
        for attr in attrs {
            request = request.with_attr_arg(attr)?;
        }
        let proof = self.prove(token, &request)?;
        Ok(request.with_proof(proof))
    }
}

/// A service: its name and the verifier it runs in-process for every call.
pub struct Service {
    /// The name calls to it carry (`service(S)`).
    pub name: String,
    verifier: Verifier,
}

impl Service {
    /// A service trusting `keys`, deciding with `policy`, and consulting
    /// `revocations` on every call.
    pub fn new(
        name: &str,
        keys: KeySet,
        policy: Policy,
        revocations: SharedIndex,
    ) -> Result<Service> {
        let verifier = Verifier::builder()
            .root_keys(keys)
            .policy(policy)
            .revocation(std::sync::Arc::new(revocations))
            .build()?;
        Ok(Service {
            name: name.into(),
            verifier,
        })
    }

    /// The service's verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Decides `agent`'s call to `operation` on `resource`, presenting
    /// `token`. A denial is a `Decision`; an error means the token could not
    /// be trusted at all.
    pub fn call(
        &self,
        agent: &Agent,
        token: &str,
        operation: &str,
        resource: &str,
        attrs: &[&str],
    ) -> Result<Decision> {
        let request = agent.request(token, &self.name, operation, resource, attrs)?;
        Ok(self.verifier.authorize(token, &request)?)
    }
}

/// The revocation index of a registry living in this process, with nothing
/// revoked: what a `mandate serve --store` deployment gives its verifiers.
/// Scenario 5 runs a real registry over HTTP instead.
pub fn in_process_revocations() -> Result<SharedIndex> {
    Ok(IndexingStore::new(MemoryStore::new())?.index())
}

/// Prints `decision` as one audit record: who, for whom, via which chain,
/// did what, and why it was allowed or denied. `attrs` are the call's
/// runtime conditions, which a `Decision` does not carry.
pub fn audit(decision: &Decision, attrs: &[&str]) {
    let verdict = if decision.allowed { "ALLOW" } else { "DENY " };
    let chain = if decision.chain.is_empty() {
        "(no provable chain)".to_string()
    } else {
        decision.chain.join(" → ")
    };
    let attrs = if attrs.is_empty() {
        String::new()
    } else {
        format!(" [{}]", attrs.join(" "))
    };
    println!(
        "   {verdict} {} for {} via {} (task {}): {} {} {}{attrs}",
        display_or(&decision.agent, "(unproven agent)"),
        decision.principal,
        chain,
        decision.task,
        decision.service,
        decision.operation,
        decision.resource,
    );
    match &decision.reason {
        Reason::FailedChecks { checks } => {
            for check in checks {
                println!("         because {check}");
            }
        }
        other => println!("         because {other}"),
    }
}

fn display_or<'a>(text: &'a str, fallback: &'a str) -> &'a str {
    if text.is_empty() {
        fallback
    } else {
        text
    }
}

/// Fails the scenario unless `decision` allowed the call.
pub fn expect_allowed(decision: &Decision) -> Result<()> {
    ensure!(
        decision.allowed,
        "expected {} {} {} to be allowed, but: {}",
        decision.service,
        decision.operation,
        decision.resource,
        decision.reason
    );
    Ok(())
}

/// Fails the scenario unless `decision` denied the call with a reason that
/// mentions `because`.
pub fn expect_denied(decision: &Decision, because: &str) -> Result<()> {
    ensure!(
        !decision.allowed,
        "expected {} {} {} to be denied, but it was allowed",
        decision.service,
        decision.operation,
        decision.resource
    );
    let reason = decision.reason.to_string();
    ensure!(
        reason.contains(because),
        "expected the denial of {} {} {} to mention {because:?}, but: {reason}",
        decision.service,
        decision.operation,
        decision.resource
    );
    Ok(())
}
