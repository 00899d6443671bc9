//! Rights asked for during a task, through the real binary and loopback
//! HTTP: `mandate issuer serve` (approver group `approvers`) trusting a
//! local identity provider, writing task revocations to `mandate serve
//! --store`; agents ask and wait with `mandate task request`, people decide
//! with `mandate requests ...`, services decide with `POST /v1/authorize`.
//!
//! The last test is the README's walk-through, step by step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use std::time::SystemTime;

use common::http::{http, Reply, JSON};
use common::idp::{fresh_login, login, next_second, Jwks, ISSUER_ID};
use common::issuer_site::IssuerSite;
use common::server::{poll, Server};
use common::{mandate, task_open, Dir, Run};
use mandate_issuer::issuer::TaskOperation;
use serde_json::json;

struct World {
    dir: Dir,
    _jwks: Jwks,
    verifier: Server,
    issuer: Server,
}

impl World {
    fn start() -> World {
        World::start_with(&[])
    }

    /// An issuer and a verifier with a registry; `extra` flags for the issuer.
    fn start_with(extra: &[&str]) -> World {
        let site = IssuerSite::new(&["sub.key"]);
        let mut flags = vec!["--approver-group", "approvers"];
        flags.extend_from_slice(extra);
        let issuer = site.issuer("issuer", &site.dir.path("tasks"), &flags);
        let IssuerSite {
            dir,
            jwks,
            verifier,
        } = site;
        World {
            dir,
            _jwks: jwks,
            verifier,
            issuer,
        }
    }

    fn at(&self, name: &str) -> String {
        format!("@{}", self.dir.path(name))
    }

    /// Writes `email`'s identity token to `NAME.jwt`; returns `@NAME.jwt`.
    fn login(&self, name: &str, email: &str, groups: &[&str]) -> String {
        std::fs::write(self.dir.file(&format!("{name}.jwt")), login(email, groups)).unwrap();
        self.at(&format!("{name}.jwt"))
    }

    /// As [`World::login`], a sign-in from a later second than anything
    /// before: what an approval needs.
    fn fresh_login(&self, name: &str, email: &str, groups: &[&str]) -> String {
        next_second();
        self.login(name, email, groups)
    }

    /// `mandate task open` for alice (staff) with `rights`, mandate in
    /// `task.token`; returns the task id.
    fn open(&self, rights: &[&str]) -> String {
        let subject = self.login("alice", "alice@example.com", &["staff"]);
        let (key, out) = (self.dir.path("agent.key"), self.dir.path("task.token"));
        task_open(
            &self.issuer.url,
            &subject,
            "orchestrator",
            &key,
            rights,
            &["--out", &out],
        )
        .ok_trimmed()
    }

    /// `mandate task request` as the agent holding `token` with `key`.
    fn request(&self, token: &str, key: &str, extra: &[&str]) -> Run {
        let (token, key) = (self.at(token), self.dir.path(key));
        let mut args = vec![
            "task",
            "request",
            "--issuer",
            &self.issuer.url,
            "--token",
            &token,
            "--agent-key",
            &key,
        ];
        args.extend_from_slice(extra);
        mandate(&args)
    }

    /// Asks for `right` with the task's mandate; returns the pending id.
    fn ask_pending(&self, right: &str) -> String {
        let run = self.request(
            "task.token",
            "agent.key",
            &["--right", right, "--reason", "pay the supplier"],
        );
        let out = run.ok_trimmed();
        out.strip_prefix("pending ")
            .unwrap_or_else(|| panic!("expected pending\n{run}"))
            .to_owned()
    }

    /// `mandate requests VERB ARGS --issuer URL --subject-token SUBJECT`.
    fn requests(&self, verb: &str, args: &[&str], subject: &str) -> Run {
        let mut all = vec!["requests", verb];
        all.extend_from_slice(args);
        all.extend(["--issuer", &self.issuer.url, "--subject-token", subject]);
        mandate(&all)
    }

    /// `POST /v1/requests/{id}/{verb}` with an identity token.
    fn decide_http(&self, id: &str, verb: &str, id_token: &str) -> Reply {
        let bearer = format!("Bearer {id_token}");
        http(
            "POST",
            &format!("{}/v1/requests/{id}/{verb}", self.issuer.url),
            Some(""),
            &[("Authorization", bearer.as_str())],
        )
    }

    /// `POST /v1/authorize` for `service:operation` on `/x` as `key`
    /// holding `token_file`: the HTTP status.
    fn authorize(&self, token_file: &str, key: &str, right: &str) -> u16 {
        let (service, operation) = right.split_once(':').unwrap();
        let token = std::fs::read_to_string(self.dir.file(token_file)).unwrap();
        let proof = common::tokens::pop(
            &self.dir.path(key),
            token.trim(),
            &common::request_flags(service, operation, "/x"),
        );
        let body = json!({
            "token": token.trim(), "service": service, "operation": operation,
            "resource": "/x", "pop": proof,
        });
        common::http::post(&self.verifier.url, &body.to_string()).status
    }

    /// Mandates minted so far: tasks opened and fresh mandates.
    fn minted(&self) -> usize {
        let log = self.issuer.stderr();
        log.matches("task opened").count() + log.matches("task refreshed").count()
    }

    /// Agent-side HTTP on the task in `task.token`: `op`'s proof by `key`.
    fn agent_headers(&self, op: TaskOperation, task: &str, key: &str) -> (String, String) {
        let token = std::fs::read_to_string(self.dir.file("task.token"))
            .unwrap()
            .trim()
            .to_owned();
        let digest = mandate_core::UnverifiedMandate::from_base64(&token)
            .unwrap()
            .digest_hex();
        let now = SystemTime::now();
        let key = mandate_core::SecretKey::read(&self.dir.file(key)).unwrap();
        let proof = mandate_core::Proof::sign(&key, &digest, &op.request(task, now).unwrap(), now)
            .to_text();
        (format!("Mandate {token}"), proof)
    }
}

