//! The authorization API: `POST /v1/authorize`, a sidecar in the manner of
//! OPA or Envoy's ext_authz, over the same [`Verifier`] services embed.
//!
//! One JSON error shape, `{"error": {"code", "message"}}`: a malformed,
//! tampered, untrusted or expired token is 401, a trusted token that does
//! not allow the request is 403 (with the decision), a bad body is 400 (413
//! when too large). Internal detail is logged, never sent. Every decision is
//! logged as an audit record (target `mandate::audit`) naming the principal,
//! the chain, the request and the reason, with the token's fingerprint only.
//!
//! Tokens are evaluated on an [`EvalPool`], never on the async runtime's
//! threads: a request the pool cannot take (overloaded) or cannot finish in
//! time (deadline) is answered 503 with `Retry-After` — never allowed — and
//! the audit log says so. With a [`super::DecisionRecorder`] every decision
//! is recorded before it is answered, and one that cannot be recorded is
//! answered 503 `audit_unavailable` instead.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mandate_core::{fingerprint, AttrValue, Proof, Request};
use serde::{Deserialize, Serialize};

use super::error::{method_not_allowed, not_found, ApiError};
use super::fingerprint::Fingerprint;
use super::observe;
use super::record::{request_id, Answer, DecisionRecorder, Refusal};
use crate::pool::EvalPool;
use crate::{Decision, Error, Verifier};

/// Largest request body accepted: a token of [`mandate_core::MAX_TOKEN_LEN`]
/// plus the request fields.
pub const MAX_BODY_BYTES: usize = mandate_core::MAX_TOKEN_LEN + 16 * 1024;

/// Body of `POST /v1/authorize`. `Debug` shows the token's fingerprint only.
#[derive(Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    /// The mandate, base64.
    pub token: String,
    /// The service being called.
    pub service: String,
    /// The operation being called.
    pub operation: String,
    /// The resource being called.
    pub resource: String,
    /// Runtime conditions: integers or strings.
    #[serde(default)]
    pub attrs: BTreeMap<String, AttrJson>,
    /// The acting agent's proof of possession (`mandate pop`).
    #[serde(default)]
    pub pop: Option<String>,
}

impl std::fmt::Debug for AuthorizeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizeRequest")
            .field("token", &fingerprint(&self.token))
            .field("service", &self.service)
            .field("operation", &self.operation)
            .field("resource", &self.resource)
            .field("attrs", &self.attrs)
            .field("pop", &self.pop.as_ref().map(|_| "<proof>"))
            .finish()
    }
}

/// An attribute value on the wire.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum AttrJson {
    /// A JSON integer.
    Int(i64),
    /// A JSON string.
    Str(String),
}

/// The API label of this endpoint's metrics.
const API: &str = "authorize";

/// Shared state of the authorization API.
#[derive(Debug, Clone)]
pub struct AuthzState {
    verifier: Arc<Verifier>,
    pool: EvalPool,
    recorder: Option<Arc<dyn DecisionRecorder>>,
}

impl AuthzState {
    /// Serves decisions of `verifier`, evaluated on a default [`EvalPool`].
    pub fn new(verifier: Verifier) -> AuthzState {
        AuthzState::with_pool(verifier, EvalPool::default())
    }

    /// Serves decisions of `verifier`, evaluated on `pool` (which may be
    /// shared with other servers of the process).
    pub fn with_pool(verifier: Verifier, pool: EvalPool) -> AuthzState {
        AuthzState {
            verifier: Arc::new(verifier),
            pool,
            recorder: None,
        }
    }

    /// Records every answer with `recorder` before sending it; an answer
    /// that cannot be recorded is 503 `audit_unavailable`.
    #[must_use]
    pub fn with_recorder(mut self, recorder: Arc<dyn DecisionRecorder>) -> AuthzState {
        self.recorder = Some(recorder);
        self
    }
}

/// The authorization API, served alone: [`routes`] with JSON 404 and 405
/// fallbacks.
pub fn router(state: AuthzState) -> Router {
    routes(state)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// The authorization API's routes, without fallbacks, to merge into a larger
/// server (which sets its own).
pub fn routes(state: AuthzState) -> Router {
    // Middleware order, outermost first:
    // 1. `DefaultBodyLimit` — every body extractor honours it, so an oversized
    //    body is refused (413) before it is parsed.
    // 2. Routing, with JSON 404/405 fallbacks so every answer has one shape.
    // 3. In the `authorize` handler, after the body is parsed on the runtime:
    //    the `EvalPool` (bounded workers, bounded queue, one deadline) runs
    //    signature verification and Datalog on blocking threads, so a costly
    //    token never holds a runtime thread. It is not a layer because only
    //    this route evaluates; health checks never wait for it.
    Router::new()
        .route("/v1/authorize", post(authorize))
        .route("/v1/health", get(health))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The body of `GET /v1/health`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuthzHealth {
    /// Always `ok`.
    pub status: &'static str,
    /// Whether decisions consult revocation state.
    pub revocation_checked: bool,
}

/// The authorization API answers (kept for existing clients; operators use
/// `/healthz` and `/readyz`).
#[utoipa::path(get, path = "/v1/health", tag = "authorization",
    responses((status = 200, description = "The API answers", body = AuthzHealth)))]
