//! `mandate serve` as an operator runs it: a TOML configuration overridden
//! by `MANDATE_*` variables and flags, health and readiness, Prometheus
//! metrics, the OpenAPI document checked against the running server, TLS,
//! JSON logs, one error shape, and a clean drain on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::server::Server;
use common::world::World;
use common::{command, mandate};
use serde_json::{json, Value};

/// A root, a bearer mandate reading `analytics`, and a server config file.
struct Fixture {
    w: World,
    token: String,
}

impl Fixture {
    fn new() -> Fixture {
        let w = World::new();
        let reads = ["analytics:read"];
        let token = w.bearer("alice@example.com", "reporter", &reads, &[]).token;
        Fixture { w, token }
    }

    /// Writes `config.toml`: a store in the folder, the root, port 0, plus `extra`.
    fn config(&self, extra: &str) -> String {
        let text = format!(
            "listen = \"127.0.0.1:0\"\n\
             {extra}\n\
             [roots]\n\
             keys = [{root:?}]\n\
             [revocations]\n\
             store = {store:?}\n",
            root = self.w.root_pub_file(),
            store = self.w.path("store"),
        );
        let path = self.w.path("config.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn serve(&self, name: &str, args: &[&str]) -> Server {
        Server::start(name, args, self.w.file(&format!("{name}.log")))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn authorize_body(&self) -> String {
        json!({
            "token": self.token,
            "service": "analytics",
            "operation": "read",
            "resource": "/q3",
        })
        .to_string()
    }
}

struct Reply {
    status: u16,
    content_type: String,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {}", self.status, self.text))
    }
}

fn request(method: &str, url: &str, content_type: Option<&str>, body: &str) -> Reply {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let mut request = agent.request(method, url);
    if let Some(content_type) = content_type {
        request = request.set("Content-Type", content_type);
    }
    let result = if body.is_empty() && method == "GET" {
        request.call()
    } else {
        request.send_string(body)
    };
    let response = match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    Reply {
        status: response.status(),
        content_type: response.content_type().to_owned(),
        text: response.into_string().unwrap(),
    }
}

fn get(url: &str) -> Reply {
    request("GET", url, None, "")
}

/// The value of an unlabelled or labelled sample in a Prometheus exposition.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().unwrap())
    })
}

#[test]
fn a_configured_server_answers_health_readiness_metrics_and_decisions() {
    let fx = Fixture::new();
    let config = fx.config("log_format = \"json\"");
    let server = fx.serve("serve", &["serve", "--config", &config, "-v"]);

    let health = get(&format!("{}/healthz", server.url));
    assert_eq!(
        (health.status, health.json()),
        (200, json!({"status": "ok"}))
    );
    let ready = get(&format!("{}/readyz", server.url));
    assert_eq!(ready.status, 200, "{}", ready.text);
    let ready = ready.json();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["store"]["ok"], true);
    assert_eq!(ready["keys"]["detail"], "1 root key(s)");

    let allowed = request(
        "POST",
        &format!("{}/v1/authorize", server.url),
        Some("application/json"),
        &fx.authorize_body(),
    );
    assert_eq!(allowed.status, 200, "{}", allowed.text);
    assert_eq!(allowed.json()["reason_kind"], "allowed");
    // The same token again: verified and read from the caches this time.
    let again = request(
        "POST",
        &format!("{}/v1/authorize", server.url),
        Some("application/json"),
        &fx.authorize_body(),
    );
    assert_eq!(again.status, 200, "{}", again.text);

    let metrics = get(&format!("{}/metrics", server.url));
    assert_eq!(metrics.status, 200);
    assert!(metrics.content_type.starts_with("text/plain"));
    let text = metrics.text;
    assert_eq!(
        sample(
            &text,
            "mandate_decisions_total{api=\"authorize\",outcome=\"allow\",reason=\"allowed\"}"
        ),
        Some(2.0),
        "{text}"
    );
    // One miss (the first call checked the signatures and read the token),
    // one hit, in each token cache.
    for cache in ["verified", "token"] {
        assert_eq!(
            sample(
                &text,
                &format!("mandate_token_cache_misses_total{{cache=\"{cache}\"}}")
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                &format!("mandate_token_cache_hits_total{{cache=\"{cache}\"}}")
            ),
            Some(1.0),
            "{text}"
        );
    }
    assert_eq!(sample(&text, "mandate_revocation_seq"), Some(0.0), "{text}");
    assert_eq!(
        sample(&text, "mandate_stream_subscribers"),
        Some(0.0),
        "{text}"
    );
    assert!(sample(&text, "mandate_eval_pool_workers").unwrap() >= 1.0);
    assert!(
        text.contains("mandate_http_request_seconds_bucket{route=\"/v1/authorize\",method=\"POST\",le=\"0.005\"}"),
        "{text}"
    );

    // JSON logs: every line on stderr is one JSON object.
    let log = server.stderr();
    assert!(!log.trim().is_empty(), "the server logged nothing");
    for line in log.lines() {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
    }
}