#[test]
fn asked_approved_and_the_waiting_agent_gets_a_mandate_the_verifier_honours() {
    let w = World::start();
    let task = w.open(&["analytics:read"]);
    let minted = w.minted();
    let id = w.ask_pending("payments:transfer");
    assert!(id.starts_with("req-"), "{id}");
    assert_eq!(w.minted(), minted, "nothing is minted while pending");

    // The agent waits for the decision (the issuer holds the poll open).
    let waiting = {
        let (issuer, token, key, out) = (
            w.issuer.url.clone(),
            w.at("task.token"),
            w.dir.path("agent.key"),
            w.dir.path("granted.token"),
        );
        let id = id.clone();
        std::thread::spawn(move || {
            mandate(&[
                "task",
                "request",
                "--issuer",
                &issuer,
                "--token",
                &token,
                "--agent-key",
                &key,
                "--request",
                &id,
                "--wait",
                "30s",
                "--out",
                &out,
            ])
        })
    };

    // Alice sees it among her pending requests and approves it.
    let alice = w.fresh_login("alice", "alice@example.com", &["staff"]);
    let listed = w.requests("list", &["--json"], &alice).json();
    let listed = listed["requests"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["request_id"], id.as_str());
    assert_eq!(listed[0]["task_id"], task.as_str());
    assert_eq!(listed[0]["rights"], json!(["payments:transfer"]));
    assert_eq!(listed[0]["reason"], "pay the supplier");
    assert_eq!(
        listed[0]["policy_reason"],
        "payments:transfer needs approval"
    );
    let text = w.requests("list", &[], &alice).ok_trimmed();
    assert!(text.contains(&id) && text.contains("pending"), "{text}");
    let approved = w.requests("approve", &[&id], &alice).ok_trimmed();
    assert_eq!(approved, format!("request {id} granted"));

    let waited = waiting.join().unwrap();
    assert_eq!(waited.ok_trimmed(), task, "{waited}");
    assert!(waited.stderr.contains("granted"), "{waited}");

    // The verifier allows the new right with the new mandate, not the old one.
    assert_eq!(
        w.authorize("granted.token", "agent.key", "payments:transfer"),
        200
    );
    assert_eq!(
        w.authorize("granted.token", "agent.key", "analytics:read"),
        200
    );
    assert_eq!(
        w.authorize("task.token", "agent.key", "payments:transfer"),
        403
    );
    // Decided once: a second approval is refused.
    w.requests("approve", &[&id], &alice)
        .error("request_decided");
    // The grant is re-fetchable by the agent with a fresh proof.
    let again = w.request(
        "task.token",
        "agent.key",
        &["--request", &id, "--out", &w.dir.path("again.token")],
    );
    assert_eq!(again.ok_trimmed(), task);
    assert_eq!(
        w.authorize("again.token", "agent.key", "payments:transfer"),
        200
    );

    let log = w.issuer.stderr();
    for event in [
        "request.ask",
        "request.decide",
        "pending_approval",
        "approved",
    ] {
        assert!(log.contains(event), "no {event} in:\n{log}");
    }
}

#[test]
fn the_policy_grants_and_refuses_at_run_time_without_a_person() {
    let w = World::start();
    let task = w.open(&["expenses:submit"]);
    // An agent that acts on a service may read it: granted at once.
    let out = w.dir.path("read.token");
    let run = w.request(
        "task.token",
        "agent.key",
        &["--right", "expenses:read", "--out", &out],
    );
    assert_eq!(run.ok_trimmed(), task, "{run}");
    assert_eq!(w.authorize("read.token", "agent.key", "expenses:read"), 200);
    assert_eq!(
        w.authorize("read.token", "agent.key", "expenses:submit"),
        200
    );

    // Administrative rights never: refused (exit 1), nothing minted or stored.
    let minted = w.minted();
    let run = w.request("task.token", "agent.key", &["--right", "expenses:admin"]);
    run.fails(1, "admin rights are not added to a running task");
    assert_eq!(w.minted(), minted);
    let alice = w.login("alice", "alice@example.com", &["staff"]);
    let all = w
        .requests("list", &["--state", "all", "--json"], &alice)
        .json();
    assert_eq!(all["requests"], json!([]), "{all}");
    // A right the task holds already is not a request.
    w.request("task.token", "agent.key", &["--right", "expenses:submit"])
        .error("holds every right");
}

#[test]
fn a_denied_request_mints_nothing() {
    let w = World::start();
    w.open(&["analytics:read"]);
    let minted = w.minted();
    let id = w.ask_pending("payments:transfer");
    let alice = w.login("alice", "alice@example.com", &["staff"]);
    assert_eq!(
        w.requests("deny", &[&id], &alice).ok_trimmed(),
        format!("request {id} denied")
    );
    let run = w.request(
        "task.token",
        "agent.key",
        &["--request", &id, "--wait", "5s"],
    );
    assert_eq!(run.denied().trim(), format!("denied {id}"));
    // An approval after the denial changes nothing.
    w.requests("approve", &[&id], &alice)
        .error("request_decided");
    assert_eq!(w.minted(), minted);
    assert!(w.issuer.stderr().contains("rejected"));
}

