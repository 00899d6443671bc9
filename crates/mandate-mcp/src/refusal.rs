//! How a refused `tools/call` looks on the wire: one JSON-RPC error code,
//! a message naming why (the failing check, its block and the agent that
//! wrote it), and the decision as `data`.

use mandate_verifier::Decision;
use rmcp::model::{ErrorCode, ErrorData};
use serde_json::json;

/// The JSON-RPC error code of every refused call (implementation-defined
/// server error range).
pub const DENIED_CODE: i32 = -32001;

fn error(message: String, data: serde_json::Value) -> ErrorData {
    ErrorData::new(ErrorCode(DENIED_CODE), message, Some(data))
}

/// No mandate came with the call.
pub fn missing() -> ErrorData {
    error(
        format!(
            "mandate required: send it in _meta[\"{}\"] with a proof in _meta[\"{}\"]",
            crate::META_TOKEN,
            crate::META_POP
        ),
        json!({"kind": "missing_mandate"}),
    )
}

/// The proof of possession is not in its text form.
pub fn malformed(message: &str) -> ErrorData {
    error(
        format!("mandate refused: {message}"),
        json!({"kind": "malformed_proof"}),
    )
}

/// The code of a token that could not be judged: `expired_token` or
/// `invalid_token` (malformed, tampered, untrusted root), as the
/// authorization API answers them.
pub fn unusable_code(error_: &mandate_verifier::Error) -> &'static str {
    match error_ {
        mandate_verifier::Error::Expired { .. } => "expired_token",
        _ => "invalid_token",
    }
}

/// The token could not be judged (malformed, untrusted root, expired).
pub fn unusable(error_: &mandate_verifier::Error) -> ErrorData {
    error(
        format!("mandate refused: {error_}"),
        json!({"kind": unusable_code(error_)}),
    )
}

/// The call's record could not be written to the audit trail, so the call
/// is refused whatever was decided (fail closed).
pub fn unrecorded(error_: &mandate_audit::Error) -> ErrorData {
    error(
        format!("mandate refused: the decision could not be recorded ({error_})"),
        json!({"kind": "audit_unavailable"}),
    )
}

/// The verifier denied the call.
pub fn denied(decision: &Decision) -> ErrorData {
    let chain = decision.chain.join(" -> ");
    error(
        format!(
            "mandate denied {} on {} for agent {} (chain {chain}): {}",
            decision.operation, decision.resource, decision.agent, decision.reason
        ),
        json!({
            "kind": decision.reason.kind(),
            "decision": serde_json::to_value(decision).unwrap_or_default(),
        }),
    )
}
