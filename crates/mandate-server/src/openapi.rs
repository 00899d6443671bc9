//! The OpenAPI 3.1 document of everything a Mandate server can serve,
//! generated from the handlers and their types (utoipa): the authorization
//! API, the proxy endpoint, the registry and the operations endpoints. A
//! test compares it with the routes a running server answers.

use std::sync::OnceLock;

use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Mandate",
        description = "Capability tokens for AI agents: authorization decisions, the revocation registry and operations endpoints. Every error is {\"error\": {\"code\", \"message\"}}.",
        license(name = "Apache-2.0")
    ),
    paths(
        crate::ops::healthz,
        crate::ops::readyz,
        crate::ops::metrics,
        crate::ops::openapi
    ),
    tags((name = "operations", description = "Health, readiness, metrics and this document"))
)]
struct Operations;

/// The whole document (built once).
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut document = Operations::openapi();
        document.merge(mandate_verifier::http::openapi());
        document.merge(mandate_verifier::http::ext_authz_openapi());
        document.merge(mandate_registry::openapi());
        document.merge(crate::audit_api::openapi());
        document
    })
}
