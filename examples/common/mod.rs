//! What every scenario shares: an issuer holding a root key, agents holding
//! their own keys, and services that verify each call and record its
//! decision in the scenario's audit trail ([`trail`]), which the scenarios
//! print read back from its store.
//!
//! Nothing here decides a request: every decision comes from
//! [`mandate_verifier::Verifier`], as it would in a real service, and tokens
//! pass between agents as base64 text, as they would on the wire. Keys are
//! generated afresh on every run; only the audit log's writer key is
//! written, next to the log, in the trail's temporary folder.

#![allow(dead_code)] // reason: each scenario uses a different part of this module.

pub mod trail;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{ensure, Result};
use mandate_core::{
    delegate_signed, KeySet, NextAgent, Proof, PublicKey, Request, ResourcePath, Restrictions,
    RootKey, SecretKey, UnverifiedMandate,
};
use mandate_issuer::MintRequest;
use mandate_registry::{IndexingStore, MemoryStore, SharedIndex};
use mandate_server::audit::AuditRecorder;
use mandate_verifier::{Decision, Policy, Verifier};
pub use trail::{AuditTrail, StoredTrail};

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

/// A service: its name, the verifier it runs in-process for every call,
/// and the recorder that writes each decision to the audit trail.
pub struct Service {
    /// The name calls to it carry (`service(S)`).
    pub name: String,
    verifier: Verifier,
    recorder: AuditRecorder,
    /// Numbers the requests it records.
    calls: AtomicU64,
}

impl Service {
    /// A service trusting `keys`, deciding with `policy`, consulting
    /// `revocations` on every call and recording every decision in `trail`.
    pub fn new(
        name: &str,
        keys: KeySet,
        policy: Policy,
        revocations: SharedIndex,
        trail: &AuditTrail,
    ) -> Result<Service> {
        let recorder = trail.recorder(name, revocations.clone());
        let verifier = Verifier::builder()
            .root_keys(keys)
            .policy(policy)
            .revocation(std::sync::Arc::new(revocations))
            .build()?;
        Ok(Service {
            name: name.into(),
            verifier,
            recorder,
            calls: AtomicU64::new(0),
        })
    }

    /// The service's verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Decides `agent`'s call to `operation` on `resource`, presenting
    /// `token`, and records the decision, durably, before returning it (as
    /// a server answers only once its record is written). A denial is a
    /// `Decision`; an error means the token could not be trusted at all, or
    /// the decision could not be recorded (and then nothing is answered).
    pub fn call(
        &self,
        agent: &Agent,
        token: &str,
        operation: &str,
        resource: &str,
        attrs: &[&str],
    ) -> Result<Decision> {
        let request = agent.request(token, &self.name, operation, resource, attrs)?;
        let decision = self.verifier.authorize(token, &request)?;
        let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        self.recorder
            .record_blocking(&decision, API, &format!("{}-{n}", self.name), token)?;
        Ok(decision)
    }
}

/// How the scenarios' records name the way their services were asked: the
/// verifier library, called in-process.
pub const API: &str = "library";

/// The revocation index of a registry living in this process, with nothing
/// revoked: what a `mandate serve --store` deployment gives its verifiers.
/// Scenario 5 runs a real registry over HTTP instead.
pub fn in_process_revocations() -> Result<SharedIndex> {
    Ok(IndexingStore::new(MemoryStore::new())?.index())
}

/// Prints the call a scenario is about to make: `operation` on `resource`,
/// with its runtime conditions `attrs`. Its decision is printed later, read
/// back from the audit trail.
pub fn say_call(caller: &str, operation: &str, resource: &str, attrs: &[&str]) {
    let attrs = if attrs.is_empty() {
        String::new()
    } else {
        format!(" [{}]", attrs.join(" "))
    };
    println!("   {caller}: {operation} {resource}{attrs}");
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
