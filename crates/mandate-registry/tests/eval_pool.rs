//! Registry writes are judged on the evaluation pool: a write whose mandate
//! takes longer than the deadline, or that finds every worker busy, is
//! refused with 503, `Retry-After` and the one error shape, and nothing is
//! written.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use mandate_registry::{
    router, HttpBinding, MemoryStore, RegistryConfig, RegistryState, RevocationStore,
    WriteAuthorizer, WriteDenied,
};
use mandate_verifier::pool::EvalPool;
use serde_json::{json, Value};
use tower::ServiceExt;

/// A write mandate whose evaluation takes [`SLOW`].
const SLOW_TOKEN: &str = "slow-operator";
/// A write mandate judged at once.
const FAST_TOKEN: &str = "fast-operator";
const SLOW: Duration = Duration::from_millis(600);
const DEADLINE: Duration = Duration::from_millis(50);

/// Stands in for a mandate that is costly to evaluate: it blocks its thread.
struct SlowAuthorizer;

impl WriteAuthorizer for SlowAuthorizer {
    fn authorize_read(
        &self,
        bearer: &str,
        proof: Option<&str>,
        request: &HttpBinding<'_>,
    ) -> Result<String, WriteDenied> {
        self.authorize_write(bearer, proof, request)
    }

    fn authorize_write(
        &self,
        bearer: &str,
        _proof: Option<&str>,
        _request: &HttpBinding<'_>,
    ) -> Result<String, WriteDenied> {
        match bearer {
            SLOW_TOKEN => {
                std::thread::sleep(SLOW);
                Ok("slow operator".to_owned())
            }
            FAST_TOKEN => Ok("fast operator".to_owned()),
            _ => Err(WriteDenied::Unauthenticated("unknown token".to_owned())),
        }
    }
}

/// A registry whose pool has one worker, no queue and a 50 ms deadline.
fn app() -> (Router, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    let config = RegistryConfig {
        eval_pool: EvalPool::with_queue(1, 0, DEADLINE),
        ..RegistryConfig::default()
    };
    let state = RegistryState::with_config(
        Arc::clone(&store) as Arc<dyn RevocationStore>,
        Arc::new(SlowAuthorizer),
        config,
    );
    (router(state), store)
}

/// `POST /v1/revocations` revoking `value` with `token`: status, `Retry-After`, body.
async fn revoke(app: &Router, token: &str, value: &str) -> (StatusCode, Option<String>, Value) {
    let body = json!({"kind": "principal", "value": value, "reason": "test"}).to_string();
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/revocations")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from(body))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, retry_after, serde_json::from_slice(&bytes).unwrap())
}

#[track_caller]
fn assert_refused(reply: &(StatusCode, Option<String>, Value), code: &str, needle: &str) {
    let (status, retry_after, body) = reply;
    assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"), "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(needle),
        "message should contain {needle:?}: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_past_the_deadline_and_one_finding_the_pool_busy_are_503_and_write_nothing() {
    let (app, store) = app();

    // The slow mandate outlives the deadline: refused, fail closed.
    let late = revoke(&app, SLOW_TOKEN, "bob").await;
    assert_refused(&late, "deadline_exceeded", "did not finish within 50ms");

    // Its evaluation still holds the only worker: the next write, however
    // cheap its mandate, is refused as overload instead of running beside it.
    let busy = revoke(&app, FAST_TOKEN, "carol").await;
    assert_refused(&busy, "overloaded", "retry later");
    assert_eq!(store.current_seq().unwrap(), 0, "nothing was written");

    // Once the slow evaluation returns, writes go through again.
    let mut written = None;
    for _ in 0..100 {
        let reply = revoke(&app, FAST_TOKEN, "carol").await;
        if reply.0 == StatusCode::CREATED {
            written = Some(reply.2);
            break;
        }
        assert_refused(&reply, "overloaded", "retry later");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let entry = written.expect("the worker came back after the slow evaluation returned");
    assert_eq!(entry["value"], "carol");
    assert_eq!(entry["revoked_by"], "fast operator");
    assert_eq!(store.current_seq().unwrap(), 1);
}
