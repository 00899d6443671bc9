//! Arbitrary bytes as a token, both as base64 text and as raw token bytes
//! (base64-encoded): decode, inspect, verify and authorize a fixed request.
//! Nothing may panic or overflow the stack; every refusal is an error or a
//! denial.

#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use mandate_core::{inspect, UnverifiedMandate};
use mandate_fuzz::block_grammar::{request_time, REQUESTS};
use mandate_fuzz::{harness, on_server_stack};

fuzz_target!(|data: &[u8]| {
    let data = data.to_vec();
    on_server_stack(move || check(&data));
});

fn check(data: &[u8]) {
    let h = harness();
    let mut texts = vec![base64::engine::general_purpose::URL_SAFE.encode(data)];
    if let Ok(text) = std::str::from_utf8(data) {
        texts.push(text.to_owned());
    }
    for text in texts {
        if let Ok(token) = UnverifiedMandate::from_base64(&text) {
            let _ = inspect(&token, Some(&h.keys), request_time());
            let _ = inspect(&token, None, request_time());
        }
        if let Ok(d) = h.decide(&text, 0) {
            // Only a token the fixed root signed can be decided at all.
            assert_eq!(d.service, REQUESTS[0].0);
        }
    }
}
