//! Data-driven tests of the service policies in `datalog/policies/`.
//!
//! Every policy file has one table of allow/deny cases, and every row goes
//! through the one helper [`check`]: mint a token with the row's rights,
//! narrow it with the row's restrictions, decide the row's request under the
//! policy file, and compare the outcome *and* its reason with the row's
//! expectation. A policy file without a table fails
//! [`every_policy_file_has_a_table`], so a new policy cannot land untested.
//!
//! The rows are written in a compact text form so a table reads like a list
//! of scenarios:
//! - rights: `SERVICE:OPERATION`, or `FLAG=VALUE` for a restriction written
//!   into the authority block at mint time;
//! - restrictions: `FLAG=VALUE` with the `mandate delegate` flag names
//!   (`operation`, `service`, `resource-prefix`, `attr-max`, `attr-in`,
//!   `ttl`, `max-depth`, `check`), plus `to=NAME` for a hop signed by the
//!   current holder that hands the authority to a new agent `NAME`; `|`
//!   starts the next delegated block. Every request carries a proof of
//!   possession by the holder's key;
//! - request: `SERVICE OPERATION RESOURCE [KEY=VALUE]... [@+DURATION]`, the
//!   time being the mint time plus the duration (the mint time by default).
//!
//! These tests never edit a policy; they only read the files.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use mandate_core::{
    delegate, delegate_signed, KeySet, NextAgent, Proof, Request, ResourcePath, Restrictions,
    RootKey, SecretKey,
};
use mandate_issuer::MintRequest;
use mandate_verifier::{Policy, Verifier};

