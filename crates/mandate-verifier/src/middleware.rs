//! Middleware for Rust services: every request is decided by its mandate
//! before a handler runs, and a handler sees the verified outcome as a typed
//! value.
//!
//! A [`MandateLayer`] (a tower layer, so it wraps any axum router or tower
//! service) reads the mandate from `Authorization: Mandate <token>` (or
//! `Bearer <token>`) and the acting agent's proof of possession from the
//! `Mandate-PoP` header, asks the service's mapping which call the request is
//! ([`Call`]: service, operation, resource, attributes), adds the HTTP
//! binding the proof must sign — `http_method`, `http_path` and, when the
//! layer reads bodies, `body_sha256` of the exact bytes, as the revocation
//! registry does — and decides on the [`EvalPool`](crate::pool::EvalPool),
//! never on the async runtime. Only after an allow does the handler run, with
//! a [`Mandated`] in the request's extensions; a handler takes it as an
//! extractor, and no code outside this module can make one.
//!
//! | outcome | status | code |
//! |---|---|---|
//! | no or malformed credentials | 401 + `WWW-Authenticate: Mandate realm=".."` | `missing_token`, `invalid_token`, `invalid_proof` |
//! | untrusted or expired token, proof refused | 401 + `WWW-Authenticate` | `invalid_token`, `expired_token`, `invalid_proof` |
//! | the mandate does not allow the call | 403, the decision's reason | `denied` |
//! | the mapping refused the request ([`ApiError`](crate::http::ApiError)) | its status | its code |
//! | the evaluation pool is saturated | 503 + `Retry-After` | `overloaded`, `deadline_exceeded` |
//!
//! A call that was allowed can still be stopped: [`Mandated::revoked`] and
//! [`Cancellation`] fire when anything the mandate depends on (a block of the
//! token, the principal, an agent of the chain, the task) is revoked, or the
//! revocation state goes stale, while the call is in flight;
//! [`Cancellation::until_revoked`] ends a streaming body with a final error
//! item.
//!
//! Every decision is logged as an audit record (target `mandate::audit`)
//! with the token's fingerprint, never the token. This module must never run
//! a handler without an allow, evaluate a token on a runtime thread, or
//! decide a request from anything but what the server received.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use mandate_verifier::http::ApiError;
//! use mandate_verifier::middleware::{Call, MandateLayer, Mandated};
//! use mandate_verifier::{pool::EvalPool, Verifier};
//!
//! async fn balance(mandate: Mandated) -> String {
//!     format!("balance read for {}", mandate.principal())
//! }
//!
//! # fn demo(verifier: Verifier) {
//! let layer = MandateLayer::new(verifier, EvalPool::default(), |parts: &axum::http::request::Parts| {
//!     Ok::<_, ApiError>(Call::new("accounts", "read", parts.uri.path()))
//! })
//! .realm("accounts");
//! // `route_layer`: unknown paths stay 404 instead of asking for a mandate.
//! let app: Router = Router::new()
//!     .route("/accounts/{id}/balance", get(balance))
//!     .route_layer(layer);
//! # }
//! ```

mod cancel;
mod extractor;
mod layer;
mod mapping;

pub use cancel::{Cancellation, UntilRevoked};
pub use extractor::Mandated;
pub use layer::{MandateLayer, MandateService, DEFAULT_BODY_LIMIT, DEFAULT_REALM, POP_HEADER};
pub use mapping::{Call, ATTR_BODY_SHA256, ATTR_HTTP_METHOD, ATTR_HTTP_PATH};
