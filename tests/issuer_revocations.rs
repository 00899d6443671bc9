//! A standalone issuer judges mandates under the revocations it writes,
//! through the real binary and loopback HTTP: `mandate serve --store` is the
//! registry, `mandate issuer serve` writes closed tasks' revocations to it
//! and follows its stream (staleness bound 2 s, from `[revocations]
//! staleness` in its configuration file), a local identity provider signs
//! logins.
//!
//! An operator (a mandate granting `tasks:close`, `requests:approve` and
//! `requests:deny`) revoked at the registry — by token or by principal — is
//! refused within the bound for closing a task and for approving a request;
//! with the registry gone, operators (and agents' refreshes) are refused
//! once the bound has passed, `/readyz` says why, and both recover when the
//! registry returns. A task revoked at the registry is not refreshed, and a
//! revoked principal's login is not exchanged. With a PostgreSQL store
//! shared with the registry (`[revocations] store`, SKIPPED without
//! `MANDATE_TEST_PG`), the issuer follows the replicas' appends instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::http::{http, Reply};
use common::idp::{login, Jwks, ISSUER_ID};
use common::server::{poll, Server};
use common::{mandate, task_open, Dir, Run};
use serde_json::json;

/// The issuer's staleness bound, as its configuration file sets it.
const STALENESS: Duration = Duration::from_secs(2);

struct World {
    dir: Dir,
    _jwks: Jwks,
    /// The registry's store: a folder, or a PostgreSQL database.
    store: String,
    registry: Server,
    issuer: Server,
}

impl World {
    /// The issuer follows the registry's stream.
    fn start() -> World {
        World::start_on(None)
    }

    /// With `database`, the registry and the issuer share that PostgreSQL
    /// store instead: the issuer writes to it and follows its appends.
    fn start_on(database: Option<String>) -> World {
        let dir = Dir::new();
        for key in ["root.key", "agent.key", "writer.key", "admin.key"] {
            dir.keygen(key);
        }
        let issue = |out: &str, principal: &str, agent: &str, key: &str, rights: &[&str]| {
            let (root, key, out) = (dir.path("root.key"), dir.path(key), dir.path(out));
            let mut args = vec![
                "issue",
                "--root-key",
                &root,
                "--key-id",
                "1",
                "--principal",
                principal,
                "--agent",
                agent,
                "--agent-key",
                &key,
                "--ttl",
                "1h",
                "--out",
                &out,
            ];
            for right in rights {
                args.extend(["--right", right]);
            }
            mandate(&args).ok();
        };
        // The issuer's own registry mandate: it writes task revocations and
        // reads the stream.
        issue(
            "writer.token",
            "ops",
            "issuer-writer",
            "writer.key.pub",
            &["registry:revoke", "registry:read"],
        );
        // The operator of the issuer.
        issue(
            "admin.token",
            "admin",
            "admin-bot",
            "admin.key.pub",
            &["tasks:close", "requests:approve", "requests:deny"],
        );
        let store = database.clone().unwrap_or_else(|| dir.path("registry"));
        let registry = World::registry(&dir, &store, "127.0.0.1:0");
        let mut config = format!("[revocations]\nstaleness = \"{}s\"\n", STALENESS.as_secs());
        if let Some(url) = &database {
            config.push_str(&format!("store = \"{url}\"\n"));
        }
        std::fs::write(dir.file("issuer.toml"), config).unwrap();
        let jwks = Jwks::serve("jwks.json");
        let (config, idp, auth, root, tasks, writer) = (
            dir.path("issuer.toml"),
            jwks.flag(),
            format!("@{}", dir.path("writer.token")),
            dir.path("root.key"),
            dir.path("tasks"),
            dir.path("writer.key"),
        );
        let mut args = vec![
            "issuer",
            "serve",
            "--config",
            &config,
            "--listen",
            "127.0.0.1:0",
            "--id",
            ISSUER_ID,
            "--root-key",
            &root,
            "--key-id",
            "1",
            "--store",
            &tasks,
            "--idp",
            &idp,
            "--sweep-interval",
            "100ms",
        ];
        if database.is_none() {
            args.extend([
                "--registry",
                &registry.url,
                "--registry-auth",
                &auth,
                "--registry-auth-key",
                &writer,
            ]);
        }
        let issuer = Server::start("issuer", &args, dir.file("issuer.log")).unwrap();
        let w = World {
            dir,
            _jwks: jwks,
            store,
            registry,
            issuer,
        };
        poll("the issuer to be ready", || w.ready().then_some(()));
        w
    }

