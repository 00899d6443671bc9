//! Requests for more rights during a task, over HTTP.
//!
//! The agent's side needs `Authorization: Mandate <token>` with the task's
//! current mandate and a `Mandate-PoP` proof by the task's agent, exactly
//! as a refresh: over (`mandate-issuer`, `request`, `/v1/tasks/{task}`) to
//! ask, over (`mandate-issuer`, `poll`, `/v1/tasks/{task}`) to read.
//! - `POST /v1/tasks/{id}/requests`, JSON `{"rights": ["svc:op", ...],
//!   "reason": "..."}`: 200 with a mandate when the policy grants, 202 with
//!   the pending request and its `Location` when a person must decide, 403
//!   `request_refused` with the policy's reason.
//! - `GET /v1/requests/{id}?wait=30s`: the request; while it is pending,
//!   waits for a decision (at most 60 s). A granted request comes with a
//!   fresh mandate of the task's rights on every read (with a fresh proof).
//!
//! The approver's side needs `Authorization: Bearer <identity token>` from
//! a configured identity provider, verified as a subject token is at
//! exchange; the task's principal or a member of an approver group decides.
//! An operator decides with a mandate granting `requests:approve` (or
//! `requests:deny`) and a `Mandate-PoP` proof ([`super::operators`]; 503
//! while the revocation state is stale).
//! - `GET /v1/requests?state=pending` (`granted`, `denied`, `expired`,
//!   `all`): the requests this approver may decide.
//! - `POST /v1/requests/{id}/approve`, `POST /v1/requests/{id}/deny`.
//!
//! Refusals use `ApiError`: 400 malformed, 401 unauthenticated, 403
//! refused or not this caller's to decide, 404 no such request or task, 409
//! decided already, expired or task closed, 429 too many pending, 503
//! store unavailable.

use std::time::{Duration, SystemTime};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mandate_core::Right;
use mandate_verifier::http::ApiError;

use super::operators;
use super::tasks::{credentials, to_api, POP_HEADER};
use super::token::TokenResponse;
use super::IssuerState;
use crate::requests::{
    Approver, Asked, RequestError, RequestState, RightRequest, MAX_REASON, MAX_RIGHTS, MAX_WAIT,
};
use crate::Issued;

/// The routes, merged into the issuer's router.
pub fn routes() -> Router<IssuerState> {
    Router::new()
        .route("/v1/tasks/{id}/requests", post(ask))
        .route("/v1/requests", get(list))
        .route("/v1/requests/{id}", get(poll))
        .route("/v1/requests/{id}/approve", post(approve))
        .route("/v1/requests/{id}/deny", post(deny))
}

/// The body of an ask.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskBody {
    /// The rights wanted, `service:operation`.
    pub rights: Vec<String>,
    /// Why the agent needs them (at most 1024 bytes).
    #[serde(default)]
    pub reason: String,
}

/// A request as the API shows it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct RequestStatus {
    /// Its id.
    pub request_id: String,
    /// The task.
    pub task_id: String,
    /// The task's principal.
    pub principal: String,
    /// The agent that asked.
    pub agent: String,
    /// The rights at stake (those granted, once granted by the policy).
    pub rights: Vec<String>,
    /// The agent's reason.
    pub reason: String,
    /// Why the issuance policy asked a person (empty otherwise).
    pub policy_reason: String,
    /// `pending`, `granted`, `denied` or `expired`.
    pub state: String,
    /// When it was asked (RFC 3339).
    pub created: String,
    /// When a pending request expires (RFC 3339).
    pub expires_at: String,
    /// `policy`, `expiry` or the principal who decided.
    pub decided_by: Option<String>,
    /// A fresh mandate of the task's rights, for the agent, once granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mandate: Option<TokenResponse>,
}

/// The answer to a listing.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct RequestList {
    /// Oldest first.
    pub requests: Vec<RequestStatus>,
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

