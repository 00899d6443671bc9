//! Who may read the trail: the request a mandate is judged as when it asks
//! for audit records (`GET /v1/audit`), shared by the server that judges it
//! and the client that signs a proof of possession for it, so the two agree
//! on every byte.

use std::time::SystemTime;

use mandate_core::{AttrValue, Request, ResourcePath};

/// The service a mandate must name to read the trail (`audit:read`).
pub const SERVICE: &str = "audit";
/// The operation.
pub const READ: &str = "read";
/// The HTTP path of the trail, which is also the request's resource.
pub const PATH: &str = "/v1/audit";

/// The request `GET /v1/audit` is decided as, at `now`: `audit` `read` on
/// `/v1/audit`, with the HTTP method and path as attributes (so a proof made
/// for another API authorizes nothing here).
///
/// # Errors
/// [`mandate_core::Error`] only if the constant path were invalid.
pub fn read_request(now: SystemTime) -> Result<Request, mandate_core::Error> {
    let mut request = Request::new(SERVICE, READ, ResourcePath::parse(PATH)?, now);
    request.attrs = vec![
        ("http_method".to_owned(), AttrValue::Str("GET".to_owned())),
        ("http_path".to_owned(), AttrValue::Str(PATH.to_owned())),
    ];
    Ok(request)
}