    /// `mandate serve` on `listen` with `store` (the same every time, and so
    /// its log's epoch).
    fn registry(dir: &Dir, store: &str, listen: &str) -> Server {
        Server::start(
            "registry",
            &[
                "serve",
                "--listen",
                listen,
                "--store",
                store,
                "--heartbeat",
                "200ms",
                "--root-pub",
                &format!("1={}", dir.path("root.key.pub")),
            ],
            dir.file("registry.log"),
        )
        .unwrap()
    }

    fn at(&self, name: &str) -> String {
        format!("@{}", self.dir.path(name))
    }

    fn readyz(&self) -> Reply {
        http("GET", &format!("{}/readyz", self.issuer.url), None, &[])
    }

    fn ready(&self) -> bool {
        self.readyz().status == 200
    }

    /// Alice's agent opens a task for `right` (its mandate in `OUT`); the
    /// run, for an exchange the policy asks a person about.
    fn open(&self, right: &str, out: &str) -> Run {
        std::fs::write(
            self.dir.file("alice.jwt"),
            login("alice@example.com", &["staff"]),
        )
        .unwrap();
        let (subject, key, out) = (
            self.at("alice.jwt"),
            self.dir.path("agent.key"),
            self.dir.path(out),
        );
        task_open(
            &self.issuer.url,
            &subject,
            "orchestrator",
            &key,
            &[right],
            &["--out", &out],
        )
    }

    /// A pending request for `payments:transfer`: asked at exchange, so the
    /// default policy asks a person. Returns its id.
    fn pending(&self) -> String {
        let run = self.open("payments:transfer", "waiting.token");
        run.ok_trimmed()
            .strip_prefix("pending ")
            .unwrap_or_else(|| panic!("expected a pending request\n{run}"))
            .to_owned()
    }

    /// `mandate task refresh` of `task` with the mandate in `task.token`.
    fn refresh(&self, task: &str) -> Run {
        let (token, key, out) = (
            self.at("task.token"),
            self.dir.path("agent.key"),
            self.dir.path("task.token"),
        );
        mandate(&[
            "task",
            "refresh",
            "--issuer",
            &self.issuer.url,
            "--task",
            task,
            "--token",
            &token,
            "--agent-key",
            &key,
            "--out",
            &out,
        ])
    }

    /// `mandate task close` as the operator.
    fn close_as_operator(&self, task: &str) -> Run {
        let (token, key) = (self.at("admin.token"), self.dir.path("admin.key"));
        mandate(&[
            "task",
            "close",
            "--issuer",
            &self.issuer.url,
            "--task",
            task,
            "--operator-token",
            &token,
            "--operator-key",
            &key,
        ])
    }

    /// `mandate requests approve ID` as the operator.
    fn approve_as_operator(&self, id: &str) -> Run {
        let (token, key) = (self.at("admin.token"), self.dir.path("admin.key"));
        mandate(&[
            "requests",
            "approve",
            id,
            "--issuer",
            &self.issuer.url,
            "--operator-token",
            &token,
            "--operator-key",
            &key,
        ])
    }

    /// `mandate revoke ARGS` at the registry, as the issuer's writer.
    fn revoke(&self, args: &[&str]) {
        let (auth, key) = (self.at("writer.token"), self.dir.path("writer.key"));
        let mut all = vec!["revoke"];
        all.extend_from_slice(args);
        all.extend([
            "--reason",
            "offboarded",
            "--registry",
            &self.registry.url,
            "--auth",
            &auth,
            "--auth-key",
            &key,
        ]);
        mandate(&all).ok();
    }

