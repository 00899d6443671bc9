//! The replay cache: nonces of proofs of possession seen inside the window.
//!
//! Bounded: when full of unexpired nonces it refuses new proofs (fail
//! closed) instead of forgetting one that might be replayed.
//!
//! It lives in memory, so a restarted verifier has forgotten every nonce it
//! saw: a proof captured before the restart could be replayed within its
//! window. A cache that remembers *from* a time refuses proofs made before
//! it, so state-changing endpoints (registry writes, operators' decisions)
//! take no proof the process cannot vouch for.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use mandate_core::PopError;

#[derive(Debug)]
pub(crate) struct ReplayCache {
    capacity: usize,
    /// Proofs made before this time (ms) are refused; 0 refuses none.
    remembers_from_ms: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Nonce → the time (ms) after which it can be forgotten.
    seen: HashMap<[u8; 16], u64>,
    /// Nonces in insertion order, for pruning.
    order: VecDeque<([u8; 16], u64)>,
    /// When a full cache last swept every entry (ms, this machine's clock).
    swept_ms: u64,
}

/// A full cache sweeps all its entries at most this often: a sweep reads
/// every nonce, which a stream of requests against a full cache must not
/// make each of them do.
const SWEEP_EVERY_MS: u64 = 1_000;

impl ReplayCache {
    /// A cache of `capacity` nonces that refuses proofs made before
    /// `remembers_from_ms` (0: none).
    pub(crate) fn new(capacity: usize, remembers_from_ms: u64) -> ReplayCache {
        ReplayCache {
            capacity,
            remembers_from_ms,
            state: Mutex::new(State::default()),
        }
    }

    /// Records `nonce`, of a proof made at `proof_ms`, until
    /// `forget_after_ms`; refuses it if already seen, or, for a cache that
    /// remembers from a time, if the proof is older than that or dated more
    /// than [`crate::FUTURE_SKEW`] after `now_ms` (such a proof, used before
    /// a restart, would be newer than the restart). Nonces are forgotten by
    /// `wall_ms`, this machine's clock, never by the request's time: a call
    /// judged "as of" a later time must not make the cache forget the
    /// nonces of proofs still in their window.
    pub(crate) fn check_and_insert(
        &self,
        nonce: [u8; 16],
        proof_ms: u64,
        now_ms: u64,
        wall_ms: u64,
        forget_after_ms: u64,
    ) -> Result<(), PopError> {
        if self.remembers_from_ms > 0 {
            if proof_ms < self.remembers_from_ms {
                return Err(PopError::BeforeStart);
            }
            let skew_ms = u64::try_from(crate::FUTURE_SKEW.as_millis()).unwrap_or(u64::MAX);
            if proof_ms > now_ms.saturating_add(skew_ms) {
                return Err(PopError::OutsideWindow {
                    age_ms: proof_ms - now_ms,
                    window_ms: skew_ms,
                });
            }
        }
        // A poisoned lock means another thread panicked mid-update; the
        // state is a plain map that stays consistent, so keep using it.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(&(old, until)) = state.order.front() {
            // Entries are inserted with roughly increasing deadlines; an
            // out-of-order one is pruned when it reaches the front.
            if until >= wall_ms {
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
        if state.seen.len() >= self.capacity
            && wall_ms >= state.swept_ms.saturating_add(SWEEP_EVERY_MS)
        {
            // The queue is pruned from its front, which one far deadline (a
            // call judged "as of" much later) can hold up: before refusing,
            // forget everything past its deadline wherever it stands.
            state.swept_ms = wall_ms;
            state.seen.retain(|_, until| *until >= wall_ms);
            state.order.retain(|(_, until)| *until >= wall_ms);
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
        let cache = ReplayCache::new(2, 0);
        assert_eq!(cache.check_and_insert([1; 16], 0, 0, 0, 100), Ok(()));
        assert_eq!(
            cache.check_and_insert([1; 16], 50, 50, 50, 150),
            Err(PopError::Replayed)
        );
        assert_eq!(cache.check_and_insert([2; 16], 50, 50, 50, 150), Ok(()));
        assert_eq!(
            cache.check_and_insert([3; 16], 60, 60, 60, 160),
            Err(PopError::CacheFull)
        );
        // After the first nonce's deadline it is forgotten, making room.
        assert_eq!(cache.check_and_insert([3; 16], 101, 101, 101, 201), Ok(()));
        assert_eq!(
            cache.check_and_insert([1; 16], 102, 102, 102, 202),
            Err(PopError::CacheFull)
        );
    }

    #[test]
    fn a_request_judged_at_a_later_time_forgets_no_nonce_early() {
        let cache = ReplayCache::new(10, 0);
        assert_eq!(cache.check_and_insert([1; 16], 0, 0, 0, 100), Ok(()));
        // A request dated far ahead, at wall time 10: nothing is forgotten.
        assert_eq!(
            cache.check_and_insert([2; 16], 3_000_000, 3_000_000, 10, 3_000_100),
            Ok(())
        );
        assert_eq!(
            cache.check_and_insert([1; 16], 20, 20, 20, 120),
            Err(PopError::Replayed)
        );
    }

    #[test]
    fn a_far_deadline_at_the_front_holds_up_no_room() {
        let cache = ReplayCache::new(2, 0);
        // Judged "as of" far ahead: kept long.
        assert_eq!(
            cache.check_and_insert([1; 16], 9_000, 9_000, 0, 10_000),
            Ok(())
        );
        assert_eq!(cache.check_and_insert([2; 16], 0, 0, 0, 100), Ok(()));
        // Past the second's deadline, the cache has room again (a sweep is
        // due: none ran in the last second).
        assert_eq!(
            cache.check_and_insert([3; 16], 2_000, 2_000, 2_000, 2_100),
            Ok(())
        );
        assert_eq!(
            cache.check_and_insert([1; 16], 9_000, 9_000, 2_050, 10_000),
            Err(PopError::Replayed)
        );
        // Full again with live entries: refused, and no new sweep within
        // the second even once the third's deadline passed.
        assert_eq!(
            cache.check_and_insert([4; 16], 2_050, 2_050, 2_050, 2_150),
            Err(PopError::CacheFull)
        );
        assert_eq!(
            cache.check_and_insert([4; 16], 2_200, 2_200, 2_200, 2_300),
            Err(PopError::CacheFull)
        );
        assert_eq!(
            cache.check_and_insert([4; 16], 3_000, 3_000, 3_000, 3_100),
            Ok(())
        );
    }

    #[test]
    fn a_cache_that_remembers_from_a_time_refuses_older_proofs() {
        let cache = ReplayCache::new(10, 1_000);
        assert_eq!(
            cache.check_and_insert([1; 16], 999, 1_005, 1_005, 31_000),
            Err(PopError::BeforeStart)
        );
        assert_eq!(
            cache.check_and_insert([1; 16], 1_000, 1_005, 1_005, 31_000),
            Ok(())
        );
        // Dated further ahead than the skew allows.
        assert!(matches!(
            cache.check_and_insert([2; 16], 7_000, 1_005, 1_005, 37_000),
            Err(PopError::OutsideWindow { .. })
        ));
    }
}
