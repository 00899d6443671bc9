//! Black-box tests of the `mandate` binary: keygen,
//! issue, delegate, inspect, authorize, token arguments, key rotation and
//! every bad-input case, each asserting the exit code *and* the message.
//!
//! Time is injected with `--at`, never slept on. Every run of the binary is
//! checked for panic output, whatever the test is about.

#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE;
use base64::Engine as _;
use serde_json::Value;

use common::world::World;
use common::{mandate, mandate_stdin, request_flags, tokens, Dir, Run};

// ---------------------------------------------------------------------------
// The world of these tests: a root key (id 1) and an agent key, `agent`
// ---------------------------------------------------------------------------

const RIGHTS: &str = "expenses:read, expenses:submit, payments:read";

fn world() -> World {
    let w = World::with_key_id(1);
    w.keygen("agent");
    w
}

/// Issues alice → bot, task t1, three rights, 10 minutes, key id 1.
fn issue_run(w: &World, extra: &[&str]) -> Run {
    let mut args = vec!["--principal", "alice", "--agent", "bot", "--task", "t1"];
    for right in RIGHTS.split(", ") {
        args.extend(["--right", right]);
    }
    args.extend(["--ttl", "10m"]);
    args.extend_from_slice(extra);
    w.issue_run(&args)
}

fn issue(w: &World, extra: &[&str]) -> String {
    issue_run(w, extra).ok_trimmed()
}

/// `authorize` against root key 1 with the given request.
fn authorize(w: &World, token: &str, service: &str, op: &str, res: &str, extra: &[&str]) -> Run {
    w.authorize(token, &request_flags(service, op, res), extra)
}

/// The `expires_at` that `inspect --json` reports for `token`.
fn expires_at(w: &World, token: &str) -> String {
    w.inspect_json(token)["expires_at"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `mandate issue` of one right, `expenses:read`, from `principal` to bot,
/// signed with the root key file `key`, under `--key-id` when given.
fn issue_read(key: &str, key_id: Option<&str>, principal: &str, ttl: &str) -> Run {
    let mut args = Vec::new();
    if let Some(id) = key_id {
        args.extend(["--key-id", id]);
    }
    args.extend(["--principal", principal, "--agent", "bot"]);
    args.extend(["--right", "expenses:read", "--ttl", ttl]);
    tokens::issue(key, &args)
}

/// The arguments of `mandate authorize --token TOKEN TRUST...` for the
/// request `expenses read /r`.
fn read_request<'a>(token: &'a str, trust: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["authorize", "--token", token];
    args.extend_from_slice(trust);
    args.extend(request_flags("expenses", "read", "/r"));
    args
}

/// `mandate authorize --token TOKEN TRUST...` of `expenses read /r`.
fn authorize_read(token: &str, trust: &[&str]) -> Run {
    mandate(&read_request(token, trust))
}

/// What `f` returned, with the clock read just before and just after it.
fn clocked<T>(f: impl FnOnce() -> T) -> (T, (SystemTime, SystemTime)) {
    let before = SystemTime::now();
    let value = f();
    (value, (before, SystemTime::now()))
}

/// Asserts that `inspect --json` (run within `inspected`) reports a token
/// issued within `issued` as expiring `ttl` seconds after its issue, and
/// the seconds left as it counted them. The bounds are clock readings taken
/// around each step, so a slow machine cannot break them: nothing here
/// guesses how long a step takes.
#[track_caller]
fn assert_expiry(
    json: &Value,
    issued: (SystemTime, SystemTime),
    inspected: (SystemTime, SystemTime),
    ttl: u64,
) {
    let text = json["expires_at"].as_str().unwrap();
    let expires = humantime::parse_rfc3339(text).unwrap();
    let ttl = Duration::from_secs(ttl);
    let second = Duration::from_secs(1);
    // The expiry is written in whole seconds.
    assert!(
        issued.0 + ttl < expires + second && expires <= issued.1 + ttl,
        "expires at {text}, not {ttl:?} after it was issued"
    );
    let until = |t: SystemTime| {
        let left = expires.duration_since(t).unwrap_or_default().as_secs();
        i64::try_from(left).unwrap()
    };
    let left = json["expires_in_seconds"].as_i64().unwrap();
    assert!(
        until(inspected.1) - 1 <= left && left <= until(inspected.0) + 1,
        "expires in {left}s by inspect's count, at {text}"
    );
}

/// The `line L, column C` position in a Datalog error message.
fn position(stderr: &str) -> (usize, usize) {
    let at = stderr
        .find("line ")
        .unwrap_or_else(|| panic!("no line/column in {stderr:?}"));
    let rest = &stderr[at + 5..];
    let (line, rest) = rest.split_once(", column ").expect("`, column`");
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (line.parse().unwrap(), column.parse().unwrap())
}

/// Asserts that `text` contains every part; `run` is shown on failure.
#[track_caller]
fn contains_all(run: &Run, text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "missing {part:?}\n{run}");
    }
}

fn is_hex_id(text: &str) -> bool {
    text.len() == 128 && text.chars().all(|c| c.is_ascii_hexdigit())
}

/// The bytes of a token (URL-safe base64 with padding, as tokens are written).
fn b64_decode(text: &str) -> Vec<u8> {
    URL_SAFE.decode(text.trim()).expect("base64")
}

fn b64_encode(bytes: &[u8]) -> String {
    URL_SAFE.encode(bytes)
}

// ---------------------------------------------------------------------------
// 3. keygen
// ---------------------------------------------------------------------------

#[test]
fn keygen_writes_private_0600_and_pub_and_prints_the_public_key() {
    let w = world();
    let printed = w.keygen("k");
    let hex = printed.strip_prefix("ed25519/").expect("ed25519/ prefix");
    assert_eq!(hex.len(), 64, "{printed}");
    assert!(hex.chars().all(|c| c.is_ascii_hexdigit()), "{printed}");
    let public = std::fs::read_to_string(w.path("k.pub")).unwrap();
    assert_eq!(public.trim(), printed);
    let private = std::fs::read_to_string(w.path("k")).unwrap();
    assert!(!private.trim().is_empty());
    assert!(
        !private.contains(hex),
        "the private key file is not the public key"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(w.path("k")).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "private key mode is {:o}",
            mode & 0o777
        );
    }
    // Two keys are different keys.
    assert_ne!(w.keygen("k2"), printed);
}

#[test]
fn keygen_refuses_to_overwrite_either_file() {
    let w = world();
    let before = std::fs::read_to_string(w.root_key()).unwrap();
    mandate(&["keygen", "--out", &w.root_key()]).error("exists");
    // Only the private key left: still refused, still untouched.
    std::fs::remove_file(w.root_pub_file()).unwrap();
    mandate(&["keygen", "--out", &w.root_key()]).error("exists");
    assert_eq!(std::fs::read_to_string(w.root_key()).unwrap(), before);
}

