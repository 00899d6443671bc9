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

use crate::entry::MAX_ACTOR_LEN;
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
        Ok(actor_name(&decision.principal, &decision.chain))
    }
}

/// Joins the links of a delegation chain in `revoked_by`.
const CHAIN_SEPARATOR: &str = " → ";
/// Marks where `revoked_by` was shortened.
const ELLIPSIS: &str = "…";

/// The `revoked_by` text of an authorized write: `"{principal} via {a → b → c}"`, shortened
/// to at most [`MAX_ACTOR_LEN`] bytes so that an authorized write is never refused for
/// its length. Principal and chain names are each up to 256 bytes, so a long chain, or
/// even one long principal and agent, can exceed the limit. The principal and the acting
/// agent (the chain's last link) stay visible; the links between them go first, then
/// the two names are shortened, each on a char boundary and marked with `…`.
fn actor_name(principal: &str, chain: &[String]) -> String {
    let full = format!("{principal} via {}", chain.join(CHAIN_SEPARATOR));
    if full.len() <= MAX_ACTOR_LEN {
        return full;
    }
    let Some((acting, earlier)) = chain.split_last() else {
        return shorten(&full, MAX_ACTOR_LEN);
    };
    // Room for the names once the fixed text is set aside:
    // "{principal} via {acting}", or "{principal} via {earlier}… → {acting}".
    let mut fixed = " via ".len();
    if !earlier.is_empty() {
        fixed += ELLIPSIS.len() + CHAIN_SEPARATOR.len();
    }
    let room = MAX_ACTOR_LEN - fixed;
    let half = room / 2;
    let (principal_room, acting_room) = if principal.len() + acting.len() <= room {
        (principal.len(), acting.len())
    } else if principal.len() <= half {
        (principal.len(), room - principal.len())
    } else if acting.len() <= half {
        (room - acting.len(), acting.len())
    } else {
        (half, room - half)
    };
    let principal = shorten(principal, principal_room);
    let acting = shorten(acting, acting_room);
    if earlier.is_empty() {
        return format!("{principal} via {acting}");
    }
    // What is left shows the start of the earlier links.
    let left = room - principal.len() - acting.len();
    let earlier = earlier.join(CHAIN_SEPARATOR);
    let earlier = &earlier[..floor_char_boundary(&earlier, left)];
    format!("{principal} via {earlier}{ELLIPSIS}{CHAIN_SEPARATOR}{acting}")
}

/// `text` if it fits in `max` bytes, else its longest prefix that fits with `…` added.
fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let cut = floor_char_boundary(text, max.saturating_sub(ELLIPSIS.len()));
    format!("{}{ELLIPSIS}", &text[..cut])
}

/// The largest char boundary of `text` at or below `index`.
fn floor_char_boundary(text: &str, index: usize) -> usize {
    if index >= text.len() {
        return text.len();
    }
    (0..=index)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(links: &[&str]) -> Vec<String> {
        links.iter().map(|link| (*link).to_owned()).collect()
    }

    #[test]
    fn short_actors_are_kept_whole() {
        assert_eq!(
            actor_name("bob", &chain(&["orchestrator", "analytics"])),
            "bob via orchestrator → analytics"
        );
    }

    #[test]
    fn long_chains_keep_the_principal_and_the_acting_agent() {
        let middle: Vec<String> = (0..20)
            .map(|i| format!("agent-{i:02}-{}", "m".repeat(40)))
            .collect();
        let mut links = vec!["first".to_owned()];
        links.extend(middle);
        links.push("acting-agent".to_owned());
        let actor = actor_name("bob", &links);
        assert!(actor.len() <= MAX_ACTOR_LEN, "{} bytes", actor.len());
        assert!(actor.starts_with("bob via first → agent-00"), "{actor}");
        assert!(actor.ends_with("… → acting-agent"), "{actor}");
    }

    #[test]
    fn long_names_are_shortened_on_char_boundaries() {
        // 255 bytes of three-byte characters plus ASCII, so cuts can land mid-character.
        let principal = format!("p{}", "é".repeat(127));
        let agent = format!("{}a", "漢".repeat(85));
        for links in [
            chain(&[&agent]),
            chain(&["first", &agent]),
            chain(&[&agent, "x", &agent]),
        ] {
            let actor = actor_name(&principal, &links);
            assert!(
                actor.len() <= MAX_ACTOR_LEN,
                "{} bytes: {actor}",
                actor.len()
            );
            assert!(actor.starts_with("pé"), "{actor}");
            assert!(actor.contains(" via "), "{actor}");
            // The acting agent's start stays visible.
            assert!(actor.contains(&"漢".repeat(20)), "{actor}");
        }
    }

    #[test]
    fn every_shape_fits_and_keeps_both_ends() {
        for principal_len in [1, 100, 255, 256] {
            for agent_len in [1, 100, 256] {
                for links in 1..=4 {
                    let principal = "p".repeat(principal_len);
                    let mut links = vec!["m".repeat(256); links - 1];
                    links.push("a".repeat(agent_len));
                    let actor = actor_name(&principal, &links);
                    assert!(actor.len() <= MAX_ACTOR_LEN, "{} bytes", actor.len());
                    let shown = principal_len.min(100);
                    assert!(actor.starts_with(&principal[..shown]), "{actor}");
                    assert!(actor.contains(&"a".repeat(agent_len.min(100))), "{actor}");
                }
            }
        }
    }

    #[test]
    fn a_short_principal_leaves_room_for_a_long_agent() {
        let agent = "a".repeat(600);
        let actor = actor_name("bob", &chain(&[&agent]));
        assert_eq!(actor.len(), MAX_ACTOR_LEN, "uses the whole limit");
        assert!(
            actor.starts_with("bob via aaa") && actor.ends_with('…'),
            "{actor}"
        );
    }
}
