//! The middleware for Rust services, driven with `oneshot` (no socket): a
//! handler runs only after an allow and sees who the mandate acts for; every
//! refusal has its status, code and challenge; the proof binds method, path
//! and body; and a call in flight is stopped when its task is revoked or the
//! revocation state goes stale.
//!
//! Nothing here asserts on elapsed time: waits are bounded only so that a
//! broken build fails instead of hanging.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, Request as HttpRequest, Response, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt as _;
use mandate_core::{
    AttrValue, KeySet, Proof, Request, ResourcePath, Restrictions, RootKey, SecretKey,
    UnverifiedMandate,
};
use mandate_issuer::{mint, MintRequest};
use mandate_verifier::http::ApiError;
use mandate_verifier::middleware::{Call, MandateLayer, Mandated};
use mandate_verifier::pool::EvalPool;
use mandate_verifier::{RevocationCheck, RevocationDenial, RevocationSubject, Verifier};
use serde_json::{json, Value};
use tokio::sync::watch;
use tower::ServiceExt as _;

/// The longest any step may take before the test is declared hung.
const HUNG: Duration = Duration::from_secs(20);
const TASK: &str = "month-end";

// ---------------------------------------------------------------------------
// A revocation source the test controls
// ---------------------------------------------------------------------------

/// Revokes one task, or plays stale; notifies watchers when it can.
#[derive(Debug)]
struct Switch {
    revoked_task: Mutex<Option<String>>,
    stale: Mutex<bool>,
    /// `None`: a source that cannot notify (watchers poll).
    changes: Option<watch::Sender<u64>>,
}

impl Switch {
    fn new(notifies: bool) -> Arc<Switch> {
        Arc::new(Switch {
            revoked_task: Mutex::new(None),
            stale: Mutex::new(false),
            changes: notifies.then(|| watch::channel(0).0),
        })
    }

    fn changed(&self) {
        if let Some(changes) = &self.changes {
            changes.send_modify(|n| *n += 1);
        }
    }

    fn revoke_task(&self, task: &str) {
        *self.revoked_task.lock().unwrap() = Some(task.to_owned());
        self.changed();
    }

    fn go_stale(&self) {
        *self.stale.lock().unwrap() = true;
        self.changed();
    }
}

impl RevocationCheck for Switch {
    fn check(&self, subject: &RevocationSubject<'_>) -> Result<(), RevocationDenial> {
        if *self.stale.lock().unwrap() {
            return Err(RevocationDenial::Stale {
                detail: "never synced".into(),
            });
        }
        match self.revoked_task.lock().unwrap().as_deref() {
            Some(task) if task == subject.task => Err(RevocationDenial::Revoked {
                kind: "task".into(),
                value: task.into(),
                seq: 1,
                reason: "closed early".into(),
            }),
            _ => Ok(()),
        }
    }

    fn changes(&self) -> Option<watch::Receiver<u64>> {
        self.changes.as_ref().map(watch::Sender::subscribe)
    }
}

// ---------------------------------------------------------------------------
// Tokens and signed requests
// ---------------------------------------------------------------------------

/// A root, the agent's key, and mandates minted for `alice` in [`TASK`].
struct Keys {
    root: RootKey,
    agent: SecretKey,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            root: RootKey {
                secret: SecretKey::generate(),
                key_id: None,
            },
            agent: SecretKey::generate(),
        }
    }

    fn verifier(&self, switch: Arc<Switch>) -> Verifier {
        Verifier::builder()
            .root_keys(KeySet::single(self.root.secret.public()))
            .revocation(switch)
            .build()
            .unwrap()
    }

    /// A mandate held by `ledger-agent` (keyed) granting `rights`.
    fn mandate(&self, rights: &[&str], restrictions: Restrictions, now: SystemTime) -> String {
        mint(
            &self.root,
            &MintRequest {
                principal: "alice".into(),
                agent: "ledger-agent".into(),
                agent_key: Some(self.agent.public()),
                task: Some(TASK.into()),
                rights: rights.iter().map(|r| r.parse().unwrap()).collect(),
                ttl: Duration::from_secs(600),
                restrictions,
                now,
            },
        )
        .unwrap()
        .to_base64()
        .unwrap()
    }

    fn reader(&self) -> String {
        self.mandate(
            &["accounts:read"],
            Restrictions::default(),
            SystemTime::now(),
        )
    }
}

