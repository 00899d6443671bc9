//! Real mandates over real sockets on 127.0.0.1:0: a proof of possession authorizes the
//! one registry request it was made for (method, path, exact body), writes need a keyed
//! operator mandate unless bearer writes were allowed, and reads need `registry:read`.
//! Every refusal is checked for its status and its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mandate_core::{KeySet, Proof, Restrictions, RootKey, SecretKey};
use mandate_registry::{
    registry_request, serve, Access, HttpBinding, MandateWriteAuthorizer, MemoryStore,
    RegistryAuth, RegistryClient, RegistryConfig, RegistryState, RevocationKind, SharedIndex,
    SubscribeOptions, WriteAuthorizer, WriteDenied, POP_HEADER,
};
use mandate_verifier::Verifier;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const WAIT: Duration = Duration::from_secs(10);
const BAD_PROOF: &str = "proof of possession does not verify for agent operator";

/// A root, the mandates minted under it, and a registry trusting it.
struct World {
    root: RootKey,
    operator_key: SecretKey,
    /// Keyed, `registry:revoke` and `registry:read`, held by `operator`.
    operator: String,
    url: String,
    _stop: oneshot::Sender<()>,
}

fn mint(root: &RootKey, agent: &str, key: Option<&SecretKey>, rights: &[&str]) -> String {
    mandate_issuer::mint(
        root,
        &mandate_issuer::MintRequest {
            principal: "ops".into(),
            agent: agent.into(),
            agent_key: key.map(SecretKey::public),
            task: Some("registry".into()),
            rights: rights.iter().map(|r| r.parse().unwrap()).collect(),
            ttl: Duration::from_secs(600),
            restrictions: Restrictions::default(),
            now: SystemTime::now(),
        },
    )
    .unwrap()
    .to_base64()
    .unwrap()
}