    /// `POST /v1/authorize` at the registry's verifier for `analytics:read`
    /// with the mandate in `task.token`: the HTTP status.
    fn authorize(&self) -> u16 {
        let token = std::fs::read_to_string(self.dir.file("task.token")).unwrap();
        let proof = common::tokens::pop(
            &self.dir.path("agent.key"),
            token.trim(),
            &common::request_flags("analytics", "read", "/x"),
        );
        let body = json!({
            "token": token.trim(), "service": "analytics", "operation": "read",
            "resource": "/x", "pop": proof,
        });
        common::http::post(&self.registry.url, &body.to_string()).status
    }
}

/// Revoking the operator (by `revocation`) at the registry: before, it
/// approves; within the bound after, it can neither close a task nor
/// approve a request, and the task it tried to close stays open.
fn operator_refused_once_revoked(
    w: &World,
    revocation: impl Fn(&World) -> Vec<String>,
    needle: &str,
) {
    let task = w.open("analytics:read", "task.token").ok_trimmed();
    let first = w.pending();
    let second = w.pending();
    // Not revoked yet: the operator's approval lands.
    let approved = w.approve_as_operator(&first).ok_trimmed();
    assert_eq!(approved, format!("request {first} granted"));

    let revoked_at = Instant::now();
    let revocation = revocation(w);
    w.revoke(&revocation.iter().map(String::as_str).collect::<Vec<_>>());
    let (run, took) = poll("the operator's close to be refused", || {
        let run = w.close_as_operator(&task);
        (run.code != 0).then_some(run)
    });
    assert!(
        took < STALENESS,
        "refused after {took:?}, beyond the {STALENESS:?} bound"
    );
    let message = run.error("issuer refused (403): forbidden");
    assert!(message.contains(needle), "{run}");
    assert!(message.contains("offboarded"), "{run}");
    let run = w.approve_as_operator(&second);
    let message = run.error("issuer refused (403): forbidden");
    assert!(message.contains(needle), "{run}");
    eprintln!(
        "operator refused {:?} after the revocation was written",
        revoked_at.elapsed()
    );
    // Neither happened: the task is open (its agent refreshes it, and the
    // service honours the new mandate) and the request still pending.
    assert_eq!(w.refresh(&task).ok_trimmed(), task);
    assert_eq!(w.authorize(), 200);
    let status = http(
        "GET",
        &format!("{}/v1/requests?state=pending", w.issuer.url),
        None,
        &[(
            "Authorization",
            format!("Bearer {}", login("alice@example.com", &["staff"])).as_str(),
        )],
    );
    assert_eq!(status.status, 200, "{}", status.body);
    let pending: Vec<&str> = status.body["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(pending, [second.as_str()], "{}", status.body);
}

#[test]
fn an_operator_whose_token_is_revoked_can_neither_close_nor_approve() {
    // The operator's token id, as `mandate revoke --token` revokes it.
    operator_refused_once_revoked(
        &World::start(),
        |w| vec!["--token".into(), w.at("admin.token")],
        "revoked: token_id",
    );
}

#[test]
fn an_operator_whose_principal_is_revoked_can_neither_close_nor_approve() {
    operator_refused_once_revoked(
        &World::start(),
        |_| vec!["--principal".into(), "admin".into()],
        "revoked: principal admin",
    );
}

#[test]
fn with_a_shared_postgres_store_an_operator_revoked_at_a_registry_replica_is_refused() {
    let Some(database) = mandate_postgres::testing::fresh_database(
        "with_a_shared_postgres_store_an_operator_revoked_at_a_registry_replica_is_refused",
    ) else {
        return;
    };
    // The issuer holds no subscription: it reads the replicas' appends from
    // the database it writes its own task revocations to.
    let w = World::start_on(Some(database));
    operator_refused_once_revoked(
        &w,
        |_| vec!["--principal".into(), "admin".into()],
        "revoked: principal admin",
    );
    // Its own writes land there too: an agent's close revokes the task at
    // every replica.
    let task = w.open("analytics:read", "task.token").ok_trimmed();
    assert_eq!(w.authorize(), 200);
    let (token, key) = (w.at("task.token"), w.dir.path("agent.key"));
    let closed = mandate(&[
        "task",
        "close",
        "--issuer",
        &w.issuer.url,
        "--task",
        &task,
        "--token",
        &token,
        "--agent-key",
        &key,
    ])
    .ok_trimmed();
    assert_eq!(closed, format!("task {task} closed"));
    poll("the registry to deny the closed task", || {
        (w.authorize() == 403).then_some(())
    });
}

#[test]
fn operators_are_refused_while_the_registry_is_silent_and_accepted_once_it_returns() {
    let mut w = World::start();
    let task = w.open("analytics:read", "task.token").ok_trimmed();
    let id = w.pending();
    let listen = format!("127.0.0.1:{}", w.registry.port());

    let gone = Instant::now();
    w.registry.kill();
    let (report, took) = poll("the issuer to say it is not ready", || {
        let reply = w.readyz();
        (reply.status == 503).then_some(reply)
    });
    assert!(
        took <= STALENESS + Duration::from_secs(1),
        "not ready {took:?} after the registry went, bound {STALENESS:?}"
    );
    assert_eq!(report.body["ready"], false, "{}", report.body);
    assert_eq!(report.body["revocations"]["ok"], false, "{}", report.body);
    assert!(
        report.body["revocations"]["detail"]
            .as_str()
            .unwrap()
            .contains("stale"),
        "{}",
        report.body
    );
    eprintln!("not ready {:?} after the registry went", gone.elapsed());

    // Operators are refused with a retryable 503 in the one error shape.
    let run = w.close_as_operator(&task);
    let message = run.error("issuer refused (503): unavailable");
    assert!(message.contains("stale"), "{run}");
    w.approve_as_operator(&id)
        .error("issuer refused (503): unavailable");
    let token = std::fs::read_to_string(w.dir.file("admin.token")).unwrap();
    let reply = http(
        "POST",
        &format!("{}/v1/requests/{id}/approve", w.issuer.url),
        Some(""),
        &[
            (
                "Authorization",
                format!("Mandate {}", token.trim()).as_str(),
            ),
            ("Mandate-PoP", "not a proof"),
        ],
    );
    assert_eq!(
        reply.status, 401,
        "a malformed proof is still 401: {}",
        reply.body
    );
    // So is an agent's refresh (a revoked token could not be told apart);
    // a new login is still exchanged (what it mints names its principal and
    // agent, which every verifier judges).
    w.refresh(&task).error("issuer refused (503): unavailable");
    w.open("analytics:read", "other.token").ok_trimmed();

    // The registry returns on the same address and store: ready again, and
    // the operator's close lands, revoking the task at the registry.
    w.registry = World::registry(&w.dir, &w.store, &listen);
    poll("the issuer to be ready again", || w.ready().then_some(()));
    let closed = w.close_as_operator(&task).ok_trimmed();
    assert_eq!(closed, format!("task {task} closed"));
    let approved = w.approve_as_operator(&id).ok_trimmed();
    assert_eq!(approved, format!("request {id} granted"));
    assert_eq!(w.authorize(), 403, "the closed task's mandate is revoked");
}

#[test]
fn a_revoked_task_is_not_refreshed_and_a_revoked_principal_not_exchanged() {
    let w = World::start();
    let task = w.open("analytics:read", "task.token").ok_trimmed();
    assert_eq!(w.refresh(&task).ok_trimmed(), task);

    // Revoked at the registry, not closed at the issuer: no fresh mandate.
    w.revoke(&["--task", &task]);
    let (run, took) = poll("the refresh to be refused", || {
        let run = w.refresh(&task);
        (run.code != 0).then_some(run)
    });
    assert!(took < STALENESS, "refused after {took:?}");
    let message = run.error("issuer refused (403): forbidden");
    assert!(message.contains(&format!("revoked: task {task}")), "{run}");

    // A revoked principal's login mints nothing.
    w.revoke(&["--principal", "alice@example.com"]);
    let (run, _) = poll("the exchange to be refused", || {
        let run = w.open("analytics:read", "new.token");
        (run.code != 0).then_some(run)
    });
    assert!(
        run.stderr.contains("access_denied") && run.stderr.contains("revoked: principal"),
        "{run}"
    );
    assert!(!w.dir.file("new.token").exists(), "nothing minted");
}
