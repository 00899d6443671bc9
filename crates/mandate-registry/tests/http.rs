//! The HTTP API driven through `router(..)` with `oneshot`: status codes, the error shape,
//! paging, and the stream's ordering guarantees.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use common::{memory_state, SseReader, OPERATOR_TOKEN, READER_TOKEN};
use http_body_util::BodyExt;
use mandate_registry::{router, NewRevocation, RegistryConfig, RevocationKind, RevocationStore};
use serde_json::{json, Value};
use tower::ServiceExt;

const WAIT: Duration = Duration::from_secs(5);

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("non-JSON body: {}", String::from_utf8_lossy(&bytes)))
    };
    (status, body)
}

fn post(uri: &str, token: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(body.into()).unwrap()
}

fn get(uri: &str) -> Request<Body> {
    Request::builder().uri(uri).body(Body::empty()).unwrap()
}

/// Asserts the one error shape and returns the code.
fn error_code(body: &Value) -> &str {
    let error = body.get("error").expect("error object");
    assert!(error["message"].is_string(), "message present: {body}");
    error["code"].as_str().expect("code is a string")
}

fn app() -> (Router, std::sync::Arc<mandate_registry::MemoryStore>) {
    let (state, store) = memory_state(RegistryConfig::default());
    (router(state), store)
}