async fn world(bearer_writes: bool, config: RegistryConfig) -> World {
    let root = RootKey {
        secret: SecretKey::generate(),
        key_id: Some(1),
    };
    let builder = Verifier::builder().root_keys(KeySet::single(root.secret.public()));
    let authorizer = if bearer_writes {
        MandateWriteAuthorizer::allowing_bearer_writes(builder)
    } else {
        MandateWriteAuthorizer::new(builder)
    }
    .unwrap();
    let state =
        RegistryState::with_config(Arc::new(MemoryStore::new()), Arc::new(authorizer), config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let operator_key = SecretKey::generate();
    let operator = mint(
        &root,
        "operator",
        Some(&operator_key),
        &["registry:revoke", "registry:read"],
    );
    World {
        root,
        operator_key,
        operator,
        url: format!("http://{addr}"),
        _stop: stop,
    }
}

fn config() -> RegistryConfig {
    RegistryConfig {
        heartbeat_interval: Duration::from_millis(50),
        ..RegistryConfig::default()
    }
}

/// A proof by `key` for exactly this request.
fn proof_for(
    key: &SecretKey,
    token: &str,
    access: Access,
    method: &str,
    path: &str,
    body: &[u8],
) -> String {
    let digest = mandate_core::UnverifiedMandate::from_base64(token)
        .unwrap()
        .digest_hex();
    let now = SystemTime::now();
    let http = HttpBinding { method, path, body };
    let request = registry_request(access, &http, now, None).unwrap();
    Proof::sign(key, &digest, &request, now).to_text()
}

/// Sends `method path` with `body`, the token and the proof; returns status and JSON.
async fn send(
    url: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    proof: Option<&str>,
    body: &[u8],
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client
        .request(method.parse().unwrap(), format!("{url}{path}"))
        .header("content-type", "application/json");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(proof) = proof {
        request = request.header(POP_HEADER, proof);
    }
    if !body.is_empty() {
        request = request.body(body.to_vec());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if path.ends_with("/stream") && status == 200 {
        return (status, Value::Null);
    }
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

const BOB: &[u8] = br#"{"kind":"principal","value":"bob","reason":"compromised"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_write_proof_authorizes_no_other_write() {
    let w = world(false, config()).await;
    let op = Some(w.operator.as_str());
    let captured = proof_for(
        &w.operator_key,
        &w.operator,
        Access::Write,
        "POST",
        "/v1/revocations",
        BOB,
    );
    let proof = Some(captured.as_str());

    // The captured proof, used before its request arrives, on another write.
    let (status, body) = send(&w.url, "POST", "/v1/revocations/lift", op, proof, BOB).await;
    assert_eq!(status, 401, "a lift with the revoke's proof: {body}");
    assert!(message(&body).contains(BAD_PROOF), "{body}");

    let alice = br#"{"kind":"principal","value":"alice","reason":"compromised"}"#;
    let (status, body) = send(&w.url, "POST", "/v1/revocations", op, proof, alice).await;
    assert_eq!(status, 401, "a revoke of another value: {body}");
    assert!(message(&body).contains(BAD_PROOF), "{body}");

    // The same JSON, other bytes: the proof covers the bytes, not their meaning.
    let spaced = br#"{"kind": "principal","value":"bob","reason":"compromised"}"#;
    let (status, body) = send(&w.url, "POST", "/v1/revocations", op, proof, spaced).await;
    assert_eq!(status, 401, "the same write re-serialised: {body}");
    assert!(message(&body).contains(BAD_PROOF), "{body}");

    // Nothing was written, and the refusals did not use up the proof's nonce: it is
    // the binding that refused them. The request it was made for goes through, once.
    let (status, body) = send(&w.url, "POST", "/v1/revocations", op, proof, BOB).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["seq"], 1, "{body}");
    assert_eq!(body["value"], "bob");
    assert_eq!(body["revoked_by"], "ops via operator");
    let (status, body) = send(&w.url, "POST", "/v1/revocations", op, proof, BOB).await;
    assert_eq!(status, 401, "{body}");
    assert!(message(&body).contains("replayed"), "{body}");

    // A lift needs its own proof.
    let lift = proof_for(
        &w.operator_key,
        &w.operator,
        Access::Write,
        "POST",
        "/v1/revocations/lift",
        BOB,
    );
    let (status, body) = send(&w.url, "POST", "/v1/revocations/lift", op, Some(&lift), BOB).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["lifted"], true, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_a_keyed_operator_unless_bearer_writes_are_allowed() {
    let w = world(false, config()).await;
    let bearer = mint(&w.root, "operator", None, &["registry:revoke"]);
    let (status, body) = send(&w.url, "POST", "/v1/revocations", Some(&bearer), None, BOB).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthenticated");
    assert!(
        message(&body).contains("bearer token refused"),
        "the reason names the bearer refusal: {body}"
    );
    // A keyed mandate without its proof.
    let (status, body) = send(
        &w.url,
        "POST",
        "/v1/revocations",
        Some(&w.operator),
        None,
        BOB,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(
        message(&body).contains("proof of possession required from agent operator"),
        "{body}"
    );
    // A keyed mandate and its proof, but only the right to read: 403.
    let reader_key = SecretKey::generate();
    let reader = mint(&w.root, "verifier", Some(&reader_key), &["registry:read"]);
    let auth = RegistryAuth::keyed(reader, reader_key).unwrap();
    let client = RegistryClient::new(&w.url).unwrap();
    let refused = client
        .revoke(&auth, RevocationKind::Principal, "bob", "")
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, mandate_registry::Error::Api { status: 403, message, .. }
            if message.contains(r#"right($s, $o)"#)),
        "{refused:?}"
    );

    let open = world(true, config()).await;
    let bearer = mint(&open.root, "operator", None, &["registry:revoke"]);
    let (status, body) = send(
        &open.url,
        "POST",
        "/v1/revocations",
        Some(&bearer),
        None,
        BOB,
    )
    .await;
    assert_eq!(status, 201, "allowed with bearer writes: {body}");
    // Keyed mandates still need their proof there.
    let (status, body) = send(
        &open.url,
        "POST",
        "/v1/revocations",
        Some(&open.operator),
        None,
        BOB,
    )
    .await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_streams_need_a_read_mandate() {
    let w = world(false, config()).await;
    for path in ["/v1/revocations", "/v1/status", "/v1/revocations/stream"] {
        let (status, body) = send(&w.url, "GET", path, None, None, b"").await;
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(message(&body), "missing Authorization header", "{path}");
    }
    // The operator's write-only mandate does not read.
    let writer_key = SecretKey::generate();
    let writer = mint(&w.root, "writer", Some(&writer_key), &["registry:revoke"]);
    let proof = proof_for(&writer_key, &writer, Access::Read, "GET", "/v1/status", b"");
    let (status, body) = send(
        &w.url,
        "GET",
        "/v1/status",
        Some(&writer),
        Some(&proof),
        b"",
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(message(&body).contains("right($s, $o)"), "{body}");

    // A keyed read mandate: its proof is bound to the path too.
    let reader_key = SecretKey::generate();
    let reader = mint(&w.root, "verifier", Some(&reader_key), &["registry:read"]);
    let for_status = proof_for(&reader_key, &reader, Access::Read, "GET", "/v1/status", b"");
    let (status, body) = send(
        &w.url,
        "GET",
        "/v1/revocations",
        Some(&reader),
        Some(&for_status),
        b"",
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(message(&body).contains("does not verify"), "{body}");
    let (status, body) = send(
        &w.url,
        "GET",
        "/v1/status",
        Some(&reader),
        Some(&for_status),
        b"",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["current_seq"], 0, "{body}");
    // A bearer read mandate is accepted for reads.
    let bearer = mint(&w.root, "dashboard", None, &["registry:read"]);
    let (status, body) = send(&w.url, "GET", "/v1/revocations", Some(&bearer), None, b"").await;
    assert_eq!(status, 200, "{body}");

    // A verifier with the keyed read mandate subscribes and applies a revocation.
    let client = RegistryClient::new(&w.url)
        .unwrap()
        .with_auth(RegistryAuth::keyed(reader, reader_key).unwrap());
    let index = SharedIndex::new(Duration::from_secs(2));
    let _subscription = client.subscribe(index.clone(), SubscribeOptions::default());
    let operator = RegistryAuth::keyed(w.operator.clone(), w.operator_key).unwrap();
    let entry = client
        .revoke(&operator, RevocationKind::Task, "t1", "")
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while index.last_seq() < entry.seq {
        assert!(Instant::now() < deadline, "the verifier never synced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let page = client.list(0, 10).await.unwrap();
    assert_eq!(page.entries.len(), 1);
}

#[test]
fn a_stale_revocation_state_makes_writes_and_reads_unavailable_not_forbidden() {
    let root = RootKey {
        secret: SecretKey::generate(),
        key_id: Some(1),
    };
    // Never synced: the registry cannot vouch that the operator is not revoked.
    let index = SharedIndex::new(Duration::from_secs(2));
    let builder = Verifier::builder()
        .root_keys(KeySet::single(root.secret.public()))
        .revocation(Arc::new(index));
    let authorizer = MandateWriteAuthorizer::allowing_bearer_writes(builder).unwrap();
    let operator = mint(
        &root,
        "operator",
        None,
        &["registry:revoke", "registry:read"],
    );
    let write = HttpBinding {
        method: "POST",
        path: "/v1/revocations",
        body: BOB,
    };
    match authorizer.authorize_write(&operator, None, &write) {
        Err(WriteDenied::Unavailable(message)) => {
            assert!(message.contains("stale"), "{message}");
        }
        other => panic!("a stale state is 503, not a verdict on the operator: {other:?}"),
    }
    let read = HttpBinding {
        method: "GET",
        path: "/v1/revocations",
        body: b"",
    };
    assert!(
        matches!(
            authorizer.authorize_read(&operator, None, &read),
            Err(WriteDenied::Unavailable(_))
        ),
        "reads too"
    );
}
