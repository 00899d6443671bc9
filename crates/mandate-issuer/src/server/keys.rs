//! `GET /.well-known/mandate-keys`: the root keys this issuer signs with and
//! still trusts, each with its validity ([`crate::published`]), for
//! verifiers following `--root-keys-url`.
//!
//! Answered with `Cache-Control: public, max-age=N` (the issuer's
//! `keys_max_age`) and an `ETag` (a hash of the document); a request whose
//! `If-None-Match` names the current tag gets `304 Not Modified` and no body.
//! Only public keys are ever served.

use std::time::SystemTime;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mandate_verifier::http::ApiError;

use super::IssuerState;

/// The path of the key set.
pub const PATH: &str = "/.well-known/mandate-keys";

/// Whether `If-None-Match` (a list of tags, or `*`) names `etag`; weak tags
/// compare by their opaque part, as RFC 9110 says for this header.
fn matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// The key set.
pub async fn published(State(state): State<IssuerState>, headers: HeaderMap) -> Response {
    let document = state.issuer().signing_keys().published(SystemTime::now());
    let Ok((body, etag)) = document.to_bytes_with_etag() else {
        return ApiError::internal().into_response();
    };
    let (Ok(etag_value), Ok(cache)) = (
        HeaderValue::from_str(&etag),
        HeaderValue::from_str(&format!(
            "public, max-age={}",
            state.keys_max_age().as_secs()
        )),
    ) else {
        return ApiError::internal().into_response();
    };
    let headers_out = [(header::ETAG, etag_value), (header::CACHE_CONTROL, cache)];
    if matches(&headers, &etag) {
        return (StatusCode::NOT_MODIFIED, headers_out).into_response();
    }
    (
        StatusCode::OK,
        headers_out,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::published::CONTENT_TYPE),
        )],
        body,
    )
        .into_response()
}
