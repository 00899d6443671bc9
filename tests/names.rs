//! Black-box tests of names through the `mandate` binary: `issue`,
//! `delegate --to`, `revoke` and `lift` accept exactly the same canonical
//! names (no padding, no invisible or confusable characters, NFC, principals
//! in lower case), so what an operator revokes is what a token carries; and
//! the terminal shows every non-ASCII character escaped.

#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

#[path = "common/mod.rs"]
mod common;

use common::world::World;
use common::{mandate, request_flags, Run};

/// A world with one agent key, `agent`.
fn world() -> World {
    let w = World::new();
    w.keygen("agent");
    w
}

/// `mandate issue` of `expenses:read` for 10 minutes, with `extra` flags.
fn issue(w: &World, principal: &str, agent: &str, extra: &[&str]) -> Run {
    let args = ["--principal", principal, "--agent", agent];
    w.issue_run(&[&args[..], &["--right", "expenses:read"], extra].concat())
}

/// `mandate authorize` of reading `/reports/1` on `expenses`.
fn authorize(w: &World, token: &str, extra: &[&str]) -> Run {
    w.authorize(
        token,
        &request_flags("expenses", "read", "/reports/1"),
        extra,
    )
}

const REFUSED: &[(&str, &str, &str)] = &[
    ("dave ", "dave ", "has leading or trailing whitespace"),
    (" dave", " dave", "has leading or trailing whitespace"),
    ("da\tve", "da\\u{0009}ve", "contains `\\u{0009}`"),
    (
        "da\u{200D}ve",
        "da\\u{200D}ve",
        "contains the invisible character `\\u{200D}`",
    ),
    (
        "jose\u{301}",
        "jose\\u{0301}",
        "is not in Unicode NFC; write it as `jos\\u{00E9}`",
    ),
    ("\u{430}lice", "\\u{0430}lice", "mixes letters of scripts"),
];

#[test]
fn issue_refuses_names_that_are_not_canonical_with_one_clear_error() {
    let w = world();
    for (name, shown, problem) in REFUSED {
        issue(&w, name, "bot", &[]).error(&format!("error: principal `{shown}` {problem}"));
        issue(&w, "dave", name, &[]).error(&format!("error: agent `{shown}` {problem}"));
        issue(&w, "dave", "bot", &["--task", name])
            .error(&format!("error: task `{shown}` {problem}"));
    }
    // Principals are case-insensitive: only the lower-case spelling is taken,
    // and the refusal says which it is.
    issue(&w, "Erin@x.com", "bot", &[]).error(
        "principal `Erin@x.com` is not canonical: principals are case-insensitive \
         and written in lower case; use `erin@x.com`",
    );
    // Agents and tasks are case-sensitive.
    issue(&w, "erin@x.com", "Planner", &["--task", "Q3"]).ok_trimmed();
}

#[test]
fn delegate_refuses_a_next_agent_that_issue_would_refuse() {
    let w = world();
    let agent_pub = w.path("agent.pub");
    let parent = issue(&w, "dave", "bot", &["--agent-key", &agent_pub]).ok_trimmed();
    let next = w.keygen("next");
    let signer = w.path("agent");
    for (name, shown, problem) in REFUSED {
        mandate(&[
            "delegate",
            "--token",
            &parent,
            "--signer-key",
            &signer,
            "--to",
            name,
            "--to-key",
            &next,
        ])
        .error(&format!("error: agent name `{shown}` {problem}"));
    }
}

#[test]
fn revoke_and_lift_refuse_what_issue_refuses() {
    let w = world();
    let store = w.path("no-store-needed");
    for (name, shown, problem) in REFUSED {
        for flag in ["--principal", "--agent", "--task"] {
            let kind = flag.trim_start_matches("--");
            mandate(&["revoke", flag, name, "--store", &store])
                .error(&format!("error: invalid {kind} `{shown}`: {problem}"));
        }
        mandate(&["revoke", "--principal", name, "--lift", "--store", &store])
            .error(&format!("error: invalid principal `{shown}`: {problem}"));
    }
    mandate(&["revoke", "--principal", "Erin@x.com", "--store", &store])
        .error("invalid principal `Erin@x.com`: is not canonical");
}

