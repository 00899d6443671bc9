//! The issuer keeps its stores bounded, through the real binary and
//! loopback HTTP: `mandate issuer serve --config` with a short `[retention]`
//! prunes a closed task (its refresh and close then answer 404, as for a
//! task that never existed) and an expired request (reading or approving it
//! answers 404), while an open task and a pending request survive; on sled
//! and on PostgreSQL (SKIPPED when `MANDATE_TEST_PG` is unset). And
//! `mandate keys prune` removes a retired root key only once its overlap
//! has passed, leaving the signing key and the published set as they were.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant, SystemTime};

use common::http::{http, Reply, JSON};
use common::idp::{fixture, fresh_login, login, AUDIENCE, IDP, ISSUER_ID};
use common::server::Server;
use common::{mandate, Dir};
use mandate_issuer::issuer::TaskOperation;
use serde_json::{json, Value};

/// How long closed tasks are kept, and how long mandates live (a closed
/// task is kept at least that long).
const KEEP: &str = "2s";

struct Issuer {
    dir: Dir,
    server: Server,
}

/// Where the issuer signs from.
enum Keys<'a> {
    /// `root.key`, made here, as key id 1.
    File,
    /// A key folder kept by `mandate keys rotate`.
    Dir(&'a str),
}

impl Issuer {
    /// `mandate issuer serve` on `store` (a folder of `dir` or a database
    /// URL), requests living `request_ttl`, everything finished kept
    /// [`KEEP`], task revocations written to a sled folder of `dir`.
    fn start(dir: Dir, store: &str, keys: Keys<'_>, request_ttl: &str) -> Issuer {
        let keys = match keys {
            Keys::File => {
                dir.keygen("root.key");
                format!("root_key = \"{}\"\nroot_key_id = 1\n", dir.path("root.key"))
            }
            Keys::Dir(folder) => format!("key_dir = \"{folder}\"\nkeys_max_age = \"0s\"\n"),
        };
        let config = format!(
            "id = \"{ISSUER_ID}\"\n{keys}store = \"{store}\"\nmandate_ttl = \"{KEEP}\"\n\
             sweep_interval = \"100ms\"\nrequest_ttl = \"{request_ttl}\"\n\
             approver_groups = [\"approvers\"]\n\n\
             [revocations]\nstore = \"{}\"\n\n\
             [retention]\nclosed_tasks = \"{KEEP}\"\ndecided_requests = \"1s\"\n\n\
             [[idp]]\nissuer = \"{IDP}\"\naudience = \"{AUDIENCE}\"\njwks_file = \"{}\"\n",
            dir.path("revocations"),
            fixture("jwks.json").display()
        );
        std::fs::write(dir.file("issuer.toml"), config).unwrap();
        let server = Server::start(
            "issuer",
            &[
                "issuer",
                "serve",
                "--config",
                &dir.path("issuer.toml"),
                "--listen",
                "127.0.0.1:0",
            ],
            dir.file("issuer.log"),
        )
        .unwrap();
        Issuer { dir, server }
    }

    fn agent_key(&self) -> mandate_core::SecretKey {
        if !self.dir.file("agent.key").exists() {
            self.dir.keygen("agent.key");
        }
        mandate_core::SecretKey::read(&self.dir.file("agent.key")).unwrap()
    }

