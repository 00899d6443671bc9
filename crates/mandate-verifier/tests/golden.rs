//! Golden vectors: committed tokens with their expected inspection and
//! decisions, in `tests/golden/` at the repository root.
//!
//! A normal run loads the committed tokens and the committed root *public*
//! key and asserts that inspecting them and deciding a fixed list of requests
//! at fixed times gives exactly `expected.json`; it also mints the same
//! tokens afresh and asserts that today's code writes the same Datalog. A
//! change in the vocabulary, the token encoding, the proof-of-possession
//! format or a decision's reason therefore shows up as a diff here.
//!
//! Two ways to accept an intended change, both followed by reviewing the
//! diff like code:
//! - `MANDATE_REGEN_GOLDEN=expected cargo test -p mandate-verifier --test
//!   golden` rewrites only `expected.json` from the committed tokens and
//!   proofs, so the diff shows exactly what reading or deciding now does
//!   differently;
//! - `MANDATE_REGEN_GOLDEN=1 ...` re-mints everything (needed when minting
//!   or delegation writes different Datalog): it generates a fresh root key
//!   and agent keys, keeps only their public halves (and the proofs of
//!   possession the agents signed, which are public too), and throws the
//!   secrets away. Every id and signature changes.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use mandate_core::{
    delegate, delegate_signed, inspect, KeySet, NextAgent, Proof, PublicKey, Request, ResourcePath,
    Restrictions, RootKey, SecretKey, UnverifiedMandate,
};
use mandate_issuer::MintRequest;
use mandate_verifier::{Policy, Verifier};
use serde_json::{json, Value};

const REGEN_ENV: &str = "MANDATE_REGEN_GOLDEN";
const ROOT_KEY_ID: u32 = 1;
const MINTED_AT: &str = "2026-01-01T00:00:00Z";
const INSPECTED_AT: &str = "2026-01-01T01:00:00Z";
const TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// One golden token: how it is minted and narrowed, and what is asked of it.
struct Spec {
    name: &'static str,
    principal: &'static str,
    agent: &'static str,
    /// A bearer mandate: the first agent has no key and requests carry no proof.
    bearer: bool,
    task: &'static str,
    rights: &'static [&'static str],
    /// Restrictions written into the authority block.
    at_mint: &'static [&'static str],
    /// Each hop: `Some(agent)` for a hop signed by the holder handing the
    /// authority to `agent`, `None` for a plain restriction block.
    hops: &'static [(Option<&'static str>, &'static [&'static str])],
    /// The policy file in `datalog/policies/` the requests are decided by.
    policy: &'static str,
    /// (label, `SERVICE OPERATION RESOURCE [KEY=VALUE]...`, RFC 3339 time)
    requests: &'static [(&'static str, &'static str, &'static str)],
}

const SPECS: &[Spec] = &[
    // Scenario 1: one plain restriction block.
    Spec {
        name: "expense",
        principal: "alice",
        agent: "expense-agent",
        bearer: false,
        task: "expense-report-q3",
        rights: &["expenses:read", "expenses:submit"],
        at_mint: &[],
        hops: &[(
            None,
            &[
                "operation=submit",
                "attr-max=amount=499",
                "resource-prefix=/reports/alice",
            ],
        )],
        policy: "default.datalog",
        requests: &[
            (
                "submit under the bound",
                "expenses submit /reports/alice/r1 amount=120",
                "2026-01-01T01:00:00Z",
            ),
            (
                "submit over the bound",
                "expenses submit /reports/alice/r1 amount=500",
                "2026-01-01T01:00:00Z",
            ),
            (
                "read, removed by the block",
                "expenses read /reports/alice/r1",
                "2026-01-01T01:00:00Z",
            ),
            (
                "another resource",
                "expenses submit /reports/bob/r1 amount=1",
                "2026-01-01T01:00:00Z",
            ),
            (
                "after expiry",
                "expenses submit /reports/alice/r1 amount=120",
                "2026-01-31T00:00:01Z",
            ),
        ],
    },
    // Scenario 2: two signed hops, each narrower.
    Spec {
        name: "analytics",
        principal: "bob",
        agent: "orchestrator",
        bearer: false,
        task: "quarterly-analytics",
        rights: &["datasets:read", "datasets:write", "charts:render"],
        at_mint: &["max-depth=2"],
        hops: &[
            (
                Some("analytics-agent"),
                &["operation=read", "resource-prefix=/datasets/q3"],
            ),
            (
                Some("charting-agent"),
                &["resource-prefix=/datasets/q3/revenue", "ttl=1d"],
            ),
        ],
        policy: "default.datalog",
        requests: &[
            (
                "inside the slice",
                "datasets read /datasets/q3/revenue/eu",
                "2026-01-01T01:00:00Z",
            ),
            (
                "outside the slice",
                "datasets read /datasets/q3/costs",
                "2026-01-01T01:00:00Z",
            ),
            (
                "write, removed by the first hop",
                "datasets write /datasets/q3/revenue",
                "2026-01-01T01:00:00Z",
            ),
            (
                "after the second hop's expiry",
                "datasets read /datasets/q3/revenue",
                "2026-01-02T00:00:01Z",
            ),
        ],
    },
    // Scenario 3: a bearer mandate with restrictions from the start.
    Spec {
        name: "refund",
        principal: "carol",
        agent: "support-agent",
        bearer: true,
        task: "ticket-4711",
        rights: &["refunds:refund", "refunds:read"],
        at_mint: &["attr-max=amount=100", "attr-in=method=card,voucher"],
        hops: &[],
        policy: "refunds.datalog",
        requests: &[
            (
                "refund within bounds",
                "refunds refund /orders/9 amount=100 method=card tier=gold",
                "2026-01-01T01:00:00Z",
            ),
            (
                "refund over the amount",
                "refunds refund /orders/9 amount=101 method=card tier=gold",
                "2026-01-01T01:00:00Z",
            ),
            (
                "refund without a tier",
                "refunds refund /orders/9 amount=10 method=voucher",
                "2026-01-01T01:00:00Z",
            ),
            ("read", "refunds read /orders/9", "2026-01-01T01:00:00Z"),
        ],
    },
];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden")
}

fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datalog/policies")
}

fn time(rfc3339: &str) -> SystemTime {
    humantime::parse_rfc3339(rfc3339).unwrap()
}

fn restrictions(args: &[&str]) -> Restrictions {
    let mut r = Restrictions::default();
    for arg in args {
        let (flag, value) = arg.split_once('=').unwrap();
        match flag {
            "operation" => r.operations.push(value.into()),
            "resource-prefix" => r
                .resource_prefixes
                .push(ResourcePath::parse(value).unwrap()),
            "attr-max" => r
                .attr_max
                .push(Restrictions::parse_attr_max(value).unwrap()),
            "attr-in" => r.attr_in.push(Restrictions::parse_attr_in(value).unwrap()),
            "ttl" => {
                r.expires_at = Some(time(MINTED_AT) + humantime::parse_duration(value).unwrap())
            }
            "max-depth" => r.max_depth = Some(value.parse().unwrap()),
            other => panic!("unknown restriction `{other}`"),
        }
    }
    r
}

fn request(text: &str, at: &str) -> Request {
    let mut words = text.split_whitespace();
    let (service, operation, resource) = (
        words.next().unwrap(),
        words.next().unwrap(),
        words.next().unwrap(),
    );
    let mut request = Request::new(
        service,
        operation,
        ResourcePath::parse(resource).unwrap(),
        time(at),
    );
    for attr in words {
        request = request.with_attr_arg(attr).unwrap();
    }
    request
}

/// Mints and narrows `spec` under `root`; returns the token and the secret
/// key of its final holder (`None` for a bearer token).
fn build(spec: &Spec, root: &RootKey) -> (UnverifiedMandate, Option<SecretKey>) {
    let mut holder = (!spec.bearer).then(SecretKey::generate);
    let mandate = mandate_issuer::mint(
        root,
        &MintRequest {
            principal: spec.principal.into(),
            agent: spec.agent.into(),
            agent_key: holder.as_ref().map(SecretKey::public),
            task: Some(spec.task.into()),
            rights: spec.rights.iter().map(|r| r.parse().unwrap()).collect(),
            ttl: TTL,
            restrictions: restrictions(spec.at_mint),
            now: time(MINTED_AT),
        },
    )
    .unwrap();
    let mut token = mandate.to_unverified().unwrap();
    for (to, args) in spec.hops {
        let narrowed = restrictions(args);
        token = match to {
            Some(name) => {
                let signer = holder.as_ref().expect("a signed hop needs a keyed holder");
                let next = SecretKey::generate();
                let hop = NextAgent {
                    name: (*name).into(),
                    key: next.public(),
                };
                let token = delegate_signed(&token, signer, Some(&hop), &narrowed).unwrap();
                holder = Some(next);
                token
            }
            None => delegate(&token, &narrowed).unwrap(),
        };
    }
    (token, holder)
}

