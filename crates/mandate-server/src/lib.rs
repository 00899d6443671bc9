//! Mandate's servers, composed from one configuration.
//!
//! The binary parses flags and calls this crate; everything a deployment
//! runs is built here: the authorization API and proxy endpoint (from the
//! verifier crate), the revocation registry (from the registry crate), and
//! the operations surface an operator expects of any service — health,
//! readiness, Prometheus metrics, an OpenAPI document, TLS, JSON logs and a
//! graceful shutdown.
//!
//! - [`config`]: the TOML configuration, its defaults and bounds.
//! - [`key_follower`]: trusting the root keys an issuer publishes
//!   (`--root-keys-url`), refreshed by their caching headers.
//! - [`serve`]: [`bind`] then [`Server::run`].
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.
//! - [`issuer`]: the issuer service (`mandate issuer serve`): token
//!   exchange and the task lifecycle from `mandate-issuer`, with task
//!   revocations written to the registry.
//! - [`audit`]: the audit writer, the recorder of decisions and the
//!   registry store that records revocations; [`audit_api`]: `GET /v1/audit`.
//! - [`metrics`], [`openapi`], [`tls`], [`logging`]: one concern each.
//!
//! This crate composes and reports like a binary: its errors are `anyhow`
//! with context, because every caller prints them and exits.

pub mod audit;
pub mod audit_api;
pub mod audit_client;
pub mod audit_store;
pub mod audit_verify;
pub mod config;
pub mod issuer;
pub mod key_follower;
pub mod logging;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod revocation_store;
pub mod serve;
mod server;
mod settings;
pub mod tls;

pub use config::{
    AuditMode, AuditSettings, ConfigError, LogFormat, ServerConfig, Settings, Source,
};
pub use serve::{bind, registry_auth, root_keys, shutdown_signal};
pub use server::Server;