    /// A token exchange for alice asking `scope`.
    fn exchange(&self, scope: &str) -> Reply {
        let subject = login("alice@example.com", &["staff"]);
        let actor = mandate_issuer::actor::sign(
            &self.agent_key(),
            "helper",
            ISSUER_ID,
            &subject,
            SystemTime::now(),
        );
        self.token_endpoint(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", &subject),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:id_token",
            ),
            ("actor_token", &actor),
            ("actor_token_type", mandate_issuer::ACTOR_TOKEN_TYPE),
            ("scope", scope),
            ("task_description", "quarterly numbers"),
        ])
    }

    /// The approval grant collecting the exchange that request `id` holds.
    fn collect(&self, id: &str) -> Reply {
        let actor = mandate_issuer::actor::sign(
            &self.agent_key(),
            "helper",
            ISSUER_ID,
            id,
            SystemTime::now(),
        );
        self.token_endpoint(&[
            ("grant_type", mandate_issuer::requests::APPROVAL_GRANT_TYPE),
            ("request_id", id),
            ("actor_token", &actor),
            ("actor_token_type", mandate_issuer::ACTOR_TOKEN_TYPE),
        ])
    }

    fn token_endpoint(&self, form: &[(&str, &str)]) -> Reply {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        http(
            "POST",
            &format!("{}/oauth2/token", self.server.url),
            Some(&body),
            &[("Content-Type", "application/x-www-form-urlencoded")],
        )
    }

    /// A granted exchange for alice: (task id, mandate).
    fn open(&self) -> (String, String) {
        let reply = self.exchange("analytics:read");
        assert_eq!(reply.status, 200, "{}", reply.body);
        (
            reply.body["task_id"].as_str().unwrap().to_owned(),
            reply.body["access_token"].as_str().unwrap().to_owned(),
        )
    }

    /// `Authorization` and `Mandate-PoP` for the agent's `op` on `task`.
    fn agent(&self, op: TaskOperation, task: &str, token: &str) -> [(&'static str, String); 2] {
        let digest = mandate_core::UnverifiedMandate::from_base64(token)
            .unwrap()
            .digest_hex();
        let now = SystemTime::now();
        let request = op.request(task, now).unwrap();
        let proof = mandate_core::Proof::sign(&self.agent_key(), &digest, &request, now);
        [
            ("Authorization", format!("Mandate {token}")),
            (mandate_issuer::server::tasks::POP_HEADER, proof.to_text()),
        ]
    }

    /// `POST /v1/tasks/{task}/{refresh|close}` as the agent.
    fn task_call(&self, op: TaskOperation, task: &str, token: &str) -> Reply {
        let headers = self.agent(op, task, token);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        http(
            "POST",
            &format!("{}/v1/tasks/{task}/{}", self.server.url, op.as_str()),
            Some(""),
            &headers,
        )
    }

    /// Asks for `payments:transfer` on `task`, which the built-in policy
    /// leaves to a person: the pending request's id.
    fn ask(&self, task: &str, token: &str) -> String {
        let mut headers = self.agent(TaskOperation::Request, task, token).to_vec();
        headers.push((JSON.0, JSON.1.to_owned()));
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let body = json!({"rights": ["payments:transfer"], "reason": "pay the supplier"});
        let reply = http(
            "POST",
            &format!("{}/v1/tasks/{task}/requests", self.server.url),
            Some(&body.to_string()),
            &headers,
        );
        assert_eq!(reply.body["state"], "pending", "{}", reply.body);
        reply.body["request_id"].as_str().unwrap().to_owned()
    }

    /// `GET /v1/requests/{id}` as the agent, without waiting.
    fn read_request(&self, id: &str, task: &str, token: &str) -> Reply {
        let headers = self.agent(TaskOperation::Poll, task, token);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        http(
            "GET",
            &format!("{}/v1/requests/{id}?wait=0s", self.server.url),
            None,
            &headers,
        )
    }

    /// `POST /v1/requests/{id}/approve` as an approver.
    fn approve(&self, id: &str) -> Reply {
        let bearer = format!(
            "Bearer {}",
            fresh_login("carol@example.com", &["approvers"])
        );
        http(
            "POST",
            &format!("{}/v1/requests/{id}/approve", self.server.url),
            Some(""),
            &[("Authorization", bearer.as_str())],
        )
    }

    /// The key ids the issuer publishes, sorted.
    fn published(&self) -> Vec<u64> {
        let reply = http(
            "GET",
            &format!("{}/.well-known/mandate-keys", self.server.url),
            None,
            &[],
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        let mut kids: Vec<u64> = reply.body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_u64().unwrap())
            .collect();
        kids.sort_unstable();
        kids
    }
}

/// Calls `f` every 100 ms until it answers, for at most 20 s.
#[track_caller]
fn within_20s<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(found) = f() {
            return found;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A closed task past retention is gone: refresh and close answer as for
/// an unknown task. An open task, and a pending request on it, stay and
/// keep working.
fn closed_task_goes_open_task_and_pending_request_stay(dir: Dir, store: &str) {
    let issuer = Issuer::start(dir, store, Keys::File, "15m");
    let (closing, closing_token) = issuer.open();
    let (staying, staying_token) = issuer.open();
    let pending = issuer.ask(&staying, &staying_token);

    let closed = issuer.task_call(TaskOperation::Close, &closing, &closing_token);
    assert_eq!(closed.status, 200, "{}", closed.body);
    // Kept for now: a refresh is refused because the task is closed.
    issuer
        .task_call(TaskOperation::Refresh, &closing, &closing_token)
        .assert_error(409, "task_closed", "closed");

    let gone = within_20s("the closed task is pruned", || {
        let reply = issuer.task_call(TaskOperation::Refresh, &closing, &closing_token);
        (reply.status != 409).then_some(reply)
    });
    gone.assert_error(404, "task_not_found", "no such task");
    issuer
        .task_call(TaskOperation::Close, &closing, &closing_token)
        .assert_error(404, "task_not_found", "no such task");
    let log = issuer.server.stderr();
    assert!(
        log.contains("pruned closed tasks and settled requests past their retention"),
        "{log}"
    );

    // The open task and its pending request outlived the retention.
    let refreshed = issuer.task_call(TaskOperation::Refresh, &staying, &staying_token);
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let read = issuer.read_request(&pending, &staying, &staying_token);
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["state"], "pending", "{}", read.body);
    let approved = issuer.approve(&pending);
    assert_eq!(approved.status, 200, "{}", approved.body);
    assert_eq!(approved.body["state"], "granted", "{}", approved.body);
}

