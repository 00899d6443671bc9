//! Issuer events: what the issuer service did for whom — a token minted in
//! exchange for a person's identity, refreshed, a task opened or closed, a
//! right asked for at run time and how that request was decided.
//!
//! The issuer records these through the same writer as decisions; a token
//! appears only as its token id and fingerprint.

use mandate_core::{display_label, display_name};
use serde::{Deserialize, Serialize};

/// One thing the issuer did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
#[non_exhaustive]
pub enum IssuerEvent {
    /// A person's identity token was exchanged for a mandate.
    Exchange {
        /// Who the mandate acts for.
        principal: String,
        /// The first agent.
        agent: String,
        /// The task.
        task: String,
        /// The new token's id.
        token_id: String,
        /// Granted rights, `service:operation`.
        rights: Vec<String>,
        /// Expiry, RFC 3339.
        expires_at: String,
        /// The identity provider that vouched for the person.
        identity_issuer: String,
    },
    /// A mandate was refreshed while its task is open.
    Refresh {
        /// Who it acts for.
        principal: String,
        /// The agent that refreshed.
        agent: String,
        /// The task.
        task: String,
        /// The token refreshed.
        previous_token_id: String,
        /// The new token's id.
        token_id: String,
        /// New expiry, RFC 3339.
        expires_at: String,
    },
    /// A task was opened.
    TaskOpened {
        /// For whom.
        principal: String,
        /// The task.
        task: String,
        /// Its deadline, RFC 3339, if any.
        deadline: Option<String>,
    },
    /// A task was closed: every token derived from it ends.
    TaskClosed {
        /// For whom.
        principal: String,
        /// The task.
        task: String,
        /// `closed`, `deadline`, `revoked`, ...
        cause: String,
    },
    /// An agent asked for a right it was not given.
    RightRequested {
        /// For whom.
        principal: String,
        /// The agent asking.
        agent: String,
        /// The task.
        task: String,
        /// The request's id.
        request: String,
        /// The right asked for, `service:operation`.
        right: String,
        /// Why the agent says it needs it.
        justification: String,
    },
    /// A right request was granted, refused, or approved or rejected by a
    /// person.
    RequestDecided {
        /// For whom.
        principal: String,
        /// The agent that asked.
        agent: String,
        /// The task.
        task: String,
        /// The request's id.
        request: String,
        /// `granted`, `refused`, `approved`, `rejected` or `pending_approval`.
        outcome: String,
        /// The policy or the person that decided.
        by: String,
        /// The token issued, when granted.
        token_id: Option<String>,
    },
    /// A token exchange was refused: nothing was minted.
    ExchangeRefused {
        /// The principal, when the person's identity was verified before
        /// the refusal.
        principal: Option<String>,
        /// The OAuth error code (`invalid_grant`, `access_denied`, ...).
        error: String,
        /// Why.
        reason: String,
    },
}

impl IssuerEvent {
    /// The principal concerned.
    pub fn principal(&self) -> Option<&str> {
        match self {
            IssuerEvent::Exchange { principal, .. }
            | IssuerEvent::Refresh { principal, .. }
            | IssuerEvent::TaskOpened { principal, .. }
            | IssuerEvent::TaskClosed { principal, .. }
            | IssuerEvent::RightRequested { principal, .. }
            | IssuerEvent::RequestDecided { principal, .. } => Some(principal),
            IssuerEvent::ExchangeRefused { principal, .. } => principal.as_deref(),
        }
    }

    /// The task concerned.
    pub fn task(&self) -> Option<&str> {
        match self {
            IssuerEvent::Exchange { task, .. }
            | IssuerEvent::Refresh { task, .. }
            | IssuerEvent::TaskOpened { task, .. }
            | IssuerEvent::TaskClosed { task, .. }
            | IssuerEvent::RightRequested { task, .. }
            | IssuerEvent::RequestDecided { task, .. } => Some(task),
            IssuerEvent::ExchangeRefused { .. } => None,
        }
    }

