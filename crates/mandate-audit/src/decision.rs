//! Decision records: what a verifier decided, for whom, through which chain,
//! and why — made from the verifier's [`Decision`], never from a token.
//!
//! Attributes are recorded as a digest only (they may carry amounts or
//! account ids a security team reads elsewhere); agent keys as fingerprints.

use mandate_core::{display_label, display_name};
use mandate_verifier::{Decision, Reason, RevocationDenial};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The request may proceed.
    Allow,
    /// It may not.
    Deny,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
        })
    }
}

impl std::str::FromStr for Outcome {
    type Err = String;

    fn from_str(text: &str) -> Result<Outcome, String> {
        match text {
            "allow" => Ok(Outcome::Allow),
            "deny" => Ok(Outcome::Deny),
            other => Err(format!("`{other}` is not allow or deny")),
        }
    }
}

/// One agent of a decision's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    /// The agent's name.
    pub name: String,
    /// `sha256:<16 hex>` of its key (`ed25519/<hex>`), empty for a bearer
    /// first agent.
    pub key: String,
}

/// Where a decision was made and under which state; supplied by the server
/// that records it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecisionContext {
    /// The API that answered (`authorize`, `ext_authz`, `middleware`).
    pub api: &'static str,
    /// The request's id (the caller's `X-Request-Id`, or one made up).
    pub request_id: String,
    /// The verifier that decided.
    pub verifier: String,
    /// The revocation sequence the verifier's state had reached.
    pub revocation_seq: Option<u64>,
    /// The token's fingerprint ([`mandate_core::fingerprint`]).
    pub token_fingerprint: String,
}

/// A failed check, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRecord {
    /// The block (0 = authority); `None` for the service policy.
    pub block: Option<u32>,
    /// The check's index in its block or policy.
    pub check: u32,
    /// Who wrote the block.
    pub author: String,
    /// The check, as escaped Datalog.
    pub rule: String,
}

/// Why, typed: the verifier's [`Reason`] as plain data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReasonRecord {
    /// Every check passed and this allow policy matched.
    Allowed {
        /// The policy.
        policy: String,
    },
    /// Checks failed.
    FailedChecks {
        /// Each failing check with its block and author.
        checks: Vec<CheckRecord>,
    },
    /// A deny policy matched.
    DenyPolicy {
        /// The policy.
        policy: String,
    },
    /// No policy matched.
    NoMatchingPolicy,
    /// A forged, unsigned or misdirected hop, or an unreadable block.
    ChainBroken {
        /// Which block and why.
        message: String,
    },
    /// Something the token depends on is revoked.
    Revoked {
        /// `token_id`, `principal`, `agent` or `task`.
        revoked_kind: String,
        /// What was revoked.
        value: String,
        /// The revocation's sequence number in the registry.
        revocation: u64,
        /// The operator's reason.
        reason: String,
    },
    /// The revocation state could not be vouched for.
    Stale {
        /// Since when, and the bound.
        detail: String,
    },
    /// The proof of possession was missing, invalid, stale or replayed.
    ProofOfPossession {
        /// Why.
        message: String,
    },
    /// The token asks for more evaluation work than the verifier accepts.
    TooComplex {
        /// Which block and query.
        message: String,
    },
    /// Evaluation hit a run limit.
    RunLimit {
        /// Which limit.
        limit: String,
    },
    /// An expression failed to evaluate.
    Evaluation {
        /// What failed.
        message: String,
    },
    /// A reason this version does not know by name.
    Other {
        /// The verifier's kind label.
        label: String,
        /// Its message.
        message: String,
    },
}

