//! Who may write to and read from the registry: the mandate of each request,
//! judged against the exact HTTP request it came with.

use std::sync::Arc;

use axum::http::{header, HeaderMap, Method, Uri};
use mandate_core::fingerprint;
use mandate_verifier::http::ApiError;

use super::authorizer::{HttpBinding, WriteDenied, POP_HEADER};
use super::state::RegistryState;

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
