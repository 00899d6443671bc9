//! The issuer as a service: from [`IssuerSettings`] to a listening
//! [`Server`] (`mandate issuer serve`), or to routes mounted in `mandate
//! serve` ([`issuer_routes`]).
//!
//! Everything that can fail on configuration (root key, policy, task store,
//! revocation target, certificate, port) fails in [`bind_issuer`], before
//! anything is served. The issuer crate knows nothing of the registry: this
//! module supplies its [`TaskRevoker`], writing `task` revocations to a
//! registry over HTTP (with the operator mandate's proof) or to a local
//! revocation store, and the revocation state it judges mandates under
//! ([`revocations`]: the same registry or store, read back; or, mounted,
//! the server's own).

pub mod audit;
pub mod config;
pub mod requests;
pub mod revocations;
pub mod stores;

use std::sync::Arc;

use anyhow::bail;
use anyhow::{Context as _, Result};
use axum::Router;
use mandate_core::{RootKey, SecretKey};
use mandate_issuer::idp::IdentityProviders;
use mandate_issuer::keyring::KeyDir;
use mandate_issuer::policy::IssuancePolicy;
use mandate_issuer::revoke::RevokeFuture;
use mandate_issuer::server::{routes, spawn_sweeper, IssuerState};
use mandate_issuer::{
    Issuer, IssuerEvents, IssuerOptions, SigningKeys, TaskRevoker, TaskStore, TracingEvents,
};
use mandate_registry::{
    NewRevocation, RegistryAuth, RegistryClient, RevocationKind, RevocationStore,
};
use mandate_verifier::http::{method_not_allowed, not_found};
use mandate_verifier::pool::EvalPool;
use mandate_verifier::{RevocationCheck, Verifier};

pub use self::config::{IdpEntryArg, IssuerConfig, IssuerKeys, IssuerSettings, RevocationTarget};
use self::revocations::IssuerRevocations;
use crate::ops::OpsState;
use crate::server::Server;

/// How long a mandate judged on the evaluation pool (an audit reader's)
/// waits for a worker.
const EVAL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// Who task revocations are written by, in the registry's log.
const REVOKED_BY: &str = "mandate-issuer";

/// Writes task revocations to a registry over HTTP.
struct RegistryRevoker {
    client: RegistryClient,
    auth: RegistryAuth,
}

impl TaskRevoker for RegistryRevoker {
    fn revoke_task<'a>(&'a self, task: &'a str, reason: &'a str) -> RevokeFuture<'a> {
        Box::pin(async move {
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                match self
                    .client
                    .revoke(&self.auth, RevocationKind::Task, task, reason)
                    .await
                {
                    Ok(_) => return Ok(()),
                    Err(mandate_registry::Error::Api { status: 503, .. }) if attempt < 3 => {
                        tokio::time::sleep(std::time::Duration::from_millis(
                            200 * u64::from(attempt),
                        ))
                        .await;
                    }
                    Err(error) => return Err(error.to_string()),
                }
            }
        })
    }
}

/// Writes task revocations to a revocation store this process holds.
struct StoreRevoker {
    store: Arc<dyn RevocationStore>,
}

