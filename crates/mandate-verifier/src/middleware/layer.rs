//! [`MandateLayer`] and its [`MandateService`]: decide each request by its
//! mandate, and run the wrapped service only after an allow.
//!
//! Order of work for one request, each step refusing on its own:
//! 1. credentials from the headers (no token: 401 `missing_token`);
//! 2. the body, when the layer reads bodies (over the limit: 413);
//! 3. the service's mapping to a [`Call`] (its own status);
//! 4. the [`Request`]: the call plus the HTTP binding, validated (400);
//! 5. the decision on the [`EvalPool`] (saturated: 503 + `Retry-After`);
//! 6. 401/403 on a refusal, else the inner service with a [`Mandated`].
//!
//! This layer must never call the inner service before step 6 allowed, nor
//! put a token (only its fingerprint) in a log or a response.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mandate_core::{AttrValue, Proof, Request};
use sha2::{Digest as _, Sha256};

use super::cancel::Cancellation;
use super::extractor::Mandated;
use super::mapping::{Call, MapFn, ATTR_BODY_SHA256, ATTR_HTTP_METHOD, ATTR_HTTP_PATH};
use crate::http::{ApiError, DecisionRecorder};
use crate::pool::EvalPool;
use crate::{Error, Reason, Verifier};

/// The header carrying the acting agent's proof of possession, as the
/// registry reads it.
pub const POP_HEADER: &str = "mandate-pop";
/// The realm named in `WWW-Authenticate` unless [`MandateLayer::realm`] sets
/// one.
pub const DEFAULT_REALM: &str = "mandate";
/// The largest body [`MandateLayer::with_body`] reads unless told otherwise.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
/// How often a waiting [`Cancellation`] re-checks even without a change
/// notification.
const DEFAULT_RECHECK: Duration = Duration::from_secs(1);

/// A tower layer deciding every request by its mandate; see the module
/// [`middleware`](crate::middleware). Cheap to clone.
#[derive(Clone)]
pub struct MandateLayer {
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    verifier: Arc<Verifier>,
    pool: EvalPool,
    map: Arc<MapFn>,
    /// `Some(limit)`: read bodies up to `limit` bytes, bind their SHA-256 and
    /// show them to the mapping.
    body_limit: Option<usize>,
    recheck_every: Duration,
    challenges: Challenges,
    /// Records every decision before the handler runs or the refusal is sent.
    recorder: Option<Arc<dyn DecisionRecorder>>,
}

/// The `WWW-Authenticate` values, formatted once.
#[derive(Clone)]
struct Challenges {
    missing: HeaderValue,
    invalid_token: HeaderValue,
    invalid_proof: HeaderValue,
}

impl Challenges {
    fn for_realm(realm: &str) -> Challenges {
        // Only printable ASCII without quote or backslash reaches the header,
        // so the quoted string needs no escaping and the value is valid.
        let realm: String = realm
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let value = |error: Option<&str>| {
            let text = match error {
                Some(error) => format!("Mandate realm=\"{realm}\", error=\"{error}\""),
                None => format!("Mandate realm=\"{realm}\""),
            };
            HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("Mandate"))
        };
        Challenges {
            missing: value(None),
            invalid_token: value(Some("invalid_token")),
            invalid_proof: value(Some("invalid_proof")),
        }
    }
}

impl std::fmt::Debug for MandateLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MandateLayer")
            .field("pool", &self.config.pool)
            .field("body_limit", &self.config.body_limit)
            .field("recheck_every", &self.config.recheck_every)
            .finish_non_exhaustive()
    }
}

impl MandateLayer {
    /// Decides each request with `verifier` on `pool`, as the call `map`
    /// makes of its head. The body is not read: the proof binds the method,
    /// the path and the call's attributes, not the body.
    pub fn new<M>(verifier: impl Into<Arc<Verifier>>, pool: EvalPool, map: M) -> MandateLayer
    where
        M: Fn(&Parts) -> Result<Call, ApiError> + Send + Sync + 'static,
    {
        MandateLayer::build(
            verifier.into(),
            pool,
            None,
            Arc::new(move |parts, _| map(parts)),
        )
    }

