//! The issuer as a service: from [`IssuerSettings`] to a listening
//! [`Server`] (`mandate issuer serve`).
//!
//! Everything that can fail on configuration (root key, policy, task store,
//! revocation target, certificate, port) fails in [`bind_issuer`], before
//! anything is served. The issuer crate knows nothing of the registry: this
//! module supplies its [`TaskRevoker`], writing `task` revocations to a
//! registry over HTTP (with the operator mandate's proof) or to a local
//! revocation store.

pub mod audit;
pub mod config;

use std::sync::Arc;

use anyhow::{Context as _, Result};
use mandate_core::{KeySet, RootKey, SecretKey};
use mandate_issuer::idp::IdentityProviders;
use mandate_issuer::policy::IssuancePolicy;
use mandate_issuer::revoke::RevokeFuture;
use mandate_issuer::server::{router, spawn_sweeper, IssuerState};
use mandate_issuer::{
    Issuer, IssuerEvents, IssuerOptions, SledTaskStore, TaskRevoker, TaskStore, TracingEvents,
};
use mandate_registry::{
    IndexingStore, NewRevocation, RegistryAuth, RegistryClient, RevocationKind, RevocationStore,
    SharedIndex, SledStore,
};
use mandate_verifier::http::{method_not_allowed, not_found};

pub use self::config::{IdpEntryArg, IssuerConfig, IssuerSettings, RevocationTarget};
use crate::serve::Server;

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

/// Builds the [`Issuer`] `settings` describe (keys, policy, stores).
///
/// # Errors
/// Any setting that cannot be used.
pub fn build_issuer(settings: &IssuerSettings) -> Result<Issuer> {
    let audit = match &settings.audit {
        Some(audit) => Some(Arc::new(crate::audit::open(audit)?)),
        None => None,
    };
    Ok(assemble(settings, audit)?.0)
}

/// The issuer, writing to `audit` when given, and the index of the
/// revocations it writes to a store of its own (`None`: a registry's).
fn assemble(
    settings: &IssuerSettings,
    audit: Option<Arc<mandate_audit::AuditWriter>>,
) -> Result<(Issuer, Option<SharedIndex>)> {
    let secret = SecretKey::read(&settings.root_key)
        .with_context(|| format!("reading root key {}", settings.root_key.display()))?;
    let root = RootKey {
        secret,
        key_id: settings.root_key_id,
    };
    let policy = match &settings.policy {
        Some(path) => IssuancePolicy::from_file(path)?,
        None => IssuancePolicy::default_policy()?,
    };
    let tasks: Arc<dyn TaskStore> = Arc::new(
        SledTaskStore::open(&settings.store)
            .with_context(|| format!("opening task store {}", settings.store.display()))?,
    );
    let events: Arc<dyn IssuerEvents> = match audit {
        Some(writer) => Arc::new(self::audit::AuditedEvents::new(writer, Arc::clone(&tasks))),
        None => Arc::new(TracingEvents),
    };
    let mut index = None;
    let revoker: Arc<dyn TaskRevoker> = match &settings.revocations {
        RevocationTarget::Registry {
            url,
            auth,
            auth_key,
        } => {
            let auth = crate::registry_auth(auth, auth_key.as_deref())?;
            if !auth.is_keyed() {
                tracing::warn!("writing task revocations with a bearer operator mandate");
            }
            Arc::new(RegistryRevoker {
                client: RegistryClient::new(url)?,
                auth,
            })
        }
        RevocationTarget::Store(dir) => {
            // Indexed: readers of the issuer's audit trail are judged
            // against the revocations it writes.
            let store = IndexingStore::new(
                SledStore::open(dir)
                    .with_context(|| format!("opening revocation store {}", dir.display()))?,
            )?;
            index = Some(store.index());
            Arc::new(StoreRevoker {
                store: Arc::new(store),
            })
        }
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
    Ok((
        Issuer::new(root, idps, policy, tasks, revoker, events, options),
        index,
    ))
}

/// Loads everything and binds the port. Call inside a Tokio runtime (the
/// deadline sweeper starts here).
///
/// # Errors
/// Any setting that cannot be used.
pub async fn bind_issuer(settings: &IssuerSettings) -> Result<Server> {
    let audit = match &settings.audit {
        Some(audit) => Some(Arc::new(crate::audit::open(audit)?)),
        None => None,
    };
    let (issuer, index) = assemble(settings, audit.clone())?;
    // Readers of the trail present mandates under the issuer's own root.
    let mut root = KeySet::new();
    let (key_id, public) = issuer.root_public();
    root.insert(key_id, public);
    let issuer = Arc::new(issuer);
    spawn_sweeper(issuer.clone(), settings.sweep_interval);
    let mut app = router(IssuerState::new(issuer));
    let mut subscription = None;
    if let Some(writer) = &audit {
        let revocations = self::audit::ReaderRevocations::new(&settings.revocations, index)?;
        app = app.merge(self::audit::reader_routes(writer, root, &revocations)?);
        subscription = revocations.into_subscription();
    }
    let app = app
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    let tls = match &settings.tls {
        Some((cert, key)) => Some(crate::tls::load(cert, key).await?),
        None => None,
    };
    let listener = std::net::TcpListener::bind(settings.listen)
        .with_context(|| format!("listening on {}", settings.listen))?;
    listener.set_nonblocking(true)?;
    Ok(
        Server::from_parts(listener, app, tls, settings.shutdown_grace)?
            .with_audit(audit)
            .with_subscription(subscription),
    )
}
