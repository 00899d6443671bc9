//! Root key rotation and publication through the real binary and loopback
//! HTTP: `mandate keys rotate|retire|list` on a key folder, the issuer
//! mounted in `mandate serve` (`--issuer-key-dir`) publishing its keys at
//! `/.well-known/mandate-keys`, a second `mandate serve --root-keys-url`
//! following them (old and new trusted during the overlap, the old refused
//! once retired, the last good set kept while the issuer is down, the 304
//! path), `mandate authorize --root-keys-url`, and tasks closed by their
//! principal or an operator while strangers are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::http::{http, Reply, JSON};
use common::server::{poll, Server};
use common::{mandate, task_open, Dir};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const IDP: &str = "https://idp.test";
const AUDIENCE: &str = "mandate-issuer";
const ISSUER_ID: &str = "urn:test:mandate-issuer";
const KEYS_PATH: &str = "/.well-known/mandate-keys";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/idp")
        .join(name)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An identity token for `email` from the test identity provider.
fn id_token(email: &str) -> String {
    let pem = std::fs::read(fixture("rsa.pem")).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".to_owned());
    let claims = json!({
        "iss": IDP, "aud": AUDIENCE, "sub": format!("sub-{email}"), "email": email,
        "groups": ["staff"], "iat": now(), "exp": now() + 600,
    });
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

/// A folder with agent keys, identity tokens and a key folder with its
/// first root key, and `mandate serve` with the issuer mounted on it.
struct World {
    dir: Dir,
    issuer: Server,
}

impl World {
    fn start() -> World {
        let dir = Dir::new();
        dir.keygen("agent.key");
        dir.keygen("operator.key");
        let first = mandate(&["keys", "rotate", "--dir", &dir.path("keys")]).ok_trimmed();
        assert!(first.starts_with("kid 1 ed25519/"), "{first}");
        std::fs::write(dir.file("alice.jwt"), id_token("alice@example.com")).unwrap();
        std::fs::write(dir.file("bob.jwt"), id_token("bob@example.com")).unwrap();
        let config = format!(
            "[issuer]\nid = \"{ISSUER_ID}\"\nstore = \"{}\"\nkeys_max_age = \"1s\"\n\
             sweep_interval = \"100ms\"\n\n[[issuer.idp]]\nissuer = \"{IDP}\"\n\
             audience = \"{AUDIENCE}\"\njwks_file = \"{}\"\n",
            dir.path("tasks"),
            fixture("jwks.json").display()
        );
        std::fs::write(dir.file("serve.toml"), config).unwrap();
        // No --root-pub: the server trusts its mounted issuer's keys.
        let issuer = Server::start(
            "serve+issuer",
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--store",
                &dir.path("registry"),
                "--config",
                &dir.path("serve.toml"),
                "--issuer-key-dir",
                &dir.path("keys"),
            ],
            dir.file("issuer.log"),
        )
        .unwrap();
        World { dir, issuer }
    }

    fn keys_url(&self) -> String {
        format!("{}{KEYS_PATH}", self.issuer.url)
    }

    /// `mandate task open` as alice's agent; returns the task id.
    fn open(&self, out: &str) -> String {
        task_open(
            &self.issuer.url,
            &format!("@{}", self.dir.path("alice.jwt")),
            "orchestrator",
            &self.dir.path("agent.key"),
            &["analytics:read"],
            &["--audience", "analytics", "--out", &self.dir.path(out)],
        )
        .ok_trimmed()
    }

    /// The root key id a token file names.
    fn kid(&self, token_file: &str) -> Value {
        let inspected = mandate(&[
            "inspect",
            "--token",
            &format!("@{}", self.dir.path(token_file)),
            "--json",
        ]);
        serde_json::from_str::<Value>(inspected.ok()).unwrap()["root_key_id"].clone()
    }

    /// A proof by the agent for reading `/datasets/q3` with `token_file`.
    fn proof(&self, token_file: &str) -> String {
        mandate(&[
            "pop",
            "--key",
            &self.dir.path("agent.key"),
            "--token",
            &format!("@{}", self.dir.path(token_file)),
            "--service",
            "analytics",
            "--operation",
            "read",
            "--resource",
            "/datasets/q3",
        ])
        .ok_trimmed()
    }

    /// `POST /v1/authorize` at `server` for `token_file`.
    fn authorize(&self, server: &str, token_file: &str) -> Reply {
        let token = std::fs::read_to_string(self.dir.file(token_file)).unwrap();
        let body = json!({
            "token": token.trim(), "service": "analytics", "operation": "read",
            "resource": "/datasets/q3", "pop": self.proof(token_file),
        });
        http(
            "POST",
            &format!("{server}/v1/authorize"),
            Some(&body.to_string()),
            &[JSON],
        )
    }

    /// `mandate authorize --root-keys-url` for `token_file`.
    fn authorize_offline(&self, token_file: &str) -> common::Run {
        let proof = self.proof(token_file);
        mandate(&[
            "authorize",
            "--token",
            &format!("@{}", self.dir.path(token_file)),
            "--root-keys-url",
            &self.keys_url(),
            "--service",
            "analytics",
            "--operation",
            "read",
            "--resource",
            "/datasets/q3",
            "--pop",
            &proof,
            "--json",
        ])
    }

    /// `mandate serve --root-keys-url URL` on its own store.
    fn follower(&self, name: &str, url: &str) -> Server {
        follower(&self.dir, name, url)
    }
}

