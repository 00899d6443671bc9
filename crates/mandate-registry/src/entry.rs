//! Revocation entries: the append-only log's records and the registry's wire format.
//!
//! An entry revokes a token (by any of its blocks' revocation ids), a principal, an agent
//! or a task. Lifting is not an edit: a lift is a new entry with `lifted: true` that cancels
//! earlier entries of the same kind and value, so the log stays append-only and auditable.
//! Only principal and agent revocations can be lifted; token-id and task revocations are
//! permanent. Everything that enters the log is validated here first ([`NewRevocation`]),
//! and entries read back from a store or the network are validated again
//! ([`RevocationEntry::validate`]) before they reach an index.
//!
//! These types are the wire format shared by the server, the client and the stores, so
//! they derive serde. Nothing here may hold a secret: entries are public to every verifier.

use std::time::SystemTime;

use mandate_core::name::{display_name, NameKind};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kind::RevocationKind;

/// Upper bound on a revocation value, in bytes.
pub const MAX_VALUE_LEN: usize = 512;
/// Upper bound on the free-text reason, in bytes.
pub const MAX_REASON_LEN: usize = 1024;
/// Upper bound on the `revoked_by` actor name, in bytes.
pub const MAX_ACTOR_LEN: usize = 512;
/// Upper bound on a token revocation id, in decoded bytes.
pub const MAX_TOKEN_ID_BYTES: usize = 128;

/// One record of the revocation log, as stored and as sent to verifiers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RevocationEntry {
    /// Position in the log: 1 for the first entry, increasing by one per entry.
    pub seq: u64,
    /// What is revoked.
    pub kind: RevocationKind,
    /// The revoked value: lowercase hex for `token_id`, a name or key string otherwise.
    pub value: String,
    /// Free-text reason given by the operator (may be empty).
    #[serde(default)]
    pub reason: String,
    /// The authenticated actor that wrote the entry.
    pub revoked_by: String,
    /// When the store recorded the entry (RFC 3339 on the wire).
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: SystemTime,
    /// `true` when this entry lifts earlier revocations of the same kind and value.
    #[serde(default)]
    pub lifted: bool,
}

impl RevocationEntry {
    /// Checks the bounds and formats that [`NewRevocation`] enforces on the way in.
    ///
    /// Indexes call this on every entry they apply, because entries also arrive from
    /// disk and from the network. It deliberately does not re-check that an
    /// `ed25519/...` agent value is a valid key: logs written before that rule must keep
    /// loading (an invalid key matches no token, so it is harmless), and refusing one
    /// entry would leave every verifier stale for good.
    ///
    /// # Errors
    /// [`Error::InvalidValue`], [`Error::TooLong`] or [`Error::NotLiftable`].
    pub fn validate(&self) -> Result<()> {
        validate_value(self.kind, &self.value)?;
        check_len("reason", &self.reason, MAX_REASON_LEN)?;
        check_len("revoked_by", &self.revoked_by, MAX_ACTOR_LEN)?;
        if self.lifted && !self.kind.is_liftable() {
            return Err(Error::NotLiftable { kind: self.kind });
        }
        Ok(())
    }
}

/// A validated revocation (or lift) that has not been given a sequence number yet.
///
/// The only way to build one is [`NewRevocation::revoke`] or [`NewRevocation::lift`], so a
/// store never receives an unvalidated value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRevocation {
    kind: RevocationKind,
    value: String,
    reason: String,
    revoked_by: String,
    lifted: bool,
}

impl NewRevocation {
    /// A revocation of `value` as `kind`. Token ids are normalised to lowercase hex; an
    /// agent value starting with `ed25519/` (in any case) must be a valid Ed25519 public
    /// key and is normalised to `ed25519/<lowercase hex>`. Principal, agent and task
    /// names must be canonical exactly as `mandate issue` requires (never rewritten).
    ///
    /// # Errors
    /// [`Error::InvalidValue`] or [`Error::TooLong`] when a field breaks its bound,
    /// [`Error::InvalidName`] for a name that is not canonical.
    pub fn revoke(
        kind: RevocationKind,
        value: impl Into<String>,
        reason: impl Into<String>,
        revoked_by: impl Into<String>,
    ) -> Result<Self> {
        Self::build(kind, value.into(), reason.into(), revoked_by.into(), false)
    }

    /// A lift of earlier `principal` or `agent` revocations of `value`.
    ///
    /// # Errors
    /// [`Error::NotLiftable`] for `token_id` and `task`; otherwise as [`NewRevocation::revoke`].
    pub fn lift(
        kind: RevocationKind,
        value: impl Into<String>,
        reason: impl Into<String>,
        revoked_by: impl Into<String>,
    ) -> Result<Self> {
        if !kind.is_liftable() {
            return Err(Error::NotLiftable { kind });
        }
        Self::build(kind, value.into(), reason.into(), revoked_by.into(), true)
    }

