//! The `mandate` Python package's native module (`mandate._native`): keys,
//! tokens, offline delegation, proofs of possession, an embedded verifier,
//! revocations and the issuer's task API, all calling the Rust crates
//! directly.
//!
//! This crate holds no Mandate logic of its own: it converts Python
//! arguments into the types the CLI and the services use, calls the same
//! functions, and turns every Rust error into a `MandateError` subclass
//! (`errors.rs`), so bad input never panics across the boundary. It never
//! exposes a private key's bytes, and no `repr` shows a secret or a token.

mod errors;
mod issue;
mod keys;
mod request;
mod revocation;
mod tasks;
mod token;
mod verifier;

use pyo3::prelude::*;

/// The native module; `python/mandate/__init__.py` re-exports it.
#[pymodule]
#[pyo3(name = "_native")]
mod native {
    #[pymodule_export]
    use super::errors::{
        ChainError, DatalogError, InvalidArgumentError, InvalidKeyError, InvalidNameError,
        InvalidSignatureError, IssuerError, KeyFileError, KeyPermissionsError, MalformedTokenError,
        MandateError, NotHolderError, NotInParentError, RegistryError, TaskAuthError,
        TaskClosedError, TokenExpiredError, UnknownKeyIdError,
    };
    #[pymodule_export]
    use super::issue::Issuer;
    #[pymodule_export]
    use super::keys::{PublicKey, SecretKey};
    #[pymodule_export]
    use super::revocation::{RegistryClient, RevocationStore};
    #[pymodule_export]
    use super::tasks::{Issued, IssuerClient};
    #[pymodule_export]
    use super::token::Token;
    #[pymodule_export]
    use super::verifier::{Decision, Policy, Verifier};

    use pyo3::prelude::*;

    /// A short, non-reversible name for a token's text, safe for logs.
    #[pyfunction]
    fn fingerprint(token: &str) -> String {
        mandate_core::fingerprint(token)
    }
}
