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

/// How long Mandate's HTTP clients keep an idle pooled connection: less than
/// Mandate's servers keep one (they close a connection idle for their header
/// timeout, 10 s by default), so a client does not send a request on a
/// connection the server is closing.
pub const CLIENT_POOL_IDLE: std::time::Duration = std::time::Duration::from_secs(5);
