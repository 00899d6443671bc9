//! The one seam every issuer state change is reported through.
//!
//! [`IssuerEvents::record`] receives each [`IssuerEvent`] after the change
//! happened (a task opened, refreshed, closed, an exchange refused, more
//! rights asked for and that request decided). The
//! default, [`TracingEvents`], writes one structured `tracing` event per
//! change on target `mandate::audit`, named by [`IssuerEvent::name`]
//! (`task.open`, ...). An audit trail plugs in by implementing the trait.
//! Events carry names and fingerprints, never a token or a key.

use std::time::SystemTime;

/// A state change of the issuer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum IssuerEvent {
    /// An exchange opened a task and minted its first mandate.
    TaskOpened {
        /// The task id.
        task: String,
        /// The verified principal.
        principal: String,
        /// The agent the task was opened for.
        agent: String,
        /// The rights granted, `service:operation`.
        rights: Vec<String>,
        /// When the task closes itself.
        deadline: SystemTime,
        /// Fingerprint of the minted mandate.
        mandate: String,
        /// The minted mandate's token id (hex).
        token_id: String,
        /// Its expiry.
        expires_at: SystemTime,
        /// The identity provider that vouched for the principal (its `iss`).
        identity_issuer: String,
    },
    /// A fresh mandate was minted for an open task.
    TaskRefreshed {
        /// The task id.
        task: String,
        /// The task's principal.
        principal: String,
        /// The task's agent, which asked.
        agent: String,
        /// The token id (hex) of the mandate the agent refreshed with.
        previous_token_id: String,
        /// Fingerprint of the minted mandate.
        mandate: String,
        /// The minted mandate's token id (hex).
        token_id: String,
        /// Its expiry.
        expires_at: SystemTime,
    },
    /// A task was closed and its revocation written.
    TaskClosed {
        /// The task id.
        task: String,
        /// `agent`, `deadline` or `operator`.
        by: &'static str,
    },
    /// A task's agent asked for rights its task does not hold.
    RightRequested {
        /// The request's id.
        request: String,
        /// The task.
        task: String,
        /// The task's principal.
        principal: String,
        /// The agent asking.
        agent: String,
        /// The rights asked for, `service:operation`.
        rights: Vec<String>,
        /// The agent's reason.
        reason: String,
    },
    /// A request for more rights was decided: by the issuance policy
    /// (`granted`, `refused`, `pending_approval`), by a person (`approved`,
    /// `rejected`) or by its expiry (`expired`).
    RequestDecided {
        /// The request's id.
        request: String,
        /// The task.
        task: String,
        /// The task's principal.
        principal: String,
        /// The agent that asked.
        agent: String,
        /// The outcome.
        outcome: &'static str,
        /// `policy`, `expiry`, or the principal of the person who decided.
        by: String,
        /// The minted mandate's token id, when the decision minted one.
        token_id: Option<String>,
    },
    /// A token exchange was refused; nothing was minted.
    ExchangeRefused {
        /// The RFC 6749 error code.
        error: &'static str,
        /// Why, for the operator.
        reason: String,
        /// The principal, when the identity was verified before the refusal.
        principal: Option<String>,
    },
}

impl IssuerEvent {
    /// The event's name: `task.open`, `task.refresh`, `task.close`,
    /// `request.ask`, `request.decide`, `exchange.refused`.
    pub fn name(&self) -> &'static str {
        match self {
            IssuerEvent::RightRequested { .. } => "request.ask",
            IssuerEvent::RequestDecided { .. } => "request.decide",
            IssuerEvent::TaskOpened { .. } => "task.open",
            IssuerEvent::TaskRefreshed { .. } => "task.refresh",
            IssuerEvent::TaskClosed { .. } => "task.close",
            IssuerEvent::ExchangeRefused { .. } => "exchange.refused",
        }
    }
}

/// Where issuer events go.
pub trait IssuerEvents: Send + Sync {
    /// Records one event. Must not block for long: it runs on the request path.
    fn record(&self, event: &IssuerEvent);
}

/// Writes each event as a structured `tracing` event on `mandate::audit`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingEvents;

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl IssuerEvents for TracingEvents {
    fn record(&self, event: &IssuerEvent) {
        let name = event.name();
        match event {
            IssuerEvent::TaskOpened {
                task,
                principal,
                agent,
                rights,
                deadline,
                mandate,
                token_id,
                ..
            } => tracing::info!(
                target: "mandate::audit",
                event = name,
                task = %task,
                principal = %principal,
                agent = %agent,
                rights = %rights.join(" "),
                deadline = unix(*deadline),
                mandate = %mandate,
                token_id = %token_id,
                "task opened"
            ),
            IssuerEvent::TaskRefreshed {
                task,
                mandate,
                token_id,
                expires_at,
                ..
            } => tracing::info!(
                target: "mandate::audit",
                event = name,
                task = %task,
                mandate = %mandate,
                token_id = %token_id,
                expires_at = unix(*expires_at),
                "task refreshed"
            ),
            IssuerEvent::TaskClosed { task, by } => tracing::info!(
                target: "mandate::audit",
                event = name,
                task = %task,
                by = *by,
                "task closed"
            ),
            IssuerEvent::RightRequested {
                request,
                task,
                agent,
                rights,
                reason,
                ..
            } => tracing::info!(
                target: "mandate::audit",
                event = name,
                request = %request,
                task = %task,
                agent = %agent,
                rights = %rights.join(" "),
                // The agent's words, escaped: they cannot forge a log line.
                reason = ?reason,
                "more rights asked for"
            ),
            IssuerEvent::RequestDecided {
                request,
                task,
                outcome,
                by,
                token_id,
                ..
            } => tracing::info!(
                target: "mandate::audit",
                event = name,
                request = %request,
                task = %task,
                outcome = *outcome,
                by = %by,
                token_id = token_id.as_deref().unwrap_or(""),
                "request for more rights decided"
            ),
            IssuerEvent::ExchangeRefused {
                error,
                reason,
                principal,
            } => tracing::info!(
                target: "mandate::audit",
                event = name,
                error = *error,
                // Refusals may quote what a stranger sent: escaped.
                reason = %mandate_core::print::escape(reason),
                principal = principal.as_deref().unwrap_or(""),
                "token exchange refused"
            ),
        }
    }
}
