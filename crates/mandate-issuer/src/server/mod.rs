//! The issuer's HTTP API.
//!
//! - `GET /.well-known/oauth-authorization-server`: metadata (RFC 8414
//!   subset): the issuer identifier actor tokens must name, the endpoints.
//! - `POST /oauth2/token`: token exchange (RFC 8693), form-encoded
//!   ([`token`]); refusals in the RFC 6749 §5.2 shape ([`crate::oauth`]).
//! - `POST /v1/tasks/{id}/refresh`, `POST /v1/tasks/{id}/close` ([`tasks`]):
//!   `Authorization: Mandate <token>` plus a `Mandate-PoP` proof by the
//!   task's agent; a close also from the task's principal or an operator
//!   ([`close`]); refusals in Mandate's one JSON error shape (`ApiError`).
//! - `POST /v1/tasks/{id}/requests`, `GET /v1/requests/{id}` (the agent,
//!   as for refresh), `GET /v1/requests`, `POST /v1/requests/{id}/approve`
//!   and `.../deny` (an approver's identity token, or an operator's
//!   mandate granting `requests:approve` or `requests:deny` with a proof)
//!   ([`requests`], [`operators`]).
//! - `GET /.well-known/mandate-keys` ([`keys`]): the published root keys,
//!   with `Cache-Control` and an `ETag`.
//! - `GET /healthz` ([`router`] only: [`routes`] leaves it to the server
//!   the issuer is mounted in).
//!
//! Middleware order (outermost first): the body limit, then routing. Work
//! that blocks (policy evaluation, minting, the task store) runs on Tokio's
//! blocking threads, so the runtime keeps answering health checks.

pub mod close;
pub mod keys;
pub mod operators;
pub mod requests;
pub mod tasks;
pub mod token;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::requests::{MemoryRequestStore, Negotiator, NegotiatorOptions, RequestStore};
use crate::sweep::{self, Pruned, Retention};
use crate::Issuer;

/// The largest request body any issuer endpoint reads.
pub const MAX_BODY_BYTES: usize = 32 * 1024;

/// How long verifiers may cache the published key set, by default.
pub const DEFAULT_KEYS_MAX_AGE: Duration = Duration::from_secs(300);

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct IssuerState {
    issuer: Arc<Issuer>,
    negotiator: Arc<Negotiator>,
    keys_max_age: Duration,
    operators: Option<Arc<mandate_verifier::Verifier>>,
    retention: Retention,
}

impl IssuerState {
    /// State around `issuer`; requests for more rights are kept in memory
    /// until [`IssuerState::with_requests`] says otherwise.
    pub fn new(issuer: Arc<Issuer>) -> IssuerState {
        let negotiator = Arc::new(Negotiator::new(
            Arc::clone(&issuer),
            Arc::new(MemoryRequestStore::new()),
            NegotiatorOptions::default(),
        ));
        IssuerState {
            issuer,
            negotiator,
            keys_max_age: DEFAULT_KEYS_MAX_AGE,
            operators: None,
            retention: Retention::default(),
        }
    }

    /// The same state keeping requests for more rights in `store`, decided
    /// under `options`.
    #[must_use]
    pub fn with_requests(
        mut self,
        store: Arc<dyn RequestStore>,
        options: NegotiatorOptions,
    ) -> IssuerState {
        self.negotiator = Arc::new(Negotiator::new(Arc::clone(&self.issuer), store, options));
        self
    }

    /// The negotiator of requests for more rights.
    pub fn negotiator(&self) -> &Arc<Negotiator> {
        &self.negotiator
    }

    /// Lets verifiers cache the published key set for `max_age`.
    #[must_use]
    pub fn with_keys_max_age(mut self, max_age: Duration) -> IssuerState {
        self.keys_max_age = max_age;
        self
    }

    /// Judges operators with `verifier` (a mandate granting `tasks:close`,
    /// `requests:approve` or `requests:deny`, with a proof; see
    /// [`operators`]); without it only agents, principals and approvers
    /// act here.
    #[must_use]
    pub fn with_operators(mut self, verifier: mandate_verifier::Verifier) -> IssuerState {
        self.operators = Some(Arc::new(verifier));
        self
    }

    /// Keeps closed tasks and settled requests for `retention`, then lets
    /// the sweeper prune them (default [`Retention::default`]).
    #[must_use]
    pub fn with_retention(mut self, retention: Retention) -> IssuerState {
        self.retention = retention;
        self
    }

    /// How long closed tasks and settled requests are kept.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// The issuer.
    pub fn issuer(&self) -> &Arc<Issuer> {
        &self.issuer
    }

    /// How long the published key set may be cached.
    pub fn keys_max_age(&self) -> Duration {
        self.keys_max_age
    }

    /// The verifier of operators' mandates, when configured.
    pub fn operators(&self) -> Option<&Arc<mandate_verifier::Verifier>> {
        self.operators.as_ref()
    }
}