fn status(request: &RightRequest, issued: Option<Issued>) -> RequestStatus {
    RequestStatus {
        request_id: request.id.clone(),
        task_id: request.task.clone(),
        principal: request.principal.clone(),
        agent: request.agent.clone(),
        rights: request
            .rights
            .iter()
            .map(|r| format!("{}:{}", r.service, r.operation))
            .collect(),
        reason: request.reason.clone(),
        policy_reason: request.policy_reason.clone(),
        state: request.state.as_str().to_owned(),
        created: rfc3339(request.created),
        expires_at: rfc3339(request.expires_at),
        decided_by: request.decided_by.clone(),
        mandate: issued.map(TokenResponse::from_issued),
    }
}

fn request_api(error: RequestError) -> ApiError {
    match error {
        RequestError::Task(error) => to_api(error),
        RequestError::Invalid(why) => ApiError::bad_request("invalid_request", why),
        RequestError::Refused { reason, .. } => {
            ApiError::new(StatusCode::FORBIDDEN, "request_refused", reason)
        }
        RequestError::Unauthenticated(why) => {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", why)
                .challenge(HeaderValue::from_static("Bearer"))
        }
        RequestError::Forbidden(why) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", why),
        RequestError::NotFound => ApiError::new(
            StatusCode::NOT_FOUND,
            "request_not_found",
            "no such request",
        ),
        RequestError::Decided(_) => {
            ApiError::new(StatusCode::CONFLICT, "request_decided", error.to_string())
        }
        RequestError::Expired => {
            ApiError::new(StatusCode::CONFLICT, "request_expired", error.to_string())
        }
        RequestError::TooMany | RequestError::TooManyForPrincipal => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_pending",
            error.to_string(),
        ),
        RequestError::Unavailable(why) => ApiError::unavailable("unavailable", why),
        _ => ApiError::internal(),
    }
}

