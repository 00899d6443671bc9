//! Attack tests, black-box through the
//! `mandate` binary: the three-agent chain of scenario 2, then every attack
//! on signed hops, proof of possession and path constraints, each asserting
//! the exit code *and* the reason.
//!
//! Malicious tokens are crafted with biscuit-auth directly, so the tests do
//! not depend on the CLI refusing to build them. Time is injected with `--at`,
//! never slept on. The replay test needs one verifier seeing two requests,
//! which one `mandate authorize` process cannot do, so it drives the verifier
//! library (the same code the binary calls).

#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.

#[path = "common/mod.rs"]
mod common;

use biscuit_auth::builder::BlockBuilder;
use biscuit_auth::UnverifiedBiscuit;

use common::blocks::{append_signed, append_unsigned, hop_fact, private_key};
use common::world::{shift, World};
use common::{request_flags, Run};

const SERVICE: &str = "analytics";

// ---------------------------------------------------------------------------
// Scenario 2's agents: one root, four agents' keys, tokens as text
// ---------------------------------------------------------------------------

/// A world with the keys of the orchestrator, analytics, charting and a
/// thief, each made with `mandate keygen`.
fn world() -> World {
    let w = World::new();
    for name in ["orchestrator", "analytics", "charting", "thief"] {
        w.keygen(name);
    }
    w
}

/// The tokens of scenario 2: minted to the orchestrator, handed to
/// analytics (read-only, `/datasets/q3`), then to charting
/// (`/datasets/q3/revenue`).
struct Chain {
    orchestrator: String,
    analytics: String,
    charting: String,
}

/// Mints a one-hour mandate for bob to the orchestrator (with its key).
fn issue(w: &World, extra: &[&str]) -> String {
    let rights = ["analytics:read", "analytics:write"];
    let extra = [&["--ttl", "1h"], extra].concat();
    w.keyed("bob", "orchestrator", &rights, &extra).token
}

fn chain(w: &World) -> Chain {
    let orchestrator = issue(w, &[]);
    let analytics = w
        .hop(&orchestrator, "orchestrator", "analytics", &SLICE_Q3)
        .ok_trimmed();
    let charting = w
        .hop(&analytics, "analytics", "charting", &SLICE_REVENUE)
        .ok_trimmed();
    Chain {
        orchestrator,
        analytics,
        charting,
    }
}

/// The agent's private key, as biscuit-auth reads it, to craft blocks.
fn private(w: &World, name: &str) -> biscuit_auth::PrivateKey {
    private_key(&w.path(name))
}

/// `mandate authorize --json` of `request`, with `proof` if given.
fn authorize(w: &World, token: &str, request: &[&str], proof: Option<&str>, extra: &[&str]) -> Run {
    let mut flags = vec!["--json"];
    if let Some(proof) = proof {
        flags.extend(["--pop", proof]);
    }
    flags.extend_from_slice(extra);
    w.authorize(token, request, &flags)
}

/// `agent` calls `operation resource` on `token` at `now`, with its own
/// valid proof of possession.
fn call(w: &World, agent: &str, token: &str, operation: &str, resource: &str) -> Run {
    let req = request(operation, resource, &w.now);
    let proof = w.pop(agent, token, &req);
    authorize(w, token, &req, Some(&proof), &[])
}

const SLICE_Q3: [&str; 4] = ["--operation", "read", "--resource-prefix", "/datasets/q3"];
const SLICE_REVENUE: [&str; 2] = ["--resource-prefix", "/datasets/q3/revenue"];
const REVENUE: &str = "/datasets/q3/revenue/jan";

/// The request flags shared by `pop` and `authorize`.
fn request<'a>(operation: &'a str, resource: &'a str, at: &'a str) -> Vec<&'a str> {
    let mut flags = request_flags(SERVICE, operation, resource).to_vec();
    flags.extend(["--at", at]);
    flags
}

// ---------------------------------------------------------------------------
// Done when: the three-agent chain of scenario 2
// ---------------------------------------------------------------------------

