//! The proxy endpoint: `ANY /v1/ext_authz[/{path}]`, asked by nginx
//! (`auth_request`), Envoy (`ext_authz` HTTP service) or Traefik
//! (`forwardAuth`) whether the request they hold may reach the service.
//!
//! The proxy forwards the caller's `Authorization: Mandate <token>` (or
//! `Bearer`) and `Mandate-PoP` headers and names the original request; a
//! [`Mapping`] turns it into the service, operation, resource and attributes
//! the [`Verifier`] decides, and the proof of possession must sign exactly
//! that mapped request. The original request is read, in this order:
//!
//! 1. the path after `/v1/ext_authz`, with this request's method and query
//!    (Envoy appends the original path to its `path_prefix`);
//! 2. `X-Original-URI` and `X-Original-Method` (nginx, set by the operator);
//! 3. `X-Forwarded-Uri` and `X-Forwarded-Method` (Traefik).
//!
//! When more than one convention is present they must name the same method
//! and target, or the request is refused: a header a client slipped past a
//! proxy that does not overwrite it can never steer the decision to another
//! request.
//!
//! Answers: 200 with `X-Mandate-Principal`, `X-Mandate-Agent`,
//! `X-Mandate-Chain` and `X-Mandate-Task` for the upstream (percent-encoded
//! so no name can inject a header); 401 with `WWW-Authenticate` for missing,
//! malformed, expired or untrusted credentials; 403 for a denial, a request
//! no route maps, and anything this endpoint cannot judge; 503 with
//! `Retry-After` when the evaluation pool is saturated or, with an audit log
//! ([`super::DecisionRecorder`]), when the decision could not be recorded. It
//! never answers with another 5xx, which a proxy configured to fail open
//! would let through.
//!
//! Every answer is logged as an audit record (target `mandate::audit`) with
//! the token's fingerprint only; evaluation runs on the [`EvalPool`], never
//! on the runtime's threads.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use mandate_core::{Proof, MAX_TOKEN_LEN};

use super::authorize::{audit, record_decision, record_refusal, DecisionBody};
use super::error::ApiError;
use super::fingerprint::Fingerprint;
use super::record::{request_id, Answer, DecisionRecorder, Refusal};
use crate::mapping::{HeaderLookup, HeaderSource, Mapping, MappingError, MAX_TARGET_LEN};
use crate::pool::{EvalPool, PoolError};
use crate::{Decision, Error, Verifier};

/// The prefix every route of this endpoint starts with.
pub const EXT_AUTHZ_PATH: &str = "/v1/ext_authz";
/// The most request headers this endpoint looks at; a request with more is
/// refused before any is read.
pub const MAX_HEADERS: usize = 128;
/// The proof-of-possession header.
pub const POP_HEADER: &str = "mandate-pop";
/// The challenge sent with every 401.
pub const CHALLENGE: &str = "Mandate realm=\"mandate\"";

/// The API label of this endpoint's audit records.
const API: &str = "ext_authz";

/// The headers an allowed answer carries for the upstream.
pub const PRINCIPAL_HEADER: &str = "x-mandate-principal";
/// The acting agent.
pub const AGENT_HEADER: &str = "x-mandate-agent";
/// The agents from the first to the acting one, comma-separated.
pub const CHAIN_HEADER: &str = "x-mandate-chain";
/// The task.
pub const TASK_HEADER: &str = "x-mandate-task";

/// Shared state of the proxy endpoint.
#[derive(Debug, Clone)]
pub struct ExtAuthzState {
    verifier: Arc<Verifier>,
    pool: EvalPool,
    mapping: Arc<Mapping>,
    recorder: Option<Arc<dyn DecisionRecorder>>,
}

impl ExtAuthzState {
    /// Decides with `verifier` (share it with `/v1/authorize` so both see
    /// one replay cache), on `pool`, requests mapped by `mapping`.
    pub fn new(verifier: Arc<Verifier>, pool: EvalPool, mapping: Mapping) -> ExtAuthzState {
        ExtAuthzState {
            verifier,
            pool,
            mapping: Arc::new(mapping),
            recorder: None,
        }
    }

    /// Records every decision with `recorder` before answering; a decision
    /// that cannot be recorded is answered 503 `audit_unavailable`.
    #[must_use]
    pub fn with_recorder(mut self, recorder: Arc<dyn DecisionRecorder>) -> ExtAuthzState {
        self.recorder = Some(recorder);
        self
    }
}