#[test]
fn a_request_nobody_decides_expires_and_cannot_be_approved() {
    let w = World::start_with(&["--request-ttl", "1s"]);
    w.open(&["analytics:read"]);
    let minted = w.minted();
    let id = w.ask_pending("payments:transfer");
    // The waiting agent is woken by the expiry, not by a decision.
    let run = w.request(
        "task.token",
        "agent.key",
        &["--request", &id, "--wait", "30s"],
    );
    assert_eq!(run.denied().trim(), format!("expired {id}"));
    let alice = w.login("alice", "alice@example.com", &["staff"]);
    w.requests("approve", &[&id], &alice)
        .error("request_expired");
    let expired = w
        .requests("list", &["--state", "expired", "--json"], &alice)
        .json();
    assert_eq!(expired["requests"][0]["request_id"], id.as_str());
    assert_eq!(w.minted(), minted);
}

#[test]
fn two_concurrent_approvals_grant_once_and_approve_racing_deny_has_one_winner() {
    let w = World::start();
    // Alice's own sign-in, not the one `open` hands the agent.
    let alice_file = w.login("alice-own", "alice@example.com", &["staff"]);
    for round in 0..3 {
        // A task per round: an approval adds the right to its task.
        w.open(&["analytics:read"]);
        let id = w.ask_pending("payments:transfer");
        // An approval needs a sign-in made after the request.
        let alice = fresh_login("alice@example.com", &["staff"]);
        let carol = login("carol@example.com", &["approvers"]);
        // Round 0: four approvals; then approvals racing denials.
        let verbs: Vec<&str> = if round == 0 {
            vec!["approve"; 4]
        } else {
            vec!["approve", "deny", "approve", "deny"]
        };
        let replies: Vec<(String, Reply)> = std::thread::scope(|s| {
            let handles: Vec<_> = verbs
                .iter()
                .enumerate()
                .map(|(i, verb)| {
                    let token = if i % 2 == 0 { &alice } else { &carol };
                    let (w, id) = (&w, &id);
                    s.spawn(move || (verb.to_string(), w.decide_http(id, verb, token)))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<&(String, Reply)> =
            replies.iter().filter(|(_, r)| r.status == 200).collect();
        assert_eq!(winners.len(), 1, "round {round}: {replies:?}");
        for (_, reply) in replies.iter().filter(|(_, r)| r.status != 200) {
            reply.assert_error(409, "request_decided", "already");
        }
        let (verb, winner) = winners[0];
        let expected = if verb == "approve" {
            "granted"
        } else {
            "denied"
        };
        assert_eq!(winner.body["state"], expected, "round {round}");
        // The stored outcome is the winner's.
        let all = w
            .requests("list", &["--state", "all", "--json"], &alice_file)
            .json();
        let stored = all["requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("{id} not listed: {all}"))
            .clone();
        assert_eq!(stored["state"], expected, "round {round}: {stored}");
    }
    // One decision by a person per request in the issuer's events.
    let log = w.issuer.stderr();
    let by_people = log
        .lines()
        .filter(|l| l.contains("request.decide"))
        .filter(|l| l.contains("approved") || l.contains("rejected"))
        .count();
    assert_eq!(by_people, 3, "{log}");
}

#[test]
fn only_the_principal_or_an_approver_may_see_and_decide() {
    let w = World::start();
    w.open(&["analytics:read"]);
    let id = w.ask_pending("payments:transfer");
    // Bob is staff but neither the principal nor an approver.
    let bob = w.login("bob", "bob@example.com", &["staff"]);
    w.requests("approve", &[&id], &bob).error("forbidden");
    let seen = w.requests("list", &["--json"], &bob).json();
    assert_eq!(seen["requests"], json!([]), "{seen}");
    // Not a valid identity token at all.
    let forged = format!("{}x", login("alice@example.com", &["staff"]));
    let reply = w.decide_http(&id, "approve", &forged);
    reply.assert_error(401, "unauthenticated", "");
    let reply = http(
        "POST",
        &format!("{}/v1/requests/{id}/approve", w.issuer.url),
        Some(""),
        &[],
    );
    reply.assert_error(401, "unauthenticated", "Bearer");
    // Carol, in the approver group, sees it and approves it.
    let carol = w.fresh_login("carol", "carol@example.com", &["approvers"]);
    let seen = w.requests("list", &["--json"], &carol).json();
    assert_eq!(seen["requests"][0]["request_id"], id.as_str(), "{seen}");
    assert_eq!(
        w.requests("approve", &[&id], &carol).ok_trimmed(),
        format!("request {id} granted")
    );
    let log = w.issuer.stderr();
    assert!(
        log.lines()
            .any(|l| l.contains("request.decide") && l.contains("carol@example.com")),
        "{log}"
    );
}

#[test]
fn another_key_or_another_tasks_mandate_is_refused_and_nothing_minted() {
    let w = World::start();
    let task = w.open(&["analytics:read"]);
    let minted = w.minted();
    // The task's mandate with a proof by another key.
    w.request("task.token", "sub.key", &["--right", "payments:transfer"])
        .error("unauthenticated");
    let id = w.ask_pending("payments:transfer");
    w.request("task.token", "sub.key", &["--request", &id])
        .error("unauthenticated");
    // No proof at all.
    let (authorization, proof) = w.agent_headers(TaskOperation::Request, &task, "agent.key");
    let url = format!("{}/v1/tasks/{task}/requests", w.issuer.url);
    let body = r#"{"rights": ["payments:transfer"], "reason": "x"}"#;
    http(
        "POST",
        &url,
        Some(body),
        &[JSON, ("Authorization", authorization.as_str())],
    )
    .assert_error(401, "unauthenticated", "Mandate-PoP");
    // A proof for refresh is not a proof for a request.
    let (_, refresh_proof) = w.agent_headers(TaskOperation::Refresh, &task, "agent.key");
    let reply = http(
        "POST",
        &url,
        Some(body),
        &[
            JSON,
            ("Authorization", authorization.as_str()),
            ("Mandate-PoP", refresh_proof.as_str()),
        ],
    );
    assert_eq!(reply.status, 401, "{reply:?}");
    // Bounds: the reason, the list, unknown fields.
    let long = json!({"rights": ["payments:transfer"], "reason": "x".repeat(2000)}).to_string();
    http(
        "POST",
        &url,
        Some(&long),
        &[
            JSON,
            ("Authorization", authorization.as_str()),
            ("Mandate-PoP", proof.as_str()),
        ],
    )
    .assert_error(400, "invalid_request", "reason");
    let many: Vec<String> = (0..65).map(|i| format!("s{i}:read")).collect();
    let (_, proof) = w.agent_headers(TaskOperation::Request, &task, "agent.key");
    http(
        "POST",
        &url,
        Some(&json!({"rights": many}).to_string()),
        &[
            JSON,
            ("Authorization", authorization.as_str()),
            ("Mandate-PoP", proof.as_str()),
        ],
    )
    .assert_error(400, "invalid_request", "at most 64");
    let (_, proof) = w.agent_headers(TaskOperation::Request, &task, "agent.key");
    let reply = http(
        "POST",
        &url,
        Some(r#"{"rights": ["payments:transfer"], "admin": true}"#),
        &[
            JSON,
            ("Authorization", authorization.as_str()),
            ("Mandate-PoP", proof.as_str()),
        ],
    );
    assert!(matches!(reply.status, 400 | 422), "{reply:?}");
    // A mandate for another task.
    let other = w.open(&["analytics:read"]);
    assert_ne!(other, task);
    let (authorization, proof) = w.agent_headers(TaskOperation::Request, &task, "agent.key");
    http(
        "POST",
        &url,
        Some(body),
        &[
            JSON,
            ("Authorization", authorization.as_str()),
            ("Mandate-PoP", proof.as_str()),
        ],
    )
    .assert_error(403, "forbidden", "another task");
    assert_eq!(
        w.minted(),
        minted + 1,
        "only the second task's first mandate"
    );
}

#[test]
fn each_request_and_decision_is_recorded_in_the_audit_trail() {
    let audit = tempfile::tempdir().unwrap();
    let store = audit.path().join("issuer-audit").display().to_string();
    let mut world = World::start_with(&["--audit-store", &store]);
    let task = world.open(&["analytics:read"]);
    let refused = world.request("task.token", "agent.key", &["--right", "analytics:admin"]);
    refused.fails(1, "admin");
    let id = world.ask_pending("payments:transfer");
    let alice = world.fresh_login("alice", "alice@example.com", &["staff"]);
    world.requests("approve", &[&id], &alice).ok();
    world.issuer.terminate();

    let run = mandate(&["audit", "--store", &store, "--json"]);
    let records: Vec<serde_json::Value> = run
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps: Vec<(String, String)> = records
        .iter()
        .filter(|r| r["action"] == "right_requested" || r["action"] == "request_decided")
        .map(|r| {
            assert_eq!(r["task"], task.as_str(), "{run}");
            assert_eq!(r["principal"], "alice@example.com", "{run}");
            (
                r["action"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let step = |a: &str, o: &str| (a.to_owned(), o.to_owned());
    assert_eq!(
        steps,
        [
            step("right_requested", ""),
            step("request_decided", "refused"),
            step("right_requested", ""),
            step("request_decided", "pending_approval"),
            step("request_decided", "approved"),
        ],
        "{run}"
    );
    let approved = records.iter().find(|r| r["outcome"] == "approved").unwrap();
    assert_eq!(approved["request"], id.as_str(), "{run}");
    assert_eq!(approved["by"], "alice@example.com", "{run}");
    let asked = records
        .iter()
        .filter(|r| r["action"] == "right_requested")
        .nth(1)
        .unwrap();
    assert_eq!(asked["right"], "payments:transfer", "{run}");
    assert_eq!(asked["justification"], "pay the supplier", "{run}");
    mandate(&["audit", "verify", "--store", &store]).ok();
}

#[test]
fn bad_flags_and_an_unreachable_issuer_are_one_clear_error() {
    let dir = Dir::new();
    dir.keygen("agent.key");
    let token = mandate(&[
        "issue",
        "--root-key",
        &dir.path("agent.key"),
        "--principal",
        "alice@example.com",
        "--agent",
        "a",
        "--task",
        "task-1",
        "--right",
        "analytics:read",
        "--ttl",
        "5m",
    ])
    .ok_trimmed();
    let ask = |extra: &[&str]| {
        let key = dir.path("agent.key");
        let mut args = vec![
            "task",
            "request",
            "--issuer",
            "http://127.0.0.1:9",
            "--token",
            &token,
            "--agent-key",
            &key,
        ];
        args.extend_from_slice(extra);
        mandate(&args)
    };
    ask(&["--right", "payments:transfer"]).error("issuer unreachable");
    ask(&["--right", "nocolon"]).error("SERVICE:OPERATION");
    ask(&["--right", "payments:transfer", "--wait", "soon"]).error("invalid duration");
    ask(&["--right", "payments:transfer", "--wait", "2h"]).error("too long");
    ask(&[]).usage_error("required");
    let approver = |verb: &str, extra: &[&str]| {
        let mut args = vec![
            "requests",
            verb,
            "--issuer",
            "http://127.0.0.1:9",
            "--subject-token",
            "a.b.c",
        ];
        args.extend_from_slice(extra);
        mandate(&args)
    };
    approver("approve", &["req-1"]).error("issuer unreachable");
    approver("list", &[]).error("issuer unreachable");
    approver("list", &["--state", "bogus"]).error("--state bogus");
}

/// The README's walk-through ("Asking for more rights during a task"),
/// as one run.
#[test]
fn readme_walkthrough_login_delegate_call_ask_approve_refresh_close() {
    let w = World::start();
    let issuer = w.issuer.url.clone();

    // 1. Exchange alice's login for a task mandate.
    let task = w.open(&["analytics:read"]);
    assert!(task.starts_with("task-"));

    // 2. Delegate it offline to a sub-agent, which calls a service.
    mandate(&[
        "delegate",
        "--token",
        &w.at("task.token"),
        "--signer-key",
        &w.dir.path("agent.key"),
        "--to",
        "charts",
        "--to-key",
        &w.dir.path("sub.key.pub"),
        "--operation",
        "read",
        "--out",
        &w.dir.path("sub.token"),
    ])
    .ok();
    assert_eq!(w.authorize("sub.token", "sub.key", "analytics:read"), 200);

    // 3. The agent needs a right it was not given: it asks.
    assert_eq!(
        w.authorize("task.token", "agent.key", "payments:transfer"),
        403
    );
    let id = w.ask_pending("payments:transfer");

    // 4. Alice signs in again (the login the agent was given never
    // approves) and approves it.
    let alice = w.fresh_login("alice-own", "alice@example.com", &["staff"]);
    let listed = w.requests("list", &[], &alice).ok_trimmed();
    assert!(listed.contains(&id), "{listed}");
    assert_eq!(
        w.requests("approve", &[&id], &alice).ok_trimmed(),
        format!("request {id} granted")
    );

    // 5. The agent collects its mandate with the new right and uses it.
    let run = w.request(
        "task.token",
        "agent.key",
        &[
            "--request",
            &id,
            "--wait",
            "30s",
            "--out",
            &w.dir.path("task.token"),
        ],
    );
    assert_eq!(run.ok_trimmed(), task);
    assert_eq!(
        w.authorize("task.token", "agent.key", "payments:transfer"),
        200
    );

    // 6. Refresh: the task keeps the approved right.
    let refreshed = mandate(&[
        "task",
        "refresh",
        "--issuer",
        &issuer,
        "--task",
        &task,
        "--token",
        &w.at("task.token"),
        "--agent-key",
        &w.dir.path("agent.key"),
        "--out",
        &w.dir.path("task.token"),
    ])
    .ok_trimmed();
    assert_eq!(refreshed, task);
    assert_eq!(
        w.authorize("task.token", "agent.key", "payments:transfer"),
        200
    );

    // 7. Close the task: the next call is denied, the sub-agent's too.
    let closed = mandate(&[
        "task",
        "close",
        "--issuer",
        &issuer,
        "--task",
        &task,
        "--token",
        &w.at("task.token"),
        "--agent-key",
        &w.dir.path("agent.key"),
    ])
    .ok_trimmed();
    assert_eq!(closed, format!("task {task} closed"));
    poll("the closed task's calls to be denied", || {
        (w.authorize("task.token", "agent.key", "payments:transfer") == 403).then_some(())
    });
    assert_eq!(w.authorize("sub.token", "sub.key", "analytics:read"), 403);
    // And no request can grow a closed task.
    w.request("task.token", "agent.key", &["--right", "expenses:read"])
        .error("task_closed");
}

/// `POST /oauth2/token` with `form` pairs.
fn token_endpoint(w: &World, form: &[(&str, &str)]) -> Reply {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    http(
        "POST",
        &format!("{}/oauth2/token", w.issuer.url),
        Some(&body),
        &[("Content-Type", "application/x-www-form-urlencoded")],
    )
}

/// The token exchange of `subject` by the orchestrator (`agent.key`) asking `scope`.
fn exchange_http(w: &World, subject: &str, scope: &str) -> Reply {
    let key = mandate_core::SecretKey::read(&w.dir.file("agent.key")).unwrap();
    let actor =
        mandate_issuer::actor::sign(&key, "orchestrator", ISSUER_ID, subject, SystemTime::now());
    token_endpoint(
        w,
        &[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", subject),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
            ("actor_token", &actor),
            ("actor_token_type", mandate_issuer::ACTOR_TOKEN_TYPE),
            ("scope", scope),
        ],
    )
}

/// The approval grant for `request` by `agent` holding `key_file`.
fn collect_http(w: &World, request: &str, agent: &str, key_file: &str) -> Reply {
    let key = mandate_core::SecretKey::read(&w.dir.file(key_file)).unwrap();
    let actor = mandate_issuer::actor::sign(&key, agent, ISSUER_ID, request, SystemTime::now());
    token_endpoint(
        w,
        &[
            ("grant_type", "urn:mandate:params:oauth:grant-type:approval"),
            ("request_id", request),
            ("actor_token", &actor),
            ("actor_token_type", mandate_issuer::ACTOR_TOKEN_TYPE),
        ],
    )
}

impl World {
    /// `mandate task open` for alice (staff) asking `right`, with `extra` flags.
    fn open_run(&self, right: &str, extra: &[&str]) -> Run {
        let subject = self.login("alice", "alice@example.com", &["staff"]);
        let key = self.dir.path("agent.key");
        let mut extra = extra.to_vec();
        extra.extend(["--description", "pay the supplier"]);
        task_open(
            &self.issuer.url,
            &subject,
            "orchestrator",
            &key,
            &[right],
            &extra,
        )
    }

    /// `mandate task open --request ID` (collect) as the orchestrator with `key`.
    fn collect(&self, id: &str, key: &str, extra: &[&str]) -> Run {
        let key = self.dir.path(key);
        let mut args = vec![
            "task",
            "open",
            "--issuer",
            &self.issuer.url,
            "--agent",
            "orchestrator",
            "--agent-key",
            &key,
            "--request",
            id,
        ];
        args.extend_from_slice(extra);
        mandate(&args)
    }
}

#[test]
fn an_exchange_the_policy_asks_for_waits_for_approval_and_is_collected_once() {
    let w = World::start();
    // The default policy asks a person for payments:transfer.
    let run = w.open_run("payments:transfer", &["--out", &w.dir.path("task.token")]);
    let id = run
        .ok_trimmed()
        .strip_prefix("pending ")
        .unwrap_or_else(|| panic!("expected pending\n{run}"))
        .to_owned();
    assert!(id.starts_with("req-"), "{run}");
    assert!(run.stderr.contains("waits for approval"), "{run}");
    assert!(run.stderr.contains(&format!("--request {id}")), "{run}");
    assert!(
        !w.dir.file("task.token").exists(),
        "no mandate before approval"
    );
    assert_eq!(w.minted(), 0, "nothing minted while pending");

    // Not collectable yet: the agent is told to wait (exit 0, still pending).
    let early = w.collect(&id, "agent.key", &[]);
    assert_eq!(early.ok_trimmed(), format!("pending {id}"), "{early}");

    // Alice sees it among her pending requests, for a task of her own.
    let alice = w.fresh_login("alice", "alice@example.com", &["staff"]);
    let listed = w.requests("list", &["--json"], &alice).json();
    let listed = listed["requests"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["request_id"], id.as_str());
    assert_eq!(listed[0]["rights"], json!(["payments:transfer"]));
    assert_eq!(listed[0]["agent"], "orchestrator");
    assert_eq!(
        listed[0]["policy_reason"],
        "payments:transfer needs approval"
    );
    let task = listed[0]["task_id"].as_str().unwrap().to_owned();
    // Someone else's key cannot collect it, approved or not.
    collect_http(&w, &id, "orchestrator", "sub.key").assert_oauth(400, "invalid_grant");

    let approved = w.requests("approve", &[&id], &alice).ok_trimmed();
    assert_eq!(approved, format!("request {id} granted"));
    collect_http(&w, &id, "orchestrator", "sub.key").assert_oauth(400, "invalid_grant");

    // The agent collects the task's first mandate; the service honours it.
    let got = w.collect(&id, "agent.key", &["--out", &w.dir.path("task.token")]);
    assert_eq!(got.ok_trimmed(), task, "{got}");
    assert_eq!(
        w.authorize("task.token", "agent.key", "payments:transfer"),
        200
    );
    assert_eq!(
        w.authorize("task.token", "agent.key", "analytics:read"),
        403
    );
    // Once: a second collection is refused, the task refreshes as any other.
    w.collect(&id, "agent.key", &[]).error("collected already");
    let refreshed = mandate(&[
        "task",
        "refresh",
        "--issuer",
        &w.issuer.url,
        "--task",
        &task,
        "--token",
        &w.at("task.token"),
        "--agent-key",
        &w.dir.path("agent.key"),
        "--out",
        &w.dir.path("task.token"),
    ]);
    assert_eq!(refreshed.ok_trimmed(), task, "{refreshed}");
    assert_eq!(
        w.authorize("task.token", "agent.key", "payments:transfer"),
        200
    );
    let log = w.issuer.stderr();
    assert_eq!(log.matches("task opened").count(), 1, "{log}");
}

#[test]
fn over_http_an_asked_exchange_names_its_request_and_a_denial_ends_it() {
    let w = World::start();
    let subject = login("alice@example.com", &["staff"]);
    let reply = exchange_http(&w, &subject, "payments:transfer");
    reply.assert_oauth(403, "approval_required");
    let id = reply.body["request_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("req-"), "{}", reply.body);
    assert!(reply.body["task_id"].as_str().unwrap().starts_with("task-"));
    assert_eq!(reply.body["interval"], 5);
    let expires_in = reply.body["expires_in"].as_u64().unwrap();
    assert!(expires_in > 800 && expires_in <= 900, "{}", reply.body);
    assert!(reply.body.get("access_token").is_none());

    // Pending: RFC 8628's answer, naming the request again.
    let pending = collect_http(&w, &id, "orchestrator", "agent.key");
    pending.assert_oauth(400, "authorization_pending");
    assert_eq!(pending.body["request_id"], id.as_str());
    // A malformed collection is refused before anything is read.
    token_endpoint(
        &w,
        &[
            ("grant_type", "urn:mandate:params:oauth:grant-type:approval"),
            ("request_id", &id),
        ],
    )
    .assert_oauth(400, "invalid_request");
    collect_http(&w, "req-nope", "orchestrator", "agent.key").assert_oauth(400, "invalid_grant");

    // Alice denies: the collection says so, the CLI exits 1, nothing minted.
    let denied = w.decide_http(&id, "deny", &login("alice@example.com", &["staff"]));
    assert_eq!(denied.status, 200, "{}", denied.body);
    collect_http(&w, &id, "orchestrator", "agent.key").assert_oauth(403, "access_denied");
    let run = w.collect(&id, "agent.key", &[]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stdout.contains("access_denied"), "{run}");
    assert_eq!(w.minted(), 0);
}

#[test]
fn a_waiting_task_open_gets_its_mandate_when_the_approver_says_yes() {
    let w = World::start();
    let subject = w.login("alice", "alice@example.com", &["staff"]);
    let waiting = {
        let (issuer, key, out) = (
            w.issuer.url.clone(),
            w.dir.path("agent.key"),
            w.dir.path("task.token"),
        );
        std::thread::spawn(move || {
            task_open(
                &issuer,
                &subject,
                "orchestrator",
                &key,
                &["payments:transfer"],
                &["--wait", "60s", "--out", &out],
            )
        })
    };
    // An approver (not the principal) decides once the request shows up.
    let bob = w.login("bob", "bob@example.com", &["approvers"]);
    let id = loop {
        let listed = w.requests("list", &["--json"], &bob).json();
        if let Some(first) = listed["requests"].as_array().and_then(|a| a.first()) {
            break first["request_id"].as_str().unwrap().to_owned();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let bob = w.fresh_login("bob", "bob@example.com", &["approvers"]);
    w.requests("approve", &[&id], &bob).ok_trimmed();
    let waited = waiting.join().unwrap();
    assert!(waited.ok_trimmed().starts_with("task-"), "{waited}");
    assert_eq!(
        w.authorize("task.token", "agent.key", "payments:transfer"),
        200
    );
}

#[test]
fn run_time_requests_see_the_login_the_task_was_opened_with() {
    // A policy that adds reports:write at run time only for editors.
    let policy = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        policy.path(),
        "grant($s, \"read\") <- requested_right($s, \"read\");\n\
         grant(\"reports\", \"write\") <- requested_right(\"reports\", \"write\"), task($t), group(\"editors\");\n",
    )
    .unwrap();
    let path = policy.path().display().to_string();
    let w = World::start_with(&["--policy", &path]);
    let (key, out) = (w.dir.path("agent.key"), w.dir.path("task.token"));
    let open = |name: &str, email: &str, groups: &[&str]| {
        let subject = w.login(name, email, groups);
        task_open(
            &w.issuer.url,
            &subject,
            "orchestrator",
            &key,
            &["reports:read"],
            &["--out", &out],
        )
        .ok_trimmed()
    };

    // Carol, an editor: the run-time request is granted without a person.
    open("carol", "carol@example.com", &["editors"]);
    let granted = w.dir.path("granted.token");
    let run = w.request(
        "task.token",
        "agent.key",
        &["--right", "reports:write", "--out", &granted],
    );
    assert!(run.ok_trimmed().starts_with("task-"), "{run}");
    assert_eq!(
        w.authorize("granted.token", "agent.key", "reports:write"),
        200
    );

    // Dave, not an editor: the same request is refused (exit 1).
    open("dave", "dave@example.com", &["staff"]);
    let run = w.request("task.token", "agent.key", &["--right", "reports:write"]);
    run.fails(1, "grants none of the requested rights");
    assert_eq!(w.authorize("task.token", "agent.key", "reports:write"), 403);
}

/// The line of the issuer's log reporting `task` closed, if any.
fn closed_line(w: &World, task: &str) -> Option<String> {
    w.issuer
        .stderr()
        .lines()
        .find(|line| line.contains("task closed") && line.contains(task))
        .map(str::to_owned)
}

#[test]
fn an_asked_exchange_denied_or_left_undecided_closes_the_task_it_left_waiting() {
    let w = World::start_with(&["--request-ttl", "5s", "--sweep-interval", "100ms"]);
    let pending = |run: Run| {
        run.ok_trimmed()
            .strip_prefix("pending ")
            .unwrap_or_else(|| panic!("expected pending\n{run}"))
            .to_owned()
    };
    let undecided = pending(w.open_run("payments:transfer", &[]));
    let denied = pending(w.open_run("payments:transfer", &[]));
    let alice = w.login("alice", "alice@example.com", &["staff"]);
    let listed = w.requests("list", &["--json"], &alice).json();
    let task_of = |id: &str| {
        listed["requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["request_id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed: {listed}"))["task_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (waiting, refused) = (task_of(&undecided), task_of(&denied));
    assert_eq!(closed_line(&w, &waiting), None, "open while pending");

    // Denied: the task it would have opened is closed at once, for that reason.
    assert_eq!(
        w.requests("deny", &[&denied], &alice).ok_trimmed(),
        format!("request {denied} denied")
    );
    let line = closed_line(&w, &refused).expect("the denied exchange's task is closed");
    assert!(line.contains("denied"), "{line}");
    assert_eq!(closed_line(&w, &waiting), None, "the other still waits");

    // Nobody decides the other: once it expires, the sweep closes its task
    // without anyone reading the request.
    let (line, _) = poll("the undecided exchange's task to close", || {
        closed_line(&w, &waiting)
    });
    assert!(line.contains("expired"), "{line}");
    // Neither task minted, and neither can now: an approval comes too late.
    assert_eq!(w.minted(), 0);
    w.requests("approve", &[&undecided], &alice)
        .error("request_expired");
    w.collect(&denied, "agent.key", &[])
        .fails(1, "access_denied");
}

#[test]
fn an_agent_cannot_approve_or_list_requests_with_the_login_it_was_given() {
    // Found by review: the agent holds the principal's identity token (it
    // exchanged it), and approvals only checked "a valid token naming the
    // task's principal": the agent approved its own payments:transfer.
    let w = World::start();
    w.open(&["analytics:read"]);
    // `open` wrote the token it handed the agent here.
    let handed = w.at("alice.jwt");
    // Alice's own sign-in, but made before the request.
    let early = w.login("alice-early", "alice@example.com", &["staff"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let id = w.ask_pending("payments:transfer");
    w.requests("approve", &[&id], &handed)
        .error("given to an agent");
    w.requests("list", &[], &handed).error("given to an agent");
    w.requests("approve", &[&id], &early)
        .error("sign-in made after the request");
    let minted = w.minted();
    // A sign-in of alice's own, after the request, approves it.
    let own = w.fresh_login("alice-own", "alice@example.com", &["staff"]);
    assert_eq!(
        w.requests("approve", &[&id], &own).ok_trimmed(),
        format!("request {id} granted")
    );
    assert_eq!(w.minted(), minted, "minted only when the agent collects");

    // At exchange: the login the agent exchanged cannot approve the
    // request the exchange made, over HTTP either.
    let subject = login("alice@example.com", &["staff"]);
    let reply = exchange_http(&w, &subject, "payments:transfer");
    reply.assert_oauth(403, "approval_required");
    let id = reply.body["request_id"].as_str().unwrap().to_owned();
    w.decide_http(&id, "approve", &subject)
        .assert_error(403, "forbidden", "given to an agent");
    collect_http(&w, &id, "orchestrator", "agent.key").assert_oauth(400, "authorization_pending");
}

#[test]
fn a_stranger_signing_actor_tokens_for_a_request_takes_no_place_in_the_replay_memory() {
    // Found by review: the approval grant spent the actor token's `jti`
    // before it looked at the request, and the token names its own key: a
    // stranger's tokens filled the replay memory (and then blocked every
    // exchange). Now a token for another agent's request is refused
    // without being remembered: the same token is refused the same way
    // again, not as "already used".
    let w = World::start();
    let pending = w.open_run("payments:transfer", &[]).ok_trimmed();
    let id = pending.strip_prefix("pending ").unwrap().to_owned();
    let stranger = mandate_core::SecretKey::generate();
    let actor =
        mandate_issuer::actor::sign(&stranger, "orchestrator", ISSUER_ID, &id, SystemTime::now());
    let form = [
        ("grant_type", "urn:mandate:params:oauth:grant-type:approval"),
        ("request_id", id.as_str()),
        ("actor_token", actor.as_str()),
        ("actor_token_type", mandate_issuer::ACTOR_TOKEN_TYPE),
    ];
    for _ in 0..2 {
        let reply = token_endpoint(&w, &form);
        reply.assert_oauth(400, "invalid_grant");
        let said = reply.body["error_description"].as_str().unwrap();
        assert!(
            said.contains("only the agent the task was asked for"),
            "{said}"
        );
    }
    // The agent itself still collects (pending, not refused).
    collect_http(&w, &id, "orchestrator", "agent.key").assert_oauth(400, "authorization_pending");
}

#[test]
fn one_principal_cannot_keep_more_than_its_share_of_requests_waiting() {
    // Found by review: every exchange that asks opens a task of its own, so
    // the cap of requests waiting per task did not bound one login's.
    let w = World::start();
    let cap = mandate_issuer::requests::MAX_PENDING_PER_PRINCIPAL;
    for _ in 0..cap {
        let run = w.open_run("payments:transfer", &[]);
        assert!(run.ok_trimmed().starts_with("pending "), "{run}");
    }
    let refused = w.open_run("payments:transfer", &[]);
    assert_eq!(refused.code, 2, "{refused}");
    assert!(
        refused.stderr.contains("wait for a person already"),
        "{refused}"
    );
    // Another principal is not held up by alice's.
    let subject = w.login("dave", "dave@example.com", &["staff"]);
    let run = task_open(
        &w.issuer.url,
        &subject,
        "orchestrator",
        &w.dir.path("agent.key"),
        &["payments:transfer"],
        &[],
    );
    assert!(run.ok_trimmed().starts_with("pending "), "{run}");
}

#[test]
fn an_empty_sign_in_file_is_refused_before_anything_is_sent() {
    // Seen when a sign-in file was read while being written: the empty
    // token went out and the issuer answered "missing parameter".
    let w = World::start();
    std::fs::write(w.dir.file("empty.jwt"), "\n").unwrap();
    let run = task_open(
        &w.issuer.url,
        &w.at("empty.jwt"),
        "orchestrator",
        &w.dir.path("agent.key"),
        &["payments:transfer"],
        &[],
    );
    run.error("malformed token: empty token (token file ");
}

#[test]
fn asking_at_once_cannot_push_a_principal_past_its_share_of_requests_waiting() {
    // Found by review: the cap was read, then the request written, so asks
    // arriving together all saw room and all waited.
    let w = World::start();
    let cap = mandate_issuer::requests::MAX_PENDING_PER_PRINCIPAL;
    let extra = 12;
    // One sign-in file per ask (alice each time), all written first.
    let subjects: Vec<String> = (0..cap + extra)
        .map(|i| w.login(&format!("alice-{i}"), "alice@example.com", &["staff"]))
        .collect();
    let (key, url) = (w.dir.path("agent.key"), w.issuer.url.clone());
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let asks: Vec<_> = subjects
            .iter()
            .map(|subject| {
                let (key, url) = (&key, &url);
                scope.spawn(move || {
                    task_open(
                        url,
                        subject,
                        "orchestrator",
                        key,
                        &["payments:transfer"],
                        &[],
                    )
                })
            })
            .collect();
        asks.into_iter()
            .map(|ask| ask.join().expect("an ask panicked"))
            .collect()
    });
    let pending = runs
        .iter()
        .filter(|run| run.code == 0 && run.stdout.trim().starts_with("pending "))
        .count();
    let refused: Vec<&Run> = runs.iter().filter(|run| run.code != 0).collect();
    let outcomes: Vec<&str> = runs
        .iter()
        .map(|run| run.stderr.lines().next().unwrap_or(""))
        .collect();
    assert_eq!(pending, cap, "{outcomes:#?}");
    assert_eq!(refused.len(), extra, "{outcomes:#?}");
    for run in refused {
        assert_eq!(run.code, 2, "{run}");
        assert!(run.stderr.contains("wait for a person already"), "{run}");
    }
}
