//! Request and response bodies of the registry's HTTP API, shared by server and client.
//!
//! Only this crate knows the wire format; other crates use [`crate::RegistryClient`] or
//! [`crate::router`]. Every error response has the shape
//! `{"error": {"code": "...", "message": "..."}}` ([`ErrorBody`]).
//!
//! Every read names the log it comes from with the store's `epoch` (a random id created
//! with the store, see [`crate::RevocationStore::epoch`]). Sequence numbers only mean
//! something within one epoch: a subscriber that resumes "after seq N" must first check
//! that the registry still serves the log its N came from.
//!
//! Endpoints (all JSON unless noted):
//! - `POST /v1/revocations` — body [`RevokeRequest`], `Authorization: Bearer <token>`;
//!   201 with the new [`crate::RevocationEntry`].
//! - `POST /v1/revocations/lift` — same body, `principal` or `agent` only; 201 with the
//!   lift entry.
//! - `GET /v1/revocations?after=SEQ&limit=N` — [`ListPage`]; `limit` is 1..=1000,
//!   default 100.
//! - `GET /v1/revocations/stream?after=SEQ` — Server-Sent Events: one `hello`
//!   ([`Hello`], carrying the epoch), then `revocation` events (data: an entry, `id`: its seq) for everything
//!   after `SEQ`, then a `heartbeat` ([`Heartbeat`]) and live entries as they are written,
//!   with a heartbeat at the configured interval. Without `after`, the `Last-Event-ID`
//!   header is used, else 0. 409 `ahead_of_registry` when `SEQ` is beyond the newest
//!   entry; 503 when the registry's stream limit, or the limit per client address, is
//!   reached. A stream whose client stops reading is closed after a send timeout.
//! - `POST /v1/subscribers/ack` — body [`AckRequest`]; 204. A subscriber reports the
//!   highest seq it has applied.
//! - `GET /v1/status?seq=N` — [`RegistryStatus`]; `applied_by` counts connected
//!   subscribers that have applied `N` (default: the current seq).

use serde::{Deserialize, Serialize};

use crate::entry::RevocationEntry;
use crate::kind::RevocationKind;

/// Body of `POST /v1/revocations` and `POST /v1/revocations/lift`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// What to revoke.
    pub kind: RevocationKind,
    /// The value to revoke.
    pub value: String,
    /// Optional free-text reason.
    #[serde(default)]
    pub reason: String,
}

/// One page of `GET /v1/revocations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ListPage {
    /// Entries with `seq > after`, in order.
    pub entries: Vec<RevocationEntry>,
    /// The `after` to ask for next: the last returned seq, or the request's `after`.
    pub next_after: u64,
    /// The newest seq in the log when the page was read.
    pub current_seq: u64,
    /// The epoch of the log the entries come from.
    pub epoch: String,
}

/// Body of `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RegistryStatus {
    /// The newest seq in the log.
    pub current_seq: u64,
    /// The epoch of the log `current_seq` counts in.
    pub epoch: String,
    /// Connected stream subscribers.
    pub subscribers: usize,
    /// The seq that `applied_by` refers to.
    pub seq: u64,
    /// Connected subscribers that have applied `seq` (acknowledged it, or connected
    /// already holding it).
    pub applied_by: usize,
}

/// Body of `POST /v1/subscribers/ack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// The id the stream's `hello` event gave this subscriber.
    pub subscriber_id: String,
    /// The highest seq the subscriber has applied.
    pub seq: u64,
}

/// Data of the stream's first event, `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Hello {
    /// Identifies this connection in acks; valid while the stream is open.
    pub subscriber_id: String,
    /// The newest seq when the stream opened.
    pub current_seq: u64,
    /// The epoch of the log this stream serves. A subscriber holding entries of another
    /// epoch must discard them and resync from seq 0.
    pub epoch: String,
}

/// Data of a `heartbeat` event: the registry has sent every entry up to `current_seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Heartbeat {
    /// Every entry up to this seq has been sent on this stream.
    pub current_seq: u64,
    /// The epoch of the log, as in the stream's [`Hello`].
    pub epoch: String,
}

/// Longest log epoch accepted from a store or the network.
pub(crate) const MAX_EPOCH_LEN: usize = 64;

/// Whether `epoch` is usable as a log epoch: 1 to 64 printable ASCII characters.
pub(crate) fn is_valid_epoch(epoch: &str) -> bool {
    !epoch.is_empty() && epoch.len() <= MAX_EPOCH_LEN && epoch.bytes().all(|b| b.is_ascii_graphic())
}

/// The one error shape, shared with the authorization API.
pub use mandate_verifier::{ErrorBody, ErrorDetail};

/// SSE event names used on the stream.
pub mod events {
    /// First event of a stream.
    pub const HELLO: &str = "hello";
    /// A log entry.
    pub const REVOCATION: &str = "revocation";
    /// The stream is current up to a seq.
    pub const HEARTBEAT: &str = "heartbeat";
}