    fn build(
        kind: RevocationKind,
        mut value: String,
        reason: String,
        revoked_by: String,
        lifted: bool,
    ) -> Result<Self> {
        if kind == RevocationKind::TokenId {
            value.make_ascii_lowercase();
        }
        if kind == RevocationKind::Agent
            && value
                .get(..PRIVATE_KEY_PREFIX.len())
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case(PRIVATE_KEY_PREFIX))
        {
            // Entries are public to every verifier: a private key pasted in
            // place of a public one must never enter the log.
            return Err(Error::InvalidValue {
                kind,
                problem: "this looks like a private key; give the public key (`.pub` file)",
            });
        }
        let is_key = kind == RevocationKind::Agent && is_agent_key(&value);
        if !is_key && !value.is_empty() {
            // Names first, so `revoke` words a refusal exactly as `issue` does.
            check_name(kind, &value)?;
        }
        validate_value(kind, &value)?;
        if is_key {
            // Tokens print agent keys as `ed25519/<lowercase hex>`; an entry in any other
            // spelling would silently match nothing.
            value = parse_agent_key(&value)?.to_string();
        }
        check_len("reason", &reason, MAX_REASON_LEN)?;
        check_len("revoked_by", &revoked_by, MAX_ACTOR_LEN)?;
        Ok(Self {
            kind,
            value,
            reason,
            revoked_by,
            lifted,
        })
    }

    /// What is revoked.
    pub fn kind(&self) -> RevocationKind {
        self.kind
    }

    /// The revoked value (normalised).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The operator's reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The actor writing the entry.
    pub fn revoked_by(&self) -> &str {
        &self.revoked_by
    }

    /// Whether this is a lift.
    pub fn is_lift(&self) -> bool {
        self.lifted
    }

    /// Turns this into a log entry; stores call this once they have assigned `seq`.
    pub fn into_entry(self, seq: u64, at: SystemTime) -> RevocationEntry {
        RevocationEntry {
            seq,
            kind: self.kind,
            value: self.value,
            reason: self.reason,
            revoked_by: self.revoked_by,
            at,
            lifted: self.lifted,
        }
    }
}

fn check_len(field: &'static str, text: &str, max: usize) -> Result<()> {
    if text.len() > max {
        return Err(Error::TooLong {
            field,
            len: text.len(),
            max,
        });
    }
    Ok(())
}

fn validate_value(kind: RevocationKind, value: &str) -> Result<()> {
    let invalid = |problem| Err(Error::InvalidValue { kind, problem });
    if value.is_empty() {
        return invalid("value is empty");
    }
    check_len("value", value, MAX_VALUE_LEN)?;
    // Surrounding whitespace and control characters are almost always a copy-paste
    // mistake, and an entry that silently fails to match anything is worse than a refusal.
    if value.trim() != value {
        return invalid("value has leading or trailing whitespace");
    }
    if value.chars().any(char::is_control) {
        return invalid("value contains control characters");
    }
    if kind == RevocationKind::TokenId {
        if value.len() % 2 != 0 {
            return invalid("token id must be an even number of hex digits");
        }
        if !value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return invalid("token id must be lowercase hex");
        }
        if value.len() / 2 > MAX_TOKEN_ID_BYTES {
            return invalid("token id is longer than 128 bytes");
        }
    }
    Ok(())
}

/// Refuses a principal, agent or task name that `mandate issue` would refuse: the same
/// function decides both, so a revocation compares exactly as the token's name was
/// minted (principals in lower case, see `mandate_core::name`). Only new entries are
/// checked; entries already in a log keep loading (see [`RevocationEntry::validate`]).
fn check_name(kind: RevocationKind, value: &str) -> Result<()> {
    let name_kind = match kind {
        RevocationKind::Principal => NameKind::Principal,
        RevocationKind::Agent => NameKind::Agent,
        RevocationKind::Task => NameKind::Task,
        RevocationKind::TokenId => return Ok(()),
    };
    match mandate_core::name::problem(name_kind, value) {
        None => Ok(()),
        Some(problem) => Err(Error::InvalidName {
            kind,
            name: display_name(value.chars().take(64).collect::<String>().as_str()),
            problem,
        }),
    }
}

/// The prefix of an agent value that names a key rather than an agent name.
const AGENT_KEY_PREFIX: &str = "ed25519/";
/// The prefix of a private key's text form, refused as an agent value.
const PRIVATE_KEY_PREFIX: &str = "ed25519-private/";

