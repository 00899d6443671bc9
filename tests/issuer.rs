//! The issuer service through the real binary and loopback HTTP: a local
//! identity provider (`common::idp`: its key set served on 127.0.0.1,
//! tokens signed with RS256, ES256 and EdDSA test keys from
//! `tests/fixtures/idp/`), `mandate issuer serve` writing task revocations
//! to `mandate serve --store`, and the agent side through `mandate task ...`,
//! `mandate delegate` and `POST /v1/authorize`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::idp::{claims, fixture, id_token, now, Jwks, IDP, ISSUER_ID};
use common::issuer_site::IssuerSite;
use common::server::{poll, Server};
use common::{mandate, task_open, Dir};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

fn alice() -> String {
    id_token(
        Algorithm::RS256,
        "rsa.pem",
        "rsa-1",
        &claims("alice@example.com", &["staff"]),
    )
}

struct World {
    dir: Dir,
    jwks: Jwks,
    verifier: Server,
    issuer: Server,
}

impl World {
    fn start() -> World {
        World::start_with(|_| Vec::new())
    }

    /// As [`World::start`], the issuer given the extra flags `extra` makes
    /// from the test's folder.
    fn start_with(extra: impl FnOnce(&Dir) -> Vec<String>) -> World {
        let site = IssuerSite::new(&["sub.key"]);
        let extra = extra(&site.dir);
        let mut flags = vec!["--sweep-interval", "100ms"];
        flags.extend(extra.iter().map(String::as_str));
        let issuer = site.issuer("issuer", &site.dir.path("tasks"), &flags);
        let IssuerSite {
            dir,
            jwks,
            verifier,
        } = site;
        World {
            dir,
            jwks,
            verifier,
            issuer,
        }
    }

    fn agent_key(&self) -> mandate_core::SecretKey {
        mandate_core::SecretKey::read(&self.dir.file("agent.key")).unwrap()
    }

    /// A raw token exchange; returns (status, body).
    fn exchange(&self, subject: &str, actor: Option<&str>, scope: &str) -> (u16, Value) {
        self.exchange_with(subject, actor, scope, &[])
    }

    /// As [`World::exchange`], with extra form parameters.
    fn exchange_with(
        &self,
        subject: &str,
        actor: Option<&str>,
        scope: &str,
        extra: &[(&str, &str)],
    ) -> (u16, Value) {
        let actor = match actor {
            Some(a) => a.to_owned(),
            None => mandate_issuer::actor::sign(
                &self.agent_key(),
                "helper",
                ISSUER_ID,
                subject,
                SystemTime::now(),
            ),
        };
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair(
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            )
            .append_pair("subject_token", subject)
            .append_pair(
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:id_token",
            )
            .append_pair("actor_token", &actor)
            .append_pair("actor_token_type", mandate_issuer::ACTOR_TOKEN_TYPE)
            .append_pair("scope", scope)
            .append_pair("task_description", "quarterly numbers")
            .extend_pairs(extra)
            .finish();
        let response = ureq::post(&format!("{}/oauth2/token", self.issuer.url))
            .set("Content-Type", "application/x-www-form-urlencoded")
            .send_string(&body);
        let response = match response {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("token endpoint: {e}"),
        };
        let status = response.status();
        (
            status,
            serde_json::from_str(&response.into_string().unwrap()).unwrap(),
        )
    }

    #[track_caller]
    fn refused(&self, subject: &str, status: u16, code: &str, needle: &str) {
        let (got, body) = self.exchange(subject, None, "analytics:read");
        assert_eq!(
            (got, body["error"].as_str().unwrap_or("")),
            (status, code),
            "{body}"
        );
        assert!(
            body["error_description"].as_str().unwrap().contains(needle),
            "{body}"
        );
        assert!(body.get("access_token").is_none(), "{body}");
    }

