//! The revocation state a standalone issuer (`mandate issuer serve`) judges
//! mandates under: operators' (closing tasks, deciding requests, reading the
//! audit trail) and agents' before it mints again
//! ([`mandate_issuer::Issuer::with_revocations`]).
//!
//! It is read from where the issuer writes its task revocations, built the
//! way `mandate serve` builds its own:
//! - a registry URL: a subscription to it
//!   ([`SubscribeOptions::for_staleness`]), the index stale when the registry
//!   confirmed nothing within the staleness bound. The issuer's registry
//!   mandate must then grant `registry:read` as well as `registry:revoke`;
//!   until it does, the state stays stale.
//! - a store: that store's own index ([`crate::revocation_store::open`]); a
//!   PostgreSQL store shared with registry replicas is followed for their
//!   appends and goes stale when it cannot be read within the bound.
//!
//! Stale means refuse: operators are answered 503 and `/readyz` says why. A
//! mounted issuer has none of this: it shares the state of the server it is
//! mounted in.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use mandate_postgres::revocations::ChangeListener;
use mandate_registry::{
    RegistryClient, ReplicaStatus, RevocationStore, SharedIndex, SubscribeOptions, Subscription,
};
use mandate_verifier::RevocationCheck;

use super::config::RevocationTarget;

/// Longest wait between two reads of a shared store when nothing notifies
/// (the registry's default heartbeat).
const STORE_TICK: Duration = Duration::from_secs(1);

/// The revocation state of a standalone issuer, and what keeps it current.
pub struct IssuerRevocations {
    index: SharedIndex,
    /// The store task revocations are written to, when the issuer holds one.
    store: Option<Arc<dyn RevocationStore>>,
    subscription: Option<Subscription>,
    listener: Option<ChangeListener>,
}

impl std::fmt::Debug for IssuerRevocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerRevocations")
            .field("last_seq", &self.index.last_seq())
            .field("store", &self.store.is_some())
            .field("subscribed", &self.subscription.is_some())
            .finish_non_exhaustive()
    }
}

impl IssuerRevocations {
    /// Opens the state `target` names, stale after `staleness` without
    /// confirmation. Call inside a Tokio runtime (a subscription starts here).
    ///
    /// # Errors
    /// Registry credentials that cannot be read, a store that cannot be
    /// opened, or a target this process does not hold (a mounted issuer's).
    pub fn open(target: &RevocationTarget, staleness: Duration) -> Result<IssuerRevocations> {
        match target {
            RevocationTarget::Registry {
                url,
                auth,
                auth_key,
            } => {
                let index = SharedIndex::new(staleness);
                let client = RegistryClient::new(url)?
                    .with_auth(crate::registry_auth(auth, auth_key.as_deref())?);
                let subscription =
                    client.subscribe(index.clone(), SubscribeOptions::for_staleness(staleness));
                Ok(IssuerRevocations {
                    index,
                    store: None,
                    subscription: Some(subscription),
                    listener: None,
                })
            }
            RevocationTarget::Store(location) => {
                let opened = crate::revocation_store::open(location, None, staleness)?;
                let listener = opened.follow(None, STORE_TICK.min(staleness / 3))?;
                let index = opened.store.index();
                let store: Arc<dyn RevocationStore> = opened.store;
                Ok(IssuerRevocations {
                    index,
                    store: Some(store),
                    subscription: None,
                    listener,
                })
            }
            RevocationTarget::Local => {
                bail!(
                    "an issuer mounted in a server judges mandates under that server's revocations"
                )
            }
        }
    }

    /// The index every check reads.
    pub fn index(&self) -> &SharedIndex {
        &self.index
    }

    /// The index as the verifiers' and the issuer's revocation check.
    pub fn check(&self) -> Arc<dyn RevocationCheck> {
        Arc::new(self.index.clone())
    }

    /// The store task revocations are written to, when this process holds it.
    pub fn store(&self) -> Option<Arc<dyn RevocationStore>> {
        self.store.clone()
    }

    /// Which registry the state comes from, when subscribed.
    pub fn replicas(&self) -> Option<ReplicaStatus> {
        self.subscription.as_ref().map(Subscription::status)
    }

    /// What must keep running for as long as the server: the subscription,
    /// or the shared store's listener.
    pub fn into_running(self) -> (Option<Subscription>, Option<ChangeListener>) {
        (self.subscription, self.listener)
    }
}