/// `mandate serve --root-keys-url URL` on a store of its own in `dir`.
fn follower(dir: &Dir, name: &str, url: &str) -> Server {
    Server::start(
        name,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            &dir.path(&format!("{name}-registry")),
            "--root-keys-url",
            url,
        ],
        dir.file(&format!("{name}.log")),
    )
    .unwrap()
}

fn metrics(server: &Server) -> String {
    ureq::get(&format!("{}/metrics", server.url))
        .call()
        .unwrap()
        .into_string()
        .unwrap()
}

/// The value of the metric line starting with `series`, if present.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

fn readyz(server: &Server) -> Reply {
    http("GET", &format!("{}/readyz", server.url), None, &[])
}

#[test]
fn a_rotated_root_is_published_followed_and_the_old_one_retired() {
    let w = World::start();
    let verifier = w.follower("verifier", &w.keys_url());
    poll("the follower's first key set", || {
        (readyz(&verifier).status == 200).then_some(())
    });

    // Before any rotation: kid 1 signs, and both the mounted server and the
    // follower accept its mandates.
    w.open("old.token");
    assert_eq!(w.kid("old.token"), 1);
    w.authorize(&w.issuer.url, "old.token").assert_allowed();
    w.authorize(&verifier.url, "old.token").assert_allowed();

    // The published set: public keys only, with caching headers and 304.
    let response = ureq::get(&w.keys_url()).call().unwrap();
    let etag = response.header("etag").unwrap().to_owned();
    assert_eq!(response.header("cache-control"), Some("public, max-age=1"));
    let body: Value = serde_json::from_str(&response.into_string().unwrap()).unwrap();
    assert_eq!(body["keys"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["keys"][0]["kid"], 1);
    assert_eq!(body["keys"][0]["alg"], "Ed25519");
    assert!(!body.to_string().contains("private"), "{body}");
    let again = ureq::get(&w.keys_url())
        .set("If-None-Match", &etag)
        .call()
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.into_string().unwrap(), "");

    // Rotate: kid 2 signs the next mandate, kid 1 stays trusted (overlap).
    let rotated = mandate(&[
        "keys",
        "rotate",
        "--dir",
        &w.dir.path("keys"),
        "--overlap",
        "1h",
    ])
    .ok_trimmed();
    assert!(rotated.starts_with("kid 2 ed25519/"), "{rotated}");
    let listed = mandate(&["keys", "list", "--dir", &w.dir.path("keys"), "--json"])
        .ok()
        .to_owned();
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["keys"][0]["status"], "overlap", "{listed}");
    assert_eq!(listed["keys"][1]["status"], "signing", "{listed}");
    assert!(listed["keys"][0]["not_after"].is_string(), "{listed}");
    w.open("new.token");
    assert_eq!(w.kid("new.token"), 2);
    poll("the follower to trust kid 2", || {
        (w.authorize(&verifier.url, "new.token").status == 200).then_some(())
    });
    w.authorize(&verifier.url, "old.token").assert_allowed();
    w.authorize_offline("new.token").allowed();
    w.authorize_offline("old.token").allowed();

    // The follower revalidated an unchanged set with If-None-Match.
    poll("a 304 revalidation by the follower", || {
        metric(
            &metrics(&verifier),
            "mandate_root_keys_fetches_total{outcome=\"not_modified\"}",
        )
        .filter(|count| *count >= 1.0)
    });

    // Retire kid 1 a few seconds from now; once the follower has that set,
    // the issuer goes away.
    let soon = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(5));
    mandate(&[
        "keys",
        "retire",
        "--dir",
        &w.dir.path("keys"),
        "--kid",
        "1",
        "--at",
        &soon.to_string(),
    ])
    .ok();
    poll("the follower to load the set naming kid 1's end", || {
        metric(
            &metrics(&verifier),
            "mandate_root_keys_fetches_total{outcome=\"updated\"}",
        )
        .filter(|count| *count >= 3.0)
    });
    let mut w = w;
    w.issuer.kill();

    // With the issuer unreachable, the follower keeps deciding on its last
    // good set, stays ready, says the set is stale, and stops trusting kid 1
    // once the not_after it learnt has passed.
    poll("the follower to notice the issuer is gone", || {
        (metric(&metrics(&verifier), "mandate_root_keys_stale") == Some(1.0)).then_some(())
    });
    w.authorize(&verifier.url, "new.token").assert_allowed();
    poll("kid 1 to be refused after its not_after", || {
        let reply = w.authorize(&verifier.url, "old.token");
        (reply.status == 401).then_some(reply)
    })
    .0
    .assert_error(401, "invalid_token", "retired");
    w.authorize(&verifier.url, "new.token").assert_allowed();
    let ready = readyz(&verifier);
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(
        ready.body["keys"]["detail"]
            .as_str()
            .unwrap()
            .contains("STALE"),
        "{}",
        ready.body
    );
    assert!(verifier
        .stderr()
        .contains("still trusting the last good set"));
    // An offline decision needs the set now: without the issuer, an error.
    w.authorize_offline("new.token")
        .fails(2, "fetching root keys");
}

