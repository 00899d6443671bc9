//! Glue between the registry and the verifier: the subscribed index as the
//! verifier's revocation check, and write authorization by mandate.
//!
//! The registry eats its own cooking: creating or lifting a revocation needs
//! a mandate granting `registry:revoke`, verified with the same verifier and
//! the policy in `datalog/policies/registry.datalog`.

use std::time::{Instant, SystemTime};

use mandate_core::{Proof, Request, ResourcePath};
use mandate_verifier::{
    Policy, RevocationCheck, RevocationDenial, RevocationSubject, Verifier, VerifierBuilder,
};

use crate::index::{AgentRef, Denied, SharedIndex, Subject};
use crate::server::{WriteAuthorizer, WriteDenied};

/// The registry's write policy, compiled in.
const REGISTRY_POLICY: &str = include_str!("../../../datalog/policies/registry.datalog");

/// The service, operation and resource a write request is decided as.
pub const WRITE_SERVICE: &str = "registry";
/// See [`WRITE_SERVICE`].
pub const WRITE_OPERATION: &str = "revoke";
/// See [`WRITE_SERVICE`].
pub const WRITE_RESOURCE: &str = "/revocations";

impl RevocationCheck for SharedIndex {
    fn check(&self, subject: &RevocationSubject<'_>) -> Result<(), RevocationDenial> {
        let agents: Vec<AgentRef<'_>> = subject
            .agents
            .iter()
            .map(|link| AgentRef {
                name: &link.name,
                public_key: link.key_text(),
            })
            .collect();
        let subject = Subject {
            revocation_ids: subject.revocation_ids,
            principal: subject.principal,
            task: subject.task,
            agents: &agents,
        };
        SharedIndex::check(self, &subject, Instant::now()).map_err(|denied| match denied {
            Denied::Revoked {
                kind,
                value,
                seq,
                reason,
            } => RevocationDenial::Revoked {
                kind: kind.to_string(),
                value,
                seq,
                reason,
            },
            Denied::Stale { since, bound } => RevocationDenial::Stale {
                detail: crate::index::describe_stale(since, bound),
            },
        })
    }
}

/// The request a write is decided as, at `now`, with an optional proof.
///
/// # Errors
/// [`mandate_core::Error`] for a malformed proof.
pub fn write_request(now: SystemTime, proof: Option<&str>) -> Result<Request, mandate_core::Error> {
    let resource = ResourcePath::parse(WRITE_RESOURCE)?;
    let request = Request::new(WRITE_SERVICE, WRITE_OPERATION, resource, now);
    Ok(match proof {
        Some(text) => request.with_proof(Proof::parse(text)?),
        None => request,
    })
}

/// Authorizes writes with a mandate granting `registry:revoke`.
#[derive(Debug, Clone)]
pub struct MandateWriteAuthorizer {
    verifier: Verifier,
}

impl MandateWriteAuthorizer {
    /// Builds the authorizer from a verifier builder that already trusts the
    /// issuer's root keys; the registry policy replaces its policy.
    ///
    /// # Errors
    /// [`mandate_verifier::Error`] when no root key is trusted.
    pub fn new(builder: VerifierBuilder) -> Result<Self, mandate_verifier::Error> {
        let policy = Policy::from_source("registry", REGISTRY_POLICY)?;
        Ok(MandateWriteAuthorizer {
            verifier: builder.policy(policy).build()?,
        })
    }
}

impl WriteAuthorizer for MandateWriteAuthorizer {
    fn authorize_write(&self, bearer: &str, proof: Option<&str>) -> Result<String, WriteDenied> {
        let request = write_request(SystemTime::now(), proof)
            .map_err(|e| WriteDenied::Unauthenticated(e.to_string()))?;
        let decision = self
            .verifier
            .authorize(bearer, &request)
            .map_err(|e| WriteDenied::Unauthenticated(e.to_string()))?;
        if !decision.allowed {
            // A run limit says nothing about the caller's rights: the write
            // may succeed when the machine is less busy.
            if matches!(decision.reason, mandate_verifier::Reason::RunLimit { .. }) {
                return Err(WriteDenied::Unavailable(decision.reason.to_string()));
            }
            return Err(WriteDenied::Forbidden(decision.reason.to_string()));
        }
        Ok(format!(
            "{} via {}",
            decision.principal,
            decision.chain.join(" → ")
        ))
    }
}
