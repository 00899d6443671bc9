//! `AuditTrail`: the guard's decisions in the audit trail (`mandate-audit`),
//! each durable before the caller hears the outcome.
//!
//! A decision is recorded with `DecisionRecord::new`, the constructor the
//! authorization API records with, so a tool call reads in `mandate audit`
//! like any other decision: principal, the chain with each agent's key
//! fingerprint, task, service (the server), operation (the tool), resource,
//! outcome and reason, with api `mcp` and the JSON-RPC request id. A call
//! refused before any decision (no mandate, an unreadable proof, a token
//! that cannot be judged) is a refusal record.
//!
//! This module never holds a token or a proof: records carry fingerprints.
//! It never decides: the guard refuses a call whose record could not be
//! written (fail closed).

use std::sync::Arc;

use mandate_audit::{AuditWriter, DecisionContext, DecisionRecord, Event, RefusalRecord};
use mandate_verifier::Decision;

/// The `api` the guard's records name.
pub const API: &str = "mcp";

/// Where a guard records its decisions: an [`AuditWriter`] (which acknowledges
/// a record once it is durable, unless it was started buffered), the name
/// the records give this verifier, and optionally the revocation sequence
/// its state had reached.
#[derive(Clone)]
pub struct AuditTrail {
    writer: Arc<AuditWriter>,
    verifier: String,
    revocation_seq: Option<Arc<dyn Fn() -> u64 + Send + Sync>>,
}

impl std::fmt::Debug for AuditTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditTrail")
            .field("writer", &self.writer)
            .field("verifier", &self.verifier)
            .field("revocation_seq", &self.revocation_seq.is_some())
            .finish()
    }
}

/// A call the guard refused before a decision, as its record names it.
pub(crate) struct Unjudged<'a> {
    /// A stable code (`missing_mandate`, `invalid_arguments`, `malformed_proof`, `invalid_token`,
    /// `expired_token`).
    pub code: &'static str,
    /// Why, for people.
    pub message: &'a str,
    /// The token's fingerprint, empty when none came.
    pub token: &'a str,
    /// The tool.
    pub tool: &'a str,
    /// The resource the server mapped the arguments to.
    pub resource: &'a str,
}

impl AuditTrail {
    /// Records into `writer`, naming this verifier `verifier` (for example
    /// the server's name and process).
    pub fn new(writer: Arc<AuditWriter>, verifier: impl Into<String>) -> AuditTrail {
        AuditTrail {
            writer,
            verifier: verifier.into(),
            revocation_seq: None,
        }
    }

    /// Each record also names the revocation sequence `seq` returns (the
    /// index the guard's verifier consults, `SharedIndex::last_seq`).
    #[must_use]
    pub fn with_revocation_seq(mut self, seq: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.revocation_seq = Some(Arc::new(seq));
        self
    }

    /// The writer records go to.
    pub fn writer(&self) -> &Arc<AuditWriter> {
        &self.writer
    }

    /// Appends the record of `decision`, made for the token with fingerprint
    /// `token` in JSON-RPC request `request_id`; returns its sequence
    /// number once the writer acknowledged it.
    ///
    /// # Errors
    /// The writer is failed, full or stopped, or the batch was not written.
    pub async fn record_decision(
        &self,
        decision: &Decision,
        request_id: &str,
        token: &str,
    ) -> mandate_audit::Result<u64> {
        let context = DecisionContext {
            api: API,
            request_id: request_id.to_owned(),
            verifier: self.verifier.clone(),
            revocation_seq: self.revocation_seq.as_ref().map(|seq| seq()),
            token_fingerprint: token.to_owned(),
        };
        self.writer
            .append(Event::Decision(DecisionRecord::new(decision, &context)))
            .await
    }

    /// Appends the record of a call refused before a decision.
    pub(crate) async fn record_refusal(
        &self,
        service: &str,
        call: &Unjudged<'_>,
        request_id: &str,
    ) -> mandate_audit::Result<u64> {
        self.writer
            .append(Event::Refusal(RefusalRecord {
                code: call.code.to_owned(),
                message: call.message.to_owned(),
                token: call.token.to_owned(),
                service: Some(service.to_owned()),
                operation: Some(call.tool.to_owned()),
                resource: Some(call.resource.to_owned()),
                api: API.to_owned(),
                request_id: request_id.to_owned(),
                verifier: self.verifier.clone(),
            }))
            .await
    }
}
