//! The outcome of one authorization: allow or deny, who asked, and why.
//!
//! A [`Decision`] is what an audit record is made of, so it names the
//! principal, the agent chain, the task, the request and the token id, and a
//! denial carries the failing checks with the block each came from.

use mandate_core::{ChainError, Claims, PopError, Request};
use serde::Serialize;

use crate::revocation::RevocationDenial;

/// Serializes a typed cause as its message, the wire form of a reason.
fn as_message<T: std::fmt::Display, S: serde::Serializer>(
    cause: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(cause)
}

/// One check that did not pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
pub struct FailedCheck {
    /// The block the check came from (0 = authority); `None` for a check of
    /// the service policy.
    pub block: Option<u32>,
    /// The check's index within its block or policy.
    pub check: u32,
    /// The check as escaped Datalog (for people; never parsed back).
    pub rule: String,
    /// Who wrote the block, as far as signatures prove it.
    pub author: String,
}

impl From<&biscuit_auth::error::FailedCheck> for FailedCheck {
    fn from(check: &biscuit_auth::error::FailedCheck) -> FailedCheck {
        match check {
            biscuit_auth::error::FailedCheck::Block(b) => FailedCheck {
                block: Some(b.block_id),
                check: b.check_id,
                rule: b.rule.clone(),
                author: String::new(),
            },
            biscuit_auth::error::FailedCheck::Authorizer(a) => FailedCheck {
                block: None,
                check: a.check_id,
                rule: a.rule.clone(),
                author: "the service policy".into(),
            },
        }
    }
}

impl std::fmt::Display for FailedCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.block {
            Some(0) => write!(
                f,
                "check #{} of the authority block (by {}) failed: {}",
                self.check, self.author, self.rule
            ),
            Some(b) => write!(
                f,
                "check #{} of block {b} (by {}) failed: {}",
                self.check, self.author, self.rule
            ),
            None => write!(
                f,
                "check #{} of the service policy failed: {}",
                self.check, self.rule
            ),
        }
    }
}

/// Why a request was allowed or denied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// Every check passed and this allow policy matched.
    Allowed {
        /// The matching policy, as Datalog.
        policy: String,
    },
    /// One or more checks failed (token or service policy).
    FailedChecks {
        /// The checks that failed.
        checks: Vec<FailedCheck>,
    },
    /// Every check passed but a deny policy matched first.
    DenyPolicy {
        /// The matching policy, as Datalog.
        policy: String,
    },
    /// Every check passed but no policy matched.
    NoMatchingPolicy,
    /// The delegation chain is broken: a forged, unsigned or misdirected
    /// hop, or blocks that cannot be read.
    ChainBroken {
        /// Which block and why (serialized as its message).
        #[serde(rename = "message", serialize_with = "as_message")]
        error: ChainError,
    },
    /// Something the token depends on is revoked, or the revocation state is
    /// stale.
    Revoked {
        /// The revocation, or why the state is unknown (serialized as its
        /// message).
        #[serde(rename = "message", serialize_with = "as_message")]
        denial: RevocationDenial,
    },
    /// The proof of possession is missing, invalid, stale or replayed.
    ProofOfPossession {
        /// Why it was refused (serialized as its message).
        #[serde(rename = "message", serialize_with = "as_message")]
        error: PopError,
    },
    /// The token asks for more evaluation work than the verifier accepts.
    TooComplex {
        /// Which block and query.
        message: String,
    },
    /// Evaluation hit a run limit; the request is denied, not judged.
    RunLimit {
        /// Which limit.
        limit: String,
    },
    /// An expression failed to evaluate (a type mismatch, an overflow): denied.
    Evaluation {
        /// What failed.
        message: String,
    },
}

