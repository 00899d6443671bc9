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

mod auth;
mod authorizer;
mod clients;
mod errors;
mod reads;
mod state;
mod stream;
mod writes;

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use mandate_verifier::http::{method_not_allowed, not_found};
use tokio::net::TcpListener;

use crate::error::{report, Error, Result};
use reads::{ack, list, status};
use writes::{create, lift};

pub use authorizer::{HttpBinding, WriteAuthorizer, WriteDenied, POP_HEADER};
pub use clients::{
    ClientLimits, GuardedAcceptor, GuardedStream, BODY_TIMEOUT_ENV, HEADER_TIMEOUT_ENV,
    MAX_CONNECTIONS_ENV, MAX_PER_ADDRESS_ENV,
};
pub use state::{RegistryConfig, RegistryState};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Largest `limit` accepted by `GET /v1/revocations`.
pub const MAX_LIST_LIMIT: usize = 1000;
/// `limit` used when the request gives none.
pub const DEFAULT_LIST_LIMIT: usize = 100;
/// Entries read from the store per page while a stream catches up.
pub(super) const STREAM_PAGE: usize = 500;
/// Events buffered per stream before the stream task waits for the client.
pub(super) const STREAM_BUFFER: usize = 64;

/// The registry's API, served alone: [`routes`] with JSON 404 and 405 fallbacks.
pub fn router(state: RegistryState) -> Router {
    routes(state)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// The registry's routes, without fallbacks, to merge into a larger server
/// (which sets its own).
pub fn routes(state: RegistryState) -> Router {
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
        .route("/v1/revocations/stream", get(stream::stream))
        .route("/v1/subscribers/ack", post(ack))
        .route("/v1/status", get(status))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The registry's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
    use utoipa::OpenApi as _;

    /// Names the `Authorization` header scheme every registry call but acks uses.
    struct MandateScheme;

    impl utoipa::Modify for MandateScheme {
        fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
            let components = openapi.components.get_or_insert_with(Default::default);
            components.add_security_scheme(
                "mandate",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "Authorization",
                    "`Mandate <token>` (or `Bearer <token>`); when the mandate names an agent \
                     key, a proof of possession over the method, path and body in `Mandate-PoP`",
                ))),
            );
        }
    }

    #[derive(utoipa::OpenApi)]
    #[openapi(
        paths(
            writes::create,
            writes::lift,
            reads::list,
            reads::status,
            reads::ack,
            stream::stream
        ),
        components(schemas(crate::RevocationKind, crate::Hello, crate::Heartbeat)),
        modifiers(&MandateScheme),
        tags((name = "registry", description = "The revocation log: write, list, stream"))
    )]
    struct RegistryApi;
    RegistryApi::openapi()
}

/// Serves `router(state)` on `listener` until `shutdown` resolves, then ends open streams,
/// lets in-flight requests finish (bounded by [`RegistryConfig::shutdown_grace`]) and
/// flushes the store. Each request carries its client's address (axum's
/// `ConnectInfo<SocketAddr>`), which the per-address stream limit uses. Clients are held
/// to [`ClientLimits::from_env`]: request headers and bodies within their timeouts, a
/// bounded number of connections.
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
/// served with `ConnectInfo<SocketAddr>` and the client limits, as in [`serve`].
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
    // `axum_server` takes a std listener; the conversion keeps it non-blocking.
    let listener = listener
        .into_std()
        .map_err(|source| Error::Serve { source })?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "revocation registry listening");
    }
    let handle = axum_server::Handle::new();
    let drain = handle.clone();
    let streams = state.clone();
    let grace = state.inner.config.shutdown_grace;
    let stopper = tokio::spawn(async move {
        shutdown.await;
        tracing::info!(
            ?grace,
            "shutting down: closing revocation streams, finishing requests"
        );
        streams.shutdown_streams();
        // Stops accepting at once; connections still open after `grace` are closed.
        drain.graceful_shutdown(Some(grace));
    });
    let limits = ClientLimits::from_env();
    let service = limits
        .bound_bodies(app)
        .into_make_service_with_connect_info::<SocketAddr>();
    let outcome = limits
        .apply(axum_server::from_tcp(listener))
        .handle(handle)
        .serve(service)
        .await
        .map_err(|source| Error::Serve { source });
    // A server that failed leaves no task holding the state (and its store).
    stopper.abort();
    let flushed = state.blocking(|store| store.flush()).await;
    if let Err(error) = &flushed {
        tracing::error!(error = %report(error), "flushing the revocation store on shutdown failed");
    }
    outcome.and(flushed)
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM: the usual `shutdown` for [`serve`].
///
/// The handlers are installed by this call, not when the future is first
/// polled: a server that calls it before announcing its address never dies
/// of a signal sent right after the announcement. Call inside a Tokio
/// runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    let handlers = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        )
    };
    async move {
        #[cfg(unix)]
        {
            match handlers {
                (Ok(mut terminate), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = terminate.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                }
                (terminate, interrupt) => {
                    let error = terminate.err().or(interrupt.err());
                    tracing::error!(error = ?error, "cannot listen for SIGTERM or SIGINT");
                    std::future::pending::<()>().await;
                }
            }
        }
        #[cfg(not(unix))]
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    }
}
