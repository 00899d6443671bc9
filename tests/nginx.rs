//! End to end through a real nginx: `auth_request` asks `mandate serve`'s
//! proxy endpoint (`/v1/ext_authz`) about every request, and only what it
//! allows reaches the upstream, carrying the `X-Mandate-*` identity headers.
//!
//! The test runs nginx in the foreground with every path (pid, logs, temp
//! folders) inside a temporary folder, on a free loopback port, in front of
//! a small upstream that echoes the headers it receives. When nginx is not
//! installed it is installed with apt-get when the test runs as root;
//! otherwise the test prints `SKIPPED: nginx not available` and passes.
//!
//! nginx passes an auth answer of 401 or 403 to the client and turns any
//! other non-2xx answer (and an unreachable verifier) into 500: the test
//! checks the client sees exactly those codes, and that the upstream is
//! reached only by allowed requests. Every process is killed on drop; every
//! wait polls under a timeout. Three more tests need no nginx: a mapping file
//! that does not load stops `mandate serve` before it listens, an expired
//! token is refused 401 `expired_token` by the endpoint itself (minted with
//! an issue time in the past, never waited for), and `mandate serve
//! --registry` (a sidecar) serves the proxy endpoint as `--store` does.

#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::server::poll;
use common::world::{Holder, World};
use common::{mandate, request_flags, tokens};

const SERVICE: &str = "analytics";

/// The mapping `mandate serve --ext-authz-mapping` loads.
const MAPPING: &str = r#"
[[route]]
service = "analytics"
path = "/datasets/**"
methods = ["GET", "HEAD"]
operation = "read"
"#;

// ---------------------------------------------------------------------------
// nginx
// ---------------------------------------------------------------------------

