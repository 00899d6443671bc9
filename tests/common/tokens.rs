//! Tokens for black-box tests, made the way an operator and an agent make
//! them: `mandate issue`, `mandate delegate` (with a signed hop) and `mandate
//! pop`, each a run of the binary checked like any other.
#![allow(dead_code)] // reason: each test binary uses its own subset.

use super::{mandate, Run};

/// `mandate issue --root-key KEY ARGS...`, as run (the caller asserts).
#[track_caller]
pub fn issue(key: &str, args: &[&str]) -> Run {
    mandate(&[&["issue", "--root-key", key], args].concat())
}

/// `mandate delegate --token TOKEN --signer-key SIGNER --to TO --to-key
/// TO_KEY EXTRA...`: the holder whose private key is `signer` hands `token`
/// to the agent `to` (public key `to_key`) with a signed hop.
#[track_caller]
pub fn hop(token: &str, signer: &str, to: &str, to_key: &str, extra: &[&str]) -> Run {
    let mut args = vec!["delegate", "--token", token, "--signer-key", signer];
    args.extend(["--to", to, "--to-key", to_key]);
    args.extend_from_slice(extra);
    mandate(&args)
}

/// `mandate pop --key KEY --token TOKEN REQUEST...`: the proof, asserted made.
#[track_caller]
pub fn pop(key: &str, token: &str, request: &[&str]) -> String {
    let mut args = vec!["pop", "--key", key, "--token", token];
    args.extend_from_slice(request);
    mandate(&args).ok_trimmed()
}
