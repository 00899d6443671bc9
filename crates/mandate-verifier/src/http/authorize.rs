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
//! the audit log says so.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mandate_core::{fingerprint, AttrValue, Proof, Request};
use serde::{Deserialize, Serialize};

use super::error::{method_not_allowed, not_found, ApiError};
use crate::pool::EvalPool;
use crate::{Decision, Error, Verifier};

/// Largest request body accepted: a token of [`mandate_core::MAX_TOKEN_LEN`]
/// plus the request fields.
pub const MAX_BODY_BYTES: usize = mandate_core::MAX_TOKEN_LEN + 16 * 1024;

/// Body of `POST /v1/authorize`. `Debug` shows the token's fingerprint only.
#[derive(Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum AttrJson {
    /// A JSON integer.
    Int(i64),
    /// A JSON string.
    Str(String),
}

/// Shared state of the authorization API.
#[derive(Debug, Clone)]
pub struct AuthzState {
    verifier: Arc<Verifier>,
    pool: EvalPool,
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
        }
    }
}

/// The authorization API's routes.
pub fn router(state: AuthzState) -> Router {
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
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn health(State(state): State<AuthzState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "revocation_checked": state.verifier.checks_revocation(),
    }))
}

async fn authorize(
    State(state): State<AuthzState>,
    body: Result<Json<AuthorizeRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let request = to_request(&body, SystemTime::now())?;
    let token_fp = fingerprint(&body.token);
    let verifier = Arc::clone(&state.verifier);
    let token = body.token;
    let evaluated = state
        .pool
        .run(move || verifier.authorize(&token, &request))
        .await
        .map_err(|error| {
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
            audit(&token_fp, &decision);
            let status = if decision.allowed {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            Ok((status, Json(decision_body(&decision))).into_response())
        }
        Err(Error::Token(e)) => {
            tracing::info!(target: "mandate::audit", token = %token_fp, error = %e, "refused token");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                e.to_string(),
            ))
        }
        Err(e @ Error::Expired { .. }) => {
            tracing::info!(target: "mandate::audit", token = %token_fp, error = %e, "refused token");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "expired_token",
                e.to_string(),
            ))
        }
        Err(e) => {
            tracing::error!(token = %token_fp, error = %e, "authorization failed");
            Err(ApiError::internal())
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
pub fn decision_body(decision: &Decision) -> serde_json::Value {
    let failed = match &decision.reason {
        crate::Reason::FailedChecks { checks } => serde_json::to_value(checks).unwrap_or_default(),
        _ => serde_json::json!([]),
    };
    serde_json::json!({
        "decision": if decision.allowed { "allow" } else { "deny" },
        "principal": decision.principal,
        "agent": decision.agent,
        "chain": decision.chain,
        "task": decision.task,
        "service": decision.service,
        "operation": decision.operation,
        "resource": decision.resource,
        "attrs": decision.attrs.iter().cloned().collect::<BTreeMap<_, _>>(),
        "time": decision.time,
        "token_id": decision.token_id,
        "reason": decision.reason.to_string(),
        "failed_checks": failed,
    })
}

/// Logs the audit record of one decision.
pub fn audit(token_fingerprint: &str, decision: &Decision) {
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