#[test]
fn charting_call_with_valid_pop_is_allowed_and_names_the_whole_chain() {
    let w = world();
    let chain = chain(&w);
    let run = call(&w, "charting", &chain.charting, "read", REVENUE);
    let json = run.allowed();
    assert_eq!(
        json["chain"],
        serde_json::json!(["orchestrator", "analytics", "charting"]),
        "{run}"
    );
    assert_eq!(json["agent"], "charting", "{run}");
    assert_eq!(json["principal"], "bob", "{run}");
    assert_eq!(json["resource"], REVENUE, "{run}");

    // The text form names the chain too.
    let req = request("read", REVENUE, &w.now);
    let proof = w.pop("charting", &chain.charting, &req);
    let text = w
        .authorize(&chain.charting, &req, &["--pop", &proof])
        .ok_trimmed();
    assert!(
        text.starts_with("ALLOW: charting acting for bob via orchestrator → analytics → charting"),
        "{text}"
    );
}

#[test]
fn call_outside_the_slice_names_the_failing_check_its_block_and_author() {
    let w = world();
    let chain = chain(&w);

    // Inside analytics' slice but outside charting's: block 2, by analytics.
    let run = call(
        &w,
        "charting",
        &chain.charting,
        "read",
        "/datasets/q3/costs",
    );
    let json = run.denied_because("check #0 of block 2 (by agent analytics) failed");
    assert_eq!(
        json["chain"],
        serde_json::json!(["orchestrator", "analytics", "charting"]),
        "{run}"
    );
    let failed = &json["failed_checks"][0];
    assert_eq!(failed["block"], 2, "{run}");
    assert_eq!(failed["author"], "agent analytics", "{run}");
    let rule = failed["rule"].as_str().unwrap();
    assert!(rule.contains("\"/datasets/q3/revenue/\""), "{run}");

    // A write: the orchestrator's read-only restriction in block 1 fails.
    let run = call(&w, "charting", &chain.charting, "write", REVENUE);
    let json = run.denied_because("of block 1 (by agent orchestrator) failed");
    assert_eq!(json["failed_checks"][0]["block"], 1, "{run}");
    let rule = json["failed_checks"][0]["rule"].as_str().unwrap();
    assert!(rule.contains(r#"operation("read")"#), "{run}");
}

// ---------------------------------------------------------------------------
// Forged and stolen hops
// ---------------------------------------------------------------------------

#[test]
fn forged_hop_signed_by_an_unrelated_key_is_rejected() {
    let w = world();
    let chain = chain(&w);
    // Someone other than analytics signs the analytics → charting hop.
    w.keygen("mallory");
    let forged = append_signed(
        &chain.analytics,
        &private(&w, "mallory"),
        &hop_fact("charting", &w.public("charting")),
    );
    let run = call(&w, "charting", &forged, "read", REVENUE);
    let expected = format!(
        "broken delegation chain: block 2 is signed by {}, not by the holder analytics",
        w.public("mallory")
    );
    let json = run.denied_because(&expected);
    assert_eq!(json["chain"], serde_json::json!([]), "{run}");
}

#[test]
fn thief_appending_an_unsigned_block_naming_itself_is_rejected() {
    let w = world();
    let chain = chain(&w);
    let stolen = append_unsigned(&chain.charting, &hop_fact("thief", &w.public("thief")));
    let run = call(&w, "thief", &stolen, "read", REVENUE);
    run.denied_because(
        "broken delegation chain: block 3 names agent \"thief\" as the next holder \
         without the holder's signature",
    );
}

#[test]
fn unsigned_hop_is_rejected_even_when_the_authority_block_already_uses_the_word_hop() {
    // The verifier skips parsing unsigned blocks whose symbols do not
    // introduce `hop`; a principal named "hop" puts the symbol in the
    // authority block's table, which later unsigned blocks share.
    let w = world();
    let extra = ["--ttl", "1h"];
    let token = w
        .keyed("hop", "orchestrator", &["analytics:read"], &extra)
        .token;
    let stolen = append_unsigned(&token, &hop_fact("thief", &w.public("thief")));
    let run = call(&w, "thief", &stolen, "read", REVENUE);
    run.denied_because(
        "block 1 names agent \"thief\" as the next holder without the holder's signature",
    );
}

#[test]
fn thief_appending_an_unsigned_restriction_cannot_act_and_the_holder_still_can() {
    let w = world();
    let chain = chain(&w);
    let narrowed = append_unsigned(&chain.charting, "check if operation(\"read\");");
    let run = call(&w, "thief", &narrowed, "read", REVENUE);
    run.denied_because("proof of possession does not verify for agent charting");
    // The block only narrowed: charting still holds the authority.
    let json = call(&w, "charting", &narrowed, "read", REVENUE).allowed();
    assert_eq!(json["agent"], "charting");
}

#[test]
fn block_signed_by_any_key_but_the_holders_is_rejected() {
    let w = world();
    let chain = chain(&w);
    // The thief, and the earlier holders who once held this authority.
    for signer in ["thief", "analytics", "orchestrator"] {
        for datalog in [
            hop_fact(signer, &w.public(signer)),
            "check if operation(\"read\");".to_string(),
        ] {
            let token = append_signed(&chain.charting, &private(&w, signer), &datalog);
            let run = call(&w, signer, &token, "read", REVENUE);
            let expected = format!(
                "broken delegation chain: block 3 is signed by {}, not by the holder charting",
                w.public(signer)
            );
            run.denied_because(&expected);
        }
    }
}

#[test]
fn delegate_refuses_a_signer_key_that_is_not_the_holders() {
    let w = world();
    let chain = chain(&w);
    for signer in ["thief", "analytics"] {
        let run = w.hop(&chain.charting, signer, "thief", &[]);
        run.error(&format!(
            "the signer key {} is not the key of the current holder charting ({})",
            w.public(signer),
            w.public("charting")
        ));
    }
}

// ---------------------------------------------------------------------------
// Hops re-targeted to another agent
// ---------------------------------------------------------------------------

#[test]
fn token_handed_to_analytics_cannot_be_used_by_charting() {
    let w = world();
    let chain = chain(&w);
    // orchestrator → analytics; charting presents it with its own key.
    let run = call(&w, "charting", &chain.analytics, "read", REVENUE);
    let json = run.denied_because("proof of possession does not verify for agent analytics");
    assert_eq!(json["agent"], "analytics", "{run}");
}

#[test]
fn hop_edited_to_name_another_key_fails_the_signature() {
    let w = world();
    let chain = chain(&w);
    // Swap the key the signed hop names for the thief's (same length).
    let raw = |name: &str| hex::decode(w.public(name).trim_start_matches("ed25519/")).unwrap();
    let mut bytes = UnverifiedBiscuit::from_base64(&chain.analytics)
        .unwrap()
        .to_vec()
        .unwrap();
    let (from, to) = (raw("analytics"), raw("thief"));
    let at = bytes
        .windows(from.len())
        .position(|w| w == &from[..])
        .expect("the hop names analytics' key");
    bytes[at..at + to.len()].copy_from_slice(&to);
    let edited = UnverifiedBiscuit::from(&bytes)
        .unwrap()
        .to_base64()
        .unwrap();

    let run = call(&w, "thief", &edited, "read", REVENUE);
    run.error("invalid token signature: the signature did not match");
}

#[test]
fn hop_grafted_onto_another_mandate_fails_the_signature() {
    let w = world();
    // Orchestrator signs a hop to analytics on a narrow mandate; analytics
    // moves the signed block onto a broader mandate of the orchestrator.
    let narrow = issue(&w, &["--operation", "read"]);
    let broad = issue(&w, &[]);
    let block = UnverifiedBiscuit::from_base64(&narrow)
        .unwrap()
        .third_party_request()
        .unwrap()
        .create_block(
            &private(&w, "orchestrator"),
            BlockBuilder::new()
                .code(hop_fact("analytics", &w.public("analytics")))
                .unwrap(),
        )
        .unwrap()
        .serialize()
        .unwrap();
    let grafted = UnverifiedBiscuit::from_base64(&broad)
        .unwrap()
        .append_third_party(&block)
        .unwrap()
        .to_base64()
        .unwrap();
    let run = call(&w, "analytics", &grafted, "write", REVENUE);
    run.error("invalid token signature: the signature did not match");
}

// ---------------------------------------------------------------------------
// Proof of possession
// ---------------------------------------------------------------------------

#[test]
fn pop_from_the_wrong_key_is_rejected() {
    let w = world();
    let chain = chain(&w);
    let req = request("read", REVENUE, &w.now);
    for signer in ["thief", "analytics", "orchestrator"] {
        let proof = w.pop(signer, &chain.charting, &req);
        let run = authorize(&w, &chain.charting, &req, Some(&proof), &[]);
        run.denied_because("proof of possession does not verify for agent charting");
    }
}

#[test]
fn pop_for_a_different_request_is_rejected() {
    let w = world();
    let chain = chain(&w);
    let now = w.now.as_str();
    let signed = [
        request("read", REVENUE, now),
        [request("read", REVENUE, now), vec!["--attr", "rows=10"]].concat(),
    ];
    let sent = [
        request("read", "/datasets/q3/revenue/feb", now),
        [request("read", REVENUE, now), vec!["--attr", "rows=100000"]].concat(),
    ];
    for (signed, sent) in signed.iter().zip(&sent) {
        let proof = w.pop("charting", &chain.charting, signed);
        // The proof is good for the request it was made for...
        authorize(&w, &chain.charting, signed, Some(&proof), &[]).allowed();
        // ...and for no other.
        let run = authorize(&w, &chain.charting, sent, Some(&proof), &[]);
        run.denied_because("proof of possession does not verify for agent charting");
    }

    // Nor for another token: the same chain narrowed by one more block.
    let proof = w.pop("charting", &chain.charting, &request("read", REVENUE, now));
    let narrowed = append_unsigned(&chain.charting, "check if operation(\"read\");");
    let run = authorize(
        &w,
        &narrowed,
        &request("read", REVENUE, now),
        Some(&proof),
        &[],
    );
    run.denied_because("proof of possession does not verify for agent charting");
}

#[test]
fn pop_outside_the_window_is_rejected() {
    let w = world();
    let chain = chain(&w);
    let req = request("read", REVENUE, &w.now);
    for offset in [-40, 40] {
        let signed_at = w.at(offset);
        let proof = w.pop(
            "charting",
            &chain.charting,
            &request("read", REVENUE, &signed_at),
        );
        let run = authorize(&w, &chain.charting, &req, Some(&proof), &[]);
        run.denied_because(
            "proof of possession is 40000 ms from the request time, outside the 30000 ms window",
        );
        // A verifier configured with a wider window accepts it.
        authorize(
            &w,
            &chain.charting,
            &req,
            Some(&proof),
            &["--pop-window", "60s"],
        )
        .allowed();
    }
}

/// `mandate authorize` decides one request per process, so a replay can only
/// be seen by one verifier deciding two requests: this drives the verifier
/// library the binary calls, on tokens and a proof made by the binary.
#[test]
fn replayed_pop_is_rejected_by_the_same_verifier_and_its_clones() {
    let w = world();
    let chain = chain(&w);
    let proof = w.pop(
        "charting",
        &chain.charting,
        &request("read", REVENUE, &w.now),
    );

    let root = w.root_pub().parse::<mandate_core::PublicKey>().unwrap();
    let verifier = mandate_verifier::Verifier::builder()
        .root_keys(mandate_core::KeySet::single(root))
        .build()
        .unwrap();
    let request = mandate_core::Request::new(
        SERVICE,
        "read",
        mandate_core::ResourcePath::parse(REVENUE).unwrap(),
        humantime::parse_rfc3339(&w.now).unwrap(),
    )
    .with_proof(mandate_core::Proof::parse(&proof).unwrap());

    let first = verifier.authorize(&chain.charting, &request).unwrap();
    assert!(first.allowed, "{:?}", first.reason);
    for replay in [verifier.clone(), verifier] {
        let again = replay.authorize(&chain.charting, &request).unwrap();
        assert!(!again.allowed);
        assert_eq!(
            again.reason.to_string(),
            "proof of possession replayed (nonce already seen)"
        );
    }
}

#[test]
fn token_with_agent_keys_without_pop_is_denied() {
    let w = world();
    let chain = chain(&w);
    let req = request("read", REVENUE, &w.now);
    for (token, holder) in [
        (&chain.orchestrator, "orchestrator"),
        (&chain.analytics, "analytics"),
        (&chain.charting, "charting"),
    ] {
        let run = authorize(&w, token, &req, None, &[]);
        run.denied_because(&format!("proof of possession required from agent {holder}"));
        // Widening the window is no way around it.
        let run = authorize(&w, token, &req, None, &["--pop-window", "10m"]);
        run.denied_because(&format!("proof of possession required from agent {holder}"));
    }
}

#[test]
fn bearer_token_is_refused_by_a_verifier_that_requires_pop() {
    let w = world();
    let extra = ["--ttl", "1h"];
    let bearer = w
        .bearer("bob", "orchestrator", &["analytics:read"], &extra)
        .token;
    let req = request("read", REVENUE, &w.now);
    let run = authorize(&w, &bearer, &req, None, &["--require-pop"]);
    run.denied_because("bearer token refused: this verifier requires proof of possession");
    // Without --require-pop the issuer's choice of a bearer token stands.
    authorize(&w, &bearer, &req, None, &[]).allowed();
}

// ---------------------------------------------------------------------------
// Path constraints, depth, expiry
// ---------------------------------------------------------------------------

#[test]
fn traversal_attempts_on_a_path_prefix_are_refused() {
    let w = world();
    let chain = chain(&w);
    // analytics holds `/datasets/q3`; a valid proof for a legitimate call
    // shows the refusal is about the resource, not the proof.
    let proof = w.pop(
        "analytics",
        &chain.analytics,
        &request("read", "/datasets/q3/x", &w.now),
    );
    for (resource, why) in [
        ("/datasets/q3/../secret", "`.` or `..` segment"),
        ("/datasets/q3/./x", "`.` or `..` segment"),
        ("/datasets/q3//x", "empty path segment (`//`)"),
        ("/datasets/%2e%2e/x", "percent-encoding is not accepted"),
        (
            "/datasets/q3/%2e%2e/secret",
            "percent-encoding is not accepted",
        ),
    ] {
        let req = request("read", resource, &w.now);
        let run = authorize(&w, &chain.analytics, &req, Some(&proof), &[]);
        run.error(&format!("resource `{resource}` refused: {why}"));
    }

    // A prefix that only matches as a string is denied by the prefix check.
    let run = call(
        &w,
        "analytics",
        &chain.analytics,
        "read",
        "/datasets/q3-old",
    );
    let json = run.denied_because("of block 1 (by agent orchestrator) failed");
    let rule = json["failed_checks"][0]["rule"].as_str().unwrap();
    assert!(rule.contains("\"/datasets/q3/\""), "{run}");
}

#[test]
fn depth_beyond_max_depth_is_refused_by_delegate_and_denied_by_the_verifier() {
    let w = world();
    // The limit in the authority block (by the issuer), then in a hop.
    for (issue_flags, hop_flags, block, author) in [
        (&["--max-depth", "1"][..], &[][..], 0, "the issuer"),
        (&[][..], &["--max-depth", "0"][..], 1, "agent orchestrator"),
    ] {
        let mandate = issue(&w, issue_flags);
        let analytics = w
            .hop(&mandate, "orchestrator", "analytics", hop_flags)
            .ok_trimmed();
        call(&w, "analytics", &analytics, "read", REVENUE).allowed();

        // The CLI refuses the second hop...
        let run = w.hop(&analytics, "analytics", "charting", &[]);
        run.error("delegation depth 2 is not allowed by the parent token");

        // ...and a hop crafted without the CLI is denied by the depth check.
        let deep = append_signed(
            &analytics,
            &private(&w, "analytics"),
            &hop_fact("charting", &w.public("charting")),
        );
        let run = call(&w, "charting", &deep, "read", REVENUE);
        let json = run.denied_because(&format!("(by {author}) failed"));
        assert_eq!(
            json["chain"],
            serde_json::json!(["orchestrator", "analytics", "charting"]),
            "{run}"
        );
        let failed = &json["failed_checks"][0];
        assert_eq!(failed["block"], block, "{run}");
        let rule = failed["rule"].as_str().unwrap();
        assert!(rule.contains("delegation_depth($d), $d <= 1"), "{run}");
    }
}

#[test]
fn expired_hop_inside_a_valid_parent_is_denied_naming_its_time_check() {
    let w = world();
    let mandate = issue(&w, &[]); // lives one hour
    let analytics = w
        .hop(&mandate, "orchestrator", "analytics", &["--ttl", "1m"])
        .ok_trimmed();
    let call_at = |at: &str| {
        let req = request("read", REVENUE, at);
        let proof = w.pop("analytics", &analytics, &req);
        authorize(&w, &analytics, &req, Some(&proof), &[])
    };
    // Times read from the hop's own expiry check, not the clock: however
    // long the machine took to make the hop, inside is inside and after is
    // after.
    let json = w.inspect_json(&analytics);
    let hop = json["blocks"][1]["source"].as_str().unwrap();
    let expires = hop
        .split("check if time($t), $t <= ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no expiry check in the hop: {hop}"))
        .to_owned();
    call_at(&shift(&expires, -30)).allowed();
    let run = call_at(&shift(&expires, 60));
    let json = run.denied_because("check #0 of block 1 (by agent orchestrator) failed");
    let rule = json["failed_checks"][0]["rule"].as_str().unwrap();
    assert!(rule.starts_with("check if time($t), $t <= "), "{run}");
}
