//! Black-box tests of isolated evaluation: tokens are evaluated on a bounded
//! pool apart from the async runtime, so a flood of costly tokens delays
//! neither revocation heartbeats nor other requests, and a pool that cannot
//! take or finish a request answers 503 with `Retry-After` — never a decision.
//!
//! "Costly" tokens are allowed tokens whose appended block holds checks that
//! join three request facts over every combination (`check all`), each close
//! to the verifier's static cost budget. Everything runs the real `mandate`
//! binary over real HTTP on `127.0.0.1:0`; every child process is killed on
//! drop. Durations here are bounds with wide margins, never speed claims.

#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

#[allow(dead_code)] // reason: this file uses only part of the shared harness.
#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::server::{poll, Server};
use common::world::{Holder, World};

/// The registry's heartbeat interval and the sidecar's staleness bound.
const HEARTBEAT: &str = "200ms";
const STALENESS: &str = "1s";
/// Flooding clients: twice the cores of the 2-core machines this runs on.
const FLOODERS: usize = 4;
/// How long the flood lasts, and most requests each flooder sends.
const FLOOD_FOR: Duration = Duration::from_secs(4);
const FLOOD_MAX_REQUESTS: usize = 150;
/// Each server's evaluation deadline (waiting plus evaluating): a legitimate
/// call the flood delays past it is answered 503, which fails the test, so
/// "answered promptly" is judged by the server, not by a client's clock.
const DEADLINE: &str = "2s";

const SERVICE: &str = "analytics";
const RESOURCE: &str = "/datasets/q3/sales";
/// Integer attributes of a costly request: 6 facts to join three ways.
const COSTLY_ATTRS: i64 = 6;
/// Checks in the costly token's appended block (about 2 600 combinations in
/// all; checks are bounded one by one, since biscuit reads its clock after
/// each).
const COSTLY_CHECKS: usize = 12;
/// Each check visits every combination of three `attr` facts (6³ = 216),
/// scanning the 24 visible facts once per predicate: 24 × 3 × 216 = 15 552
/// estimated visits, near the static budget of 20 000 per query.
const COSTLY_CHECK: &str = "check all attr($a, $x), attr($b, $y), attr($c, $z), $x + $y + $z >= 0";

// ---------------------------------------------------------------------------
// Servers and HTTP
// ---------------------------------------------------------------------------

/// An HTTP answer: status, `Retry-After` and JSON body.
#[derive(Debug)]
struct Reply {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

impl Reply {
    fn reason(&self) -> &str {
        self.body["reason"].as_str().unwrap_or_default()
    }

    fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    #[track_caller]
    fn assert_allowed(&self, what: &str) {
        assert_eq!(self.status, 200, "{what}: expected allow: {}", self.body);
        assert_eq!(self.body["decision"], "allow", "{what}: {}", self.body);
        assert!(
            self.reason().starts_with("allowed by"),
            "{what}: {}",
            self.body
        );
    }

    /// Asserts that a costly token was judged on its own merits: allowed, or
    /// — when the shared machine slowed it past the verifier's time limit —
    /// denied for that, never for another reason. How many get through in
    /// time is the machine's speed, not the verifier's contract.
    #[track_caller]
    fn assert_evaluated(&self, what: &str) {
        if self.status == 200 {
            self.assert_allowed(what);
        } else {
            assert_eq!(self.status, 403, "{what}: {}", self.body);
            assert_eq!(
                self.reason(),
                "evaluation limit reached: spent too much time verifying",
                "{what}: {}",
                self.body
            );
        }
    }

