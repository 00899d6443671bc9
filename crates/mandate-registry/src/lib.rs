//! The Mandate revocation registry: an append-only log of revocations, the in-memory index
//! verifiers check on every call, an HTTP API to write, list and stream the log, and a
//! client that keeps a verifier's index current.
//!
//! An operator revokes a token (by a block's revocation id, which also revokes everything
//! delegated from it), a task, an agent or a principal; the entry is durable before the
//! write is acknowledged, and every subscribed verifier receives it over a Server-Sent
//! Events stream. Verifiers fail closed: an index that has not heard from the registry
//! within its staleness bound denies every call ([`Denied::Stale`]).
//!
//! Every log has an *epoch*, a random id created with its store and sent with every read.
//! Sequence numbers only count within one epoch, so a subscriber never resumes a
//! different log from its last seq: when the registry comes back on another (wiped,
//! replaced, older) store, the subscriber's index is reset, denies every call as stale,
//! and is rebuilt from seq 0.
//!
//! This crate must never: drop or reorder a log entry on its way to an index; apply an
//! entry of one log on top of another log's entries; expose a
//! storage backend type (sled) in a public signature; log a bearer token (only its
//! fingerprint); or send internal error details to an HTTP client. It knows tokens only as
//! plain data ([`Subject`]); verifying them is the verifier crate's job, which it
//! reaches only through [`MandateWriteAuthorizer`] and the `RevocationCheck` impl.
//!
//! **Propagation bound.** A connected verifier applies a new entry as soon as the stream
//! delivers it. A verifier that lost its stream keeps allowing calls only until its last
//! heartbeat is older than its staleness bound, so every verifier denies a revoked token
//! no later than `staleness_bound` after the revocation was acknowledged. Choose the
//! bound above the registry's heartbeat interval ([`RegistryConfig::heartbeat_interval`],
//! 1 s by default), for example 3 s.
//!
//! **Replicas.** Several registry processes may serve one shared log (one store, one
//! epoch, one sequence). A verifier given all of them ([`ReplicaSet`]) follows one at a
//! time and moves to the next when it stops hearing heartbeats, resuming after its last
//! applied seq; the staleness rule is unchanged, so it denies every call once no replica
//! has confirmed its index within the bound. [`SubscribeOptions::for_staleness`] leaves
//! a silent replica at half the bound, so a failover normally costs no staleness at all.
//!
//! A verifier keeps its index current like this:
//!
//! ```no_run
//! # async fn demo() -> mandate_registry::Result<()> {
//! use std::time::{Duration, Instant};
//! use mandate_registry::{
//!     AgentRef, RegistryAuth, RegistryClient, SharedIndex, Subject, SubscribeOptions,
//! };
//!
//! let index = SharedIndex::new(Duration::from_secs(3));
//! // A mandate granting `registry:read` (here a bearer one; a keyed one adds its key).
//! let client = RegistryClient::new("http://127.0.0.1:7700")?
//!     .with_auth(RegistryAuth::bearer("<read mandate>"));
//! let _subscription = client.subscribe(index.clone(), SubscribeOptions::default());
//!
//! // Per call, from the verified token:
//! let revocation_ids: Vec<Vec<u8>> = Vec::new(); // biscuit.revocation_identifiers()
//! let agents = [AgentRef { name: "orchestrator", public_key: "ed25519/..." }];
//! let subject = Subject { revocation_ids: &revocation_ids, principal: "bob", task: "q3", agents: &agents };
//! if let Err(denied) = index.check(&subject, Instant::now()) {
//!     eprintln!("deny: {denied}");
//! }
//! # Ok(())
//! # }
//! ```

mod api;
mod change_counter;
mod changes;
mod client;
mod confirm;
mod entry;
mod error;
mod index;
mod kind;
mod mandate;
mod replicas;
mod server;
mod store;
mod subscription;
mod value_table;

#[cfg(feature = "testing")]
pub mod contract;

pub use api::{
    events, AckRequest, ErrorBody, ErrorDetail, Heartbeat, Hello, ListPage, RegistryStatus,
    RevokeRequest,
};
pub use client::{RegistryAuth, RegistryClient};
pub use confirm::{write_confirmed, Applied, Confirmed, WriteKind};
pub use entry::{
    NewRevocation, RevocationEntry, MAX_ACTOR_LEN, MAX_REASON_LEN, MAX_TOKEN_ID_BYTES,
    MAX_VALUE_LEN,
};
pub use error::{BoxError, Error, Result};
pub use index::{AgentRef, Denied, RevocationIndex, Revoked, SharedIndex, Subject};
pub use kind::{RevocationKind, UnknownKind};
pub use mandate::{
    registry_request, Access, MandateWriteAuthorizer, ATTR_BODY_SHA256, ATTR_HTTP_METHOD,
    ATTR_HTTP_PATH, READ_OPERATION, WRITE_OPERATION, WRITE_RESOURCE, WRITE_SERVICE,
};
pub use replicas::{ReplicaReport, ReplicaSet, ReplicaStatus, MAX_REPLICAS};
pub use server::{
    openapi, router, routes, serve, serve_app, shutdown_signal, ClientLimits, GuardedAcceptor,
    GuardedStream, HttpBinding, RegistryConfig, RegistryState, WriteAuthorizer, WriteDenied,
    BODY_TIMEOUT_ENV, DEFAULT_LIST_LIMIT, HEADER_TIMEOUT_ENV, MAX_BODY_BYTES, MAX_CONNECTIONS_ENV,
    MAX_LIST_LIMIT, MAX_PER_ADDRESS_ENV, POP_HEADER,
};
pub use store::{
    entries_after, load_index, IndexingStore, MemoryStore, RevocationStore, SledStore,
};
pub use subscription::{SubscribeOptions, Subscription};
