//! A Mandate guard for Model Context Protocol servers built with the official
//! Rust SDK (`rmcp`): every `tools/call` is decided by a [`Verifier`] before
//! the tool runs.
//!
//! **Where the credentials travel.** A client puts the mandate and a fresh
//! proof of possession in the request's `_meta`:
//!
//! ```json
//! {"method": "tools/call", "params": {"name": "read_dataset",
//!   "arguments": {"path": "/datasets/q3/revenue"},
//!   "_meta": {"mandate/token": "<base64 token>", "mandate/pop": "v1.<ms>.<nonce>.<sig>"}}}
//! ```
//!
//! A client that cannot set `_meta` may send the same two fields in the
//! reserved argument `_mandate` (`{"_mandate": {"token": "...", "pop": "..."}}`);
//! the guard removes it before the tool sees its arguments.
//!
//! **What is decided.** Service = the server's name ([`McpGuard::new`]),
//! operation = the tool's name, resource and attributes = what the server's
//! [`ToolMapping`] makes of the arguments. The proof signs exactly that
//! request, so a client signs with the same mapping (the Python helper
//! `mandate.mcp` takes the resource and attributes for each call).
//!
//! **What a refusal looks like.** A JSON-RPC error with code
//! [`DENIED_CODE`], a message naming the failing check, its block and the
//! agent that wrote it (the hop), and `data` holding the decision as the
//! audit log records it.
//!
//! **What is recorded.** Every decision is logged on the `mandate::audit`
//! tracing target. A guard given an [`AuditTrail`] ([`McpGuard::with_audit`]
//! or [`Guarded::with_audit`]) also appends each decision, and each call
//! refused before a decision, to a `mandate-audit` log before the caller
//! hears the outcome, as `mandate serve --audit-store` does for the
//! authorization API; a call whose record cannot be written is refused
//! (data `kind` `audit_unavailable`).
//!
//! This crate never decides anything itself: it reads credentials, calls
//! `Verifier::authorize` off the async runtime, and turns the outcome into
//! MCP. It never logs, records or returns a token, only its fingerprint.
//!
//! [`Verifier`]: mandate_verifier::Verifier

mod audit;
mod credentials;
mod guard;
mod refusal;
mod server;

pub use audit::{AuditTrail, API as AUDIT_API};
pub use credentials::{Credentials, META_POP, META_TOKEN, RESERVED_ARGUMENT};
pub use guard::{McpGuard, ToolMapping, ToolScope};
pub use refusal::DENIED_CODE;
pub use server::Guarded;
