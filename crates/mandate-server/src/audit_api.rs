//! `GET /v1/audit`: the audit trail over HTTP, filtered and paged, readable
//! only with a mandate granting `audit:read` (and its proof of possession
//! when the mandate is keyed, in `Mandate-PoP`).
//!
//! Filters are those of `mandate audit`: `principal`, `agent`, `task`,
//! `decision` (`allow`/`deny`), `service`, `since` and `until` (a duration
//! ago or RFC 3339); pages are `after` (a position) and `limit`
//! (at most [`MAX_LIMIT`]). A position is a record's sequence number when
//! the server writes a log of its own, and its place in the merged trail
//! when replicas share a PostgreSQL store; each page lists the positions of
//! its records. Each page reads at most [`MAX_SCAN`] records, so
//! no request can make the server read the whole log; `next_after` says
//! where to continue. Mandates are judged on the evaluation pool and the
//! trail is read on a blocking thread, never on the runtime's.
//!
//! **Follow.** Asked with `Accept: text/event-stream`, the answer is a
//! server-sent event stream instead: every matching record after `after`
//! (or the `Last-Event-ID` header) as an event `record` whose id is its
//! position, then new records as the writer makes them durable, with
//! a keep-alive comment every [`KEEP_ALIVE`]. At most [`MAX_FOLLOWERS`]
//! streams are open at once (more are answered 503), a client that stops
//! reading is dropped, and a stream ends after [`MAX_FOLLOW`] so that its
//! mandate is judged again when the client reconnects (resuming with
//! `Last-Event-ID`): an expired or revoked reader stops reading then.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::{Json, Router};
use mandate_audit::{AuditWriter, Filter, Outcome, Record, Trail};
use mandate_core::{fingerprint, Proof};
use mandate_verifier::http::ApiError;
use mandate_verifier::pool::EvalPool;
use mandate_verifier::{Error, Verifier};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

/// Most records in one page.
pub const MAX_LIMIT: usize = 1000;
/// Most records one page reads.
pub const MAX_SCAN: usize = 100_000;
/// Most streams open at once.
pub const MAX_FOLLOWERS: usize = 16;
/// How often an idle stream sends a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long one stream lasts before the client must reconnect (and be
/// judged again).
pub const MAX_FOLLOW: Duration = Duration::from_secs(300);
/// How long a stream waits for its client to take an event.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a stream looks for new records when nothing tells it.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// What the audit endpoint reads and who it lets read.
#[derive(Debug, Clone)]
pub struct AuditApiState {
    trail: Arc<dyn Trail>,
    verifier: Arc<Verifier>,
    pool: EvalPool,
    /// The writer's newest sequence number, when it writes in this process
    /// and is the trail's only writer.
    progress: Option<watch::Receiver<u64>>,
    followers: Arc<Semaphore>,
}

impl AuditApiState {
    /// Serves `trail` to mandates `verifier` allows `audit:read`, judged on
    /// `pool`.
    pub fn new(trail: Arc<dyn Trail>, verifier: Verifier, pool: EvalPool) -> AuditApiState {
        AuditApiState {
            trail,
            verifier: Arc::new(verifier),
            pool,
            progress: None,
            followers: Arc::new(Semaphore::new(MAX_FOLLOWERS)),
        }
    }

    /// Serves what `writer`'s store holds: its own log, whose streams wake
    /// when the writer moves on, or the trail it shares with other writers,
    /// which streams poll.
    pub fn of_writer(writer: &AuditWriter, verifier: Verifier, pool: EvalPool) -> AuditApiState {
        let state = AuditApiState::new(writer.trail(), verifier, pool);
        if writer.shares_trail() {
            return state;
        }
        state.with_progress(writer.subscribe())
    }

    /// Streams wake when `progress` (from [`mandate_audit::AuditWriter::subscribe`])
    /// moves, instead of polling the log.
    #[must_use]
    pub fn with_progress(mut self, progress: watch::Receiver<u64>) -> AuditApiState {
        self.progress = Some(progress);
        self
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
    /// Only records after this position.
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
    /// The position of each record (its sequence number in a server's own
    /// log; its place in the merged trail of replicas sharing a store).
    #[serde(default)]
    pub positions: Vec<u64>,
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
        (status = 200, description = "A page of records, oldest first; with Accept: text/event-stream, a stream of `record` events (id: the position) that follows the log", body = AuditPage),
        (status = 400, description = "A parameter cannot be read", body = mandate_verifier::ErrorBody),
        (status = 401, description = "No, malformed, expired or unproven mandate", body = mandate_verifier::ErrorBody),
        (status = 403, description = "The mandate does not grant audit:read", body = mandate_verifier::ErrorBody),
        (status = 503, description = "Overloaded, or too many streams open; retry after Retry-After", body = mandate_verifier::ErrorBody)))]
