//! Mandate over HTTP: the authorization API and the one error shape every
//! Mandate server answers with.

mod authorize;
mod error;

pub use authorize::{
    audit, decision_body, router, AttrJson, AuthorizeRequest, AuthzState, MAX_BODY_BYTES,
};
pub use error::{method_not_allowed, not_found, ApiError};
