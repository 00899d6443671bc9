//! Who may write to and read from the registry: the mandate of each request,
//! judged against the exact HTTP request it came with.

use std::sync::Arc;

use axum::http::{header, HeaderMap, Method, Uri};
use mandate_core::fingerprint;
use mandate_verifier::http::ApiError;

use super::state::RegistryState;

/// The HTTP request a mandate is presented with, as the registry received it. A proof of
/// possession must cover all of it ([`crate::registry_request`]), so one captured from
/// a revoke authorizes neither a lift, nor a revoke of another value, nor a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpBinding<'a> {
    /// The method, e.g. `POST`.
    pub method: &'a str,
    /// The path of the registry API, without the query, e.g. `/v1/revocations/lift`.
    pub path: &'a str,
    /// The exact body bytes (empty for a `GET`).
    pub body: &'a [u8],
}

/// Decides who may write to, and read from, the registry.
pub trait WriteAuthorizer: Send + Sync {
    /// Checks the mandate of a write request and returns the actor name recorded as
    /// `revoked_by`. `proof` is the `Mandate-PoP` header; `request` is what it must cover.
    ///
    /// # Errors
    /// [`WriteDenied::Unauthenticated`] (HTTP 401) for a malformed, unverifiable or expired
    /// token, or a missing or wrong proof; [`WriteDenied::Forbidden`] (HTTP 403) for a
    /// valid token without the right. The message is sent to the client, so it must not
    /// contain secrets.
    fn authorize_write(
        &self,
        bearer: &str,
        proof: Option<&str>,
        request: &HttpBinding<'_>,
    ) -> std::result::Result<String, WriteDenied>;

    /// Checks the mandate of a read (list, status, stream) and returns who reads, for
    /// logs.
    ///
    /// # Errors
    /// As [`WriteAuthorizer::authorize_write`], for the right to read.
    fn authorize_read(
        &self,
        bearer: &str,
        proof: Option<&str>,
        request: &HttpBinding<'_>,
    ) -> std::result::Result<String, WriteDenied>;
}

/// The header carrying the acting agent's proof of possession.
pub const POP_HEADER: &str = "mandate-pop";

/// Why a write was refused. A decision, not a failure of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteDenied {
    /// The token is missing, malformed or not verifiable (HTTP 401).
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The token is valid but does not allow writing revocations (HTTP 403).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The write could not be judged now (an evaluation limit under load, or the
    /// registry's own revocation state stale while its store is unreachable); the
    /// client should retry (HTTP 503).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// The mandate of a request (`Authorization: Bearer <token>` or `Mandate <token>`) and
/// its proof of possession, if any.
pub(super) fn credentials(
    headers: &HeaderMap,
) -> std::result::Result<(&str, Option<&str>), ApiError> {
    let token = bearer_token(headers)?;
    let proof = match headers.get(POP_HEADER) {
        Some(value) => Some(value.to_str().map_err(|_| {
            ApiError::from(WriteDenied::Unauthenticated(
                "Mandate-PoP header is not ASCII".to_owned(),
            ))
        })?),
        None => None,
    };
    Ok((token, proof))
}

/// Authenticates a read (list, status, stream) made with `method` on `uri`.
pub(super) async fn authorize_read(
    state: &RegistryState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> std::result::Result<(), ApiError> {
    let credentials = credentials(headers)?;
    let reader = evaluate(state, credentials, method, uri, &[], Access::Read).await?;
    tracing::debug!(%reader, path = uri.path(), "registry read");
    Ok(())
}

/// Which registry right a request needs.
#[derive(Debug, Clone, Copy)]
pub(super) enum Access {
    Read,
    Write,
}

/// Checks the mandate of one request on the evaluation pool, bound to the
/// request's method, path and exact body; returns the actor's name.
pub(super) async fn evaluate(
    state: &RegistryState,
    (token, proof): (&str, Option<&str>),
    method: &Method,
    uri: &Uri,
    body: &[u8],
    access: Access,
) -> std::result::Result<String, ApiError> {
    let authorizer = Arc::clone(&state.inner.authorizer);
    let (bearer, pop) = (token.to_owned(), proof.map(str::to_owned));
    let (verb, path, bytes) = (
        method.as_str().to_owned(),
        uri.path().to_owned(),
        body.to_vec(),
    );
    let outcome = state
        .inner
        .config
        .eval_pool
        .run(move || {
            let binding = HttpBinding {
                method: &verb,
                path: &path,
                body: &bytes,
            };
            match access {
                Access::Read => authorizer.authorize_read(&bearer, pop.as_deref(), &binding),
                Access::Write => authorizer.authorize_write(&bearer, pop.as_deref(), &binding),
            }
        })
        .await;
    match outcome {
        Ok(Ok(actor)) => Ok(actor),
        Ok(Err(denied)) => {
            tracing::info!(token = %fingerprint(token), path = uri.path(), ?access, %denied, "registry request refused");
            Err(ApiError::from(denied))
        }
        Err(error) => {
            tracing::warn!(token = %fingerprint(token), path = uri.path(), ?access, %error, "registry request not evaluated");
            Err(ApiError::from(error))
        }
    }
}

pub(super) fn bearer_token(headers: &HeaderMap) -> std::result::Result<&str, ApiError> {
    let unauthenticated =
        |message: &str| ApiError::from(WriteDenied::Unauthenticated(message.to_owned()));
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthenticated("missing Authorization header"))?;
    let value = value
        .to_str()
        .map_err(|_| unauthenticated("Authorization header is not ASCII"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if (scheme.eq_ignore_ascii_case("bearer")
                || scheme.eq_ignore_ascii_case("mandate"))
                && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(unauthenticated("expected Authorization: Bearer <token>")),
    }
}