    /// As [`MandateLayer::new`], but reads each body first (at most
    /// [`DEFAULT_BODY_LIMIT`] bytes, else 413), shows it to `map`, and binds
    /// its SHA-256 as the `body_sha256` attribute, so the proof signs the
    /// exact body. The inner service receives the same bytes.
    pub fn with_body<M>(verifier: impl Into<Arc<Verifier>>, pool: EvalPool, map: M) -> MandateLayer
    where
        M: Fn(&Parts, &[u8]) -> Result<Call, ApiError> + Send + Sync + 'static,
    {
        MandateLayer::build(
            verifier.into(),
            pool,
            Some(DEFAULT_BODY_LIMIT),
            Arc::new(move |parts, body| map(parts, body.unwrap_or_default())),
        )
    }

    fn build(
        verifier: Arc<Verifier>,
        pool: EvalPool,
        body_limit: Option<usize>,
        map: Arc<MapFn>,
    ) -> MandateLayer {
        MandateLayer {
            config: Arc::new(Config {
                verifier,
                pool,
                map,
                body_limit,
                recheck_every: DEFAULT_RECHECK,
                challenges: Challenges::for_realm(DEFAULT_REALM),
                recorder: None,
            }),
        }
    }

    /// Names `realm` in `WWW-Authenticate` (characters a quoted header value
    /// cannot hold become `_`).
    pub fn realm(mut self, realm: &str) -> MandateLayer {
        Arc::make_mut(&mut self.config).challenges = Challenges::for_realm(realm);
        self
    }

    /// Reads bodies up to `limit` bytes (only for a layer made with
    /// [`MandateLayer::with_body`]).
    pub fn body_limit(mut self, limit: usize) -> MandateLayer {
        let config = Arc::make_mut(&mut self.config);
        if config.body_limit.is_some() {
            config.body_limit = Some(limit);
        }
        self
    }

    /// Records every decision with `recorder` (an audit log) before the
    /// handler runs; a decision that cannot be recorded is answered 503
    /// `audit_unavailable` and the handler does not run.
    pub fn recorder(mut self, recorder: Arc<dyn DecisionRecorder>) -> MandateLayer {
        Arc::make_mut(&mut self.config).recorder = Some(recorder);
        self
    }

    /// How often a waiting [`Cancellation`] re-checks without a change
    /// notification (default 1 s; at least 10 ms). A source that notifies
    /// ([`crate::RevocationCheck::changes`]) wakes it at once.
    pub fn recheck_every(mut self, interval: Duration) -> MandateLayer {
        Arc::make_mut(&mut self.config).recheck_every = interval.max(Duration::from_millis(10));
        self
    }
}

impl<S> tower_layer::Layer<S> for MandateLayer {
    type Service = MandateService<S>;

    fn layer(&self, inner: S) -> MandateService<S> {
        MandateService {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`MandateLayer`] wraps around `S`.
#[derive(Clone)]
pub struct MandateService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> std::fmt::Debug for MandateService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MandateService").finish_non_exhaustive()
    }
}

impl<S> tower_service::Service<axum::http::Request<Body>> for MandateService<S>
where
    S: tower_service::Service<axum::http::Request<Body>, Response = Response>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<Body>) -> Self::Future {
        // The clone that was driven to readiness serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        Box::pin(async move {
            match decide(&config, request).await {
                Ok(allowed) => inner.call(allowed).await,
                Err(refusal) => Ok(refusal.into_response()),
            }
        })
    }
}

