//! Black-box test of a Rust service behind the Mandate middleware: the
//! accounts example (`examples/accounts.rs`) runs as its own process,
//! subscribed to a `mandate registry serve` process, and is called over real
//! HTTP on 127.0.0.1 with tokens and proofs made by the `mandate` binary.
//!
//! A delegated agent reads a balance with its proof, a transfer above the
//! amount its delegator allowed is refused, a call without a mandate is asked
//! for one; then an export in flight is cut when the operator revokes the
//! task, ending with an error line — and another is cut when the registry
//! goes away and the service's revocation state turns stale. Assertions are
//! on order and outcome, never on elapsed time; waits are bounded only so a
//! failure cannot hang.

#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

#[path = "common/mod.rs"]
mod common;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use sha2::Digest as _;

use common::server::{poll, Server};
use common::world::{Holder, World};
use common::{mandate, request_flags};

const TASK: &str = "month-end";
/// The registry's heartbeat, and how stale the service lets its state get.
const HEARTBEAT: &str = "200ms";
const STALENESS: &str = "3s";
/// A read that blocks longer than this means the test is broken.
const HUNG: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// The example as a process
// ---------------------------------------------------------------------------

/// The accounts example's binary, built by the same cargo into the same
/// target folder and profile as this test (a no-op when up to date: `cargo
/// test` builds examples too).
fn accounts_binary() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        // This test runs from TARGET/PROFILE/deps/accounts-HASH.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap();
        let target_dir = profile_dir.parent().unwrap();
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev",
            Some(other) => other,
        };
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "-p",
                "mandate-cli",
                "--example",
                "accounts",
            ])
            .args(["--profile", profile])
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the accounts example failed");
        profile_dir
            .join("examples")
            .join(format!("accounts{}", std::env::consts::EXE_SUFFIX))
    })
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

struct Reply {
    status: u16,
    challenge: Option<String>,
    body: Value,
}

impl Reply {
    #[track_caller]
    fn assert_error(&self, status: u16, code: &str) -> &str {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["error"]["code"], code, "{}", self.body);
        self.body["error"]["message"].as_str().unwrap()
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout_read(HUNG).build()
}

