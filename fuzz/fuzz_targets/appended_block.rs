//! Structure-aware: a block drawn from the shared grammar (hostile strings,
//! nested collections, deep and malformed expressions, regexes, closures) is
//! appended to alice's valid mandate, unsigned or signed by the holder, then
//! verified, authorized on fixed requests, inspected and delegated.
//! Asserts the properties of `Harness::check`: no request the parent denies
//! is allowed, and principal, task and chain are reported unchanged.
//!
//! Input: bytes decoded with `arbitrary` into an `Appended`, except that an
//! input starting with [`FINDING`] is `[FINDING, which, size_lo, size_hi,
//! signed]`, one of the attack findings' block shapes (`finding_block`), so
//! the committed seeds say what they are.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mandate_fuzz::block_grammar::{finding_block, Appended};
use mandate_fuzz::{harness, on_server_stack};

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
    on_server_stack(|| {
        if let Err(violation) = harness().check(&appended) {
            panic!("{violation}\n{appended:#?}");
        }
    });
});