/// Whether an agent value names a public key (`ed25519/...`, prefix in any case).
fn is_agent_key(value: &str) -> bool {
    value
        .get(..AGENT_KEY_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(AGENT_KEY_PREFIX))
}

fn parse_agent_key(value: &str) -> Result<mandate_core::PublicKey> {
    let invalid = Error::InvalidValue {
        kind: RevocationKind::Agent,
        problem:
            "an agent value starting with ed25519/ must be an Ed25519 public key (64 hex digits)",
    };
    let Some(hex) = value.get(AGENT_KEY_PREFIX.len()..) else {
        return Err(invalid);
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid);
    }
    format!("{AGENT_KEY_PREFIX}{}", hex.to_ascii_lowercase())
        .parse::<mandate_core::PublicKey>()
        .map_err(|_| invalid)
}

/// The form an agent value is matched in: key values lowercased, names as they are.
/// Applied by the index too, so entries stored before values were canonicalised on the
/// way in still match.
pub(crate) fn canonical_agent(value: &str) -> std::borrow::Cow<'_, str> {
    if is_agent_key(value) && value.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(value.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(value)
    }
}

/// Serde adapter: `SystemTime` as an RFC 3339 string with nanosecond precision, so a
/// round trip through JSON is lossless.
mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_nanos(*at))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        humantime::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::kind::UnknownKind;

    #[test]
    fn kinds_use_wire_names() {
        for kind in RevocationKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(kind.as_str().parse::<RevocationKind>().unwrap(), kind);
        }
        assert!(matches!(
            "token".parse::<RevocationKind>(),
            Err(UnknownKind(kind)) if kind == "token"
        ));
    }

    #[test]
    fn entry_round_trips_through_json_with_rfc3339_time() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 123_456_789);
        let entry = NewRevocation::revoke(RevocationKind::Principal, "alice", "left", "ops")
            .unwrap()
            .into_entry(7, at);
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["at"], "2023-11-14T22:13:20.123456789Z");
        assert_eq!(json["kind"], "principal");
        assert_eq!(json["lifted"], false);
        let back: RevocationEntry = serde_json::from_value(json).unwrap();
        assert_eq!(back, entry);
    }

    #[test]
    fn token_ids_are_validated_and_lowercased() {
        let ok = NewRevocation::revoke(RevocationKind::TokenId, "ABcd01", "", "ops").unwrap();
        assert_eq!(ok.value(), "abcd01");

        let cases = [
            ("abc", "token id must be an even number of hex digits"),
            ("zz", "token id must be lowercase hex"),
            ("", "value is empty"),
        ];
        for (value, expected) in cases {
            match NewRevocation::revoke(RevocationKind::TokenId, value, "", "ops") {
                Err(Error::InvalidValue { problem, .. }) => assert_eq!(problem, expected),
                other => panic!("{value:?}: expected InvalidValue, got {other:?}"),
            }
        }
        let too_long = "ab".repeat(MAX_TOKEN_ID_BYTES + 1);
        assert!(matches!(
            NewRevocation::revoke(RevocationKind::TokenId, too_long, "", "ops"),
            Err(Error::InvalidValue {
                problem: "token id is longer than 128 bytes",
                ..
            })
        ));
        let max = "ab".repeat(MAX_TOKEN_ID_BYTES);
        assert!(NewRevocation::revoke(RevocationKind::TokenId, max, "", "ops").is_ok());
    }

    #[test]
    fn values_are_bounded_and_clean() {
        let long = "ab".repeat(MAX_VALUE_LEN / 2 + 1);
        assert!(matches!(
            NewRevocation::revoke(RevocationKind::TokenId, long, "", "ops"),
            Err(Error::TooLong {
                field: "value",
                len: 514,
                max: 512
            })
        ));
        // Names break the rules `mandate issue` applies, worded as it words them.
        assert!(matches!(
            NewRevocation::revoke(RevocationKind::Principal, "a".repeat(257), "", "ops"),
            Err(Error::InvalidName {
                problem: mandate_core::name::NameProblem::TooLong { len: 257 },
                ..
            })
        ));
        assert!(matches!(
            NewRevocation::revoke(RevocationKind::Agent, " bot", "", "ops"),
            Err(Error::InvalidName {
                problem: mandate_core::name::NameProblem::SurroundingWhitespace,
                ..
            })
        ));
        assert!(matches!(
            NewRevocation::revoke(RevocationKind::Task, "t\n1", "", "ops"),
            Err(Error::InvalidName {
                problem: mandate_core::name::NameProblem::ControlOrWhitespace { .. },
                ..
            })
        ));
        let reason = "r".repeat(MAX_REASON_LEN + 1);
        assert!(matches!(
            NewRevocation::revoke(RevocationKind::Task, "t1", reason, "ops"),
            Err(Error::TooLong {
                field: "reason",
                ..
            })
        ));
    }

    #[test]
    fn agent_keys_must_be_valid_and_are_stored_lowercase() {
        let key = mandate_core::SecretKey::generate().public().to_string();
        let hex = key.strip_prefix("ed25519/").unwrap();
        let shouted = format!("ED25519/{}", hex.to_ascii_uppercase());
        for spelling in [key.clone(), shouted, format!("Ed25519/{hex}")] {
            for new in [
                NewRevocation::revoke(RevocationKind::Agent, spelling.as_str(), "", "ops"),
                NewRevocation::lift(RevocationKind::Agent, spelling.as_str(), "", "ops"),
            ] {
                assert_eq!(new.unwrap().value(), key, "{spelling}");
            }
        }

        let not_a_point = format!("ed25519/02{}", "00".repeat(31));
        let cases = [
            "ed25519/".to_owned(),
            "ed25519/abcd".to_owned(),
            format!("ed25519/{}", "zz".repeat(32)),
            format!("ED25519/{hex}00"),
            format!("ed25519/ {}", &hex[1..]),
            not_a_point,
        ];
        for value in cases {
            match NewRevocation::revoke(RevocationKind::Agent, value.as_str(), "", "ops") {
                Err(Error::InvalidValue { kind, problem }) => {
                    assert_eq!(kind, RevocationKind::Agent);
                    assert!(problem.contains("Ed25519 public key"), "{problem}");
                }
                other => panic!("{value:?}: expected InvalidValue, got {other:?}"),
            }
        }
    }

    #[test]
    fn agent_names_and_other_kinds_keep_their_spelling() {
        for (kind, value) in [
            (RevocationKind::Agent, "Orchestrator"),
            (RevocationKind::Agent, "ed25519-bot"),
            (RevocationKind::Principal, "ed25519/bob"),
            (RevocationKind::Task, "ED25519/Q3"),
        ] {
            let new = NewRevocation::revoke(kind, value, "", "ops").unwrap();
            assert_eq!(new.value(), value, "{kind}");
        }
    }

    #[test]
    fn names_must_be_canonical_as_issue_requires() {
        let cases = [
            (RevocationKind::Principal, "Erin@x.com", "use `erin@x.com`"),
            (
                RevocationKind::Principal,
                "\u{430}lice",
                "mixes letters of scripts",
            ),
            (RevocationKind::Agent, "da\u{200D}ve", "invisible character"),
            (
                RevocationKind::Task,
                "jose\u{301}",
                "write it as `jos\\u{00E9}`",
            ),
        ];
        for (kind, value, expected) in cases {
            for new in [
                NewRevocation::revoke(kind, value, "", "ops"),
                NewRevocation::lift(kind, value, "", "ops"),
            ] {
                match new {
                    Err(Error::NotLiftable { .. }) => assert!(!kind.is_liftable()),
                    Err(error @ Error::InvalidName { kind: refused, .. }) => {
                        assert_eq!(refused, kind);
                        let message = error.to_string();
                        assert!(message.contains(expected), "{message}");
                        assert!(message.is_ascii(), "{message}");
                    }
                    other => panic!("{kind} {value:?}: expected InvalidName, got {other:?}"),
                }
            }
        }
        // Entries already in a log are not re-judged: a verifier must keep loading them.
        let mut entry = NewRevocation::revoke(RevocationKind::Principal, "erin", "", "ops")
            .unwrap()
            .into_entry(1, SystemTime::UNIX_EPOCH);
        entry.value = "Erin".into();
        assert!(entry.validate().is_ok());
    }

    #[test]
    fn only_principals_and_agents_can_be_lifted() {
        for kind in [RevocationKind::TokenId, RevocationKind::Task] {
            let value = if kind == RevocationKind::TokenId {
                "ab"
            } else {
                "t1"
            };
            match NewRevocation::lift(kind, value, "", "ops") {
                Err(Error::NotLiftable { kind: refused }) => assert_eq!(refused, kind),
                other => panic!("{kind}: expected NotLiftable, got {other:?}"),
            }
        }
        let lift = NewRevocation::lift(RevocationKind::Agent, "bot", "", "ops").unwrap();
        assert!(lift.is_lift());

        // A lifted task entry arriving from the wire is rejected too.
        let mut entry = NewRevocation::revoke(RevocationKind::Task, "t1", "", "ops")
            .unwrap()
            .into_entry(1, SystemTime::UNIX_EPOCH);
        entry.lifted = true;
        assert!(matches!(
            entry.validate(),
            Err(Error::NotLiftable {
                kind: RevocationKind::Task
            })
        ));
    }
}
