//! The change counter of a [`crate::SharedIndex`]: it moves whenever a check
//! could start denying a subject it allowed (what moves it, and the
//! staleness timer, are in `changes.rs`).

use std::sync::Mutex;

use tokio::sync::watch;

/// The counter and whether its staleness timer runs.
#[derive(Debug)]
pub(crate) struct Changes {
    pub(crate) sender: watch::Sender<u64>,
    /// `true` while a timer task runs. Held across "no receivers left, stop" and
    /// "subscribe, start if stopped", so a new watcher never finds a timer that is
    /// about to exit.
    pub(crate) timer: Mutex<bool>,
}

impl Default for Changes {
    fn default() -> Self {
        Changes {
            sender: watch::channel(0).0,
            timer: Mutex::new(false),
        }
    }
}

impl Changes {
    /// Moves the counter; receivers re-check.
    ///
    /// With no receiver the counter moves without waking anyone: waking costs a lock
    /// per waiter list, paid on every entry applied, and a verifier joining a log of
    /// a million entries has nobody watching yet. A receiver subscribing concurrently
    /// reads the index after subscribing, so it sees the change without the wake.
    pub(crate) fn bump(&self) {
        self.sender.send_if_modified(|n| {
            *n = n.wrapping_add(1);
            self.sender.receiver_count() > 0
        });
    }

    /// Whether the staleness timer runs (for tests).
    #[cfg(test)]
    pub(crate) fn timer_running(&self) -> bool {
        *self
            .timer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
