//! Revocation index semantics and the shared index's fail-closed freshness.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant, SystemTime};

use mandate_registry::{
    AgentRef, Denied, Error, NewRevocation, RevocationEntry, RevocationIndex, RevocationKind,
    SharedIndex, Subject,
};

/// Builds the log entries `(kind, value, lifted)` with seqs 1, 2, ...
fn log(items: &[(RevocationKind, &str, bool)]) -> Vec<RevocationEntry> {
    items
        .iter()
        .enumerate()
        .map(|(i, (kind, value, lifted))| {
            let new = if *lifted {
                NewRevocation::lift(*kind, *value, "lift", "ops")
            } else {
                NewRevocation::revoke(*kind, *value, format!("reason {}", i + 1), "ops")
            };
            new.unwrap()
                .into_entry(i as u64 + 1, SystemTime::UNIX_EPOCH)
        })
        .collect()
}

fn index_of(items: &[(RevocationKind, &str, bool)]) -> RevocationIndex {
    let mut index = RevocationIndex::new();
    for entry in log(items) {
        index.apply(&entry).unwrap();
    }
    index
}

const PARENT_IDS: [[u8; 2]; 2] = [[0xaa, 0x01], [0xaa, 0x02]];
const CHILD_OWN_ID: [u8; 2] = [0xbb, 0x03];

fn parent_ids() -> Vec<Vec<u8>> {
    PARENT_IDS.iter().map(|id| id.to_vec()).collect()
}

fn child_ids() -> Vec<Vec<u8>> {
    let mut ids = parent_ids();
    ids.push(CHILD_OWN_ID.to_vec());
    ids
}

/// Valid Ed25519 public keys in the form tokens print them (lowercase hex).
const ORCHESTRATOR_KEY: &str =
    "ed25519/3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";
const ANALYTICS_KEY: &str =
    "ed25519/d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const UNRELATED_KEY: &str =
    "ed25519/fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025";

const AGENTS: [AgentRef<'static>; 2] = [
    AgentRef {
        name: "orchestrator",
        public_key: ORCHESTRATOR_KEY,
    },
    AgentRef {
        name: "analytics",
        public_key: ANALYTICS_KEY,
    },
];

fn subject<'a>(ids: &'a [Vec<u8>]) -> Subject<'a> {
    Subject {
        revocation_ids: ids,
        principal: "bob",
        task: "q3-report",
        agents: &AGENTS,
    }
}

/// Returns (kind, value, seq) of the matching entry, for compact assertions.
fn hit(index: &RevocationIndex, subject: &Subject<'_>) -> Option<(RevocationKind, String, u64)> {
    index
        .check(subject)
        .map(|e| (e.kind, e.value.into_owned(), e.seq))
}

#[test]
fn revoking_a_parent_block_id_revokes_every_delegated_token() {
    let (parent, child) = (parent_ids(), child_ids());
    let index = index_of(&[(RevocationKind::TokenId, "aa02", false)]);
    let expected = Some((RevocationKind::TokenId, "aa02".to_owned(), 1));
    assert_eq!(hit(&index, &subject(&parent)), expected);
    assert_eq!(hit(&index, &subject(&child)), expected);
}

#[test]
fn revoking_a_child_block_id_leaves_the_parent_alive() {
    let (parent, child) = (parent_ids(), child_ids());
    let index = index_of(&[(RevocationKind::TokenId, "bb03", false)]);
    assert_eq!(hit(&index, &subject(&parent)), None);
    assert_eq!(
        hit(&index, &subject(&child)),
        Some((RevocationKind::TokenId, "bb03".to_owned(), 1))
    );
}

#[test]
fn principal_task_and_agent_entries_match_their_fields() {
    let ids = child_ids();
    let cases: [(RevocationKind, &str, bool); 6] = [
        (RevocationKind::Principal, "bob", true),
        (RevocationKind::Principal, "alice", false),
        (RevocationKind::Task, "q3-report", true),
        (RevocationKind::Task, "q4-report", false),
        (RevocationKind::Agent, "analytics", true),
        (RevocationKind::Agent, ORCHESTRATOR_KEY, true),
    ];
    for (kind, value, matches) in cases {
        let index = index_of(&[(kind, value, false)]);
        let expected = matches.then(|| (kind, value.to_owned(), 1));
        assert_eq!(hit(&index, &subject(&ids)), expected, "{kind} {value}");
    }
    let index = index_of(&[(RevocationKind::Agent, UNRELATED_KEY, false)]);
    assert_eq!(hit(&index, &subject(&ids)), None, "unrelated agent key");
}

