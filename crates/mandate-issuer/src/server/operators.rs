//! Operators at the issuer: a mandate under the issuer's own roots granting
//! a right on one of its resources — `tasks:close` on `/v1/tasks/{id}`
//! ([`super::close`]), `requests:approve` or `requests:deny` on
//! `/v1/requests/{id}` ([`super::requests`]) — presented with a
//! `Mandate-PoP` proof over that request, and judged by the verifier the
//! server composed ([`super::IssuerState::with_operators`]: proof of
//! possession required, under the revocation state it was given).
//!
//! A refusal says why: 401 when the token or the proof cannot be read, 403
//! when the mandate does not grant the right, is revoked, or is not proved
//! by its holder's key, 503 (retry) when the revocation state
//! is stale or an evaluation limit was hit — neither says anything about
//! the operator's rights, and both refuse. Without an operators' verifier
//! every operator is refused.

use std::time::SystemTime;

use mandate_core::{Proof, Request, ResourcePath};
use mandate_verifier::{Decision, Reason, RevocationDenial, Verifier};

use crate::issuer::TaskError;

/// The service an operator's mandate must grant `approve` or `deny` on to
/// decide requests for more rights.
pub const REQUESTS_SERVICE: &str = "requests";
/// The operation approving a request.
pub const APPROVE: &str = "approve";
/// The operation denying a request.
pub const DENY: &str = "deny";

/// The request an operator's proof signs, and its mandate is decided for,
/// to approve (or deny) the request for more rights `id`.
///
/// # Errors
/// A request id that cannot form a resource path.
pub fn decision_request(
    id: &str,
    approve: bool,
    now: SystemTime,
) -> Result<Request, mandate_core::Error> {
    Ok(Request::new(
        REQUESTS_SERVICE,
        if approve { APPROVE } else { DENY },
        ResourcePath::parse(&format!("/v1/requests/{id}"))?,
        now,
    ))
}

/// Judges the operator's `token`, proved by `proof`, for `request`, with
/// `verifier` (none: operators are not accepted here). Blocking: Datalog
/// runs here.
///
/// # Errors
/// [`TaskError::Unauthenticated`], [`TaskError::Forbidden`] or
/// [`TaskError::Unavailable`], as the module documentation says.
pub(crate) fn judge(
    verifier: Option<&Verifier>,
    token: &str,
    proof: &str,
    request: Request,
) -> Result<Decision, TaskError> {
    let Some(verifier) = verifier else {
        return Err(TaskError::Forbidden(
            "this issuer accepts no operator mandates".into(),
        ));
    };
    let proof = Proof::parse(proof)
        .map_err(|_| TaskError::Unauthenticated("malformed proof of possession".into()))?;
    let decision = verifier
        .authorize(token, &request.with_proof(proof))
        .map_err(|e| TaskError::Unauthenticated(e.to_string()))?;
    if decision.allowed {
        return Ok(decision);
    }
    Err(match &decision.reason {
        Reason::Revoked {
            denial: RevocationDenial::Stale { .. },
        }
        | Reason::RunLimit { .. } => TaskError::Unavailable(format!(
            "the operator's mandate cannot be judged now: {}",
            decision.reason
        )),
        _ => TaskError::Forbidden(format!(
            "not an operator of this issuer for {}:{}: {}",
            decision.service, decision.operation, decision.reason
        )),
    })
}
