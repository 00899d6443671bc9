//! Compact storage for the revocation index: the revoked values of one kind, and the
//! operators' reasons, without one heap allocation per entry.
//!
//! A verifier holds every revocation in force, possibly millions of them, so what each
//! one costs matters: a hash map of owned strings to whole log entries costs several
//! hundred bytes per entry and an allocation for each string. Here the bytes of every
//! value live in one growing buffer, a [`HashTable`] of 4-byte slot numbers finds them,
//! and each slot keeps only what a denial must name: the value, the entry's sequence
//! number and its reason. Reasons repeat (most are empty, or one per incident), so they
//! are interned ([`ReasonTable`]) and a slot holds a 4-byte id.
//!
//! Removing a value (a lift) drops it from the hash table; its bytes stay in the buffer
//! until the index is rebuilt. Every slot comes from one log entry, so the buffer never
//! outgrows the log.
//!
//! This module knows nothing of revocation semantics (which entry wins, what lifts
//! what): `index.rs` decides; this only stores and finds.

use std::hash::BuildHasher;

use hashbrown::hash_table::{Entry, HashTable};
use rustc_hash::{FxBuildHasher, FxHashMap};

use crate::error::{Error, Result};

/// The largest number of slots (or distinct reasons) a table holds: its ids are `u32`.
const MAX_SLOTS: usize = u32::MAX as usize;

fn hash(bytes: &[u8]) -> u64 {
    FxBuildHasher.hash_one(bytes)
}

/// A slot number as a `u32`, or [`Error::IndexFull`].
fn slot_id(len: usize) -> Result<u32> {
    u32::try_from(len).map_err(|_| Error::IndexFull { limit: MAX_SLOTS })
}

/// Where one value's bytes sit in a table's buffer.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    len: u32,
}

impl Span {
    fn of<'a>(&self, buffer: &'a [u8]) -> &'a [u8] {
        // Spans are only made by `push` on the same buffer, which only grows, so the
        // range is always inside it; an empty slice would merely match nothing.
        buffer
            .get(self.start..self.start + self.len as usize)
            .unwrap_or_default()
    }
}

/// Appends `bytes` to `buffer`, returning where they went.
fn push(buffer: &mut Vec<u8>, bytes: &[u8]) -> Result<Span> {
    let len = slot_id(bytes.len())?;
    let start = buffer.len();
    buffer.extend_from_slice(bytes);
    Ok(Span { start, len })
}

/// One revoked value and what a denial reports about it.
#[derive(Debug, Clone, Copy)]
struct Slot {
    value: Span,
    seq: u64,
    reason: u32,
}

/// A found value: the sequence number and reason id of the entry that revoked it, and
/// the spelling that entry gave it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found<'a> {
    /// The entry's sequence number.
    pub seq: u64,
    /// The entry's reason, as a [`ReasonTable`] id.
    pub reason: u32,
    /// The value as the entry spelled it, when that differs from the key it is found by.
    pub spelling: Option<&'a str>,
    /// The key it is found by.
    pub key: &'a [u8],
}

/// Revoked values of one kind (keys are bytes), each with the entry that revoked it.
#[derive(Debug, Clone, Default)]
pub(crate) struct ValueTable {
    /// Slot numbers, hashed by their value's bytes.
    table: HashTable<u32>,
    slots: Vec<Slot>,
    bytes: Vec<u8>,
    /// The spelling an entry gave its value, for the few entries whose key differs
    /// from it (agent keys written in upper case before they were canonicalised).
    spellings: FxHashMap<u32, Box<str>>,
}