impl Reason {
    /// The reason's kind, a stable label for metrics and logs: `allowed`,
    /// `failed_checks`, `deny_policy`, `no_matching_policy`, `chain_broken`,
    /// `revoked`, `stale`, `proof_of_possession`, `too_complex`, `run_limit`,
    /// `evaluation`.
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::Allowed { .. } => "allowed",
            Reason::FailedChecks { .. } => "failed_checks",
            Reason::DenyPolicy { .. } => "deny_policy",
            Reason::NoMatchingPolicy => "no_matching_policy",
            Reason::ChainBroken { .. } => "chain_broken",
            Reason::Revoked {
                denial: RevocationDenial::Stale { .. },
            } => "stale",
            Reason::Revoked { .. } => "revoked",
            Reason::ProofOfPossession { .. } => "proof_of_possession",
            Reason::TooComplex { .. } => "too_complex",
            Reason::RunLimit { .. } => "run_limit",
            Reason::Evaluation { .. } => "evaluation",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Allowed { policy } => write!(f, "allowed by `{policy}`"),
            Reason::FailedChecks { checks } => {
                let parts: Vec<String> = checks.iter().map(ToString::to_string).collect();
                f.write_str(&parts.join("; "))
            }
            Reason::DenyPolicy { policy } => write!(f, "denied by policy `{policy}`"),
            Reason::NoMatchingPolicy => f.write_str("no policy matched"),
            Reason::ChainBroken { error } => write!(f, "broken delegation chain: {error}"),
            Reason::ProofOfPossession { error } => write!(f, "{error}"),
            Reason::Revoked { denial } => write!(f, "{denial}"),
            Reason::TooComplex { message } => write!(f, "evaluation limit reached: {message}"),
            Reason::RunLimit { limit } => write!(f, "evaluation limit reached: {limit}"),
            Reason::Evaluation { message } => write!(f, "evaluation error: {message}"),
        }
    }
}

/// The decision for one request.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Who the agent acts for.
    pub principal: String,
    /// The acting agent.
    pub agent: String,
    /// The agents from the principal's first agent to the acting agent
    /// (empty when the chain is broken).
    pub chain: Vec<String>,
    /// Each agent's key of `chain`, as `ed25519/<hex>` (`""` for a bearer
    /// first agent), in the same order: what an audit record fingerprints.
    pub chain_keys: Vec<String>,
    /// Number of hops from the first agent to the acting agent.
    pub depth: u32,
    /// The task the mandate was minted for.
    pub task: String,
    /// The request's service.
    pub service: String,
    /// The request's operation.
    pub operation: String,
    /// The request's resource, normalised.
    pub resource: String,
    /// The request's runtime attributes, as given.
    pub attrs: Vec<(String, String)>,
    /// The request time, RFC 3339.
    pub time: String,
    /// The token id (last block's revocation id, hex).
    pub token_id: String,
    /// The id of the root key the token was verified under (`None` when it
    /// carries none).
    pub root_key_id: Option<u32>,
    /// Why.
    pub reason: Reason,
}

impl Decision {
    pub(crate) fn new(
        token_id: &str,
        request: &Request,
        claims: &Claims,
        reason: Reason,
    ) -> Decision {
        let (chain, chain_keys, agent, depth) = match &claims.chain {
            Ok(chain) => (
                chain.names(),
                chain
                    .links
                    .iter()
                    .map(|link| link.key_text().to_owned())
                    .collect(),
                chain.holder().name.clone(),
                chain.depth(),
            ),
            Err(_) => (Vec::new(), Vec::new(), String::new(), 0),
        };
        Decision {
            allowed: matches!(reason, Reason::Allowed { .. }),
            principal: claims.principal.clone(),
            agent,
            chain,
            chain_keys,
            depth,
            task: claims.task.clone(),
            service: request.service.clone(),
            operation: request.operation.clone(),
            resource: request.resource.as_str().to_string(),
            attrs: request
                .attrs
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
            time: humantime::format_rfc3339_millis(request.time).to_string(),
            token_id: token_id.to_string(),
            root_key_id: None,
            reason,
        }
    }
}
