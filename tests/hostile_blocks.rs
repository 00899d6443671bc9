//! Blocks a token holder can append to crash, stall or mislead a verifier,
//! black-box through the `mandate` binary and the authorization API over
//! real HTTP: deep nesting, strings that would print as other statements,
//! joins hidden from a text-based cost bound, costly regular expressions.
//!
//! Each hostile block is appended with biscuit-auth directly, as anyone
//! holding the token bytes can (no agent key needed). Every test asserts
//! the outcome *and* the reason, and that the process survived.

#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

#[path = "common/mod.rs"]
mod common;

use biscuit_auth::builder::{self, BlockBuilder, Check, CheckKind, Expression, Op, Rule, Term};
use serde_json::{json, Value};

use common::blocks::{append, append_unsigned};
use common::http::post;
use common::server::Server;
use common::world::World;
use common::{mandate, request_flags, Run};

const SERVICE: &str = "analytics";
const RESOURCE: &str = "/datasets/q3";

/// A world whose root issued bob a bearer mandate (`analytics:read`, task
/// `q3`, one hour) with `extra` flags: the token the hostile blocks are
/// appended to.
fn world(extra: &[&str]) -> (World, String) {
    let w = World::new();
    let extra = [&["--task", "q3", "--ttl", "1h"], extra].concat();
    let token = w.bearer("bob", "orchestrator", &["analytics:read"], &extra);
    (w, token.token)
}

/// `mandate authorize --json` of reading [`RESOURCE`] with `token`.
fn authorize(w: &World, token: &str) -> Run {
    w.authorize(
        token,
        &request_flags(SERVICE, "read", RESOURCE),
        &["--json"],
    )
}

/// `mandate inspect --json --root-pub ROOT --token TOKEN`.
fn inspect(w: &World, token: &str) -> Run {
    let root = w.trust();
    mandate(&["inspect", "--json", "--root-pub", &root, "--token", token])
}

/// `check if <expression>` built from operations, without the parser (which
/// would itself recurse on deep text).
fn check_of(ops: Vec<Op>) -> BlockBuilder {
    let rule = Rule::new(
        builder::pred::<Term>("query", &[]),
        vec![],
        vec![Expression { ops }],
        vec![],
    );
    let check = Check {
        queries: vec![rule],
        kind: CheckKind::One,
    };
    BlockBuilder::new().check(check).unwrap()
}

/// `((((true))))`, `depth` parentheses deep.
fn deep_parens(depth: usize) -> Vec<Op> {
    let mut ops = vec![Op::Value(Term::Bool(true))];
    ops.extend((0..depth).map(|_| Op::Unary(builder::Unary::Parens)));
    ops
}

/// `true && (true && (true && ...))`, `depth` closures deep.
fn deep_closures(depth: usize) -> Vec<Op> {
    let mut ops = vec![Op::Value(Term::Bool(true))];
    for _ in 0..depth {
        ops = vec![
            Op::Value(Term::Bool(true)),
            Op::Closure(vec![], ops),
            Op::Binary(builder::Binary::LazyAnd),
        ];
    }
    ops
}

fn deny_json(run: &Run) -> Value {
    assert_eq!(run.code, 1, "expected a denial (exit 1)\n{run}");
    let json = run.json();
    assert_eq!(json["decision"], "deny", "{run}");
    json
}

fn reason_text(json: &Value) -> String {
    json["reason"].to_string()
}

#[test]
fn deeply_nested_expressions_are_denied_and_inspected_without_crashing() {
    let (w, token) = world(&[]);
    for (what, ops) in [
        ("parentheses", deep_parens(5_000)),
        ("negations", {
            let mut ops = vec![Op::Value(Term::Bool(false))];
            ops.extend((0..5_001).map(|_| Op::Unary(builder::Unary::Negate)));
            ops
        }),
        // 45 is about the deepest a token can carry: biscuit's decoder stops
        // at 100 nested protobuf messages (two per closure level).
        ("closures", deep_closures(45)),
    ] {
        let hostile = append(&token, check_of(ops));
        let run = authorize(&w, &hostile);
        let json = deny_json(&run);
        let reason = reason_text(&json);
        assert!(reason.contains("exceeds a limit"), "{what}: {run}");
        // Nobody is named from a token that cannot be read.
        assert_eq!(json["chain"], json!([]), "{what}: {run}");
        // Inspection refuses to walk it: one clear error, exit 2.
        inspect(&w, &hostile).error("exceeds a limit");
    }
}