#[test]
fn flags_and_environment_override_the_file() {
    let fx = Fixture::new();
    // The file asks for 3 workers and a port that is taken; the environment
    // says 2 workers, the flag a free port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = fx.config("[eval]\nworkers = 3");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("127.0.0.1:0", &taken.local_addr().unwrap().to_string());
    std::fs::write(&config, text).unwrap();
    let mut serve = command(&["serve", "--config", &config, "--listen", "127.0.0.1:0"]);
    serve.env("MANDATE_EVAL_WORKERS", "2");
    let server = Server::spawn("override", serve, fx.w.file("override.log")).unwrap();
    let metrics = get(&format!("{}/metrics", server.url)).text;
    assert_eq!(
        sample(&metrics, "mandate_eval_pool_workers"),
        Some(2.0),
        "{metrics}"
    );

    // A flag beats the environment (and `--store` the file's store: one
    // process per store).
    let mut serve = command(&[
        "serve",
        "--config",
        &config,
        "--listen",
        "127.0.0.1:0",
        "--eval-workers",
        "1",
        "--store",
        &fx.w.path("store2"),
    ]);
    serve.env("MANDATE_EVAL_WORKERS", "2");
    let server = Server::spawn("flag", serve, fx.w.file("flag.log")).unwrap();
    let metrics = get(&format!("{}/metrics", server.url)).text;
    assert_eq!(
        sample(&metrics, "mandate_eval_pool_workers"),
        Some(1.0),
        "{metrics}"
    );
}

#[test]
fn a_bad_configuration_is_one_clear_error_before_listening() {
    let fx = Fixture::new();
    let config = fx.config("[tsl]\ncert = \"cert.pem\"");
    mandate(&["serve", "--config", &config]).error("unknown field `tsl`");
    let config = fx.config("[revocations.x]");
    mandate(&["serve", "--config", &config]).error("config");
    let config = fx.config("shutdown_grace = \"forever\"");
    mandate(&["serve", "--config", &config]).error("line 2");
    let config = fx.config("[eval]\nworkers = 0");
    mandate(&["serve", "--config", &config]).error("eval.workers: 0 is outside 1 ..= 1024");
    let config = fx.config("[tls]\ncert = \"cert.pem\"");
    mandate(&["serve", "--config", &config]).error("tls: give both cert and key");
    mandate(&["serve", "--config", &fx.w.path("missing.toml")]).error("reading config");
}

#[test]
fn readiness_fails_closed_while_revocations_are_stale() {
    let fx = Fixture::new();
    // A registry nobody serves: the subscription never confirms state.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let registry = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let server = fx.serve(
        "sidecar",
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--root-pub",
            fx.w.root_pub_file(),
            "--registry",
            &registry,
            "--registry-auth",
            &fx.token,
            "--staleness",
            "200ms",
        ],
    );
    assert_eq!(get(&format!("{}/healthz", server.url)).status, 200);
    let ready = get(&format!("{}/readyz", server.url));
    assert_eq!(ready.status, 503, "{}", ready.text);
    let ready = ready.json();
    assert_eq!(ready["ready"], false);
    assert_eq!(ready["revocations"]["ok"], false);
    assert!(
        ready.get("store").is_none(),
        "a sidecar holds no store: {ready}"
    );
    // And decisions agree: denied as stale, not allowed.
    let denied = request(
        "POST",
        &format!("{}/v1/authorize", server.url),
        Some("application/json"),
        &fx.authorize_body(),
    );
    assert_eq!(denied.status, 403, "{}", denied.text);
    assert_eq!(denied.json()["reason_kind"], "stale");
}