/// The proxy endpoint's routes. They have no fallback, so the router merges
/// into one that has (the authorization API's).
pub fn ext_authz_router(state: ExtAuthzState) -> Router {
    // No body is ever read: the decision rests on the method, the target and
    // headers, and hyper bounds those. Evaluation runs on the pool inside the
    // handler, so there is no layer to order.
    Router::new()
        .route(EXT_AUTHZ_PATH, any(check))
        .route("/v1/ext_authz/", any(check))
        .route("/v1/ext_authz/{*path}", any(check))
        .with_state(state)
}

/// The proxy endpoint's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    #[derive(utoipa::OpenApi)]
    #[openapi(
        paths(check),
        tags((name = "proxy", description = "The proxy endpoint: nginx auth_request, Envoy ext_authz, Traefik forwardAuth (served with a mapping file)"))
    )]
    struct ProxyApi;
    ProxyApi::openapi()
}

/// How this request named the original one (for the audit log).
#[derive(Debug, Clone, Copy)]
enum Convention {
    PathSuffix,
    XOriginal,
    XForwarded,
}

/// The original request: its method and target (path and query, as sent).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Original {
    method: String,
    target: String,
}

/// Decides the request a proxy holds, named by the path after
/// `/v1/ext_authz` (Envoy's `path_prefix`), by `X-Original-URI` and
/// `X-Original-Method` (nginx `auth_request`) or by `X-Forwarded-Uri` and
/// `X-Forwarded-Method` (Traefik `forwardAuth`). Every method is accepted and
/// no body is read; the proof of possession signs the mapped request.
#[utoipa::path(
    method(get, head, post, put, patch, delete, options),
    path = "/v1/ext_authz/{path}",
    tag = "proxy",
    params(
        ("path" = String, Path, description = "The original request's path (Envoy); may be absent when a header pair names the request"),
        ("Authorization" = String, Header, description = "`Mandate <token>` or `Bearer <token>`"),
        ("Mandate-PoP" = Option<String>, Header, description = "The acting agent's proof of possession for the mapped request"),
        ("X-Original-URI" = Option<String>, Header, description = "nginx: the original path and query (with X-Original-Method)"),
        ("X-Original-Method" = Option<String>, Header, description = "nginx: the original method"),
        ("X-Forwarded-Uri" = Option<String>, Header, description = "Traefik: the original path and query (with X-Forwarded-Method)"),
        ("X-Forwarded-Method" = Option<String>, Header, description = "Traefik: the original method"),
    ),
    responses(
        (status = 200, description = "Allowed; X-Mandate-Principal, -Agent, -Chain and -Task (percent-encoded) name the caller for the upstream", body = super::authorize::DecisionBody,
            headers(
                ("X-Mandate-Principal" = String, description = "The principal"),
                ("X-Mandate-Agent" = String, description = "The acting agent"),
                ("X-Mandate-Chain" = String, description = "Every agent, first to acting, comma-separated"),
                ("X-Mandate-Task" = String, description = "The task"))),
        (status = 401, description = "Missing, malformed, tampered, untrusted or expired credentials (codes `missing_credentials`, `invalid_credentials`, `invalid_proof`, `invalid_token`, `expired_token`), with `WWW-Authenticate: Mandate realm=\"mandate\"`", body = crate::ErrorBody),
        (status = 403, description = "Denied (code `denied`, the reason as message), no route (`no_route`), a request the mapping refuses (`bad_path`, `bad_method`, `bad_attr`, ...), a named request that disagrees (`bad_original_request`), or anything that could not be judged (`internal`): never a 5xx a proxy might fail open on", body = crate::ErrorBody),
        (status = 503, description = "The evaluation pool is saturated or missed its deadline (`overloaded`, `deadline_exceeded`); retry after Retry-After", body = crate::ErrorBody)))]