async fn health(State(state): State<AuthzState>) -> Json<AuthzHealth> {
    Json(AuthzHealth {
        status: "ok",
        revocation_checked: state.verifier.checks_revocation(),
    })
}

/// Decides one request: may this mandate's acting agent do this?
#[utoipa::path(post, path = "/v1/authorize", tag = "authorization",
    request_body = AuthorizeRequest,
    responses(
        (status = 200, description = "Allowed", body = DecisionBody),
        (status = 403, description = "Denied: the reason names the failing check and its block", body = DecisionBody),
        (status = 400, description = "Malformed request", body = crate::ErrorBody),
        (status = 401, description = "Malformed, tampered, untrusted or expired token", body = crate::ErrorBody),
        (status = 413, description = "Body too large", body = crate::ErrorBody),
        (status = 415, description = "Not JSON", body = crate::ErrorBody),
        (status = 503, description = "Overloaded, past the evaluation deadline, or the decision could not be recorded in the audit log; retry after Retry-After", body = crate::ErrorBody)))]
async fn authorize(
    State(state): State<AuthzState>,
    headers: HeaderMap,
    body: Result<Json<AuthorizeRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let request = to_request(&body, SystemTime::now())?;
    let token: Arc<str> = Arc::from(body.token);
    let token_fp = Fingerprint::of(&token);
    let request_id = request_id(&headers);
    let answer = Answer {
        api: API,
        request_id: &request_id,
        token_fingerprint: &token_fp,
    };
    let verifier = Arc::clone(&state.verifier);
    let started = Instant::now();
    let evaluated = state
        .pool
        .run(move || verifier.authorize(&token, &request))
        .await
        .map_err(|error| {
            observe::not_decided(API, error.code(), started);
            tracing::warn!(
                target: "mandate::audit",
                token = %token_fp,
                outcome = error.code(),
                %error,
                "not evaluated"
            );
            ApiError::from(error)
        })?;
    match evaluated {
        Ok(decision) => {
            observe::decided(API, &decision, started);
            audit(&token_fp, &decision);
            record_decision(state.recorder.as_deref(), &decision, &answer).await?;
            let status = if decision.allowed {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            // Serialised straight from the typed body: building a
            // `serde_json::Value` first cost several percent of a decision.
            Ok((status, Json(DecisionBody::from(&decision))).into_response())
        }
        Err(Error::Token(e)) => {
            observe::not_decided(API, "invalid_token", started);
            tracing::info!(target: "mandate::audit", token = %token_fp, error = %e, "refused token");
            let message = e.to_string();
            let refusal = Refusal {
                code: "invalid_token",
                message: &message,
                request: Some((&body.service, &body.operation, &body.resource)),
            };
            record_refusal(state.recorder.as_deref(), &refusal, &answer).await;
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                e.to_string(),
            ))
        }
        Err(e @ Error::Expired { .. }) => {
            observe::not_decided(API, "expired_token", started);
            tracing::info!(target: "mandate::audit", token = %token_fp, error = %e, "refused token");
            let message = e.to_string();
            let refusal = Refusal {
                code: "expired_token",
                message: &message,
                request: Some((&body.service, &body.operation, &body.resource)),
            };
            record_refusal(state.recorder.as_deref(), &refusal, &answer).await;
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "expired_token",
                e.to_string(),
            ))
        }
        Err(e) => {
            observe::not_decided(API, "internal", started);
            tracing::error!(token = %token_fp, error = %e, "authorization failed");
            Err(ApiError::internal())
        }
    }
}

/// Records `decision` before it is answered; when it cannot be recorded the
/// answer is 503 `audit_unavailable` instead — never the decision.
///
/// # Errors
/// The 503, after logging why.
pub(crate) async fn record_decision(
    recorder: Option<&dyn DecisionRecorder>,
    decision: &Decision,
    answer: &Answer<'_>,
) -> Result<(), ApiError> {
    let Some(recorder) = recorder else {
        return Ok(());
    };
    recorder
        .record_decision(decision, answer)
        .await
        .map_err(|error| {
            tracing::error!(
                target: "mandate::audit",
                token = %answer.token_fingerprint,
                request_id = %answer.request_id,
                %error,
                "decision not recorded: answering 503"
            );
            ApiError::unavailable(
                "audit_unavailable",
                "the decision could not be recorded in the audit log",
            )
        })
}

