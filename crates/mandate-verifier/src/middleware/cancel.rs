//! In-flight cancellation: a signal that fires when a call that was allowed
//! may no longer proceed, because something its mandate depends on was
//! revoked or the revocation state went stale.
//!
//! Nothing runs in the background. Whoever awaits [`Cancellation::revoked`]
//! re-checks the call's [`Dependencies`] each time the revocation source
//! reports a change ([`crate::RevocationCheck::changes`]), and at least every
//! `recheck_every` as well (a source that cannot notify is polled at that
//! interval). A re-check is a few hash lookups, so it runs on the runtime
//! without a pool slot; it never evaluates the token again.
//!
//! A cancellation must never fire for a call that is still allowed by the
//! revocation state, nor miss one that is not: a change that lands while a
//! re-check runs is seen on the next turn.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;

use crate::{Dependencies, RevocationDenial, Verifier};

/// Fires when the call it belongs to must stop. Cheap to clone; clones watch
/// the same call.
#[derive(Debug, Clone)]
pub struct Cancellation {
    /// `None` when the verifier consults no revocation state: nothing can
    /// revoke the call, so it never fires.
    watched: Option<Arc<Watched>>,
}

#[derive(Debug)]
struct Watched {
    verifier: Arc<Verifier>,
    dependencies: Dependencies,
    recheck_every: Duration,
}

impl Cancellation {
    pub(crate) fn new(
        verifier: Arc<Verifier>,
        dependencies: Dependencies,
        recheck_every: Duration,
    ) -> Cancellation {
        let watched = verifier.checks_revocation().then(|| {
            Arc::new(Watched {
                verifier,
                dependencies,
                recheck_every,
            })
        });
        Cancellation { watched }
    }

    /// Re-checks now: `Err` when the call must stop.
    ///
    /// # Errors
    /// The [`RevocationDenial`]: what was revoked, or why the state cannot be
    /// vouched for.
    pub fn check(&self) -> Result<(), RevocationDenial> {
        match &self.watched {
            Some(watched) => watched.verifier.recheck(&watched.dependencies),
            None => Ok(()),
        }
    }

    /// Resolves with the denial once the call must stop; never resolves while
    /// it may go on. The future owns what it needs, so it can move into a
    /// spawned task or a stream.
    pub fn revoked(&self) -> impl Future<Output = RevocationDenial> + Send + 'static {
        let watched = self.watched.clone();
        async move {
            let Some(watched) = watched else {
                return std::future::pending().await;
            };
            let mut changes = watched.verifier.revocation_changes();
            loop {
                // Mark the current state seen *before* checking it: a change
                // that lands during the check wakes the next wait.
                if let Some(changes) = changes.as_mut() {
                    changes.borrow_and_update();
                }
                if let Err(denial) = watched.verifier.recheck(&watched.dependencies) {
                    return denial;
                }
                let wait = watched.recheck_every;
                match changes.as_mut() {
                    Some(receiver) => {
                        if let Ok(Err(_closed)) =
                            tokio::time::timeout(wait, receiver.changed()).await
                        {
                            // The source is gone; keep polling what the
                            // verifier still holds.
                            changes = None;
                        }
                    }
                    None => tokio::time::sleep(wait).await,
                }
            }
        }
    }

    /// Wraps `stream` so that it ends when the call must stop: the item
    /// `last` makes from the denial is the final one, then the stream ends.
    /// Cancellation wins over a ready item, so nothing is sent after the
    /// revocation was seen.
    pub fn until_revoked<S, F>(&self, stream: S, last: F) -> UntilRevoked<S, F>
    where
        S: Stream,
        F: FnOnce(RevocationDenial) -> S::Item,
    {
        UntilRevoked {
            stream: Box::pin(stream),
            revoked: Some(Box::pin(self.revoked())),
            last: Some(last),
        }
    }
}

/// A stream that ends with a final item when its call is revoked; see
/// [`Cancellation::until_revoked`].
pub struct UntilRevoked<S, F> {
    stream: Pin<Box<S>>,
    /// `None` once the stream ended, either way.
    revoked: Option<Pin<Box<dyn Future<Output = RevocationDenial> + Send>>>,
    last: Option<F>,
}

// The inner stream is boxed and `last` is never pinned, so moving the
// wrapper moves nothing that was pinned.
impl<S, F> Unpin for UntilRevoked<S, F> {}

impl<S, F> std::fmt::Debug for UntilRevoked<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UntilRevoked")
            .field("ended", &self.revoked.is_none())
            .finish_non_exhaustive()
    }
}

impl<S, F> Stream for UntilRevoked<S, F>
where
    S: Stream,
    F: FnOnce(RevocationDenial) -> S::Item,
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.get_mut();
        let Some(revoked) = this.revoked.as_mut() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(denial) = revoked.as_mut().poll(cx) {
            this.revoked = None;
            return Poll::Ready(this.last.take().map(|last| last(denial)));
        }
        match this.stream.as_mut().poll_next(cx) {
            Poll::Ready(None) => {
                this.revoked = None;
                Poll::Ready(None)
            }
            other => other,
        }
    }
}