#[test]
fn a_lift_cancels_earlier_entries_and_a_later_revoke_reinstates() {
    let ids = child_ids();
    let items = [
        (RevocationKind::Principal, "bob", false),
        (RevocationKind::Principal, "bob", false),
        (RevocationKind::Principal, "bob", true),
    ];
    let mut index = index_of(&items);
    assert_eq!(hit(&index, &subject(&ids)), None, "one lift cancels both");
    assert_eq!(index.last_seq(), 3);
    assert_eq!(index.active_len(), 0);

    let again = NewRevocation::revoke(RevocationKind::Principal, "bob", "again", "ops")
        .unwrap()
        .into_entry(4, SystemTime::UNIX_EPOCH);
    index.apply(&again).unwrap();
    let entry = index.check(&subject(&ids)).unwrap();
    assert_eq!((entry.seq, entry.reason), (4, "again"));

    let agent = index_of(&[
        (RevocationKind::Agent, "analytics", false),
        (RevocationKind::Agent, "analytics", true),
    ]);
    assert_eq!(hit(&agent, &subject(&ids)), None);
}

#[test]
fn apply_refuses_gaps_and_repeats_and_leaves_the_index_unchanged() {
    let entries = log(&[
        (RevocationKind::Task, "t1", false),
        (RevocationKind::Task, "t2", false),
        (RevocationKind::Task, "t3", false),
    ]);
    let mut index = RevocationIndex::new();
    index.apply(&entries[0]).unwrap();
    match index.apply(&entries[2]) {
        Err(Error::SeqGap { expected, got }) => assert_eq!((expected, got), (2, 3)),
        other => panic!("expected a gap error, got {other:?}"),
    }
    match index.apply(&entries[0]) {
        Err(Error::SeqGap { expected, got }) => assert_eq!((expected, got), (2, 1)),
        other => panic!("expected a repeat to be refused, got {other:?}"),
    }
    assert_eq!(index.last_seq(), 1);
    assert_eq!(index.active_len(), 1);

    // A malformed entry from the wire is refused without advancing.
    let mut bad = entries[1].clone();
    bad.kind = RevocationKind::TokenId;
    bad.value = "not-hex".to_owned();
    assert!(matches!(index.apply(&bad), Err(Error::InvalidValue { .. })));
    assert_eq!(index.last_seq(), 1);
    index.apply(&entries[1]).unwrap();
    assert_eq!(index.last_seq(), 2);
}

#[test]
fn a_never_synced_index_is_stale() {
    let ids = parent_ids();
    let shared = SharedIndex::new(Duration::from_secs(2));
    let now = Instant::now();
    assert_eq!(
        shared.check(&subject(&ids), now),
        Err(Denied::Stale {
            since: None,
            bound: Duration::from_secs(2)
        })
    );
    let denied = shared.check(&subject(&ids), now).unwrap_err();
    assert!(
        denied
            .to_string()
            .contains("revocation state stale (never synced)"),
        "{denied}"
    );
}

#[test]
fn an_index_goes_stale_after_the_bound() {
    let ids = parent_ids();
    let bound = Duration::from_secs(2);
    let shared = SharedIndex::new(bound);
    let t0 = Instant::now();
    shared.mark_fresh(t0);
    assert_eq!(shared.check(&subject(&ids), t0), Ok(()));
    assert_eq!(
        shared.check(&subject(&ids), t0 + bound),
        Ok(()),
        "bound is inclusive"
    );
    let late = t0 + bound + Duration::from_millis(1);
    assert_eq!(
        shared.check(&subject(&ids), late),
        Err(Denied::Stale {
            since: Some(bound + Duration::from_millis(1)),
            bound
        })
    );
    // An older heartbeat never moves freshness backwards; a newer one restores it.
    shared.mark_fresh(late);
    shared.mark_fresh(t0);
    assert_eq!(shared.last_heartbeat(), Some(late));
    assert_eq!(shared.check(&subject(&ids), late), Ok(()));
}