/// The nginx binary, installing it when the test runs as root; `None` when
/// it is not available.
fn nginx_binary() -> Option<PathBuf> {
    let find = || {
        ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .or_else(|| {
                let out = Command::new("sh")
                    .args(["-c", "command -v nginx"])
                    .output()
                    .ok()?;
                let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                (!path.is_empty()).then(|| PathBuf::from(path))
            })
    };
    if let Some(path) = find() {
        return Some(path);
    }
    if !is_root() {
        return None;
    }
    let install = |package: &str| {
        Command::new("apt-get")
            .args(["install", "-y", "-q", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let installed = install("nginx-light") || install("nginx") || {
        let _ = Command::new("apt-get")
            .args(["update", "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        install("nginx-light") || install("nginx")
    };
    if installed {
        find()
    } else {
        None
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A free loopback port (bound, then released for nginx to take).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The configuration of docs/proxies.md, with every path inside `dir`.
fn nginx_conf(dir: &Path, listen: u16, mandate_port: u16, upstream_port: u16) -> String {
    let d = dir.display();
    // A master running as root would switch its workers to `nobody`, who
    // cannot write the temporary folders; as root the workers stay root.
    let user = if is_root() { "user root;" } else { "" };
    format!(
        r#"{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;

    server {{
        listen 127.0.0.1:{listen};

        location / {{
            auth_request /_mandate;
            # Identity of the allowed request, for the upstream. These
            # replace whatever X-Mandate-* headers the client sent.
            auth_request_set $mandate_principal $upstream_http_x_mandate_principal;
            auth_request_set $mandate_agent $upstream_http_x_mandate_agent;
            auth_request_set $mandate_chain $upstream_http_x_mandate_chain;
            auth_request_set $mandate_task $upstream_http_x_mandate_task;
            proxy_set_header X-Mandate-Principal $mandate_principal;
            proxy_set_header X-Mandate-Agent $mandate_agent;
            proxy_set_header X-Mandate-Chain $mandate_chain;
            proxy_set_header X-Mandate-Task $mandate_task;
            proxy_pass http://127.0.0.1:{upstream_port};
        }}

        location = /_mandate {{
            internal;
            proxy_pass http://127.0.0.1:{mandate_port}/v1/ext_authz;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
        }}
    }}
}}
"#
    )
}

/// nginx in the foreground, killed and reaped on drop.
struct Nginx {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Nginx {
    fn start(binary: &Path, dir: &Path, mandate_port: u16, upstream_port: u16) -> Nginx {
        std::fs::create_dir_all(dir).unwrap();
        // The free port is released before nginx binds it; another process
        // may take it in between, so a lost race is retried.
        for attempt in 1..=3 {
            let port = free_port();
            let conf = dir.join("nginx.conf");
            std::fs::write(&conf, nginx_conf(dir, port, mandate_port, upstream_port)).unwrap();
            let child = Command::new(binary)
                .arg("-p")
                .arg(dir)
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-c")
                .arg(&conf)
                .args(["-g", "daemon off;"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(
                    std::fs::File::create(dir.join("stderr.log")).unwrap(),
                ))
                .spawn()
                .expect("spawn nginx");
            let mut nginx = Nginx {
                child,
                port,
                dir: dir.to_owned(),
            };
            let (listening, _) = poll("nginx to listen or exit", || {
                if let Ok(Some(_)) = nginx.child.try_wait() {
                    return Some(false);
                }
                TcpStream::connect(("127.0.0.1", nginx.port))
                    .ok()
                    .map(|_| true)
            });
            if listening {
                return nginx;
            }
            let logs = nginx.logs();
            assert!(
                attempt < 3 && logs.contains("Address already in use"),
                "nginx exited:\n{logs}"
            );
        }
        unreachable!("the loop returns or fails")
    }

    fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!(
            "--- stderr\n{}--- error.log\n{}",
            read("stderr.log"),
            read("error.log")
        )
    }
}

impl Drop for Nginx {
    /// SIGTERM first: the master stops its workers before it exits (a
    /// SIGKILLed master would leave them serving). SIGKILL if it lingers.
    fn drop(&mut self) {
        // Already reaped: its pid may belong to another process by now.
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..500 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// The upstream: echoes the X-Mandate-* headers it receives
// ---------------------------------------------------------------------------

struct Upstream {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Upstream {
    /// Serves on a loopback port from a thread that lives as long as the
    /// test process (it only ever blocks in `accept`).
    fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = echo(stream);
            }
        });
        Upstream { port, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Answers one request with its `x-mandate-*` headers, one per line.
fn echo(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut body = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("x-mandate-") {
            body.push_str(line.trim_end());
            body.push('\n');
        }
    }
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct Reply {
    status: u16,
    www_authenticate: Option<String>,
    body: String,
}

fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let mut request = agent.get(url);
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let response = match request.call() {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("GET {url}: {e}"),
    };
    let status = response.status();
    let www_authenticate = response.header("www-authenticate").map(str::to_owned);
    let mut body = String::new();
    response
        .into_reader()
        .take(64 * 1024)
        .read_to_string(&mut body)
        .unwrap();
    Reply {
        status,
        www_authenticate,
        body,
    }
}

/// A key folder with a root, an operator allowed to revoke, and a delegated
/// agent: bob → orchestrator → analytics (signed hop), reading /datasets/q3.
struct Fixture {
    w: World,
    /// Keyed, granting `registry:revoke` and `registry:read`.
    ops: Holder,
    child: String,
    child_key: String,
    task: String,
}

impl Fixture {
    fn new() -> Fixture {
        let w = World::new();
        let ops = w.keyed(
            "ops",
            "operator",
            &["registry:revoke", "registry:read"],
            &[],
        );
        let task = "q3-nginx".to_owned();
        let extra = ["--task", task.as_str()];
        let parent = w.keyed("bob", "orchestrator", &["analytics:read"], &extra);
        w.keygen("analytics");
        let slice = ["--operation", "read", "--resource-prefix", "/datasets/q3"];
        let child = w
            .hop(&parent.token, "orchestrator", "analytics", &slice)
            .ok_trimmed();
        Fixture {
            ops,
            child_key: w.path("analytics"),
            child,
            task,
            w,
        }
    }

    /// `mandate pop` for the mapped request of `GET resource`.
    fn pop(&self, resource: &str) -> String {
        let request = request_flags(SERVICE, "read", resource);
        tokens::pop(&self.child_key, &self.child, &request)
    }

    fn authorization(&self) -> String {
        format!("Mandate {}", self.child)
    }

    /// A bearer mandate for bob's analytics reads, signed by the trusted
    /// root, that expired an hour ago: minted with an injected issue time,
    /// so no test waits for a token to expire.
    fn expired(&self) -> String {
        let root = mandate_core::SecretKey::read(&self.w.file("root")).unwrap();
        let issued = std::time::SystemTime::now() - Duration::from_secs(2 * 3600);
        let mandate = mandate_issuer::mint(
            &mandate_core::RootKey {
                secret: root,
                key_id: None,
            },
            &mandate_issuer::MintRequest {
                principal: "bob".into(),
                agent: "batch".into(),
                agent_key: None,
                task: Some(self.task.clone()),
                rights: vec!["analytics:read".parse().unwrap()],
                ttl: Duration::from_secs(3600),
                restrictions: mandate_core::Restrictions::default(),
                now: issued,
            },
        )
        .unwrap();
        mandate.to_base64().unwrap()
    }
}

#[test]
fn nginx_auth_request_lets_through_only_what_the_mandate_allows() {
    let Some(binary) = nginx_binary() else {
        eprintln!("SKIPPED: nginx not available (install nginx-light, or run as root)");
        return;
    };
    let fx = Fixture::new();
    let mapping = fx.w.write("mapping.toml", MAPPING);
    let mut server =
        fx.w.serve_store("store", &["--ext-authz-mapping", &mapping]);
    let upstream = Upstream::start();
    let nginx = Nginx::start(&binary, &fx.w.file("nginx"), server.port(), upstream.port);
    let base = format!("http://127.0.0.1:{}", nginx.port);
    let url = |path: &str| format!("{base}{path}");
    let auth = fx.authorization();
    let context = || format!("{}\n--- mandate serve\n{}", nginx.logs(), server.stderr());

    // 1. The delegated agent, with its proof for the mapped request: allowed,
    //    and the upstream sees who is calling. A client's own X-Mandate-*
    //    header is replaced, never passed on.
    let pop = fx.pop("/datasets/q3/sales");
    let reply = get(
        &url("/datasets/q3/sales"),
        &[
            ("Authorization", &auth),
            ("Mandate-PoP", &pop),
            ("X-Mandate-Principal", "mallory"),
        ],
    );
    assert_eq!(reply.status, 200, "{reply:?}\n{}", context());
    let seen: Vec<&str> = reply.body.lines().collect();
    assert_eq!(
        seen,
        [
            "X-Mandate-Principal: bob",
            "X-Mandate-Agent: analytics",
            "X-Mandate-Chain: orchestrator,analytics",
            "X-Mandate-Task: q3-nginx",
        ],
        "{reply:?}"
    );
    assert_eq!(upstream.hits(), 1);

    // 2. The same proof again: replayed, denied, through nginx and on
    //    `/v1/authorize` too (one verifier, one replay cache behind both).
    let reply = get(
        &url("/datasets/q3/sales"),
        &[("Authorization", &auth), ("Mandate-PoP", &pop)],
    );
    assert_eq!(reply.status, 403, "{reply:?}\n{}", context());
    let body = serde_json::json!({
        "token": fx.child,
        "service": SERVICE,
        "operation": "read",
        "resource": "/datasets/q3/sales",
        "pop": pop,
    });
    let replayed = match ureq::post(&format!("{}/v1/authorize", server.url)).send_json(body) {
        Err(ureq::Error::Status(status, response)) => (status, response.into_string().unwrap()),
        other => panic!("expected a denial, got {other:?}"),
    };
    assert_eq!(replayed.0, 403, "{replayed:?}");
    assert!(replayed.1.contains("replayed"), "{replayed:?}");

    // 3. The same token outside its scope, with a valid proof: denied.
    let reply = get(
        &url("/datasets/q4/sales"),
        &[
            ("Authorization", &auth),
            ("Mandate-PoP", &fx.pop("/datasets/q4/sales")),
        ],
    );
    assert_eq!(reply.status, 403, "{reply:?}\n{}", context());

    // 4. A path no route maps, and a `..` path: denied, never guessed.
    let reply = get(&url("/admin"), &[("Authorization", &auth)]);
    assert_eq!(reply.status, 403, "{reply:?}");
    let reply = get(
        &url("/datasets/q3/%2e%2e/q4/sales"),
        &[
            ("Authorization", &auth),
            ("Mandate-PoP", &fx.pop("/datasets/q4/sales")),
        ],
    );
    assert_eq!(reply.status, 403, "{reply:?}");

    // 5. No token: 401 with the challenge, passed on by nginx.
    let reply = get(&url("/datasets/q3/sales"), &[]);
    assert_eq!(reply.status, 401, "{reply:?}\n{}", context());
    assert_eq!(
        reply.www_authenticate.as_deref(),
        Some("Mandate realm=\"mandate\""),
        "{reply:?}"
    );
    // An expired token: 401 with the challenge too, never the upstream.
    let expired = format!("Mandate {}", fx.expired());
    let reply = get(&url("/datasets/q3/sales"), &[("Authorization", &expired)]);
    assert_eq!(reply.status, 401, "{reply:?}\n{}", context());
    assert_eq!(
        reply.www_authenticate.as_deref(),
        Some("Mandate realm=\"mandate\""),
        "{reply:?}"
    );
    assert_eq!(
        upstream.hits(),
        1,
        "only the allowed request reached the upstream"
    );

    // 6. Still allowed with a fresh proof; then the task is revoked and the
    //    very next request is denied.
    let reply = get(
        &url("/datasets/q3/sales"),
        &[
            ("Authorization", &auth),
            ("Mandate-PoP", &fx.pop("/datasets/q3/sales")),
        ],
    );
    assert_eq!(reply.status, 200, "{reply:?}\n{}", context());
    assert_eq!(upstream.hits(), 2);
    let run = mandate(&[
        "revoke",
        "--task",
        &fx.task,
        "--reason",
        "report filed",
        "--registry",
        &server.url,
        "--auth",
        &fx.ops.token,
        "--auth-key",
        fx.ops.key_file(),
    ]);
    run.ok();
    let reply = get(
        &url("/datasets/q3/sales"),
        &[
            ("Authorization", &auth),
            ("Mandate-PoP", &fx.pop("/datasets/q3/sales")),
        ],
    );
    assert_eq!(reply.status, 403, "{reply:?}\n{}", context());
    assert_eq!(upstream.hits(), 2, "nothing denied reached the upstream");
    let log = server.stderr();
    assert!(
        !log.contains(&fx.child),
        "the token must never appear in the log, only its fingerprint"
    );

    // 7. With the verifier gone, nginx answers 500: closed, never open.
    server.kill();
    let reply = get(
        &url("/datasets/q3/sales"),
        &[
            ("Authorization", &auth),
            ("Mandate-PoP", &fx.pop("/datasets/q3/sales")),
        ],
    );
    assert_eq!(reply.status, 500, "{reply:?}");
    assert_eq!(upstream.hits(), 2, "nothing reached the upstream");
}

#[test]
fn a_mapping_that_does_not_load_stops_serve_before_it_listens() {
    let w = World::new();
    let mapping = w.write(
        "mapping.toml",
        "[[route]]\nservice = \"analytics\"\npath = \"/datasets/{set\"\noperation = \"read\"\n",
    );
    let started = w.try_serve_store("store", &["--ext-authz-mapping", &mapping]);
    let Err(stderr) = started else {
        panic!("mandate serve started with a mapping it cannot serve");
    };
    assert!(
        stderr.contains("[[route]] number 1 (path \"/datasets/{set\")"),
        "the error names the route: {stderr}"
    );
    assert!(stderr.contains("a capture is a whole segment"), "{stderr}");
}

#[test]
fn an_expired_token_is_refused_401_by_the_proxy_endpoint() {
    // The endpoint documents 401 for expired credentials (docs/proxies.md,
    // the OpenAPI document): the caller must get a fresh mandate, not be told
    // that this one lacks a right.
    let fx = Fixture::new();
    let mapping = fx.w.write("mapping.toml", MAPPING);
    let server =
        fx.w.serve_store("store", &["--ext-authz-mapping", &mapping]);
    let expired = fx.expired();
    let check = format!("{}/v1/ext_authz/datasets/q3/sales", server.url);
    let reply = get(&check, &[("Authorization", &format!("Mandate {expired}"))]);
    assert_eq!(reply.status, 401, "{reply:?}\n{}", server.stderr());
    assert_eq!(
        reply.www_authenticate.as_deref(),
        Some("Mandate realm=\"mandate\""),
        "{reply:?}"
    );
    let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(body["error"]["code"], "expired_token", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("token expired at "), "{body}");
    // The same token, unexpired in every other respect, is what the
    // authorization API refuses the same way: one verifier behind both.
    let reply = ureq::post(&format!("{}/v1/authorize", server.url)).send_json(serde_json::json!({
        "token": expired,
        "service": SERVICE,
        "operation": "read",
        "resource": "/datasets/q3/sales",
    }));
    match reply {
        Err(ureq::Error::Status(401, response)) => {
            let body: serde_json::Value = response.into_json().unwrap();
            assert_eq!(body["error"]["code"], "expired_token", "{body}");
        }
        other => panic!("expected 401 expired_token, got {other:?}"),
    }
    // The log names the refusal by fingerprint, never the token.
    let log = server.stderr();
    assert!(
        !log.contains(&expired),
        "the token must never appear in the log"
    );
}

#[test]
fn serve_subscribed_to_a_registry_serves_the_proxy_endpoint_too() {
    let fx = Fixture::new();
    let mapping = fx.w.write("mapping.toml", MAPPING);
    let registry = fx.w.serve_registry("store", &[]);
    let sidecar = fx.w.serve(
        "serve --registry --ext-authz-mapping",
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--registry",
            &registry.url,
            "--registry-auth",
            &fx.ops.token,
            "--registry-auth-key",
            fx.ops.key_file(),
            "--ext-authz-mapping",
            &mapping,
            "--root-pub",
            fx.w.root_pub_file(),
        ],
    );
    let check = format!("{}/v1/ext_authz", sidecar.url);
    let auth = fx.authorization();
    // Denied (stale) until the sidecar's first sync with the registry.
    let (reply, _) = poll("the sidecar to allow through /v1/ext_authz", || {
        let pop = fx.pop("/datasets/q3/sales");
        let reply = get(
            &check,
            &[
                ("Authorization", &auth),
                ("Mandate-PoP", &pop),
                ("X-Original-Method", "GET"),
                ("X-Original-URI", "/datasets/q3/sales"),
            ],
        );
        (reply.status == 200).then_some(reply)
    });
    let decision: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(decision["principal"], "bob", "{decision}");
    assert_eq!(
        decision["chain"],
        serde_json::json!(["orchestrator", "analytics"]),
        "{decision}"
    );
    let reply = get(
        &check,
        &[
            ("Authorization", &auth),
            ("Mandate-PoP", &fx.pop("/datasets/q4/sales")),
            ("X-Original-Method", "GET"),
            ("X-Original-URI", "/datasets/q4/sales"),
        ],
    );
    assert_eq!(reply.status, 403, "{reply:?}\n{}", sidecar.stderr());
    assert!(reply.body.contains("\"denied\""), "{reply:?}");
}
