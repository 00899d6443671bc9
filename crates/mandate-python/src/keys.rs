//! Agent and root keys for Python: `SecretKey` and `PublicKey`.
//!
//! A `SecretKey` has no method that returns its secret half: it signs, it
//! writes a 0600 key file, and its `repr` shows only the public key.

use std::path::PathBuf;

use pyo3::prelude::*;

use crate::errors;

/// An Ed25519 private key (an agent's, or an issuer's root key).
#[pyclass(module = "mandate", frozen)]
pub struct SecretKey {
    pub(crate) inner: mandate_core::SecretKey,
}

#[pymethods]
impl SecretKey {
    /// A fresh key from the operating system's randomness.
    #[staticmethod]
    fn generate() -> SecretKey {
        SecretKey {
            inner: mandate_core::SecretKey::generate(),
        }
    }

    /// Reads a key file (`ed25519-private/<hex>`); refuses one that its
    /// group or others may read.
    #[staticmethod]
    fn read(path: PathBuf) -> PyResult<SecretKey> {
        mandate_core::SecretKey::read(&path)
            .map(|inner| SecretKey { inner })
            .map_err(errors::core)
    }

    /// Writes the key to `path` (mode 0600) and its public half to
    /// `path + ".pub"`; never overwrites a file.
    fn write(&self, path: PathBuf) -> PyResult<()> {
        self.inner.write_new(&path).map_err(errors::core)
    }

    /// The public half.
    #[getter]
    fn public_key(&self) -> PublicKey {
        PublicKey {
            inner: self.inner.public(),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "SecretKey(public={}, secret=<redacted>)",
            self.inner.public()
        )
    }

    fn __str__(&self) -> String {
        self.__repr__()
    }
}

/// An Ed25519 public key, written `ed25519/<hex>`.
#[pyclass(module = "mandate", frozen, eq, hash, from_py_object)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey {
    pub(crate) inner: mandate_core::PublicKey,
}

#[pymethods]
impl PublicKey {
    /// Parses `ed25519/<hex>`, or reads a `.pub` file at that path.
    #[new]
    fn new(text: &str) -> PyResult<PublicKey> {
        mandate_core::PublicKey::from_arg(text)
            .map(|inner| PublicKey { inner })
            .map_err(errors::core)
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }

    fn __repr__(&self) -> String {
        format!("PublicKey('{}')", self.inner)
    }
}

/// A public key given as a `PublicKey` or as text (`ed25519/<hex>` or a
/// `.pub` file).
#[derive(FromPyObject)]
pub enum PublicKeyArg {
    /// Already parsed.
    Key(PublicKey),
    /// To parse.
    Text(String),
}

impl PublicKeyArg {
    /// The key.
    pub fn resolve(self) -> PyResult<mandate_core::PublicKey> {
        match self {
            PublicKeyArg::Key(key) => Ok(key.inner),
            PublicKeyArg::Text(text) => {
                mandate_core::PublicKey::from_arg(&text).map_err(errors::core)
            }
        }
    }
}

/// Trusted roots from `--root-pub` arguments: `ed25519/<hex>`,
/// `ID=ed25519/<hex>`, or a `.pub` file (optionally `ID=PATH`).
pub fn key_set(args: &[String]) -> PyResult<mandate_core::KeySet> {
    let mut keys = mandate_core::KeySet::new();
    for arg in args {
        keys.add_arg(arg).map_err(errors::core)?;
    }
    Ok(keys)
}