impl ValueTable {
    /// How many values are in the table.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the table is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The entry that revoked `key`, if any.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Found<'_>> {
        let (slots, bytes) = (&self.slots, &self.bytes);
        let id = *self.table.find(hash(key), |&id| {
            slots
                .get(id as usize)
                .is_some_and(|slot| slot.value.of(bytes) == key)
        })?;
        let slot = slots.get(id as usize)?;
        Some(Found {
            seq: slot.seq,
            reason: slot.reason,
            spelling: self.spellings.get(&id).map(AsRef::as_ref),
            key: slot.value.of(bytes),
        })
    }

    /// Records `key` as revoked by entry `seq` unless it already is (the earliest entry
    /// stays the reported one). `spelling` is the entry's value when it differs from
    /// `key`.
    ///
    /// # Errors
    /// [`Error::IndexFull`]; the table is then unchanged.
    pub(crate) fn insert_first(
        &mut self,
        key: &[u8],
        spelling: Option<&str>,
        seq: u64,
        reason: u32,
    ) -> Result<()> {
        let (slots, bytes) = (&mut self.slots, &mut self.bytes);
        let entry = self.table.entry(
            hash(key),
            |&id| {
                slots
                    .get(id as usize)
                    .is_some_and(|slot| slot.value.of(bytes) == key)
            },
            |&id| {
                slots
                    .get(id as usize)
                    .map_or(0, |slot| hash(slot.value.of(bytes)))
            },
        );
        let Entry::Vacant(vacant) = entry else {
            return Ok(());
        };
        let id = slot_id(slots.len())?;
        let value = push(bytes, key)?;
        slots.push(Slot { value, seq, reason });
        vacant.insert(id);
        if let Some(spelling) = spelling {
            self.spellings.insert(id, spelling.into());
        }
        Ok(())
    }

    /// Forgets `key`, if present.
    pub(crate) fn remove(&mut self, key: &[u8]) {
        let (slots, bytes) = (&self.slots, &self.bytes);
        if let Ok(found) = self.table.find_entry(hash(key), |&id| {
            slots
                .get(id as usize)
                .is_some_and(|slot| slot.value.of(bytes) == key)
        }) {
            let (id, _) = found.remove();
            self.spellings.remove(&id);
        }
    }

    /// Makes room for `additional` more values of about `value_len` bytes each.
    pub(crate) fn reserve(&mut self, additional: usize, value_len: usize) {
        let (slots, bytes) = (&self.slots, &self.bytes);
        self.table.reserve(additional, |&id| {
            slots
                .get(id as usize)
                .map_or(0, |slot| hash(slot.value.of(bytes)))
        });
        self.slots.reserve(additional);
        self.bytes.reserve(additional.saturating_mul(value_len));
    }
}

/// The operators' reasons, each stored once; entries refer to them by id.
#[derive(Debug, Clone)]
pub(crate) struct ReasonTable {
    table: HashTable<u32>,
    spans: Vec<Span>,
    text: Vec<u8>,
}

impl Default for ReasonTable {
    fn default() -> Self {
        // Id 0 is the empty reason, the most common one, so it never needs a lookup.
        Self {
            table: HashTable::new(),
            spans: vec![Span { start: 0, len: 0 }],
            text: Vec::new(),
        }
    }
}

impl ReasonTable {
    /// The id of `reason`, storing it if it is new.
    ///
    /// # Errors
    /// [`Error::IndexFull`]; the table is then unchanged.
    pub(crate) fn intern(&mut self, reason: &str) -> Result<u32> {
        if reason.is_empty() {
            return Ok(0);
        }
        let key = reason.as_bytes();
        let (spans, text) = (&mut self.spans, &mut self.text);
        let entry = self.table.entry(
            hash(key),
            |&id| {
                spans
                    .get(id as usize)
                    .is_some_and(|span| span.of(text) == key)
            },
            |&id| spans.get(id as usize).map_or(0, |span| hash(span.of(text))),
        );
        match entry {
            Entry::Occupied(found) => Ok(*found.get()),
            Entry::Vacant(vacant) => {
                let id = slot_id(spans.len())?;
                spans.push(push(text, key)?);
                vacant.insert(id);
                Ok(id)
            }
        }
    }

    /// The reason with this id (empty for an unknown id, which `intern` never returns).
    pub(crate) fn get(&self, id: u32) -> &str {
        let bytes = self
            .spans
            .get(id as usize)
            .map_or(&[][..], |span| span.of(&self.text));
        // Only whole `&str`s are stored, and spans cover exactly one each.
        std::str::from_utf8(bytes).unwrap_or_default()
    }
}
