//! Where the issuer keeps agents' requests for more rights: a sled folder
//! of its own (by default beside the task store, `<store>.requests`), since
//! the task store's database is opened once, by the task store.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use mandate_issuer::requests::{NegotiatorOptions, SledRequestStore};
use mandate_issuer::server::IssuerState;

use super::IssuerSettings;

/// `state` with its requests kept in the configured store and decided
/// under the configured expiry and approver groups.
///
/// # Errors
/// The store's folder cannot be opened.
pub fn with_requests(state: IssuerState, settings: &IssuerSettings) -> Result<IssuerState> {
    let store = SledRequestStore::open(&settings.requests_store).with_context(|| {
        format!(
            "opening request store {}",
            settings.requests_store.display()
        )
    })?;
    Ok(state.with_requests(
        Arc::new(store),
        NegotiatorOptions {
            request_ttl: settings.request_ttl,
            approver_groups: settings.approver_groups.clone(),
        },
    ))
}
