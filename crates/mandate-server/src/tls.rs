//! TLS with rustls (ring), from PEM files.

use std::path::Path;

use anyhow::{Context as _, Result};
use axum_server::tls_rustls::RustlsConfig;

/// Loads a certificate chain and its private key.
///
/// # Errors
/// A file that cannot be read, or PEM that holds no usable certificate or key.
pub async fn load(cert: &Path, key: &Path) -> Result<RustlsConfig> {
    // One provider per process; a second install (another server in the same
    // process) fails harmlessly.
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    // The PEM itself given in place of its path must never be printed, and
    // rustls' own errors name the path.
    if mandate_core::keys::may_be_key_material(key) {
        anyhow::bail!(
            "the TLS key must be a file: {} is not",
            mandate_core::keys::describe_path(key)
        );
    }
    RustlsConfig::from_pem_file(cert, key)
        .await
        .with_context(|| {
            format!(
                "loading TLS certificate {} and key {}",
                cert.display(),
                key.display()
            )
        })
}