#[tokio::test]
async fn create_returns_201_with_the_stored_entry() {
    let (app, store) = app();
    let body = json!({"kind": "principal", "value": "bob", "reason": "left the company"});
    let (status, entry) = send(
        &app,
        post("/v1/revocations", Some(OPERATOR_TOKEN), body.to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{entry}");
    assert_eq!(entry["seq"], 1);
    assert_eq!(entry["kind"], "principal");
    assert_eq!(entry["value"], "bob");
    assert_eq!(entry["reason"], "left the company");
    assert_eq!(
        entry["revoked_by"], "operator",
        "actor comes from the authorizer"
    );
    assert_eq!(entry["lifted"], false);
    assert!(
        entry["at"].as_str().unwrap().ends_with('Z'),
        "RFC 3339 time"
    );
    assert_eq!(store.current_seq().unwrap(), 1);

    let body = json!({"kind": "principal", "value": "bob"});
    let (status, lift) = send(
        &app,
        post(
            "/v1/revocations/lift",
            Some(OPERATOR_TOKEN),
            body.to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{lift}");
    assert_eq!(
        (lift["seq"].as_u64(), lift["lifted"].as_bool()),
        (Some(2), Some(true))
    );
    assert_eq!(lift["reason"], "", "reason is optional");
}

#[tokio::test]
async fn writes_without_a_valid_token_are_401_and_without_the_right_403() {
    let (app, store) = app();
    let body = json!({"kind": "task", "value": "t1"}).to_string();

    let (status, error) = send(&app, post("/v1/revocations", None, body.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&error), "unauthenticated");
    assert_eq!(error["error"]["message"], "missing Authorization header");

    let mut basic = post("/v1/revocations", None, body.clone());
    basic
        .headers_mut()
        .insert(header::AUTHORIZATION, "Basic b3A6cHc=".parse().unwrap());
    let (status, error) = send(&app, basic).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        error["error"]["message"],
        "expected Authorization: Bearer <token>"
    );

    let (status, error) = send(&app, post("/v1/revocations", Some("forged"), body.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error["error"]["message"], "token not recognised");

    let (status, error) = send(
        &app,
        post("/v1/revocations/lift", Some(READER_TOKEN), body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&error), "forbidden");
    assert_eq!(error["error"]["message"], "token lacks registry:revoke");

    // Authentication comes before body validation.
    let (status, _) = send(&app, post("/v1/revocations", None, "{not json")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    assert_eq!(store.current_seq().unwrap(), 0, "nothing was written");
}

#[tokio::test]
async fn malformed_or_invalid_bodies_are_400() {
    let (app, store) = app();
    let cases: [(&str, &str, &str, &str); 8] = [
        ("/v1/revocations", "{not json", "bad_request", ""),
        (
            "/v1/revocations",
            r#"{"kind":"key","value":"x"}"#,
            "bad_request",
            "unknown variant",
        ),
        (
            "/v1/revocations",
            r#"{"kind":"task","value":"x","extra":1}"#,
            "bad_request",
            "unknown field",
        ),
        (
            "/v1/revocations",
            r#"{"kind":"task"}"#,
            "bad_request",
            "missing field",
        ),
        (
            "/v1/revocations",
            r#"{"kind":"principal","value":""}"#,
            "invalid_value",
            "value is empty",
        ),
        (
            "/v1/revocations",
            r#"{"kind":"token_id","value":"abc"}"#,
            "invalid_value",
            "even number of hex digits",
        ),
        (
            "/v1/revocations/lift",
            r#"{"kind":"token_id","value":"abcd"}"#,
            "not_liftable",
            "token_id revocations are permanent",
        ),
        (
            "/v1/revocations/lift",
            r#"{"kind":"task","value":"t1"}"#,
            "not_liftable",
            "task revocations are permanent",
        ),
    ];
    for (uri, body, code, message) in cases {
        let (status, error) = send(&app, post(uri, Some(OPERATOR_TOKEN), body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri} {body}: {error}");
        assert_eq!(error_code(&error), code, "{body}");
        let text = error["error"]["message"].as_str().unwrap();
        assert!(
            text.contains(message),
            "{body}: message {text:?} lacks {message:?}"
        );
    }
    assert_eq!(store.current_seq().unwrap(), 0);
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let (app, store) = app();
    let big = json!({"kind": "task", "value": "t", "reason": "x".repeat(20 * 1024)}).to_string();
    let (status, error) = send(&app, post("/v1/revocations", Some(OPERATOR_TOKEN), big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(&error), "body_too_large");
    assert_eq!(store.current_seq().unwrap(), 0);
}

#[tokio::test]
async fn list_pages_through_the_log() {
    let (app, store) = app();
    for i in 0..5 {
        let new = NewRevocation::revoke(RevocationKind::Task, format!("t{i}"), "", "ops").unwrap();
        store.append(new).unwrap();
    }
    let seqs = |page: &Value| -> Vec<u64> {
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect()
    };

    let (status, page) = send(&app, get("/v1/revocations?after=0&limit=2")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seqs(&page), [1, 2]);
    assert_eq!(
        (page["next_after"].as_u64(), page["current_seq"].as_u64()),
        (Some(2), Some(5))
    );

    let (_, page) = send(&app, get("/v1/revocations?after=2&limit=2")).await;
    assert_eq!(seqs(&page), [3, 4]);
    let (_, page) = send(&app, get("/v1/revocations?after=4&limit=2")).await;
    assert_eq!(seqs(&page), [5]);
    assert_eq!(page["next_after"], 5);
    let (_, page) = send(&app, get("/v1/revocations?after=5")).await;
    assert_eq!(seqs(&page), Vec::<u64>::new());
    assert_eq!(page["next_after"], 5, "an empty page keeps `after`");
    let (_, page) = send(&app, get("/v1/revocations")).await;
    assert_eq!(seqs(&page), [1, 2, 3, 4, 5], "defaults: after=0, limit=100");

    for uri in ["/v1/revocations?limit=0", "/v1/revocations?limit=1001"] {
        let (status, error) = send(&app, get(uri)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(error_code(&error), "invalid_limit");
    }
    let (status, error) = send(&app, get("/v1/revocations?after=abc")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&error), "bad_request");
}

#[tokio::test]
async fn unknown_routes_and_methods_use_the_error_shape() {
    let (app, _) = app();
    let (status, error) = send(&app, get("/v1/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&error), "not_found");
    let (status, error) = send(&app, get("/v1/revocations/lift")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(&error), "method_not_allowed");
}

#[tokio::test]
async fn acks_need_an_open_stream_and_a_real_seq() {
    let (app, _) = app();
    let body = json!({"subscriber_id": "nobody", "seq": 0}).to_string();
    let (status, error) = send(&app, post("/v1/subscribers/ack", None, body)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&error), "unknown_subscriber");
    let body = json!({"subscriber_id": "nobody", "seq": 7}).to_string();
    let (status, error) = send(&app, post("/v1/subscribers/ack", None, body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&error), "seq_ahead");
}

#[tokio::test]
async fn a_stream_ahead_of_the_registry_is_refused() {
    let (app, _) = app();
    let (status, error) = send(&app, get("/v1/revocations/stream?after=3")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&error), "ahead_of_registry");
}

#[tokio::test]
async fn the_stream_sends_backlog_then_live_entries_without_gaps_or_repeats() {
    // A tiny broadcast buffer forces the lag path (re-reading the store).
    let config = RegistryConfig {
        heartbeat_interval: Duration::from_millis(50),
        broadcast_capacity: 2,
        ..RegistryConfig::default()
    };
    let (state, store) = memory_state(config);
    let app = router(state.clone());
    for value in ["a", "b", "c"] {
        store
            .append(NewRevocation::revoke(RevocationKind::Agent, value, "", "ops").unwrap())
            .unwrap();
    }

    let response = app
        .clone()
        .oneshot(get("/v1/revocations/stream?after=1"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut events = SseReader::new(response.into_body());

    let hello = events.next(WAIT).await;
    assert_eq!(hello.event, "hello");
    assert_eq!(hello.data["current_seq"], 3);
    let subscriber_id = hello.data["subscriber_id"].as_str().unwrap().to_owned();

    for (seq, value) in [(2, "b"), (3, "c")] {
        let event = events.next(WAIT).await;
        assert_eq!(event.event, "revocation");
        assert_eq!(event.id.as_deref(), Some(seq.to_string().as_str()));
        assert_eq!(
            (event.data["seq"].as_u64(), event.data["value"].as_str()),
            (Some(seq), Some(value))
        );
    }
    let heartbeat = events.next(WAIT).await;
    assert_eq!(heartbeat.event, "heartbeat");
    assert_eq!(
        heartbeat.data["current_seq"], 3,
        "heartbeat follows the backlog"
    );

    // Concurrent writers: broadcasts may arrive out of order or overflow the buffer.
    let writers: Vec<_> = (0..30)
        .map(|i| {
            let state = state.clone();
            tokio::spawn(async move {
                let new = NewRevocation::revoke(RevocationKind::Task, format!("t{i}"), "", "ops")
                    .unwrap();
                state.append(new).await.unwrap()
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let mut seen = Vec::new();
    while seen.last().copied().unwrap_or(3) < 33 {
        let event = events.next(WAIT).await;
        match event.event.as_str() {
            "revocation" => seen.push(event.data["seq"].as_u64().unwrap()),
            "heartbeat" => {
                let vouched = event.data["current_seq"].as_u64().unwrap();
                assert_eq!(
                    vouched,
                    seen.last().copied().unwrap_or(3),
                    "heartbeat seq is the last sent"
                );
            }
            other => panic!("unexpected event {other}"),
        }
    }
    assert_eq!(
        seen,
        (4..=33).collect::<Vec<_>>(),
        "every entry once, in order"
    );

    // Acks feed the status counts.
    let ack = json!({"subscriber_id": subscriber_id, "seq": 33}).to_string();
    let (status, _) = send(&app, post("/v1/subscribers/ack", None, ack)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, status_body) = send(&app, get("/v1/status?seq=33")).await;
    assert_eq!(
        status_body,
        json!({"current_seq": 33, "subscribers": 1, "seq": 33, "applied_by": 1})
    );

    // Closing the stream forgets the subscriber.
    drop(events);
    tokio::time::timeout(WAIT, async {
        while state.subscriber_count() != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("subscriber removed after the stream closed");
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let (state, _) = memory_state(RegistryConfig::default());
    let app = router(state.clone());
    let response = app.oneshot(get("/v1/revocations/stream")).await.unwrap();
    let mut body = response.into_body();
    state.shutdown_streams();
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(frame) = body.frame().await {
            frame.unwrap();
        }
    })
    .await;
    assert!(ended.is_ok(), "stream did not end after shutdown_streams");
}