/// A JSON answer nobody may cache (it may carry a mandate).
fn no_store(status: StatusCode, body: RequestStatus) -> Response {
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /v1/tasks/{id}/requests`.
async fn ask(
    State(state): State<IssuerState>,
    Path(task): Path<String>,
    headers: HeaderMap,
    body: Result<Json<AskBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (token, proof) = credentials(&headers)?;
    let Json(body) = body?;
    if body.rights.len() > MAX_RIGHTS {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("ask for at most {MAX_RIGHTS} rights at once"),
        ));
    }
    if body.reason.len() > MAX_REASON {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("the reason is longer than {MAX_REASON} bytes"),
        ));
    }
    let rights = body
        .rights
        .iter()
        .map(|r| r.parse::<Right>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::bad_request("invalid_right", e.to_string()))?;
    let asked = state
        .negotiator()
        .ask(task, token, proof, rights, body.reason)
        .await
        .map_err(request_api)?;
    Ok(match asked {
        Asked::Granted { request, issued } => {
            no_store(StatusCode::OK, status(&request, Some(issued)))
        }
        Asked::Pending(request) => {
            let location = HeaderValue::from_str(&format!("/v1/requests/{}", request.id))
                .map_err(|_| ApiError::internal())?;
            let mut response = no_store(StatusCode::ACCEPTED, status(&request, None));
            response.headers_mut().insert(header::LOCATION, location);
            response
        }
    })
}

/// `?wait=`: a duration (`30s`) or seconds (`30`), capped at [`MAX_WAIT`];
/// no wait when absent.
fn wait(uri: &Uri) -> Result<Duration, ApiError> {
    let mut wait = Duration::ZERO;
    for (key, value) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if key == "wait" {
            let value = value.trim();
            wait = match value.parse::<u64>() {
                Ok(seconds) => Duration::from_secs(seconds),
                Err(_) => humantime::parse_duration(value).map_err(|_| {
                    ApiError::bad_request(
                        "invalid_request",
                        "wait must be a duration such as 30s (at most 60s)",
                    )
                })?,
            };
        }
    }
    Ok(wait.min(MAX_WAIT))
}

/// `GET /v1/requests/{id}`.
async fn poll(
    State(state): State<IssuerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let (token, proof) = credentials(&headers)?;
    let wait = wait(&uri)?;
    let polled = state
        .negotiator()
        .poll(id, token, proof, wait)
        .await
        .map_err(request_api)?;
    Ok(no_store(
        StatusCode::OK,
        status(&polled.request, polled.issued),
    ))
}

/// The approver's identity token from `Authorization: Bearer`, verified.
async fn approver(state: &IssuerState, headers: &HeaderMap) -> Result<Approver, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "missing Authorization: Bearer <identity token>",
            )
            .challenge(HeaderValue::from_static("Bearer"))
        })?;
    state
        .negotiator()
        .approver(token)
        .await
        .map_err(request_api)
}

/// `GET /v1/requests?state=pending`.
async fn list(
    State(state): State<IssuerState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<RequestList>, ApiError> {
    let mut filter = Some(RequestState::Pending);
    for (key, value) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if key == "state" {
            filter = match value.as_ref() {
                "all" => None,
                other => Some(RequestState::parse(other).ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_request",
                        "state must be pending, granted, denied, expired or all",
                    )
                })?),
            };
        }
    }
    let who = approver(&state, &headers).await?;
    let negotiator = state.negotiator().clone();
    let found = tokio::task::spawn_blocking(move || {
        negotiator.list(&who.identity, filter, SystemTime::now())
    })
    .await
    .map_err(|_| ApiError::internal())?
    .map_err(request_api)?;
    Ok(Json(RequestList {
        requests: found.iter().map(|r| status(r, None)).collect(),
    }))
}

async fn decide(
    state: IssuerState,
    id: String,
    headers: HeaderMap,
    approve: bool,
) -> Result<Response, ApiError> {
    // A proof of possession marks an operator's mandate; an approver sends
    // an identity token alone.
    if headers.contains_key(POP_HEADER) {
        return decide_as_operator(state, id, headers, approve).await;
    }
    let who = approver(&state, &headers).await?;
    let negotiator = state.negotiator().clone();
    let decided = tokio::task::spawn_blocking(move || {
        negotiator.decide(&id, &who, approve, SystemTime::now())
    })
    .await
    .map_err(|_| ApiError::internal())?
    .map_err(request_api)?;
    Ok(no_store(StatusCode::OK, status(&decided, None)))
}

/// A decision by an operator: a mandate granting `requests:approve` (or
/// `requests:deny`) on `/v1/requests/{id}`, with its proof.
async fn decide_as_operator(
    state: IssuerState,
    id: String,
    headers: HeaderMap,
    approve: bool,
) -> Result<Response, ApiError> {
    let (token, proof) = credentials(&headers)?;
    let verifier = state.operators().cloned();
    let negotiator = state.negotiator().clone();
    let decided = tokio::task::spawn_blocking(move || {
        let now = SystemTime::now();
        let request =
            operators::decision_request(&id, approve, now).map_err(|_| RequestError::NotFound)?;
        let decision = operators::judge(verifier.as_deref(), &token, &proof, request)?;
        tracing::info!(request = %id, operator = %decision.principal, approve, "request decided by an operator");
        negotiator.decide_as_operator(&id, &format!("operator:{}", decision.principal), approve, now)
    })
    .await
    .map_err(|_| ApiError::internal())?
    .map_err(request_api)?;
    Ok(no_store(StatusCode::OK, status(&decided, None)))
}

/// `POST /v1/requests/{id}/approve`.
async fn approve(
    State(state): State<IssuerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    decide(state, id, headers, true).await
}

/// `POST /v1/requests/{id}/deny`.
async fn deny(
    State(state): State<IssuerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    decide(state, id, headers, false).await
}