async fn check(
    State(state): State<ExtAuthzState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match decide(&state, &method, &uri, &headers).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn decide(
    state: &ExtAuthzState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    if headers.len() > MAX_HEADERS {
        return Err(refused(
            &Fingerprint::none(),
            ApiError::new(
                StatusCode::FORBIDDEN,
                "too_many_headers",
                format!("more than {MAX_HEADERS} headers"),
            ),
        ));
    }
    let (token, proof) = credentials(headers).map_err(|e| refused(&Fingerprint::none(), e))?;
    let token: Arc<str> = Arc::from(token);
    let token_fp = Fingerprint::of(&token);
    let (original, convention) =
        original_request(method, uri, headers).map_err(|e| refused(&token_fp, e))?;
    let mapped = state
        .mapping
        .map(
            &original.method,
            &original.target,
            &Headers(headers),
            SystemTime::now(),
        )
        .map_err(|e| {
            tracing::info!(
                target: "mandate::audit",
                token = %token_fp,
                outcome = e.code(),
                method = ?original.method,
                target = ?original.target,
                convention = ?convention,
                error = %e,
                "refused request"
            );
            mapping_refusal(&e)
        })?;
    let mut request = mapped.request;
    let request_id = request_id(headers);
    let answer = Answer {
        api: API,
        request_id: &request_id,
        token_fingerprint: &token_fp,
    };
    let asked = (
        request.service.clone(),
        request.operation.clone(),
        request.resource.as_str().to_owned(),
    );
    if let Some(proof) = proof {
        request = request.with_proof(proof);
    }
    let verifier = Arc::clone(&state.verifier);
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
            pool_refusal(error)
        })?;
    match evaluated {
        Ok(decision) => {
            audit(&token_fp, &decision);
            record_decision(state.recorder.as_deref(), &decision, &answer).await?;
            tracing::debug!(
                target: "mandate::audit",
                token = %token_fp,
                route = mapped.route,
                convention = ?convention,
                "proxied request"
            );
            if decision.allowed {
                allowed(&decision)
            } else {
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "denied",
                    decision.reason.to_string(),
                ))
            }
        }
        Err(e @ (Error::Token(_) | Error::Expired { .. })) => {
            let code = if matches!(e, Error::Expired { .. }) {
                "expired_token"
            } else {
                "invalid_token"
            };
            let message = e.to_string();
            let refusal = Refusal {
                code,
                message: &message,
                request: Some((&asked.0, &asked.1, &asked.2)),
            };
            record_refusal(state.recorder.as_deref(), &refusal, &answer).await;
            Err(refused(&token_fp, unauthorized(code, message)))
        }
        Err(e) => {
            tracing::error!(token = %token_fp, error = %e, "authorization failed");
            Err(refused(&token_fp, internal()))
        }
    }
}

/// Logs a refusal that is not a decision and returns it.
fn refused(token_fp: &Fingerprint, error: ApiError) -> ApiError {
    tracing::info!(
        target: "mandate::audit",
        token = %token_fp,
        outcome = error.code(),
        error = ?error.message(),
        "refused request"
    );
    error
}

fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
        .challenge(HeaderValue::from_static(CHALLENGE))
}

/// What cannot be judged is denied: a 403, never a 500 that a proxy set to
/// fail open would let through. The cause is logged by the caller.
fn internal() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "internal", "internal error")
}

fn pool_refusal(error: PoolError) -> ApiError {
    match error {
        PoolError::Overloaded { .. } | PoolError::DeadlineExceeded { .. } => {
            ApiError::unavailable(error.code(), error.to_string())
        }
        _ => internal(),
    }
}

fn mapping_refusal(error: &MappingError) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, error.code(), error.to_string())
}

