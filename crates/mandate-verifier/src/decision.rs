//! The outcome of one authorization: allow or deny, who asked, and why.
//!
//! A [`Decision`] is what an audit record is made of, so it names the
//! principal, the agent chain, the task, the request and the token id, and a
//! denial carries the failing checks with the block each came from.

use std::time::SystemTime;

use biscuit_auth::Authorizer;
use mandate_core::{Mandate, Request};
use serde::Serialize;

use crate::ClaimQueries;

/// The claims of a verified mandate, read from its authority block.
#[derive(Debug, Clone, Default)]
pub(crate) struct Claims {
    pub principal: String,
    pub agent: String,
    pub task: String,
    pub expires_at: Option<SystemTime>,
}

impl Claims {
    /// Reads the claims; a query that fails (a run limit) leaves the field
    /// empty, which the decision reports as it is.
    pub(crate) fn read(authorizer: &mut Authorizer, queries: &ClaimQueries) -> Claims {
        let one = |authorizer: &mut Authorizer, rule: &biscuit_auth::builder::Rule| {
            authorizer
                .query::<_, (String,), _>(rule.clone())
                .ok()
                .and_then(|v| v.into_iter().next())
                .map(|(s,)| s)
                .unwrap_or_default()
        };
        let principal = one(authorizer, &queries.principal);
        let task = one(authorizer, &queries.task);
        let agent = authorizer
            .query::<_, (String, String), _>(queries.agent.clone())
            .ok()
            .and_then(|v| v.into_iter().next())
            .map(|(name, _key)| name)
            .unwrap_or_default();
        let expires_at = authorizer
            .query::<_, (SystemTime,), _>(queries.expires_at.clone())
            .ok()
            .and_then(|v| v.into_iter().next())
            .map(|(t,)| t);
        Claims {
            principal,
            agent,
            task,
            expires_at,
        }
    }
}

/// One check that did not pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedCheck {
    /// The block the check came from (0 = authority); `None` for a check of
    /// the service policy.
    pub block: Option<u32>,
    /// The check's index within its block or policy.
    pub check: u32,
    /// The check as Datalog.
    pub rule: String,
}

impl From<&biscuit_auth::error::FailedCheck> for FailedCheck {
    fn from(check: &biscuit_auth::error::FailedCheck) -> FailedCheck {
        match check {
            biscuit_auth::error::FailedCheck::Block(b) => FailedCheck {
                block: Some(b.block_id),
                check: b.check_id,
                rule: b.rule.clone(),
            },
            biscuit_auth::error::FailedCheck::Authorizer(a) => FailedCheck {
                block: None,
                check: a.check_id,
                rule: a.rule.clone(),
            },
        }
    }
}

impl std::fmt::Display for FailedCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.block {
            Some(0) => write!(
                f,
                "check #{} of the authority block failed: {}",
                self.check, self.rule
            ),
            Some(b) => write!(
                f,
                "check #{} of block {b} failed: {}",
                self.check, self.rule
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
    /// The agents from the principal's first agent to the acting agent.
    pub chain: Vec<String>,
    /// The task the mandate was minted for.
    pub task: String,
    /// The request's service.
    pub service: String,
    /// The request's operation.
    pub operation: String,
    /// The request's resource, normalised.
    pub resource: String,
    /// The token id (last block's revocation id, hex).
    pub token_id: String,
    /// Why.
    pub reason: Reason,
}

impl Decision {
    pub(crate) fn new(
        mandate: &Mandate,
        request: &Request,
        claims: Claims,
        reason: Reason,
    ) -> Decision {
        Decision {
            allowed: matches!(reason, Reason::Allowed { .. }),
            chain: vec![claims.agent.clone()],
            principal: claims.principal,
            agent: claims.agent,
            task: claims.task,
            service: request.service.clone(),
            operation: request.operation.clone(),
            resource: request.resource.as_str().to_string(),
            token_id: mandate.token_id_hex(),
            reason,
        }
    }
}
