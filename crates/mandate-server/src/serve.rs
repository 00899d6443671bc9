//! Composition: from validated [`Settings`] to a listening server.
//!
//! One process serves, on one port:
//! - the authorization API (`/v1/authorize`, and `/v1/ext_authz` when a
//!   mapping is configured), unless turned off;
//! - with a store: the revocation registry (`/v1/revocations...`), its index
//!   consulted in-process; with registry URLs: nothing of the registry, the
//!   index fed by a subscription to one of its replicas at a time, moving to
//!   the next when the one in use falls silent (`/readyz` and `/metrics` say
//!   which);
//! - with an `[issuer]` section (`--issuer-key`): the issuer's routes
//!   (`/oauth2/token`, `/v1/tasks/...`, `/.well-known/...`), closed tasks
//!   revoked in this process's store;
//! - the operations endpoints (`/healthz`, `/readyz`, `/metrics`,
//!   `/openapi.json`), which never touch the evaluation pool.
//!
//! The root keys are fixed (`--root-pub`, `--root-keys`), followed from an
//! issuer's published set (`--root-keys-url`, [`crate::key_follower`]), or,
//! when neither is given, those of the mounted issuer.
//!
//! [`bind`] does everything that can fail on configuration (keys, policy,
//! store, mapping, certificate, port) before anything is served, so a bad
//! setting is an error at start, never a half-started server. [`Server::run`]
//! serves until the shutdown future resolves (SIGTERM or Ctrl-C in the
//! binary), then stops accepting, ends revocation streams so subscribers move
//! on, lets in-flight requests finish within the grace period and flushes the
//! store.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use axum::Router;
use mandate_core::{KeySet, SecretKey};
use mandate_registry::{
    MandateWriteAuthorizer, RegistryAuth, RegistryClient, RegistryConfig, RegistryState,
    ReplicaSet, RevocationStore, SharedIndex, SubscribeOptions,
};
use mandate_verifier::http::{method_not_allowed, not_found, AuthzState, DecisionRecorder};
use mandate_verifier::pool::EvalPool;
use mandate_verifier::{Policy, SharedKeySet, Verifier, VerifierBuilder};

use crate::audit::AuditRecorder;
use crate::audit_api::AuditApiState;
use crate::config::{Settings, Source};
use crate::key_follower::KeyFollower;
use crate::ops::{self, OpsState};
use crate::server::Server;

/// The trusted roots of `settings`.
///
/// # Errors
/// A key that cannot be read, or no key at all.
pub fn root_keys(keys: &[String], key_set: Option<&Path>) -> Result<KeySet> {
    let mut set = match key_set {
        Some(path) => KeySet::read_file(path)?,
        None => KeySet::new(),
    };
    for key in keys {
        set.add_arg(key)?;
    }
    if set.is_empty() {
        bail!("no trusted root key: give --root-pub KEY or --root-keys FILE");
    }
    Ok(set)
}

/// Registry credentials: a mandate (`TOKEN` or `@FILE`) and, when given, its
/// holder's key, so each request carries a fresh proof.
///
/// # Errors
/// A file that cannot be read, or a key that is not a private key.
pub fn registry_auth(token: &str, key: Option<&Path>) -> Result<RegistryAuth> {
    let token = read_token_arg(token)?;
    Ok(match key {
        Some(path) => RegistryAuth::keyed(token, SecretKey::read(path)?)?,
        None => RegistryAuth::bearer(token),
    })
}

/// A token given as text or as `@FILE`.
fn read_token_arg(arg: &str) -> Result<String> {
    match arg.strip_prefix('@') {
        Some(path) => Ok(std::fs::File::open(path)
            .and_then(mandate_core::read_token_text)
            .with_context(|| format!("reading token file {path}"))?
            .trim()
            .to_owned()),
        None => Ok(arg.trim().to_owned()),
    }
}

