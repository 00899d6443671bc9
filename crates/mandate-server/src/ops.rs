//! The operations endpoints: `GET /healthz` (the process answers),
//! `GET /readyz` (it can decide correctly now), `GET /metrics` (Prometheus)
//! and `GET /openapi.json`.
//!
//! Readiness fails closed, like the decisions it vouches for: not ready when
//! the revocation state is stale or was never synced, when the store would
//! not take a write, when the audit log cannot take records (decisions are
//! then refused), or when no root key is loaded (a followed key set that
//! never loaded included; one that loaded and then could not be refreshed
//! keeps serving, and says so). A server subscribed to registry replicas
//! names the one in use, whether its stream is open and how often it moved;
//! that part is informative: readiness still follows only the revocation
//! state's freshness, which any replica can confirm. A load balancer that
//! honours it sends no traffic to a replica that would deny everything.
//! These routes never wait for the evaluation pool.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use mandate_audit::{AuditWriter, Durability};
use mandate_registry::{RegistryState, ReplicaStatus, SharedIndex};
use mandate_verifier::pool::EvalPool;
use mandate_verifier::{SharedKeySet, Verifier};
use serde::Serialize;

use crate::key_follower::FollowerStatus;

/// What the operations endpoints look at.
#[derive(Debug, Clone)]
pub struct OpsState {
    index: SharedIndex,
    registry: Option<RegistryState>,
    pool: EvalPool,
    root_keys: SharedKeySet,
    /// Where the root keys are followed from, when they are.
    follower: Option<FollowerStatus>,
    /// Which registry replica feeds the index, when subscribed.
    replicas: Option<ReplicaStatus>,
    authorize: bool,
    /// The authorization API's verifier (a clone shares its caches), whose
    /// cache hits and misses `/metrics` reports.
    verifier: Option<Verifier>,
    audit: Option<Arc<AuditWriter>>,
    /// The last store probe and when it ran: `/readyz` is open to anyone who
    /// can reach the port, and each probe writes and flushes, so a probe is
    /// reused for [`PROBE_REUSE`] and runs one at a time.
    last_probe: Arc<tokio::sync::Mutex<Option<(Instant, bool)>>>,
    /// The OpenAPI document served at `/openapi.json`, serialised once.
    document: Option<axum::body::Bytes>,
}

/// How long one store probe answers readiness.
const PROBE_REUSE: Duration = Duration::from_secs(1);

impl OpsState {
    /// The state of one server: its revocation index, its registry (when it
    /// holds the store), its pool and the root keys it trusts.
    pub fn new(
        index: SharedIndex,
        registry: Option<RegistryState>,
        pool: EvalPool,
        root_keys: SharedKeySet,
        authorize: bool,
    ) -> OpsState {
        OpsState {
            index,
            registry,
            pool,
            root_keys,
            follower: None,
            replicas: None,
            authorize,
            verifier: None,
            audit: None,
            last_probe: Arc::default(),
            document: None,
        }
    }

    /// Serves `document` at `/openapi.json` (404 without one).
    #[must_use]
    pub fn with_document(mut self, document: &utoipa::openapi::OpenApi) -> OpsState {
        self.document = serde_json::to_vec(document).ok().map(Into::into);
        self
    }

    /// The root keys are followed from an issuer: readiness waits for a
    /// first set, `/metrics` reports the set's age and staleness.
    #[must_use]
    pub fn with_follower(mut self, follower: FollowerStatus) -> OpsState {
        self.follower = Some(follower);
        self
    }

    /// The index is fed by a subscription to registry replicas: `/readyz`
    /// and `/metrics` say which one is in use.
    #[must_use]
    pub fn with_replicas(mut self, replicas: ReplicaStatus) -> OpsState {
        self.replicas = Some(replicas);
        self
    }

    /// Reports the token cache hits and misses of `verifier` at `/metrics`.
    #[must_use]
    pub fn with_verifier(mut self, verifier: Verifier) -> OpsState {
        self.verifier = Some(verifier);
        self
    }

    /// Readiness also requires `audit` (when given) to take records.
    #[must_use]
    pub fn with_audit(mut self, audit: Option<Arc<AuditWriter>>) -> OpsState {
        self.audit = audit;
        self
    }

    /// Whether the store takes writes, probed at most once per [`PROBE_REUSE`].
    async fn store_writable(&self, registry: &RegistryState) -> bool {
        let mut last = self.last_probe.lock().await;
        if let Some((at, writable)) = *last {
            if at.elapsed() < PROBE_REUSE {
                return writable;
            }
        }
        let writable = match registry.check_writable().await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "not ready: the store does not take writes");
                false
            }
        };
        *last = Some((Instant::now(), writable));
        writable
    }
}

