//! `POST /v1/tasks/{id}/refresh`, and what it shares with
//! `POST /v1/tasks/{id}/close` ([`super::close`]): the credentials, the
//! answer to a close, and the refusals.
//!
//! Both need `Authorization: Mandate <token>` (or `Bearer`) with the task's
//! current mandate and a `Mandate-PoP` proof by the task's agent over
//! (`mandate-issuer`, `refresh`|`close`, `/v1/tasks/{id}`). A close may also
//! come from the task's principal or an operator ([`super::close`]).
//! Refusals use `ApiError`: 401 unauthenticated, 403 another agent or task
//! (or a refresh with a revoked mandate), 404 no such task, 409 closed, 503
//! store or registry unavailable, or the revocation state stale (a refresh
//! cannot be vouched for; see `crate::revoked`).

use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mandate_verifier::http::ApiError;

use super::token::{no_store, TokenResponse};
use super::IssuerState;
use crate::issuer::TaskError;

/// The header carrying the proof of possession.
pub const POP_HEADER: &str = "mandate-pop";

/// The answer to a close.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Closed {
    /// The task.
    pub task_id: String,
    /// `closed`.
    pub state: String,
}

pub(crate) fn to_api(error: TaskError) -> ApiError {
    match error {
        TaskError::Unauthenticated(why) => {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", why)
                .challenge(HeaderValue::from_static("Mandate"))
        }
        TaskError::Forbidden(why) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", why),
        TaskError::NotFound => {
            ApiError::new(StatusCode::NOT_FOUND, "task_not_found", "no such task")
        }
        TaskError::Closed(_) | TaskError::PastDeadline => {
            ApiError::new(StatusCode::CONFLICT, "task_closed", error.to_string())
        }
        TaskError::Unavailable(why) => ApiError::unavailable("unavailable", why),
        _ => ApiError::internal(),
    }
}

pub(crate) fn credentials(headers: &HeaderMap) -> Result<(String, String), ApiError> {
    let missing = |what: &str| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            format!("missing {what}"),
        )
        .challenge(HeaderValue::from_static("Mandate"))
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Mandate ")
                .or_else(|| v.strip_prefix("Bearer "))
        })
        .map(|t| t.trim().to_owned())
        .ok_or_else(|| missing("Authorization: Mandate <token>"))?;
    let proof = headers
        .get(POP_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|p| p.trim().to_owned())
        .ok_or_else(|| missing("Mandate-PoP proof"))?;
    Ok((token, proof))
}

/// Refresh.
pub async fn refresh(
    State(state): State<IssuerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (token, proof) = match credentials(&headers) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let issuer = state.issuer.clone();
    let task = id.clone();
    let result = tokio::task::spawn_blocking(move || {
        issuer.refresh(&task, &token, &proof, SystemTime::now())
    })
    .await;
    match result {
        Ok(Ok(issued)) => no_store(TokenResponse::from_issued(issued)),
        Ok(Err(TaskError::PastDeadline)) => {
            // This request closed the task: write its revocation before answering.
            let _ = state.issuer.revoke(&id, "deadline").await;
            to_api(TaskError::PastDeadline).into_response()
        }
        Ok(Err(error)) => to_api(error).into_response(),
        Err(_) => ApiError::internal().into_response(),
    }
}