/// What the client signs: the call as the service maps it, plus the HTTP
/// binding the middleware adds.
struct Signed<'a> {
    method: &'a str,
    path: &'a str,
    operation: &'a str,
    attrs: Vec<(&'a str, AttrValue)>,
    body: Option<&'a [u8]>,
}

impl Signed<'_> {
    fn read(path: &str) -> Signed<'_> {
        Signed {
            method: "GET",
            path,
            operation: "read",
            attrs: vec![("account", AttrValue::Str("acc-1".into()))],
            body: None,
        }
    }
}

/// An HTTP request carrying `token` and, when `signer` is given, a proof of
/// possession over `signed`, sent as `sent_body`.
fn request(
    token: &str,
    signer: Option<&SecretKey>,
    signed: &Signed<'_>,
    sent_body: &[u8],
) -> HttpRequest<Body> {
    let mut builder = HttpRequest::builder()
        .method(signed.method)
        .uri(signed.path)
        .header(header::AUTHORIZATION, format!("Mandate {token}"));
    if let Some(key) = signer {
        let now = SystemTime::now();
        let mut request = Request::new(
            "accounts",
            signed.operation,
            ResourcePath::parse("/accounts/acc-1").unwrap(),
            now,
        );
        for (key, value) in &signed.attrs {
            request = request.with_attr((*key).to_owned(), value.clone()).unwrap();
        }
        let mut binding = vec![
            ("http_method", signed.method.to_owned()),
            ("http_path", signed.path.to_owned()),
        ];
        if let Some(body) = signed.body {
            binding.push(("body_sha256", sha256_hex(body)));
        }
        for (key, value) in binding {
            request = request
                .with_attr(key.to_owned(), AttrValue::Str(value))
                .unwrap();
        }
        let digest = UnverifiedMandate::from_base64(token).unwrap().digest_hex();
        let proof = Proof::sign(key, &digest, &request, now);
        builder = builder.header("Mandate-PoP", proof.to_text());
    }
    builder.body(Body::from(sent_body.to_vec())).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------------------
// The service under test
// ---------------------------------------------------------------------------

/// How often a handler ran, and a note from handlers that wait.
#[derive(Clone)]
struct Handlers {
    ran: Arc<AtomicUsize>,
    waiting: tokio::sync::mpsc::UnboundedSender<()>,
}

/// `/accounts/{id}/...` is a read of `/accounts/{id}`; `/accounts` alone
/// names no account.
fn map(parts: &Parts) -> Result<Call, ApiError> {
    let rest = parts.uri.path().strip_prefix("/accounts/").unwrap_or("");
    let Some((id, _)) = rest.split_once('/') else {
        return Err(ApiError::bad_request(
            "bad_request",
            "name an account: /accounts/{id}/...",
        ));
    };
    Ok(Call::new("accounts", "read", format!("/accounts/{id}"))
        .attr("account", AttrValue::Str(id.to_owned())))
}

/// `POST /accounts/{id}/transfer` with `{"amount": N}`: the amount is an
/// attribute, read from the exact body the proof signed.
fn map_transfer(parts: &Parts, body: &[u8]) -> Result<Call, ApiError> {
    let id = parts
        .uri
        .path()
        .strip_prefix("/accounts/")
        .and_then(|rest| rest.strip_suffix("/transfer"))
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route"))?;
    let body: Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::bad_request("bad_request", "expected JSON"))?;
    let amount = body["amount"]
        .as_i64()
        .ok_or_else(|| ApiError::bad_request("bad_request", "expected an integer amount"))?;
    Ok(Call::new("accounts", "transfer", format!("/accounts/{id}"))
        .attr("account", AttrValue::Str(id.to_owned()))
        .attr("amount", AttrValue::Int(amount)))
}