/// Steps 1–6: the request with a [`Mandated`] in its extensions, or the
/// refusal to answer instead.
async fn decide(
    config: &Config,
    request: axum::http::Request<Body>,
) -> Result<axum::http::Request<Body>, ApiError> {
    let (mut parts, body) = request.into_parts();
    let challenges = &config.challenges;
    let token = credentials(&parts.headers, challenges)?.to_owned();
    let proof = proof(&parts.headers, challenges)?;
    let (body, bytes) = match config.body_limit {
        Some(limit) => {
            let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("request body unreadable or larger than {limit} bytes"),
                )
            })?;
            (Body::from(bytes.clone()), Some(bytes))
        }
        None => (body, None),
    };
    let call = (config.map)(&parts, bytes.as_deref())?;
    let mut request = to_request(call, &parts, bytes.as_deref())?;
    if let Some(proof) = proof {
        request = request.with_proof(proof);
    }

    let token: Arc<str> = Arc::from(token);
    let token_fp = crate::http::Fingerprint::of(&token);
    let verifier = Arc::clone(&config.verifier);
    let evaluated = config
        .pool
        .run(move || verifier.authorize_with_dependencies(&token, &request))
        .await
        .map_err(|error| {
            tracing::warn!(target: "mandate::audit", token = %token_fp, outcome = error.code(), %error, "not evaluated");
            ApiError::from(error)
        })?;
    let (decision, dependencies) = match evaluated {
        Ok(outcome) => outcome,
        Err(Error::Token(e)) => {
            tracing::info!(target: "mandate::audit", token = %token_fp, error = %e, "refused token");
            return Err(unauthorized(
                challenges.invalid_token.clone(),
                "invalid_token",
                e.to_string(),
            ));
        }
        Err(e @ Error::Expired { .. }) => {
            tracing::info!(target: "mandate::audit", token = %token_fp, error = %e, "refused token");
            return Err(unauthorized(
                challenges.invalid_token.clone(),
                "expired_token",
                e.to_string(),
            ));
        }
        Err(e) => {
            tracing::error!(token = %token_fp, error = %e, "authorization failed");
            return Err(ApiError::internal());
        }
    };
    crate::http::audit(&token_fp, &decision);
    let request_id = crate::http::request_id(&parts.headers);
    let answer = crate::http::Answer {
        api: "middleware",
        request_id: &request_id,
        token_fingerprint: &token_fp,
    };
    crate::http::record_decision(config.recorder.as_deref(), &decision, &answer).await?;
    match (&decision.reason, dependencies) {
        (_, Some(dependencies)) if decision.allowed => {
            let cancellation = Cancellation::new(
                Arc::clone(&config.verifier),
                dependencies,
                config.recheck_every,
            );
            parts
                .extensions
                .insert(Mandated::new(decision, cancellation));
            Ok(axum::http::Request::from_parts(parts, body))
        }
        // Who is calling is not established: a missing, wrong or replayed
        // proof, or a bearer mandate where a key is required.
        (Reason::ProofOfPossession { error }, _) => Err(unauthorized(
            challenges.invalid_proof.clone(),
            "invalid_proof",
            error.to_string(),
        )),
        (reason, _) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "denied",
            reason.to_string(),
        )),
    }
}

/// 401 with `challenge`, which names the realm (and `error=` when a token or
/// proof was presented and refused).
fn unauthorized(
    challenge: HeaderValue,
    code: &'static str,
    message: impl Into<String>,
) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message).challenge(challenge)
}

/// The mandate of `Authorization: Mandate <token>` or `Bearer <token>`.
fn credentials<'h>(headers: &'h HeaderMap, challenges: &Challenges) -> Result<&'h str, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(unauthorized(
            challenges.missing.clone(),
            "missing_token",
            "this service needs a mandate: Authorization: Mandate <token>",
        ));
    };
    let malformed = || {
        unauthorized(
            challenges.invalid_token.clone(),
            "invalid_token",
            "expected Authorization: Mandate <token>",
        )
    };
    let text = value.to_str().map_err(|_| malformed())?;
    match text.split_once(' ') {
        Some((scheme, token))
            if (scheme.eq_ignore_ascii_case("mandate")
                || scheme.eq_ignore_ascii_case("bearer"))
                && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(malformed()),
    }
}

/// The proof of possession in [`POP_HEADER`], if any.
fn proof(headers: &HeaderMap, challenges: &Challenges) -> Result<Option<Proof>, ApiError> {
    let Some(value) = headers.get(POP_HEADER) else {
        return Ok(None);
    };
    let refused =
        |message: String| unauthorized(challenges.invalid_proof.clone(), "invalid_proof", message);
    let text = value
        .to_str()
        .map_err(|_| refused("Mandate-PoP header is not ASCII".to_owned()))?;
    Proof::parse(text)
        .map(Some)
        .map_err(|e| refused(e.to_string()))
}

/// The call plus the HTTP binding, validated: method and path always, the
/// body's SHA-256 when the body was read.
fn to_request(call: Call, parts: &Parts, body: Option<&[u8]>) -> Result<Request, ApiError> {
    // Strings on purpose: the client signs the same typed values, and a path
    // of digits must not turn into an integer on one side only.
    let mut binding = vec![
        (
            ATTR_HTTP_METHOD.to_owned(),
            AttrValue::Str(parts.method.as_str().to_owned()),
        ),
        (
            ATTR_HTTP_PATH.to_owned(),
            AttrValue::Str(parts.uri.path().to_owned()),
        ),
    ];
    if let Some(body) = body {
        binding.push((
            ATTR_BODY_SHA256.to_owned(),
            AttrValue::Str(hex::encode(Sha256::digest(body))),
        ));
    }
    let attrs = call.attrs.into_iter().chain(binding);
    Request::validated(
        &call.service,
        &call.operation,
        &call.resource,
        attrs,
        SystemTime::now(),
    )
    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))
}