    /// The agent concerned, if any.
    pub fn agent(&self) -> Option<&str> {
        match self {
            IssuerEvent::Exchange { agent, .. }
            | IssuerEvent::Refresh { agent, .. }
            | IssuerEvent::RightRequested { agent, .. }
            | IssuerEvent::RequestDecided { agent, .. } => Some(agent),
            IssuerEvent::TaskOpened { .. }
            | IssuerEvent::TaskClosed { .. }
            | IssuerEvent::ExchangeRefused { .. } => None,
        }
    }

    /// The token this event issued, if any.
    pub fn token_id(&self) -> Option<&str> {
        match self {
            IssuerEvent::Exchange { token_id, .. } | IssuerEvent::Refresh { token_id, .. } => {
                Some(token_id)
            }
            IssuerEvent::RequestDecided { token_id, .. } => token_id.as_deref(),
            IssuerEvent::TaskOpened { .. }
            | IssuerEvent::TaskClosed { .. }
            | IssuerEvent::RightRequested { .. }
            | IssuerEvent::ExchangeRefused { .. } => None,
        }
    }
}

impl std::fmt::Display for IssuerEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = |s: &str| display_name(s);
        // Names inside the sentence, quoted when they could read as part of it.
        let l = |s: &str| display_label(s);
        match self {
            IssuerEvent::Exchange {
                principal,
                agent,
                task,
                token_id,
                rights,
                expires_at,
                identity_issuer,
            } => write!(
                f,
                "issuer: minted {} for {} (identity from {}), agent {}, task {}, rights {}, until {expires_at}",
                short(token_id),
                l(principal),
                n(identity_issuer),
                l(agent),
                l(task),
                rights.iter().map(|r| n(r)).collect::<Vec<_>>().join(", ")
            ),
            IssuerEvent::Refresh {
                principal,
                agent,
                task,
                previous_token_id,
                token_id,
                expires_at,
            } => write!(
                f,
                "issuer: refreshed {} → {} for {} (agent {}, task {}) until {expires_at}",
                short(previous_token_id),
                short(token_id),
                l(principal),
                l(agent),
                l(task)
            ),
            IssuerEvent::TaskOpened {
                principal,
                task,
                deadline,
            } => {
                write!(f, "issuer: task {} opened for {}", l(task), l(principal))?;
                if let Some(deadline) = deadline {
                    write!(f, " (deadline {deadline})")?;
                }
                Ok(())
            }
            IssuerEvent::TaskClosed {
                principal,
                task,
                cause,
            } => write!(
                f,
                "issuer: task {} of {} closed ({})",
                l(task),
                l(principal),
                n(cause)
            ),
            IssuerEvent::RightRequested {
                principal,
                agent,
                task,
                request,
                right,
                justification,
            } => write!(
                f,
                "issuer: {} for {} (task {}) asked for {} [{}]: {}",
                l(agent),
                l(principal),
                l(task),
                n(right),
                n(request),
                n(justification)
            ),
            IssuerEvent::RequestDecided {
                principal,
                agent,
                task,
                request,
                outcome,
                by,
                token_id,
            } => {
                write!(
                    f,
                    "issuer: request [{}] of {} for {} (task {}) {} by {}",
                    n(request),
                    l(agent),
                    l(principal),
                    l(task),
                    n(outcome),
                    l(by)
                )?;
                if let Some(id) = token_id {
                    write!(f, ", token {}", short(id))?;
                }
                Ok(())
            }
            IssuerEvent::ExchangeRefused {
                principal,
                error,
                reason,
            } => {
                f.write_str("issuer: exchange refused")?;
                if let Some(principal) = principal {
                    write!(f, " for {}", l(principal))?;
                }
                write!(f, " ({}): {}", n(error), n(reason))
            }
        }
    }
}

/// The first 16 hex digits of a token id, for display.
fn short(token_id: &str) -> String {
    let end = token_id
        .char_indices()
        .nth(16)
        .map_or(token_id.len(), |(i, _)| i);
    display_name(&token_id[..end])
}
