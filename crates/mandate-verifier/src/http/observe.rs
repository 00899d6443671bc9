//! Decision metrics, through the `metrics` facade: a no-op until the server
//! installs a recorder. Labels are fixed sets (API, outcome, reason kind),
//! never anything a caller chose, so a client cannot create series.

use std::time::Instant;

use crate::Decision;

/// Counts and times one decision of `api`.
pub fn decided(api: &'static str, decision: &Decision, started: Instant) {
    let outcome = if decision.allowed { "allow" } else { "deny" };
    record(api, outcome, decision.reason.kind(), started);
}

/// Counts and times a request of `api` that was refused before a decision:
/// `code` is the error code answered (`invalid_token`, `overloaded`, ...).
pub fn not_decided(api: &'static str, code: &'static str, started: Instant) {
    record(api, "error", code, started);
}

fn record(api: &'static str, outcome: &'static str, reason: &'static str, started: Instant) {
    metrics::counter!("mandate_decisions_total", "api" => api, "outcome" => outcome, "reason" => reason)
        .increment(1);
    metrics::histogram!("mandate_decision_seconds", "api" => api, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
}
