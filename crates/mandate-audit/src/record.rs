//! The one record type of the audit trail: a sequence number, a time, the
//! writer that wrote it, and one [`Event`].
//!
//! A record is the wire format of the trail (JSON, one object per line when
//! exported), so it is plain data: names, digests and fingerprints. It never
//! holds a token, a proof of possession or a key; a token appears only as its
//! fingerprint and its token id, an agent key only as its fingerprint.

use serde::{Deserialize, Serialize};

use crate::decision::{DecisionRecord, RefusalRecord};
use crate::issuer::IssuerEvent;
use crate::registry::RegistryEvent;

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// When the writer took the event, RFC 3339 with milliseconds (UTC).
    pub time: String,
    /// The writer's key fingerprint (`sha256:<16 hex>` of its public key).
    pub writer: String,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// A [`Record`] to encode, borrowing what every record of a batch shares:
/// the same JSON as [`Record`] without copying the time and the writer.
#[derive(Serialize)]
pub(crate) struct RecordRef<'a> {
    pub(crate) seq: u64,
    pub(crate) time: &'a str,
    pub(crate) writer: &'a str,
    #[serde(flatten)]
    pub(crate) event: &'a Event,
}

/// Everything the trail records. Decisions come from verifiers, revocations
/// and lifts from the registry, the rest from the issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
// reason: the wire format reads best unboxed; events move once, into the writer's
// queue, which boxes them.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// A request was decided: allowed or denied, and why.
    Decision(DecisionRecord),
    /// A request could not be judged: its token is malformed, tampered,
    /// untrusted or expired (the API answered 401).
    Refusal(RefusalRecord),
    /// The registry recorded a revocation or lifted one.
    Registry(RegistryEvent),
    /// The issuer minted, refreshed, opened or closed something, or a right
    /// was asked for or decided.
    Issuer(IssuerEvent),
}

impl Event {
    /// The principal the event concerns, if any (query filters use it).
    pub fn principal(&self) -> Option<&str> {
        match self {
            Event::Decision(d) => Some(&d.principal),
            Event::Refusal(_) => None,
            Event::Registry(r) => (r.kind == "principal").then_some(r.value.as_str()),
            Event::Issuer(i) => i.principal(),
        }
    }

    /// The task the event concerns, if any.
    pub fn task(&self) -> Option<&str> {
        match self {
            Event::Decision(d) => Some(&d.task),
            Event::Refusal(_) => None,
            Event::Registry(r) => (r.kind == "task").then_some(r.value.as_str()),
            Event::Issuer(i) => i.task(),
        }
    }

    /// Whether `agent` (a name) appears in the event: anywhere in a
    /// decision's chain, as the revoked agent, or as the issuer event's agent.
    pub fn mentions_agent(&self, agent: &str) -> bool {
        match self {
            Event::Decision(d) => d.chain.iter().any(|link| link.name == agent),
            Event::Refusal(_) => false,
            Event::Registry(r) => r.kind == "agent" && r.value == agent,
            Event::Issuer(i) => i.agent() == Some(agent),
        }
    }

    /// The service the event concerns, if any.
    pub fn service(&self) -> Option<&str> {
        match self {
            Event::Decision(d) => Some(&d.service),
            Event::Refusal(r) => r.service.as_deref(),
            Event::Registry(_) | Event::Issuer(_) => None,
        }
    }

    /// `allow` or `deny` for a decision (a refusal is a deny), `None` otherwise.
    pub fn outcome(&self) -> Option<crate::Outcome> {
        match self {
            Event::Decision(d) => Some(d.decision),
            Event::Refusal(_) => Some(crate::Outcome::Deny),
            Event::Registry(_) | Event::Issuer(_) => None,
        }
    }

    /// Every token id the event names (a decision's token, a revoked id, an
    /// issued token), for `mandate audit trace`.
    pub fn token_ids(&self) -> Vec<&str> {
        match self {
            Event::Decision(d) => vec![d.token_id.as_str()],
            Event::Refusal(_) => Vec::new(),
            Event::Registry(r) => {
                if r.kind == "token_id" {
                    vec![r.value.as_str()]
                } else {
                    Vec::new()
                }
            }
            Event::Issuer(i) => i.token_id().into_iter().collect(),
        }
    }
}

impl std::fmt::Display for Record {
    /// The human form: `#12 2026-12-01T10:00:00.000Z charting-bot (via
    /// orchestrator → analytics-bot) for bob: datasets read /q3 → deny: ...`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{} {} ", self.seq, self.time)?;
        match &self.event {
            Event::Decision(d) => write!(f, "{d}"),
            Event::Refusal(r) => write!(f, "{r}"),
            Event::Registry(r) => write!(f, "{r}"),
            Event::Issuer(i) => write!(f, "{i}"),
        }
    }
}
