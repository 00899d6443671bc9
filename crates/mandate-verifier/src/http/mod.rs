//! Mandate over HTTP: the authorization API, the proxy endpoint, their
//! metrics, and the one error shape every Mandate server answers with.

mod authorize;
mod error;
mod ext_authz;
mod fingerprint;
pub mod observe;
mod record;

// The middleware records through the same function (with the `axum` feature).
#[cfg(feature = "axum")]
pub(crate) use authorize::record_decision;
pub use authorize::{
    audit, decision_body, openapi, router, routes, AttrJson, AuthorizeRequest, AuthzHealth,
    AuthzState, DecisionBody, MAX_BODY_BYTES,
};
pub use error::{method_not_allowed, not_found, ApiError};
pub use ext_authz::{
    ext_authz_router, header_safe, openapi as ext_authz_openapi, ExtAuthzState, AGENT_HEADER,
    CHAIN_HEADER, CHALLENGE, EXT_AUTHZ_PATH, MAX_HEADERS, POP_HEADER, PRINCIPAL_HEADER,
    TASK_HEADER,
};
pub use fingerprint::Fingerprint;
pub use record::{
    request_id, Answer, DecisionRecorder, RecordError, Recording, Refusal, MAX_REQUEST_ID,
};