#[test]
fn revoking_a_principal_compares_exactly_as_issue_spelled_it() {
    let w = world();
    let store = w.path("store");
    // `serve --store` makes the store; it must have let go of it before
    // the CLI opens it.
    w.serve_store("store", &[]).terminate();
    let from_store = ["--store", store.as_str()];

    let token = issue(&w, "erin@x.com", "bot", &[]).ok_trimmed();
    assert!(authorize(&w, &token, &from_store).ok().starts_with("ALLOW"));

    // Another case is refused, not silently rewritten, and revokes nothing.
    mandate(&["revoke", "--principal", "Erin@x.com", "--store", &store]).error("use `erin@x.com`");
    assert!(authorize(&w, &token, &from_store).ok().starts_with("ALLOW"));

    // The canonical spelling revokes the token issue minted.
    let run = mandate(&["revoke", "--principal", "erin@x.com", "--store", &store]);
    assert!(
        run.ok().starts_with("revoked principal erin@x.com (seq 1)"),
        "{run}"
    );
    let run = authorize(&w, &token, &from_store);
    run.fails(1, "revoked: principal erin@x.com (revocation #1");
    assert!(run.stdout.starts_with("DENY"), "{run}");

    // Lifting takes the same spelling.
    mandate(&[
        "revoke",
        "--principal",
        "ERIN@x.com",
        "--lift",
        "--store",
        &store,
    ])
    .error("use `erin@x.com`");
    let run = mandate(&[
        "revoke",
        "--principal",
        "erin@x.com",
        "--lift",
        "--store",
        &store,
    ]);
    assert!(
        run.ok().starts_with("lifted principal erin@x.com (seq 2)"),
        "{run}"
    );
    assert!(authorize(&w, &token, &from_store).ok().starts_with("ALLOW"));
}

#[test]
fn terminal_output_escapes_every_non_ascii_character_and_json_keeps_the_name() {
    let w = world();
    let token = issue(
        &w,
        "jos\u{e9}@x.es",
        "\u{43f}\u{43e}\u{43c}\u{43e}\u{449}\u{43d}\u{438}\u{43a}",
        &["--task", "\u{5c71}\u{7530}"],
    )
    .ok_trimmed();
    let run = mandate(&["inspect", "--token", &token, "--root-pub", &w.root_pub()]);
    let text = run.ok();
    assert!(text.contains("principal:  jos\\u{00E9}@x.es\n"), "{run}");
    assert!(
        text.contains("agent:      \\u{043F}\\u{043E}\\u{043C}\\u{043E}\\u{0449}\\u{043D}\\u{0438}\\u{043A} (no key: bearer token)"),
        "{run}"
    );
    assert!(text.contains("task:       \\u{5C71}\\u{7530}\n"), "{run}");

    let run = authorize(&w, &token, &[]);
    let first = run.ok().lines().next().unwrap_or_default();
    assert!(
        first.starts_with("ALLOW: \\u{043F}\\u{043E}\\u{043C}\\u{043E}\\u{0449}\\u{043D}\\u{0438}\\u{043A} acting for jos\\u{00E9}@x.es"),
        "{run}"
    );
    let run = authorize(&w, &token, &["--json"]);
    assert_eq!(run.json()["principal"], "jos\u{e9}@x.es", "{run}");
}

#[test]
fn a_name_with_spaces_or_punctuation_is_quoted_inside_a_sentence() {
    // Found by review: an agent the delegating agent named
    // `sub for alice: analytics read /all` printed as
    // `ALLOW: sub for alice: analytics read /all acting for dave via ...`.
    let w = world();
    let agent_pub = w.path("agent.pub");
    let parent = issue(&w, "dave", "bot", &["--agent-key", &agent_pub]).ok_trimmed();
    let next = w.keygen("next");
    let name = "sub for alice: expenses read /all";
    let child = mandate(&[
        "delegate",
        "--token",
        &parent,
        "--signer-key",
        &w.path("agent"),
        "--to",
        name,
        "--to-key",
        &next,
    ])
    .ok_trimmed();
    let proof = w.pop(
        "next",
        &child,
        &request_flags("expenses", "read", "/reports/1"),
    );
    let run = authorize(&w, &child, &["--pop", &proof]);
    let first = run.ok().lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!(
            "ALLOW: \"{name}\" acting for dave via bot → \"{name}\""
        )),
        "{run}"
    );
    // Plain names stay unquoted, and JSON keeps the name as it is.
    let run = authorize(&w, &child, &["--pop", &proof, "--json"]);
    assert_eq!(run.json()["agent"], name, "{run}");
}