#[test]
fn a_follower_is_not_ready_without_a_set_and_refuses_what_it_cannot_trust() {
    let dir = Dir::new();
    // Nothing listens here: no set, not ready.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}{KEYS_PATH}", closed.local_addr().unwrap());
    drop(closed);
    let lost = follower(&dir, "lost", &nowhere);
    let ready = readyz(&lost);
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert_eq!(ready.body["keys"]["ok"], false, "{}", ready.body);
    assert!(
        ready.body["keys"]["detail"]
            .as_str()
            .unwrap()
            .contains("no key set loaded"),
        "{}",
        ready.body
    );

    // A set with more keys than a verifier takes is refused whole.
    let crowded = follower(&dir, "crowded", &serve_keys(&too_many_keys()));
    let (ready, _) = poll("the crowded set to be refused", || {
        let ready = readyz(&crowded);
        ready.body["keys"]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("more than 64 keys")
            .then_some(ready)
    });
    assert_eq!(ready.status, 503, "{}", ready.body);

    // Plain http is followed only to loopback.
    mandate(&[
        "serve",
        "--store",
        &dir.path("s"),
        "--root-keys-url",
        "http://issuer.example.com/.well-known/mandate-keys",
    ])
    .error("roots.keys_url");
    mandate(&[
        "authorize",
        "--token",
        "x",
        "--root-keys-url",
        "ftp://127.0.0.1/keys",
        "--service",
        "s",
        "--operation",
        "o",
        "--resource",
        "/r",
    ])
    .error("not https");
}

/// 65 keys: one more than a verifier accepts.
fn too_many_keys() -> String {
    let key = Dir::new().keygen("k");
    let keys: Vec<Value> = (0..65)
        .map(|kid| json!({"kid": kid, "alg": "Ed25519", "public_key": key}))
        .collect();
    json!({ "keys": keys }).to_string()
}