    /// `POST /v1/authorize` as `key` holding `token`: the HTTP status.
    fn authorize(&self, token_file: &str, key: &str) -> u16 {
        let resource = "/datasets/q3";
        let proof = mandate(&[
            "pop",
            "--key",
            &self.dir.path(key),
            "--token",
            &format!("@{}", self.dir.path(token_file)),
            "--service",
            "analytics",
            "--operation",
            "read",
            "--resource",
            resource,
        ])
        .ok_trimmed();
        let token = std::fs::read_to_string(self.dir.file(token_file)).unwrap();
        let body = json!({
            "token": token.trim(), "service": "analytics", "operation": "read",
            "resource": resource, "pop": proof,
        });
        match ureq::post(&format!("{}/v1/authorize", self.verifier.url))
            .set("Content-Type", "application/json")
            .send_string(&body.to_string())
        {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(status, _)) => status,
            Err(e) => panic!("authorize: {e}"),
        }
    }

    fn minted(&self) -> usize {
        self.issuer.stderr().matches("task opened").count()
    }
}

#[test]
fn a_login_is_exchanged_delegated_used_refreshed_and_closed() {
    let w = World::start();
    std::fs::write(w.dir.file("id.jwt"), alice()).unwrap();
    let issuer = w.issuer.url.clone();
    let task = task_open(
        &issuer,
        &format!("@{}", w.dir.path("id.jwt")),
        "orchestrator",
        &w.dir.path("agent.key"),
        &["analytics:read"],
        &[
            "--audience",
            "analytics",
            "--description",
            "quarterly numbers",
            "--out",
            &w.dir.path("task.token"),
        ],
    )
    .ok_trimmed();
    assert!(task.starts_with("task-"), "{task}");
    let inspected = mandate(&[
        "inspect",
        "--token",
        &format!("@{}", w.dir.path("task.token")),
    ])
    .ok()
    .to_owned();
    assert!(
        inspected.contains("alice@example.com") && inspected.contains(&task),
        "{inspected}"
    );

    // The agent narrows its mandate offline for a sub-agent, which calls a service.
    mandate(&[
        "delegate",
        "--token",
        &format!("@{}", w.dir.path("task.token")),
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
    assert_eq!(w.authorize("sub.token", "sub.key"), 200);

    // Refresh: a fresh mandate for the same task, still usable.
    let refreshed = mandate(&[
        "task",
        "refresh",
        "--issuer",
        &issuer,
        "--task",
        &task,
        "--token",
        &format!("@{}", w.dir.path("task.token")),
        "--agent-key",
        &w.dir.path("agent.key"),
        "--out",
        &w.dir.path("fresh.token"),
    ])
    .ok_trimmed();
    assert_eq!(refreshed, task);
    assert_eq!(w.authorize("fresh.token", "agent.key"), 200);

    // Only the task's own agent may refresh it.
    mandate(&[
        "task",
        "refresh",
        "--issuer",
        &issuer,
        "--task",
        &task,
        "--token",
        &format!("@{}", w.dir.path("sub.token")),
        "--agent-key",
        &w.dir.path("sub.key"),
    ])
    .error("forbidden");

    // Close: every token of the task is denied, the delegated one included.
    let closed = mandate(&[
        "task",
        "close",
        "--issuer",
        &issuer,
        "--task",
        &task,
        "--token",
        &format!("@{}", w.dir.path("fresh.token")),
        "--agent-key",
        &w.dir.path("agent.key"),
    ])
    .ok_trimmed();
    assert_eq!(closed, format!("task {task} closed"));
    poll("the closed task's tokens to be denied", || {
        (w.authorize("fresh.token", "agent.key") == 403).then_some(())
    });
    assert_eq!(w.authorize("sub.token", "sub.key"), 403);
    assert_eq!(w.authorize("task.token", "agent.key"), 403);

    // And no mandate after close.
    mandate(&[
        "task",
        "refresh",
        "--issuer",
        &issuer,
        "--task",
        &task,
        "--token",
        &format!("@{}", w.dir.path("fresh.token")),
        "--agent-key",
        &w.dir.path("agent.key"),
    ])
    .error("task_closed");

    let log = w.issuer.stderr();
    for event in ["task.open", "task.refresh", "task.close"] {
        assert!(log.contains(event), "no {event} audit event in:\n{log}");
    }
    assert!(!log.contains(
        &std::fs::read_to_string(w.dir.file("fresh.token"))
            .unwrap()
            .trim()
            .to_owned()
    ));
}

#[test]
fn every_algorithm_is_accepted_and_every_bad_identity_token_refused() {
    let w = World::start();
    for (alg, file, kid) in [
        (Algorithm::RS256, "rsa.pem", "rsa-1"),
        (Algorithm::ES256, "ec.pem", "ec-1"),
        (Algorithm::EdDSA, "ed.pem", "ed-1"),
    ] {
        let token = id_token(alg, file, kid, &claims("alice@example.com", &["staff"]));
        let (status, body) = w.exchange(&token, None, "analytics:read");
        assert_eq!(status, 200, "{alg:?}: {body}");
        assert_eq!(
            body["issued_token_type"],
            mandate_issuer::MANDATE_TOKEN_TYPE
        );
        assert_eq!(body["token_type"], "N_A");
        assert!(body["expires_in"].as_u64().unwrap() <= 300, "{body}");
        assert!(body["task_id"].as_str().unwrap().starts_with("task-"));
    }
    let minted = w.minted();
    assert_eq!(minted, 3);

    let with = |patch: Value| {
        let mut c = claims("alice@example.com", &["staff"]);
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let rs = |c: &Value| id_token(Algorithm::RS256, "rsa.pem", "rsa-1", c);
    w.refused(
        &rs(&with(json!({"exp": now() - 3600, "iat": now() - 7200}))),
        400,
        "invalid_grant",
        "expired",
    );
    w.refused(
        &rs(&with(json!({"nbf": now() + 3600}))),
        400,
        "invalid_grant",
        "not valid yet",
    );
    w.refused(
        &rs(&with(json!({"iss": "https://evil.test"}))),
        400,
        "invalid_grant",
        "does not trust",
    );
    w.refused(
        &rs(&with(json!({"aud": "someone-else"}))),
        400,
        "invalid_grant",
        "aud",
    );
    w.refused(
        &id_token(
            Algorithm::RS256,
            "rsa-rotated.pem",
            "rsa-9",
            &claims("alice@example.com", &["staff"]),
        ),
        400,
        "invalid_grant",
        "no key with id",
    );
    // alg: none.
    let payload = base64_url(&claims("alice@example.com", &["staff"]).to_string());
    w.refused(
        &format!(
            "{}.{payload}.",
            base64_url(r#"{"alg":"none","kid":"rsa-1"}"#)
        ),
        400,
        "invalid_grant",
        "",
    );
    // HS256 "signed" with the provider's public key as the secret.
    let public = std::fs::read(fixture("rsa.pub.pem")).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let confused = jsonwebtoken::encode(
        &header,
        &claims("alice@example.com", &["staff"]),
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    w.refused(&confused, 400, "invalid_grant", "HS256");
    // A tampered payload under a genuine signature.
    let genuine = alice();
    let parts: Vec<&str> = genuine.split('.').collect();
    let forged = base64_url(&claims("mallory@example.com", &["staff"]).to_string());
    w.refused(
        &format!("{}.{forged}.{}", parts[0], parts[2]),
        400,
        "invalid_grant",
        "signature",
    );
    // Oversized.
    w.refused(
        &rs(&with(json!({"padding": "x".repeat(10_000)}))),
        400,
        "invalid_request",
        "larger than",
    );
    // A principal that is not in canonical spelling is refused, not rewritten.
    w.refused(
        &rs(&with(json!({"email": "Alice@Example.com"}))),
        400,
        "invalid_grant",
        "canonical",
    );

    // The actor token: bound to its subject token, spent once.
    let subject = alice();
    let actor = mandate_issuer::actor::sign(
        &w.agent_key(),
        "helper",
        ISSUER_ID,
        &subject,
        SystemTime::now(),
    );
    assert_eq!(w.exchange(&subject, Some(&actor), "analytics:read").0, 200);
    let (status, body) = w.exchange(&subject, Some(&actor), "analytics:read");
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "invalid_grant"),
        "{body}"
    );
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("already used"));
    let other = mandate_issuer::actor::sign(
        &w.agent_key(),
        "helper",
        ISSUER_ID,
        &subject,
        SystemTime::now(),
    );
    // Another subject token (bob's: alice's again could be byte-identical within a second).
    let bob = id_token(
        Algorithm::RS256,
        "rsa.pem",
        "rsa-1",
        &claims("bob@example.com", &["staff"]),
    );
    let (status, body) = w.exchange(&bob, Some(&other), "analytics:read");
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("another subject_token"),
        "{body}"
    );
    let elsewhere = mandate_issuer::actor::sign(
        &w.agent_key(),
        "helper",
        "urn:other",
        &subject,
        SystemTime::now(),
    );
    let (status, body) = w.exchange(&subject, Some(&elsewhere), "analytics:read");
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("another issuer"),
        "{body}"
    );

    // Only the two good exchanges above minted anything.
    assert_eq!(w.minted(), minted + 1);
}

