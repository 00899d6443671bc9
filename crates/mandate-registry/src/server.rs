//! The registry's HTTP API (axum 0.8): write revocations, list them, stream them to
//! verifiers, and report how many connected verifiers have applied them.
//!
//! Every request but acks carries a mandate, `Authorization: Bearer <token>` (or the
//! `Mandate` scheme), and, when the mandate names an agent key, that agent's proof of
//! possession in the `Mandate-PoP` header. Writes and reads go through a
//! [`WriteAuthorizer`] (the real one verifies a mandate carrying `registry:revoke` for
//! writes and `registry:read` for the list, the status and the stream; it lives
//! elsewhere). The request it decides is built here from what was actually received
//! ([`HttpBinding`]: the method, the path and the exact body bytes), so a proof captured
//! from one request authorizes no other. Revocation entries name principals and carry
//! reasons: they are for verifiers, not for anyone who can reach the port. Every error
//! uses one JSON shape ([`crate::api::ErrorBody`]); internal details are logged, never
//! sent. Bearer tokens are never logged; a short SHA-256 fingerprint is logged instead.
//!
//! Streams (`GET /v1/revocations/stream`) never skip or repeat an entry: each stream
//! subscribes to the live broadcast *before* reading its backlog from the store, skips
//! anything at or below the last seq it sent, and re-reads the store whenever the
//! broadcast lags or shows a gap (two writers can broadcast out of order). A heartbeat
//! means "every entry up to `current_seq` has been sent on this stream"; it is sent only
//! after the stream has caught up with the store, so a verifier may treat it as proof of
//! freshness.
//!
//! A stream is authenticated before it takes a slot: an unauthenticated or refused
//! attempt is answered 401/403 at once and never counts against any limit, so a flood of
//! them from one address cannot keep an authenticated verifier behind the same address
//! from subscribing. Authenticated streams are bounded three ways: at most
//! [`RegistryConfig::max_subscribers`] at once, at most
//! [`RegistryConfig::max_streams_per_peer`] from one client address (IPv6 clients are
//! grouped by /64; without connection info, as under `oneshot` in tests, all clients share
//! one group), and a stream whose client does not take an event within
//! [`RegistryConfig::stream_send_timeout`] is dropped, freeing its slot.
//!
//! Every read names the log's epoch ([`RevocationStore::epoch`]): in `hello`, in each
//! heartbeat, in list pages and in the status, so a subscriber can tell a restarted
//! registry serving the same log from one serving a different log with overlapping seqs.
//!
//! Acknowledgements are deliberately simple: the `hello` event gives each stream a random
//! subscriber id (sent only on an authenticated stream); the subscriber posts the
//! highest seq it applied to
//! `POST /v1/subscribers/ack`; the registry keeps the maximum per connected stream and
//! forgets it when the stream closes. `GET /v1/status?seq=N` counts how many connected
//! subscribers have applied `N`. Acks are unauthenticated diagnostics (they feed the CLI's
//! "applied by K of N verifiers"), never a security decision.

use std::future::{Future, IntoFuture};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody, JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use mandate_verifier::pool::{EvalPool, PoolError, RETRY_AFTER_SECS};
use rustc_hash::FxHashMap;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::MissedTickBehavior;

use crate::api::{
    events, AckRequest, ErrorBody, ErrorDetail, Heartbeat, Hello, ListPage, RegistryStatus,
    RevokeRequest,
};
use crate::entry::{NewRevocation, RevocationEntry};
use crate::error::{report, Error, Result};
use crate::store::RevocationStore;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Largest `limit` accepted by `GET /v1/revocations`.
pub const MAX_LIST_LIMIT: usize = 1000;
/// `limit` used when the request gives none.
pub const DEFAULT_LIST_LIMIT: usize = 100;
/// Entries read from the store per page while a stream catches up.
const STREAM_PAGE: usize = 500;
/// Events buffered per stream before the stream task waits for the client.
const STREAM_BUFFER: usize = 64;