/// The issuer's routes, to serve alone ([`routes`] plus `GET /healthz`).
pub fn router(state: IssuerState) -> Router {
    routes(state).route("/healthz", get(|| async { "ok" }))
}

/// The issuer's routes without a health check, to mount in a server that
/// has its own (`mandate serve --issuer-key`).
pub fn routes(state: IssuerState) -> Router {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route(keys::PATH, get(keys::published))
        .route("/oauth2/token", post(token::exchange))
        .route("/v1/tasks/{id}/refresh", post(tasks::refresh))
        .route("/v1/tasks/{id}/close", post(close::close))
        .merge(requests::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The authorization server metadata this issuer publishes.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Metadata {
    /// The identifier actor tokens name as `aud`.
    pub issuer: String,
    /// Path of the token endpoint.
    pub token_endpoint: String,
    /// Token exchange, and the approval grant that collects an exchange a
    /// person approved.
    pub grant_types_supported: Vec<String>,
    /// The token type issued.
    pub issued_token_types_supported: Vec<String>,
}

async fn metadata(State(state): State<IssuerState>) -> Json<Metadata> {
    Json(Metadata {
        issuer: state.issuer.options().issuer_id.clone(),
        token_endpoint: "/oauth2/token".into(),
        grant_types_supported: vec![token::GRANT_TYPE.into(), token::APPROVAL_GRANT_TYPE.into()],
        issued_token_types_supported: vec![crate::MANDATE_TOKEN_TYPE.into()],
    })
}

/// Closes overdue tasks every `every`, writing their revocations, and
/// expires requests nobody decided in time (ending the tasks exchanges left
/// waiting on them), until the returned task is aborted. It also prunes
/// closed tasks and settled requests past the state's [`Retention`], at
/// most every [`Retention::every`], in bounded batches ([`sweep`]).
///
/// Finding overdue requests reads the whole request store, so that part
/// runs at most once per tenth of a request's lifetime: a request nobody
/// reads ends at most that long after its expiry (one that is read ends
/// when it is read).
pub fn spawn_sweeper(state: &IssuerState, every: Duration) -> tokio::task::JoinHandle<()> {
    let issuer = Arc::clone(&state.issuer);
    let negotiator = Arc::clone(&state.negotiator);
    let requests_every = every.max(negotiator.options().request_ttl / 10);
    let retention = state.retention;
    let prune_every = retention.every(every);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut requests_swept: Option<tokio::time::Instant> = None;
        let mut pruned_at: Option<tokio::time::Instant> = None;
        // A run is not awaited, so a long one never delays closing overdue
        // tasks; the next starts only once it finished.
        let mut pruning: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            tick.tick().await;
            let idle = pruning.as_ref().is_none_or(|run| run.is_finished());
            if idle && pruned_at.is_none_or(|at| at.elapsed() >= prune_every) {
                pruned_at = Some(tokio::time::Instant::now());
                let (tasks, requests) = (Arc::clone(&issuer), Arc::clone(&negotiator));
                pruning = Some(tokio::task::spawn_blocking(move || {
                    prune(&tasks, &requests, retention, SystemTime::now())
                }));
            }
            if requests_swept.is_none_or(|at| at.elapsed() >= requests_every) {
                requests_swept = Some(tokio::time::Instant::now());
                let requests = Arc::clone(&negotiator);
                let expired = tokio::task::spawn_blocking(move || {
                    requests.expire_overdue(SystemTime::now(), 1000)
                })
                .await;
                if let Ok(Err(error)) = expired {
                    tracing::warn!(%error, "expiring overdue requests failed");
                }
            }
            let blocking = issuer.clone();
            let closed = tokio::task::spawn_blocking(move || {
                blocking.close_overdue(SystemTime::now(), 1000)
            })
            .await;
            let ids = match closed {
                Ok(Ok(ids)) => ids,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "closing overdue tasks failed");
                    continue;
                }
                Err(_) => continue,
            };
            for id in ids {
                // A failure is logged by `revoke`; the task stays closed.
                let _ = issuer.revoke(&id, "deadline").await;
            }
        }
    })
}

/// One pruning run (blocking): closed tasks, then settled requests, each
/// past its retention; failures and counts are logged.
fn prune(issuer: &Issuer, negotiator: &Negotiator, retention: Retention, now: SystemTime) {
    let mut pruned = Pruned::default();
    let cutoff = retention.tasks_cutoff(now, issuer.options().mandate_ttl);
    match sweep::prune_tasks(issuer.tasks().as_ref(), cutoff) {
        Ok(count) => pruned.tasks = count,
        Err(error) => tracing::warn!(%error, "pruning closed tasks failed"),
    }
    let cutoff = retention.requests_cutoff(now);
    match sweep::prune_requests(negotiator.store().as_ref(), cutoff) {
        Ok(count) => pruned.requests = count,
        Err(error) => tracing::warn!(%error, "pruning settled requests failed"),
    }
    if pruned != Pruned::default() {
        tracing::info!(
            tasks = pruned.tasks,
            requests = pruned.requests,
            "pruned closed tasks and settled requests past their retention"
        );
    }
}
