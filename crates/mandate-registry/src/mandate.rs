//! Glue between the registry and the verifier: the subscribed index as the
//! verifier's revocation check, and read and write authorization by mandate.
//!
//! The registry eats its own cooking: creating or lifting a revocation needs
//! a mandate granting `registry:revoke`, and listing, reading the status or
//! streaming the log needs one granting `registry:read`, verified with the same
//! verifier and the policy in `datalog/policies/registry.datalog`.
//!
//! Each HTTP request is decided as one [`Request`] ([`registry_request`]) whose
//! attributes are the method, the path and the SHA-256 of the exact body bytes,
//! built by the server from what it received and by the client from what it
//! sends. A proof of possession signs those attributes, so it authorizes that
//! one request and no other. Writes require a keyed mandate and its proof unless
//! the registry was started with bearer writes allowed, which is logged loudly.
//!
//! This module must never build the decided request from anything the client
//! merely claims (a header naming the path or the digest): only from the
//! request as received.

use std::time::{Instant, SystemTime};

use mandate_core::{AttrValue, Proof, Request, ResourcePath};
use mandate_verifier::{
    Policy, RevocationCheck, RevocationDenial, RevocationSubject, Verifier, VerifierBuilder,
};
use sha2::{Digest, Sha256};

use crate::entry::MAX_ACTOR_LEN;
use crate::index::{AgentRef, Denied, SharedIndex, Subject};
use crate::server::{HttpBinding, WriteAuthorizer, WriteDenied};

/// The registry's write policy, compiled in.
const REGISTRY_POLICY: &str = include_str!("../../../datalog/policies/registry.datalog");

/// The service, operation and resource a write request is decided as.
pub const WRITE_SERVICE: &str = "registry";
/// See [`WRITE_SERVICE`].
pub const WRITE_OPERATION: &str = "revoke";
/// See [`WRITE_SERVICE`]; reads are decided on the same resource.
pub const WRITE_RESOURCE: &str = "/revocations";
/// The operation a read (list, status, stream) is decided as.
pub const READ_OPERATION: &str = "read";
/// Request attribute: the HTTP method (`POST`, `GET`).
pub const ATTR_HTTP_METHOD: &str = "http_method";
/// Request attribute: the path of the registry API, without the query.
pub const ATTR_HTTP_PATH: &str = "http_path";
/// Request attribute: the SHA-256 of the exact body bytes, lowercase hex.
pub const ATTR_BODY_SHA256: &str = "body_sha256";

/// What a registry request does, which decides the operation it needs a right for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Access {
    /// Create or lift a revocation (`registry:revoke`).
    Write,
    /// List, read the status, or stream (`registry:read`).
    Read,
}

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

    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.subscribe_changes())
    }
}

/// The request an HTTP request to the registry is decided as, at `now`, with an
/// optional proof: `registry` `revoke` or `read` on `/revocations`, with the
/// attributes [`ATTR_HTTP_METHOD`], [`ATTR_HTTP_PATH`] and [`ATTR_BODY_SHA256`] taken
/// from `http`. The server calls it with the request it received, a client with the
/// request it is about to send, and a proof signed over the client's request verifies
/// only if the two agree on every byte.
///
/// # Errors
/// [`mandate_core::Error`] for a malformed proof.
pub fn registry_request(
    access: Access,
    http: &HttpBinding<'_>,
    now: SystemTime,
    proof: Option<&str>,
) -> Result<Request, mandate_core::Error> {
    let resource = ResourcePath::parse(WRITE_RESOURCE)?;
    let operation = match access {
        Access::Write => WRITE_OPERATION,
        Access::Read => READ_OPERATION,
    };
    let mut request = Request::new(WRITE_SERVICE, operation, resource, now);
    // Built as strings on purpose: `AttrValue::parse` would turn a digest or path that
    // happens to be all digits into an integer, and the two ends must agree exactly.
    request.attrs = vec![
        (
            ATTR_HTTP_METHOD.to_owned(),
            AttrValue::Str(http.method.to_owned()),
        ),
        (
            ATTR_HTTP_PATH.to_owned(),
            AttrValue::Str(http.path.to_owned()),
        ),
        (
            ATTR_BODY_SHA256.to_owned(),
            AttrValue::Str(hex::encode(Sha256::digest(http.body))),
        ),
    ];
    Ok(match proof {
        Some(text) => request.with_proof(Proof::parse(text)?),
        None => request,
    })
}