async fn balance(State(handlers): State<Handlers>, mandate: Mandated) -> Json<Value> {
    handlers.ran.fetch_add(1, Ordering::SeqCst);
    Json(json!({
        "principal": mandate.principal(),
        "agent": mandate.agent(),
        "chain": mandate.chain(),
        "task": mandate.task(),
        "token_id": mandate.token_id(),
        "allowed": mandate.decision().allowed,
    }))
}

/// Runs until its mandate is revoked, then answers with the denial.
async fn wait_until_revoked(State(handlers): State<Handlers>, mandate: Mandated) -> String {
    handlers.ran.fetch_add(1, Ordering::SeqCst);
    let revoked = mandate.revoked();
    handlers.waiting.send(()).unwrap();
    revoked.await.to_string()
}

/// Streams `record N` lines forever, ending with an `error:` line once the
/// mandate is revoked.
async fn records(State(handlers): State<Handlers>, mandate: Mandated) -> Body {
    handlers.ran.fetch_add(1, Ordering::SeqCst);
    let lines = futures_util::stream::unfold(0u64, |n| async move {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Some((Ok::<_, std::io::Error>(format!("record {n}\n")), n + 1))
    });
    let lines = mandate
        .cancellation()
        .until_revoked(lines, |denial| Ok(format!("error: {denial}\n")));
    Body::from_stream(lines)
}

async fn transfer(State(handlers): State<Handlers>, mandate: Mandated, body: Bytes) -> String {
    handlers.ran.fetch_add(1, Ordering::SeqCst);
    format!(
        "{} moved, handler saw {}",
        mandate.decision().attrs[1].1,
        String::from_utf8_lossy(&body)
    )
}

struct App {
    router: Router,
    ran: Arc<AtomicUsize>,
    waiting: tokio::sync::mpsc::UnboundedReceiver<()>,
}

impl App {
    fn new(verifier: Verifier, pool: EvalPool) -> App {
        let ran = Arc::new(AtomicUsize::new(0));
        let (tx, waiting) = tokio::sync::mpsc::unbounded_channel();
        let handlers = Handlers {
            ran: Arc::clone(&ran),
            waiting: tx,
        };
        let reads = MandateLayer::new(verifier.clone(), pool.clone(), map)
            .realm("accounts")
            .recheck_every(Duration::from_millis(10));
        let transfers = MandateLayer::with_body(verifier, pool, map_transfer).realm("accounts");
        let router = Router::new()
            .route("/accounts/{id}/balance", get(balance))
            .route("/accounts/{id}/wait", get(wait_until_revoked))
            .route("/accounts/{id}/records", get(records))
            .route("/accounts", get(balance))
            .route_layer(reads)
            .merge(
                Router::new()
                    .route("/accounts/{id}/transfer", post(transfer))
                    .route_layer(transfers),
            )
            .with_state(handlers);
        App {
            router,
            ran,
            waiting,
        }
    }

    async fn send(&self, request: HttpRequest<Body>) -> Response<Body> {
        tokio::time::timeout(HUNG, self.router.clone().oneshot(request))
            .await
            .expect("hung")
            .unwrap()
    }

    fn ran(&self) -> usize {
        self.ran.load(Ordering::SeqCst)
    }
}

fn app(keys: &Keys, switch: Arc<Switch>) -> App {
    App::new(
        keys.verifier(switch),
        EvalPool::new(2, Duration::from_secs(10)),
    )
}

