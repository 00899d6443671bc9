//! Mandate over HTTP: the authorization API, its metrics, and the one error
//! shape every Mandate server answers with.

mod authorize;
mod error;
pub mod observe;

pub use authorize::{
    audit, decision_body, openapi, router, routes, AttrJson, AuthorizeRequest, AuthzHealth,
    AuthzState, DecisionBody, MAX_BODY_BYTES,
};
pub use error::{method_not_allowed, not_found, ApiError};
