//! A bounded memory of keys, each until a time: the `jti`s of actor tokens,
//! the nonces of proofs, the identity tokens handed to agents. Expired keys
//! are forgotten only when the memory is full; when it is still full after
//! that, nothing is forgotten early — the caller refuses instead (a
//! forgotten `jti` or nonce could be replayed).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};

/// The memory is full of unexpired keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

/// Keys remembered until a time (seconds since the epoch), at most `most`.
pub(crate) struct Remembered<K> {
    until: Mutex<HashMap<K, u64>>,
    most: usize,
}

impl<K> std::fmt::Debug for Remembered<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // How many, not which: the keys may be digests of credentials.
        let held = self
            .until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("Remembered")
            .field("held", &held)
            .field("most", &self.most)
            .finish()
    }
}

impl<K: Hash + Eq> Remembered<K> {
    /// An empty memory of at most `most` keys.
    pub(crate) fn new(most: usize) -> Remembered<K> {
        Remembered {
            until: Mutex::new(HashMap::new()),
            most,
        }
    }

    /// Remembers `key` until `until` if it is not remembered at `now`;
    /// `Ok(false)` when it is (a replay).
    ///
    /// # Errors
    /// [`Full`].
    pub(crate) fn insert_new(&self, key: K, until: u64, now: u64) -> Result<bool, Full> {
        let mut remembered = self.lock();
        match remembered.get_mut(&key) {
            Some(kept) if *kept >= now => return Ok(false),
            Some(kept) => *kept = until,
            None => {
                self.make_room(&mut remembered, now)?;
                remembered.insert(key, until);
            }
        }
        Ok(true)
    }

    /// Remembers `key` until `until` at least.
    ///
    /// # Errors
    /// [`Full`].
    pub(crate) fn keep(&self, key: K, until: u64, now: u64) -> Result<(), Full> {
        let mut remembered = self.lock();
        match remembered.get_mut(&key) {
            Some(kept) => *kept = (*kept).max(until),
            None => {
                self.make_room(&mut remembered, now)?;
                remembered.insert(key, until);
            }
        }
        Ok(())
    }

    /// Whether `key` is remembered at `now`.
    pub(crate) fn contains(&self, key: &K, now: u64) -> bool {
        self.lock().get(key).is_some_and(|kept| *kept >= now)
    }

    /// Room for one more key in `remembered`: expired keys are forgotten
    /// when it is full.
    fn make_room(&self, remembered: &mut HashMap<K, u64>, now: u64) -> Result<(), Full> {
        if remembered.len() >= self.most {
            remembered.retain(|_, kept| *kept >= now);
            if remembered.len() >= self.most {
                return Err(Full);
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, u64>> {
        // A panic elsewhere while holding the lock leaves the map whole.
        self.until.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_key_is_new_once_until_it_expires_and_a_full_memory_refuses() {
        let memory = Remembered::new(2);
        assert_eq!(memory.insert_new("a", 10, 0), Ok(true));
        assert_eq!(memory.insert_new("a", 10, 5), Ok(false));
        assert!(memory.contains(&"a", 10) && !memory.contains(&"a", 11));
        assert_eq!(memory.insert_new("b", 20, 5), Ok(true));
        // Full of unexpired keys: refused, nothing forgotten.
        assert_eq!(memory.insert_new("c", 30, 5), Err(Full));
        assert!(memory.contains(&"a", 5));
        // Once "a" expired, there is room again.
        assert_eq!(memory.insert_new("c", 30, 11), Ok(true));
        assert_eq!(memory.insert_new("a", 40, 12), Err(Full));
        memory.keep("c", 50, 12).unwrap();
        memory.keep("c", 45, 12).unwrap();
        assert!(memory.contains(&"c", 50));
    }
}
