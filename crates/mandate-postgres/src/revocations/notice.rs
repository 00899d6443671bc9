//! What a `mandate_revocations` notification says: the newest seq committed, and the
//! entries themselves when they fitted in the payload (see `migrations/registry/V2…`).
//!
//! Any role that can connect to the database can send a notification, so entries are
//! taken from a payload only when it carries a valid HMAC-SHA256 under the log's
//! notification key, which only the log's owner can read; and even then each entry is
//! checked as every entry read from the log is ([`RevocationEntry::validate`]), and the
//! entries must be consecutive and end at the newest seq. Anything else (a payload of
//! V1's form, an unsigned, forged or malformed one) still says that something was
//! committed, so the listener reads by sequence. This module must never panic on a
//! payload, nor take entries from one whose signature does not verify.

use hmac::{Hmac, Mac};
use mandate_registry::RevocationEntry;
use serde::Deserialize;
use sha2::Sha256;

/// One notification, as understood.
#[derive(Debug, PartialEq)]
pub(super) enum Notice {
    /// These entries, consecutive, were committed; the last is the newest.
    Entries(Vec<RevocationEntry>),
    /// Entries up to this seq were committed (they did not fit in the payload).
    Upto(u64),
    /// Something was committed; the payload did not say what.
    Unknown,
}

/// The JSON form of a payload.
#[derive(Deserialize)]
struct Payload {
    last: u64,
    entries: Vec<RevocationEntry>,
}

impl Notice {
    /// Reads a notification's payload, signed under `key`.
    pub(super) fn parse(payload: &str, key: &[u8]) -> Notice {
        if let Ok(last) = payload.trim().parse::<u64>() {
            return Notice::Upto(last);
        }
        let Some(json) = verified(payload, key) else {
            tracing::warn!(
                bytes = payload.len(),
                "revocation notification without a valid signature; reading the log instead"
            );
            return Notice::Unknown;
        };
        let Ok(payload) = serde_json::from_str::<Payload>(json) else {
            tracing::debug!(bytes = payload.len(), "unreadable revocation notification");
            return Notice::Unknown;
        };
        let consecutive = payload
            .entries
            .windows(2)
            .all(|pair| pair[0].seq.checked_add(1) == Some(pair[1].seq));
        let ends_at_last = payload.entries.last().map(|e| e.seq) == Some(payload.last);
        let valid = payload.entries.iter().all(|e| e.validate().is_ok());
        if consecutive && ends_at_last && valid {
            Notice::Entries(payload.entries)
        } else {
            tracing::debug!(
                last = payload.last,
                "revocation notification with entries that do not add up"
            );
            Notice::Upto(payload.last)
        }
    }
}

/// The JSON of a payload `"<hmac hex> <json>"` whose HMAC verifies under `key`.
fn verified<'a>(payload: &'a str, key: &[u8]) -> Option<&'a str> {
    let (tag, json) = payload.split_once(' ')?;
    let tag = hex::decode(tag).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(json.as_bytes());
    // Constant time.
    mac.verify_slice(&tag).ok()?;
    Some(json)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, SystemTime};

    use mandate_registry::{NewRevocation, RevocationKind};

    use super::*;

    fn entry(seq: u64) -> RevocationEntry {
        NewRevocation::revoke(RevocationKind::Task, format!("task-{seq}"), "gone", "ops")
            .unwrap()
            .into_entry(
                seq,
                SystemTime::UNIX_EPOCH + Duration::from_micros(1_764_620_000_123_456),
            )
    }

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    /// `json` signed as the append function signs it.
    fn signed(json: &str, key: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(json.as_bytes());
        let tag: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{tag} {json}")
    }

    /// A payload as the append function writes it.
    fn payload(last: u64, entries: &[RevocationEntry]) -> String {
        let entries: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "seq": e.seq, "kind": e.kind.as_str(), "value": e.value,
                    "reason": e.reason, "revoked_by": e.revoked_by,
                    "at": "2025-12-01T20:13:20.123456Z", "lifted": e.lifted,
                })
            })
            .collect();
        signed(
            &serde_json::json!({ "last": last, "entries": entries }).to_string(),
            KEY,
        )
    }

    #[test]
    fn entries_that_add_up_are_carried() {
        let entries = vec![entry(7), entry(8)];
        assert_eq!(
            Notice::parse(&payload(8, &entries), KEY),
            Notice::Entries(entries)
        );
    }

    #[test]
    fn a_bare_seq_says_only_how_far() {
        assert_eq!(Notice::parse("42", KEY), Notice::Upto(42));
    }

    #[test]
    fn entries_that_do_not_add_up_say_only_how_far() {
        // A gap, a last that is not the newest entry, an invalid entry.
        assert_eq!(
            Notice::parse(&payload(9, &[entry(7), entry(9)]), KEY),
            Notice::Upto(9)
        );
        assert_eq!(
            Notice::parse(&payload(9, &[entry(7), entry(8)]), KEY),
            Notice::Upto(9)
        );
        let mut bad = entry(3);
        bad.value = String::new();
        assert_eq!(Notice::parse(&payload(3, &[bad]), KEY), Notice::Upto(3));
        assert_eq!(Notice::parse(&payload(3, &[]), KEY), Notice::Upto(3));
    }

    #[test]
    fn anything_else_is_a_hint_of_unknown_extent() {
        for junk in [
            "",
            "-1",
            "{",
            "{\"last\": -3, \"entries\": []}",
            "null",
            "[1,2]",
        ] {
            assert_eq!(Notice::parse(junk, KEY), Notice::Unknown, "{junk:?}");
            assert_eq!(
                Notice::parse(&signed(junk, KEY), KEY),
                Notice::Unknown,
                "{junk:?}"
            );
        }
    }

    #[test]
    fn entries_not_signed_under_the_key_are_not_taken() {
        let genuine = payload(7, &[entry(7)]);
        let (_, body) = genuine.split_once(' ').unwrap();
        // Unsigned, signed under another key, a tag altered, a body altered.
        for forged in [
            body.to_owned(),
            signed(body, b"another key, another key, another"),
            format!("{} {body}", "0".repeat(64)),
            genuine.replace("task-7", "task-8"),
            format!("zz {body}"),
        ] {
            assert_eq!(Notice::parse(&forged, KEY), Notice::Unknown, "{forged}");
        }
        assert_eq!(Notice::parse(&genuine, b"wrong"), Notice::Unknown);
    }
}