fn call(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> ureq::Response {
    let mut request = agent().request(method, url);
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let result = match body {
        Some(body) => request
            .set("Content-Type", "application/json")
            .send_string(body),
        None => request.call(),
    };
    match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

fn reply(response: ureq::Response) -> Reply {
    let status = response.status();
    let challenge = response.header("WWW-Authenticate").map(str::to_owned);
    let text = response.into_string().unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {text:?}"));
    Reply {
        status,
        challenge,
        body,
    }
}

// ---------------------------------------------------------------------------
// Keys, mandates and proofs
// ---------------------------------------------------------------------------

/// The ledger agent's mandate and key, delegated by alice's orchestrator.
struct LedgerAgent {
    token: String,
    key: String,
}

impl LedgerAgent {
    /// `mandate pop` for `operation` on account `acc-1` through `path`, with
    /// the HTTP binding the middleware adds and the call's `attrs`.
    fn proof(&self, method: &str, path: &str, operation: &str, attrs: &[String]) -> String {
        let method_attr = format!("http_method={method}");
        let path_attr = format!("http_path={path}");
        let mut args = vec!["pop", "--key", &self.key, "--token", &self.token];
        args.extend(request_flags("accounts", operation, "/accounts/acc-1"));
        for attr in [&method_attr, &path_attr].into_iter().chain(attrs) {
            args.extend(["--attr", attr]);
        }
        mandate(&args).ok_trimmed()
    }

    fn authorization(&self) -> String {
        format!("Mandate {}", self.token)
    }

    /// `GET path` (operation `operation`) with a fresh proof.
    fn get(&self, base: &str, path: &str, operation: &str) -> ureq::Response {
        let proof = self.proof("GET", path, operation, &[]);
        let auth = self.authorization();
        call(
            "GET",
            &format!("{base}{path}"),
            &[("Authorization", &auth), ("Mandate-PoP", &proof)],
            None,
        )
    }

    /// A transfer of `amount` from `acc-1` to `acc-2`, its proof bound to the
    /// exact body.
    fn transfer(&self, base: &str, amount: i64) -> Reply {
        let path = "/accounts/acc-1/transfer";
        let body = format!(r#"{{"to": "acc-2", "amount": {amount}}}"#);
        let digest = hex::encode(sha2::Sha256::digest(body.as_bytes()));
        let attrs = [
            "to=acc-2".to_owned(),
            format!("amount={amount}"),
            format!("body_sha256={digest}"),
        ];
        let proof = self.proof("POST", path, "transfer", &attrs);
        let auth = self.authorization();
        reply(call(
            "POST",
            &format!("{base}{path}"),
            &[("Authorization", &auth), ("Mandate-PoP", &proof)],
            Some(&body),
        ))
    }
}

struct Fixture {
    w: World,
    /// Keyed mandates for the registry: the operator's (revoke) and the
    /// service's (read).
    ops: Holder,
    reader: Holder,
}

impl Fixture {
    fn new() -> Fixture {
        let w = World::new();
        let ops = w.keyed("ops", "operator", &["registry:revoke"], &[]);
        let reader = w.keyed_as(
            "reader",
            "services",
            "accounts-service",
            &["registry:read"],
            &[],
        );
        Fixture { w, ops, reader }
    }

    /// Alice's orchestrator may read, export and transfer on her accounts;
    /// it hands the ledger agent the same rights with transfers capped at 100.
    fn ledger_agent(&self) -> LedgerAgent {
        let ledger_pub = self.w.keygen("ledger");
        let rights = ["accounts:read", "accounts:export", "accounts:transfer"];
        let parent = self
            .w
            .keyed("alice", "orchestrator", &rights, &["--task", TASK])
            .token;
        let token = mandate(&[
            "delegate",
            "--token",
            &parent,
            "--signer-key",
            &self.w.path("orchestrator"),
            "--to",
            "ledger-agent",
            "--to-key",
            &ledger_pub,
            "--check",
            r#"check if operation("read") or operation("export") or attr("amount", $a), $a <= 100"#,
        ])
        .ok_trimmed();
        LedgerAgent {
            token,
            key: self.w.path("ledger"),
        }
    }

    fn registry(&self) -> Server {
        self.w.serve_registry("store", &["--heartbeat", HEARTBEAT])
    }

    /// The accounts example, subscribed to `registry` with the reader's
    /// mandate and key.
    fn accounts(&self, registry: &str) -> Server {
        let mut command = Command::new(accounts_binary());
        command
            .args([
                "--listen",
                "127.0.0.1:0",
                "--root-pub",
                self.w.root_pub_file(),
            ])
            .args([
                "--registry",
                registry,
                "--registry-auth",
                &self.reader.token,
            ])
            .args(["--registry-auth-key", self.reader.key_file()])
            .args(["--staleness", STALENESS])
            .env("MANDATE_LOG", "info")
            .stdin(std::process::Stdio::null());
        Server::spawn("accounts", command, self.w.file("accounts.log")).unwrap()
    }
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

#[test]
fn a_delegated_agent_is_decided_per_call_and_its_export_is_cut_on_revocation() {
    let fx = Fixture::new();
    let registry = fx.registry();
    let accounts = fx.accounts(&registry.url);
    let base = &accounts.url;
    let agent = fx.ledger_agent();

    // The service denies everything as stale until its index is confirmed.
    let (balance, _) = poll("the accounts service to sync", || {
        let reply = reply(agent.get(base, "/accounts/acc-1/balance", "read"));
        (reply.status == 200).then_some(reply)
    });
    assert_eq!(balance.body["account"], "acc-1");
    assert_eq!(balance.body["principal"], "alice");
    assert_eq!(balance.body["agent"], "ledger-agent");
    assert_eq!(
        balance.body["chain"],
        serde_json::json!(["orchestrator", "ledger-agent"])
    );
    assert_eq!(balance.body["task"], TASK);

    // Within the delegated bound, a transfer goes through; above it, the
    // delegator's check is the reason.
    let small = agent.transfer(base, 40);
    assert_eq!(small.status, 200, "{}", small.body);
    assert_eq!(small.body["amount"], 40);
    let large = agent.transfer(base, 150);
    let reason = large.assert_error(403, "denied");
    assert!(reason.contains("$a <= 100"), "{reason}");

    // No mandate: asked for one.
    let bare = reply(call(
        "GET",
        &format!("{base}/accounts/acc-1/balance"),
        &[],
        None,
    ));
    bare.assert_error(401, "missing_token");
    assert_eq!(
        bare.challenge.as_deref(),
        Some(r#"Mandate realm="accounts""#)
    );

    // An export in flight, cut by revoking the task.
    let export = Export::start(&agent, base);
    mandate(&[
        "revoke",
        "--task",
        TASK,
        "--reason",
        "month-end closed early",
        "--registry",
        &registry.url,
        "--auth",
        &fx.ops.token,
        "--auth-key",
        &fx.w.path("operator"),
    ])
    .ok();
    let message = export.finish();
    assert!(message.contains("task month-end"), "{message}");
    assert!(message.contains("month-end closed early"), "{message}");

    // The next call of the same agent is refused with the same reason.
    let after = reply(agent.get(base, "/accounts/acc-1/balance", "read"));
    let reason = after.assert_error(403, "denied");
    assert!(reason.contains("task month-end"), "{reason}");
}

#[test]
fn an_export_stops_when_the_revocation_state_goes_stale() {
    let fx = Fixture::new();
    let mut registry = fx.registry();
    let accounts = fx.accounts(&registry.url);
    let base = &accounts.url;
    let agent = fx.ledger_agent();
    poll("the accounts service to sync", || {
        (agent.get(base, "/accounts/acc-1/balance", "read").status() == 200).then_some(())
    });

    let export = Export::start(&agent, base);
    // No revocation at all: the registry just goes away, and with it the
    // heartbeats that vouch for the service's state.
    registry.kill();
    let message = export.finish();
    assert!(message.starts_with("revocation state stale"), "{message}");
}

/// An export in flight: at least three records received.
struct Export {
    lines: std::io::Lines<BufReader<Box<dyn std::io::Read + Send + Sync + 'static>>>,
    received: Vec<Value>,
}

impl Export {
    fn start(agent: &LedgerAgent, base: &str) -> Export {
        let response = agent.get(base, "/accounts/acc-1/export", "export");
        assert_eq!(response.status(), 200);
        let mut export = Export {
            lines: BufReader::new(response.into_reader()).lines(),
            received: Vec::new(),
        };
        while export.received.len() < 3 {
            let line = export.lines.next().expect("the export ended early");
            export
                .received
                .push(serde_json::from_str(&line.unwrap()).unwrap());
        }
        export
    }

    /// Reads to the end; asserts the records came in order, far fewer than a
    /// whole export, then one `revoked` error line. Returns its message.
    fn finish(mut self) -> String {
        for line in self.lines {
            self.received
                .push(serde_json::from_str(&line.unwrap()).unwrap());
        }
        let (last, records) = self.received.split_last().unwrap();
        assert_eq!(last["error"]["code"], "revoked", "{last}");
        assert!(records.len() >= 3 && records.len() < 100_000);
        for (seq, record) in records.iter().enumerate() {
            assert_eq!(record["seq"], seq, "{record}");
        }
        last["error"]["message"].as_str().unwrap().to_owned()
    }
}