    /// A 503 from the pool: `Retry-After: 1` and the one error shape, with
    /// `overloaded` or `deadline_exceeded` and a message saying why.
    fn is_pool_refusal(&self) -> bool {
        let message = self.body["error"]["message"].as_str().unwrap_or_default();
        self.status == 503
            && self.retry_after.as_deref() == Some("1")
            && match self.error_code() {
                "overloaded" => message.contains("overloaded"),
                "deadline_exceeded" => message.contains("did not finish within"),
                _ => false,
            }
    }
}

fn post(base: &str, body: &str) -> Reply {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let result = agent
        .post(&format!("{base}/v1/authorize"))
        .set("Content-Type", "application/json")
        .send_string(body);
    let response = match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(e) => panic!("POST {base}/v1/authorize: {e}"),
    };
    let status = response.status();
    let retry_after = response.header("Retry-After").map(str::to_owned);
    let text = response.into_string().expect("read body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("→ {status}: body is not JSON ({e}): {text:?}"));
    Reply {
        status,
        retry_after,
        body,
    }
}

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

/// A root key, a legitimate request and a costly one, both allowed.
struct Fixture {
    w: World,
    /// A plain bearer token reading `analytics`, with its request.
    legit: String,
    /// The same right, with an appended block of costly checks, and the
    /// request whose attributes they join.
    costly: String,
    costly_token: String,
    /// A keyed mandate granting `registry:read`, for the sidecar's
    /// `--registry-auth`.
    reader: Holder,
}

impl Fixture {
    fn new() -> Fixture {
        let w = World::new();
        let token = w
            .bearer("alice", "reporter", &["analytics:read"], &[])
            .token;
        let legit = body(&token, &BTreeMap::new());
        let mut checks = Vec::new();
        for _ in 0..COSTLY_CHECKS {
            checks.extend(["--check", COSTLY_CHECK]);
        }
        let costly_token = w.delegate(&token, &checks).ok_trimmed();
        let attrs = (1..=COSTLY_ATTRS)
            .map(|n| (format!("k{n}"), json!(n)))
            .collect();
        let costly = body(&costly_token, &attrs);
        let reader = w.keyed("verifiers", "verifier", &["registry:read"], &[]);
        Fixture {
            reader,
            w,
            legit,
            costly,
            costly_token,
        }
    }