#[test]
fn a_string_that_prints_as_other_statements_cannot_change_the_principal() {
    // The issuer's own --check holds a string with escaped quotes: printed
    // unescaped and parsed back, it used to read as `principal("alice")`.
    let (w, token) = world(&[
        "--check",
        r#"check if resource($r), $r != "x\"); principal(\"alice\"); task(\"other\"); check if true; //""#,
    ]);
    let inspected = inspect(&w, &token);
    assert_eq!(inspected.code, 0, "{inspected}");
    let report = inspected.json();
    assert_eq!(report["principal"], "bob", "{inspected}");
    assert_eq!(report["task"], "q3", "{inspected}");
    assert_eq!(report["signature"]["status"], "valid", "{inspected}");
    // The display escapes the string: no unescaped quote inside it.
    let source = report["blocks"][0]["source"].as_str().unwrap();
    assert!(
        source.contains(r#"\"); principal(\"alice\"); task(\"other\")"#),
        "{source}"
    );

    let run = authorize(&w, &token);
    assert_eq!(run.code, 0, "{run}");
    let json = run.json();
    assert_eq!(json["principal"], "bob", "{run}");
    assert_eq!(json["task"], "q3", "{run}");

    // The same trick in a block a holder appends changes nothing either.
    let hostile = append_unsigned(
        &token,
        r#"check if resource($r), $r != "\"); principal(\"alice\"); //";"#,
    );
    let run = authorize(&w, &hostile);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.json()["principal"], "bob", "{run}");
}

#[test]
fn a_join_hidden_in_strings_is_still_costed() {
    let (w, token) = world(&[]);
    // Printed unescaped, `x"); /*` ... `*/ check if true; //` used to comment
    // the join out of the text the cost bound read; the structure keeps it.
    let mut facts = String::new();
    for i in 0..100 {
        facts.push_str(&format!("f({i});\n"));
    }
    let hostile = append_unsigned(
        &token,
        &format!(
            "{facts}check if resource($r), $r != \"x\\\"); /*\";\n\
             check if f($a), f($b), f($c), $a + $b + $c == -1 or resource(\"*/ check if true; //\");"
        ),
    );
    let run = authorize(&w, &hostile);
    let json = deny_json(&run);
    let reason = reason_text(&json);
    assert!(reason.contains("too costly"), "{run}");
    assert!(reason.contains("f($a), f($b), f($c)"), "{run}");
}

#[test]
fn regular_expressions_in_appended_blocks_are_refused() {
    let (w, token) = world(&[]);
    let mut checks = String::new();
    for _ in 0..200 {
        checks.push_str("check if \"a\".matches(\"(?:.{100}){200}\") || true;\n");
    }
    let hostile = append_unsigned(&token, &checks);
    let run = authorize(&w, &hostile);
    let json = deny_json(&run);
    assert!(
        reason_text(&json).contains("matches a regular expression"),
        "{run}"
    );
}

// ---------------------------------------------------------------------------
// Over HTTP: the authorization API survives and keeps answering
// ---------------------------------------------------------------------------

/// `POST /v1/authorize` reading [`RESOURCE`] with `token`: status and body.
fn authorize_http(server: &Server, token: &str) -> (u16, Value) {
    let body = json!({
        "token": token,
        "service": SERVICE,
        "operation": "read",
        "resource": RESOURCE,
    });
    let reply = post(&server.url, &body.to_string());
    (reply.status, reply.body)
}

#[test]
fn the_authorization_api_survives_every_hostile_block() {
    let (w, token) = world(&[]);
    let server = w.serve_store("store", &[]);
    let hostile = [
        append(&token, check_of(deep_parens(5_000))),
        append(&token, check_of(deep_closures(45))),
        append_unsigned(&token, "check if \"a\".matches(\"(?:.{100}){200}\");"),
    ];
    for hostile in &hostile {
        let (status, body) = authorize_http(&server, hostile);
        assert!(matches!(status, 401 | 403), "{status} {body}");
        let (status, body) = authorize_http(&server, &token);
        assert_eq!(status, 200, "the server still decides: {body}");
        assert_eq!(body["principal"], "bob", "{body}");
    }
    drop(w);
}

