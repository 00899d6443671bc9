//! Mandate over HTTP: the authorization API, the proxy endpoint, and the one
//! error shape every Mandate server answers with.

mod authorize;
mod error;
mod ext_authz;

pub use authorize::{
    audit, decision_body, router, AttrJson, AuthorizeRequest, AuthzState, MAX_BODY_BYTES,
};
pub use error::{method_not_allowed, not_found, ApiError};
pub use ext_authz::{
    ext_authz_router, header_safe, ExtAuthzState, AGENT_HEADER, CHAIN_HEADER, CHALLENGE,
    EXT_AUTHZ_PATH, MAX_HEADERS, POP_HEADER, PRINCIPAL_HEADER, TASK_HEADER,
};
