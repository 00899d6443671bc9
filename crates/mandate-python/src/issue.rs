//! `Issuer`: a root key with its key id, minting mandates from Python as
//! `mandate issue` does, for issuers embedded in Python services, tests and
//! examples. Its `repr` shows the public key and id only.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use mandate_core::{Restrictions, Right, RootKey};
use mandate_issuer::MintRequest;
use pyo3::prelude::*;

use crate::errors;
use crate::keys::{PublicKey, PublicKeyArg};
use crate::request::DurationArg;
use crate::token::Token;

/// A root signing key and the key id it writes into every token.
#[pyclass(module = "mandate", frozen)]
pub struct Issuer {
    root: RootKey,
}

#[pymethods]
impl Issuer {
    /// A fresh root key.
    #[staticmethod]
    #[pyo3(signature = (key_id=None))]
    fn generate(key_id: Option<u32>) -> Issuer {
        Issuer {
            root: RootKey {
                secret: mandate_core::SecretKey::generate(),
                key_id,
            },
        }
    }

    /// Reads a root key file (0600, as `SecretKey.read`).
    #[staticmethod]
    #[pyo3(signature = (path, key_id=None))]
    fn read(path: PathBuf, key_id: Option<u32>) -> PyResult<Issuer> {
        let secret = mandate_core::SecretKey::read(&path).map_err(errors::core)?;
        Ok(Issuer {
            root: RootKey { secret, key_id },
        })
    }

    /// Writes the root key to `path` (0600) and its public half to
    /// `path + ".pub"`; never overwrites a file.
    fn write(&self, path: PathBuf) -> PyResult<()> {
        self.root.secret.write_new(&path).map_err(errors::core)
    }

    /// The public root key verifiers trust.
    #[getter]
    fn public_key(&self) -> PublicKey {
        PublicKey {
            inner: self.root.secret.public(),
        }
    }

    /// The key id written into tokens.
    #[getter]
    fn key_id(&self) -> Option<u32> {
        self.root.key_id
    }

    /// The root as a verifier's `root_keys` entry: `ID=ed25519/<hex>`.
    #[getter]
    fn root_arg(&self) -> String {
        match self.root.key_id {
            Some(id) => format!("{id}={}", self.root.secret.public()),
            None => self.root.secret.public().to_string(),
        }
    }

    /// Mints a mandate for `principal`, first held by `agent` (with
    /// `agent_key`; without it, a bearer mandate), granting `rights`
    /// (`SERVICE:OPERATION`) for `ttl` (`"10m"` or seconds).
    #[pyo3(signature = (*, principal, agent, rights, ttl, agent_key=None, task=None))]
    #[allow(clippy::too_many_arguments)] // reason: one keyword per `mandate issue` flag.
    fn issue(
        &self,
        py: Python<'_>,
        principal: String,
        agent: String,
        rights: Vec<String>,
        ttl: DurationArg,
        agent_key: Option<PublicKeyArg>,
        task: Option<String>,
    ) -> PyResult<Token> {
        let rights = rights
            .iter()
            .map(|r| r.parse::<Right>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(errors::core)?;
        let request = MintRequest {
            principal,
            agent,
            agent_key: agent_key.map(PublicKeyArg::resolve).transpose()?,
            task,
            rights,
            ttl: ttl.resolve("ttl", Duration::from_secs(1), mandate_issuer::MAX_TTL)?,
            restrictions: Restrictions::default(),
            now: SystemTime::now(),
        };
        let root = &self.root;
        let mandate = py
            .detach(|| mandate_issuer::mint(root, &request))
            .map_err(errors::issuer)?;
        Token::from_unverified(mandate.to_unverified().map_err(errors::core)?)
    }

    fn __repr__(&self) -> String {
        format!(
            "Issuer(public={}, key_id={}, secret=<redacted>)",
            self.root.secret.public(),
            self.root
                .key_id
                .map_or_else(|| "None".to_string(), |id| id.to_string())
        )
    }
}
