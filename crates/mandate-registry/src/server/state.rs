//! The registry server's shared state: its configuration, the store, the live
//! broadcast and the open streams.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::StatusCode;
use mandate_verifier::http::ApiError;
use mandate_verifier::pool::EvalPool;
use rustc_hash::FxHashMap;
use tokio::sync::{broadcast, watch};

use super::authorizer::WriteAuthorizer;
use crate::entry::{NewRevocation, RevocationEntry};
use crate::error::{Error, Result};
use crate::store::RevocationStore;

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

/// Shared state of the registry server. Cheap to clone.
#[derive(Clone)]
pub struct RegistryState {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) store: Arc<dyn RevocationStore>,
    pub(super) authorizer: Arc<dyn WriteAuthorizer>,
    /// New entries, for open streams. Streams re-read the store when this lags.
    pub(super) events: broadcast::Sender<Arc<RevocationEntry>>,
    /// Connected stream subscribers.
    pub(super) subscribers: Mutex<Subscribers>,
    /// Set to `true` to end every open stream (shutdown).
    pub(super) stop_streams: watch::Sender<bool>,
    pub(super) config: RegistryConfig,
}

/// The open streams.
#[derive(Debug, Default)]
pub(super) struct Subscribers {
    /// Stream id → highest seq applied.
    pub(super) applied: FxHashMap<String, u64>,
    /// Open streams per client address group; `None` when the address is unknown.
    pub(super) per_peer: FxHashMap<Option<IpAddr>, usize>,
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

    /// Hands entries another process appended to the shared store to the open streams,
    /// as if appended here. Order and repeats do not matter: a stream sends each seq
    /// once, in order, filling any gap from the store.
    pub fn publish(&self, entries: &[RevocationEntry]) {
        for entry in entries {
            // No receivers just means no stream is open.
            let _receivers = self.inner.events.send(Arc::new(entry.clone()));
        }
    }

    /// Number of open streams.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers().applied.len()
    }

    /// The configuration in use (after clamping).
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// Flushes the store (the server does this on shutdown).
    ///
    /// # Errors
    /// [`Error::Storage`] when the flush fails.
    pub async fn flush(&self) -> Result<()> {
        self.blocking(|store| store.flush()).await
    }

    /// Whether the store would take a write now (readiness probes).
    ///
    /// # Errors
    /// [`Error::Storage`] when it would not.
    pub async fn check_writable(&self) -> Result<()> {
        self.blocking(|store| store.check_writable()).await
    }

    /// The newest entry's sequence number.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn current_seq(&self) -> Result<u64> {
        self.blocking(|store| store.current_seq()).await
    }

    /// Ends every open stream (their clients will reconnect elsewhere or later). [`serve`]
    /// calls this when its shutdown signal fires, since graceful shutdown waits for open
    /// responses and a stream never ends by itself.
    pub fn shutdown_streams(&self) {
        self.inner.stop_streams.send_replace(true);
    }

    pub(super) fn subscribers(&self) -> MutexGuard<'_, Subscribers> {
        // Every critical section on these maps completes its update before it can panic.
        self.inner
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a store call on the blocking pool: sled flushes to disk on every append. The
    /// call runs to completion even if the returned future is dropped.
    pub(super) async fn blocking<T, F>(&self, call: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&dyn RevocationStore) -> Result<T> + Send + 'static,
    {
        let store = Arc::clone(&self.inner.store);
        tokio::task::spawn_blocking(move || call(store.as_ref()))
            .await
            .map_err(|e| Error::storage("running a store call", e))?
    }

    pub(super) fn register_subscriber(
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
pub(super) struct SubscriberGuard {
    pub(super) state: RegistryState,
    pub(super) id: String,
    pub(super) peer: Option<IpAddr>,
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
pub(super) fn peer_group(addr: IpAddr) -> IpAddr {
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
pub(super) struct Peer(pub(super) Option<IpAddr>);

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
