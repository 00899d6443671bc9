//! How a closed task reaches the revocation registry.
//!
//! The issuer does not know the registry's wire format or store: the server
//! composing it supplies a [`TaskRevoker`] (a local revocation store, or a
//! remote registry through its client). Closing writes the task's
//! revocation, so every token derived from it — delegated copies included —
//! is denied within the revocation bound.

use std::future::Future;
use std::pin::Pin;

/// A boxed future, so the trait stays object-safe.
pub type RevokeFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Writes task revocations.
pub trait TaskRevoker: Send + Sync {
    /// Revokes every token of `task`, for `reason`. Must be idempotent: a
    /// close that failed to revoke is retried by closing again.
    ///
    /// # Errors
    /// Why the revocation could not be written (logged, never sent).
    fn revoke_task<'a>(&'a self, task: &'a str, reason: &'a str) -> RevokeFuture<'a>;
}

/// A revoker that writes nothing; for tests of the issuer alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRevocation;

impl TaskRevoker for NoRevocation {
    fn revoke_task<'a>(&'a self, task: &'a str, _reason: &'a str) -> RevokeFuture<'a> {
        tracing::warn!(task, "task closed without a revocation registry");
        Box::pin(async { Ok(()) })
    }
}