/// Everything the vectors assert about one token, as JSON. `proof` supplies
/// the proof of possession for a request label (`None`: the request carries
/// none).
fn describe(
    spec: &Spec,
    token: &UnverifiedMandate,
    root: &PublicKey,
    mut proof: impl FnMut(&str, &Request, &str) -> Option<Proof>,
) -> Value {
    let mut keys = KeySet::new();
    keys.insert(Some(ROOT_KEY_ID), *root);
    let mut inspection =
        serde_json::to_value(inspect(token, Some(&keys), time(INSPECTED_AT)).unwrap()).unwrap();
    // Depends on the inspection time only; kept out so the vectors state
    // facts about the token.
    inspection
        .as_object_mut()
        .unwrap()
        .remove("expires_in_seconds");

    let text = token.to_base64().unwrap();
    let token_id = token.digest_hex();
    let policy = Policy::from_file(&policies_dir().join(spec.policy)).unwrap();
    let verifier = Verifier::builder()
        .root_keys(keys)
        .policy(policy)
        .build()
        .unwrap();
    let requests: Vec<Value> = spec
        .requests
        .iter()
        .map(|(label, text_request, at)| {
            let mut request = request(text_request, at);
            let proof = proof(label, &request, &token_id);
            if let Some(proof) = &proof {
                request = request.with_proof(proof.clone());
            }
            let outcome = match verifier.authorize(&text, &request) {
                Ok(decision) => serde_json::to_value(decision).unwrap(),
                Err(e) => json!({ "error": e.to_string() }),
            };
            json!({
                "label": label,
                "request": text_request,
                "at": at,
                "proof": proof.map(|p| p.to_text()),
                "outcome": outcome,
            })
        })
        .collect();
    json!({
        "name": spec.name,
        "file": format!("{}.token", spec.name),
        "policy": spec.policy,
        "inspection": inspection,
        "requests": requests,
    })
}

fn document(root: &PublicKey, tokens: Vec<Value>) -> Value {
    json!({
        "generated_by": format!("{REGEN_ENV}=1 cargo test -p mandate-verifier --test golden"),
        "root_public_key": root.to_string(),
        "root_key_id": ROOT_KEY_ID,
        "minted_at": MINTED_AT,
        "inspected_at": INSPECTED_AT,
        "tokens": tokens,
    })
}

/// Writes fresh vectors. The secret keys live only in this function.
fn regenerate() {
    let dir = golden_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "token") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let root = RootKey {
        secret: SecretKey::generate(),
        key_id: Some(ROOT_KEY_ID),
    };
    let public = root.secret.public();
    let mut tokens = Vec::new();
    for spec in SPECS {
        let (token, holder) = build(spec, &root);
        let text = token.to_base64().unwrap();
        std::fs::write(
            dir.join(format!("{}.token", spec.name)),
            format!("{text}\n"),
        )
        .unwrap();
        tokens.push(describe(spec, &token, &public, |_, request, token_id| {
            holder
                .as_ref()
                .map(|key| Proof::sign(key, token_id, request, request.time))
        }));
    }
    std::fs::write(dir.join("root.pub"), format!("{public}\n")).unwrap();
    write_expected(&document(&public, tokens));
}

fn write_expected(document: &Value) {
    let mut json = serde_json::to_string_pretty(document).unwrap();
    json.push('\n');
    std::fs::write(golden_dir().join("expected.json"), json).unwrap();
}

struct Committed {
    root: PublicKey,
    expected: Value,
    tokens: BTreeMap<String, UnverifiedMandate>,
}

fn committed() -> Committed {
    // Every test reads the vectors through here, so a full regeneration
    // happens once, before any of them reads a file.
    static REGENERATED: std::sync::Once = std::sync::Once::new();
    if std::env::var(REGEN_ENV).as_deref() == Ok("1") {
        REGENERATED.call_once(regenerate);
    }
    let dir = golden_dir();
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| {
            panic!("tests/golden/{name}: {e}; run {REGEN_ENV}=1 cargo test -p mandate-verifier --test golden")
        })
    };
    let root: PublicKey = read("root.pub").trim().parse().unwrap();
    let expected: Value = serde_json::from_str(&read("expected.json")).unwrap();
    let tokens = SPECS
        .iter()
        .map(|spec| {
            let text = read(&format!("{}.token", spec.name));
            (
                spec.name.to_string(),
                UnverifiedMandate::from_base64(&text).unwrap(),
            )
        })
        .collect();
    Committed {
        root,
        expected,
        tokens,
    }
}

/// Lists every difference between two JSON values as `path: expected ≠ actual`.
fn diff(path: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for key in e.keys().chain(a.keys().filter(|k| !e.contains_key(*k))) {
                let (e, a) = (
                    e.get(key).unwrap_or(&Value::Null),
                    a.get(key).unwrap_or(&Value::Null),
                );
                diff(&format!("{path}.{key}"), e, a, out);
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (e, a)) in e.iter().zip(a).enumerate() {
                diff(&format!("{path}[{i}]"), e, a, out);
            }
        }
        (e, a) if e != a => out.push(format!("{path}:\n    expected {e}\n    actual   {a}")),
        _ => {}
    }
}

