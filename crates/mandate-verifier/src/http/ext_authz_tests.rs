#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

use std::time::Duration;

use axum::body::Body;
use axum::http::Request as HttpRequest;
use http_body_util::BodyExt as _;
use mandate_core::{
    delegate_signed, KeySet, Mandate, NextAgent, Request, ResourcePath, Restrictions, RootKey,
    SecretKey,
};
use mandate_issuer::{mint, MintRequest};
use serde_json::Value;
use tower::ServiceExt as _;

use super::*;

const MAPPING: &str = r#"
[[route]]
service = "analytics"
path = "/datasets/{set}/rows"
methods = ["GET"]
operation = "read"
resource = "/datasets/{set}"
attrs = { rows = { query = "rows", type = "int", required = true } }

[[route]]
service = "analytics"
path = "/datasets/**"
operation = "read"
methods = ["GET", "HEAD"]
"#;

/// bob → orchestrator → analytics (signed hop), read-only below
/// /datasets/q3, in task q3.
struct Fixture {
    verifier: Arc<Verifier>,
    token: String,
    digest: String,
    holder: SecretKey,
    other_root_token: String,
}

fn mint_under(root: SecretKey, principal: &str, agent: &str, key: &SecretKey) -> Mandate {
    mint(
        &RootKey {
            secret: root,
            key_id: None,
        },
        &MintRequest {
            principal: principal.into(),
            agent: agent.into(),
            agent_key: Some(key.public()),
            task: Some("q3".into()),
            rights: vec!["analytics:read".parse().unwrap()],
            ttl: Duration::from_secs(600),
            restrictions: Restrictions::default(),
            now: SystemTime::now(),
        },
    )
    .unwrap()
}

fn fixture() -> Fixture {
    let root = SecretKey::generate();
    let root_public = root.public();
    let orchestrator = SecretKey::generate();
    let analytics = SecretKey::generate();
    let parent = mint_under(root, "bob", "orchestrator", &orchestrator);
    let hop = delegate_signed(
        &parent.to_unverified().unwrap(),
        &orchestrator,
        Some(&NextAgent {
            name: "analytics".into(),
            key: analytics.public(),
        }),
        &Restrictions {
            resource_prefixes: vec![ResourcePath::parse("/datasets/q3").unwrap()],
            ..Restrictions::default()
        },
    )
    .unwrap();
    let other = mint_under(SecretKey::generate(), "bob", "orchestrator", &orchestrator);
    Fixture {
        verifier: Arc::new(
            Verifier::builder()
                .root_keys(KeySet::single(root_public))
                .build()
                .unwrap(),
        ),
        token: hop.to_base64().unwrap(),
        digest: hop.digest_hex(),
        holder: analytics,
        other_root_token: other.to_base64().unwrap(),
    }
}

impl Fixture {
    fn app(&self) -> Router {
        self.app_on(EvalPool::default())
    }

    fn app_on(&self, pool: EvalPool) -> Router {
        let mapping = Mapping::from_toml(MAPPING).unwrap();
        ext_authz_router(ExtAuthzState::new(
            Arc::clone(&self.verifier),
            pool,
            mapping,
        ))
    }

    /// A proof for reading `resource` with `attrs`, as `mandate pop` makes it.
    fn proof(&self, resource: &str, attrs: &[(&str, i64)]) -> String {
        let attrs = attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), mandate_core::AttrValue::Int(*v)));
        let now = SystemTime::now();
        let request = Request::validated("analytics", "read", resource, attrs, now).unwrap();
        Proof::sign(&self.holder, &self.digest, &request, now).to_text()
    }

    fn auth(&self) -> String {
        format!("Mandate {}", self.token)
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    #[track_caller]
    fn refused(&self, status: StatusCode, code: &str, needle: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["error"]["code"], code, "{}", self.body);
        let message = self.body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{message:?} should contain {needle:?}"
        );
        assert!(
            self.headers.get(PRINCIPAL_HEADER).is_none(),
            "no identity on a refusal"
        );
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }
}

