//! `mandate audit verify`: reads a whole log and says whether anyone changed
//! it, naming the first record that is not as written.
//!
//! Links catch an edited, deleted or moved record; signed heads catch a
//! truncated log and a tail replaced by a consistently re-linked one (only
//! the writer's key can sign a head). Records after the newest signed head
//! are linked but not yet signed: a crash leaves a few, and the report says
//! how many. Heads are checked against the writer keys given, or, without
//! any, against the keys the heads name (which proves the links, not who
//! wrote them).

use std::collections::BTreeMap;

use mandate_core::PublicKey;
use serde::Deserialize;

use crate::integrity::{head_signature_valid, parse_hash, Hash, GENESIS};
use crate::log::AuditLog;
use crate::Result;

/// How many entries are read at once.
const CHUNK: usize = 8192;

/// A log that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Records in the log.
    pub records: u64,
    /// Signed heads checked.
    pub heads: u64,
    /// The newest signed head's sequence number (0: none).
    pub last_signed: u64,
    /// The writer keys whose heads were accepted.
    pub writers: Vec<String>,
    /// Whether the writer keys were given (pinned) rather than read from the
    /// heads.
    pub pinned: bool,
}

impl Verified {
    /// Records after the newest signed head.
    pub fn unsigned_tail(&self) -> u64 {
        self.records.saturating_sub(self.last_signed)
    }
}

/// The first thing wrong with a log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record #{seq}: {problem}")]
pub struct Tampered {
    /// The first record that is not as written.
    pub seq: u64,
    /// What is wrong with it.
    pub problem: String,
}

/// The outcome of [`verify`]: a storage error, or the log's verdict.
pub type Verdict = std::result::Result<Verified, Tampered>;

#[derive(Deserialize)]
struct SeqOnly {
    seq: u64,
}

/// Verifies every record and signed head of `log`. With `writers`, a head
/// signed by any other key is tampering.
///
/// # Errors
/// [`crate::Error`] when the log cannot be read at all; tampering is the
/// inner `Err`.
pub fn verify(log: &dyn AuditLog, writers: &[PublicKey]) -> Result<Verdict> {
    verify_with_witnesses(log, writers, &[])
}