// ---------------------------------------------------------------------------
// 4. issue
// ---------------------------------------------------------------------------

#[test]
fn issue_prints_a_url_safe_base64_token_on_stdout() {
    let w = world();
    let run = issue_run(&w, &[]);
    let token = run.ok().trim();
    assert_eq!(run.stdout.lines().count(), 1, "{run}");
    assert!(token.len() > 100, "{run}");
    assert!(
        token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '=')),
        "not URL-safe base64: {token}"
    );
    authorize(&w, token, "expenses", "read", "/reports/a", &[]).ok();
}

#[test]
fn issue_out_writes_the_token_to_a_file_and_not_stdout() {
    let w = world();
    let out = w.path("t.tok");
    let run = issue_run(&w, &["--out", &out]);
    assert_eq!(run.ok(), "", "{run}");
    let token = std::fs::read_to_string(&out).unwrap();
    let json = w.inspect_json(token.trim());
    assert_eq!(json["principal"], "alice");
    assert_eq!(json["task"], "t1");
}

#[test]
fn issue_without_task_gets_a_fresh_unique_id() {
    let w = world();
    let key = w.root_key();
    let task = || {
        let token = issue_read(&key, None, "alice", "10m").ok_trimmed();
        w.inspect_json(&token)["task"]
            .as_str()
            .expect("a task id")
            .to_string()
    };
    let (a, b) = (task(), task());
    assert!(a.len() >= 8, "task id {a:?}");
    assert_ne!(a, b, "two mandates got the same task id");
}

#[test]
fn issue_accepts_human_durations() {
    let w = world();
    let key = w.root_key();
    for (ttl, secs) in [("90s", 90), ("10m", 600), ("2h", 7200)] {
        let (token, issued) = clocked(|| issue_read(&key, None, "alice", ttl).ok_trimmed());
        let (json, inspected) = clocked(|| w.inspect_json(&token));
        assert_expiry(&json, issued, inspected, secs);
    }
}

#[test]
fn issue_key_id_is_written_and_used_to_pick_the_root() {
    let w = world();
    let key = w.root_key();
    let token = issue_read(&key, Some("7"), "alice", "10m").ok_trimmed();
    assert_eq!(w.inspect_json(&token)["root_key_id"], 7);
    let text = mandate(&["inspect", "--token", &token]);
    assert!(text.ok().contains("root key:   key id 7"), "{text}");
    let seven = format!("7={}", w.root_pub());
    let args = |trust: &str| authorize_read(&token, &["--root-pub", trust]);
    assert!(args(&seven).ok().starts_with("ALLOW"));
    // The same key under another id is not the key the token names.
    args(&w.trust()).error("unknown root key id 7");
    // Without --key-id the token carries none.
    let plain = issue_read(&key, None, "alice", "10m").ok_trimmed();
    assert_eq!(w.inspect_json(&plain)["root_key_id"], Value::Null);
    let text = mandate(&["inspect", "--token", &plain]);
    assert!(text.ok().contains("root key:   no key id"), "{text}");
}

#[test]
fn issue_bearer_versus_agent_key() {
    let w = world();
    let bearer = issue(&w, &[]);
    let json = w.inspect_json(&bearer);
    assert_eq!(json["bearer"], true, "{json}");
    assert_eq!(json["agents"][0]["name"], "bot");
    assert_eq!(json["agents"][0]["key"], "");
    let text = mandate(&["inspect", "--token", &bearer]);
    assert!(
        text.ok().contains("agent:      bot (no key: bearer token)"),
        "{text}"
    );

    // The agent key as a .pub file and as the key itself.
    for key in [w.path("agent.pub"), w.public("agent")] {
        let bound = issue(&w, &["--agent-key", &key]);
        let json = w.inspect_json(&bound);
        assert_eq!(json["bearer"], false, "{json}");
        assert_eq!(json["agents"][0]["key"], w.public("agent").as_str());
        let text = mandate(&["inspect", "--token", &bound]);
        assert!(
            text.ok()
                .contains(&format!("agent:      bot ({})", w.public("agent"))),
            "{text}"
        );
    }
}

