//! Arbitrary strings for every `mandate delegate` flag (operations, services,
//! resource prefixes and resources, attribute bounds, URL hosts, raw
//! `--check` text, `--to` names, `--ttl`, `--max-depth`), parsed with the
//! same public parsers the CLI uses, then `delegate` / `delegate_signed` on
//! alice's mandate. Never panics; any refusal is an `Err`. When delegation
//! succeeds, the verifier still reports alice and her task, and never allows
//! what the parent denied, on one of the fixed requests chosen by
//! [`mandate_fuzz::pick`] over the input (all of them with
//! `MANDATE_FUZZ_FULL=1`).
//!
//! The parent token, keys and verifier are built once; each input compiles
//! its restrictions, delegates once and decides once, on one long-lived
//! 2 MiB thread.
//!
//! Input: bytes decoded with `arbitrary` into `Flags`, except that an input
//! starting with [`PRESET`] is `[PRESET, kind, n_lo, n_hi]`: a single
//! `--check` of the findings' shapes (`CheckText` variant `kind`, size `n`),
//! so the committed seeds say what they are.

#![no_main]

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mandate_core::{
    delegate, delegate_signed, NextAgent, ResourcePath, Restrictions, UnverifiedMandate,
};
use mandate_fuzz::block_grammar::{request_time, HOSTILE_STRINGS, REQUESTS};
use mandate_fuzz::{full_check, harness, next_agent_key, on_server_stack, pick};

#[derive(Debug, Arbitrary)]
enum CheckText {
    /// Any text.
    Raw(String),
    /// A check with a string literal holding a hostile string, escaped the
    /// way Datalog source escapes it.
    Literal(u8),
    /// `check if ((((true))))`, nested `n` deep.
    DeepParens(u16),
    /// `check if !!!!true`-style, `n` deep.
    DeepNegation(u16),
    /// `"a".matches(pattern)` repeated `n` times.
    Regex(String, u8),
}

impl CheckText {
    fn text(&self) -> String {
        match self {
            CheckText::Raw(s) => s.clone(),
            CheckText::Literal(i) => {
                let s = HOSTILE_STRINGS[usize::from(*i) % HOSTILE_STRINGS.len()];
                let lit = s.replace('\\', "\\\\").replace('"', "\\\"");
                format!("check if operation($o), $o != \"{lit}\"")
            }
            CheckText::DeepParens(n) => {
                let n = usize::from(*n % 5_000);
                format!("check if {}true{}", "(".repeat(n), ")".repeat(n))
            }
            CheckText::DeepNegation(n) => {
                let n = usize::from(*n % 5_000);
                format!("check if {}true", "!".repeat(n * 2))
            }
            CheckText::Regex(p, n) => {
                let lit = p.replace('\\', "\\\\").replace('"', "\\\"");
                let one = format!("\"a\".matches(\"{lit}\")");
                let all = vec![one; usize::from(*n % 64).max(1)].join(" || ");
                format!("check if {all}")
            }
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Flags {
    operations: Vec<String>,
    services: Vec<String>,
    resource_prefixes: Vec<String>,
    resources: Vec<String>,
    attr_max: Vec<String>,
    attr_range: Vec<String>,
    attr_in: Vec<String>,
    url_hosts: Vec<String>,
    checks: Vec<CheckText>,
    ttl_secs: Option<u32>,
    max_depth: Option<u32>,
    /// `--to NAME` (signed with the holder's key, to key 3).
    to: Option<String>,
    /// Signed by the holder even without `--to`.
    signed: bool,
}

const PRESET: u8 = 0xF5;

fn preset(kind: u8, n: u16) -> Flags {
    let check = match kind % 5 {
        0 => CheckText::DeepParens(n),
        1 => CheckText::DeepNegation(n),
        2 => CheckText::Literal(n as u8),
        3 => CheckText::Regex("(?:.{100}){200}".into(), n as u8),
        _ => CheckText::Raw(
            r#"check if time($t), $t != "x\"); /*", $t != "*/ check if true; //""#.into(),
        ),
    };
    Flags {
        operations: Vec::new(),
        services: Vec::new(),
        resource_prefixes: Vec::new(),
        resources: Vec::new(),
        attr_max: Vec::new(),
        attr_range: Vec::new(),
        attr_in: Vec::new(),
        url_hosts: Vec::new(),
        checks: vec![check],
        ttl_secs: None,
        max_depth: None,
        to: None,
        signed: false,
    }
}

fuzz_target!(|data: &[u8]| {
    let flags = match data {
        [PRESET, kind, lo, hi, ..] => preset(*kind, u16::from_le_bytes([*lo, *hi])),
        _ => match Flags::arbitrary_take_rest(Unstructured::new(data)) {
            Ok(f) => f,
            Err(_) => return,
        },
    };
    let choice = pick(data);
    on_server_stack(move || check(&flags, choice));
});

/// Alice's mandate as delegation reads it (unverified), made once.
fn parent() -> &'static UnverifiedMandate {
    static PARENT: std::sync::OnceLock<UnverifiedMandate> = std::sync::OnceLock::new();
    PARENT.get_or_init(|| match harness().parent.to_unverified() {
        Ok(p) => p,
        Err(e) => panic!("the parent does not round-trip: {e}"),
    })
}

fn check(flags: &Flags, choice: u32) {
    let h = harness();
    let mut r = Restrictions {
        operations: flags.operations.clone(),
        services: flags.services.clone(),
        max_depth: flags.max_depth,
        expires_at: flags
            .ttl_secs
            .map(|s| request_time() + Duration::from_secs(u64::from(s))),
        checks: flags.checks.iter().map(CheckText::text).collect(),
        ..Restrictions::default()
    };
    r.resource_prefixes = flags
        .resource_prefixes
        .iter()
        .filter_map(|p| ResourcePath::parse(p).ok())
        .collect();
    r.resources = flags
        .resources
        .iter()
        .filter_map(|p| ResourcePath::parse(p).ok())
        .collect();
    r.attr_max = flags
        .attr_max
        .iter()
        .filter_map(|a| Restrictions::parse_attr_max(a).ok())
        .collect();
    r.attr_range = flags
        .attr_range
        .iter()
        .filter_map(|a| Restrictions::parse_attr_range(a).ok())
        .collect();
    r.attr_in = flags
        .attr_in
        .iter()
        .filter_map(|a| Restrictions::parse_attr_in(a).ok())
        .collect();
    r.url_hosts = flags
        .url_hosts
        .iter()
        .filter_map(|a| Restrictions::parse_url_hosts(a).ok())
        .collect();
    let _ = r.to_block(0);

    let parent = parent();
    let next = flags.to.as_ref().map(|name| NextAgent {
        name: name.clone(),
        key: next_agent_key().public(),
    });
    let child = if next.is_some() || flags.signed {
        delegate_signed(parent, &h.agent, next.as_ref(), &r)
    } else {
        delegate(parent, &r)
    };
    let Ok(child) = child else { return };
    let Ok(token) = child.to_base64() else { return };
    let one = (choice as usize) % REQUESTS.len();
    for (i, parent_allows) in h.parent_allows.iter().enumerate() {
        if i != one && !full_check() {
            continue;
        }
        let Ok(d) = h.decide(&token, i) else { continue };
        assert!(
            !d.allowed || *parent_allows,
            "request {:?} denied by the parent is allowed after delegating: {}",
            REQUESTS[i],
            d.reason
        );
        assert_eq!(d.principal, h.reported.principal, "{}", d.reason);
        assert_eq!(d.task, h.reported.task, "{}", d.reason);
    }
}
