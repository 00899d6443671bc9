//! `GET /v1/audit`: the audit trail over HTTP, filtered and paged, readable
//! only with a mandate granting `audit:read` (and its proof of possession
//! when the mandate is keyed, in `Mandate-PoP`).
//!
//! Filters are those of `mandate audit`: `principal`, `agent`, `task`,
//! `decision` (`allow`/`deny`), `service`, `since` and `until` (a duration
//! ago or RFC 3339); pages are `after` (a sequence number) and `limit`
//! (at most [`MAX_LIMIT`]). Each page reads at most [`MAX_SCAN`] records, so
//! no request can make the server read the whole log; `next_after` says
//! where to continue. Mandates are judged on the evaluation pool and the
//! log is read on a blocking thread, never on the runtime's.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use mandate_audit::{AuditLog, Filter, Outcome, Record};
use mandate_core::{fingerprint, Proof};
use mandate_verifier::http::ApiError;
use mandate_verifier::pool::EvalPool;
use mandate_verifier::{Error, Verifier};
use serde::{Deserialize, Serialize};

/// Most records in one page.
pub const MAX_LIMIT: usize = 1000;
/// Most records one page reads.
pub const MAX_SCAN: usize = 100_000;

/// What the audit endpoint reads and who it lets read.
#[derive(Debug, Clone)]
pub struct AuditApiState {
    log: Arc<dyn AuditLog>,
    verifier: Arc<Verifier>,
    pool: EvalPool,
}

impl AuditApiState {
    /// Serves `log` to mandates `verifier` allows `audit:read`, judged on
    /// `pool`.
    pub fn new(log: Arc<dyn AuditLog>, verifier: Verifier, pool: EvalPool) -> AuditApiState {
        AuditApiState {
            log,
            verifier: Arc::new(verifier),
            pool,
        }
    }
}

/// The audit endpoint's route.
pub fn router(state: AuditApiState) -> Router {
    Router::new()
        .route(mandate_audit::access::PATH, get(read))
        .with_state(state)
}

/// Query parameters of `GET /v1/audit`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only records about this principal.
    pub principal: Option<String>,
    /// Only records naming this agent (anywhere in a chain).
    pub agent: Option<String>,
    /// Only records about this task.
    pub task: Option<String>,
    /// `allow` or `deny`.
    pub decision: Option<String>,
    /// Only decisions about this service.
    pub service: Option<String>,
    /// Written at or after: `10m` (ago) or RFC 3339.
    pub since: Option<String>,
    /// Written at or before: `10m` (ago) or RFC 3339.
    pub until: Option<String>,
    /// Only records after this sequence number.
    pub after: Option<u64>,
    /// Most records (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// A page of the trail.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Matching records, oldest first (the schema is in docs/audit.md).
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<Record>,
    /// Where to continue (`after=`), when the log may hold more.
    pub next_after: Option<u64>,
}

impl AuditQuery {
    /// The filter these parameters ask for, with time bounds relative to `now`.
    ///
    /// # Errors
    /// A message naming the parameter that cannot be read.
    pub fn filter(&self, now: SystemTime) -> Result<Filter, String> {
        let time = |name: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(|text| {
                    mandate_audit::parse_time_bound(text, now).map_err(|e| format!("{name}: {e}"))
                })
                .transpose()
        };
        Ok(Filter {
            principal: self.principal.clone(),
            agent: self.agent.clone(),
            task: self.task.clone(),
            decision: self
                .decision
                .as_deref()
                .map(str::parse::<Outcome>)
                .transpose()
                .map_err(|e| format!("decision: {e}"))?,
            service: self.service.clone(),
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
        })
    }
}

/// Reads the audit trail.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses(
        (status = 200, description = "A page of records, oldest first", body = AuditPage),
        (status = 400, description = "A parameter cannot be read", body = mandate_verifier::ErrorBody),
        (status = 401, description = "No, malformed, expired or unproven mandate", body = mandate_verifier::ErrorBody),
        (status = 403, description = "The mandate does not grant audit:read", body = mandate_verifier::ErrorBody),
        (status = 503, description = "Overloaded; retry after Retry-After", body = mandate_verifier::ErrorBody)))]
pub(crate) async fn read(
    State(state): State<AuditApiState>,
    headers: HeaderMap,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    authenticate(&state, &headers).await?;
    let Query(query) = query?;
    let filter = query
        .filter(SystemTime::now())
        .map_err(|e| ApiError::bad_request("bad_request", e))?;
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    let after = query.after.unwrap_or(0);
    let log = Arc::clone(&state.log);
    let page = tokio::task::spawn_blocking(move || {
        mandate_audit::query(log.as_ref(), &filter, after, limit, MAX_SCAN)
    })
    .await
    .map_err(|_| ApiError::internal())?
    .map_err(|error| {
        tracing::error!(%error, "reading the audit log");
        ApiError::internal()
    })?;
    Ok(Json(AuditPage {
        records: page.records,
        next_after: page.next_after,
    }))
}

/// Judges the request's mandate for `audit:read` on the pool.
async fn authenticate(state: &AuditApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    let unauthenticated =
        |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message);
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            unauthenticated("send Authorization: Bearer <mandate granting audit:read>")
        })?;
    let token = match value.split_once(' ') {
        Some((scheme, token))
            if (scheme.eq_ignore_ascii_case("bearer")
                || scheme.eq_ignore_ascii_case("mandate"))
                && !token.trim().is_empty()
                && token.trim().len() <= mandate_core::MAX_TOKEN_LEN =>
        {
            token.trim().to_owned()
        }
        _ => return Err(unauthenticated("expected Authorization: Bearer <token>")),
    };
    let mut request =
        mandate_audit::access::read_request(SystemTime::now()).map_err(|_| ApiError::internal())?;
    if let Some(proof) = headers.get(mandate_verifier::http::POP_HEADER) {
        let text = proof
            .to_str()
            .map_err(|_| unauthenticated("Mandate-PoP is not ASCII"))?;
        let proof = Proof::parse(text).map_err(|e| unauthenticated(&e.to_string()))?;
        request = request.with_proof(proof);
    }
    let token_fp = fingerprint(&token);
    let verifier = Arc::clone(&state.verifier);
    let decided = state
        .pool
        .run(move || verifier.authorize(&token, &request))
        .await
        .map_err(ApiError::from)?;
    match decided {
        Ok(decision) if decision.allowed => {
            tracing::debug!(token = %token_fp, principal = ?decision.principal, "audit read");
            Ok(())
        }
        Ok(decision) => {
            tracing::info!(token = %token_fp, reason = %decision.reason, "audit read refused");
            match decision.reason {
                mandate_verifier::Reason::ProofOfPossession { .. } => {
                    Err(unauthenticated(&decision.reason.to_string()))
                }
                _ => Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "reading the audit trail needs audit:read: {}",
                        decision.reason
                    ),
                )),
            }
        }
        Err(e @ (Error::Token(_) | Error::Expired { .. })) => Err(unauthenticated(&e.to_string())),
        Err(error) => {
            tracing::error!(%error, "judging an audit read");
            Err(ApiError::internal())
        }
    }
}

/// The audit endpoint's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    #[derive(utoipa::OpenApi)]
    #[openapi(
        paths(read),
        tags((name = "audit", description = "The audit trail, readable with audit:read"))
    )]
    struct AuditApi;
    AuditApi::openapi()
}
