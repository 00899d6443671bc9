//! Where the issuer keeps agents' requests for more rights: a sled folder
//! of its own (by default beside the task store, `<store>.requests`, since
//! the task store's database is opened once, by the task store), or the
//! task store's PostgreSQL database.

use anyhow::Result;
use mandate_issuer::requests::NegotiatorOptions;
use mandate_issuer::server::IssuerState;

use super::IssuerSettings;

/// `state` with its requests kept in the configured store and decided
/// under the configured expiry and approver groups.
///
/// # Errors
/// The store cannot be opened.
pub fn with_requests(state: IssuerState, settings: &IssuerSettings) -> Result<IssuerState> {
    let store = super::stores::open_requests(&settings.requests_store)?;
    Ok(state.with_requests(
        store,
        NegotiatorOptions {
            request_ttl: settings.request_ttl,
            approver_groups: settings.approver_groups.clone(),
        },
    ))
}