/// As [`verify`], and every `(seq, hash)` in `witnesses` — heads kept
/// outside the store, e.g. from the server's log lines `audit head signed` —
/// must still be in the log: this catches a log cut after its newest heads
/// were deleted too.
///
/// # Errors
/// As [`verify`].
pub fn verify_with_witnesses(
    log: &dyn AuditLog,
    writers: &[PublicKey],
    witnesses: &[(u64, Hash)],
) -> Result<Verdict> {
    let log_id = log.log_id()?;
    let pinned: Vec<String> = writers.iter().map(ToString::to_string).collect();
    let mut problems: Vec<Tampered> = Vec::new();
    let mut heads: BTreeMap<u64, Hash> = BTreeMap::new();
    let mut seen_writers: Vec<String> = Vec::new();
    let all_heads = log.heads()?;
    for head in &all_heads {
        if !pinned.is_empty() && !pinned.contains(&head.writer) {
            problems.push(Tampered {
                seq: head.seq,
                problem: format!(
                    "its head is signed by {}, not a given writer key",
                    head.writer
                ),
            });
            continue;
        }
        let hash = parse_hash(&head.hash);
        match hash {
            Some(hash) if head_signature_valid(&log_id, head) => {
                heads.insert(head.seq, hash);
                if !seen_writers.contains(&head.writer) {
                    seen_writers.push(head.writer.clone());
                }
            }
            _ => problems.push(Tampered {
                seq: head.seq,
                problem: "its signed head has a bad signature (the head was forged or edited)"
                    .into(),
            }),
        }
    }

    for (seq, hash) in witnesses {
        if let Some(signed) = heads.get(seq) {
            if signed != hash {
                problems.push(Tampered {
                    seq: *seq,
                    problem: "its signed head differs from the head kept outside the store".into(),
                });
            }
        }
        heads.entry(*seq).or_insert(*hash);
    }

    let mut expected = 1u64;
    let mut prev: Hash = GENESIS;
    let mut previous_head = 0u64;
    let mut chain_problem: Option<Tampered> = None;
    'read: loop {
        let chunk = match log.read(expected, CHUNK) {
            Ok(chunk) => chunk,
            // Bytes that are not a record where one should be: edited files.
            Err(crate::Error::Corrupt { seq, message }) => {
                chain_problem = Some(Tampered {
                    seq: seq.max(expected),
                    problem: format!("unreadable: {message}"),
                });
                break 'read;
            }
            Err(error) => return Err(error),
        };
        if chunk.is_empty() {
            break;
        }
        for (i, entry) in chunk.iter().enumerate() {
            if entry.seq != expected {
                // Further on, or already seen: moved rather than deleted.
                let moved = entry.seq < expected || chunk[i..].iter().any(|e| e.seq == expected);
                chain_problem = Some(Tampered {
                    seq: expected,
                    problem: if moved {
                        format!(
                            "out of place: #{} stands where #{expected} should (reordered)",
                            entry.seq
                        )
                    } else {
                        format!(
                            "missing (deleted): the log goes from #{} to #{}",
                            expected - 1,
                            entry.seq
                        )
                    },
                });
                break 'read;
            }
            if entry.prev != prev {
                let claimed = serde_json::from_slice::<SeqOnly>(&entry.body).map(|s| s.seq);
                chain_problem = Some(match claimed {
                    Ok(seq) if seq != entry.seq => Tampered {
                        seq: entry.seq,
                        problem: format!("out of place: it says it is #{seq} (reordered)"),
                    },
                    _ if entry.seq > 1 => Tampered {
                        seq: entry.seq - 1,
                        problem: format!(
                            "changed: its content no longer matches the hash record #{} links to",
                            entry.seq
                        ),
                    },
                    _ => Tampered {
                        seq: 1,
                        problem: "changed: the first record does not start the log".into(),
                    },
                });
                break 'read;
            }
            let hash = entry.hash();
            if let Some(signed) = heads.get(&entry.seq) {
                if *signed != hash {
                    chain_problem = Some(Tampered {
                        seq: previous_head + 1,
                        problem: format!(
                            "replaced: records #{} to #{} no longer match the head signed at #{}",
                            previous_head + 1,
                            entry.seq,
                            entry.seq
                        ),
                    });
                    break 'read;
                }
                previous_head = entry.seq;
            }
            // A record that no longer parses was edited even if it is the
            // newest (which no link covers yet).
            if serde_json::from_slice::<SeqOnly>(&entry.body)
                .ok()
                .map(|s| s.seq)
                != Some(entry.seq)
            {
                chain_problem = Some(Tampered {
                    seq: entry.seq,
                    problem: "changed: it does not read as record of this position".into(),
                });
                break 'read;
            }
            prev = hash;
            expected += 1;
        }
    }
    let records = expected - 1;
    if let Some(problem) = chain_problem {
        problems.push(problem);
    } else {
        if let Some((&beyond, _)) = heads.range(records + 1..).next() {
            problems.push(Tampered {
                seq: records + 1,
                problem: format!(
                    "missing (truncated): the log ends at #{records} but a head was signed at #{beyond}"
                ),
            });
        }
        if records > 0 && all_heads.is_empty() && witnesses.is_empty() {
            problems.push(Tampered {
                seq: 1,
                problem: "no signed head at all: the heads were deleted".into(),
            });
        }
    }
    if let Some(first) = problems.into_iter().min_by_key(|p| p.seq) {
        return Ok(Err(first));
    }
    Ok(Ok(Verified {
        records,
        heads: all_heads.len() as u64,
        last_signed: heads.keys().next_back().copied().unwrap_or(0),
        writers: seen_writers,
        pinned: !pinned.is_empty(),
    }))
}
