//! Wakes long-polling agents when a request is decided.
//!
//! One counter behind a `tokio::sync::watch`: every decision (approval,
//! denial, expiry) bumps it, and each waiter, subscribed before it read its
//! request, wakes, reads its request again and waits on if it is still
//! pending. A waiter never sleeps in a loop; it misses no decision made
//! after it subscribed. Decisions made by another process are not seen
//! here: the stores are opened by one process.

use tokio::sync::watch;

/// The decision counter.
#[derive(Debug)]
pub struct DecisionSignal {
    sender: watch::Sender<u64>,
}

impl Default for DecisionSignal {
    fn default() -> DecisionSignal {
        DecisionSignal::new()
    }
}

impl DecisionSignal {
    /// A counter at zero.
    pub fn new() -> DecisionSignal {
        DecisionSignal {
            sender: watch::channel(0).0,
        }
    }

    /// A receiver that sees every decision from now on: subscribe before
    /// reading the state waited on.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.sender.subscribe()
    }

    /// Announces a decision.
    pub fn notify(&self) {
        self.sender.send_modify(|n| *n = n.wrapping_add(1));
    }
}
