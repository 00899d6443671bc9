//! The issuer side of Mandate: minting mandates, exchanging a person's login
//! for one, deciding what to grant, and tying every mandate to a task.
//!
//! - [`mint`]: writes and signs an authority block (used by `mandate issue`
//!   and by everything below).
//! - [`idp`] and [`jwks`]: verify a principal's OIDC ID token or JWT access
//!   token against configured identity providers (asymmetric algorithms only,
//!   keys from a JWKS file or URL, cached and refreshed on an unknown `kid`).
//! - [`jwt_crypto`]: RSA signature checks of identity tokens through
//!   `ring` (same verdicts as the pure-Rust backend, a fraction of the cost).
//! - [`actor`]: the agent's proof of possession of its key at exchange time
//!   (a compact EdDSA JWS bound to the issuer and the subject token).
//! - [`policy`]: the issuance policy in Datalog (allow with rights and a
//!   maximum lifetime, deny with a reason, or ask), under explicit run limits.
//! - [`tasks`]: task records behind [`TaskStore`] (sled or memory).
//! - [`keyring`]: root keys in a folder with a manifest, rotated by
//!   `mandate keys rotate`; [`signing`]: [`SigningKeys`], the key signing
//!   now and every root still trusted; [`published`]: the key set document
//!   served at `/.well-known/mandate-keys` and read by verifiers.
//! - [`issuer`]: [`Issuer`], the token exchange, refresh and close flows.
//! - [`requests`]: rights asked for during a task, decided by the policy or
//!   by a person ([`requests::Negotiator`], records behind
//!   [`requests::RequestStore`]).
//! - [`sweep`]: [`sweep::Retention`], how long closed tasks and settled
//!   requests are kept, and the batched pruning the sweeper runs.
//! - [`revoke`]: [`TaskRevoker`], how a closed task reaches the revocation
//!   registry (implemented by the server crate, which knows the registry).
//! - `revoked`: what the issuer reads of the revocation state before it
//!   mints ([`Issuer::with_revocations`]).
//! - [`events`]: [`IssuerEvents`], the one seam every state change is
//!   reported through (target `mandate::audit`).
//! - [`oauth`]: the RFC 6749 §5.2 error shape of the token endpoint.
//! - [`server`]: the HTTP API (`POST /oauth2/token`, task refresh and close,
//!   requests for more rights and their approval).
//! - [`client`]: what `mandate task ...` calls.
//!
//! The issuer never sees an agent's private key, never trusts an identity it
//! did not verify, and never mints after refusing: a refusal is returned
//! before any signing key is touched.

pub mod actor;
pub mod client;
pub mod events;
mod handed;
pub mod idp;
pub mod issuer;
pub mod jwks;
pub mod jwt_crypto;
pub mod keyring;
mod mint;
pub mod oauth;
pub mod policy;
pub mod published;
mod remembered;
pub mod requests;
pub mod revoke;
mod revoked;
pub mod server;
pub mod signing;
mod sled_records;
pub mod sweep;
pub mod tasks;

pub use events::{IssuerEvent, IssuerEvents, TracingEvents};
pub use issuer::{Issued, Issuer, IssuerOptions};
pub use mint::{mint, Error, MintRequest, MAX_TTL};
pub use revoke::TaskRevoker;
pub use signing::SigningKeys;
pub use tasks::{MemoryTaskStore, SledTaskStore, Task, TaskState, TaskStore};

/// The token type URN of a mandate in token-exchange responses
/// (`issued_token_type`).
pub const MANDATE_TOKEN_TYPE: &str = "urn:mandate:params:oauth:token-type:mandate";

/// The token type URN of the agent's proof of possession (`actor_token_type`).
pub const ACTOR_TOKEN_TYPE: &str = "urn:mandate:params:oauth:token-type:agent-proof";

/// The service name proofs for the issuer's own task endpoints are made for.
pub const ISSUER_SERVICE: &str = "mandate-issuer";