#[test]
fn the_issuance_policy_allows_denies_and_asks() {
    let w = World::start();
    let token = |groups: &[&str]| {
        id_token(
            Algorithm::ES256,
            "ec.pem",
            "ec-1",
            &claims("carol@example.com", groups),
        )
    };
    // (groups, scope, status, error or granted scope)
    let cases: &[(&[&str], &str, u16, &str)] = &[
        (&["staff"], "analytics:read", 200, "analytics:read"),
        (
            &["staff"],
            "analytics:read analytics:write",
            200,
            "analytics:read",
        ),
        (&["staff"], "expenses:submit", 200, "expenses:submit"),
        (&[], "analytics:read", 403, "access_denied"),
        (
            &["contractors", "staff"],
            "analytics:admin",
            403,
            "access_denied",
        ),
        (&["staff"], "payments:transfer", 403, "approval_required"),
        (&["staff"], "not-a-right", 400, "invalid_scope"),
    ];
    for (groups, scope, status, expect) in cases {
        let (got, body) = w.exchange(&token(groups), None, scope);
        assert_eq!(got, *status, "{groups:?} {scope}: {body}");
        let seen = if got == 200 {
            &body["scope"]
        } else {
            &body["error"]
        };
        assert_eq!(seen, expect, "{groups:?} {scope}: {body}");
    }
}