async fn send(app: &Router, method: &str, uri: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = HttpRequest::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

/// The nginx convention: the proxy names the original request in headers.
async fn via_nginx(app: &Router, method: &str, target: &str, extra: &[(&str, &str)]) -> Answer {
    let mut headers = vec![("x-original-method", method), ("x-original-uri", target)];
    headers.extend_from_slice(extra);
    send(app, "GET", EXT_AUTHZ_PATH, &headers).await
}

#[tokio::test]
async fn an_allowed_request_answers_200_with_the_identity_headers() {
    let fx = fixture();
    let app = fx.app();
    let auth = fx.auth();
    let pop = fx.proof("/datasets/q3/sales", &[]);
    let answer = via_nginx(
        &app,
        "GET",
        "/datasets/q3/sales",
        &[("authorization", &auth), ("mandate-pop", &pop)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["decision"], "allow");
    assert_eq!(answer.header(PRINCIPAL_HEADER), "bob");
    assert_eq!(answer.header(AGENT_HEADER), "analytics");
    assert_eq!(answer.header(CHAIN_HEADER), "orchestrator,analytics");
    assert_eq!(answer.header(TASK_HEADER), "q3");
}

#[tokio::test]
async fn envoy_and_traefik_conventions_name_the_original_request_too() {
    let fx = fixture();
    let app = fx.app();
    let auth = fx.auth();
    // Envoy: the original path after the prefix, this request's method and
    // query; the proof covers the mapped attribute.
    let pop = fx.proof("/datasets/q3", &[("rows", 5)]);
    let answer = send(
        &app,
        "GET",
        "/v1/ext_authz/datasets/q3/rows?rows=5",
        &[("authorization", &auth), ("mandate-pop", &pop)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["attrs"]["rows"], "5", "{}", answer.body);
    // Traefik: X-Forwarded-Method and X-Forwarded-Uri; `Bearer` works too.
    let pop = fx.proof("/datasets/q3/sales", &[]);
    let bearer = format!("Bearer {}", fx.token);
    let answer = send(
        &app,
        "POST",
        EXT_AUTHZ_PATH,
        &[
            ("x-forwarded-method", "HEAD"),
            ("x-forwarded-uri", "/datasets/q3/sales"),
            ("x-forwarded-host", "analytics.internal"),
            ("authorization", &bearer),
            ("mandate-pop", &pop),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.header(AGENT_HEADER), "analytics");
}

#[tokio::test]
async fn a_denied_request_answers_403_with_the_reason() {
    let fx = fixture();
    let app = fx.app();
    let auth = fx.auth();
    let pop = fx.proof("/datasets/q4/sales", &[]);
    let answer = via_nginx(
        &app,
        "GET",
        "/datasets/q4/sales",
        &[("authorization", &auth), ("mandate-pop", &pop)],
    )
    .await;
    answer.refused(StatusCode::FORBIDDEN, "denied", "/datasets/q3");

    // A proof made for another request does not verify for this one: the
    // mapped attribute is part of what it signs.
    let pop = fx.proof("/datasets/q3", &[("rows", 5)]);
    let answer = via_nginx(
        &app,
        "GET",
        "/datasets/q3/rows?rows=6",
        &[("authorization", &auth), ("mandate-pop", &pop)],
    )
    .await;
    answer.refused(StatusCode::FORBIDDEN, "denied", "does not verify");

    // Without a proof, a keyed chain is denied.
    let answer = via_nginx(
        &app,
        "GET",
        "/datasets/q3/sales",
        &[("authorization", &auth)],
    )
    .await;
    answer.refused(
        StatusCode::FORBIDDEN,
        "denied",
        "proof of possession required",
    );
}

#[tokio::test]
async fn a_replayed_proof_is_denied() {
    let fx = fixture();
    let app = fx.app();
    let auth = fx.auth();
    let pop = fx.proof("/datasets/q3/sales", &[]);
    let headers = [
        ("authorization", auth.as_str()),
        ("mandate-pop", pop.as_str()),
    ];
    let first = via_nginx(&app, "GET", "/datasets/q3/sales", &headers).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let second = via_nginx(&app, "GET", "/datasets/q3/sales", &headers).await;
    second.refused(StatusCode::FORBIDDEN, "denied", "replayed");
}

#[tokio::test]
async fn missing_or_bad_credentials_answer_401_with_a_challenge() {
    let fx = fixture();
    let app = fx.app();
    let target = "/datasets/q3/sales";
    let pop = fx.proof(target, &[]);
    let auth = fx.auth();
    let untrusted = format!("Mandate {}", fx.other_root_token);
    for (headers, code, needle) in [
        (vec![], "missing_credentials", "no credentials"),
        (
            vec![("authorization", "Basic dXNlcjpwYXNz")],
            "invalid_credentials",
            "Mandate <token>",
        ),
        (
            vec![("authorization", "Mandate")],
            "invalid_credentials",
            "Mandate <token>",
        ),
        (
            vec![("authorization", "Mandate not-a-token")],
            "invalid_token",
            "",
        ),
        (
            vec![("authorization", untrusted.as_str())],
            "invalid_token",
            "",
        ),
        (
            vec![
                ("authorization", auth.as_str()),
                ("authorization", auth.as_str()),
            ],
            "invalid_credentials",
            "more than one",
        ),
        (
            vec![
                ("authorization", auth.as_str()),
                ("mandate-pop", "v1.garbage"),
            ],
            "invalid_proof",
            "malformed proof",
        ),
        (
            vec![
                ("authorization", auth.as_str()),
                ("mandate-pop", pop.as_str()),
                ("mandate-pop", pop.as_str()),
            ],
            "invalid_proof",
            "more than one",
        ),
    ] {
        let answer = via_nginx(&app, "GET", target, &headers).await;
        answer.refused(StatusCode::UNAUTHORIZED, code, needle);
        assert_eq!(
            answer.header("www-authenticate"),
            "Mandate realm=\"mandate\"",
            "{code}"
        );
    }
}

#[tokio::test]
async fn requests_the_mapping_cannot_name_are_refused_403() {
    let fx = fixture();
    let app = fx.app();
    let auth = fx.auth();
    let a = ("authorization", auth.as_str());
    via_nginx(&app, "GET", "/admin", &[a]).await.refused(
        StatusCode::FORBIDDEN,
        "no_route",
        "no route",
    );
    via_nginx(&app, "DELETE", "/datasets/q3/sales", &[a])
        .await
        .refused(StatusCode::FORBIDDEN, "no_route", "no route");
    via_nginx(&app, "GET", "/datasets/q3/../q4", &[a])
        .await
        .refused(StatusCode::FORBIDDEN, "bad_path", "`..`");
    via_nginx(&app, "GET", "/datasets/q3/rows?rows=many", &[a])
        .await
        .refused(StatusCode::FORBIDDEN, "bad_attr", "`rows`");
    // No convention at all: a misconfigured proxy is refused, not allowed.
    send(&app, "GET", EXT_AUTHZ_PATH, &[a]).await.refused(
        StatusCode::FORBIDDEN,
        "bad_original_request",
        "no original request",
    );
    send(
        &app,
        "GET",
        EXT_AUTHZ_PATH,
        &[a, ("x-original-uri", "/datasets/q3/x")],
    )
    .await
    .refused(
        StatusCode::FORBIDDEN,
        "bad_original_request",
        "must come together",
    );
}

#[tokio::test]
async fn a_client_cannot_steer_the_decision_with_a_second_convention() {
    let fx = fixture();
    let app = fx.app();
    let auth = fx.auth();
    let pop = fx.proof("/datasets/q3/sales", &[]);
    // Envoy asks about /admin/delete; the client added X-Original-* naming
    // a request its mandate allows.
    let answer = send(
        &app,
        "POST",
        "/v1/ext_authz/admin/delete",
        &[
            ("authorization", &auth),
            ("mandate-pop", &pop),
            ("x-original-method", "GET"),
            ("x-original-uri", "/datasets/q3/sales"),
        ],
    )
    .await;
    answer.refused(StatusCode::FORBIDDEN, "bad_original_request", "disagree");
    // nginx names the request; the client's X-Forwarded-* disagree.
    let answer = via_nginx(
        &app,
        "POST",
        "/admin/delete",
        &[
            ("authorization", &auth),
            ("mandate-pop", &pop),
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/datasets/q3/sales"),
        ],
    )
    .await;
    answer.refused(StatusCode::FORBIDDEN, "bad_original_request", "disagree");
    // Two X-Original-URI headers: refused, whichever a proxy would pick.
    let answer = send(
        &app,
        "GET",
        EXT_AUTHZ_PATH,
        &[
            ("authorization", &auth),
            ("x-original-method", "GET"),
            ("x-original-uri", "/datasets/q3/sales"),
            ("x-original-uri", "/admin"),
        ],
    )
    .await;
    answer.refused(
        StatusCode::FORBIDDEN,
        "bad_original_request",
        "more than once",
    );
}

#[test]
fn identity_header_values_cannot_inject_headers_or_split_the_chain() {
    assert_eq!(header_safe("bob"), "bob");
    assert_eq!(header_safe("a\r\nX-Evil: 1"), "a%0D%0AX-Evil:%201");
    assert_eq!(header_safe("a,b"), "a%2Cb");
    assert_eq!(header_safe("50%"), "50%25");
    assert_eq!(header_safe("zo\u{eb}"), "zo%C3%AB");
    for hostile in ["\r\n", "\n\nbody", "\u{0}", "\u{7f}", "é,\t "] {
        let safe = header_safe(hostile);
        assert!(HeaderValue::from_str(&safe).is_ok(), "{safe:?}");
        assert!(safe.bytes().all(|b| b.is_ascii_graphic()), "{safe:?}");
    }
}

#[tokio::test]
async fn names_outside_visible_ascii_reach_the_upstream_percent_encoded() {
    let root = SecretKey::generate();
    let verifier = Verifier::builder()
        .root_keys(KeySet::single(root.public()))
        .build()
        .unwrap();
    let token = mint(
        &RootKey {
            secret: root,
            key_id: None,
        },
        &MintRequest {
            principal: "zoë".into(),
            agent: "reporter".into(),
            agent_key: None,
            task: Some("q3 report".into()),
            rights: vec!["analytics:read".parse().unwrap()],
            ttl: Duration::from_secs(600),
            restrictions: Restrictions::default(),
            now: SystemTime::now(),
        },
    )
    .unwrap()
    .to_base64()
    .unwrap();
    let mapping = Mapping::from_toml(MAPPING).unwrap();
    let app = ext_authz_router(ExtAuthzState::new(
        Arc::new(verifier),
        EvalPool::default(),
        mapping,
    ));
    let auth = format!("Mandate {token}");
    let answer = via_nginx(&app, "GET", "/datasets/q3/x", &[("authorization", &auth)]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.header(PRINCIPAL_HEADER), "zo%C3%AB");
    assert_eq!(answer.header(TASK_HEADER), "q3%20report");
}

#[tokio::test]
async fn a_saturated_pool_answers_503_with_retry_after() {
    let fx = fixture();
    // One worker, no queue: while the test holds the worker, nothing else runs.
    let pool = EvalPool::with_queue(1, 0, Duration::from_secs(30));
    let app = fx.app_on(pool.clone());
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = tokio::spawn(async move {
        pool.run(move || {
            let _ = started_tx.send(());
            let _ = release_rx.recv();
        })
        .await
    });
    started_rx.await.unwrap();
    let auth = fx.auth();
    let answer = via_nginx(
        &app,
        "GET",
        "/datasets/q3/sales",
        &[("authorization", &auth)],
    )
    .await;
    answer.refused(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "overloaded");
    assert_eq!(answer.header("retry-after"), "1");
    release_tx.send(()).unwrap();
    holder.await.unwrap().unwrap();
}