    /// `mandate ARGS --root-pub ROOT`, its stderr in `LOG.log`.
    fn spawn(&self, log: &str, args: &[&str]) -> Server {
        let args = [args, &["--root-pub", self.w.root_pub_file()]].concat();
        Server::start(log, &args, self.w.file(&format!("{log}.log")))
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The body of `POST /v1/authorize` reading [`RESOURCE`] with `token`.
fn body(token: &str, attrs: &BTreeMap<String, Value>) -> String {
    json!({
        "token": token,
        "service": SERVICE,
        "operation": "read",
        "resource": RESOURCE,
        "attrs": attrs,
    })
    .to_string()
}

/// Polls until `base` allows the legitimate call (a sidecar denies as stale
/// until its first heartbeat).
fn wait_allowed(base: &str, fx: &Fixture) {
    poll(&format!("{base} to allow the legitimate call"), || {
        (post(base, &fx.legit).status == 200).then_some(())
    });
}

/// `FLOODERS` threads posting `body` to the `targets` in turn until `FLOOD_FOR`
/// passed or each sent `FLOOD_MAX_REQUESTS`; returns every reply.
fn flood(targets: &[String], body: &str) -> thread::JoinHandle<Vec<Reply>> {
    let targets = targets.to_vec();
    let body = body.to_owned();
    thread::spawn(move || {
        let until = Instant::now() + FLOOD_FOR;
        let clients: Vec<_> = (0..FLOODERS)
            .map(|client| {
                let (targets, body) = (targets.clone(), body.clone());
                thread::spawn(move || {
                    let mut replies = Vec::new();
                    for n in 0..FLOOD_MAX_REQUESTS {
                        if Instant::now() >= until {
                            break;
                        }
                        replies.push(post(&targets[(client + n) % targets.len()], &body));
                    }
                    replies
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|client| client.join().expect("flooder"))
            .collect()
    })
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn a_flood_of_costly_tokens_leaves_the_sidecar_fresh_and_legitimate_calls_prompt() {
    let fx = Fixture::new();
    let store = fx.w.path("store");
    let registry = fx.spawn(
        "registry",
        &[
            "serve",
            "--store",
            &store,
            "--listen",
            "127.0.0.1:0",
            "--heartbeat",
            HEARTBEAT,
            "--eval-deadline",
            DEADLINE,
        ],
    );
    let sidecar = fx.spawn(
        "sidecar",
        &[
            "serve",
            "--registry",
            &registry.url,
            "--registry-auth",
            &fx.reader.token,
            "--registry-auth-key",
            fx.reader.key_file(),
            "--listen",
            "127.0.0.1:0",
            "--staleness",
            STALENESS,
            "--eval-deadline",
            DEADLINE,
        ],
    );
    wait_allowed(&sidecar.url, &fx);
    wait_allowed(&registry.url, &fx);
    // The costly token is legitimate work: allowed (or, on a loaded machine,
    // stopped by the time limit), never denied for what it says.
    post(&sidecar.url, &fx.costly).assert_evaluated("a costly token on the sidecar");
    post(&registry.url, &fx.costly).assert_evaluated("a costly token on serve --store");

    let targets = [sidecar.url.clone(), registry.url.clone()];
    let flooding = flood(&targets, &fx.costly);
    let mut checked = 0;
    while !flooding.is_finished() {
        for base in &targets {
            // Never denied as stale, never refused, never past the deadline.
            let reply = post(base, &fx.legit);
            reply.assert_allowed(&format!("a legitimate call to {base} during the flood"));
            checked += 1;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let replies = flooding.join().expect("flood");
    eprintln!(
        "flood: {} costly requests, {} legitimate calls checked",
        replies.len(),
        checked
    );
    assert!(
        checked >= 4,
        "the flood ended before the legitimate calls ran"
    );
    // Every costly request got an answer: allowed, refused by the pool (503 +
    // Retry-After), or — when the shared machine slowed it past the verifier's
    // time limit — denied for that; never denied as stale or for another reason.
    // Allowed or stopped by the time limit, a request was evaluated; how many
    // got through in time is the machine's speed, not the verifier's contract.
    let mut evaluated = 0;
    for reply in &replies {
        if matches!(reply.status, 200 | 403) {
            reply.assert_evaluated("a costly token during the flood");
            evaluated += 1;
        } else {
            assert!(
                reply.is_pool_refusal(),
                "unexpected answer to a costly call: {reply:?}"
            );
        }
    }
    assert!(
        evaluated >= FLOODERS,
        "the flood hardly ran: {} evaluated of {} answers",
        evaluated,
        replies.len()
    );
    // And the sidecar is still current after it.
    post(&sidecar.url, &fx.legit).assert_allowed("a legitimate call after the flood");
}

#[test]
fn a_busy_pool_answers_503_with_retry_after_and_the_audit_log_says_why() {
    let fx = Fixture::new();
    let store = fx.w.path("store");
    // One worker and a 10 ms deadline: a costly evaluation outlives its
    // deadline, and holds the worker meanwhile, so concurrent requests wait
    // past theirs.
    let server = fx.spawn(
        "single",
        &[
            "serve",
            "--store",
            &store,
            "--listen",
            "127.0.0.1:0",
            "--eval-workers",
            "1",
            "--eval-queue",
            "4",
            "--eval-deadline",
            "10ms",
        ],
    );
    let replies = flood(std::slice::from_ref(&server.url), &fx.costly)
        .join()
        .expect("flood");
    let mut codes = BTreeMap::new();
    for reply in &replies {
        if reply.status == 200 {
            reply.assert_allowed("a costly token that finished in time");
        } else {
            assert!(
                reply.is_pool_refusal(),
                "expected 503 from the pool: {reply:?}"
            );
        }
        *codes.entry(reply.error_code().to_owned()).or_insert(0) += 1;
    }
    eprintln!("answers by error code: {codes:?}");
    assert!(codes.contains_key("deadline_exceeded"), "{codes:?}");
    assert!(codes.contains_key("overloaded"), "{codes:?}");
    // The refusals are in the audit log, with the token's fingerprint only.
    let log = server.stderr();
    for code in ["deadline_exceeded", "overloaded"] {
        assert!(
            log.lines()
                .any(|line| line.contains("not evaluated") && line.contains(code)),
            "the log should record {code}:\n{log}"
        );
    }
    assert!(
        !log.contains(&fx.costly_token[..40]),
        "the log must not hold the token"
    );
}
