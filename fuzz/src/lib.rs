//! Fixtures shared by the fuzz targets: one fixed root key, one minted
//! mandate and its verifier (the [`block_grammar::Harness`] the property
//! tests use too), so a seed token committed under `corpus/` stays valid for
//! every run, and a crash found here replays in `cargo test`.
//!
//! Nothing here may hide a failure: fixtures panic when they cannot be built,
//! and the targets assert the properties themselves.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{mpsc, Mutex, OnceLock};

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

/// The stack the attacker's side gets: biscuit-auth's own builder converts
/// nested terms and closures recursively, so a block thousands of levels
/// deep is built on a large stack (reserved, not committed, until used).
pub const BUILDER_STACK: usize = 512 * 1024 * 1024;

type Job = Box<dyn FnOnce() + Send>;

/// One long-lived thread with a chosen stack, running one job at a time.
/// Spawning a thread per input costs more than the cheap targets' work
/// itself; a job that panics aborts the process through libFuzzer's panic
/// hook, so the input is reported as a crash exactly as before.
pub struct Worker {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl Worker {
    fn spawn(name: &str, stack: usize) -> Worker {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(name.into())
            .stack_size(stack)
            .spawn(move || {
                for job in queue {
                    job();
                }
            })
            .expect("spawning a worker thread");
        Worker {
            jobs: Mutex::new(jobs),
        }
    }

    /// Runs `f` on the worker's thread and returns its result.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (done, result) = mpsc::sync_channel(1);
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(Box::new(move || {
                let _ = done.send(f());
            }))
            .expect("the worker thread is gone");
        // A panic in `f` aborts under libFuzzer; elsewhere the worker dies,
        // the sender is dropped and this fails the caller instead.
        result.recv().expect("the job panicked")
    }
}

/// Runs `f` on a thread with [`SERVER_STACK`] bytes of stack (one
/// long-lived thread), so a stack overflow or a failed assertion is a crash
/// of the target.
pub fn on_server_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    static SERVER: OnceLock<Worker> = OnceLock::new();
    SERVER
        .get_or_init(|| Worker::spawn("server-stack", SERVER_STACK))
        .run(f)
}

/// Runs `f` on a thread with [`BUILDER_STACK`] bytes of stack (one
/// long-lived thread), for building hostile blocks with biscuit-auth.
pub fn on_builder_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    static BUILDER: OnceLock<Worker> = OnceLock::new();
    BUILDER
        .get_or_init(|| Worker::spawn("builder-stack", BUILDER_STACK))
        .run(f)
}

/// Whether to check every property on every input
/// (`MANDATE_FUZZ_FULL=1`): every request, inspection and delegation, as
/// the property tests do. Fuzzing runs one check per input (much faster);
/// replaying regressions sets it.
pub fn full_check() -> bool {
    static FULL: OnceLock<bool> = OnceLock::new();
    *FULL.get_or_init(|| std::env::var("MANDATE_FUZZ_FULL").is_ok_and(|v| v == "1"))
}

/// A small, stable number drawn from the whole input (FNV-1a), choosing
/// which request or which check an input gets, so the committed seeds keep
/// their meaning and every choice is reached across inputs.
pub fn pick(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |hash, &byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// The fixed keys that sign appended blocks, so no input generates a key:
/// the ephemeral key of an unsigned block (the holder's signature on a
/// signed block comes from the harness's agent key).
pub fn block_key() -> &'static biscuit_auth::KeyPair {
    static KEY: OnceLock<biscuit_auth::KeyPair> = OnceLock::new();
    KEY.get_or_init(|| {
        biscuit_auth::KeyPair::from(&block_grammar::fixed_key(4).key_pair().private())
    })
}

/// Appends `appended` to alice's mandate as a token holder would (signed by
/// the holder's key when asked), with fixed block keys. `None` when
/// biscuit-auth refuses to build it. Call it on [`on_builder_stack`].
pub fn append(appended: &block_grammar::Appended) -> Option<String> {
    let h = harness();
    let biscuit = h.parent.biscuit();
    let block = appended.block.builder(h.agent.public().as_biscuit());
    let child = if appended.signed {
        let request = biscuit.third_party_request().ok()?;
        let signed = request
            .create_block(&h.agent.key_pair().private(), block)
            .ok()?;
        // biscuit-auth takes the next block key by value; rebuilding it
        // from the fixed private key costs one base-point multiplication,
        // as generating one would, without drawing randomness.
        let next = biscuit_auth::KeyPair::from(&block_key().private());
        biscuit
            .append_third_party_with_keypair(h.agent.key_pair().public(), signed, next)
            .ok()?
    } else {
        biscuit.append_with_keypair(block_key(), block).ok()?
    };
    child.to_base64().ok()
}
