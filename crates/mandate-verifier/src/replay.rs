//! The replay cache: nonces of proofs of possession seen inside the window.
//!
//! Bounded: when full of unexpired nonces it refuses new proofs (fail
//! closed) instead of forgetting one that might be replayed.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use mandate_core::PopError;

#[derive(Debug)]
pub(crate) struct ReplayCache {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Nonce → the time (ms) after which it can be forgotten.
    seen: HashMap<[u8; 16], u64>,
    /// Nonces in insertion order, for pruning.
    order: VecDeque<([u8; 16], u64)>,
}

impl ReplayCache {
    pub(crate) fn new(capacity: usize) -> ReplayCache {
        ReplayCache {
            capacity,
            state: Mutex::new(State::default()),
        }
    }

    /// Records `nonce` until `forget_after_ms`; refuses it if already seen.
    pub(crate) fn check_and_insert(
        &self,
        nonce: [u8; 16],
        now_ms: u64,
        forget_after_ms: u64,
    ) -> Result<(), PopError> {
        // A poisoned lock means another thread panicked mid-update; the
        // state is a plain map that stays consistent, so keep using it.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(&(old, until)) = state.order.front() {
            // Entries are inserted with roughly increasing deadlines; an
            // out-of-order one is pruned when it reaches the front.
            if until >= now_ms {
                break;
            }
            state.order.pop_front();
            if state.seen.get(&old) == Some(&until) {
                state.seen.remove(&old);
            }
        }
        if state.seen.contains_key(&nonce) {
            return Err(PopError::Replayed);
        }
        if state.seen.len() >= self.capacity {
            return Err(PopError::CacheFull);
        }
        state.seen.insert(nonce, forget_after_ms);
        state.order.push_back((nonce, forget_after_ms));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_are_refused_until_forgotten_and_capacity_fails_closed() {
        let cache = ReplayCache::new(2);
        assert_eq!(cache.check_and_insert([1; 16], 0, 100), Ok(()));
        assert_eq!(
            cache.check_and_insert([1; 16], 50, 150),
            Err(PopError::Replayed)
        );
        assert_eq!(cache.check_and_insert([2; 16], 50, 150), Ok(()));
        assert_eq!(
            cache.check_and_insert([3; 16], 60, 160),
            Err(PopError::CacheFull)
        );
        // After the first nonce's deadline it is forgotten, making room.
        assert_eq!(cache.check_and_insert([3; 16], 101, 201), Ok(()));
        assert_eq!(
            cache.check_and_insert([1; 16], 102, 202),
            Err(PopError::CacheFull)
        );
    }
}