/// The verifier that authorizes registry writes and reads: the same roots, the
/// registry's own revocation state (a revoked operator can neither write nor
/// lift its own revocation), keyed operator mandates unless bearer writes are
/// allowed.
fn write_authorizer(
    keys: SharedKeySet,
    index: SharedIndex,
    require_pop: bool,
    allow_bearer_writes: bool,
) -> Result<MandateWriteAuthorizer> {
    // Writes change state: a proof captured before a restart is not taken.
    let builder = Verifier::builder()
        .shared_root_keys(keys)
        .require_pop(require_pop)
        .refuse_proofs_from_before_start(true)
        .revocation(Arc::new(index));
    Ok(if allow_bearer_writes {
        MandateWriteAuthorizer::allowing_bearer_writes(builder)?
    } else {
        MandateWriteAuthorizer::new(builder)?
    })
}

/// The verifier of the authorization API.
fn authz_builder(settings: &Settings, keys: SharedKeySet) -> Result<VerifierBuilder> {
    let mut builder = Verifier::builder()
        .shared_root_keys(keys)
        .require_pop(settings.require_pop)
        .pop_window(settings.pop_window);
    if let Some(path) = &settings.policy {
        builder = builder.policy(Policy::from_file(path)?);
    }
    Ok(builder)
}