/// Tunables of the registry server.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Interval between stream heartbeats. Verifiers' staleness bounds must be longer.
    /// [`RegistryState::with_config`] clamps it to
    /// [`RegistryConfig::MIN_HEARTBEAT_INTERVAL`]`..=`[`RegistryConfig::MAX_HEARTBEAT_INTERVAL`].
    pub heartbeat_interval: Duration,
    /// Most streams open at once; further stream requests get 503.
    pub max_subscribers: usize,
    /// Most streams open at once from one client address (IPv6: one /64); further
    /// stream requests from it get 503. At least 1. Clients behind one proxy or NAT
    /// share an address, so raise it for such deployments.
    pub max_streams_per_peer: usize,
    /// A stream whose client has not taken an event for this long is closed, freeing its
    /// slot. Clamped to at least [`RegistryConfig::MIN_STREAM_SEND_TIMEOUT`].
    pub stream_send_timeout: Duration,
    /// Live entries buffered per stream before it falls back to reading the store.
    pub broadcast_capacity: usize,
    /// How long [`serve`] lets in-flight requests finish after the shutdown signal.
    pub shutdown_grace: Duration,
    /// Where write mandates are evaluated: bounded blocking workers with a deadline,
    /// never the runtime's threads (overload or deadline → 503 with `Retry-After`).
    /// Share one pool with the authorization API when both run in one process.
    pub eval_pool: EvalPool,
}

impl RegistryConfig {
    /// Shortest accepted heartbeat interval.
    pub const MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(10);
    /// Longest accepted heartbeat interval.
    pub const MAX_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3600);
    /// Shortest accepted stream send timeout.
    pub const MIN_STREAM_SEND_TIMEOUT: Duration = Duration::from_millis(10);

    /// This configuration with every value brought into its accepted range.
    fn clamped(mut self) -> Self {
        let heartbeat = self
            .heartbeat_interval
            .clamp(Self::MIN_HEARTBEAT_INTERVAL, Self::MAX_HEARTBEAT_INTERVAL);
        if heartbeat != self.heartbeat_interval {
            tracing::warn!(
                requested = ?self.heartbeat_interval,
                used = ?heartbeat,
                "heartbeat interval out of range; clamped"
            );
            self.heartbeat_interval = heartbeat;
        }
        self.stream_send_timeout = self.stream_send_timeout.max(Self::MIN_STREAM_SEND_TIMEOUT);
        self.max_streams_per_peer = self.max_streams_per_peer.max(1);
        self
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_millis(1000),
            max_subscribers: 1024,
            max_streams_per_peer: 64,
            stream_send_timeout: Duration::from_secs(10),
            broadcast_capacity: 1024,
            shutdown_grace: Duration::from_secs(10),
            eval_pool: EvalPool::default(),
        }
    }
}

/// The HTTP request a mandate is presented with, as the registry received it. A proof of
/// possession must cover all of it ([`crate::registry_request`]), so one captured from
/// a revoke authorizes neither a lift, nor a revoke of another value, nor a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpBinding<'a> {
    /// The method, e.g. `POST`.
    pub method: &'a str,
    /// The path of the registry API, without the query, e.g. `/v1/revocations/lift`.
    pub path: &'a str,
    /// The exact body bytes (empty for a `GET`).
    pub body: &'a [u8],
}

/// Decides who may write to, and read from, the registry.
pub trait WriteAuthorizer: Send + Sync {
    /// Checks the mandate of a write request and returns the actor name recorded as
    /// `revoked_by`. `proof` is the `Mandate-PoP` header; `request` is what it must cover.
    ///
    /// # Errors
    /// [`WriteDenied::Unauthenticated`] (HTTP 401) for a malformed, unverifiable or expired
    /// token, or a missing or wrong proof; [`WriteDenied::Forbidden`] (HTTP 403) for a
    /// valid token without the right. The message is sent to the client, so it must not
    /// contain secrets.
    fn authorize_write(
        &self,
        bearer: &str,
        proof: Option<&str>,
        request: &HttpBinding<'_>,
    ) -> std::result::Result<String, WriteDenied>;

    /// Checks the mandate of a read (list, status, stream) and returns who reads, for
    /// logs.
    ///
    /// # Errors
    /// As [`WriteAuthorizer::authorize_write`], for the right to read.
    fn authorize_read(
        &self,
        bearer: &str,
        proof: Option<&str>,
        request: &HttpBinding<'_>,
    ) -> std::result::Result<String, WriteDenied>;
}

/// The header carrying the acting agent's proof of possession.
pub const POP_HEADER: &str = "mandate-pop";