impl From<&Reason> for ReasonRecord {
    fn from(reason: &Reason) -> ReasonRecord {
        match reason {
            Reason::Allowed { policy } => ReasonRecord::Allowed {
                policy: policy.clone(),
            },
            Reason::FailedChecks { checks } => ReasonRecord::FailedChecks {
                checks: checks
                    .iter()
                    .map(|c| CheckRecord {
                        block: c.block,
                        check: c.check,
                        author: c.author.clone(),
                        rule: c.rule.clone(),
                    })
                    .collect(),
            },
            Reason::DenyPolicy { policy } => ReasonRecord::DenyPolicy {
                policy: policy.clone(),
            },
            Reason::NoMatchingPolicy => ReasonRecord::NoMatchingPolicy,
            Reason::ChainBroken { error } => ReasonRecord::ChainBroken {
                message: error.to_string(),
            },
            Reason::Revoked {
                denial:
                    RevocationDenial::Revoked {
                        kind,
                        value,
                        seq,
                        reason,
                    },
            } => ReasonRecord::Revoked {
                revoked_kind: kind.clone(),
                value: value.clone(),
                revocation: *seq,
                reason: reason.clone(),
            },
            Reason::Revoked {
                denial: RevocationDenial::Stale { detail },
            } => ReasonRecord::Stale {
                detail: detail.clone(),
            },
            Reason::ProofOfPossession { error } => ReasonRecord::ProofOfPossession {
                message: error.to_string(),
            },
            Reason::TooComplex { message } => ReasonRecord::TooComplex {
                message: message.clone(),
            },
            Reason::RunLimit { limit } => ReasonRecord::RunLimit {
                limit: limit.clone(),
            },
            Reason::Evaluation { message } => ReasonRecord::Evaluation {
                message: message.clone(),
            },
            other => ReasonRecord::Other {
                label: other.kind().to_owned(),
                message: other.to_string(),
            },
        }
    }
}

impl std::fmt::Display for ReasonRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReasonRecord::Allowed { policy } => write!(f, "allowed by `{policy}`"),
            ReasonRecord::FailedChecks { checks } => {
                for (i, c) in checks.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    match c.block {
                        Some(0) => write!(f, "check #{} of the authority block", c.check)?,
                        Some(b) => write!(f, "check #{} of block {b}", c.check)?,
                        None => write!(f, "check #{} of the service policy", c.check)?,
                    }
                    write!(f, " (by {}) failed: {}", c.author, c.rule)?;
                }
                Ok(())
            }
            ReasonRecord::DenyPolicy { policy } => write!(f, "denied by policy `{policy}`"),
            ReasonRecord::NoMatchingPolicy => f.write_str("no policy matched"),
            ReasonRecord::ChainBroken { message } => write!(f, "broken chain: {message}"),
            ReasonRecord::Revoked {
                revoked_kind,
                value,
                revocation,
                reason,
            } => {
                write!(
                    f,
                    "revoked {revoked_kind} {} (#{revocation}",
                    display_name(value)
                )?;
                if !reason.is_empty() {
                    write!(f, ": {}", display_name(reason))?;
                }
                f.write_str(")")
            }
            ReasonRecord::Stale { detail } => write!(f, "revocation state stale: {detail}"),
            ReasonRecord::ProofOfPossession { message } => f.write_str(message),
            ReasonRecord::TooComplex { message } => write!(f, "too complex: {message}"),
            ReasonRecord::RunLimit { limit } => write!(f, "run limit: {limit}"),
            ReasonRecord::Evaluation { message } => write!(f, "evaluation error: {message}"),
            ReasonRecord::Other { label, message } => write!(f, "{label}: {message}"),
        }
    }
}

/// A decision, as the trail keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// Allow or deny.
    pub decision: Outcome,
    /// Why, typed.
    pub reason: ReasonRecord,
    /// Who the agent acted for.
    pub principal: String,
    /// The acting agent (empty when the chain is broken).
    pub agent: String,
    /// Every agent from the principal's first to the acting one, with its
    /// key fingerprint.
    pub chain: Vec<ChainLink>,
    /// The task.
    pub task: String,
    /// The request's service.
    pub service: String,
    /// The request's operation.
    pub operation: String,
    /// The request's resource.
    pub resource: String,
    /// SHA-256 (hex) of the request's attributes, `key=value` lines in
    /// order; empty when there were none.
    pub attrs_sha256: String,
    /// The time the request was decided at (RFC 3339).
    pub decided_at: String,
    /// The token id (its last block's revocation id, hex).
    pub token_id: String,
    /// The token's fingerprint (`sha256:<16 hex>` of its text).
    pub token: String,
    /// The root key id the token was verified under.
    pub root_key_id: Option<u32>,
    /// The API that answered.
    pub api: String,
    /// The request's id.
    pub request_id: String,
    /// The verifier that decided.
    pub verifier: String,
    /// The revocation sequence the verifier's state had reached.
    pub revocation_seq: Option<u64>,
}

