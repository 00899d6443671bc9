//! Writes the committed seed corpora under `corpus/<target>/`: valid tokens
//! of the fixed fixture, and the attack findings' shapes (deep parens,
//! escaped quotes, the comment pair, the costly regex, deep closures and
//! operator chains), in each target's input format. Run from `fuzz/` with
//! `cargo +nightly run --example seeds`; it overwrites only its own files.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use mandate_core::{Proof, Request, ResourcePath, Restrictions, UnverifiedMandate};
use mandate_fuzz::block_grammar::{finding_block, request_time, Appended};
use mandate_fuzz::harness;
use mandate_issuer::{mint, MintRequest};

const FINDINGS: &[(&str, u8, u16)] = &[
    ("deep-parens", 0, 400),
    ("escaped-quote", 1, 0),
    ("comment-pair", 2, 0),
    ("regex", 3, 200),
    ("deep-closures", 4, 300),
    ("deep-and-chain", 5, 400),
];

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn authorize_body(token: &str) -> Vec<u8> {
    let request = Request::new(
        "payments",
        "transfer",
        ResourcePath::parse("/acct/1").unwrap(),
        request_time(),
    );
    let digest = UnverifiedMandate::from_base64(token).unwrap().digest_hex();
    let pop = Proof::sign(&harness().agent, &digest, &request, request_time());
    let mut body = vec![0u8];
    body.extend(
        serde_json::to_vec(&serde_json::json!({
            "token": token,
            "service": "payments",
            "operation": "transfer",
            "resource": "/acct/1",
            "attrs": {"amount": 10, "currency": "EUR"},
            "pop": pop.to_text(),
        }))
        .unwrap(),
    );
    body
}

fn main() {
    let h = harness();
    let parent = h.parent.to_base64().unwrap();
    write("token_authorize", "parent.txt", parent.as_bytes());
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(parent.as_bytes())
        .unwrap();
    write("token_authorize", "parent.bin", &raw);
    write("http_bodies", "authorize-parent", &authorize_body(&parent));

    for &(name, which, size) in FINDINGS {
        for signed in [false, true] {
            let tag = if signed { "signed" } else { "unsigned" };
            let mut seed = vec![0xF5, which];
            seed.extend(size.to_le_bytes());
            seed.push(u8::from(signed));
            write("appended_block", &format!("{name}-{tag}"), &seed);
            let appended = Appended {
                block: finding_block(which, size),
                signed,
            };
            if let Some(token) = h.append(&appended) {
                write(
                    "token_authorize",
                    &format!("{name}-{tag}.txt"),
                    token.as_bytes(),
                );
                if !signed {
                    write(
                        "http_bodies",
                        &format!("authorize-{name}"),
                        &authorize_body(&token),
                    );
                }
            }
        }
    }

    for (kind, name, n) in [
        (0u8, "deep-parens", 400u16),
        (1, "deep-negation", 400),
        (2, "escaped-quote", 0),
        (3, "regex", 200),
        (4, "comment-pair", 0),
    ] {
        let mut seed = vec![0xF5, kind];
        seed.extend(n.to_le_bytes());
        write("delegate_flags", name, &seed);
    }

    // The spoof: an issue-time check whose literal holds an escaped quote.
    let spoof = mint(
        &h.root,
        &MintRequest {
            principal: "bob@example.com".into(),
            agent: "bob-bot".into(),
            agent_key: Some(h.agent.public()),
            task: Some("t".into()),
            rights: vec!["payments:transfer".parse().unwrap()],
            ttl: Duration::from_secs(3_600),
            restrictions: Restrictions {
                checks: vec![
                    r#"check if operation($o), $o != "x\"); principal(\"alice@example.com"#
                        .to_string()
                        + r#"\"); task(\"expenses-q3\"); f(\"""#,
                ],
                ..Restrictions::default()
            },
            now: request_time() - Duration::from_secs(60),
        },
    );
    if let Ok(spoof) = spoof {
        let token = spoof.to_base64().unwrap();
        write(
            "token_authorize",
            "issued-check-escaped-quote.txt",
            token.as_bytes(),
        );
        write(
            "http_bodies",
            "authorize-issued-check-escaped-quote",
            &authorize_body(&token),
        );
    }

    let revoke =
        serde_json::json!({"kind": "principal", "value": "alice@example.com", "reason": "left"});
    let mut write_body = vec![1u8];
    write_body.extend(parent.as_bytes());
    write_body.push(b'\n');
    write_body.extend(serde_json::to_vec(&revoke).unwrap());
    write("http_bodies", "registry-revoke", &write_body);
    let mut lift = write_body.clone();
    lift[0] = 2;
    write("http_bodies", "registry-lift", &lift);
    write("http_bodies", "registry-list", b"\x03after=0&limit=10");
    write("http_bodies", "authorize-empty-object", b"\x00{}");
    write(
        "http_bodies",
        "authorize-text-plain",
        b"\x04{\"token\":\"\"}",
    );
    println!("seeds written under corpus/");
}