/// Authorizes registry requests by mandate: writes with `registry:revoke`, reads with
/// `registry:read`. Writes need a keyed mandate and its proof of possession unless built
/// with [`MandateWriteAuthorizer::allowing_bearer_writes`].
#[derive(Debug, Clone)]
pub struct MandateWriteAuthorizer {
    writes: Verifier,
    reads: Verifier,
}

impl MandateWriteAuthorizer {
    /// Builds the authorizer from a verifier builder that already trusts the
    /// issuer's root keys; the registry policy replaces its policy. Writes need a
    /// mandate whose holder has an agent key, with a proof of possession; reads accept
    /// a bearer read mandate unless `builder` requires proofs.
    ///
    /// # Errors
    /// [`mandate_verifier::Error`] when no root key is trusted.
    pub fn new(builder: VerifierBuilder) -> Result<Self, mandate_verifier::Error> {
        Self::build(builder, false)
    }

    /// **Dangerous.** As [`MandateWriteAuthorizer::new`], but a bearer operator mandate
    /// (no agent key, no proof) may write: anyone who sees it once, in a log, a shell
    /// history or on the wire, can revoke any principal or lift any revocation until it
    /// expires. Logs a warning when called.
    ///
    /// # Errors
    /// As [`MandateWriteAuthorizer::new`].
    pub fn allowing_bearer_writes(
        builder: VerifierBuilder,
    ) -> Result<Self, mandate_verifier::Error> {
        tracing::warn!(
            "DANGER: the registry accepts bearer operator mandates for writes; \
             anyone holding a copy of one can revoke or lift without a key"
        );
        Self::build(builder, true)
    }

    fn build(
        builder: VerifierBuilder,
        bearer_writes: bool,
    ) -> Result<Self, mandate_verifier::Error> {
        let policy = Policy::from_source("registry", REGISTRY_POLICY)?;
        let builder = builder.policy(policy);
        Ok(MandateWriteAuthorizer {
            writes: builder.clone().require_pop(!bearer_writes).build()?,
            reads: builder.build()?,
        })
    }

    fn decide(
        verifier: &Verifier,
        access: Access,
        bearer: &str,
        proof: Option<&str>,
        http: &HttpBinding<'_>,
    ) -> Result<String, WriteDenied> {
        let request = registry_request(access, http, SystemTime::now(), proof)
            .map_err(|e| WriteDenied::Unauthenticated(e.to_string()))?;
        let decision = verifier
            .authorize(bearer, &request)
            .map_err(|e| WriteDenied::Unauthenticated(e.to_string()))?;
        if !decision.allowed {
            return Err(match decision.reason {
                // A run limit says nothing about the caller's rights: the request
                // may succeed when the machine is less busy.
                mandate_verifier::Reason::RunLimit { .. } => {
                    WriteDenied::Unavailable(decision.reason.to_string())
                }
                // Neither does a stale revocation state (this replica lost its store,
                // say): the caller is refused until it is current again, and told to
                // retry rather than that it lacks the right.
                mandate_verifier::Reason::Revoked {
                    denial: RevocationDenial::Stale { .. },
                } => WriteDenied::Unavailable(decision.reason.to_string()),
                // A missing or wrong proof, or a bearer mandate where a key is
                // required: who is calling is not established.
                mandate_verifier::Reason::ProofOfPossession { .. } => {
                    WriteDenied::Unauthenticated(decision.reason.to_string())
                }
                _ => WriteDenied::Forbidden(decision.reason.to_string()),
            });
        }
        Ok(actor_name(&decision.principal, &decision.chain))
    }
}

impl WriteAuthorizer for MandateWriteAuthorizer {
    fn authorize_write(
        &self,
        bearer: &str,
        proof: Option<&str>,
        request: &HttpBinding<'_>,
    ) -> Result<String, WriteDenied> {
        Self::decide(&self.writes, Access::Write, bearer, proof, request)
    }

    fn authorize_read(
        &self,
        bearer: &str,
        proof: Option<&str>,
        request: &HttpBinding<'_>,
    ) -> Result<String, WriteDenied> {
        Self::decide(&self.reads, Access::Read, bearer, proof, request)
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
