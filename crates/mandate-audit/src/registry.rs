//! Registry events: a revocation recorded or lifted, as the registry's own
//! log entry states it (its sequence number, what, why and by whom).

use mandate_core::display_name;
use serde::{Deserialize, Serialize};

/// Revoke or lift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistryAction {
    /// A revocation was recorded.
    Revoke,
    /// An earlier principal or agent revocation was lifted.
    Lift,
}

/// One write to the revocation registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryEvent {
    /// Revoke or lift.
    pub action: RegistryAction,
    /// The entry's sequence number in the registry's log.
    pub revocation: u64,
    /// `token_id`, `principal`, `agent` or `task`.
    pub kind: String,
    /// What was revoked.
    pub value: String,
    /// The operator's reason.
    pub reason: String,
    /// Who wrote it (`principal via chain` of the operator's mandate).
    pub by: String,
}

impl std::fmt::Display for RegistryEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = match self.action {
            RegistryAction::Revoke => "revoked",
            RegistryAction::Lift => "lifted",
        };
        write!(
            f,
            "{}: {verb} {} {} (#{})",
            display_name(&self.by),
            self.kind,
            display_name(&self.value),
            self.revocation
        )?;
        if !self.reason.is_empty() {
            write!(f, " — {}", display_name(&self.reason))?;
        }
        Ok(())
    }
}