impl TaskRevoker for StoreRevoker {
    fn revoke_task<'a>(&'a self, task: &'a str, reason: &'a str) -> RevokeFuture<'a> {
        let store = self.store.clone();
        let entry = NewRevocation::revoke(RevocationKind::Task, task, reason, REVOKED_BY);
        Box::pin(async move {
            let entry = entry.map_err(|e| e.to_string())?;
            tokio::task::spawn_blocking(move || store.append(entry))
                .await
                .map_err(|e| e.to_string())?
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

/// The root keys `settings` name: one key file, or a key folder.
///
/// # Errors
/// A key that cannot be read, or a folder with no key that may sign now.
fn signing_keys(keys: &IssuerKeys) -> Result<SigningKeys> {
    Ok(match keys {
        IssuerKeys::File { path, key_id } => SigningKeys::fixed(RootKey {
            secret: SecretKey::read(path)
                .with_context(|| format!("reading root key {}", path.display()))?,
            key_id: *key_id,
        }),
        IssuerKeys::Dir(dir) => {
            SigningKeys::from_dir(KeyDir::new(dir), std::time::SystemTime::now())
                .with_context(|| format!("reading the root key folder {}", dir.display()))?
        }
    })
}

/// Builds the [`Issuer`] `settings` describe (keys, policy, stores).
///
/// # Errors
/// Any setting that cannot be used.
pub fn build_issuer(settings: &IssuerSettings) -> Result<Issuer> {
    build_issuer_with(settings, None)
}

/// As [`build_issuer`]; `local` is the revocation store of the server the
/// issuer is mounted in ([`RevocationTarget::Local`]).
///
/// # Errors
/// Any setting that cannot be used.
pub fn build_issuer_with(
    settings: &IssuerSettings,
    local: Option<Arc<dyn RevocationStore>>,
) -> Result<Issuer> {
    let audit = match &settings.audit {
        Some(audit) => Some(Arc::new(crate::audit::open(audit)?)),
        None => None,
    };
    let local = match settings.revocations {
        RevocationTarget::Local => local,
        _ => None,
    };
    assemble(settings, local, audit)
}

/// The issuer, writing to `audit` when given and revoking closed tasks in
/// `store` when given (the store it opened, or the server's it is mounted
/// in), else where its settings say.
fn assemble(
    settings: &IssuerSettings,
    store: Option<Arc<dyn RevocationStore>>,
    audit: Option<Arc<mandate_audit::AuditWriter>>,
) -> Result<Issuer> {
    let keys = signing_keys(&settings.keys)?;
    let policy = match &settings.policy {
        Some(path) => IssuancePolicy::from_file(path)?,
        None => IssuancePolicy::default_policy()?,
    };
    let tasks: Arc<dyn TaskStore> = self::stores::open_tasks(&settings.store)?;
    let events: Arc<dyn IssuerEvents> = match audit {
        Some(writer) => Arc::new(self::audit::AuditedEvents::new(writer, Arc::clone(&tasks))),
        None => Arc::new(TracingEvents),
    };
    let revoker: Arc<dyn TaskRevoker> = match (&settings.revocations, store) {
        (
            RevocationTarget::Registry {
                url,
                auth,
                auth_key,
            },
            _,
        ) => {
            let auth = crate::registry_auth(auth, auth_key.as_deref())?;
            if !auth.is_keyed() {
                tracing::warn!("writing task revocations with a bearer operator mandate");
            }
            Arc::new(RegistryRevoker {
                client: RegistryClient::new(url)?,
                auth,
            })
        }
        (_, Some(store)) => Arc::new(StoreRevoker { store }),
        (RevocationTarget::Store(location), None) => {
            // Written to only: nothing in this process reads its index.
            let opened = crate::revocation_store::open(location, None, settings.staleness)?;
            Arc::new(StoreRevoker {
                store: opened.store,
            })
        }
        (RevocationTarget::Local, None) => bail!(
            "issuer.revocations: this server holds no revocation store; \
             give the issuer a registry to revoke closed tasks at"
        ),
    };
    let idps = IdentityProviders::new(
        settings.idps.clone(),
        settings.skew,
        std::time::Duration::from_secs(300),
        std::time::Duration::from_secs(1),
    );
    let mut options = IssuerOptions::new(settings.id.clone());
    options.mandate_ttl = settings.mandate_ttl;
    options.default_task_ttl = settings.default_task_ttl;
    options.max_task_ttl = settings.max_task_ttl;
    options.skew = settings.skew;
    Ok(Issuer::new(
        keys, idps, policy, tasks, revoker, events, options,
    ))
}

/// The issuer's routes around `issuer`: token exchange, tasks, metadata and
/// the published key set. Operators close tasks with a mandate granting
/// `tasks:close` under the issuer's own roots, checked against `revocation`
/// when given (a mounted issuer shares the server's revocation state).
///
/// # Errors
/// The operators' verifier cannot be built, or the request store opened.
pub fn issuer_state(
    settings: &IssuerSettings,
    issuer: Arc<Issuer>,
    revocation: Option<Arc<dyn RevocationCheck>>,
) -> Result<IssuerState> {
    // Operators' decisions change state: a proof captured before a restart
    // is not taken.
    let mut operators = Verifier::builder()
        .shared_root_keys(issuer.signing_keys().shared())
        .require_pop(true)
        .refuse_proofs_from_before_start(true);
    if let Some(check) = revocation {
        operators = operators.revocation(check);
    }
    let state = IssuerState::new(issuer)
        .with_keys_max_age(settings.keys_max_age)
        .with_retention(settings.retention)
        .with_operators(operators.build()?);
    self::requests::with_requests(state, settings)
}

/// The issuer mounted in another server: its routes (no `/healthz`, which
/// the server has) with the deadline sweeper started. Call inside a Tokio
/// runtime.
///
/// # Errors
/// Any setting that cannot be used.
pub fn issuer_routes(
    settings: &IssuerSettings,
    local: Option<Arc<dyn RevocationStore>>,
    revocation: Option<Arc<dyn RevocationCheck>>,
) -> Result<(Arc<Issuer>, Router)> {
    let mut issuer = build_issuer_with(settings, local)?;
    if let Some(check) = &revocation {
        issuer = issuer.with_revocations(Arc::clone(check));
    }
    let issuer = Arc::new(issuer);
    let state = issuer_state(settings, issuer.clone(), revocation)?;
    spawn_sweeper(&state, settings.sweep_interval);
    spawn_key_watch(issuer.clone());
    Ok((issuer, routes(state)))
}

/// How often the key folder is looked at for verifiers in this process.
const KEY_WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Keeps the issuer's trusted set current for the verifiers sharing it
/// (operators', and a mounted server's own) while nothing is minted: one
/// `stat` of the key folder's manifest a second, on a blocking thread.
fn spawn_key_watch(issuer: Arc<Issuer>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(KEY_WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let watched = issuer.clone();
            let _ = tokio::task::spawn_blocking(move || {
                watched
                    .signing_keys()
                    .refresh_trusted(std::time::SystemTime::now());
            })
            .await;
        }
    });
}

