//! What a service tells the middleware about each request: the call it is
//! decided as, or why it cannot be decided at all (an [`ApiError`], answered
//! as is before any token is evaluated).
//!
//! The mapping sees only what the server received (the request head, and the
//! body when the layer reads bodies); it must never take a service, resource
//! or attribute from a header the client sets to describe itself.

use mandate_core::AttrValue;

use crate::http::ApiError;

/// Request attribute added by the middleware: the HTTP method (`GET`, `POST`).
pub const ATTR_HTTP_METHOD: &str = "http_method";
/// Request attribute added by the middleware: the request path, without the
/// query.
pub const ATTR_HTTP_PATH: &str = "http_path";
/// Request attribute added by the middleware when it reads bodies: the
/// SHA-256 of the exact body bytes, lowercase hex.
pub const ATTR_BODY_SHA256: &str = "body_sha256";

/// The call an HTTP request is decided as: `service(S)`, `operation(O)`,
/// `resource(R)` and `attr(K, V)` facts.
///
/// The middleware adds [`ATTR_HTTP_METHOD`], [`ATTR_HTTP_PATH`] and, when it
/// reads bodies, [`ATTR_BODY_SHA256`]; the acting agent's proof signs them
/// with everything here. A value a handler acts on (an amount, an account)
/// belongs in `attrs`, so the mandate's checks see it and the proof binds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The service being called.
    pub service: String,
    /// The operation.
    pub operation: String,
    /// The resource; normalised by the middleware (`..`, `//` and
    /// percent-encoding cannot escape a prefix).
    pub resource: String,
    /// Runtime conditions, at most [`mandate_core::Request::MAX_ATTRS`]
    /// together with the middleware's own.
    pub attrs: Vec<(String, AttrValue)>,
}

impl Call {
    /// `operation` on `resource` of `service`, without attributes.
    pub fn new(
        service: impl Into<String>,
        operation: impl Into<String>,
        resource: impl Into<String>,
    ) -> Call {
        Call {
            service: service.into(),
            operation: operation.into(),
            resource: resource.into(),
            attrs: Vec::new(),
        }
    }

    /// Adds the attribute `key` = `value`. A repeated key is refused when the
    /// request is built (400), never resolved by picking one.
    pub fn attr(mut self, key: impl Into<String>, value: AttrValue) -> Call {
        self.attrs.push((key.into(), value));
        self
    }
}

/// The mapping a layer holds: the request head, and the body when the layer
/// reads bodies.
pub(crate) type MapFn =
    dyn Fn(&axum::http::request::Parts, Option<&[u8]>) -> Result<Call, ApiError> + Send + Sync;
