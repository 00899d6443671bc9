//! Arbitrary bytes as HTTP request bodies, through the real routers with
//! `tower::ServiceExt::oneshot` (no socket): the authorization API's
//! `POST /v1/authorize`, and the registry's writes (`POST /v1/revocations`,
//! `POST /v1/revocations/lift`, with an `Authorization` line taken from the
//! input) and its list query. No handler may panic or answer 500.
//!
//! Input layout: byte 0 picks the route (low 2 bits) and the content type
//! (next bits); for registry writes, the bytes up to the first newline are
//! the bearer token and the rest is the body; for the list, the rest is the
//! query string.

#![no_main]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use mandate_fuzz::{harness, on_server_stack, runtime};
use mandate_registry::{MandateWriteAuthorizer, MemoryStore, RegistryState};
use mandate_verifier::http::AuthzState;
use mandate_verifier::Verifier;
use tower::ServiceExt as _;

const AUTHORIZE_OK: &[u16] = &[200, 400, 401, 403, 413, 415, 422, 503];

fn authz() -> axum::Router {
    static ROUTER: std::sync::OnceLock<axum::Router> = std::sync::OnceLock::new();
    ROUTER
        .get_or_init(|| {
            let verifier = Verifier::builder()
                .root_keys(harness().keys.clone())
                .build()
                .expect("verifier");
            mandate_verifier::http::router(AuthzState::new(verifier))
        })
        .clone()
}

fn registry() -> axum::Router {
    // A fresh store per input, so accepted writes do not pile up.
    let authorizer =
        MandateWriteAuthorizer::new(Verifier::builder().root_keys(harness().keys.clone()))
            .expect("authorizer");
    mandate_registry::router(RegistryState::new(
        Arc::new(MemoryStore::new()),
        Arc::new(authorizer),
    ))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let content_type = match (selector >> 2) % 3 {
        0 => Some("application/json"),
        1 => Some("text/plain"),
        _ => None,
    };
    let with_type = |b: axum::http::request::Builder| match content_type {
        Some(t) => b.header("content-type", t),
        None => b,
    };
    let (router, request, authorize) = match selector % 4 {
        0 => (
            authz(),
            with_type(Request::post("/v1/authorize")).body(Body::from(rest.to_vec())),
            true,
        ),
        route @ (1 | 2) => {
            let split = rest.iter().position(|&b| b == b'\n').unwrap_or(0);
            let (bearer, body) = rest.split_at(split);
            let body = body.strip_prefix(b"\n").unwrap_or(body);
            let path = if route == 1 {
                "/v1/revocations"
            } else {
                "/v1/revocations/lift"
            };
            let mut b = with_type(Request::post(path));
            if let Ok(bearer) = std::str::from_utf8(bearer) {
                if let Ok(value) = axum::http::HeaderValue::from_str(&format!("Bearer {bearer}")) {
                    b = b.header("authorization", value);
                }
            }
            (registry(), b.body(Body::from(body.to_vec())), false)
        }
        _ => {
            let query = String::from_utf8_lossy(rest);
            let uri = format!("/v1/revocations?{query}");
            match Request::get(uri.as_str()).body(Body::empty()) {
                Ok(r) => (registry(), Ok(r), false),
                // Not a URI at all: nothing reaches the router.
                Err(_) => return,
            }
        }
    };
    let Ok(request) = request else { return };
    let response = on_server_stack(move || {
        runtime()
            .block_on(router.oneshot(request))
            .unwrap_or_else(|never| match never {})
    });
    let status = response.status();
    assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "500 for {data:?}"
    );
    if authorize {
        assert!(
            AUTHORIZE_OK.contains(&status.as_u16()),
            "unexpected status {status} for {data:?}"
        );
    }
});
