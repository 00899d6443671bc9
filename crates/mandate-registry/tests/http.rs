//! The HTTP API driven through `router(..)` with `oneshot`: status codes, the error shape,
//! paging, and the stream's ordering guarantees.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use common::{memory_state, SseReader, TestAuthorizer, OPERATOR_TOKEN, READER_TOKEN};
use http_body_util::BodyExt;
use mandate_registry::{
    router, MandateWriteAuthorizer, MemoryStore, NewRevocation, RegistryConfig, RegistryState,
    RevocationEntry, RevocationKind, RevocationStore, MAX_ACTOR_LEN,
};
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

/// A read with the reader's mandate.
fn get(uri: &str) -> Request<Body> {
    Request::builder()
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {READER_TOKEN}"))
        .body(Body::empty())
        .unwrap()
}

/// A read without any mandate.
fn get_anonymous(uri: &str) -> Request<Body> {
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

/// A body that breaks off mid-upload (the client went away) is not "too large".
#[tokio::test]
async fn a_body_that_cannot_be_read_is_400_not_413() {
    let (app, store) = app();
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(br#"{"kind": "task", "#)),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ];
    let body = Body::from_stream(futures_util::stream::iter(chunks));
    let (status, error) = send(&app, post("/v1/revocations", Some(OPERATOR_TOKEN), body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error_code(&error), "body_unreadable");
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
    assert_eq!(page["epoch"], store.epoch().unwrap(), "pages name the log");
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

    let epoch = store.epoch().unwrap();
    let hello = events.next(WAIT).await;
    assert_eq!(hello.event, "hello");
    assert_eq!(hello.data["current_seq"], 3);
    assert_eq!(hello.data["epoch"], epoch, "hello names the log");
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
    assert_eq!(heartbeat.data["epoch"], epoch, "heartbeats name the log");

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
                assert_eq!(event.data["epoch"], epoch);
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
        json!({"current_seq": 33, "epoch": epoch, "subscribers": 1, "seq": 33, "applied_by": 1})
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

/// Opens a stream; `from` sets the client address as `serve` would.
async fn open_stream(app: &Router, from: Option<&str>) -> axum::response::Response {
    let mut request = get("/v1/revocations/stream");
    if let Some(addr) = from {
        let addr: SocketAddr = addr.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(addr));
    }
    app.clone().oneshot(request).await.unwrap()
}

/// The status and error code of a refused stream request.
async fn refusal(response: axum::response::Response) -> (StatusCode, String) {
    let status = response.status();
    // An accepted stream's body never ends: do not wait for it.
    assert_ne!(status, StatusCode::OK, "the stream was not refused");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    (status, error_code(&body).to_owned())
}

#[tokio::test]
async fn streams_are_limited_per_client_address() {
    let config = RegistryConfig {
        max_streams_per_peer: 2,
        ..RegistryConfig::default()
    };
    let (state, _) = memory_state(config);
    let app = router(state.clone());

    // Without connection info (`oneshot`), every client is in one group.
    let first = open_stream(&app, None).await;
    let second = open_stream(&app, None).await;
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    assert_eq!(
        refusal(open_stream(&app, None).await).await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams_from_peer".to_owned()
        )
    );

    // Other addresses have their own allowance; one IPv6 /64 is one group.
    let v4 = open_stream(&app, Some("192.0.2.7:5000")).await;
    assert_eq!(v4.status(), StatusCode::OK);
    let mapped = open_stream(&app, Some("[::ffff:192.0.2.7]:5001")).await;
    assert_eq!(
        mapped.status(),
        StatusCode::OK,
        "IPv4-mapped is the same address"
    );
    assert_eq!(
        refusal(open_stream(&app, Some("192.0.2.7:5002")).await).await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams_from_peer".to_owned()
        )
    );
    let v6 = open_stream(&app, Some("[2001:db8:1:2::1]:5000")).await;
    let v6_same_net = open_stream(&app, Some("[2001:db8:1:2:ffff::9]:5000")).await;
    assert_eq!(
        (v6.status(), v6_same_net.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    assert_eq!(
        refusal(open_stream(&app, Some("[2001:db8:1:2::3]:5000")).await).await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams_from_peer".to_owned()
        )
    );
    assert_eq!(state.subscriber_count(), 6);

    // Closing a stream frees its slot.
    drop(first);
    tokio::time::timeout(WAIT, async {
        loop {
            let again = open_stream(&app, None).await;
            if again.status() == StatusCode::OK {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("a closed stream's slot is reused");
}

#[tokio::test]
async fn the_global_stream_limit_still_applies() {
    let config = RegistryConfig {
        max_subscribers: 1,
        ..RegistryConfig::default()
    };
    let (state, _) = memory_state(config);
    let app = router(state);
    let _open = open_stream(&app, Some("192.0.2.1:1")).await;
    assert_eq!(
        refusal(open_stream(&app, Some("192.0.2.2:1")).await).await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_subscribers".to_owned()
        )
    );
}

#[tokio::test]
async fn a_stream_whose_client_stops_reading_is_dropped() {
    let config = RegistryConfig {
        heartbeat_interval: Duration::from_millis(10),
        stream_send_timeout: Duration::from_millis(100),
        ..RegistryConfig::default()
    };
    let (state, _) = memory_state(config);
    let app = router(state.clone());
    // The response is held but its body never read: heartbeats fill the buffer.
    let response = open_stream(&app, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(state.subscriber_count(), 1);
    tokio::time::timeout(WAIT, async {
        while state.subscriber_count() != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the stream of a client that does not read is closed");
    drop(response);
}

#[tokio::test]
async fn an_absurd_heartbeat_interval_is_clamped_and_streams_keep_running() {
    let interval = humantime::parse_duration("500000000000y").unwrap();
    let (state, _) = memory_state(RegistryConfig {
        heartbeat_interval: interval,
        ..RegistryConfig::default()
    });
    assert_eq!(
        state.config().heartbeat_interval,
        RegistryConfig::MAX_HEARTBEAT_INTERVAL
    );
    let app = router(state.clone());
    let response = open_stream(&app, None).await;
    let mut events = SseReader::new(response.into_body());
    assert_eq!(events.next(WAIT).await.event, "hello");
    assert_eq!(events.next(WAIT).await.event, "heartbeat");
    // The stream task sets up its ticker after the first heartbeat; it must survive it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        state.subscriber_count(),
        1,
        "the stream task is still running"
    );

    let (tiny, _) = memory_state(RegistryConfig {
        heartbeat_interval: Duration::from_nanos(1),
        ..RegistryConfig::default()
    });
    assert_eq!(
        tiny.config().heartbeat_interval,
        RegistryConfig::MIN_HEARTBEAT_INTERVAL
    );
}

/// A store whose appends wait for the test's go-ahead, so a write can be abandoned
/// while the store is busy with it.
struct GatedStore {
    inner: MemoryStore,
    entered: Mutex<mpsc::Sender<()>>,
    proceed: Mutex<mpsc::Receiver<()>>,
}

impl RevocationStore for GatedStore {
    fn append(&self, new: NewRevocation) -> mandate_registry::Result<RevocationEntry> {
        self.entered.lock().unwrap().send(()).unwrap();
        self.proceed.lock().unwrap().recv().unwrap();
        self.inner.append(new)
    }
    fn list_after(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> mandate_registry::Result<Vec<RevocationEntry>> {
        self.inner.list_after(after_seq, limit)
    }
    fn current_seq(&self) -> mandate_registry::Result<u64> {
        self.inner.current_seq()
    }
    fn epoch(&self) -> mandate_registry::Result<String> {
        self.inner.epoch()
    }
}

#[tokio::test]
async fn an_entry_is_broadcast_even_when_its_writer_disconnects() {
    let (entered_tx, entered) = mpsc::channel();
    let (proceed, proceed_rx) = mpsc::channel();
    let store = Arc::new(GatedStore {
        inner: MemoryStore::new(),
        entered: Mutex::new(entered_tx),
        proceed: Mutex::new(proceed_rx),
    });
    // Heartbeats (which also re-read the store) are an hour apart: only the broadcast
    // can deliver the entry within this test.
    let config = RegistryConfig {
        heartbeat_interval: RegistryConfig::MAX_HEARTBEAT_INTERVAL,
        ..RegistryConfig::default()
    };
    let state = RegistryState::with_config(store, Arc::new(TestAuthorizer), config);
    let app = router(state);
    let mut events = SseReader::new(open_stream(&app, None).await.into_body());
    assert_eq!(events.next(WAIT).await.event, "hello");
    assert_eq!(events.next(WAIT).await.event, "heartbeat");

    let body = json!({"kind": "principal", "value": "bob"}).to_string();
    let write = tokio::spawn(app.clone().oneshot(post(
        "/v1/revocations",
        Some(OPERATOR_TOKEN),
        body,
    )));
    tokio::task::spawn_blocking(move || entered.recv_timeout(WAIT))
        .await
        .unwrap()
        .expect("the write reached the store");
    // The client disconnects: its handler future is dropped mid-append.
    write.abort();
    assert!(write.await.unwrap_err().is_cancelled());
    proceed.send(()).unwrap();

    let event = events.next(WAIT).await;
    assert_eq!(event.event, "revocation");
    assert_eq!(
        (event.data["seq"].as_u64(), event.data["value"].as_str()),
        (Some(1), Some("bob"))
    );
}

/// Principal and agent names may each be 256 bytes, so `"{principal} via {chain}"` can
/// exceed the `revoked_by` limit; an authorized write must still succeed.
#[tokio::test]
async fn an_authorized_write_with_long_names_is_recorded() {
    use mandate_core::{KeySet, Restrictions, RootKey, SecretKey};

    let secret = SecretKey::generate();
    let keys = KeySet::single(secret.public());
    let root = RootKey {
        secret,
        key_id: Some(1),
    };
    let principal = "p".repeat(256);
    let agent = "a".repeat(256);
    let token = mandate_issuer::mint(
        &root,
        &mandate_issuer::MintRequest {
            principal: principal.clone(),
            agent: agent.clone(),
            agent_key: None,
            task: Some("ops".into()),
            rights: vec!["registry:revoke".parse().unwrap()],
            ttl: Duration::from_secs(600),
            restrictions: Restrictions::default(),
            now: SystemTime::now(),
        },
    )
    .unwrap()
    .to_base64()
    .unwrap();
    // A bearer operator mandate: this test is about the length of names, not keys.
    let authorizer = MandateWriteAuthorizer::allowing_bearer_writes(
        mandate_verifier::Verifier::builder().root_keys(keys),
    )
    .unwrap();
    let state = RegistryState::new(Arc::new(MemoryStore::new()), Arc::new(authorizer));
    let app = router(state);

    let body = json!({"kind": "task", "value": "t1"}).to_string();
    let (status, entry) = send(&app, post("/v1/revocations", Some(&token), body)).await;
    assert_eq!(status, StatusCode::CREATED, "{entry}");
    let revoked_by = entry["revoked_by"].as_str().unwrap();
    assert!(
        revoked_by.len() <= MAX_ACTOR_LEN,
        "{} bytes",
        revoked_by.len()
    );
    assert!(revoked_by.starts_with(&principal[..200]), "{revoked_by}");
    assert!(revoked_by.contains(" via "), "{revoked_by}");
    assert!(revoked_by.contains(&agent[..200]), "{revoked_by}");
    assert!(revoked_by.ends_with('…'), "{revoked_by}");
}

/// Revocation entries name principals and carry reasons: reading them needs a mandate,
/// and an attempt without one is refused before it can take a stream slot.
#[tokio::test]
async fn reads_without_a_mandate_are_401_and_take_no_stream_slot() {
    let config = RegistryConfig {
        max_streams_per_peer: 1,
        max_subscribers: 1,
        ..RegistryConfig::default()
    };
    let (state, _) = memory_state(config);
    let app = router(state.clone());
    for uri in [
        "/v1/revocations",
        "/v1/status",
        "/v1/revocations/stream",
        "/v1/revocations/stream?after=0",
    ] {
        let (status, error) = send(&app, get_anonymous(uri)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}: {error}");
        assert_eq!(error_code(&error), "unauthenticated", "{uri}");
        assert_eq!(
            error["error"]["message"], "missing Authorization header",
            "{uri}"
        );
        let mut forged = get_anonymous(uri);
        forged
            .headers_mut()
            .insert(header::AUTHORIZATION, "Bearer forged".parse().unwrap());
        let (status, error) = send(&app, forged).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}: {error}");
        assert_eq!(error["error"]["message"], "token not recognised", "{uri}");
    }
    assert_eq!(
        state.subscriber_count(),
        0,
        "no refused attempt holds a slot"
    );

    let (status, page) = send(&app, get("/v1/revocations")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (status, body) = send(&app, get("/v1/status")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The `Mandate` scheme is accepted as well as `Bearer`.
    let mut scheme = get_anonymous("/v1/status");
    scheme.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Mandate {READER_TOKEN}").parse().unwrap(),
    );
    let (status, body) = send(&app, scheme).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The one slot (global and per address) is still free for a reader.
    let stream = open_stream(&app, None).await;
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(state.subscriber_count(), 1);
}