/// The token (from `Authorization: Mandate|Bearer <token>`) and the proof of
/// possession, if any. Every problem is a 401 with the challenge.
fn credentials(headers: &HeaderMap) -> Result<(String, Option<Proof>), ApiError> {
    let authorization = match single(headers, axum::http::header::AUTHORIZATION.as_str()) {
        HeaderLookup::Absent => {
            return Err(unauthorized(
                "missing_credentials",
                "no credentials: send `Authorization: Mandate <token>`",
            ))
        }
        HeaderLookup::Repeated => {
            return Err(unauthorized(
                "invalid_credentials",
                "more than one Authorization header",
            ))
        }
        HeaderLookup::One(value) => value,
    };
    let text = std::str::from_utf8(authorization)
        .ok()
        .filter(|t| t.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
        .ok_or_else(|| unauthorized("invalid_credentials", "Authorization is not visible ASCII"))?;
    let (scheme, token) = text.trim().split_once(' ').ok_or_else(|| {
        unauthorized(
            "invalid_credentials",
            "Authorization must be `Mandate <token>` or `Bearer <token>`",
        )
    })?;
    if !scheme.eq_ignore_ascii_case("mandate") && !scheme.eq_ignore_ascii_case("bearer") {
        return Err(unauthorized(
            "invalid_credentials",
            "Authorization must be `Mandate <token>` or `Bearer <token>`",
        ));
    }
    let token = token.trim();
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || token.contains(' ') {
        return Err(unauthorized(
            "invalid_credentials",
            format!("the token must be one word of 1 to {MAX_TOKEN_LEN} bytes"),
        ));
    }
    let proof = match single(headers, POP_HEADER) {
        HeaderLookup::Absent => None,
        HeaderLookup::Repeated => {
            return Err(unauthorized(
                "invalid_proof",
                "more than one Mandate-PoP header",
            ))
        }
        HeaderLookup::One(value) => {
            let text = std::str::from_utf8(value)
                .map_err(|_| unauthorized("invalid_proof", "Mandate-PoP is not ASCII"))?;
            Some(Proof::parse(text).map_err(|e| unauthorized("invalid_proof", e.to_string()))?)
        }
    };
    Ok((token.to_owned(), proof))
}

/// The original request, from the first convention present; every other
/// convention present must agree with it.
fn original_request(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(Original, Convention), ApiError> {
    let bad =
        |message: String| ApiError::new(StatusCode::FORBIDDEN, "bad_original_request", message);
    let mut found: Vec<(Original, Convention)> = Vec::new();

    let suffix = uri.path().strip_prefix(EXT_AUTHZ_PATH).unwrap_or_default();
    if !suffix.is_empty() {
        let target = match uri.query() {
            Some(query) => format!("{suffix}?{query}"),
            None => suffix.to_owned(),
        };
        found.push((
            Original {
                method: method.as_str().to_owned(),
                target,
            },
            Convention::PathSuffix,
        ));
    }
    for (convention, uri_header, method_header) in [
        (Convention::XOriginal, "x-original-uri", "x-original-method"),
        (
            Convention::XForwarded,
            "x-forwarded-uri",
            "x-forwarded-method",
        ),
    ] {
        let target = header_text(headers, uri_header).map_err(&bad)?;
        let original_method = header_text(headers, method_header).map_err(&bad)?;
        match (target, original_method) {
            (None, None) => {}
            (Some(target), Some(method)) => found.push((Original { method, target }, convention)),
            _ => {
                return Err(bad(format!(
                    "`{uri_header}` and `{method_header}` must come together"
                )))
            }
        }
    }
    let mut conventions = found.into_iter();
    let Some(first) = conventions.next() else {
        return Err(bad(format!(
            "no original request: call {EXT_AUTHZ_PATH}/<path>, or send X-Original-URI and X-Original-Method, or X-Forwarded-Uri and X-Forwarded-Method"
        )));
    };
    if conventions.any(|(other, _)| other != first.0) {
        return Err(bad(
            "the original request is named twice, differently (path, X-Original-* and X-Forwarded-* disagree)"
                .into(),
        ));
    }
    Ok(first)
}

/// A header sent at most once, as text of at most [`MAX_TARGET_LEN`] bytes.
fn header_text(headers: &HeaderMap, name: &str) -> Result<Option<String>, String> {
    match single(headers, name) {
        HeaderLookup::Absent => Ok(None),
        HeaderLookup::Repeated => Err(format!("`{name}` sent more than once")),
        HeaderLookup::One(value) => {
            if value.len() > MAX_TARGET_LEN {
                return Err(format!("`{name}` is longer than {MAX_TARGET_LEN} bytes"));
            }
            let text = std::str::from_utf8(value)
                .map_err(|_| format!("`{name}` is not ASCII"))?
                .trim();
            Ok(Some(text.to_owned()))
        }
    }
}

fn single<'a>(headers: &'a HeaderMap, name: &str) -> HeaderLookup<'a> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => HeaderLookup::Absent,
        (Some(value), None) => HeaderLookup::One(value.as_bytes()),
        (Some(_), Some(_)) => HeaderLookup::Repeated,
    }
}

/// The original request's headers, as the mapping reads them.
struct Headers<'a>(&'a HeaderMap);

impl HeaderSource for Headers<'_> {
    fn header(&self, name: &str) -> HeaderLookup<'_> {
        single(self.0, name)
    }
}

/// 200 with the decision's identity for the upstream.
fn allowed(decision: &Decision) -> Result<Response, ApiError> {
    let chain = decision
        .chain
        .iter()
        .map(|agent| header_safe(agent))
        .collect::<Vec<_>>()
        .join(",");
    let values = [
        (PRINCIPAL_HEADER, header_safe(&decision.principal)),
        (AGENT_HEADER, header_safe(&decision.agent)),
        (CHAIN_HEADER, chain),
        (TASK_HEADER, header_safe(&decision.task)),
    ];
    let mut response = (StatusCode::OK, Json(DecisionBody::from(decision))).into_response();
    for (name, value) in values {
        // `header_safe` only emits visible ASCII, so this cannot fail; if it
        // ever did, the request is denied rather than sent without identity.
        let value = HeaderValue::from_str(&value).map_err(|_| {
            tracing::error!(header = name, "identity header refused by the HTTP library");
            internal()
        })?;
        response
            .headers_mut()
            .insert(HeaderName::from_static(name), value);
    }
    Ok(response)
}

/// `text` with every byte outside visible ASCII, and `%` and `,` (the chain
/// separator), percent-encoded: a name can neither end a header line nor
/// split the chain.
pub fn header_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_graphic() && byte != b'%' && byte != b',' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[path = "ext_authz_tests.rs"]
mod tests;
