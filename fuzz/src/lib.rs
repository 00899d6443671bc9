//! Fixtures shared by the fuzz targets: one fixed root key, one minted
//! mandate and its verifier (the [`block_grammar::Harness`] the property
//! tests use too), so a seed token committed under `corpus/` stays valid for
//! every run, and a crash found here replays in `cargo test`.
//!
//! Nothing here may hide a failure: fixtures panic when they cannot be built,
//! and the targets assert the properties themselves.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::OnceLock;

#[path = "../../crates/mandate-verifier/tests/block_grammar/mod.rs"]
pub mod block_grammar;

use block_grammar::Harness;

/// The fixture every target shares: alice's mandate (root key 1, id 7) held
/// by `alice-bot` (key 2), and a verifier trusting that root.
pub fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(Harness::new)
}

/// The key a signed hop hands the authority to (key 3).
pub fn next_agent_key() -> &'static mandate_core::SecretKey {
    static KEY: OnceLock<mandate_core::SecretKey> = OnceLock::new();
    KEY.get_or_init(|| block_grammar::fixed_key(3))
}

/// A current-thread runtime for driving routers with `oneshot`.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime")
    })
}

/// The stack a Tokio worker or a spawned Rust thread gets by default. The
/// findings' crashes happened on such threads; libFuzzer's main thread has
/// 8 MiB and would hide them.
pub const SERVER_STACK: usize = 2 * 1024 * 1024;

/// Runs `f` on a thread with [`SERVER_STACK`] bytes of stack, re-raising its
/// panic, so a stack overflow or a failed assertion is a crash of the target.
pub fn on_server_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .stack_size(SERVER_STACK)
            .spawn_scoped(scope, f)
            .expect("spawning a thread");
        match handle.join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
