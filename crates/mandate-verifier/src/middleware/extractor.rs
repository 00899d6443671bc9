//! [`Mandated`]: what a handler knows about the mandate its request was
//! allowed under, as an axum extractor.
//!
//! Only the layer makes one, after an allow, so holding a `Mandated` is proof
//! that the request passed its check. A handler reached without the layer
//! (a routing mistake) is refused with 500, never run as if allowed.

use std::future::Future;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::cancel::Cancellation;
use crate::http::ApiError;
use crate::{Decision, RevocationDenial};

/// The verified outcome of a request's mandate: who it acts for, through
/// which agents, for which task, under which token, and the decision itself.
/// It has no public constructor.
#[derive(Debug, Clone)]
pub struct Mandated {
    decision: Arc<Decision>,
    cancellation: Cancellation,
}

impl Mandated {
    pub(crate) fn new(decision: Decision, cancellation: Cancellation) -> Mandated {
        Mandated {
            decision: Arc::new(decision),
            cancellation,
        }
    }

    /// The principal the agent acts for.
    pub fn principal(&self) -> &str {
        &self.decision.principal
    }

    /// The acting agent: the holder of the mandate, whose proof of
    /// possession (if the chain is keyed) signed this request.
    pub fn agent(&self) -> &str {
        &self.decision.agent
    }

    /// The agents from the principal's first agent to the acting agent.
    pub fn chain(&self) -> &[String] {
        &self.decision.chain
    }

    /// The task the mandate was minted for.
    pub fn task(&self) -> &str {
        &self.decision.task
    }

    /// The token id (the last block's revocation id, hex).
    pub fn token_id(&self) -> &str {
        &self.decision.token_id
    }

    /// The allow decision, as audited.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// Resolves when the call must stop: something the mandate depends on was
    /// revoked, or the revocation state went stale (see [`Cancellation`]).
    pub fn revoked(&self) -> impl Future<Output = RevocationDenial> + Send + 'static {
        self.cancellation.revoked()
    }

    /// The call's cancellation handle, to re-check before committing an
    /// effect or to end a streaming body ([`Cancellation::until_revoked`]).
    pub fn cancellation(&self) -> &Cancellation {
        &self.cancellation
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Mandated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Mandated>() {
            Some(mandated) => Ok(mandated.clone()),
            None => {
                // A configuration mistake, not the caller's: say nothing more.
                tracing::error!(
                    path = parts.uri.path(),
                    "a handler takes `Mandated` but no MandateLayer decided the request; refused"
                );
                Err(ApiError::internal())
            }
        }
    }
}
