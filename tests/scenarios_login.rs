//! The five scenarios of PRODUCT.md starting from a person's login instead
//! of a root key file: the principal's ID token, signed by the local test
//! identity provider (`tests/fixtures/idp/`, key `rsa-1`), is exchanged at a
//! running `mandate issuer serve` for the task's first mandate (`mandate
//! task open`), and from there each scenario runs exactly as
//! `tests/scenarios.rs` runs it against `mandate serve`: the same steps, from
//! `tests/common/scenario.rs`.
//!
//! What changes with a login is who the principal is (the token's verified
//! `email`, `alice@example.com` rather than a typed `alice`) and the task
//! (the issuer's `task-...` id); the issuer signs with the root key the
//! verifier trusts and writes closed tasks' revocations to its registry.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use common::scenario;
use common::server::{poll, Server};
use common::stage::{Origin, Stage};
use common::{mandate, task_open};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

/// The test identity provider's issuer, and the audience its tokens name
/// for the Mandate issuer.
const IDP: &str = "https://idp.test";
const AUDIENCE: &str = "mandate-issuer";

/// The issuance policy of these scenarios: a staff member's agent is
/// granted what it asks for, for the task's length; a deployment's own
/// policy (`datalog/policies/issuance.datalog`) is narrower.
const POLICY: &str = r#"
grant($service, $operation) <- requested_right($service, $operation), group("staff");
max_ttl(3600) <- group("staff");
"#;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/idp")
        .join(name)
}

/// `mandate issuer serve` trusting the test identity provider (its key set
/// from `jwks.json`), signing with the stage's root key.
struct Login {
    issuer: Server,
}

impl Login {
    fn start(stage: &Stage) -> Login {
        std::fs::write(stage.dir.file("issuance.datalog"), POLICY).unwrap();
        let idp = format!("{IDP},{AUDIENCE},{}", fixture("jwks.json").display());
        let (root, tasks, policy, auth, auth_key) = (
            stage.path("root.key"),
            stage.path("tasks"),
            stage.path("issuance.datalog"),
            format!("@{}", stage.path("ops.token")),
            stage.path("operator.key"),
        );
        let issuer = Server::start(
            "issuer",
            &[
                "issuer",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--id",
                "urn:test:mandate-issuer",
                "--root-key",
                &root,
                "--key-id",
                "1",
                "--store",
                &tasks,
                "--policy",
                &policy,
                "--registry",
                &stage.verifier.url,
                "--registry-auth",
                &auth,
                "--registry-auth-key",
                &auth_key,
                "--idp",
                &idp,
            ],
            stage.dir.file("issuer.log"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Login { issuer }
    }
}

impl Origin for Login {
    fn principal(&self, who: &str) -> String {
        format!("{who}@example.com")
    }

    /// The person logs in (an ID token from the test provider, valid ten
    /// minutes) and the agent exchanges it, with a proof of its own key,
    /// for the task's first mandate.
    fn first_mandate(
        &self,
        stage: &Stage,
        who: &str,
        agent: &str,
        task: &str,
        rights: &[&str],
        out: &str,
    ) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = json!({
            "iss": IDP, "aud": AUDIENCE, "sub": format!("sub-{who}"),
            "email": self.principal(who), "email_verified": true, "groups": ["staff"],
            "iat": now, "exp": now + 600,
        });
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("rsa-1".into());
        let key = EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa.pem")).unwrap()).unwrap();
        let id_token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        let login = format!("{who}.id.jwt");
        std::fs::write(stage.dir.file(&login), id_token).unwrap();

        let (subject, agent_key, out) = (
            format!("@{}", stage.path(&login)),
            stage.path(&format!("{agent}.key")),
            stage.path(out),
        );
        let opened = task_open(
            &self.issuer.url,
            &subject,
            agent,
            &agent_key,
            rights,
            &["--description", task, "--out", &out],
        )
        .ok_trimmed();
        assert!(opened.starts_with("task-"), "{opened}");
        opened
    }
}

/// A stage and an issuer in front of it.
fn stage(policy: Option<&str>) -> (Stage, Login) {
    let stage = Stage::start(policy);
    let login = Login::start(&stage);
    (stage, login)
}

#[test]
fn expense_report_from_a_login() {
    let (stage, login) = stage(None);
    scenario::expense_report(&stage, &login);
}

#[test]
fn quarterly_analytics_from_a_login() {
    let (stage, login) = stage(None);
    scenario::quarterly_analytics(&stage, &login);
}

#[test]
fn refund_from_a_login() {
    let (stage, login) = stage(Some("refunds.datalog"));
    scenario::refund(&stage, &login);
}

#[test]
fn insurance_claim_from_a_login() {
    let (stage, login) = stage(None);
    scenario::insurance_claim(&stage, &login);
}

#[test]
fn kill_switch_from_a_login() {
    let (stage, login) = stage(None);
    scenario::kill_switch(&stage, &login);
}

/// With a login the task itself is a kill switch: whoever may close it (the
/// agent here) closes it at the issuer, which revokes the task at the
/// registry, and each of bob's agents is denied at its next call.
#[test]
fn closing_the_task_at_the_issuer_stops_every_agent_of_it() {
    let (stage, login) = stage(None);
    let chain = scenario::bobs_chain(&stage, &login);
    let call = |(agent, token, resource): (&str, &str, &str)| {
        stage.call(agent, token, "datasets", "read", resource, &[])
    };
    for step in scenario::BOBS_WORK {
        scenario::allowed(&call(step));
    }

    let (token, key) = (
        format!("@{}", stage.path("orchestrator.token")),
        stage.path("orchestrator.key"),
    );
    let closed = mandate(&[
        "task",
        "close",
        "--issuer",
        &login.issuer.url,
        "--task",
        &chain.task,
        "--token",
        &token,
        "--agent-key",
        &key,
    ])
    .ok_trimmed();
    assert_eq!(closed, format!("task {} closed", chain.task));

    for step in scenario::BOBS_WORK {
        let (denied, _) = poll("the closed task's calls to be denied", || {
            let reply = call(step);
            (reply.status == 403).then_some(reply)
        });
        assert_eq!(denied.body["reason_kind"], "revoked", "{}", denied.body);
        assert!(
            denied.reason().contains(&format!("task {}", chain.task)),
            "{}",
            denied.body
        );
        assert_eq!(
            denied.body["principal"],
            chain.bob.as_str(),
            "{}",
            denied.body
        );
    }
}
