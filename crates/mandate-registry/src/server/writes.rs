//! Writes: `POST /v1/revocations` and `POST /v1/revocations/lift`.

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::Json;
use mandate_core::fingerprint;
use mandate_verifier::http::ApiError;

use super::auth::{credentials, evaluate, Access};
use super::state::RegistryState;
use crate::api::RevokeRequest;
use crate::entry::{NewRevocation, RevocationEntry};
use axum::extract::rejection::BytesRejection;

/// Revokes a token, principal, agent or task.
#[utoipa::path(post, path = "/v1/revocations", tag = "registry",
    request_body = crate::RevokeRequest,
    security(("mandate" = [])),
    responses(
        (status = 201, description = "Recorded", body = RevocationEntry),
        (status = 400, description = "Invalid value or body", body = crate::ErrorBody),
        (status = 401, description = "No mandate, or one that cannot be trusted", body = crate::ErrorBody),
        (status = 403, description = "The mandate does not grant this", body = crate::ErrorBody),
        (status = 503, description = "Cannot judge the mandate now; retry after Retry-After", body = crate::ErrorBody)))]
pub(super) async fn create(
    State(state): State<RegistryState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<(StatusCode, Json<RevocationEntry>), ApiError> {
    write(&state, &method, &uri, &headers, body, false).await
}

/// Lifts earlier revocations of one kind and value.
#[utoipa::path(post, path = "/v1/revocations/lift", tag = "registry",
    request_body = crate::RevokeRequest,
    security(("mandate" = [])),
    responses(
        (status = 201, description = "Recorded", body = RevocationEntry),
        (status = 400, description = "Invalid value or body", body = crate::ErrorBody),
        (status = 401, description = "No mandate, or one that cannot be trusted", body = crate::ErrorBody),
        (status = 403, description = "The mandate does not grant this", body = crate::ErrorBody),
        (status = 503, description = "Cannot judge the mandate now; retry after Retry-After", body = crate::ErrorBody)))]
pub(super) async fn lift(
    State(state): State<RegistryState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<(StatusCode, Json<RevocationEntry>), ApiError> {
    write(&state, &method, &uri, &headers, body, true).await
}

/// Parses a write body with axum's own JSON rules (content type, then syntax, then
/// shape), after its raw bytes were authenticated.
pub(super) async fn revoke_body(
    headers: &HeaderMap,
    bytes: Bytes,
) -> std::result::Result<RevokeRequest, ApiError> {
    let mut request = axum::extract::Request::new(axum::body::Body::from(bytes));
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        request
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type.clone());
    }
    let Json(body) = Json::<RevokeRequest>::from_request(request, &()).await?;
    Ok(body)
}

pub(super) async fn write(
    state: &RegistryState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
    lifted: bool,
) -> std::result::Result<(StatusCode, Json<RevocationEntry>), ApiError> {
    // Authenticate before parsing the body, so an anonymous caller learns nothing about
    // validation; the proof covers the exact bytes received, so they are read first.
    let (token, proof) = credentials(headers)?;
    let bytes = body.map_err(|rejection| ApiError::from(JsonRejection::from(rejection)))?;
    let actor = evaluate(state, (token, proof), method, uri, &bytes, Access::Write).await?;
    let request = revoke_body(headers, bytes).await?;
    let new = if lifted {
        NewRevocation::lift(request.kind, request.value, request.reason, actor)
    } else {
        NewRevocation::revoke(request.kind, request.value, request.reason, actor)
    }?;
    let entry = state.append(new).await?;
    tracing::info!(
        seq = entry.seq,
        kind = %entry.kind,
        value = %entry.value,
        lifted = entry.lifted,
        revoked_by = %entry.revoked_by,
        token = %fingerprint(token),
        "revocation recorded"
    );
    Ok((StatusCode::CREATED, Json(entry)))
}
