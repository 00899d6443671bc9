//! Structure-aware: a block drawn from the shared grammar (hostile strings,
//! nested collections, deep and malformed expressions, regexes, closures) is
//! appended to alice's valid mandate, unsigned or signed by the holder, then
//! decided, inspected or delegated.
//!
//! Each input gets one check, chosen by [`mandate_fuzz::pick`] over the
//! input: a decision on one of the fixed requests (no request the parent
//! denies is allowed; principal, task and chain are reported unchanged), an
//! inspection (same principal, task and chain), or a delegation of the
//! result decided on one request (never wider than the parent). With
//! `MANDATE_FUZZ_FULL=1`, every input gets all of them (`Harness::check`,
//! what the property tests run).
//!
//! The base token, keys and verifier are built once; blocks are appended
//! with fixed block keys, on one long-lived large-stack thread (biscuit's
//! builder recurses), and judged on one long-lived 2 MiB thread.
//!
//! Input: bytes decoded with `arbitrary` into an `Appended`, except that an
//! input starting with [`FINDING`] is `[FINDING, which, size_lo, size_hi,
//! signed]`, one of the attack findings' block shapes (`finding_block`), so
//! the committed seeds say what they are.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mandate_core::{delegate, inspect, Restrictions, UnverifiedMandate};
use mandate_fuzz::block_grammar::{finding_block, request_time, Appended, REQUESTS};
use mandate_fuzz::{append, full_check, harness, on_builder_stack, on_server_stack, pick};

const FINDING: u8 = 0xF5;

fuzz_target!(|data: &[u8]| {
    let appended = match data {
        [FINDING, which, lo, hi, signed, ..] => Appended {
            block: finding_block(*which, u16::from_le_bytes([*lo, *hi])),
            signed: signed & 1 == 1,
        },
        _ => match Appended::arbitrary_take_rest(Unstructured::new(data)) {
            Ok(a) => a,
            Err(_) => return,
        },
    };
    let choice = pick(data);
    let (appended, token) = on_builder_stack(move || {
        let token = append(&appended);
        (appended, token)
    });
    let Some(token) = token else { return };
    on_server_stack(move || {
        let outcome = if full_check() {
            harness().check(&appended)
        } else {
            check_one(&appended, &token, choice)
        };
        if let Err(violation) = outcome {
            panic!("{violation}\n{appended:#?}");
        }
    });
});

/// One of `Harness::check`'s properties, chosen by `choice`.
fn check_one(appended: &Appended, token: &str, choice: u32) -> Result<(), String> {
    let h = harness();
    let request = (choice as usize / 3) % REQUESTS.len();
    let hops = appended.block.hop_names();
    let chain_ok = |chain: &[String], allowed: bool| {
        chain == h.reported.chain.as_slice()
            || (chain.is_empty() && !allowed)
            || (appended.signed
                && chain.len() == h.reported.chain.len() + 1
                && chain.starts_with(&h.reported.chain)
                && chain.last().is_some_and(|n| hops.contains(n)))
    };
    match choice % 3 {
        0 => {
            let Ok(d) = h.decide(token, request) else {
                return Ok(());
            };
            if d.allowed && !h.parent_allows[request] {
                return Err(format!(
                    "request {:?} denied by the parent is allowed after appending: {}",
                    REQUESTS[request], d.reason
                ));
            }
            if d.principal != h.reported.principal || d.task != h.reported.task {
                return Err(format!(
                    "the decision names principal {:?}, task {:?}",
                    d.principal, d.task
                ));
            }
            if !chain_ok(&d.chain, d.allowed) {
                return Err(format!("the decision names chain {:?}", d.chain));
            }
        }
        1 => {
            let Ok(unverified) = UnverifiedMandate::from_base64(token) else {
                return Ok(());
            };
            let Ok(report) = inspect(&unverified, Some(&h.keys), request_time()) else {
                return Ok(());
            };
            if report.principal.as_deref() != Some(h.reported.principal.as_str())
                || report.task.as_deref() != Some(h.reported.task.as_str())
            {
                return Err(format!(
                    "inspect names principal {:?}, task {:?}",
                    report.principal, report.task
                ));
            }
            if !chain_ok(&report.chain, report.chain_error.is_none()) {
                return Err(format!("inspect names chain {:?}", report.chain));
            }
        }
        _ => {
            let Ok(unverified) = UnverifiedMandate::from_base64(token) else {
                return Ok(());
            };
            let narrower = Restrictions {
                operations: vec!["transfer".into()],
                ..Restrictions::default()
            };
            let Ok(child) = delegate(&unverified, &narrower).and_then(|c| c.to_base64()) else {
                return Ok(());
            };
            let Ok(d) = h.decide(&child, request) else {
                return Ok(());
            };
            if d.allowed && !h.parent_allows[request] {
                return Err(format!(
                    "request {:?} denied by the parent is allowed after delegating: {}",
                    REQUESTS[request], d.reason
                ));
            }
            if d.principal != h.reported.principal {
                return Err(format!(
                    "after delegating, the decision names principal {:?}",
                    d.principal
                ));
            }
        }
    }
    Ok(())
}
