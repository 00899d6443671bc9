//! The issuer's events in the audit trail: with `[audit] store`, every task
//! opened (with the mandate minted in exchange for a person's identity),
//! refreshed and closed, every refused exchange, and every request for more
//! rights with its decision, becomes a record of the same log decisions are
//! written to, besides the `tracing` event.
//!
//! An event is recorded after the change it reports and before the answer
//! (the call waits for the record to be durable). An event that cannot be
//! recorded is logged; the change itself stands.
//!
//! The trail is readable while the issuer runs: `GET /v1/audit` (pages and
//! the event stream, the same handler as `mandate serve`'s) for mandates
//! under the issuer's own root key granting `audit:read`, judged against the
//! issuer's revocation state ([`super::revocations`]): stale, every read is
//! refused.

use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Result;
use axum::Router;
use mandate_audit::{AuditWriter, Event, IssuerEvent as Record};

use mandate_issuer::tasks::TaskStore;
use mandate_issuer::{IssuerEvent, IssuerEvents, TracingEvents};
use mandate_registry::SharedIndex;
use mandate_verifier::pool::EvalPool;
use mandate_verifier::{SharedKeySet, Verifier};
use tokio::runtime::{Handle, RuntimeFlavor};

use crate::audit_api::AuditApiState;

/// `GET /v1/audit` on the issuer, reading what `writer` writes, for
/// mandates under `root` judged on `pool` against `revocations`.
///
/// # Errors
/// The readers' verifier cannot be built.
pub fn reader_routes(
    writer: &AuditWriter,
    root: SharedKeySet,
    revocations: &SharedIndex,
    pool: EvalPool,
) -> Result<Router> {
    let readers = Verifier::builder()
        .shared_root_keys(root)
        .revocation(Arc::new(revocations.clone()))
        .build()?;
    let state = AuditApiState::of_writer(writer, readers, pool);
    Ok(crate::audit_api::router(state))
}

/// Records the issuer's events with `writer`, and logs them as
/// [`TracingEvents`] does.
pub struct AuditedEvents {
    writer: Arc<AuditWriter>,
    tasks: Arc<dyn TaskStore>,
}

impl AuditedEvents {
    /// Records into `writer`; `tasks` names the principal of a closed task.
    pub fn new(writer: Arc<AuditWriter>, tasks: Arc<dyn TaskStore>) -> AuditedEvents {
        AuditedEvents { writer, tasks }
    }

    /// The records of `event`: a task opened is also a mandate minted.
    fn records(&self, event: &IssuerEvent) -> Vec<Record> {
        match event {
            IssuerEvent::TaskOpened {
                task,
                principal,
                agent,
                rights,
                deadline,
                token_id,
                expires_at,
                identity_issuer,
                ..
            } => vec![
                Record::TaskOpened {
                    principal: principal.clone(),
                    task: task.clone(),
                    deadline: Some(rfc3339(*deadline)),
                },
                Record::Exchange {
                    principal: principal.clone(),
                    agent: agent.clone(),
                    task: task.clone(),
                    token_id: token_id.clone(),
                    rights: rights.clone(),
                    expires_at: rfc3339(*expires_at),
                    identity_issuer: identity_issuer.clone(),
                },
            ],
            IssuerEvent::TaskRefreshed {
                task,
                principal,
                agent,
                previous_token_id,
                token_id,
                expires_at,
                ..
            } => vec![Record::Refresh {
                principal: principal.clone(),
                agent: agent.clone(),
                task: task.clone(),
                previous_token_id: previous_token_id.clone(),
                token_id: token_id.clone(),
                expires_at: rfc3339(*expires_at),
            }],
            IssuerEvent::TaskClosed { task, by } => {
                let principal = match self.tasks.get(task) {
                    Ok(Some(stored)) => stored.principal,
                    Ok(None) => String::new(),
                    Err(error) => {
                        tracing::warn!(target: "mandate::audit", task = %task, %error, "closed task not found for its audit record");
                        String::new()
                    }
                };
                vec![Record::TaskClosed {
                    principal,
                    task: task.clone(),
                    cause: (*by).to_owned(),
                }]
            }
            IssuerEvent::ExchangeRefused {
                error,
                reason,
                principal,
            } => vec![Record::ExchangeRefused {
                principal: principal.clone(),
                error: (*error).to_owned(),
                reason: reason.clone(),
            }],
            IssuerEvent::RightRequested {
                request,
                task,
                principal,
                agent,
                rights,
                reason,
            } => vec![Record::RightRequested {
                principal: principal.clone(),
                agent: agent.clone(),
                task: task.clone(),
                request: request.clone(),
                right: rights.join(" "),
                justification: reason.clone(),
            }],
            IssuerEvent::RequestDecided {
                request,
                task,
                principal,
                agent,
                outcome,
                by,
                token_id,
            } => vec![Record::RequestDecided {
                principal: principal.clone(),
                agent: agent.clone(),
                task: task.clone(),
                request: request.clone(),
                outcome: (*outcome).to_owned(),
                by: by.clone(),
                token_id: token_id.clone(),
            }],
            other => {
                tracing::warn!(target: "mandate::audit", event = other.name(), "issuer event without an audit record");
                Vec::new()
            }
        }
    }

    fn write(&self, event: &IssuerEvent) {
        for record in self.records(event) {
            if let Err(error) = self.writer.append_blocking(Event::Issuer(record)) {
                tracing::error!(
                    target: "mandate::audit",
                    event = event.name(),
                    %error,
                    "issuer event not recorded in the audit log"
                );
            }
        }
    }
}

impl IssuerEvents for AuditedEvents {
    fn record(&self, event: &IssuerEvent) {
        TracingEvents.record(event);
        // Waiting for the writer (and reading the task store) blocks: on a
        // runtime's worker thread, tell the runtime first.
        match Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::CurrentThread => {
                // Cannot block here: record without waiting.
                let this = AuditedEvents {
                    writer: Arc::clone(&self.writer),
                    tasks: Arc::clone(&self.tasks),
                };
                let event = event.clone();
                handle.spawn_blocking(move || this.write(&event));
            }
            Ok(_) => tokio::task::block_in_place(|| self.write(event)),
            Err(_) => self.write(event),
        }
    }
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}