/// A server answering every request with `body` as a key set; returns its
/// key set URL.
fn serve_keys(body: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}{KEYS_PATH}", listener.local_addr().unwrap());
    let body = body.to_owned();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: max-age=1\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn a_task_is_closed_by_its_principal_or_an_operator_and_never_by_a_stranger() {
    let w = World::start();
    let issue = |out: &str, right: &str| {
        mandate(&[
            "issue",
            "--root-key",
            &w.dir.path("keys/root-1.key"),
            "--key-id",
            "1",
            "--principal",
            "ops",
            "--agent",
            "operator",
            "--agent-key",
            &w.dir.path("operator.key.pub"),
            "--right",
            right,
            "--ttl",
            "1h",
            "--out",
            &w.dir.path(out),
        ])
        .ok();
    };
    issue("operator.token", "tasks:close");
    issue("stranger.token", "analytics:read");
    let first = w.open("first.token");
    let second = w.open("second.token");
    w.authorize(&w.issuer.url, "first.token").assert_allowed();
    let close = |task: &str, how: &[&str]| {
        let mut args = vec!["task", "close", "--issuer", &w.issuer.url, "--task", task];
        args.extend_from_slice(how);
        mandate(&args)
    };
    let (alice, bob) = (
        format!("@{}", w.dir.path("alice.jwt")),
        format!("@{}", w.dir.path("bob.jwt")),
    );
    let (operator, stranger, operator_key) = (
        format!("@{}", w.dir.path("operator.token")),
        format!("@{}", w.dir.path("stranger.token")),
        w.dir.path("operator.key"),
    );

    // Another principal, and an operator without tasks:close, are refused.
    close(&first, &["--subject-token", &bob]).error("forbidden");
    close(
        &second,
        &[
            "--operator-token",
            &stranger,
            "--operator-key",
            &operator_key,
        ],
    )
    .error("forbidden");
    // A proof by another key than the operator mandate's agent is refused.
    close(
        &second,
        &[
            "--operator-token",
            &operator,
            "--operator-key",
            &w.dir.path("agent.key"),
        ],
    )
    .error("forbidden");
    w.authorize(&w.issuer.url, "first.token").assert_allowed();
    w.authorize(&w.issuer.url, "second.token").assert_allowed();

    // The principal closes the first task, an operator the second.
    let closed = close(&first, &["--subject-token", &alice]).ok_trimmed();
    assert_eq!(closed, format!("task {first} closed"));
    let closed = close(
        &second,
        &[
            "--operator-token",
            &operator,
            "--operator-key",
            &operator_key,
        ],
    )
    .ok_trimmed();
    assert_eq!(closed, format!("task {second} closed"));
    // Revoked in the server's own store: both tasks' mandates are denied.
    w.authorize(&w.issuer.url, "first.token")
        .assert_denied("revoked");
    w.authorize(&w.issuer.url, "second.token")
        .assert_denied("revoked");
    let log = w.issuer.stderr();
    assert!(!log.contains(
        std::fs::read_to_string(w.dir.file("alice.jwt"))
            .unwrap()
            .trim()
    ));
}

#[test]
fn a_key_folder_others_may_write_chooses_no_root_and_a_missing_manifest_keeps_the_last() {
    // Found by review: whoever could write the key folder added a root key
    // of their own to `keys.json`, which the issuer published and every
    // verifier trusted; and a manifest renamed away for a moment left every
    // verifier trusting no key at all.
    use std::os::unix::fs::PermissionsExt as _;
    let w = World::start();
    let published = |w: &World| -> Vec<Value> {
        let reply = http("GET", &w.keys_url(), None, &[]);
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body["keys"].as_array().unwrap().clone()
    };
    assert_eq!(published(&w).len(), 1);
    let manifest = w.dir.file("keys/keys.json");

    // Renamed away: the last good set stays published and trusted.
    let moved = w.dir.file("keys.json.moved");
    std::fs::rename(&manifest, &moved).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(published(&w).len(), 1);
    assert!(w.open("t1.token").starts_with("task-"));
    assert_eq!(w.authorize(&w.issuer.url, "t1.token").status, 200);
    std::fs::rename(&moved, &manifest).unwrap();

    // A key added to a manifest group or others may write is not taken.
    mandate(&["keys", "rotate", "--dir", &w.dir.path("keys")]).ok();
    std::fs::set_permissions(&manifest, std::fs::Permissions::from_mode(0o664)).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(published(&w).len(), 1, "a key from a writable manifest");
    let (log, _) = poll("the refusal in the log", || {
        let log = w.issuer.stderr();
        log.contains("may be written by group or others")
            .then_some(log)
    });
    assert!(log.contains("keys.json"), "{log}");
    // Once only its owner may write it, the new key is published.
    std::fs::set_permissions(&manifest, std::fs::Permissions::from_mode(0o644)).unwrap();
    poll("the rotated key published", || {
        (published(&w).len() == 2).then_some(())
    });

    // A server refuses to start on a folder others may write.
    std::fs::set_permissions(w.dir.file("keys"), std::fs::Permissions::from_mode(0o770)).unwrap();
    let run = mandate(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--store",
        &w.dir.path("registry2"),
        "--config",
        &w.dir.path("serve.toml"),
        "--issuer-key-dir",
        &w.dir.path("keys"),
    ]);
    run.error("may be written by group or others");
}