/// Records a refusal before it is answered; it is answered either way.
pub(crate) async fn record_refusal(
    recorder: Option<&dyn DecisionRecorder>,
    refusal: &Refusal<'_>,
    answer: &Answer<'_>,
) {
    if let Some(recorder) = recorder {
        if let Err(error) = recorder.record_refusal(refusal, answer).await {
            tracing::error!(target: "mandate::audit", token = %answer.token_fingerprint, %error, "refusal not recorded");
        }
    }
}

fn to_request(body: &AuthorizeRequest, now: SystemTime) -> Result<Request, ApiError> {
    let bad = |e: mandate_core::Error| ApiError::bad_request("bad_request", e.to_string());
    let attrs = body.attrs.iter().map(|(key, value)| {
        let value = match value {
            AttrJson::Int(n) => AttrValue::Int(*n),
            AttrJson::Str(s) => AttrValue::Str(s.clone()),
        };
        (key.clone(), value)
    });
    let mut request =
        Request::validated(&body.service, &body.operation, &body.resource, attrs, now)
            .map_err(bad)?;
    if let Some(pop) = &body.pop {
        request = request.with_proof(Proof::parse(pop).map_err(bad)?);
    }
    Ok(request)
}

/// The JSON form of a decision, shared by the API and the CLI's `--json`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DecisionBody {
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// The principal the mandate acts for.
    pub principal: String,
    /// The acting agent.
    pub agent: String,
    /// Every agent of the chain, first to acting.
    pub chain: Vec<String>,
    /// The task.
    pub task: String,
    /// The request's service.
    pub service: String,
    /// The request's operation.
    pub operation: String,
    /// The request's resource.
    pub resource: String,
    /// The request's attributes, as Datalog terms.
    pub attrs: BTreeMap<String, String>,
    /// The time the request was decided at (RFC 3339).
    pub time: String,
    /// The token's id (its last block's revocation id, hex).
    pub token_id: String,
    /// Why, for people.
    pub reason: String,
    /// The reason's kind (`allowed`, `failed_checks`, `revoked`, ...).
    pub reason_kind: &'static str,
    /// The checks that failed, each with its block and author.
    pub failed_checks: Vec<crate::FailedCheck>,
}

impl From<&Decision> for DecisionBody {
    fn from(decision: &Decision) -> DecisionBody {
        let failed_checks = match &decision.reason {
            crate::Reason::FailedChecks { checks } => checks.clone(),
            _ => Vec::new(),
        };
        DecisionBody {
            decision: if decision.allowed { "allow" } else { "deny" },
            principal: decision.principal.clone(),
            agent: decision.agent.clone(),
            chain: decision.chain.clone(),
            task: decision.task.clone(),
            service: decision.service.clone(),
            operation: decision.operation.clone(),
            resource: decision.resource.clone(),
            attrs: decision.attrs.iter().cloned().collect(),
            time: decision.time.clone(),
            token_id: decision.token_id.clone(),
            reason: decision.reason.to_string(),
            reason_kind: decision.reason.kind(),
            failed_checks,
        }
    }
}

/// The JSON value of [`DecisionBody`] (the CLI adds fields to it).
pub fn decision_body(decision: &Decision) -> serde_json::Value {
    serde_json::to_value(DecisionBody::from(decision)).unwrap_or_default()
}

/// The authorization API's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    #[derive(utoipa::OpenApi)]
    #[openapi(
        paths(authorize, health),
        tags((name = "authorization", description = "Decisions on one request"))
    )]
    struct AuthorizationApi;
    AuthorizationApi::openapi()
}

/// Logs the audit record of one decision (`token_fingerprint` is displayed
/// only if the record is written; see [`Fingerprint`]).
pub fn audit(token_fingerprint: &dyn std::fmt::Display, decision: &Decision) {
    tracing::info!(
        target: "mandate::audit",
        token = %token_fingerprint,
        decision = if decision.allowed { "allow" } else { "deny" },
        // Debug formatting quotes and escapes: a name with a newline
        // cannot forge a second record.
        principal = ?decision.principal,
        chain = ?decision.chain,
        task = ?decision.task,
        service = ?decision.service,
        operation = ?decision.operation,
        resource = ?decision.resource,
        attrs = ?decision.attrs,
        time = %decision.time,
        reason = ?decision.reason.to_string(),
        "decision"
    );
}