/// A request nobody decided expires, then is pruned past retention:
/// reading or approving it answers as for an unknown request; its task
/// stays open. An exchange left waiting on a request that expired is
/// refused as expired, then, pruned, as an unknown grant.
fn expired_request_goes(dir: Dir, store: &str) {
    let issuer = Issuer::start(dir, store, Keys::File, "1s");
    let (task, token) = issuer.open();
    let id = issuer.ask(&task, &token);
    let asked = issuer.exchange("payments:transfer");
    asked.assert_oauth(403, "approval_required");
    let waiting = asked.body["request_id"].as_str().unwrap().to_owned();
    issuer
        .collect(&waiting)
        .assert_oauth(400, "authorization_pending");
    within_20s("the waiting exchange is refused as expired", || {
        let reply = issuer.collect(&waiting);
        (reply.body["error"] != "authorization_pending").then_some(reply)
    })
    .assert_oauth(400, "expired_token");
    let mut seen_expired = false;
    let gone = within_20s("the expired request is pruned", || {
        let reply = issuer.read_request(&id, &task, &token);
        seen_expired |= reply.body["state"] == "expired";
        (reply.status != 200).then_some(reply)
    });
    gone.assert_error(404, "request_not_found", "");
    assert!(seen_expired, "it expired before it went");
    issuer
        .approve(&id)
        .assert_error(404, "request_not_found", "");
    let refreshed = issuer.task_call(TaskOperation::Refresh, &task, &token);
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);

    // Expired a second after it was asked, pruned a second later.
    within_20s("the waiting exchange's request is pruned", || {
        let reply = issuer.collect(&waiting);
        (reply.body["error"] == "invalid_grant").then_some(())
    });
    issuer.collect(&waiting).assert_oauth(400, "invalid_grant");
}

#[test]
fn sled_a_closed_task_goes_while_an_open_task_and_a_pending_request_stay() {
    let dir = Dir::new();
    let store = dir.path("tasks");
    closed_task_goes_open_task_and_pending_request_stay(dir, &store);
}

#[test]
fn sled_an_expired_request_goes() {
    let dir = Dir::new();
    let store = dir.path("tasks");
    expired_request_goes(dir, &store);
}

#[test]
fn postgres_a_closed_task_goes_while_an_open_task_and_a_pending_request_stay() {
    let Some(url) = mandate_postgres::testing::fresh_database("issuer_retention_tasks") else {
        return;
    };
    closed_task_goes_open_task_and_pending_request_stay(Dir::new(), &url);
}

#[test]
fn postgres_an_expired_request_goes() {
    let Some(url) = mandate_postgres::testing::fresh_database("issuer_retention_requests") else {
        return;
    };
    expired_request_goes(Dir::new(), &url);
}

/// `mandate keys prune` leaves a key in its overlap, removes it once the
/// overlap has passed (manifest entry and files), never the signing key,
/// and the issuer keeps publishing and signing with the same key.
#[test]
fn pruning_retired_keys_leaves_the_signing_key_and_the_published_set() {
    let dir = Dir::new();
    let folder = dir.path("keys");
    let first = mandate(&["keys", "rotate", "--dir", &folder]).ok_trimmed();
    assert!(first.starts_with("kid 1 "), "{first}");
    let issuer = Issuer::start(dir, &Dir::new().path("tasks"), Keys::Dir(&folder), "15m");
    let keys = |name: &str| issuer.dir.file("keys").join(name);

    let second = mandate(&["keys", "rotate", "--dir", &folder, "--overlap", "3s"]).ok_trimmed();
    assert!(second.starts_with("kid 2 "), "{second}");
    // In its overlap kid 1 is still published, and pruning keeps it.
    within_20s("both keys are published", || {
        (issuer.published() == [1, 2]).then_some(())
    });
    let kept = mandate(&["keys", "prune", "--dir", &folder]).ok_trimmed();
    assert!(
        kept.starts_with("no retired keys past their overlap"),
        "{kept}"
    );
    assert!(keys("root-1.key").exists());

    within_20s("kid 1 is no longer published", || {
        (issuer.published() == [2]).then_some(())
    });
    // Whole seconds: the manifest's end of trust is rounded down.
    std::thread::sleep(Duration::from_millis(1100));
    let pruned = mandate(&["keys", "prune", "--dir", &folder]).ok_trimmed();
    assert!(pruned.starts_with("kid 1 removed (retired "), "{pruned}");
    assert!(!keys("root-1.key").exists());
    assert!(!keys("root-1.key.pub").exists());
    assert!(keys("root-2.key").exists());
    let listed: Value =
        serde_json::from_str(mandate(&["keys", "list", "--dir", &folder, "--json"]).ok()).unwrap();
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["keys"][0]["kid"], 2, "{listed}");
    assert_eq!(listed["keys"][0]["status"], "signing", "{listed}");

    // The issuer still publishes kid 2 and signs with it.
    assert_eq!(issuer.published(), [2]);
    let (_, token) = issuer.open();
    let root = mandate_core::UnverifiedMandate::from_base64(&token)
        .unwrap()
        .root_key_id();
    assert_eq!(root, Some(2));
    // The configuration names the folder as well; nothing is left to prune.
    let again =
        mandate(&["keys", "prune", "--config", &issuer.dir.path("issuer.toml")]).ok_trimmed();
    assert!(again.starts_with("no retired keys"), "{again}");
}
