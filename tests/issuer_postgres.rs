//! Two issuer replicas on one PostgreSQL database, through the real binary
//! and loopback HTTP: `mandate issuer serve --store postgres://...` twice,
//! task revocations written to `mandate serve --store`. SKIPPED (with a
//! message) when `MANDATE_TEST_PG` is unset.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::idp::{claims, id_token, Jwks, ISSUER_ID};
use common::issuer_site::IssuerSite;
use common::server::Server;
use common::{mandate, Dir};
use jsonwebtoken::Algorithm;
use mandate_issuer::client::IssuerClient;
use serde_json::json;

struct Replicas {
    dir: Dir,
    _jwks: Jwks,
    verifier: Server,
    a: Server,
    b: Server,
    database: String,
}

fn start(database: String) -> Replicas {
    let site = IssuerSite::new(&[]);
    // Started together: the schema is migrated once, under a lock.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| site.issuer("issuer-a", &database, &[]));
        let b = s.spawn(|| site.issuer("issuer-b", &database, &[]));
        (a.join().unwrap(), b.join().unwrap())
    });
    let IssuerSite {
        dir,
        jwks,
        verifier,
    } = site;
    Replicas {
        dir,
        _jwks: jwks,
        verifier,
        a,
        b,
        database,
    }
}

impl Replicas {
    fn agent_key(&self) -> mandate_core::SecretKey {
        mandate_core::SecretKey::read(&self.dir.file("agent.key")).unwrap()
    }

    /// Opens a task at replica A: (task id, its first mandate).
    fn open_task(&self) -> (String, String) {
        let subject = id_token(
            Algorithm::RS256,
            "rsa.pem",
            "rsa-1",
            &claims("alice@example.com", &["staff"]),
        );
        let actor = mandate_issuer::actor::sign(
            &self.agent_key(),
            "helper",
            ISSUER_ID,
            &subject,
            SystemTime::now(),
        );
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair(
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            )
            .append_pair("subject_token", &subject)
            .append_pair(
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:id_token",
            )
            .append_pair("actor_token", &actor)
            .append_pair("actor_token_type", mandate_issuer::ACTOR_TOKEN_TYPE)
            .append_pair("scope", "analytics:read")
            .finish();
        let response = ureq::post(&format!("{}/oauth2/token", self.a.url))
            .set("Content-Type", "application/x-www-form-urlencoded")
            .send_string(&body)
            .unwrap();
        let body: serde_json::Value =
            serde_json::from_str(&response.into_string().unwrap()).unwrap();
        (
            body["task_id"].as_str().unwrap().to_owned(),
            body["access_token"].as_str().unwrap().to_owned(),
        )
    }

    /// `POST /v1/authorize` with `token` held by the agent: the status.
    fn authorize(&self, token: &str) -> u16 {
        let file = self.dir.file("raced.token");
        std::fs::write(&file, token).unwrap();
        let resource = "/datasets/q3";
        let proof = mandate(&[
            "pop",
            "--key",
            &self.dir.path("agent.key"),
            "--token",
            &format!("@{}", file.display()),
            "--service",
            "analytics",
            "--operation",
            "read",
            "--resource",
            resource,
        ])
        .ok_trimmed();
        let body = json!({
            "token": token, "service": "analytics", "operation": "read",
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

    /// The task's row as the database holds it: (open, mandates, closed_by).
    fn stored(&self, task: &str) -> (bool, i64, Option<String>) {
        let mut client = postgres::Client::connect(&self.database, postgres::NoTls).unwrap();
        let row = client
            .query_one(
                "SELECT open, mandates, closed_by FROM mandate_tasks WHERE id = $1",
                &[&task],
            )
            .unwrap();
        (row.get(0), row.get(1), row.get(2))
    }
}

#[test]
fn two_issuers_racing_refresh_and_close_on_one_task_stay_consistent() {
    let Some(database) = mandate_postgres::testing::fresh_database(
        "two_issuers_racing_refresh_and_close_on_one_task_stay_consistent",
    ) else {
        return;
    };
    let replicas = start(database);
    let (task, token) = replicas.open_task();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let clients = [
        IssuerClient::new(&replicas.a.url).unwrap(),
        IssuerClient::new(&replicas.b.url).unwrap(),
    ];
    let key = Arc::new(replicas.agent_key());
    // Set by whichever replica acknowledges a close first.
    let closed = Arc::new(AtomicBool::new(false));
    let refreshers: Vec<_> = (0..4)
        .map(|i| {
            let (client, key, task, token, closed) = (
                clients[i % 2].clone(),
                key.clone(),
                task.clone(),
                token.clone(),
                closed.clone(),
            );
            runtime.spawn(async move {
                let mut minted = Vec::new();
                loop {
                    let started_after_close = closed.load(Ordering::SeqCst);
                    let result = client.refresh(&task, &token, &key).await;
                    if started_after_close {
                        return (minted, result.is_ok());
                    }
                    if let Ok(response) = result {
                        minted.push(response.access_token);
                    }
                }
            })
        })
        .collect();
    // One close at each replica, at once.
    let closers: Vec<_> = clients
        .iter()
        .map(|client| {
            let (client, key, task, token, closed) = (
                client.clone(),
                key.clone(),
                task.clone(),
                token.clone(),
                closed.clone(),
            );
            runtime.spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let outcome = client.close(&task, &token, &key).await;
                if outcome.is_ok() {
                    closed.store(true, Ordering::SeqCst);
                }
                outcome.map(|_| ()).map_err(|e| e.to_string())
            })
        })
        .collect();
    for closer in closers {
        runtime.block_on(closer).unwrap().unwrap();
    }
    let mut minted = Vec::new();
    for (i, handle) in refreshers.into_iter().enumerate() {
        let (tokens, after_close_ok) = runtime.block_on(handle).unwrap();
        assert!(
            !after_close_ok,
            "a refresh at replica {} started after a close was acknowledged and succeeded",
            ["A", "B"][i % 2]
        );
        assert!(
            !tokens.is_empty(),
            "refresher {i} minted nothing before the close"
        );
        minted.extend(tokens);
    }
    // Neither replica refreshes it now.
    for client in &clients {
        match runtime.block_on(client.refresh(&task, &token, &key)) {
            Err(mandate_issuer::client::ClientError::Refused { status, code, .. }) => {
                assert_eq!((status, code.as_str()), (409, "task_closed"));
            }
            other => panic!("a refresh after the close: {other:?}"),
        }
    }
    // Closed once, and every refresh acknowledged by either replica was
    // counted exactly once: no swap was lost or applied twice.
    let (open, mandates, closed_by) = replicas.stored(&task);
    assert!(!open);
    assert_eq!(closed_by.as_deref(), Some("agent"));
    assert_eq!(mandates, 1 + i64::try_from(minted.len()).unwrap());
    // The mandates the refreshes returned are dead too.
    for token in minted.iter().step_by(7).take(4) {
        assert_eq!(replicas.authorize(token), 403);
    }
}