async fn text(response: Response<Body>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

async fn json_body(response: Response<Body>) -> Value {
    serde_json::from_str(&text(response).await).unwrap()
}

/// Asserts the one error shape with `status` and `code`; returns the message.
async fn error(response: Response<Body>, status: StatusCode, code: &str) -> String {
    assert_eq!(response.status(), status);
    let body = json_body(response).await;
    assert_eq!(body["error"]["code"], code, "{body}");
    body["error"]["message"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_call_reaches_the_handler_with_the_verified_mandate() {
    let keys = Keys::new();
    let app = app(&keys, Switch::new(true));
    let token = keys.reader();
    let read = Signed::read("/accounts/acc-1/balance");
    let response = app
        .send(request(&token, Some(&keys.agent), &read, b""))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = json_body(response).await;
    assert_eq!(body["principal"], "alice");
    assert_eq!(body["agent"], "ledger-agent");
    assert_eq!(body["chain"], json!(["ledger-agent"]));
    assert_eq!(body["task"], TASK);
    assert_eq!(body["allowed"], true);
    let token_id = UnverifiedMandate::from_base64(&token)
        .unwrap()
        .token_id_hex();
    assert_eq!(body["token_id"], token_id);
    assert_eq!(app.ran(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_call_is_403_with_the_reason_and_the_handler_never_runs() {
    let keys = Keys::new();
    let app = app(&keys, Switch::new(true));
    let token = keys.mandate(
        &["accounts:transfer"],
        Restrictions::default(),
        SystemTime::now(),
    );
    let read = Signed::read("/accounts/acc-1/balance");
    let response = app
        .send(request(&token, Some(&keys.agent), &read, b""))
        .await;
    let message = error(response, StatusCode::FORBIDDEN, "denied").await;
    assert!(message.contains("right($s, $o)"), "{message}");
    assert_eq!(app.ran(), 0, "the handler must not run on a deny");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_task_is_403_naming_the_revocation() {
    let keys = Keys::new();
    let switch = Switch::new(true);
    let app = app(&keys, Arc::clone(&switch));
    switch.revoke_task(TASK);
    let read = Signed::read("/accounts/acc-1/balance");
    let response = app
        .send(request(&keys.reader(), Some(&keys.agent), &read, b""))
        .await;
    let message = error(response, StatusCode::FORBIDDEN, "denied").await;
    assert!(message.contains("revoked: task month-end"), "{message}");
    assert_eq!(app.ran(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_answer_is_401_with_a_challenge() {
    let keys = Keys::new();
    let app = app(&keys, Switch::new(true));
    let bare = HttpRequest::get("/accounts/acc-1/balance")
        .body(Body::empty())
        .unwrap();
    let response = app.send(bare).await;
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        r#"Mandate realm="accounts""#
    );
    let message = error(response, StatusCode::UNAUTHORIZED, "missing_token").await;
    assert!(message.contains("Authorization: Mandate"), "{message}");

    for value in ["Basic dXNlcjpwYXNz", "Mandate ", "Mandate not-a-token"] {
        let bad = HttpRequest::get("/accounts/acc-1/balance")
            .header(header::AUTHORIZATION, value)
            .body(Body::empty())
            .unwrap();
        let response = app.send(bad).await;
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            r#"Mandate realm="accounts", error="invalid_token""#,
            "{value}"
        );
        error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    assert_eq!(app.ran(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_is_accepted_as_the_scheme_too() {
    let keys = Keys::new();
    let app = app(&keys, Switch::new(true));
    let mut request = request(
        &keys.reader(),
        Some(&keys.agent),
        &Signed::read("/accounts/acc-1/balance"),
        b"",
    );
    let value = request.headers()[header::AUTHORIZATION]
        .to_str()
        .unwrap()
        .replacen("Mandate", "Bearer", 1);
    request
        .headers_mut()
        .insert(header::AUTHORIZATION, value.parse().unwrap());
    assert_eq!(app.send(request).await.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_401_expired_token() {
    let keys = Keys::new();
    let app = app(&keys, Switch::new(true));
    let long_ago = SystemTime::now() - Duration::from_secs(3600);
    let token = keys.mandate(&["accounts:read"], Restrictions::default(), long_ago);
    let read = Signed::read("/accounts/acc-1/balance");
    let response = app
        .send(request(&token, Some(&keys.agent), &read, b""))
        .await;
    let message = error(response, StatusCode::UNAUTHORIZED, "expired_token").await;
    assert!(message.contains("expired"), "{message}");
    assert_eq!(app.ran(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_mandate_needs_a_proof_for_this_very_method_and_path() {
    let keys = Keys::new();
    let app = app(&keys, Switch::new(true));
    let token = keys.reader();
    let read = Signed::read("/accounts/acc-1/balance");

    let response = app.send(request(&token, None, &read, b"")).await;
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        r#"Mandate realm="accounts", error="invalid_proof""#
    );
    let message = error(response, StatusCode::UNAUTHORIZED, "invalid_proof").await;
    assert!(
        message.contains("required from agent ledger-agent"),
        "{message}"
    );

    // A proof made for another path does not carry over.
    let mut elsewhere = request(&token, Some(&keys.agent), &read, b"");
    *elsewhere.uri_mut() = "/accounts/acc-1/records".parse().unwrap();
    let message = error(
        app.send(elsewhere).await,
        StatusCode::UNAUTHORIZED,
        "invalid_proof",
    )
    .await;
    assert!(message.contains("does not verify"), "{message}");

    // Nor does a proof stranger than text.
    let mut garbled = request(&token, Some(&keys.agent), &read, b"");
    garbled
        .headers_mut()
        .insert("Mandate-PoP", "v1.not-a-proof".parse().unwrap());
    error(
        app.send(garbled).await,
        StatusCode::UNAUTHORIZED,
        "invalid_proof",
    )
    .await;
    assert_eq!(app.ran(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_body_is_bound_by_the_proof_and_seen_by_the_mapping() {
    let keys = Keys::new();
    let app = app(&keys, Switch::new(true));
    let token = keys.mandate(
        &["accounts:transfer"],
        Restrictions {
            attr_max: vec![("amount".into(), 100)],
            ..Restrictions::default()
        },
        SystemTime::now(),
    );
    let transfer = |body: &'static [u8], amount: i64| Signed {
        method: "POST",
        path: "/accounts/acc-1/transfer",
        operation: "transfer",
        attrs: vec![
            ("account", AttrValue::Str("acc-1".into())),
            ("amount", AttrValue::Int(amount)),
        ],
        body: Some(body),
    };
    let small: &[u8] = br#"{"amount": 40}"#;
    let response = app
        .send(request(
            &token,
            Some(&keys.agent),
            &transfer(small, 40),
            small,
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        text(response).await,
        r#"40 moved, handler saw {"amount": 40}"#
    );

    let large: &[u8] = br#"{"amount": 150}"#;
    let response = app
        .send(request(
            &token,
            Some(&keys.agent),
            &transfer(large, 150),
            large,
        ))
        .await;
    let message = error(response, StatusCode::FORBIDDEN, "denied").await;
    assert!(
        message.contains(r#"attr("amount", $v), $v <= 100"#),
        "{message}"
    );

    // A proof over one body does not authorize another.
    let response = app
        .send(request(
            &token,
            Some(&keys.agent),
            &transfer(small, 40),
            large,
        ))
        .await;
    error(response, StatusCode::UNAUTHORIZED, "invalid_proof").await;

    // A body the mapping cannot read is its refusal, before any evaluation.
    let response = app
        .send(request(
            &token,
            Some(&keys.agent),
            &transfer(small, 40),
            b"{",
        ))
        .await;
    error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    assert_eq!(app.ran(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_refusal_is_answered_as_it_is() {
    let keys = Keys::new();
    let app = app(&keys, Switch::new(true));
    let response = app
        .send(request(
            &keys.reader(),
            None,
            &Signed::read("/accounts"),
            b"",
        ))
        .await;
    let message = error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    assert_eq!(message, "name an account: /accounts/{id}/...");
    assert_eq!(app.ran(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_pool_is_503_with_retry_after_and_the_handler_never_runs() {
    let keys = Keys::new();
    let pool = EvalPool::with_queue(1, 0, Duration::from_secs(10));
    let app = App::new(keys.verifier(Switch::new(true)), pool.clone());
    let (started, has_started) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let busy = tokio::spawn(async move {
        pool.run(move || {
            started.send(()).unwrap();
            let _ = released.recv_timeout(HUNG);
        })
        .await
    });
    has_started.recv_timeout(HUNG).unwrap();
    let read = Signed::read("/accounts/acc-1/balance");
    let response = app
        .send(request(&keys.reader(), Some(&keys.agent), &read, b""))
        .await;
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    error(response, StatusCode::SERVICE_UNAVAILABLE, "overloaded").await;
    assert_eq!(app.ran(), 0);
    release.send(()).unwrap();
    busy.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_extractor_refuses_a_handler_reached_without_the_layer() {
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&ran);
    let router: Router = Router::new().route(
        "/accounts/acc-1/balance",
        get(move |mandate: Mandated| async move {
            counter.fetch_add(1, Ordering::SeqCst);
            mandate.principal().to_owned()
        }),
    );
    let response = router
        .oneshot(
            HttpRequest::get("/accounts/acc-1/balance")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let message = error(response, StatusCode::INTERNAL_SERVER_ERROR, "internal").await;
    assert_eq!(message, "internal error");
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------------------
// Calls in flight
// ---------------------------------------------------------------------------

/// Starts a waiting call, then `stop`s it; returns what the handler answered.
async fn stopped_call(switch: Arc<Switch>, stop: impl FnOnce(&Switch)) -> String {
    let keys = Keys::new();
    let mut app = app(&keys, Arc::clone(&switch));
    let read = Signed::read("/accounts/acc-1/wait");
    let call = tokio::spawn(app.router.clone().oneshot(request(
        &keys.reader(),
        Some(&keys.agent),
        &read,
        b"",
    )));
    // The handler holds its allow and is waiting.
    tokio::time::timeout(HUNG, app.waiting.recv())
        .await
        .expect("the handler never started")
        .unwrap();
    stop(&switch);
    let response = tokio::time::timeout(HUNG, call)
        .await
        .expect("the call was never stopped")
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    text(response).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_task_stops_a_call_in_flight() {
    let answer = stopped_call(Switch::new(true), |s| s.revoke_task(TASK)).await;
    assert_eq!(
        answer,
        "revoked: task month-end (revocation #1: closed early)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_revocation_state_stops_a_call_in_flight() {
    let answer = stopped_call(Switch::new(true), Switch::go_stale).await;
    assert_eq!(answer, "revocation state stale: never synced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_cannot_notify_is_polled() {
    let answer = stopped_call(Switch::new(false), |s| s.revoke_task(TASK)).await;
    assert!(answer.starts_with("revoked: task month-end"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_task_revoked_leaves_the_call_running() {
    let keys = Keys::new();
    let switch = Switch::new(true);
    let app = app(&keys, Arc::clone(&switch));
    let response = app
        .send(request(
            &keys.reader(),
            Some(&keys.agent),
            &Signed::read("/accounts/acc-1/records"),
            b"",
        ))
        .await;
    let mut body = response.into_body();
    switch.revoke_task("another-task");
    // Records keep coming after the unrelated change was seen.
    let mut lines = String::new();
    while lines.matches('\n').count() < 5 {
        let frame = tokio::time::timeout(HUNG, body.frame())
            .await
            .expect("hung")
            .unwrap()
            .unwrap();
        lines.push_str(std::str::from_utf8(frame.data_ref().unwrap()).unwrap());
    }
    assert!(!lines.contains("error"), "{lines}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ends_with_an_error_item_when_revoked() {
    let keys = Keys::new();
    let switch = Switch::new(true);
    let app = app(&keys, Arc::clone(&switch));
    let response = app
        .send(request(
            &keys.reader(),
            Some(&keys.agent),
            &Signed::read("/accounts/acc-1/records"),
            b"",
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut received = String::new();
    // Three records, then the revocation.
    while received.matches('\n').count() < 3 {
        let frame = tokio::time::timeout(HUNG, body.frame())
            .await
            .expect("hung")
            .unwrap()
            .unwrap();
        received.push_str(std::str::from_utf8(frame.data_ref().unwrap()).unwrap());
    }
    switch.revoke_task(TASK);
    let rest = tokio::time::timeout(HUNG, body.collect())
        .await
        .expect("the stream never ended")
        .unwrap()
        .to_bytes();
    received.push_str(std::str::from_utf8(&rest).unwrap());
    let lines: Vec<&str> = received.lines().collect();
    let (last, records) = lines.split_last().unwrap();
    assert_eq!(
        *last, "error: revoked: task month-end (revocation #1: closed early)",
        "{received}"
    );
    assert!(records.len() >= 3, "{received}");
    for (n, line) in records.iter().enumerate() {
        assert_eq!(*line, format!("record {n}"), "records stay in order");
    }
}