#[test]
fn shared_index_reports_the_revocation_with_its_reason() {
    let ids = child_ids();
    let shared = SharedIndex::new(Duration::from_secs(2));
    for entry in log(&[
        (RevocationKind::Task, "other", false),
        (RevocationKind::Principal, "bob", false),
    ]) {
        shared.apply(&entry).unwrap();
    }
    let t0 = Instant::now();
    shared.mark_fresh(t0);
    let expected = Denied::Revoked {
        kind: RevocationKind::Principal,
        value: "bob".to_owned(),
        seq: 2,
        reason: "reason 2".to_owned(),
    };
    assert_eq!(shared.check(&subject(&ids), t0), Err(expected.clone()));
    // Revocation wins over staleness as the reported reason.
    assert_eq!(
        shared.check(&subject(&ids), t0 + Duration::from_secs(60)),
        Err(expected)
    );
    assert_eq!(shared.last_seq(), 2);
}

#[test]
fn an_agent_key_revoked_in_uppercase_matches_the_token_key() {
    let ids = parent_ids();
    let shouted = ORCHESTRATOR_KEY.to_ascii_uppercase();
    // Written through validation: stored lowercase.
    let index = index_of(&[(RevocationKind::Agent, &shouted, false)]);
    assert_eq!(
        hit(&index, &subject(&ids)),
        Some((RevocationKind::Agent, ORCHESTRATOR_KEY.to_owned(), 1))
    );

    // Already in a log in uppercase (written before values were canonicalised): the
    // index still matches it, and a lift in either spelling cancels it.
    let mut old = NewRevocation::revoke(RevocationKind::Agent, "placeholder", "", "ops")
        .unwrap()
        .into_entry(1, SystemTime::UNIX_EPOCH);
    old.value = shouted.clone();
    let mut index = RevocationIndex::new();
    index.apply(&old).unwrap();
    assert_eq!(
        index.check(&subject(&ids)).map(|e| e.value.into_owned()),
        Some(shouted.clone())
    );
    let lift = NewRevocation::lift(RevocationKind::Agent, ORCHESTRATOR_KEY, "", "ops")
        .unwrap()
        .into_entry(2, SystemTime::UNIX_EPOCH);
    index.apply(&lift).unwrap();
    assert_eq!(hit(&index, &subject(&ids)), None);
}

#[test]
fn an_index_binds_to_one_log_epoch() {
    let shared = SharedIndex::new(Duration::from_secs(2));
    assert_eq!(shared.epoch(), None);
    shared.adopt_epoch("log-a").unwrap();
    shared.adopt_epoch("log-a").unwrap();
    assert_eq!(shared.epoch().as_deref(), Some("log-a"));
    for entry in log(&[(RevocationKind::Task, "t1", false)]) {
        shared.apply(&entry).unwrap();
    }
    match shared.adopt_epoch("log-b") {
        Err(Error::LogChanged { held, registry }) => {
            assert_eq!(
                (held.as_deref(), registry.as_str()),
                (Some("log-a"), "log-b")
            );
        }
        other => panic!("expected LogChanged, got {other:?}"),
    }
    assert_eq!(
        shared.epoch().as_deref(),
        Some("log-a"),
        "unchanged on refusal"
    );
    assert_eq!(shared.last_seq(), 1);

    // Entries applied without an epoch belong to no known log.
    let unbound = SharedIndex::new(Duration::from_secs(2));
    for entry in log(&[(RevocationKind::Task, "t1", false)]) {
        unbound.apply(&entry).unwrap();
    }
    assert!(matches!(
        unbound.adopt_epoch("log-a"),
        Err(Error::LogChanged { held: None, .. })
    ));
}