/// `sha256:` and 16 hex digits of the SHA-256 of an agent key's text.
pub fn key_fingerprint(key_text: &str) -> String {
    if key_text.is_empty() {
        return String::new();
    }
    mandate_core::fingerprint(key_text)
}

/// The digest of a request's attributes (empty for none).
pub fn attrs_digest(attrs: &[(String, String)]) -> String {
    if attrs.is_empty() {
        return String::new();
    }
    let mut hasher = Sha256::new();
    for (key, value) in attrs {
        // Lengths first: no key or value can imitate a separator.
        hasher.update((key.len() as u64).to_be_bytes());
        hasher.update(key.as_bytes());
        hasher.update((value.len() as u64).to_be_bytes());
        hasher.update(value.as_bytes());
    }
    hex::encode(hasher.finalize())
}

impl DecisionRecord {
    /// The record of `decision`, decided where `context` says.
    pub fn new(decision: &Decision, context: &DecisionContext) -> DecisionRecord {
        let chain = decision
            .chain
            .iter()
            .enumerate()
            .map(|(i, name)| ChainLink {
                name: name.clone(),
                key: decision
                    .chain_keys
                    .get(i)
                    .map(|k| key_fingerprint(k))
                    .unwrap_or_default(),
            })
            .collect();
        DecisionRecord {
            decision: if decision.allowed {
                Outcome::Allow
            } else {
                Outcome::Deny
            },
            reason: ReasonRecord::from(&decision.reason),
            principal: decision.principal.clone(),
            agent: decision.agent.clone(),
            chain,
            task: decision.task.clone(),
            service: decision.service.clone(),
            operation: decision.operation.clone(),
            resource: decision.resource.clone(),
            attrs_sha256: attrs_digest(&decision.attrs),
            decided_at: decision.time.clone(),
            token_id: decision.token_id.clone(),
            token: context.token_fingerprint.clone(),
            root_key_id: decision.root_key_id,
            api: context.api.to_owned(),
            request_id: context.request_id.clone(),
            verifier: context.verifier.clone(),
            revocation_seq: context.revocation_seq,
        }
    }
}

impl std::fmt::Display for DecisionRecord {
    /// `charting-bot (via orchestrator → analytics-bot) for bob@example.com:
    /// datasets read /q3-sales/regions/emea → deny: revoked task t-42 (#17)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let agent = if self.agent.is_empty() {
            "(unknown agent)".to_owned()
        } else {
            display_label(&self.agent)
        };
        f.write_str(&agent)?;
        if self.chain.len() > 1 {
            let via: Vec<String> = self.chain[..self.chain.len() - 1]
                .iter()
                .map(|link| display_label(&link.name))
                .collect();
            write!(f, " (via {})", via.join(" → "))?;
        }
        write!(
            f,
            " for {}: {} {} {} → {}: {}",
            display_label(&self.principal),
            display_name(&self.service),
            display_name(&self.operation),
            display_name(&self.resource),
            self.decision,
            self.reason
        )
    }
}

/// A request that could not be judged (answered 401): nobody is named,
/// because nothing of an untrusted token is believed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalRecord {
    /// A stable code (`invalid_token`, `expired_token`, ...).
    pub code: String,
    /// Why, for people.
    pub message: String,
    /// The token's fingerprint, when one was sent.
    pub token: String,
    /// The request's service, when it was known.
    pub service: Option<String>,
    /// Its operation.
    pub operation: Option<String>,
    /// Its resource.
    pub resource: Option<String>,
    /// The API that answered.
    pub api: String,
    /// The request's id.
    pub request_id: String,
    /// The verifier.
    pub verifier: String,
}

impl std::fmt::Display for RefusalRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "token {}", self.token)?;
        if let (Some(s), Some(o), Some(r)) = (&self.service, &self.operation, &self.resource) {
            write!(
                f,
                ": {} {} {}",
                display_name(s),
                display_name(o),
                display_name(r)
            )?;
        }
        write!(f, " → refused ({}): {}", self.code, self.message)
    }
}
