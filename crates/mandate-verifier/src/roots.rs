//! The root keys a verifier trusts: a set fixed when it is built, or one a
//! follower replaces while the verifier runs (a published key set fetched
//! from the issuer, so a rotated root is trusted without a restart and a
//! retired one stops being trusted).
//!
//! Readers take a snapshot (`Arc<KeySet>`) per call; a replacement is seen by
//! the next call, never half-applied. This module does no I/O: whoever
//! fetches the set calls [`SharedKeySet::replace`].

use std::sync::{Arc, RwLock};

use mandate_core::KeySet;

/// A key set shared between a verifier (and its clones) and whatever keeps
/// it current. Clones share the same set.
#[derive(Debug, Clone, Default)]
pub struct SharedKeySet {
    inner: Arc<RwLock<Arc<KeySet>>>,
}

impl SharedKeySet {
    /// A shared set holding `keys`.
    pub fn new(keys: KeySet) -> SharedKeySet {
        SharedKeySet {
            inner: Arc::new(RwLock::new(Arc::new(keys))),
        }
    }

    /// A shared set that trusts nothing until [`SharedKeySet::replace`]
    /// first loads it.
    pub fn empty() -> SharedKeySet {
        SharedKeySet::default()
    }

    /// The keys trusted now.
    pub fn get(&self) -> Arc<KeySet> {
        match self.inner.read() {
            Ok(guard) => Arc::clone(&*guard),
            // A writer panicked mid-replace (it cannot: the write is one
            // assignment); trust what is there rather than nothing.
            Err(poisoned) => {
                let guard = poisoned.into_inner();
                Arc::clone(&*guard)
            }
        }
    }

    /// Trusts `keys` from the next call on, instead of the previous set.
    pub fn replace(&self, keys: KeySet) {
        let keys = Arc::new(keys);
        let mut guard = match self.inner.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = keys;
    }

    /// How many keys are trusted now.
    pub fn len(&self) -> usize {
        self.get().len()
    }

    /// Whether no key is trusted now (a followed set not loaded yet).
    pub fn is_empty(&self) -> bool {
        self.get().is_empty()
    }
}