/// Loads everything `settings` names and binds the port. Call inside a Tokio
/// runtime (a subscription starts here).
///
/// # Errors
/// Any setting that cannot be used: keys, policy, store, certificate, port.
pub async fn bind(settings: &Settings) -> Result<Server> {
    crate::metrics::install();
    let workers = settings
        .eval_workers
        .unwrap_or_else(EvalPool::default_workers);
    let pool = match settings.eval_queue {
        Some(queue) => EvalPool::with_queue(workers, queue, settings.eval_deadline),
        None => EvalPool::new(workers, settings.eval_deadline),
    };
    let audit = match &settings.audit {
        Some(audit) => Some(Arc::new(crate::audit::open(audit)?)),
        None => None,
    };
    let mut subscription = None;
    let mut local_store = None;
    let mut shared_store = None;
    let (index, store) = match &settings.source {
        Source::Store(location) => {
            let opened =
                crate::revocation_store::open(location, audit.as_ref(), settings.staleness)?;
            let store: Arc<dyn RevocationStore> = opened.store.clone();
            let index = opened.store.index();
            local_store = Some(Arc::clone(&store));
            shared_store = Some(opened);
            (index, Some(store))
        }
        Source::Registry {
            urls,
            auth,
            auth_key,
        } => {
            let index = SharedIndex::new(settings.staleness);
            let mut clients = Vec::with_capacity(urls.len());
            for url in urls {
                // Each replica gets its own credentials: a keyed mandate signs
                // a fresh proof per request whichever replica it goes to.
                clients.push(
                    RegistryClient::new(url)?.with_auth(registry_auth(auth, auth_key.as_deref())?),
                );
            }
            let replicas = ReplicaSet::new(clients)?;
            subscription = Some(replicas.subscribe(
                index.clone(),
                SubscribeOptions::for_staleness(settings.staleness),
            ));
            (index, None)
        }
    };
    let mut app = Router::new();
    // The issuer, when mounted, revokes closed tasks in this store and
    // judges operators under this revocation state.
    let mounted = match &settings.issuer {
        Some(issuer) => {
            let (issuer, routes) = crate::issuer::issuer_routes(
                issuer,
                local_store,
                Some(Arc::new(index.clone()) as Arc<dyn mandate_verifier::RevocationCheck>),
            )?;
            app = app.merge(routes);
            Some(issuer)
        }
        None => None,
    };
    let mut follower = None;
    let keys = if let Some(url) = &settings.root_keys_url {
        let keys = SharedKeySet::empty();
        let following = KeyFollower::new(url, keys.clone())?;
        follower = Some(following);
        keys
    } else if !settings.root_keys.is_empty() || settings.root_key_set.is_some() {
        SharedKeySet::new(root_keys(
            &settings.root_keys,
            settings.root_key_set.as_deref(),
        )?)
    } else if let Some(issuer) = &mounted {
        issuer.signing_keys().shared()
    } else {
        bail!("no trusted root key: give --root-pub KEY, --root-keys FILE or --root-keys-url URL");
    };
    let registry = match store {
        Some(store) => {
            let writes = write_authorizer(
                keys.clone(),
                index.clone(),
                settings.require_pop,
                settings.allow_bearer_writes,
            )?;
            let config = RegistryConfig {
                heartbeat_interval: settings.heartbeat,
                eval_pool: pool.clone(),
                shutdown_grace: settings.shutdown_grace,
                ..RegistryConfig::default()
            };
            Some(RegistryState::with_config(store, Arc::new(writes), config))
        }
        None => None,
    };
    // Another replica's appends reach this one's index and streams.
    let change_listener = match &shared_store {
        Some(opened) => {
            let tick = settings.heartbeat.min(settings.staleness / 3);
            opened.follow(registry.clone(), tick)?
        }
        None => None,
    };
    let builder = authz_builder(settings, keys.clone())?;
    let mut authz_verifier = None;
    if settings.authorize {
        // The proxy's routes load before the port is bound: a bad file stops start-up.
        let mapping = match &settings.ext_authz_mapping {
            Some(path) => Some(mandate_verifier::mapping::Mapping::from_file(path)?),
            None => None,
        };
        let verifier = builder.revocation(Arc::new(index.clone())).build()?;
        let recorder = match (&audit, &settings.audit) {
            (Some(writer), Some(audit)) => Some(Arc::new(AuditRecorder::new(
                Arc::clone(writer),
                audit.verifier_id.clone(),
                index.clone(),
            )) as Arc<dyn DecisionRecorder>),
            _ => None,
        };
        if let Some(mapping) = mapping {
            // One verifier for both endpoints (a clone shares the replay cache):
            // a proof spent on one is spent on both.
            let mut ext = mandate_verifier::http::ExtAuthzState::new(
                Arc::new(verifier.clone()),
                pool.clone(),
                mapping,
            );
            if let Some(recorder) = &recorder {
                ext = ext.with_recorder(Arc::clone(recorder));
            }
            app = app.merge(mandate_verifier::http::ext_authz_router(ext));
        }
        authz_verifier = Some(verifier.clone());
        let mut state = AuthzState::with_pool(verifier, pool.clone());
        if let Some(recorder) = recorder {
            state = state.with_recorder(recorder);
        }
        app = app.merge(mandate_verifier::http::routes(state));
    }
    if let Some(writer) = &audit {
        // Reading the trail needs audit:read under the default policy, from
        // the same roots, subject to the same revocations.
        let readers = Verifier::builder()
            .shared_root_keys(keys.clone())
            .require_pop(settings.require_pop)
            .pop_window(settings.pop_window)
            .revocation(Arc::new(index.clone()))
            .build()?;
        let state = AuditApiState::of_writer(writer, readers, pool.clone());
        app = app.merge(crate::audit_api::router(state));
    }
    if let Some(state) = &registry {
        app = app.merge(mandate_registry::routes(state.clone()));
    }
    let mut ops = OpsState::new(index, registry.clone(), pool, keys, settings.authorize)
        .with_audit(audit.clone())
        .with_document(crate::openapi::document());
    if let Some(following) = &follower {
        ops = ops.with_follower(following.status());
    }
    if let Some(subscription) = &subscription {
        ops = ops.with_replicas(subscription.status());
    }
    if let Some(verifier) = authz_verifier {
        ops = ops.with_verifier(verifier);
    }
    let app = app
        .merge(ops::router(ops))
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
    let address = listener.local_addr()?;
    // Fetching starts once everything else is in place: a set that never
    // loads makes the server not ready, never a failed start.
    let follower = follower.map(KeyFollower::spawn);
    Ok(Server {
        listener,
        address,
        app,
        registry,
        tls,
        grace: settings.shutdown_grace,
        audit,
        _subscription: subscription,
        _follower: follower,
        _listener: change_listener,
    })
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM; the handlers are
/// installed by this call, so call it before announcing the address.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    mandate_registry::shutdown_signal()
}