pub(crate) async fn read(
    State(state): State<AuditApiState>,
    headers: HeaderMap,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    authenticate(&state, &headers).await?;
    let Query(query) = query?;
    let filter = query
        .filter(SystemTime::now())
        .map_err(|e| ApiError::bad_request("bad_request", e))?;
    if wants_stream(&headers) {
        let after = match query.after {
            Some(after) => after,
            None => last_event_id(&headers)?.unwrap_or(0),
        };
        return follow(state, filter, after);
    }
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    let after = query.after.unwrap_or(0);
    let trail = Arc::clone(&state.trail);
    let page = tokio::task::spawn_blocking(move || {
        mandate_audit::query(trail.as_ref(), &filter, after, limit, MAX_SCAN)
    })
    .await
    .map_err(|_| ApiError::internal())?
    .map_err(|error| {
        tracing::error!(%error, "reading the audit log");
        ApiError::internal()
    })?;
    Ok(Json(AuditPage {
        records: page.records,
        positions: page.positions,
        next_after: page.next_after,
    })
    .into_response())
}

fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

/// The position a reconnecting client last received.
fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    headers
        .get("last-event-id")
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "bad_request",
                        "Last-Event-ID must be a position (a number)",
                    )
                })
        })
        .transpose()
}

/// Opens a stream of the records matching `filter` after `after`.
fn follow(state: AuditApiState, filter: Filter, after: u64) -> Result<Response, ApiError> {
    let permit = Arc::clone(&state.followers)
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::unavailable(
                "too_many_followers",
                format!("{MAX_FOLLOWERS} audit streams are open; try again later"),
            )
        })?;
    let (tx, rx) = mpsc::channel::<SseEvent>(64);
    tokio::spawn(feed(state, filter, after, tx, permit));
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        let event = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(event), rx))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// Sends every matching record after `after`, then new ones as they come,
/// until the client goes, stops reading, or [`MAX_FOLLOW`] has passed.
async fn feed(
    state: AuditApiState,
    filter: Filter,
    mut after: u64,
    tx: mpsc::Sender<SseEvent>,
    _slot: OwnedSemaphorePermit,
) {
    let deadline = tokio::time::Instant::now() + MAX_FOLLOW;
    let mut progress = state.progress.clone();
    loop {
        // Catch up with everything written so far.
        loop {
            let trail = Arc::clone(&state.trail);
            let scan = filter.clone();
            let page = tokio::task::spawn_blocking(move || {
                mandate_audit::query(trail.as_ref(), &scan, after, MAX_LIMIT, MAX_SCAN)
            })
            .await;
            let page = match page {
                Ok(Ok(page)) => page,
                Ok(Err(error)) => {
                    tracing::error!(%error, "reading the audit log for a stream");
                    return;
                }
                Err(_) => return,
            };
            for (record, position) in page.records.iter().zip(&page.positions) {
                let event = SseEvent::default()
                    .event("record")
                    .id(position.to_string())
                    .json_data(record);
                let Ok(event) = event else {
                    return;
                };
                match tokio::time::timeout(SEND_TIMEOUT, tx.send(event)).await {
                    Ok(Ok(())) => {}
                    // Gone, or not reading: either way the slot is freed.
                    _ => return,
                }
            }
            after = page.scanned_to.max(after);
            if page.next_after.is_none() {
                break;
            }
        }
        // Wait for the log to grow.
        let grown = async {
            match progress.as_mut() {
                Some(progress) => {
                    if progress.wait_for(|seq| *seq > after).await.is_err() {
                        // The writer stopped: nothing more will come.
                        std::future::pending::<()>().await;
                    }
                }
                None => tokio::time::sleep(POLL_EVERY).await,
            }
        };
        tokio::select! {
            () = grown => {}
            () = tx.closed() => return,
            () = tokio::time::sleep_until(deadline) => return,
        }
    }
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