/// Loads everything and binds the port. Call inside a Tokio runtime (the
/// deadline sweeper and the revocation subscription start here).
///
/// Besides the issuer's routes the port serves `/healthz`, `/readyz` (the
/// revocation state fresh, root keys loaded, the audit log writable),
/// `/metrics` and, with an audit trail, `GET /v1/audit`.
///
/// # Errors
/// Any setting that cannot be used.
pub async fn bind_issuer(settings: &IssuerSettings) -> Result<Server> {
    crate::metrics::install();
    let audit = match &settings.audit {
        Some(audit) => Some(Arc::new(crate::audit::open(audit)?)),
        None => None,
    };
    let revocations = IssuerRevocations::open(&settings.revocations, settings.staleness)?;
    let issuer = assemble(settings, revocations.store(), audit.clone())?
        .with_revocations(revocations.check());
    let issuer = Arc::new(issuer);
    let state = issuer_state(settings, issuer.clone(), Some(revocations.check()))?;
    spawn_sweeper(&state, settings.sweep_interval);
    spawn_key_watch(issuer.clone());
    // Readers of the trail and operators present mandates under the
    // issuer's own roots.
    let root = issuer.signing_keys().shared();
    let pool = EvalPool::new(EvalPool::default_workers(), EVAL_DEADLINE);
    let mut app = routes(state);
    if let Some(writer) = &audit {
        app = app.merge(self::audit::reader_routes(
            writer,
            root.clone(),
            revocations.index(),
            pool.clone(),
        )?);
    }
    let mut ops = OpsState::new(revocations.index().clone(), None, pool, root, false)
        .with_audit(audit.clone());
    if let Some(replicas) = revocations.replicas() {
        ops = ops.with_replicas(replicas);
    }
    let app = app
        .merge(crate::ops::router(ops))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(crate::metrics::track_requests));
    let tls = match &settings.tls {
        Some((cert, key)) => Some(crate::tls::load(cert, key).await?),
        None => None,
    };
    let listener = std::net::TcpListener::bind(settings.listen)
        .with_context(|| format!("listening on {}", settings.listen))?;
    listener.set_nonblocking(true)?;
    let (subscription, store_listener) = revocations.into_running();
    Ok(
        Server::from_parts(listener, app, tls, settings.shutdown_grace)?
            .with_audit(audit)
            .with_subscription(subscription)
            .with_listener(store_listener),
    )
}
