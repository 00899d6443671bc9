//! The hook through which a server records every answer before it is sent:
//! the authorization API and the proxy endpoint call a [`DecisionRecorder`]
//! after deciding and before answering, and answer 503 `audit_unavailable`
//! — never the decision — when it fails, so nothing is allowed that was not
//! recorded (fail closed, as Vault's audit devices do).
//!
//! The verifier does not know where records go; a server plugs in its
//! audit log (`mandate-server` with `mandate-audit`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderMap;

use crate::Decision;

/// Where and how one answer was made, besides the decision itself.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    /// `authorize` or `ext_authz`.
    pub api: &'static str,
    /// The request's id ([`request_id`]).
    pub request_id: &'a str,
    /// The token's fingerprint (never the token), hashed when recorded.
    pub token_fingerprint: &'a super::Fingerprint,
}

/// A request refused before any decision (its token could not be trusted).
#[derive(Debug, Clone, Copy)]
pub struct Refusal<'a> {
    /// The error code answered (`invalid_token`, `expired_token`, ...).
    pub code: &'a str,
    /// Its message.
    pub message: &'a str,
    /// The service, operation and resource asked for, when known.
    pub request: Option<(&'a str, &'a str, &'a str)>,
}

/// Why an answer could not be recorded (sent to nobody; logged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RecordError(pub String);

/// What a recorder returns: resolves once the record is durable.
pub type Recording = Pin<Box<dyn Future<Output = Result<(), RecordError>> + Send + 'static>>;

/// Records answers before they are sent.
pub trait DecisionRecorder: Send + Sync + std::fmt::Debug {
    /// Records `decision`; the answer waits for the returned future.
    fn record_decision(&self, decision: &Decision, answer: &Answer<'_>) -> Recording;

    /// Records a refusal (a 401); the answer waits for it, but is a refusal
    /// whether or not it was recorded.
    fn record_refusal(&self, refusal: &Refusal<'_>, answer: &Answer<'_>) -> Recording;
}

/// The longest caller-supplied request id kept; longer ones are replaced.
pub const MAX_REQUEST_ID: usize = 128;

/// The request's id: the caller's `X-Request-Id` when it is 1 to
/// [`MAX_REQUEST_ID`] visible ASCII characters, otherwise a fresh one.
pub fn request_id(headers: &HeaderMap) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    if let Some(value) = headers.get("x-request-id") {
        let bytes = value.as_bytes();
        if !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID
            && bytes.iter().all(u8::is_ascii_graphic)
        {
            // Visible ASCII is valid UTF-8.
            return String::from_utf8_lossy(bytes).into_owned();
        }
    }
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("m-{started:x}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}
