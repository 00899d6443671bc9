//! Reads: the revocation list, the status and subscribers' acknowledgements.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::Json;
use mandate_verifier::http::ApiError;
use serde::Deserialize;

use super::auth::authorize_read;
use super::state::RegistryState;
use super::{DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT};
use crate::api::{AckRequest, ListPage, RegistryStatus};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(super) struct ListParams {
    /// Entries after this sequence number (default 0).
    after: Option<u64>,
    /// At most this many (default 100, at most 1000).
    limit: Option<usize>,
}

/// Lists revocation entries in sequence order, a page at a time.
#[utoipa::path(get, path = "/v1/revocations", tag = "registry", params(ListParams),
    security(("mandate" = [])),
    responses(
        (status = 200, description = "A page", body = ListPage),
        (status = 400, description = "Bad query", body = crate::ErrorBody),
        (status = 401, description = "No mandate, or one that cannot be trusted", body = crate::ErrorBody),
        (status = 403, description = "The mandate does not grant this", body = crate::ErrorBody),
        (status = 503, description = "Cannot judge the mandate now; retry after Retry-After", body = crate::ErrorBody)))]
pub(super) async fn list(
    State(state): State<RegistryState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    query: std::result::Result<Query<ListParams>, QueryRejection>,
) -> std::result::Result<Json<ListPage>, ApiError> {
    authorize_read(&state, &method, &uri, &headers).await?;
    let Query(params) = query?;
    let after = params.after.unwrap_or(0);
    let limit = params.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {MAX_LIST_LIMIT}"),
        ));
    }
    let (entries, current_seq, epoch) = state
        .blocking(move |store| {
            // Read current_seq first, so it never trails the entries returned.
            let current = store.current_seq()?;
            Ok((store.list_after(after, limit)?, current, store.epoch()?))
        })
        .await?;
    let next_after = entries.last().map_or(after, |entry| entry.seq);
    Ok(Json(ListPage {
        current_seq: current_seq.max(next_after),
        entries,
        next_after,
        epoch,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(super) struct StatusParams {
    /// Count the subscribers that applied this entry (default: the newest).
    seq: Option<u64>,
}

/// The log's head and how many connected verifiers applied an entry.
#[utoipa::path(get, path = "/v1/status", tag = "registry", params(StatusParams),
    security(("mandate" = [])),
    responses(
        (status = 200, description = "The status", body = RegistryStatus),
        (status = 401, description = "No mandate, or one that cannot be trusted", body = crate::ErrorBody),
        (status = 403, description = "The mandate does not grant this", body = crate::ErrorBody),
        (status = 503, description = "Cannot judge the mandate now; retry after Retry-After", body = crate::ErrorBody)))]
pub(super) async fn status(
    State(state): State<RegistryState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    query: std::result::Result<Query<StatusParams>, QueryRejection>,
) -> std::result::Result<Json<RegistryStatus>, ApiError> {
    authorize_read(&state, &method, &uri, &headers).await?;
    let Query(params) = query?;
    let (current_seq, epoch) = state
        .blocking(|store| Ok((store.current_seq()?, store.epoch()?)))
        .await?;
    let seq = params.seq.unwrap_or(current_seq);
    let subscribers = state.subscribers();
    Ok(Json(RegistryStatus {
        current_seq,
        epoch,
        subscribers: subscribers.applied.len(),
        seq,
        applied_by: subscribers
            .applied
            .values()
            .filter(|applied| **applied >= seq)
            .count(),
    }))
}

/// A subscriber reports the newest entry it applied (diagnostics only).
#[utoipa::path(post, path = "/v1/subscribers/ack", tag = "registry", request_body = AckRequest,
    responses(
        (status = 204, description = "Recorded"),
        (status = 400, description = "Bad body or a seq beyond the log", body = crate::ErrorBody),
        (status = 404, description = "No such subscriber", body = crate::ErrorBody)))]
pub(super) async fn ack(
    State(state): State<RegistryState>,
    body: std::result::Result<Json<AckRequest>, JsonRejection>,
) -> std::result::Result<StatusCode, ApiError> {
    let Json(request) = body?;
    let current_seq = state.blocking(|store| store.current_seq()).await?;
    if request.seq > current_seq {
        return Err(ApiError::bad_request(
            "seq_ahead",
            format!(
                "seq {} is beyond the newest entry {current_seq}",
                request.seq
            ),
        ));
    }
    match state.subscribers().applied.get_mut(&request.subscriber_id) {
        Some(applied) => {
            *applied = (*applied).max(request.seq);
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_subscriber",
            "no open stream has this subscriber id",
        )),
    }
}