fn assert_same(expected: &Value, actual: &Value) {
    let mut differences = Vec::new();
    diff("$", expected, actual, &mut differences);
    assert!(
        differences.is_empty(),
        "golden vectors differ ({} places); if the change is intended, run \
         {REGEN_ENV}=expected cargo test -p mandate-verifier --test golden \
         and review the diff (see tests/golden/README.md):\n{}",
        differences.len(),
        differences.join("\n")
    );
}

/// The committed tokens still inspect and decide exactly as recorded.
#[test]
fn committed_tokens_inspect_and_decide_as_recorded() {
    let committed = committed();
    let recorded_proofs: BTreeMap<(String, String), String> = committed.expected["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| {
            t["requests"].as_array().unwrap().iter().filter_map(|r| {
                Some((
                    (
                        t["name"].as_str()?.to_string(),
                        r["label"].as_str()?.to_string(),
                    ),
                    r["proof"].as_str()?.to_string(),
                ))
            })
        })
        .collect();
    let tokens = SPECS
        .iter()
        .map(|spec| {
            describe(
                spec,
                &committed.tokens[spec.name],
                &committed.root,
                |label, _, _| {
                    recorded_proofs
                        .get(&(spec.name.to_string(), label.to_string()))
                        .map(|text| Proof::parse(text).unwrap())
                },
            )
        })
        .collect();
    let actual = document(&committed.root, tokens);
    if std::env::var(REGEN_ENV).as_deref() == Ok("expected") {
        write_expected(&actual);
        return;
    }
    assert_same(&committed.expected, &actual);
}

/// Replaces every `ed25519/<hex>` key by `<key N>`, numbered by first
/// appearance, so sources minted under different keys compare equal.
fn normalise_keys(sources: &[String]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    sources
        .iter()
        .map(|source| {
            let mut out = String::new();
            let mut rest = source.as_str();
            // Keys print as `ed25519/<hex>` (reports) or `hex:<hex>` (a key
            // fact's bytes in block sources).
            let next = |rest: &str| {
                [rest.find("ed25519/"), rest.find("hex:")]
                    .into_iter()
                    .flatten()
                    .min()
            };
            while let Some(at) = next(rest) {
                out.push_str(&rest[..at]);
                let prefix = if rest[at..].starts_with("hex:") { 4 } else { 8 };
                let len = rest[at + prefix..]
                    .find(|c: char| !c.is_ascii_hexdigit())
                    .unwrap_or(rest.len() - at - prefix);
                let key = rest[at..at + prefix + len].to_string();
                let n = match seen.iter().position(|k| *k == key) {
                    Some(n) => n,
                    None => {
                        seen.push(key);
                        seen.len() - 1
                    }
                };
                out.push_str(&format!("<key {n}>"));
                rest = &rest[at + prefix + len..];
            }
            out.push_str(rest);
            out
        })
        .collect()
}

fn block_sources(token: &UnverifiedMandate) -> Vec<String> {
    (0..token.block_count())
        .map(|i| token.block_source(i).unwrap())
        .collect()
}

/// Minting and narrowing today writes the same Datalog as the committed
/// tokens (up to the keys, which are fresh on every run).
#[test]
fn minting_today_writes_the_recorded_datalog() {
    let committed = committed();
    let root = RootKey {
        secret: SecretKey::generate(),
        key_id: Some(ROOT_KEY_ID),
    };
    let mut differences = Vec::new();
    for spec in SPECS {
        let (fresh, _) = build(spec, &root);
        let recorded = normalise_keys(&block_sources(&committed.tokens[spec.name]));
        let today = normalise_keys(&block_sources(&fresh));
        diff(
            &format!("$.{}.blocks", spec.name),
            &json!(recorded),
            &json!(today),
            &mut differences,
        );
    }
    assert!(
        differences.is_empty(),
        "today's mint/delegate write different Datalog than the golden tokens; if intended, run \
         {REGEN_ENV}=1 cargo test -p mandate-verifier --test golden and review the diff:\n{}",
        differences.join("\n")
    );
}

/// The committed key is public, and the tokens verify only under it.
#[test]
fn only_public_material_is_committed() {
    for entry in std::fs::read_dir(golden_dir()).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            !text.contains("ed25519-private/"),
            "{} looks like it holds a private key",
            path.display()
        );
    }
    let committed = committed();
    let other = KeySet::single(SecretKey::generate().public());
    for (name, token) in &committed.tokens {
        assert!(
            token.verify(&other).is_err(),
            "{name} verifies under a random root"
        );
        assert!(
            token.verify(&KeySet::single(committed.root)).is_ok(),
            "{name} does not verify under root.pub"
        );
    }
}