#[test]
fn a_key_rotated_at_the_provider_is_picked_up() {
    let w = World::start();
    let rotated = || {
        id_token(
            Algorithm::RS256,
            "rsa-rotated.pem",
            "rsa-2",
            &claims("alice@example.com", &["staff"]),
        )
    };
    w.refused(&rotated(), 400, "invalid_grant", "no key with id");
    w.jwks.rotate_to("jwks-rotated.json");
    // The issuer refetches on an unknown key id at most once a second.
    poll("the rotated key to be accepted", || {
        (w.exchange(&rotated(), None, "analytics:read").0 == 200).then_some(())
    });
}

#[test]
fn a_refresh_racing_a_close_yields_no_mandate_after_the_close() {
    let w = World::start();
    let subject = alice();
    let (_, body) = w.exchange(&subject, None, "analytics:read");
    let task = body["task_id"].as_str().unwrap().to_owned();
    let token = body["access_token"].as_str().unwrap().to_owned();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = mandate_issuer::client::IssuerClient::new(&w.issuer.url).unwrap();
    let key = Arc::new(w.agent_key());
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let refreshers: Vec<_> = (0..4)
        .map(|_| {
            let (client, key, task, token, closed) = (
                client.clone(),
                key.clone(),
                task.clone(),
                token.clone(),
                closed.clone(),
            );
            runtime.spawn(async move {
                let mut after_close = Vec::new();
                let mut minted = Vec::new();
                loop {
                    let started_after_close = closed.load(std::sync::atomic::Ordering::SeqCst);
                    let result = client.refresh(&task, &token, &key).await;
                    if started_after_close {
                        after_close.push(result.is_ok());
                        break;
                    }
                    if let Ok(response) = result {
                        minted.push(response.access_token);
                    }
                }
                (minted, after_close)
            })
        })
        .collect();
    runtime.block_on(async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        client.close(&task, &token, &key).await.unwrap();
    });
    closed.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut minted = Vec::new();
    for handle in refreshers {
        let (tokens, after_close) = runtime.block_on(handle).unwrap();
        assert_eq!(
            after_close,
            vec![false],
            "a refresh started after the close succeeded"
        );
        minted.extend(tokens);
    }
    assert!(!minted.is_empty(), "no refresh succeeded before the close");
    // Every mandate a refresh did return is dead too.
    for (i, token) in minted.iter().enumerate().step_by(5) {
        let file = format!("raced-{i}.token");
        std::fs::write(w.dir.file(&file), token).unwrap();
        assert_eq!(w.authorize(&file, "agent.key"), 403);
    }
}