#[test]
fn string_concatenation_across_many_fact_pairs_is_costed_before_evaluation() {
    // Found by review: 400 fact pairs, each concatenating a 4,000-byte
    // string 120 times in four expressions, ran 22 s on one call, although
    // the pairs alone are far under the fact-visit budget.
    let (w, token) = world(&[]);
    let chain = vec!["$s"; 120].join(" + ");
    let mut expressions = vec![format!("({chain}).length() > 0"); 4];
    expressions.push("$i == -1".into());
    let facts: String = (0..8).map(|i| format!("n({i});\n")).collect();
    let code = format!(
        "big(\"{}\");\n{facts}check if big($s), n($i), n($j), {};",
        "a".repeat(4000),
        expressions.join(", ")
    );
    let hostile = append_unsigned(&token, &code);
    let run = authorize(&w, &hostile);
    let json = deny_json(&run);
    let reason = reason_text(&json);
    assert!(reason.contains("bytes of strings"), "{run}");
    assert_eq!(json["principal"], "bob", "{run}");
    // The reason is the static bound's: it was refused before evaluation
    // (the old behaviour evaluated it for 20 s).
}

#[test]
fn set_operations_over_sets_written_in_facts_are_costed_before_evaluation() {
    // Found by review: six facts of 1,000-element sets, joined with nine
    // copies of a two-fact predicate (512 combinations, far under the
    // fact-visit budget) and unioned 45 times per visit, held `authorize`
    // for over a minute: only literal elements in the query were counted.
    // (Five copies here: 32 combinations stay under the visit budget, so
    // the element budget is what refuses it.)
    let (w, token) = world(&[]);
    let mut code = String::new();
    let mut body = Vec::new();
    for j in 0..6 {
        let set: Vec<String> = (0..1000).map(|i| (j * 1000 + i).to_string()).collect();
        code.push_str(&format!("s{j}({{{}}});\n", set.join(",")));
        body.push(format!("s{j}($a{j})"));
    }
    code.push_str("t(0);\nt(1);\n");
    body.extend((0..5).map(|k| format!("t($x{k})")));
    let unions: String =
        (1..6).map(|j| format!(".union($a{j})")).collect::<String>() + &".union($a0)".repeat(40);
    code.push_str(&format!(
        "check if {}, $a0{unions}.length() < 0;",
        body.join(", ")
    ));
    let hostile = append_unsigned(&token, &code);
    let run = authorize(&w, &hostile);
    let json = deny_json(&run);
    let reason = reason_text(&json);
    assert!(reason.contains("collection elements"), "{run}");
    assert_eq!(json["principal"], "bob", "{run}");

    // Over HTTP: refused by the bound, and the server keeps deciding.
    let server = w.serve_store("store", &[]);
    let (status, body) = authorize_http(&server, &hostile);
    assert!(matches!(status, 401 | 403), "{status} {body}");
    assert!(body.to_string().contains("collection elements"), "{body}");
    let (status, body) = authorize_http(&server, &token);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn many_rules_each_within_budget_are_costed_together() {
    // Found by review: a block holding a 1,000-element collection, then
    // 280 rules (200 here) each joining it 16 times (no expressions), passed the bound
    // query by query and held `authorize` for 5-7 s: biscuit applies every
    // rule before it looks at its clock, and every visit copies the
    // collections bound so far.
    let (w, token) = world(&[]);
    let array: Vec<&str> = vec!["hex:00"; 1000];
    let with_array = append_unsigned(&token, &format!("node([{}]);", array.join(",")));
    let body: Vec<String> = (0..16).map(|v| format!("node($v{v})")).collect();
    let rules: String = (0..100)
        .map(|r| format!("hostname({r}) <- {} trusting previous;\n", body.join(", ")))
        .collect();
    let hostile = append_unsigned(&append_unsigned(&with_array, &rules), &rules);
    let run = authorize(&w, &hostile);
    let reason = reason_text(&deny_json(&run));
    assert!(reason.contains("too costly"), "{run}");

    // Cheap rules, but many: each within budget, together not.
    // (Any rule makes every predicate possibly as large as the fact limit,
    // 10,000, so each rule of one predicate is near the visit budget.)
    let rules: String = (0..20).map(|r| format!("h({r}) <- g($a);\n")).collect();
    let hostile = append_unsigned(&token, &format!("g(1);\n{rules}"));
    let run = authorize(&w, &hostile);
    let reason = reason_text(&deny_json(&run));
    assert!(reason.contains("rules are too costly"), "{run}");
    assert_eq!(deny_json(&run)["principal"], "bob", "{run}");
}