#[test]
fn issue_accepts_restriction_flags_from_the_start() {
    let w = world();
    let token = issue(
        &w,
        &[
            "--operation",
            "read",
            "--resource-prefix",
            "/data/alice",
            "--attr-in",
            "region=eu,us",
            "--attr-max",
            "amount=100",
        ],
    );
    let ok = |res: &str, region: &str, amount: &str| {
        authorize(
            &w,
            &token,
            "expenses",
            "read",
            res,
            &[
                "--attr",
                &format!("region={region}"),
                "--attr",
                &format!("amount={amount}"),
            ],
        )
    };
    assert!(ok("/data/alice/x", "eu", "100").ok().starts_with("ALLOW"));
    let deny = ok("/data/alicex", "eu", "5");
    contains_all(
        &deny,
        deny.denied(),
        &[
            "of the authority block",
            r#"failed: check if resource($r), ($r + "/").starts_with("/data/alice/")"#,
        ],
    );
    let deny = ok("/data/alice/x", "cn", "5");
    assert!(
        deny.denied()
            .contains(r#"check if attr("region", $v), {"eu", "us"}.contains($v)"#),
        "{deny}"
    );
    let deny = ok("/data/alice/x", "us", "101");
    assert!(
        deny.denied()
            .contains(r#"check if attr("amount", $v), $v <= 100"#),
        "{deny}"
    );
    let deny = authorize(
        &w,
        &token,
        "expenses",
        "submit",
        "/data/alice/x",
        &["--attr", "region=eu", "--attr", "amount=1"],
    );
    assert!(
        deny.denied().contains(r#"check if operation("read")"#),
        "{deny}"
    );
}

#[test]
fn issue_refuses_a_restriction_outside_its_own_rights() {
    // `issue` takes the same restriction flags as `delegate`, so it refuses
    // a scope that could never be used, the same way, naming the rights.
    let w = world();
    let out = w.path("never.tok");
    let run = issue_run(&w, &["--operation", "delete", "--out", &out]);
    run.error("`delete`");
    run.error(RIGHTS);
    let run = issue_run(&w, &["--service", "billing", "--out", &out]);
    run.error("`billing`");
    run.error(RIGHTS);
    assert!(!Path::new(&out).exists(), "no token file on error");
}

// ---------------------------------------------------------------------------
// 5. delegate
// ---------------------------------------------------------------------------

#[test]
fn delegate_narrows_offline_and_the_parent_keeps_its_scope() {
    let w = world();
    let parent = issue(&w, &[]);
    let child = w
        .delegate(
            &parent,
            &[
                "--operation",
                "read",
                "--service",
                "expenses",
                "--resource-prefix",
                "/reports/alice",
            ],
        )
        .ok_trimmed();
    assert_ne!(child, parent);
    let allow = authorize(&w, &child, "expenses", "read", "/reports/alice/q3", &[]);
    assert!(
        allow.ok().starts_with("ALLOW: bot acting for alice"),
        "{allow}"
    );

    let deny = authorize(&w, &child, "expenses", "submit", "/reports/alice/q3", &[]);
    assert!(deny.denied().starts_with("DENY"), "{deny}");
    contains_all(
        &deny,
        &deny.stdout,
        &["of block 1", r#"failed: check if operation("read")"#],
    );
    let deny = authorize(&w, &child, "payments", "read", "/reports/alice/q3", &[]);
    contains_all(
        &deny,
        deny.denied(),
        &["of block 1", r#"failed: check if service("expenses")"#],
    );
    let deny = authorize(&w, &child, "expenses", "read", "/reports/bob", &[]);
    contains_all(
        &deny,
        deny.denied(),
        &["of block 1", "failed: check if resource($r)"],
    );
    // The parent still allows what the child may not.
    authorize(&w, &parent, "expenses", "submit", "/reports/bob", &[]).ok();
}

#[test]
fn delegate_refuses_an_operation_or_service_the_token_does_not_carry() {
    let w = world();
    let parent = issue(&w, &[]);
    let err = w.delegate(&parent, &["--operation", "delete"]);
    err.error("operation `delete` is not allowed by the parent token");
    err.error(&format!("it allows {RIGHTS}"));
    let err = w.delegate(&parent, &["--service", "billing"]);
    err.error("service `billing` is not allowed by the parent token");
    err.error(&format!("it allows {RIGHTS}"));
    // Nothing written with --out either.
    let out = w.path("child.tok");
    w.delegate(&parent, &["--operation", "delete", "--out", &out])
        .error("delete");
    assert!(!Path::new(&out).exists());
}

#[test]
fn delegate_refuses_an_operation_an_earlier_block_already_removed() {
    // After narrowing to `read`, the token no longer carries `submit`: a
    // block asking for it could never help and must be refused too.
    let w = world();
    let parent = issue(&w, &[]);
    let read_only = w.delegate(&parent, &["--operation", "read"]).ok_trimmed();
    w.delegate(&read_only, &["--operation", "submit"])
        .error("operation `submit` is not allowed by the parent token");
    let payments = w.delegate(&parent, &["--service", "payments"]).ok_trimmed();
    w.delegate(&payments, &["--service", "expenses"])
        .error("service `expenses` is not allowed by the parent token");
}

#[test]
fn delegate_ttl_cannot_outlive_the_parent_and_shortens_expiry() {
    let w = world();
    let parent = issue(&w, &[]);
    let expires = expires_at(&w, &parent);
    let run = w.delegate(&parent, &["--ttl", "1h"]);
    run.error("is not allowed by the parent token");
    run.error(&expires);
    w.delegate(&parent, &["--ttl", "soon"])
        .error("invalid duration `soon`");

    let child = w.delegate(&parent, &["--ttl", "5m"]).ok_trimmed();
    // Past the child's 5 minutes but inside the parent's 10: refused, and the
    // reason names the block-1 expiry check.
    let deny = authorize(&w, &child, "expenses", "read", "/r", &["--at", &expires]);
    assert_ne!(deny.code, 0, "{deny}");
    assert!(
        format!("{}{}", deny.stdout, deny.stderr).contains("block 1"),
        "{deny}"
    );
    authorize(&w, &parent, "expenses", "read", "/r", &["--at", &expires]).ok();
    // `inspect` shows the expiry that actually applies: the child's.
    let left = w.inspect_json(&child)["expires_in_seconds"]
        .as_i64()
        .unwrap();
    assert!(left <= 300, "child expires in {left}s, after its 5m ttl");
}

// ---------------------------------------------------------------------------
// 6. inspect
// ---------------------------------------------------------------------------

#[test]
fn inspect_json_shows_claims_expiry_and_every_block_id() {
    let w = world();
    let (parent, issued) = clocked(|| issue(&w, &["--agent-key", &w.public("agent")]));
    let child = w.delegate(&parent, &["--operation", "read"]).ok_trimmed();
    let (json, inspected) = clocked(|| w.inspect_json(&child));
    assert_eq!(json["signature"]["status"], "not_checked");
    assert_eq!(json["root_key_id"], 1);
    assert_eq!(json["principal"], "alice");
    assert_eq!(json["agents"][0]["name"], "bot");
    assert_eq!(json["agents"][0]["key"], w.public("agent").as_str());
    assert_eq!(json["task"], "t1");
    assert_eq!(
        json["rights"],
        serde_json::json!(["expenses:read", "expenses:submit", "payments:read"])
    );
    let expires = json["expires_at"].as_str().unwrap();
    assert!(expires.len() == 20 && expires.ends_with('Z'), "{expires}");
    assert_expiry(&json, issued, inspected, 600);

    let blocks = json["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 2);
    assert_eq!(json["root_id"], blocks[0]["id"]);
    assert_eq!(
        json["token_id"], blocks[1]["id"],
        "token id = last block id"
    );
    assert_ne!(blocks[0]["id"], blocks[1]["id"]);
    for block in blocks {
        assert!(is_hex_id(block["id"].as_str().unwrap()), "{block}");
    }
    let authority = blocks[0]["source"].as_str().unwrap();
    assert!(authority.contains(r#"principal("alice");"#), "{authority}");
    assert!(
        authority.contains(r#"right("expenses", "submit");"#),
        "{authority}"
    );
    assert!(
        authority.contains(&format!("check if time($t), $t <= {expires};")),
        "{authority}"
    );
    let block1 = blocks[1]["source"].as_str().unwrap();
    assert!(
        block1
            .lines()
            .any(|l| l == r#"check if operation("read");"#),
        "{block1}"
    );
    assert!(!block1.contains("principal("), "{block1}");
    // The parent's token id is its root id, and the child keeps that root.
    let parent_json = w.inspect_json(&parent);
    assert_eq!(parent_json["token_id"], parent_json["root_id"]);
    assert_eq!(parent_json["root_id"], json["root_id"]);
}

#[test]
fn inspect_text_shows_the_same_report() {
    let w = world();
    let parent = issue(&w, &["--agent-key", &w.public("agent")]);
    let child = w
        .delegate(&parent, &["--resource-prefix", "/reports/alice"])
        .ok_trimmed();
    let json = w.inspect_json(&child);
    let run = mandate(&["inspect", "--token", &child]);
    let text = run.ok();
    let s = |k: &str| json[k].as_str().unwrap().to_string();
    for line in [
        "signature:  not checked (give --root-pub to verify)".to_string(),
        "root key:   key id 1".to_string(),
        "principal:  alice".to_string(),
        format!("agent:      bot ({})", w.public("agent")),
        "task:       t1".to_string(),
        format!("rights:     {RIGHTS}"),
        format!("expires:    {} (in ", s("expires_at")),
        format!("token id:   {}", s("token_id")),
        format!("root id:    {}", s("root_id")),
        format!("authority block (id {}", s("root_id")),
        format!("block 1 (id {}", s("token_id")),
        r#"    check if resource($r), ($r + "/").starts_with("/reports/alice/");"#.to_string(),
        r#"    principal("alice");"#.to_string(),
    ] {
        assert!(text.contains(&line), "missing {line:?}\n{run}");
    }
}

#[test]
fn inspect_with_root_pub_says_whether_signatures_verify() {
    let w = world();
    let token = issue(&w, &[]);
    let other = w.keygen("other.key");

    let run = mandate(&["inspect", "--token", &token, "--root-pub", &w.trust()]);
    assert!(run.ok().contains("signature:  valid"), "{run}");
    let run = mandate(&[
        "inspect",
        "--token",
        &token,
        "--root-pub",
        &w.trust(),
        "--json",
    ]);
    run.ok();
    assert_eq!(run.json()["signature"]["status"], "valid");

    // Signed by another root: exit 2, and the report says so.
    let wrong = format!("1={other}");
    let run = mandate(&["inspect", "--token", &token, "--root-pub", &wrong]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stdout
            .contains("signature:  INVALID: invalid token signature"),
        "{run}"
    );
    let run = mandate(&["inspect", "--token", &token, "--root-pub", &wrong, "--json"]);
    assert_eq!(run.code, 2, "{run}");
    let json = run.json();
    assert_eq!(json["signature"]["status"], "invalid");
    assert!(
        json["signature"]["reason"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{json}"
    );
}

#[test]
fn inspect_reports_exactly_what_the_token_says_even_with_quotes() {
    // A name holding `"` is refused outright...
    let w = world();
    let principal = r#"a"); right("payments", "refund"#;
    let key = w.root_key();
    issue_read(&key, None, principal, "10m").error("principal");
    // ...and a quote inside a check's string changes nothing inspect
    // reports: the authority block grants exactly what `issue` was given.
    let token = issue(
        &w,
        &[
            "--check",
            r#"check if resource($r), $r != "a\"); right(\"payments\", \"refund\")""#,
        ],
    );
    let json = w.inspect_json(&token);
    assert_eq!(
        json["rights"],
        serde_json::json!(["expenses:read", "expenses:submit", "payments:read"]),
        "{json}"
    );
    assert_eq!(json["principal"], "alice", "{json}");
    let source = json["blocks"][0]["source"].as_str().unwrap();
    assert!(source.contains(r#"\"); right(\"payments\""#), "{source}");
}

// ---------------------------------------------------------------------------
// 7. authorize
// ---------------------------------------------------------------------------

#[test]
fn authorize_allow_exits_0_with_who_what_and_why() {
    let w = world();
    let token = issue(&w, &[]);
    let run = authorize(&w, &token, "expenses", "read", "/reports/a", &[]);
    let out = run.ok();
    assert!(
        out.starts_with("ALLOW: bot acting for alice via bot — expenses read /reports/a"),
        "{run}"
    );
    assert!(out.contains("task t1, token "), "{run}");
    assert!(
        out.contains("reason: allowed by `allow if service($s), operation($o), right($s, $o)`"),
        "{run}"
    );
}

#[test]
fn authorize_deny_exits_1_naming_the_failing_check_and_block() {
    let w = world();
    let token = issue(&w, &[]);
    let run = authorize(&w, &token, "expenses", "delete", "/reports/a", &[]);
    let out = run.denied();
    assert!(
        out.starts_with("DENY: bot acting for alice via bot — expenses delete /reports/a"),
        "{run}"
    );
    contains_all(
        &run,
        out,
        &[
            "reason: check #1 of the authority block",
            "failed: check if service($s), operation($o), right($s, $o)",
        ],
    );
}

#[test]
fn authorize_json_has_every_field() {
    let w = world();
    let token = issue(&w, &[]);
    let token_id = w.inspect_json(&token)["token_id"].clone();
    let run = authorize(&w, &token, "expenses", "read", "/reports/a", &["--json"]);
    run.ok();
    let json = run.json();
    for (field, want) in [
        ("decision", "allow"),
        ("principal", "alice"),
        ("agent", "bot"),
        ("task", "t1"),
        ("service", "expenses"),
        ("operation", "read"),
        ("resource", "/reports/a"),
    ] {
        assert_eq!(json[field], want, "{field} in {json}");
    }
    assert_eq!(json["token_id"], token_id);
    assert!(
        json["reason"].as_str().unwrap().starts_with("allowed by"),
        "{json}"
    );

    let run = authorize(&w, &token, "payments", "write", "/p", &["--json"]);
    run.denied();
    let json = run.json();
    assert_eq!(json["decision"], "deny");
    assert_eq!(json["service"], "payments");
    assert_eq!(json["operation"], "write");
    assert_eq!(json["resource"], "/p");
    assert_eq!(json["principal"], "alice");
    assert_eq!(json["token_id"], token_id);
    let reason = json["reason"].as_str().unwrap();
    contains_all(
        &run,
        reason,
        &[
            "check #1 of the authority block",
            "failed: check if service($s), operation($o), right($s, $o)",
        ],
    );
}

#[test]
fn authorize_with_a_policy_file() {
    let w = world();
    let token = issue(&w, &[]);
    let policy = w.write(
        "public.datalog",
        "// only /public/x\ncheck if time($t);\nallow if resource(\"/public/x\"), service($s), operation($o), right($s, $o);\ndeny if true;\n",
    );
    let run = authorize(
        &w,
        &token,
        "expenses",
        "read",
        "/public/x",
        &["--policy", &policy],
    );
    assert!(
        run.ok()
            .contains(r#"reason: allowed by `allow if resource("/public/x")"#),
        "{run}"
    );
    let run = authorize(
        &w,
        &token,
        "expenses",
        "read",
        "/private",
        &["--policy", &policy],
    );
    assert!(
        run.denied()
            .contains("reason: denied by policy `deny if true`"),
        "{run}"
    );
    // The default policy allows /private: the file really replaced it.
    authorize(&w, &token, "expenses", "read", "/private", &[]).ok();
}

#[test]
fn authorize_at_injects_the_time() {
    let w = world();
    let token = issue(&w, &[]);
    let expires = expires_at(&w, &token);
    // At the expiry instant itself: still valid.
    authorize(&w, &token, "expenses", "read", "/r", &["--at", &expires]).ok();
    // A year later: expired, an error (exit 2) naming the expiry.
    let year: u32 = expires[..4].parse().unwrap();
    let later = format!("{}{}", year + 1, &expires[4..]);
    authorize(&w, &token, "expenses", "read", "/r", &["--at", &later])
        .error(&format!("token expired at {expires}"));
    authorize(&w, &token, "expenses", "read", "/r", &["--at", "tomorrow"])
        .error("invalid time `tomorrow`");
}

#[test]
fn authorize_attr_feeds_runtime_conditions() {
    let w = world();
    let parent = issue(&w, &[]);
    let token = w
        .delegate(
            &parent,
            &["--attr-max", "amount=100", "--attr-in", "method=card,iban"],
        )
        .ok_trimmed();
    let run = |amount: &str, method: &str| {
        authorize(
            &w,
            &token,
            "expenses",
            "submit",
            "/r",
            &[
                "--attr",
                &format!("amount={amount}"),
                "--attr",
                &format!("method={method}"),
            ],
        )
    };
    run("100", "card").ok();
    run("7", "iban").ok();
    let deny = run("101", "card");
    contains_all(
        &deny,
        deny.denied(),
        &[
            "of block 1",
            r#"failed: check if attr("amount", $v), $v <= 100"#,
        ],
    );
    let deny = run("5", "cash");
    contains_all(
        &deny,
        deny.denied(),
        &[
            "of block 1",
            r#"failed: check if attr("method", $v), {"card", "iban"}.contains($v)"#,
        ],
    );
    // A missing attribute fails closed.
    let deny = authorize(
        &w,
        &token,
        "expenses",
        "submit",
        "/r",
        &["--attr", "method=card"],
    );
    assert!(deny.denied().contains(r#"attr("amount", $v)"#), "{deny}");
}

#[test]
fn authorize_refuses_an_attribute_given_twice() {
    // `--attr amount=5000 --attr amount=50` must not satisfy "amount at
    // most 100": one request has one amount.
    let w = world();
    let token = issue(&w, &["--attr-max", "amount=100"]);
    let run = authorize(
        &w,
        &token,
        "expenses",
        "submit",
        "/r",
        &["--attr", "amount=5000", "--attr", "amount=50"],
    );
    assert_ne!(
        run.code, 0,
        "a duplicated attribute bypassed the limit\n{run}"
    );
    assert!(
        format!("{}{}", run.stdout, run.stderr).contains("amount"),
        "{run}"
    );
}

#[test]
fn authorize_reports_a_run_limit_as_its_own_reason() {
    let w = world();
    let token = issue(&w, &[]);
    // 110 × 110 derived facts: more than any sane limit on facts.
    let mut policy: String = (0..110).map(|i| format!("num({i});\n")).collect();
    policy.push_str("pair($x, $y) <- num($x), num($y);\n");
    policy.push_str("allow if service($s), operation($o), right($s, $o);\n");
    let policy = w.write("heavy.datalog", &policy);
    let run = authorize(
        &w,
        &token,
        "expenses",
        "read",
        "/r",
        &["--policy", &policy, "--json"],
    );
    run.denied();
    let json = run.json();
    assert_eq!(json["decision"], "deny");
    let reason = json["reason"].as_str().unwrap();
    assert!(reason.starts_with("evaluation limit reached"), "{json}");
    assert_eq!(json["principal"], "alice", "{json}");
    assert!(
        !reason.contains("check #"),
        "a limit is not a failed check: {json}"
    );
}

#[test]
fn authorize_bounds_the_time_a_token_borne_check_can_take() {
    // Anyone holding a token can append a block; a check that joins the
    // authority facts with themselves ten times (3^10 rows) must not hold the
    // verifier for seconds: the run limits bound it.
    let w = world();
    let parent = issue(&w, &[]);
    let mut check = String::from("check if right($a0, $b0)");
    for i in 1..10 {
        check.push_str(&format!(", right($a{i}, $b{i})"));
    }
    check.push_str(", $a0 == \"nope\"");
    let token = w.delegate(&parent, &["--check", &check]).ok_trimmed();
    let run = authorize(&w, &token, "expenses", "read", "/r", &[]);
    // The limit stopped the evaluation: a denial with its own reason, not a
    // failed check that ran to the end. How long that takes is a benchmark's
    // question, not a test's: a loaded machine can make any bound fail.
    assert!(run.denied().contains("evaluation limit reached"), "{run}");
    // The decision still names who it was for.
    assert!(
        run.stdout.starts_with("DENY: bot acting for alice"),
        "{run}"
    );
}

// ---------------------------------------------------------------------------
// 8. token arguments: literal, @FILE, -
// ---------------------------------------------------------------------------

#[test]
fn token_argument_accepts_literal_file_and_stdin() {
    let w = world();
    let token = issue(&w, &[]);
    let file = w.write("t.tok", &format!("{token}\n"));
    let at_file = format!("@{file}");
    let trust = w.trust();
    let authorize_json = |arg: &str| {
        let mut args = read_request(arg, &["--root-pub", &trust]);
        args.push("--json");
        if arg == "-" {
            mandate_stdin(&args, &format!("{token}\n"))
        } else {
            mandate(&args)
        }
    };
    let ids: Vec<Value> = [token.as_str(), &at_file, "-"]
        .iter()
        .map(|arg| {
            let run = authorize_json(arg);
            run.ok();
            assert_eq!(run.json()["decision"], "allow", "{run}");
            run.json()["token_id"].clone()
        })
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");

    // inspect and delegate read the same forms.
    let run = mandate_stdin(&["inspect", "--token", "-"], &token);
    assert!(run.ok().contains("principal:  alice"), "{run}");
    let run = mandate(&["inspect", "--token", &at_file]);
    assert!(run.ok().contains("principal:  alice"), "{run}");
    let child = mandate_stdin(&["delegate", "--token", "-", "--operation", "read"], &token);
    let child = child.ok_trimmed();
    assert!(authorize(&w, &child, "expenses", "submit", "/r", &[]).code == 1);
    let child = w.delegate(&at_file, &["--operation", "read"]);
    assert!(!child.ok().trim().is_empty());

    // The file or stdin being bad is an error, not a panic.
    authorize(
        &w,
        &format!("@{}", w.path("missing.tok")),
        "e",
        "r",
        "/r",
        &[],
    )
    .error("reading token file");
    let run = mandate_stdin(
        &[
            "authorize",
            "--token",
            "-",
            "--root-pub",
            &trust,
            "--service",
            "e",
            "--operation",
            "r",
            "--resource",
            "/r",
        ],
        "",
    );
    run.error("malformed token: empty token");
}

// ---------------------------------------------------------------------------
// Key rotation
// ---------------------------------------------------------------------------

#[test]
fn rotation_trusts_two_roots_by_key_id() {
    let w = world();
    let root2 = w.keygen("root2.key");
    let t1 = issue(&w, &[]);
    let key2 = w.path("root2.key");
    let t2 = issue_read(&key2, Some("2"), "bob", "10m").ok_trimmed();

    let check = |token: &str, trust: &[&str], who: &str| {
        let run = authorize_read(token, trust);
        assert!(
            run.ok()
                .starts_with(&format!("ALLOW: bot acting for {who}")),
            "{run}"
        );
    };
    // Repeated --root-pub ID=KEY, with the key itself or its .pub file.
    let one = w.trust();
    let two = format!("2={root2}");
    let two_file = format!("2={}", w.path("root2.key.pub"));
    for trust in [
        ["--root-pub", one.as_str(), "--root-pub", two.as_str()],
        ["--root-pub", one.as_str(), "--root-pub", two_file.as_str()],
    ] {
        check(&t1, &trust, "alice");
        check(&t2, &trust, "bob");
    }
    // A key-set file.
    let set = w.write(
        "keys.json",
        &format!(r#"{{"1":"{}","2":"{root2}"}}"#, w.root_pub()),
    );
    check(&t1, &["--root-keys", &set], "alice");
    check(&t2, &["--root-keys", &set], "bob");
    let run = mandate(&["inspect", "--token", &t2, "--root-keys", &set]);
    assert!(run.ok().contains("signature:  valid"), "{run}");

    // Only root 1 trusted: a key-id-2 token is an error naming the id.
    let only_one = w.write("one.json", &format!(r#"{{"1":"{}"}}"#, w.root_pub()));
    authorize_read(&t2, &["--root-keys", &only_one])
        .error("unknown root key id 2: trusted ids are 1");
    authorize_read(&t2, &["--root-pub", &one]).error("unknown root key id 2");
    // Key 2 given under id 1 does not verify a key-id-1 token.
    let swapped = format!("1={root2}");
    authorize_read(&t1, &["--root-pub", &swapped]).error("invalid token signature");
}

#[test]
fn rotation_rejects_bad_key_sets_and_keys() {
    let w = world();
    let token = issue(&w, &[]);
    let with = |flag: &str, value: &str| authorize_read(&token, &[flag, value]);
    with("--root-keys", &w.write("a.json", "not json")).error("is not a key-set file");
    with("--root-keys", &w.write("b.json", r#"{"1": 5}"#)).error("is not a key-set file");
    with(
        "--root-keys",
        &w.write("c.json", &format!(r#"{{"x":"{}"}}"#, w.root_pub())),
    )
    .error("key id `x` is not a non-negative integer");
    with("--root-keys", &w.path("missing.json")).error("missing.json");
    with("--root-pub", "1=ed25519/xyz").error("is not an Ed25519 public key");
    authorize_read(&token, &[]).error("no trusted root key");
}

// ---------------------------------------------------------------------------
// 9. bad input: one clear line, exit 2, no panic, no file written
// ---------------------------------------------------------------------------

#[test]
fn bad_token_malformed_base64() {
    let w = world();
    for bad in ["not base64!!", "%%%%", "ab\u{e9}cd"] {
        authorize(&w, bad, "expenses", "read", "/r", &[])
            .error("malformed token: not URL-safe base64");
        mandate(&["inspect", "--token", bad]).error("malformed token");
        w.delegate(bad, &["--operation", "read"])
            .error("malformed token");
    }
    authorize(&w, "", "expenses", "read", "/r", &[]).error("malformed token: empty token");
    // Valid base64 that is not a token.
    authorize(&w, "aGVsbG8gd29ybGQ=", "expenses", "read", "/r", &[]).error("malformed token");
}

#[test]
fn a_token_file_or_stream_longer_than_a_token_is_refused_without_reading_it_whole() {
    // Found by review: `--token @/dev/zero` read until memory ran out.
    let run = mandate(&["inspect", "--token", "@/dev/zero"]);
    run.error("longer than 65536 bytes");
    let huge = "A".repeat(200_000);
    let run = mandate_stdin(&["inspect", "--token", "-"], &huge);
    run.error("longer than 65536 bytes");

    // Key, key-set and policy files too, each within its own bound.
    let w = world();
    let token = issue(&w, &[]);
    let run = authorize(
        &w,
        &token,
        "expenses",
        "read",
        "/r",
        &["--policy", "/dev/zero"],
    );
    run.error("longer than 1048576 bytes");
    let run = mandate(&[
        "pop",
        "--key",
        "/dev/zero",
        "--token",
        &token,
        "--service",
        "expenses",
        "--operation",
        "read",
        "--resource",
        "/r",
    ]);
    run.error("longer than 4096 bytes");
}

#[test]
fn bad_token_truncated() {
    let w = world();
    let token = issue(&w, &[]);
    let bytes = b64_decode(&token);
    assert_eq!(b64_encode(&bytes), token, "test codec round-trips");
    for cut in [1, 10, bytes.len() / 2, bytes.len() - 1] {
        let short = b64_encode(&bytes[..cut]);
        authorize(&w, &short, "expenses", "read", "/r", &[]).error("malformed token");
        mandate(&["inspect", "--token", &short]).error("malformed token");
    }
    // Cut in the middle of the text too.
    authorize(&w, &token[..token.len() / 2], "expenses", "read", "/r", &[])
        .error("malformed token");
}

#[test]
fn bad_token_tampered_claim_is_rejected() {
    // Rewrite the principal inside the signed bytes: `alice` → `mallo`.
    let w = world();
    let token = issue(&w, &[]);
    let mut bytes = b64_decode(&token);
    let at = bytes
        .windows(5)
        .position(|w| w == b"alice")
        .expect("principal in the bytes");
    bytes[at..at + 5].copy_from_slice(b"mallo");
    let forged = b64_encode(&bytes);
    assert_eq!(w.inspect_json(&forged)["principal"], "mallo");
    authorize(&w, &forged, "expenses", "read", "/r", &[]).error("invalid token signature");
    let run = mandate(&["inspect", "--token", &forged, "--root-pub", &w.trust()]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stdout.contains("signature:  INVALID"), "{run}");
}

#[test]
fn bad_token_any_tampered_byte_in_the_middle_is_rejected() {
    let w = world();
    let parent = issue(&w, &[]);
    let token = w.delegate(&parent, &["--operation", "read"]).ok_trimmed();
    let bytes = b64_decode(&token);
    let n = bytes.len();
    for i in (n / 8..n - n / 8).step_by(n / 32) {
        let mut tampered = bytes.clone();
        tampered[i] ^= 0x01;
        let run = authorize(&w, &b64_encode(&tampered), "expenses", "read", "/r", &[]);
        assert_eq!(run.code, 2, "byte {i} of {n} flipped\n{run}");
        assert!(
            run.stderr.contains("signature") || run.stderr.contains("malformed token"),
            "byte {i} of {n} flipped: the message should say what is wrong\n{run}"
        );
        run.error("error: ");
    }
}

#[test]
fn bad_token_signed_by_another_root() {
    let w = world();
    w.keygen("evil.key");
    let key = w.path("evil.key");
    let forged = issue_read(&key, Some("1"), "alice", "10m").ok_trimmed();
    authorize(&w, &forged, "expenses", "read", "/r", &[]).error("invalid token signature");
    // A token without a key id, against a root trusted without a key id.
    let plain = issue_read(&key, None, "alice", "10m").ok_trimmed();
    authorize_read(&plain, &["--root-pub", &w.root_pub()]).error("invalid token signature");
}

#[test]
fn bad_token_expired() {
    let w = world();
    let key = w.root_key();
    let token = issue_read(&key, Some("1"), "alice", "90s").ok_trimmed();
    let expires = expires_at(&w, &token);
    for extra in [&[][..], &["--json"][..]] {
        let mut args = vec!["--at", "2099-01-01T00:00:00Z"];
        args.extend_from_slice(extra);
        authorize(&w, &token, "expenses", "read", "/r", &args)
            .error(&format!("token expired at {expires}"));
    }
}

#[test]
fn bad_datalog_in_check_names_the_position_and_writes_nothing() {
    let w = world();
    let out = w.path("bad.tok");
    let run = issue_run(&w, &["--check", "check if foo(", "--out", &out]);
    let err = run.error("Datalog error at line 1, column ");
    assert_eq!(position(err), (1, 14), "{run}");
    assert!(!Path::new(&out).exists(), "no token file on error");

    let parent = issue(&w, &[]);
    let run = w.delegate(&parent, &["--check", "check if operation($o), $o =="]);
    let err = run.error("Datalog error at line 1, column ");
    assert_eq!(position(err).0, 1, "{run}");
    w.delegate(&parent, &["--check", "allow if true"])
        .error("`allow if true` is not a check");
    // A scope inside the check, as well as one of the block, is refused.
    let key = w.root_pub();
    let scoped = format!("check if true trusting {key}");
    issue_run(&w, &["--check", &scoped]).error("without facts, rules or scopes");
    w.delegate(&parent, &["--check", &scoped])
        .error("without facts, rules or scopes");
}

#[test]
fn bad_datalog_in_policy_names_the_line_and_column() {
    let w = world();
    let token = issue(&w, &[]);
    // Line 3 lacks the comma after `service($s)`, at column 21.
    let policy = w.write(
        "bad.datalog",
        "// policy\ncheck if time($t);\nallow if service($s) operation($o);\ndeny if true;\n",
    );
    let run = authorize(&w, &token, "expenses", "read", "/r", &["--policy", &policy]);
    let err = run.error("Datalog error at line 3, column ");
    let (_, column) = position(err);
    assert!(
        column == 1 || (21..=22).contains(&column),
        "column {column} is neither the rule's start nor the error\n{run}"
    );
    // An error on the last line, before its `;`.
    let policy = w.write("bad2.datalog", "allow if true;\ncheck if foo(;\n");
    let run = authorize(&w, &token, "expenses", "read", "/r", &["--policy", &policy]);
    let err = run.error("Datalog error at line 2, column ");
    let (_, column) = position(err);
    assert!(
        column <= 14,
        "column {column} is past the end of line 2\n{run}"
    );

    // Parsable but unusable policies are refused too.
    let policy = w.write("deny.datalog", "deny if true;\n");
    authorize(&w, &token, "expenses", "read", "/r", &["--policy", &policy])
        .error("has no `allow if` policy");
    let policy = w.write("forge.datalog", "right(\"x\", \"y\");\nallow if true;\n");
    authorize(&w, &token, "expenses", "read", "/r", &["--policy", &policy])
        .error("defines `right`");
    authorize(
        &w,
        &token,
        "expenses",
        "read",
        "/r",
        &["--policy", &w.path("none.datalog")],
    )
    .error("none.datalog");
}

#[test]
fn bad_flags_are_usage_errors() {
    let w = world();
    let token = issue(&w, &[]);
    authorize(&w, &token, "expenses", "read", "/r", &["--frobnicate"])
        .usage_error("unexpected argument '--frobnicate'");
    issue_run(&w, &["--frobnicate"]).usage_error("unexpected argument '--frobnicate'");
    mandate(&["inspect", "--token", &token, "--frobnicate"])
        .usage_error("unexpected argument '--frobnicate'");
    mandate(&["frobnicate"]).usage_error("unrecognized subcommand 'frobnicate'");
    let key = w.root_key();
    tokens::issue(&key, &["--principal", "a", "--agent", "b", "--ttl", "1m"])
        .usage_error("required arguments were not provided");
    mandate(&["authorize", "--token", &token, "--root-pub", &w.trust()])
        .usage_error("required arguments were not provided");
}

#[test]
fn bad_durations_are_refused_and_write_nothing() {
    let w = world();
    let out = w.path("t.tok");
    for (ttl, needle) in [
        ("soon", "invalid duration `soon` (examples: 90s, 10m, 2h)"),
        ("5x", "invalid duration `5x`"),
        ("10", "invalid duration `10`"),
        ("", "invalid duration ``"),
        ("0s", "ttl must be between 1s and 30days"),
        ("31days", "ttl must be between 1s and 30days"),
    ] {
        let key = w.root_key();
        let ttl_arg = format!("--ttl={ttl}");
        let args = [
            "--principal",
            "a",
            "--agent",
            "b",
            "--right",
            "x:y",
            &ttl_arg,
            "--out",
            &out,
        ];
        tokens::issue(&key, &args).error(needle);
        assert!(!Path::new(&out).exists(), "--ttl {ttl:?} wrote a file");
    }
}

#[test]
fn bad_attributes_are_refused() {
    let w = world();
    let token = issue(&w, &[]);
    authorize(&w, &token, "expenses", "read", "/r", &["--attr", "amount"])
        .error("attribute `amount` is not KEY=VALUE");
    authorize(&w, &token, "expenses", "read", "/r", &["--attr", "=5"])
        .error("an attribute has an empty key");
    issue_run(&w, &["--attr-max", "amount=lots"])
        .error("`lots` in `amount=lots` is not an integer");
    issue_run(&w, &["--attr-in", "method"]).error("`method` is not KEY=V1,V2");
    w.delegate(&token, &["--attr-max", "amount"])
        .error("amount");
}

#[test]
fn attribute_sets_mixing_numbers_and_strings_are_refused() {
    // biscuit-auth signs such a set, then cannot read it back: appending it as
    // a signed block used to abort the process (found by fuzzing).
    let w = world();
    let why = "the values of attribute `k` mix numbers and strings";
    issue_run(&w, &["--attr-in", "k=1,a"]).error(why);
    let token = issue(&w, &["--agent-key", &w.public("agent")]);
    w.delegate(&token, &["--attr-in", "k=a,2"]).error(why);
    let signer = w.path("agent");
    w.delegate(&token, &["--signer-key", &signer, "--attr-in", "k=1,a,2"])
        .error(why);
    // One type is fine either way.
    w.delegate(&token, &["--signer-key", &signer, "--attr-in", "k=1,2"])
        .ok();
    w.delegate(&token, &["--signer-key", &signer, "--attr-in", "k=a,b"])
        .ok();
}

#[test]
fn bad_resources_are_refused() {
    let w = world();
    let token = issue(&w, &[]);
    for (res, why) in [
        (
            "/data/../x",
            "resource `/data/../x` refused: `.` or `..` segment",
        ),
        ("/data/./x", "`.` or `..` segment"),
        ("/data//x", "empty path segment"),
        ("/data/%2e%2e/x", "percent-encoding"),
        ("", "resource `` refused: empty"),
    ] {
        authorize(&w, &token, "expenses", "read", res, &[]).error(why);
    }
    let out = w.path("t.tok");
    issue_run(&w, &["--resource-prefix", "/data/../x", "--out", &out])
        .error("resource `/data/../x` refused");
    assert!(!Path::new(&out).exists());
    w.delegate(&token, &["--resource-prefix", "/data/../x", "--out", &out])
        .error("resource `/data/../x` refused");
    assert!(!Path::new(&out).exists());
}

#[test]
fn bad_issue_inputs_write_no_output_file() {
    let w = world();
    let out = w.path("t.tok");
    let out_path = PathBuf::from(&out);
    let key = w.root_key();
    let base = |extra: &[&str], root_key: &str| {
        let args = [
            "--principal",
            "alice",
            "--agent",
            "bot",
            "--ttl",
            "10m",
            "--out",
            &out,
        ];
        tokens::issue(root_key, &[&args[..], extra].concat())
    };
    base(&["--right", "expenses"], &key).error("right `expenses` is not SERVICE:OPERATION");
    base(&["--right", "x:y", "--agent-key", "ed25519/zz"], &key)
        .error("is not an Ed25519 public key");
    base(&["--right", "x:y"], &w.path("missing.key")).error("missing.key");
    base(&["--right", "x:y"], w.root_pub_file()).error("is not a private key file");
    base(&["--right", "x:y", "--check", "check if"], &key).error("Datalog error at line 1");
    assert!(!out_path.exists(), "a failed issue wrote {out}");
    // And the same command without the mistake does write it.
    base(&["--right", "x:y"], &key).ok();
    assert!(out_path.exists());
}

// ---------------------------------------------------------------------------
// demo
// ---------------------------------------------------------------------------

#[test]
fn demo_runs_the_offline_flow() {
    let run = mandate(&["demo"]);
    let out = run.ok();
    let verdict = |v: &str| {
        out.lines()
            .any(|l| l.trim_start().starts_with(v) && l.contains("acting for alice"))
    };
    assert!(verdict("ALLOW: "), "{run}");
    assert!(verdict("DENY: "), "{run}");
    contains_all(
        &run,
        out,
        &[r#"failed: check if attr("amount", $v), $v <= 499"#],
    );
}

#[test]
fn demo_prints_its_trail_from_the_store_and_the_store_agrees() {
    let dir = Dir::new();
    let folder = dir.path("demo");
    let run = mandate(&["demo", "--dir", &folder]);
    let out = run.ok();
    contains_all(
        &run,
        out,
        &[
            "8. the audit trail, read back from the store",
            "receipts-agent (via expense-agent) for alice: expenses submit /reports/alice/2026-q3 → allow: allowed by",
            "→ deny: check #",
            "→ deny: revoked task ",
            ": revoked task ",
            "9. the story of the task (mandate audit trace ",
            "record(s), 1 allowed, 3 denied",
            "  chain: alice → expense-agent [sha256:",
            "  ended by: #4 ",
            "10. the log checked against tampering (mandate audit verify):",
            "   ok: 5 record(s), ",
        ],
    );

    // The same records, read by `mandate audit` from the folder the demo left.
    let store = format!("{folder}/audit");
    let records = mandate(&["audit", "--store", &store, "--json"]);
    let lines: Vec<Value> = records
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<(&str, &str)> = lines
        .iter()
        .map(|r| {
            (
                r["event"].as_str().unwrap(),
                r["decision"]
                    .as_str()
                    .or(r["action"].as_str())
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("decision", "allow"),
            ("decision", "deny"),
            ("decision", "deny"),
            ("registry", "revoke"),
            ("decision", "deny"),
        ],
        "{records}"
    );
    for decision in lines.iter().filter(|r| r["event"] == "decision") {
        assert_eq!(decision["principal"], "alice", "{records}");
        assert_eq!(decision["agent"], "receipts-agent", "{records}");
        assert_eq!(decision["chain"][0]["name"], "expense-agent", "{records}");
        assert_eq!(decision["chain"][1]["name"], "receipts-agent", "{records}");
        assert_eq!(decision["service"], "expenses", "{records}");
        assert_eq!(decision["operation"], "submit", "{records}");
    }
    let kinds: Vec<&str> = lines
        .iter()
        .filter_map(|r| r["reason"]["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["allowed", "failed_checks", "proof_of_possession", "revoked"],
        "{records}"
    );
    mandate(&["audit", "verify", "--store", &store]).ok();

    // Run again in the same folder: a fresh task, its own trail, the log
    // still whole.
    let again = mandate(&["demo", "--dir", &folder]);
    contains_all(&again, again.ok(), &["   ok: 10 record(s), "]);
}

#[test]
fn a_token_at_the_most_blocks_is_not_delegated_into_one_nothing_reads() {
    // Found by attack: the 65th block was appended, and every reader then
    // refused the token.
    let w = world();
    let mut token = issue(&w, &[]);
    for _ in 1..mandate_core::bounds::MAX_BLOCKS {
        token = w.delegate(&token, &["--operation", "read"]).ok_trimmed();
    }
    let run = authorize(&w, &token, "expenses", "read", "/r", &[]);
    assert_eq!(run.code, 0, "a token of the most blocks is read\n{run}");
    w.delegate(&token, &["--operation", "read"])
        .error("the most a token may hold");
}