/// Why a write was refused. A decision, not a failure of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteDenied {
    /// The token is missing, malformed or not verifiable (HTTP 401).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The token is valid but does not allow writing revocations (HTTP 403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The write could not be judged now (an evaluation limit under load);
    /// the client should retry (HTTP 503).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Shared state of the registry server. Cheap to clone.
#[derive(Clone)]
pub struct RegistryState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn RevocationStore>,
    authorizer: Arc<dyn WriteAuthorizer>,
    /// New entries, for open streams. Streams re-read the store when this lags.
    events: broadcast::Sender<Arc<RevocationEntry>>,
    /// Connected stream subscribers.
    subscribers: Mutex<Subscribers>,
    /// Set to `true` to end every open stream (shutdown).
    stop_streams: watch::Sender<bool>,
    config: RegistryConfig,
}

/// The open streams.
#[derive(Debug, Default)]
struct Subscribers {
    /// Stream id → highest seq applied.
    applied: FxHashMap<String, u64>,
    /// Open streams per client address group; `None` when the address is unknown.
    per_peer: FxHashMap<Option<IpAddr>, usize>,
}

impl std::fmt::Debug for RegistryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryState")
            .field("config", &self.inner.config)
            .field("subscribers", &self.subscriber_count())
            .finish_non_exhaustive()
    }
}

impl RegistryState {
    /// State with the default [`RegistryConfig`].
    pub fn new(store: Arc<dyn RevocationStore>, authorizer: Arc<dyn WriteAuthorizer>) -> Self {
        Self::with_config(store, authorizer, RegistryConfig::default())
    }

    /// State with an explicit configuration. Out-of-range values are clamped (see
    /// [`RegistryConfig`]); [`RegistryState::config`] shows what is used.
    pub fn with_config(
        store: Arc<dyn RevocationStore>,
        authorizer: Arc<dyn WriteAuthorizer>,
        config: RegistryConfig,
    ) -> Self {
        let config = config.clamped();
        let (events, _) = broadcast::channel(config.broadcast_capacity.max(1));
        let (stop_streams, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                store,
                authorizer,
                events,
                subscribers: Mutex::default(),
                stop_streams,
                config,
            }),
        }
    }

    /// Appends `new` to the store and publishes it to open streams. This is what the
    /// write endpoints do after authorization; in-process writers (for example a CLI
    /// running the registry embedded) call it directly.
    ///
    /// Append and publish run together on a blocking thread that finishes even if this
    /// future is dropped (a client that disconnects mid-write): a stored entry always
    /// reaches the open streams at once, not only at their next heartbeat.
    ///
    /// # Errors
    /// As [`RevocationStore::append`].
    pub async fn append(&self, new: NewRevocation) -> Result<RevocationEntry> {
        let events = self.inner.events.clone();
        self.blocking(move |store| {
            let entry = store.append(new)?;
            // No receivers just means no stream is open; the entry is in the store
            // regardless.
            let _receivers = events.send(Arc::new(entry.clone()));
            Ok(entry)
        })
        .await
    }

    /// Number of open streams.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers().applied.len()
    }

    /// The configuration in use (after clamping).
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// Ends every open stream (their clients will reconnect elsewhere or later). [`serve`]
    /// calls this when its shutdown signal fires, since graceful shutdown waits for open
    /// responses and a stream never ends by itself.
    pub fn shutdown_streams(&self) {
        self.inner.stop_streams.send_replace(true);
    }

    fn subscribers(&self) -> MutexGuard<'_, Subscribers> {
        // Every critical section on these maps completes its update before it can panic.
        self.inner
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a store call on the blocking pool: sled flushes to disk on every append. The
    /// call runs to completion even if the returned future is dropped.
    async fn blocking<T, F>(&self, call: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn RevocationStore) -> Result<T> + Send + 'static,
    {
        let store = Arc::clone(&self.inner.store);
        tokio::task::spawn_blocking(move || call(store.as_ref()))
            .await
            .map_err(|e| Error::storage("running a store call", e))?
    }

    fn register_subscriber(
        &self,
        applied: u64,
        peer: Option<IpAddr>,
    ) -> std::result::Result<SubscriberGuard, ApiError> {
        let mut subscribers = self.subscribers();
        if subscribers.applied.len() >= self.inner.config.max_subscribers {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_subscribers",
                "the registry has reached its stream limit; retry later",
            ));
        }
        let from_peer = subscribers.per_peer.get(&peer).copied().unwrap_or(0);
        if from_peer >= self.inner.config.max_streams_per_peer {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_streams_from_peer",
                "too many streams are open from this address; close one or retry later",
            ));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        subscribers.applied.insert(id.clone(), applied);
        *subscribers.per_peer.entry(peer).or_insert(0) += 1;
        Ok(SubscriberGuard {
            state: self.clone(),
            id,
            peer,
        })
    }
}

