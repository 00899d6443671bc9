//! `POST /v1/tasks/{id}/close` ([`close`]): by the task's agent with a proof,
//! as a refresh is made, or by someone other than its agent:
//!
//! - **The principal**: `Authorization: Bearer <identity token>` (a JWT from
//!   a configured identity provider, verified as the token exchange does:
//!   issuer, audience, signature, expiry), no proof. Allowed when the
//!   principal it names is the task's.
//! - **An operator**: `Authorization: Mandate <token>` with a `Mandate-PoP`
//!   proof over (`tasks`, `close`, `/v1/tasks/{id}`), the mandate signed by
//!   a root this issuer trusts and granting the right `tasks:close`, judged
//!   as [`super::operators`] says (503 while the revocation state is stale);
//!   without an operators' verifier, operator closes are refused.
//!
//! Anyone else is refused with 403 and the task stays open.

use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mandate_core::{Request, ResourcePath};
use mandate_verifier::http::ApiError;

use super::tasks::{credentials, to_api, Closed, POP_HEADER};
use super::IssuerState;
use crate::issuer::TaskError;

/// The service an operator's mandate must grant `close` on.
pub const OPERATOR_SERVICE: &str = "tasks";
/// The operation.
pub const OPERATOR_OPERATION: &str = "close";

/// The request an operator's proof signs and its mandate is decided for.
///
/// # Errors
/// A task id that cannot form a resource path.
pub fn operator_request(task: &str, now: SystemTime) -> Result<Request, mandate_core::Error> {
    Ok(Request::new(
        OPERATOR_SERVICE,
        OPERATOR_OPERATION,
        ResourcePath::parse(&format!("/v1/tasks/{task}"))?,
        now,
    ))
}

/// Who is asking, read from the headers only.
enum Caller {
    Principal {
        id_token: String,
    },
    Mandate {
        token: String,
        proof: Option<String>,
    },
    Nobody,
}

fn caller(headers: &HeaderMap) -> Caller {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Caller::Nobody;
    };
    let proof = headers
        .get(POP_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|p| p.trim().to_owned());
    if let Some(token) = value.strip_prefix("Mandate ") {
        return Caller::Mandate {
            token: token.trim().to_owned(),
            proof,
        };
    }
    let Some(token) = value.strip_prefix("Bearer ") else {
        return Caller::Nobody;
    };
    let token = token.trim().to_owned();
    // A JWT has three dot-separated parts; a mandate's base64 has no dot.
    if proof.is_none() && token.split('.').count() == 3 {
        Caller::Principal { id_token: token }
    } else {
        Caller::Mandate { token, proof }
    }
}

/// Closes the task when the caller is its principal or an operator;
/// `None` leaves the request to the agent's path.
pub(super) async fn as_principal_or_operator(
    state: &IssuerState,
    id: &str,
    headers: &HeaderMap,
) -> Option<Response> {
    let now = SystemTime::now();
    match caller(headers) {
        Caller::Principal { id_token } => Some(principal(state, id, &id_token, now).await),
        Caller::Mandate {
            token,
            proof: Some(proof),
        } => {
            // The task's own mandate goes the agent's way; any other mandate
            // this issuer trusts is an operator's.
            let own = state
                .issuer()
                .signing_keys()
                .verify(&token, now)
                .ok()
                .is_some_and(|m| m.claims().task == id);
            if own {
                return None;
            }
            Some(operator(state, id, token, proof, now).await)
        }
        _ => None,
    }
}

async fn principal(state: &IssuerState, id: &str, id_token: &str, now: SystemTime) -> Response {
    let identity = match state
        .issuer()
        .identity_providers()
        .verify(id_token, now)
        .await
    {
        Ok(identity) => identity,
        Err(refusal) => {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                refusal.description,
            )
            .challenge(axum::http::HeaderValue::from_static("Bearer"))
            .into_response()
        }
    };
    let issuer = state.issuer().clone();
    let task = id.to_owned();
    let result =
        tokio::task::spawn_blocking(move || issuer.close_as_principal(&task, &identity.principal))
            .await;
    match result {
        Ok(Ok(closed)) => closed_response(state, closed).await,
        Ok(Err(error)) => to_api(error).into_response(),
        Err(_) => ApiError::internal().into_response(),
    }
}

async fn operator(
    state: &IssuerState,
    id: &str,
    token: String,
    proof: String,
    now: SystemTime,
) -> Response {
    let verifier = state.operators().cloned();
    let issuer = state.issuer().clone();
    let task = id.to_owned();
    let result = tokio::task::spawn_blocking(move || {
        let request = operator_request(&task, now).map_err(|_| TaskError::NotFound)?;
        let decision = super::operators::judge(verifier.as_deref(), &token, &proof, request)?;
        tracing::info!(task = %task, operator = %decision.principal, "task closed by an operator");
        issuer.close_as_operator(&task)
    })
    .await;
    match result {
        Ok(Ok(closed)) => closed_response(state, closed).await,
        Ok(Err(error)) => to_api(error).into_response(),
        Err(_) => ApiError::internal().into_response(),
    }
}

/// `POST /v1/tasks/{id}/close`: by the task's principal or an operator when
/// their credentials say so, otherwise by its agent with a proof.
pub async fn close(
    State(state): State<IssuerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = as_principal_or_operator(&state, &id, &headers).await {
        return response;
    }
    let (token, proof) = match credentials(&headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let issuer = state.issuer.clone();
    let task = id.clone();
    let result =
        tokio::task::spawn_blocking(move || issuer.close(&task, &token, &proof, SystemTime::now()))
            .await;
    match result {
        Ok(Ok(task)) => closed_response(&state, task).await,
        Ok(Err(error)) => to_api(error).into_response(),
        Err(_) => ApiError::internal().into_response(),
    }
}

/// Writes a closed task's revocation, then answers [`Closed`].
async fn closed_response(state: &IssuerState, closed: crate::Task) -> Response {
    let by = match closed.closed_by.as_deref() {
        Some("deadline") => "deadline",
        Some("operator") => "operator",
        Some("principal") => "principal",
        _ => "agent",
    };
    if let Err(error) = state.issuer.revoke(&closed.id, by).await {
        return to_api(error).into_response();
    }
    Json(Closed {
        task_id: closed.id,
        state: closed.state.as_str().into(),
    })
    .into_response()
}