#[test]
fn every_api_answers_errors_in_one_shape() {
    let fx = Fixture::new();
    let config = fx.config("");
    let server = fx.serve("serve", &["serve", "--config", &config]);
    let cases = [
        // (method, path, content type, body, status, code)
        (
            "POST",
            "/v1/authorize",
            Some("text/plain"),
            fx.authorize_body(),
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/v1/authorize",
            Some("application/json"),
            "{".to_owned(),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/v1/revocations",
            Some("application/json"),
            "{}".to_owned(),
            401,
            "unauthenticated",
        ),
        ("GET", "/v1/nothing", None, String::new(), 404, "not_found"),
        (
            "DELETE",
            "/v1/authorize",
            None,
            String::new(),
            405,
            "method_not_allowed",
        ),
        (
            "DELETE",
            "/healthz",
            None,
            String::new(),
            405,
            "method_not_allowed",
        ),
    ];
    for (method, path, content_type, body, status, code) in cases {
        let reply = request(
            method,
            &format!("{}{path}", server.url),
            content_type,
            &body,
        );
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.text);
        let error = reply.json();
        assert_eq!(error["error"]["code"], code, "{method} {path}: {error}");
        assert!(error["error"]["message"].is_string(), "{error}");
    }
}

/// The document a running server serves, against the committed copy and
/// against the routes that server answers.
#[test]
fn the_openapi_document_matches_the_running_server() {
    let fx = Fixture::new();
    // With a mapping and an audit trail, so the proxy endpoint and
    // `GET /v1/audit` are served too.
    let mapping = fx.w.path("mapping.toml");
    std::fs::write(
        &mapping,
        "[[route]]\nservice = \"analytics\"\npath = \"/**\"\noperation = \"read\"\n",
    )
    .unwrap();
    let config = fx.config(&format!(
        "[ext_authz]\nmapping = {mapping:?}\n\n[audit]\nstore = {:?}",
        fx.w.path("audit")
    ));
    let server = fx.serve("serve", &["serve", "--config", &config]);
    let reply = get(&format!("{}/openapi.json", server.url));
    assert_eq!(reply.status, 200);
    let document = reply.json();
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        document["openapi"]
    );

    // Every documented operation is routed: no 404 or 405 from the server.
    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            if method == "PARAMETERS" {
                continue;
            }
            documented.insert((method.clone(), path.clone()));
            let reply = request(
                &method,
                &format!("{}{path}", server.url),
                Some("application/json"),
                "{}",
            );
            assert!(
                reply.status != 404 && reply.status != 405,
                "{method} {path} is documented but the server answers {}: {}",
                reply.status,
                reply.text
            );
        }
    }
    for expected in [
        ("POST", "/v1/authorize"),
        ("POST", "/v1/revocations"),
        ("GET", "/v1/revocations/stream"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/v1/ext_authz/{path}"),
        ("POST", "/v1/ext_authz/{path}"),
    ] {
        assert!(
            documented.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} is not documented"
        );
    }

    // The committed copy is the served one (regenerate with MANDATE_REGEN_OPENAPI=1).
    let committed = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let pretty = serde_json::to_string_pretty(&document).unwrap() + "\n";
    if std::env::var_os("MANDATE_REGEN_OPENAPI").is_some() {
        std::fs::write(committed, &pretty).unwrap();
    }
    let on_disk = std::fs::read_to_string(committed).unwrap_or_default();
    assert!(
        on_disk == pretty,
        "docs/openapi.json differs from what the server serves; \
         regenerate with MANDATE_REGEN_OPENAPI=1 cargo test -p mandate-cli --test server"
    );
}

#[test]
fn tls_serves_https_with_the_configured_certificate() {
    let fx = Fixture::new();
    let (cert, key) = (fx.w.path("cert.pem"), fx.w.path("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            &key,
            "-out",
            &cert,
        ])
        .output();
    if !made.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: openssl cannot make a test certificate here ({made:?})");
        return;
    }
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: curl is not installed");
        return;
    }
    let config = fx.config(&format!("[tls]\ncert = {cert:?}\nkey = {key:?}"));
    let server = fx.serve("tls", &["serve", "--config", &config]);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let curl = |extra: &[&str]| {
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .args(extra)
            .arg(format!("{}/healthz", server.url))
            .output()
            .unwrap()
    };
    let trusted = curl(&["--cacert", &cert]);
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&trusted.stdout),
        r#"{"status":"ok"}"#
    );
    // Without the certificate, the client refuses the server: it really is TLS.
    assert!(!curl(&[]).status.success());
    let plain = server.url.replace("https://", "http://");
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .build();
    assert!(agent.get(&format!("{plain}/healthz")).call().is_err());
}

#[test]
fn sigterm_drains_and_leaves_the_store_reopenable() {
    let fx = Fixture::new();
    let config = fx.config("shutdown_grace = \"2s\"");
    let mut server = fx.serve("serve", &["serve", "--config", &config, "-v"]);
    assert_eq!(get(&format!("{}/readyz", server.url)).status, 200);
    server.terminate();
    let log = server.stderr();
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("stopped"), "{log}");
    // The sled lock is released and the store reads back.
    mandate(&["revocations", "list", "--store", &fx.w.path("store")]).ok();
}