#[test]
fn reset_empties_the_index_and_makes_it_never_synced() {
    let ids = child_ids();
    let shared = SharedIndex::new(Duration::from_secs(2));
    shared.adopt_epoch("log-a").unwrap();
    for entry in log(&[(RevocationKind::Principal, "bob", false)]) {
        shared.apply(&entry).unwrap();
    }
    let t0 = Instant::now();
    shared.mark_fresh(t0);
    shared.reset();
    assert_eq!(
        shared.check(&subject(&ids), t0),
        Err(Denied::Stale {
            since: None,
            bound: Duration::from_secs(2)
        }),
        "neither the old revocation nor the old freshness survive"
    );
    assert_eq!((shared.last_seq(), shared.epoch()), (0, None));
    assert_eq!(shared.with_index(RevocationIndex::active_len), 0);
    shared.adopt_epoch("log-b").unwrap();
}

#[test]
fn mark_stale_keeps_entries_but_denies_until_confirmed() {
    let ids = parent_ids();
    let shared = SharedIndex::new(Duration::MAX);
    for entry in log(&[(RevocationKind::Task, "other", false)]) {
        shared.apply(&entry).unwrap();
    }
    let t0 = Instant::now();
    shared.mark_fresh(t0);
    assert_eq!(shared.check(&subject(&ids), t0), Ok(()));
    shared.mark_stale();
    assert!(matches!(
        shared.check(&subject(&ids), t0),
        Err(Denied::Stale { since: None, .. })
    ));
    assert_eq!(shared.last_seq(), 1);
}

#[test]
fn many_entries_each_report_their_own_value_seq_and_reason() {
    // Enough entries to grow the compact tables many times over; reasons repeat, as
    // they do when one incident revokes many tokens, and some are empty.
    let mut index = RevocationIndex::new();
    let count = 20_000u64;
    for seq in 1..=count {
        let (kind, value) = match seq % 3 {
            0 => (RevocationKind::TokenId, format!("{seq:08x}")),
            1 => (RevocationKind::Task, format!("task-{seq}")),
            _ => (RevocationKind::Principal, format!("user-{seq}")),
        };
        let reason = if seq % 5 == 0 {
            String::new()
        } else {
            format!("incident {}", seq % 7)
        };
        let entry = NewRevocation::revoke(kind, value, reason, "ops")
            .unwrap()
            .into_entry(seq, SystemTime::UNIX_EPOCH);
        index.apply(&entry).unwrap();
    }
    assert_eq!(index.active_len(), count as usize);
    for seq in [3u64, 4, 5, 10, 9_999, 19_998, count] {
        let ids = [hex::decode(format!("{seq:08x}")).unwrap()];
        let (task, principal) = (format!("task-{seq}"), format!("user-{seq}"));
        let found = index
            .check(&Subject {
                revocation_ids: &ids,
                principal: &principal,
                task: &task,
                agents: &[],
            })
            .unwrap();
        let expected_value = match seq % 3 {
            0 => format!("{seq:08x}"),
            1 => task.clone(),
            _ => principal.clone(),
        };
        let expected_reason = if seq % 5 == 0 {
            String::new()
        } else {
            format!("incident {}", seq % 7)
        };
        assert_eq!(
            (found.value.as_ref(), found.seq, found.reason),
            (expected_value.as_str(), seq, expected_reason.as_str())
        );
    }
    let ids = [vec![0xff; 4]];
    let miss = Subject {
        revocation_ids: &ids,
        principal: "user-3",
        task: "task-2",
        agents: &[],
    };
    assert!(
        index.check(&miss).is_none(),
        "neighbouring values do not match"
    );
}

#[test]
fn apply_all_keeps_what_it_applied_before_a_refused_entry() {
    let entries = log(&[
        (RevocationKind::Task, "t1", false),
        (RevocationKind::Task, "t2", false),
        (RevocationKind::Task, "t3", false),
    ]);
    let shared = SharedIndex::new(Duration::from_secs(2));
    let out_of_order = [entries[0].clone(), entries[2].clone(), entries[1].clone()];
    assert!(matches!(
        shared.apply_all(&out_of_order),
        Err(Error::SeqGap {
            expected: 2,
            got: 3
        })
    ));
    assert_eq!(shared.last_seq(), 1);
    shared.apply_all(&entries[1..]).unwrap();
    assert_eq!(
        (
            shared.last_seq(),
            shared.with_index(RevocationIndex::active_len)
        ),
        (3, 3)
    );
}