/// The operations routes.
pub fn router(state: OpsState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .with_state(state)
}

/// One readiness check.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Check {
    /// Whether it passed.
    pub ok: bool,
    /// What was seen.
    pub detail: String,
}

/// The body of `/readyz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Every check passed.
    pub ready: bool,
    /// The revocation state is fresh.
    pub revocations: Check,
    /// The registry replica feeding the revocation state (servers subscribed
    /// to a registry). Informative: readiness follows `revocations`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryReplica>,
    /// The store takes writes (servers holding the registry's store).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<Check>,
    /// Root keys are loaded.
    pub keys: Check,
    /// The audit log takes records (servers with an audit trail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<Check>,
}

/// Which registry replica a subscribed server follows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RegistryReplica {
    /// The URL of the replica in use (or being tried).
    pub in_use: String,
    /// Whether its stream is open.
    pub connected: bool,
    /// Every replica's URL, in the order they are tried.
    pub replicas: Vec<String>,
    /// How often the server moved from one replica to another.
    pub failovers: u64,
}

/// The body of `/healthz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process answers", body = Health)))]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The server can decide correctly now.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready", body = Readiness),
    (status = 503, description = "Not ready: the failing check says why", body = Readiness)))]
pub(crate) async fn readyz(State(state): State<OpsState>) -> Response {
    let registry = state.replicas.as_ref().map(|status| {
        let report = status.report();
        RegistryReplica {
            in_use: report.in_use().to_owned(),
            connected: report.connected,
            failovers: report.failovers,
            replicas: report.replicas,
        }
    });
    let revocations = match state.index.freshness(Instant::now()) {
        Ok(()) => Check {
            ok: true,
            detail: match &registry {
                Some(replica) => format!(
                    "fresh at revocation #{} from {}",
                    state.index.last_seq(),
                    replica.in_use
                ),
                None => format!("fresh at revocation #{}", state.index.last_seq()),
            },
        },
        Err(denied) => Check {
            ok: false,
            detail: denied.to_string(),
        },
    };
    let store = match &state.registry {
        Some(registry) => Some(if state.store_writable(registry).await {
            Check {
                ok: true,
                detail: "writable".to_owned(),
            }
        } else {
            Check {
                ok: false,
                detail: "the store does not take writes (see the server's log)".to_owned(),
            }
        }),
        None => None,
    };
    let keys = match &state.follower {
        Some(follower) => {
            let (ok, detail) = follower.readiness();
            Check { ok, detail }
        }
        None => {
            let trusted = state.root_keys.len();
            Check {
                ok: trusted > 0,
                detail: format!("{trusted} root key(s)"),
            }
        }
    };
    let audit = state.audit.as_ref().map(|writer| match writer.health() {
        Ok(()) => Check {
            ok: true,
            detail: match writer.durability() {
                Durability::Durable => "writable (durable)".to_owned(),
                Durability::Buffered { flush_every } => format!(
                    "writable, BUFFERED: a crash loses up to {} of records",
                    humantime::format_duration(flush_every)
                ),
            },
        },
        Err(reason) => Check {
            ok: false,
            detail: format!("not writable, denying every decision: {reason}"),
        },
    });
    let ready = revocations.ok
        && keys.ok
        && store.as_ref().is_none_or(|s| s.ok)
        && audit.as_ref().is_none_or(|a| a.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        ready,
        revocations,
        registry,
        store,
        keys,
        audit,
    };
    (status, Json(body)).into_response()
}

/// Prometheus metrics, text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub(crate) async fn metrics(State(state): State<OpsState>) -> Response {
    let subscribers = state.registry.as_ref().map(RegistryState::subscriber_count);
    crate::metrics::observe_state(&state.index, &state.pool, subscribers, state.authorize);
    if let Some(verifier) = &state.verifier {
        crate::metrics::observe_caches(verifier);
    }
    if let Some(follower) = &state.follower {
        follower.observe();
    }
    if let Some(replicas) = &state.replicas {
        crate::metrics::observe_replicas(&replicas.report());
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
        .into_response()
}

/// This API, as OpenAPI 3.1.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
pub(crate) async fn openapi(State(state): State<OpsState>) -> Response {
    match state.document {
        Some(document) => ([(header::CONTENT_TYPE, "application/json")], document).into_response(),
        None => mandate_verifier::http::ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            "this server serves no OpenAPI document",
        )
        .into_response(),
    }
}