/// Removes a stream's subscriber record when the stream task ends, however it ends.
struct SubscriberGuard {
    state: RegistryState,
    id: String,
    peer: Option<IpAddr>,
}

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        let mut subscribers = self.state.subscribers();
        subscribers.applied.remove(&self.id);
        if let Some(count) = subscribers.per_peer.get_mut(&self.peer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                subscribers.per_peer.remove(&self.peer);
            }
        }
    }
}

/// The group a client address counts against [`RegistryConfig::max_streams_per_peer`]
/// in: the address itself for IPv4 (also when IPv4-mapped), the /64 for IPv6, since one
/// IPv6 host usually controls a whole /64.
fn peer_group(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::from(segments)
        }
        v4 => v4,
    }
}

/// The client's address group, when the server provides connection info
/// ([`serve`] does); `None` otherwise, so those clients share one group.
struct Peer(Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> std::result::Result<Self, Self::Rejection> {
        let addr = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .ok()
            .map(|ConnectInfo(addr)| peer_group(addr.ip()));
        Ok(Peer(addr))
    }
}

/// Builds the registry's router.
pub fn router(state: RegistryState) -> Router {
    // Middleware order, outermost first:
    // 1. `DefaultBodyLimit` (16 KiB) — not a service wrapper but a request extension that
    //    every body extractor honours, so an oversized body is refused (413) before any
    //    handler parses it.
    // 2. Routing, with JSON `fallback` (404) and `method_not_allowed_fallback` (405) so
    //    even unknown paths answer in the one error shape.
    // Authentication is deliberately not a layer: the proof of a write covers its body,
    // so each handler authenticates with what it received (`HttpBinding`), before it
    // parses the body, reads the store or takes a stream slot. The mandate is evaluated
    // on the config's `EvalPool` (bounded blocking workers, one deadline), so checking
    // a mandate never holds a runtime thread that streams and heartbeats need. Acks are
    // open: their subscriber id is known only to the authenticated stream it names.
    Router::new()
        .route("/v1/revocations", post(create).get(list))
        .route("/v1/revocations/lift", post(lift))
        .route("/v1/revocations/stream", get(stream))
        .route("/v1/subscribers/ack", post(ack))
        .route("/v1/status", get(status))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` resolves, then ends open streams,
/// lets in-flight requests finish (bounded by [`RegistryConfig::shutdown_grace`]) and
/// flushes the store. Each request carries its client's address (axum's
/// `ConnectInfo<SocketAddr>`), which the per-address stream limit uses.
///
/// # Errors
/// [`Error::Serve`] if the server fails; [`Error::Storage`] if the final flush fails.
pub async fn serve<F>(listener: TcpListener, state: RegistryState, shutdown: F) -> Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let app = router(state.clone());
    serve_app(listener, state, app, shutdown).await
}

/// As [`serve`], for an `app` that contains `router(state)` among other
/// routes (one process serving the registry and the authorization API). The app is
/// served with `ConnectInfo<SocketAddr>`, as in [`serve`].
///
/// # Errors
/// As [`serve`].
pub async fn serve_app<F>(
    listener: TcpListener,
    state: RegistryState,
    app: Router,
    shutdown: F,
) -> Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "revocation registry listening");
    }
    let (stopping_tx, mut stopping_rx) = watch::channel(false);
    let streams = state.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: closing revocation streams, finishing requests");
        streams.shutdown_streams();
        stopping_tx.send_replace(true);
    };
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(signal)
    .into_future();
    let grace = state.inner.config.shutdown_grace;
    let deadline = async move {
        // An error here means the signal future was dropped, i.e. the server already ended.
        if stopping_rx.wait_for(|stopping| *stopping).await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let outcome = tokio::select! {
        result = server => result.map_err(|source| Error::Serve { source }),
        () = deadline => {
            tracing::warn!(?grace, "in-flight requests did not finish in time; closing anyway");
            Ok(())
        }
    };
    let flushed = state.blocking(|store| store.flush()).await;
    if let Err(error) = &flushed {
        tracing::error!(error = %report(error), "flushing the revocation store on shutdown failed");
    }
    outcome.and(flushed)
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM: the usual `shutdown` for [`serve`].
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

// ---------------------------------------------------------------------------------------
// Errors: the one JSON shape.

/// An error response. Everything a handler can fail with becomes one of these.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Sent as `Retry-After` (seconds) when the refusal is about load.
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        response
    }
}

impl From<PoolError> for ApiError {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::Failed => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            ),
            // Overload and deadline say nothing about the writer: refuse, retryably.
            _ => Self {
                retry_after: Some(RETRY_AFTER_SECS),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    error.code(),
                    error.to_string(),
                )
            },
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match &error {
            Error::UnknownKind { .. }
            | Error::InvalidValue { .. }
            | Error::InvalidName { .. }
            | Error::TooLong { .. } => Self::bad_request("invalid_value", error.to_string()),
            Error::NotLiftable { .. } => Self::bad_request("not_liftable", error.to_string()),
            _ => {
                tracing::error!(error = %report(&error), "registry request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

impl From<WriteDenied> for ApiError {
    fn from(denied: WriteDenied) -> Self {
        match denied {
            WriteDenied::Unauthenticated(message) => {
                Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
            }
            WriteDenied::Forbidden(message) => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
            WriteDenied::Unavailable(message) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        // axum answers 422 for well-formed JSON of the wrong shape (an unknown `kind`);
        // this API answers 400 for every malformed body, 413 only when the body limit
        // was hit, and 415 for a missing JSON content type. A body that could not be
        // read for another reason (the client went away mid-upload) is a 400: matching
        // the variant, not the status, keeps that distinction explicit.
        let (status, code) = match &rejection {
            JsonRejection::BytesRejection(BytesRejection::FailedToBufferBody(
                FailedToBufferBody::LengthLimitError(_),
            )) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            JsonRejection::BytesRejection(_) => (StatusCode::BAD_REQUEST, "body_unreadable"),
            JsonRejection::MissingJsonContentType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            _ => (StatusCode::BAD_REQUEST, "bad_request"),
        };
        Self::new(status, code, rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request("bad_request", rejection.body_text())
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}

// ---------------------------------------------------------------------------------------
// Writes.

/// A short, non-reversible identifier of a bearer token for logs.
fn fingerprint(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    format!("sha256:{}", hex::encode(&digest[..8]))
}

/// The mandate of a request (`Authorization: Bearer <token>` or `Mandate <token>`) and
/// its proof of possession, if any.
fn credentials(headers: &HeaderMap) -> std::result::Result<(&str, Option<&str>), ApiError> {
    let token = bearer_token(headers)?;
    let proof = match headers.get(POP_HEADER) {
        Some(value) => Some(value.to_str().map_err(|_| {
            ApiError::from(WriteDenied::Unauthenticated(
                "Mandate-PoP header is not ASCII".to_owned(),
            ))
        })?),
        None => None,
    };
    Ok((token, proof))
}

/// Authenticates a read (list, status, stream) made with `method` on `uri`.
async fn authorize_read(
    state: &RegistryState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> std::result::Result<(), ApiError> {
    let credentials = credentials(headers)?;
    let reader = evaluate(state, credentials, method, uri, &[], Access::Read).await?;
    tracing::debug!(%reader, path = uri.path(), "registry read");
    Ok(())
}

/// Which registry right a request needs.
#[derive(Debug, Clone, Copy)]
enum Access {
    Read,
    Write,
}

/// Checks the mandate of one request on the evaluation pool, bound to the
/// request's method, path and exact body; returns the actor's name.
async fn evaluate(
    state: &RegistryState,
    (token, proof): (&str, Option<&str>),
    method: &Method,
    uri: &Uri,
    body: &[u8],
    access: Access,
) -> std::result::Result<String, ApiError> {
    let authorizer = Arc::clone(&state.inner.authorizer);
    let (bearer, pop) = (token.to_owned(), proof.map(str::to_owned));
    let (verb, path, bytes) = (
        method.as_str().to_owned(),
        uri.path().to_owned(),
        body.to_vec(),
    );
    let outcome = state
        .inner
        .config
        .eval_pool
        .run(move || {
            let binding = HttpBinding {
                method: &verb,
                path: &path,
                body: &bytes,
            };
            match access {
                Access::Read => authorizer.authorize_read(&bearer, pop.as_deref(), &binding),
                Access::Write => authorizer.authorize_write(&bearer, pop.as_deref(), &binding),
            }
        })
        .await;
    match outcome {
        Ok(Ok(actor)) => Ok(actor),
        Ok(Err(denied)) => {
            tracing::info!(token = %fingerprint(token), path = uri.path(), ?access, %denied, "registry request refused");
            Err(ApiError::from(denied))
        }
        Err(error) => {
            tracing::warn!(token = %fingerprint(token), path = uri.path(), ?access, %error, "registry request not evaluated");
            Err(ApiError::from(error))
        }
    }
}

fn bearer_token(headers: &HeaderMap) -> std::result::Result<&str, ApiError> {
    let unauthenticated =
        |message: &str| ApiError::from(WriteDenied::Unauthenticated(message.to_owned()));
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthenticated("missing Authorization header"))?;
    let value = value
        .to_str()
        .map_err(|_| unauthenticated("Authorization header is not ASCII"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if (scheme.eq_ignore_ascii_case("bearer")
                || scheme.eq_ignore_ascii_case("mandate"))
                && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(unauthenticated("expected Authorization: Bearer <token>")),
    }
}

async fn create(
    State(state): State<RegistryState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<(StatusCode, Json<RevocationEntry>), ApiError> {
    write(&state, &method, &uri, &headers, body, false).await
}

async fn lift(
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
async fn revoke_body(
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

async fn write(
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

// ---------------------------------------------------------------------------------------
// Reads.

#[derive(Debug, Deserialize)]
struct ListParams {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn list(
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

#[derive(Debug, Deserialize)]
struct StatusParams {
    seq: Option<u64>,
}

async fn status(
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

async fn ack(
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

// ---------------------------------------------------------------------------------------
// The stream.

#[derive(Debug, Deserialize)]
struct StreamParams {
    after: Option<u64>,
}

async fn stream(
    State(state): State<RegistryState>,
    Peer(peer): Peer,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    query: std::result::Result<Query<StreamParams>, QueryRejection>,
) -> std::result::Result<Sse<impl Stream<Item = std::result::Result<Event, axum::Error>>>, ApiError>
{
    // Authenticate before anything else, in particular before a slot is taken: a
    // refused attempt holds nothing and counts against no limit.
    authorize_read(&state, &method, &uri, &headers).await?;
    let Query(params) = query?;
    let after = match params.after {
        Some(after) => after,
        None => match headers.get("last-event-id") {
            Some(value) => value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request("bad_request", "Last-Event-ID must be a sequence number")
                })?,
            None => 0,
        },
    };
    // Subscribe before reading anything from the store: every entry appended from now on
    // reaches this receiver, and everything before it is in the store.
    let live = state.inner.events.subscribe();
    let (current_seq, epoch) = state
        .blocking(|store| Ok((store.current_seq()?, store.epoch()?)))
        .await?;
    if after > current_seq {
        // The subscriber holds entries this registry does not have (a wiped or different
        // store). Streaming would silently skip new entries up to `after`: refuse instead,
        // so the subscriber stays stale and fails closed.
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "ahead_of_registry",
            format!(
                "subscriber has applied seq {after}, but the registry's newest is {current_seq}"
            ),
        ));
    }
    let guard = state.register_subscriber(after, peer)?;
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    tracing::debug!(subscriber = %guard.id, ?peer, after, "revocation stream opened");
    tokio::spawn(feed_stream(
        StreamFeed {
            state,
            tx,
            last_sent: after,
            epoch,
        },
        guard,
        live,
        current_seq,
    ));
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        let outgoing = rx.recv().await?;
        Some((outgoing.into_event(), rx))
    });
    Ok(Sse::new(events))
}

/// What a stream task hands to the response body, encoded there as an SSE event.
#[derive(Debug)]
enum Outgoing {
    Hello(Hello),
    Entry(RevocationEntry),
    Heartbeat(Heartbeat),
}

impl Outgoing {
    fn into_event(self) -> std::result::Result<Event, axum::Error> {
        // Encoding these plain structs cannot fail in practice; if it ever did, the error
        // ends the response and the subscriber reconnects from its last applied seq.
        match self {
            Outgoing::Hello(hello) => Event::default().event(events::HELLO).json_data(hello),
            Outgoing::Entry(entry) => Event::default()
                .event(events::REVOCATION)
                .id(entry.seq.to_string())
                .json_data(entry),
            Outgoing::Heartbeat(heartbeat) => Event::default()
                .event(events::HEARTBEAT)
                .json_data(heartbeat),
        }
    }
}

/// Why a stream task stopped.
#[derive(Debug)]
enum StreamEnd {
    ClientGone,
    /// The client took no event within the send timeout.
    SlowClient,
    Shutdown,
    Failed(Error),
}

/// One open stream: what it has sent and where to send more.
struct StreamFeed {
    state: RegistryState,
    tx: mpsc::Sender<Outgoing>,
    last_sent: u64,
    /// The epoch of the store's log, sent in `hello` and every heartbeat.
    epoch: String,
}

impl StreamFeed {
    /// Queues `outgoing` for the client. A client that lets the queue stay full for the
    /// send timeout ends the stream: otherwise it would hold its slot for as long as it
    /// keeps the connection open without reading.
    async fn send(&self, outgoing: Outgoing) -> std::result::Result<(), StreamEnd> {
        let timeout = self.state.inner.config.stream_send_timeout;
        match tokio::time::timeout(timeout, self.tx.send(outgoing)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(StreamEnd::ClientGone),
            Err(_) => Err(StreamEnd::SlowClient),
        }
    }

    async fn send_entry(&mut self, entry: RevocationEntry) -> std::result::Result<(), StreamEnd> {
        let seq = entry.seq;
        self.send(Outgoing::Entry(entry)).await?;
        self.last_sent = seq;
        Ok(())
    }

    /// Sends every stored entry after `last_sent`.
    async fn catch_up(&mut self) -> std::result::Result<(), StreamEnd> {
        loop {
            let after = self.last_sent;
            let page = self
                .state
                .blocking(move |store| store.list_after(after, STREAM_PAGE))
                .await
                .map_err(StreamEnd::Failed)?;
            let full = page.len() == STREAM_PAGE;
            for entry in page {
                self.send_entry(entry).await?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn on_live(&mut self, entry: &RevocationEntry) -> std::result::Result<(), StreamEnd> {
        if entry.seq <= self.last_sent {
            Ok(())
        } else if entry.seq == self.last_sent + 1 {
            self.send_entry(entry.clone()).await
        } else {
            // A concurrent writer broadcast a later entry first; the store has both.
            self.catch_up().await
        }
    }

    async fn heartbeat(&self) -> std::result::Result<(), StreamEnd> {
        let heartbeat = Heartbeat {
            current_seq: self.last_sent,
            epoch: self.epoch.clone(),
        };
        self.send(Outgoing::Heartbeat(heartbeat)).await
    }
}

async fn feed_stream(
    mut feed: StreamFeed,
    guard: SubscriberGuard,
    mut live: broadcast::Receiver<Arc<RevocationEntry>>,
    current_seq: u64,
) {
    let end = run_stream(&mut feed, &guard, &mut live, current_seq).await;
    match end {
        StreamEnd::ClientGone => {
            tracing::debug!(subscriber = %guard.id, "revocation stream closed by client");
        }
        StreamEnd::SlowClient => {
            tracing::info!(
                subscriber = %guard.id,
                peer = ?guard.peer,
                "revocation stream closed: the client stopped reading"
            );
        }
        StreamEnd::Shutdown => {
            tracing::debug!(subscriber = %guard.id, "revocation stream closed for shutdown");
        }
        StreamEnd::Failed(error) => {
            tracing::error!(subscriber = %guard.id, error = %report(&error), "revocation stream failed");
        }
    }
}

/// Resolves once streams are told to stop (or the state is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // `wait_for` returns a borrow of the value; drop it here so the caller stays `Send`.
    let _stopped = stop.wait_for(|stop| *stop).await.is_ok();
}

async fn run_stream(
    feed: &mut StreamFeed,
    guard: &SubscriberGuard,
    live: &mut broadcast::Receiver<Arc<RevocationEntry>>,
    current_seq: u64,
) -> StreamEnd {
    let hello = Hello {
        subscriber_id: guard.id.clone(),
        current_seq,
        epoch: feed.epoch.clone(),
    };
    let opening = async {
        feed.send(Outgoing::Hello(hello)).await?;
        feed.catch_up().await?;
        feed.heartbeat().await
    };
    if let Err(end) = opening.await {
        return end;
    }
    // `with_config` clamps already; clamp again so that no configuration can make the
    // ticker's `Instant + Duration` overflow (tokio panics on that).
    let interval = feed.state.inner.config.heartbeat_interval.clamp(
        RegistryConfig::MIN_HEARTBEAT_INTERVAL,
        RegistryConfig::MAX_HEARTBEAT_INTERVAL,
    );
    let now = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval_at(now.checked_add(interval).unwrap_or(now), interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut stop = feed.state.inner.stop_streams.subscribe();
    loop {
        let step = tokio::select! {
            () = stopped(&mut stop) => Err(StreamEnd::Shutdown),
            () = feed.tx.closed() => Err(StreamEnd::ClientGone),
            received = live.recv() => match received {
                Ok(entry) => feed.on_live(&entry).await,
                Err(RecvError::Lagged(skipped)) => {
                    tracing::debug!(subscriber = %guard.id, skipped, "stream lagged; reading the store");
                    feed.catch_up().await
                }
                Err(RecvError::Closed) => Err(StreamEnd::Shutdown),
            },
            _ = ticker.tick() => {
                // Catch up first, so the heartbeat's seq really is current.
                match feed.catch_up().await {
                    Ok(()) => feed.heartbeat().await,
                    Err(end) => Err(end),
                }
            }
        };
        if let Err(end) = step {
            return end;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::entry::RevocationKind;
    use crate::store::MemoryStore;

    struct NoWrites;

    impl WriteAuthorizer for NoWrites {
        fn authorize_write(
            &self,
            _: &str,
            _: Option<&str>,
            _: &HttpBinding<'_>,
        ) -> std::result::Result<String, WriteDenied> {
            Err(WriteDenied::Forbidden("read-only".to_owned()))
        }

        fn authorize_read(
            &self,
            _: &str,
            _: Option<&str>,
            _: &HttpBinding<'_>,
        ) -> std::result::Result<String, WriteDenied> {
            Ok("reader".to_owned())
        }
    }

    fn sent_seqs(rx: &mut mpsc::Receiver<Outgoing>) -> Vec<u64> {
        let mut seqs = Vec::new();
        while let Ok(outgoing) = rx.try_recv() {
            match outgoing {
                Outgoing::Entry(entry) => seqs.push(entry.seq),
                other => panic!("expected only entries, got {other:?}"),
            }
        }
        seqs
    }

    /// Live entries can arrive out of order (two writers) or after a gap (lag); the feed
    /// must still send every seq exactly once, in order.
    #[tokio::test]
    async fn live_entries_past_a_gap_are_filled_from_the_store_and_repeats_dropped() {
        let store = Arc::new(MemoryStore::new());
        let mut entries = Vec::new();
        for value in ["t1", "t2", "t3", "t4"] {
            let new = NewRevocation::revoke(RevocationKind::Task, value, "", "ops").unwrap();
            entries.push(store.append(new).unwrap());
        }
        let state = RegistryState::new(store, Arc::new(NoWrites));
        let (tx, mut rx) = mpsc::channel(16);
        let mut feed = StreamFeed {
            state,
            tx,
            last_sent: 1,
            epoch: "test".to_owned(),
        };

        feed.on_live(&entries[1]).await.ok().unwrap();
        assert_eq!(sent_seqs(&mut rx), [2], "the next seq is sent as is");
        feed.on_live(&entries[3]).await.ok().unwrap();
        assert_eq!(sent_seqs(&mut rx), [3, 4], "a gap is filled from the store");
        feed.on_live(&entries[2]).await.ok().unwrap();
        feed.on_live(&entries[0]).await.ok().unwrap();
        assert_eq!(sent_seqs(&mut rx), Vec::<u64>::new(), "repeats are dropped");
        assert_eq!(feed.last_sent, 4);
    }

    #[test]
    fn token_fingerprints_are_short_and_do_not_contain_the_token() {
        let token = "EoUBCh...secret-token-bytes";
        let fp = fingerprint(token);
        assert!(
            fp.starts_with("sha256:") && fp.len() == "sha256:".len() + 16,
            "{fp}"
        );
        assert!(!fp.contains("secret"));
        assert_eq!(fp, fingerprint(token), "stable");
        assert_ne!(fp, fingerprint("another"));
    }
}