/// What a row expects: the outcome and a substring of its reason (for a
/// decision, `Reason`'s `Display`; for an error, the error's `Display`).
#[derive(Debug, Clone, Copy)]
enum Expect {
    Allow(&'static str),
    Deny(&'static str),
    Error(&'static str),
}
use Expect::{Allow, Deny, Error};

/// (minted with, delegated with, request, expected)
type Row = (
    &'static [&'static str],
    &'static [&'static str],
    &'static str,
    Expect,
);

/// Every policy file and its table. [`every_policy_file_has_a_table`] keeps
/// this list and the folder in step.
const TABLES: &[(&str, &[Row])] = &[
    ("default.datalog", DEFAULT),
    ("registry.datalog", REGISTRY),
    ("refunds.datalog", REFUNDS),
];

const ALLOW_RIGHT: &str = "allowed by `allow if service($s), operation($o), right($s, $o)`";
const NO_RIGHT: &str = "check #1 of the authority block (by the issuer) failed: \
                        check if service($s), operation($o), right($s, $o)";

const DEFAULT: &[Row] = &[
    // The right itself decides.
    (&["expenses:read"], &[], "expenses read /r/1", Allow(ALLOW_RIGHT)),
    (
        &["expenses:read"],
        &[],
        "expenses submit /r/1",
        Deny(NO_RIGHT),
    ),
    (
        &["expenses:read"],
        &[],
        "payments read /r/1",
        Deny(NO_RIGHT),
    ),
    // A right is a (service, operation) pair, not two independent grants.
    (
        &["expenses:read", "payments:submit"],
        &[],
        "expenses submit /r/1",
        Deny(NO_RIGHT),
    ),
    // Expiry: valid up to and including expires_at, then an error, not a denial.
    (&["expenses:read"], &[], "expenses read /r/1 @+30d", Allow(ALLOW_RIGHT)),
    (
        &["expenses:read"],
        &[],
        "expenses read /r/1 @+30d1s",
        Error("token expired at 2026-01-31T00:00:00Z"),
    ),
    // Operation restriction in a delegated block.
    (
        &["expenses:read", "expenses:submit"],
        &["operation=read"],
        "expenses read /r/1",
        Allow(ALLOW_RIGHT),
    ),
    (
        &["expenses:read", "expenses:submit"],
        &["operation=read"],
        "expenses submit /r/1",
        Deny(r#"check #0 of block 1 (by an unsigned block appended while agent-a held the token) failed: check if operation("read")"#),
    ),
    // Service restriction.
    (
        &["expenses:read", "payments:read"],
        &["service=payments"],
        "expenses read /r/1",
        Deny(r#"check #0 of block 1 (by an unsigned block appended while agent-a held the token) failed: check if service("payments")"#),
    ),
    // Resource prefixes are segment-safe.
    (
        &["expenses:read"],
        &["resource-prefix=/reports/alice"],
        "expenses read /reports/alice",
        Allow(ALLOW_RIGHT),
    ),
    (
        &["expenses:read"],
        &["resource-prefix=/reports/alice"],
        "expenses read /reports/alice/q3/",
        Allow(ALLOW_RIGHT),
    ),
    (
        &["expenses:read"],
        &["resource-prefix=/reports/alice"],
        "expenses read /reports/alice-old",
        Deny(r#"check #0 of block 1 (by an unsigned block appended while agent-a held the token) failed: check if resource($r), ($r + "/").starts_with("/reports/alice/")"#),
    ),
    (
        &["expenses:read"],
        &["resource-prefix=/reports/alice", "resource-prefix=/shared"],
        "expenses read /shared/x",
        Allow(ALLOW_RIGHT),
    ),
    // Attribute bounds: an absent attribute fails the check.
    (
        &["expenses:submit"],
        &["attr-max=amount=499"],
        "expenses submit /r/1 amount=499",
        Allow(ALLOW_RIGHT),
    ),
    (
        &["expenses:submit"],
        &["attr-max=amount=499"],
        "expenses submit /r/1 amount=500",
        Deny(r#"check #0 of block 1 (by an unsigned block appended while agent-a held the token) failed: check if attr("amount", $v), $v <= 499"#),
    ),
    (
        &["expenses:submit"],
        &["attr-max=amount=499"],
        "expenses submit /r/1",
        Deny(r#"check #0 of block 1 (by an unsigned block appended while agent-a held the token) failed: check if attr("amount", $v), $v <= 499"#),
    ),
    (
        &["expenses:submit"],
        &["attr-max=amount=499"],
        "expenses submit /r/1 amount=lots",
        Deny("evaluation error: Invalid type"),
    ),
    (
        &["expenses:submit"],
        &["attr-in=currency=EUR,USD"],
        "expenses submit /r/1 currency=USD",
        Allow(ALLOW_RIGHT),
    ),
    (
        &["expenses:submit"],
        &["attr-in=currency=EUR,USD"],
        "expenses submit /r/1 currency=GBP",
        Deny(r#"check #0 of block 1 (by an unsigned block appended while agent-a held the token) failed: check if attr("currency", $v), {"EUR", "USD"}.contains($v)"#),
    ),
    // A shorter expiry in a delegated block denies, naming the block.
    (&["expenses:read"], &["ttl=1h"], "expenses read /r/1 @+1h", Allow(ALLOW_RIGHT)),
    (
        &["expenses:read"],
        &["ttl=1h"],
        "expenses read /r/1 @+2h",
        Deny("check #0 of block 1 (by an unsigned block appended while agent-a held the token) failed: check if time($t), $t <= 2026-01-01T01:00:00Z"),
    ),
    // Restrictions written at mint time live in the authority block.
    (
        &["expenses:submit", "attr-max=amount=100"],
        &[],
        "expenses submit /r/1 amount=101",
        Deny(r#"check #2 of the authority block (by the issuer) failed: check if attr("amount", $v), $v <= 100"#),
    ),
    // Raw checks.
    (
        &["expenses:read"],
        &["check=check if attr(\"region\", \"eu\")"],
        "expenses read /r/1 region=eu",
        Allow(ALLOW_RIGHT),
    ),
    (
        &["expenses:read"],
        &["check=check if attr(\"region\", \"eu\")"],
        "expenses read /r/1 region=us",
        Deny(r#"check #0 of block 1 (by an unsigned block appended while agent-a held the token) failed: check if attr("region", "eu")"#),
    ),
    // Several blocks: every block's checks hold, and a failure names its block.
    (
        &["datasets:read", "datasets:write"],
        &["operation=read", "|", "resource-prefix=/datasets/q3", "|", "resource-prefix=/datasets/q3/revenue"],
        "datasets read /datasets/q3/revenue/eu",
        Allow(ALLOW_RIGHT),
    ),
    (
        &["datasets:read", "datasets:write"],
        &["operation=read", "|", "resource-prefix=/datasets/q3", "|", "resource-prefix=/datasets/q3/revenue"],
        "datasets read /datasets/q3/costs",
        Deny(r#"check #0 of block 3 (by an unsigned block appended while agent-a held the token) failed: check if resource($r), ($r + "/").starts_with("/datasets/q3/revenue/")"#),
    ),
    (
        &["datasets:read", "datasets:write"],
        &["operation=read", "|", "resource-prefix=/datasets/q3", "|", "resource-prefix=/datasets/q3/revenue"],
        "datasets write /datasets/q3/revenue",
        Deny(r#"check #0 of block 1 (by an unsigned block appended while agent-a held the token) failed: check if operation("read")"#),
    ),
    // A later block cannot widen an earlier one.
    (
        &["datasets:read"],
        &["resource-prefix=/datasets/q3", "|", "check=check if true"],
        "datasets read /datasets/q4",
        Deny(r#"check #0 of block 1 (by an unsigned block appended while agent-a held the token) failed: check if resource($r), ($r + "/").starts_with("/datasets/q3/")"#),
    ),
    // Without signed hops the depth is 0, so max-depth=0 still allows.
    (&["expenses:read"], &["max-depth=0"], "expenses read /r/1", Allow(ALLOW_RIGHT)),
    // Signed hops hand the authority on and count towards max-depth.
    (
        &["datasets:read", "datasets:write"],
        &["max-depth=2", "|", "to=analytics", "operation=read", "|", "to=charts", "resource-prefix=/datasets/q3"],
        "datasets read /datasets/q3/revenue",
        Allow(ALLOW_RIGHT),
    ),
    (
        &["datasets:read", "datasets:write"],
        &["max-depth=2", "|", "to=analytics", "operation=read", "|", "to=charts", "resource-prefix=/datasets/q3"],
        "datasets read /datasets/q4",
        Deny(r#"check #0 of block 3 (by agent analytics) failed: check if resource($r), ($r + "/").starts_with("/datasets/q3/")"#),
    ),
    (
        &["datasets:read"],
        &["to=analytics", "|", "check=check if acting_agent(\"analytics\")"],
        "datasets read /datasets/q3",
        Allow(ALLOW_RIGHT),
    ),
    (
        &["datasets:read"],
        &["check=check if acting_agent(\"analytics\")", "|", "to=analytics"],
        "datasets read /datasets/q3",
        Allow(ALLOW_RIGHT),
    ),
    (
        &["datasets:read"],
        &["check=check if acting_agent(\"agent-a\")", "|", "to=analytics"],
        "datasets read /datasets/q3",
        Deny(r#"check #0 of block 1 (by an unsigned block appended while agent-a held the token) failed: check if acting_agent("agent-a")"#),
    ),
    (
        &["datasets:read"],
        &["to=analytics", "max-depth=0", "|", "check=check if delegation_depth(1)"],
        "datasets read /datasets/q3",
        Allow(ALLOW_RIGHT),
    ),
];

const REGISTRY: &[Row] = &[
    (
        &["registry:revoke"],
        &[],
        "registry revoke /revocations",
        Allow(r#"allowed by `allow if operation("revoke"), right("registry", "revoke")`"#),
    ),
    // Reads (list, status, stream) need registry:read, with the request's
    // HTTP attributes as the registry supplies them.
    (
        &["registry:read"],
        &[],
        "registry read /revocations http_method=GET http_path=/v1/revocations/stream",
        Allow(r#"allowed by `allow if operation("read"), right("registry", "read")`"#),
    ),
    // The operator's revoke right does not read the log, nor the reader's
    // right write it.
    (
        &["registry:revoke"],
        &[],
        "registry read /revocations",
        Deny(NO_RIGHT),
    ),
    (
        &["registry:read"],
        &[],
        "registry revoke /revocations http_method=POST",
        Deny(NO_RIGHT),
    ),
    // One mandate may carry both.
    (
        &["registry:revoke", "registry:read"],
        &[],
        "registry read /revocations",
        Allow(r#"allowed by `allow if operation("read"), right("registry", "read")`"#),
    ),
    // A registry right that is neither revoke nor read passes the token's
    // checks but no allow policy of the registry.
    (
        &["registry:list"],
        &[],
        "registry list /revocations",
        Deny("denied by policy `deny if true`"),
    ),
    (
        &["registry:revoke"],
        &[],
        "registry list /revocations",
        Deny(NO_RIGHT),
    ),
    // A token for another service is refused by the registry's own check.
    (
        &["expenses:revoke"],
        &[],
        "expenses revoke /revocations",
        Deny(r#"check #1 of the service policy failed: check if service("registry")"#),
    ),
    (
        &["registry:revoke"],
        &["ttl=10m"],
        "registry revoke /revocations @+11m",
        Deny("check #0 of block 1 (by an unsigned block appended while agent-a held the token) failed: check if time($t), $t <= 2026-01-01T00:10:00Z"),
    ),
];

const REFUND_TOKEN: &[&str] = &[
    "refunds:refund",
    "refunds:read",
    "attr-max=amount=100",
    "attr-in=method=card,voucher",
];

const REFUNDS: &[Row] = &[
    (
        REFUND_TOKEN,
        &["attr-in=tier=gold,silver"],
        "refunds refund /orders/1 amount=100 method=card tier=gold",
        Allow(ALLOW_RIGHT),
    ),
    (
        REFUND_TOKEN,
        &["attr-in=tier=gold,silver"],
        "refunds refund /orders/1 amount=101 method=card tier=gold",
        Deny(
            r#"check #2 of the authority block (by the issuer) failed: check if attr("amount", $v), $v <= 100"#,
        ),
    ),
    (
        REFUND_TOKEN,
        &["attr-in=tier=gold,silver"],
        "refunds refund /orders/1 amount=50 method=cash tier=gold",
        Deny(
            r#"check #3 of the authority block (by the issuer) failed: check if attr("method", $v), {"card", "voucher"}.contains($v)"#,
        ),
    ),
    (
        REFUND_TOKEN,
        &["attr-in=tier=gold,silver"],
        "refunds refund /orders/1 amount=50 method=card tier=bronze",
        Deny(
            r#"check #0 of block 1 (by an unsigned block appended while agent-a held the token) failed: check if attr("tier", $v), {"gold", "silver"}.contains($v)"#,
        ),
    ),
    // The service demands the three attributes even when the token does not
    // bound one of them.
    (
        &["refunds:refund", "attr-max=amount=100"],
        &[],
        "refunds refund /orders/1 amount=50 method=card",
        Deny("check #2 of the service policy failed"),
    ),
    (
        &["refunds:refund"],
        &[],
        "refunds refund /orders/1 amount=50 method=card tier=gold",
        Allow(ALLOW_RIGHT),
    ),
    // Other operations need no attributes from the service.
    (
        &["refunds:read"],
        &[],
        "refunds read /orders/1",
        Allow(ALLOW_RIGHT),
    ),
    (
        &["billing:refund"],
        &[],
        "billing refund /orders/1 amount=5 method=card tier=gold",
        Deny(r#"check #1 of the service policy failed: check if service("refunds")"#),
    ),
];

/// Mint time of every row: 2026-01-01T00:00:00Z, with a 30-day lifetime.
fn mint_time() -> SystemTime {
    humantime::parse_rfc3339("2026-01-01T00:00:00Z").unwrap()
}

fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datalog/policies")
}

fn policy(file: &str) -> Policy {
    let path = policies_dir().join(file);
    Policy::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Applies one `FLAG=VALUE` restriction.
fn restrict(r: &mut Restrictions, arg: &str) {
    let (flag, value) = arg
        .split_once('=')
        .unwrap_or_else(|| panic!("restriction `{arg}` is not FLAG=VALUE"));
    match flag {
        "operation" => r.operations.push(value.into()),
        "service" => r.services.push(value.into()),
        "resource-prefix" => r
            .resource_prefixes
            .push(ResourcePath::parse(value).unwrap()),
        "attr-max" => r
            .attr_max
            .push(Restrictions::parse_attr_max(value).unwrap()),
        "attr-in" => r.attr_in.push(Restrictions::parse_attr_in(value).unwrap()),
        "ttl" => r.expires_at = Some(mint_time() + humantime::parse_duration(value).unwrap()),
        "max-depth" => r.max_depth = Some(value.parse().unwrap()),
        "check" => r.checks.push(value.into()),
        other => panic!("unknown restriction flag `{other}`"),
    }
}

fn parse_request(text: &str) -> Request {
    let mut words = text.split_whitespace();
    let mut next = || {
        words
            .next()
            .unwrap_or_else(|| panic!("short request `{text}`"))
    };
    let (service, operation, resource) = (next(), next(), next());
    let mut request = Request::new(
        service,
        operation,
        ResourcePath::parse(resource).unwrap(),
        mint_time(),
    );
    for word in words {
        match word.strip_prefix("@+") {
            Some(offset) => request.time = mint_time() + humantime::parse_duration(offset).unwrap(),
            None => request = request.with_attr_arg(word).unwrap(),
        }
    }
    request
}

/// Runs one row and returns what went wrong, if anything.
fn check(verifier: &Verifier, root: &RootKey, row: &Row) -> Result<(), String> {
    let (minted_with, delegated_with, request_text, expect) = *row;
    let mut rights = Vec::new();
    let mut at_mint = Restrictions::default();
    for arg in minted_with {
        if arg.contains('=') {
            restrict(&mut at_mint, arg);
        } else {
            rights.push(arg.parse().unwrap());
        }
    }
    // The holder's key signs signed hops and every request's proof of
    // possession, as a real agent would.
    let mut holder = SecretKey::generate();
    let mandate = mandate_issuer::mint(
        root,
        &MintRequest {
            principal: "alice".into(),
            agent: "agent-a".into(),
            agent_key: Some(holder.public()),
            task: Some("task-1".into()),
            rights,
            ttl: Duration::from_secs(30 * 24 * 3600),
            restrictions: at_mint,
            now: mint_time(),
        },
    )
    .map_err(|e| format!("mint failed: {e}"))?;
    let mut token = mandate.to_unverified().unwrap();
    for block in delegated_with.split(|arg| *arg == "|") {
        let mut restrictions = Restrictions::default();
        let mut to = None;
        for arg in block {
            match arg.strip_prefix("to=") {
                Some(name) => to = Some(name),
                None => restrict(&mut restrictions, arg),
            }
        }
        token = match to {
            Some(name) => {
                let next = SecretKey::generate();
                let hop = NextAgent {
                    name: name.into(),
                    key: next.public(),
                };
                let token = delegate_signed(&token, &holder, Some(&hop), &restrictions);
                holder = next;
                token
            }
            None if block.is_empty() => continue,
            None => delegate(&token, &restrictions),
        }
        .map_err(|e| format!("delegate failed: {e}"))?;
    }
    let text = token.to_base64().unwrap();
    let request = parse_request(request_text);
    let proof = Proof::sign(&holder, &token.digest_hex(), &request, request.time);
    let request = request.with_proof(proof);

    let (outcome, reason) = match verifier.authorize(&text, &request) {
        Ok(decision) => {
            if (decision.principal.as_str(), decision.task.as_str()) != ("alice", "task-1") {
                return Err(format!(
                    "decision names principal `{}` and task `{}`",
                    decision.principal, decision.task
                ));
            }
            let outcome = if decision.allowed { "allow" } else { "deny" };
            (outcome, decision.reason.to_string())
        }
        Err(e) => ("error", e.to_string()),
    };
    let (want, substring) = match expect {
        Allow(s) => ("allow", s),
        Deny(s) => ("deny", s),
        Error(s) => ("error", s),
    };
    if outcome != want || !reason.contains(substring) {
        return Err(format!(
            "expected {want} containing\n      {substring}\n    got {outcome}:\n      {reason}"
        ));
    }
    Ok(())
}

/// Runs the table of `file` and reports every failing row at once.
fn run_table(file: &str) {
    let (_, rows) = TABLES
        .iter()
        .find(|(name, _)| *name == file)
        .unwrap_or_else(|| panic!("no table for {file}"));
    let root = RootKey {
        secret: SecretKey::generate(),
        key_id: Some(1),
    };
    let verifier = Verifier::builder()
        .root_keys(KeySet::single(root.secret.public()))
        .policy(policy(file))
        .build()
        .unwrap();
    let failures: Vec<String> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, row)| {
            check(&verifier, &root, row).err().map(|why| {
                format!(
                    "{file} row {i}: minted {:?}, delegated {:?}, request `{}`\n    {why}",
                    row.0, row.1, row.2
                )
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn default_policy() {
    run_table("default.datalog");
}

#[test]
fn registry_policy() {
    run_table("registry.datalog");
}

#[test]
fn refunds_policy() {
    run_table("refunds.datalog");
}

/// Policies of other components, each with its table in another crate's
/// tests (path from the workspace root).
const TABLED_ELSEWHERE: &[(&str, &str)] =
    &[("issuance.datalog", "crates/mandate-issuer/tests/policy.rs")];

#[test]
fn every_policy_file_has_a_table() {
    for (name, table) in TABLED_ELSEWHERE {
        let table = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(table);
        let text = std::fs::read_to_string(&table)
            .unwrap_or_else(|e| panic!("{name}'s table {}: {e}", table.display()));
        assert!(
            text.contains(name),
            "{} does not name {name}",
            table.display()
        );
    }
    let mut files: Vec<String> = std::fs::read_dir(policies_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".datalog"))
        .filter(|name| !TABLED_ELSEWHERE.iter().any(|(other, _)| other == name))
        .collect();
    files.sort();
    let mut tables: Vec<String> = TABLES.iter().map(|(name, _)| name.to_string()).collect();
    tables.sort();
    assert_eq!(
        files, tables,
        "every policy file in datalog/policies/ needs a table in TABLES (and a #[test] calling run_table)"
    );
    for (name, rows) in TABLES {
        let allows = rows.iter().any(|r| matches!(r.3, Allow(_)));
        let denies = rows.iter().any(|r| matches!(r.3, Deny(_)));
        assert!(
            allows && denies,
            "{name}'s table needs an allow and a deny row"
        );
    }
}

#[test]
fn the_compiled_in_default_is_the_file() {
    let file = std::fs::read_to_string(policies_dir().join("default.datalog")).unwrap();
    assert_eq!(Policy::default_policy().source(), file);
}

fn refused(source: &str) -> String {
    match Policy::from_source("test", source) {
        Ok(_) => panic!("policy accepted:\n{source}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn policies_stating_issuer_or_verifier_facts_are_refused() {
    for (source, name) in [
        ("right(\"expenses\", \"write\");\nallow if true;", "right"),
        ("principal(\"root\");\nallow if true;", "principal"),
        ("agent(\"a\", \"\");\nallow if true;", "agent"),
        (
            "expires_at(2100-01-01T00:00:00Z);\nallow if true;",
            "expires_at",
        ),
        ("principal($p) <- user($p);\nallow if true;", "principal"),
        (
            "right($s, \"read\") <- service($s);\nallow if true;",
            "right",
        ),
        ("time(2026-01-01T00:00:00Z);\nallow if true;", "time"),
        ("attr(\"amount\", 1);\nallow if true;", "attr"),
        ("acting_agent(\"root\");\nallow if true;", "acting_agent"),
        ("hop(\"x\", \"ed25519/00\");\nallow if true;", "hop"),
        (
            "delegation_depth($d) <- attr(\"depth\", $d);\nallow if true;",
            "delegation_depth",
        ),
    ] {
        let message = refused(source);
        assert!(
            message.contains(&format!("defines `{name}`")),
            "{source:?}: {message}"
        );
    }
}

#[test]
fn policies_may_read_issuer_facts_and_define_their_own() {
    let source = "admin($p) <- principal($p), attr(\"role\", \"admin\");\n\
                  check if right($s, $o);\n\
                  allow if admin($p);\n\
                  deny if true;";
    Policy::from_source("test", source).unwrap();
}

#[test]
fn policies_without_allow_are_refused() {
    for source in [
        "deny if true;",
        "check if time($t);",
        "",
        "// only a comment\n",
    ] {
        let message = refused(source);
        assert!(
            message.contains("has no `allow if` policy"),
            "{source:?}: {message}"
        );
    }
}

/// Parses `source` and returns the (line, column) its error reports.
fn error_position(source: &str) -> (usize, usize) {
    match Policy::from_source("test", source) {
        Err(mandate_verifier::Error::Token(mandate_core::Error::Datalog {
            line, column, ..
        })) => (line, column),
        other => panic!("{source:?}: expected a Datalog error, got {other:?}"),
    }
}

/// The position points at the text that does not parse, even when other
/// statements follow it.
#[test]
fn syntax_errors_report_line_and_column() {
    let cases = [
        (
            "check if time($t);\ncheck if foo(;\nallow if true;\n",
            (2, 14),
        ),
        ("allow if true;\ncheck if time($t) &&& 1;\n", (2, 1)),
        (
            "allow if true;\n  chek if time($t);\ndeny if true;\n",
            (2, 3),
        ),
        ("allow if true;\ndeny if right(\"a\";\n", (2, 9)),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(source, expected)| {
            let reported = error_position(source);
            (reported != *expected)
                .then(|| format!("{source:?}: reported {reported:?}, expected {expected:?}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let message = Policy::from_source("test", "allow if true;\n  chek if time($t);\n")
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("Datalog error at line 2, column 3: "),
        "{message}"
    );
}

#[test]
fn missing_policy_files_are_an_io_error() {
    let err = Policy::from_file(&policies_dir().join("no-such.datalog")).unwrap_err();
    assert!(
        matches!(
            err,
            mandate_verifier::Error::Token(mandate_core::Error::Io { .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("no-such.datalog"), "{err}");
}