fn base64_url(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[test]
fn bad_flags_are_one_clear_error() {
    let dir = Dir::new();
    dir.keygen("root.key");
    dir.keygen("agent.key");
    // No identifier: refused before anything listens.
    mandate(&[
        "issuer",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--root-key",
        &dir.path("root.key"),
        "--store",
        &dir.path("tasks"),
        "--registry",
        "http://127.0.0.1:9",
        "--registry-auth",
        "x",
        "--idp",
        "https://idp.test,aud,jwks.json",
    ])
    .error("id:");
    mandate(&[
        "issuer",
        "serve",
        "--id",
        "urn:x",
        "--root-key",
        &dir.path("root.key"),
        "--store",
        &dir.path("tasks"),
        "--idp",
        "only-two,parts",
    ])
    .error("--idp");
    // A right that is not SERVICE:OPERATION, and an issuer that is not there.
    let open = |right: &str| {
        mandate(&[
            "task",
            "open",
            "--issuer",
            "http://127.0.0.1:9",
            "--subject-token",
            "x.y.z",
            "--agent",
            "a",
            "--agent-key",
            &dir.path("agent.key"),
            "--right",
            right,
        ])
    };
    open("nocolon").error("SERVICE:OPERATION");
    open("analytics:read").error("issuer unreachable");
}

#[test]
fn a_task_past_its_deadline_closes_itself_and_is_revoked() {
    let w = World::start();
    let (status, body) =
        w.exchange_with(&alice(), None, "analytics:read", &[("requested_ttl", "1")]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["expires_in"], 1,
        "a mandate never outlives its task: {body}"
    );
    let task = body["task_id"].as_str().unwrap().to_owned();
    // The sweeper closes it and writes its revocation to the registry.
    let list = || {
        mandate(&[
            "revocations",
            "list",
            "--registry",
            &w.verifier.url,
            "--registry-auth",
            &format!("@{}", w.dir.path("ops.token")),
            "--registry-auth-key",
            &w.dir.path("operator.key"),
        ])
        .ok()
        .to_owned()
    };
    poll("the overdue task's revocation", || {
        list().contains(&task).then_some(())
    });
    assert!(
        w.issuer.stderr().contains("task.close"),
        "{}",
        w.issuer.stderr()
    );
    // And it cannot be refreshed.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = mandate_issuer::client::IssuerClient::new(&w.issuer.url).unwrap();
    let token = body["access_token"].as_str().unwrap();
    match runtime.block_on(client.refresh(&task, token, &w.agent_key())) {
        Err(mandate_issuer::client::ClientError::Refused { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (409, "task_closed"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_issuers_events_are_recorded_in_its_audit_log() {
    let mut w = World::start_with(|dir| vec!["--audit-store".into(), dir.path("issuer-audit")]);
    // An exchange the issuer refuses: the identity token is for someone else.
    let mut elsewhere = claims("alice@example.com", &["staff"]);
    elsewhere["aud"] = json!("another-service");
    let elsewhere = id_token(Algorithm::RS256, "rsa.pem", "rsa-1", &elsewhere);
    let (status, body) = w.exchange(&elsewhere, None, "analytics:read");
    assert_ne!(status, 200, "{body}");
    // A task opened, refreshed and closed by its agent.
    let (status, body) = w.exchange(&alice(), None, "analytics:read");
    assert_eq!(status, 200, "{body}");
    let task = body["task_id"].as_str().unwrap().to_owned();
    let token = body["access_token"].as_str().unwrap().to_owned();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = mandate_issuer::client::IssuerClient::new(&w.issuer.url).unwrap();
    let key = w.agent_key();
    runtime
        .block_on(client.refresh(&task, &token, &key))
        .unwrap();
    runtime.block_on(client.close(&task, &token, &key)).unwrap();
    // The store is the issuer's while it runs: stop it, then read.
    w.issuer.terminate();

    let store = w.dir.path("issuer-audit");
    let run = mandate(&["audit", "--store", &store, "--json"]);
    let records: Vec<Value> = run
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<&str> = records
        .iter()
        .map(|r| {
            assert_eq!(r["event"], "issuer", "{run}");
            r["action"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        actions,
        [
            "exchange_refused",
            "task_opened",
            "exchange",
            "refresh",
            "task_closed"
        ],
        "{run}"
    );
    let refused = &records[0];
    assert!(
        refused["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{run}"
    );
    assert!(
        refused["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{run}"
    );
    for record in &records[1..] {
        assert_eq!(record["task"], task.as_str(), "{run}");
        assert_eq!(record["principal"], "alice@example.com", "{run}");
    }
    let exchange = &records[2];
    assert_eq!(exchange["agent"], "helper", "{run}");
    assert_eq!(exchange["identity_issuer"], IDP, "{run}");
    assert_eq!(exchange["rights"], json!(["analytics:read"]), "{run}");
    let minted = exchange["token_id"].as_str().unwrap();
    assert_eq!(minted.len(), 128, "{run}");
    let refresh = &records[3];
    assert_eq!(refresh["agent"], "helper", "{run}");
    assert_ne!(refresh["token_id"].as_str().unwrap(), minted, "{run}");
    assert_eq!(refresh["previous_token_id"], minted, "{run}");
    assert_eq!(records[4]["cause"], "agent", "{run}");
    // No token, proof or key in the trail.
    assert!(!run.stdout.contains(&token), "{run}");

    // `mandate audit trace` tells the task's story from the minted token id.
    let trace = mandate(&["audit", "trace", minted, "--store", &store]);
    assert!(
        trace
            .ok()
            .contains(&format!("trace of {minted}: 4 record(s)")),
        "{trace}"
    );
    mandate(&["audit", "verify", "--store", &store]).ok();
}

#[test]
fn a_strangers_key_id_is_escaped_and_bounded_in_the_log_and_the_trail() {
    // Found by review: the `kid` of a token nobody verified was copied raw
    // into the refusal: newlines and ANSI escapes forged a log line, and
    // every anonymous refusal wrote kilobytes to a trail never pruned.
    let mut w = World::start_with(|dir| vec!["--audit-store".into(), dir.path("issuer-audit")]);
    let forged_line = "INFO mandate::audit: event=\"request.decide\" outcome=\"approved\"";
    let kid = format!("x\n\u{1b}[2K{forged_line}\n{}", "k".repeat(4000));
    let token = id_token(
        Algorithm::RS256,
        "rsa.pem",
        &kid,
        &claims("alice@example.com", &["staff"]),
    );
    let (status, body) = w.exchange(&token, None, "analytics:read");
    assert_eq!(status, 400, "{body}");
    let said = body["error_description"].as_str().unwrap();
    assert!(said.len() < 300 && !said.contains('\n'), "{said}");
    w.issuer.terminate();
    let log = w.issuer.stderr();
    assert!(
        !log.lines()
            .any(|l| l.starts_with(forged_line) || l.contains("\u{1b}[2K")),
        "{log}"
    );
    let store = w.dir.path("issuer-audit");
    let run = mandate(&["audit", "--store", &store, "--json"]);
    let record: Value = serde_json::from_str(run.ok().lines().next().unwrap()).unwrap();
    assert_eq!(record["action"], "exchange_refused", "{run}");
    let reason = record["reason"].as_str().unwrap();
    assert!(reason.len() <= 600 && !reason.contains('\n'), "{reason}");
    assert!(reason.contains("no key with id"), "{reason}");
}
