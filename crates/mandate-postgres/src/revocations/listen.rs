//! The `LISTEN mandate_revocations` session: wakes its owner when a replica appended,
//! and on a timer, so the owner can catch up by sequence — on this session's own
//! connection, through the [`SessionReader`] each wake-up is given.
//!
//! Notifications are a hint, never trusted further than the log: the reader serves the
//! entries they carried only when signed under the log's notification key, consecutive
//! from the owner's last seq and reaching the newest seq announced, and reads the log by
//! sequence otherwise. A wake-up also comes every `tick` (whether or not anything was
//! notified) and right after every (re)connection, and those always read the log, so a
//! notification lost while the session was down — or dropped for any other reason —
//! delays an entry by at most one tick.
//!
//! The session runs on a thread of its own (the `postgres` client blocks) on a dedicated
//! connection outside the pool, since a `LISTEN` belongs to one session; the read by
//! sequence is prepared once per connection, so a catch-up is one round trip. When the
//! connection drops, or a read on it fails, it reconnects with a bounded backoff. It must
//! never hold the owner's callback from running on a timer because the database is down:
//! the callback is how the owner learns that catching up fails (and turns stale).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator as _;
use postgres::{Client, Config, NoTls, Statement};

use super::reader::{Reading, SessionReader, Told};
use super::{ListenTarget, CHANNEL, LIST_AFTER};

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A running `LISTEN` session. Dropping it stops the thread (within one tick).
pub struct ChangeListener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ChangeListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeListener").finish_non_exhaustive()
    }
}

impl ChangeListener {
    /// Starts listening with the store's connection settings. `wake` runs on the
    /// listener's thread: after each notification (several pending ones count once),
    /// every `tick`, and after each (re)connection. It should catch up through the
    /// reader it is given (which lists entries as the store does) and return.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn spawn(
        target: &ListenTarget,
        tick: Duration,
        wake: impl FnMut(&mut SessionReader<'_>) + Send + 'static,
    ) -> std::io::Result<ChangeListener> {
        let stop = Arc::new(AtomicBool::new(false));
        let session = Session {
            config: target.0.clone(),
            tick: tick.max(Duration::from_millis(10)),
            stop: Arc::clone(&stop),
        };
        let thread = std::thread::Builder::new()
            .name("mandate-pg-listen".to_owned())
            .spawn(move || session.run(wake))?;
        Ok(ChangeListener {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the session and waits for its thread (at most about one tick).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ended = thread.join();
        }
    }
}

impl Drop for ChangeListener {
    fn drop(&mut self) {
        // The thread notices within one tick; it holds nothing that must be released
        // before the process goes on.
        self.stop.store(true, Ordering::Release);
    }
}

struct Session {
    config: Config,
    tick: Duration,
    stop: Arc<AtomicBool>,
}

impl Session {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn run(self, mut wake: impl FnMut(&mut SessionReader<'_>)) {
        let mut backoff = Duration::from_millis(100);
        while !self.stopped() {
            match self.connect() {
                Ok(connection) => {
                    backoff = Duration::from_millis(100);
                    tracing::debug!(channel = CHANNEL, "listening for revocations");
                    self.listen(connection, &mut wake);
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for revocations; retrying");
                    // Still catch up on the timer: the owner must learn that reads fail.
                    wake(&mut SessionReader::new(None, &Told::default(), true));
                    self.pause(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn connect(&self) -> Result<Connection, postgres::Error> {
        let mut client = self.config.connect(NoTls)?;
        client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
        let list_after = client.prepare(LIST_AFTER)?;
        let key: Vec<u8> = client
            .query_one("SELECT key FROM mandate_revocation_notify_key", &[])?
            .try_get(0)?;
        Ok(Connection {
            client,
            list_after,
            key,
        })
    }

    /// Serves one connection until it fails or the session stops.
    fn listen(&self, mut connection: Connection, wake: &mut impl FnMut(&mut SessionReader<'_>)) {
        let mut told = Told::default();
        // Anything notified before LISTEN took effect is read now.
        if !connection.wake(&told, true, wake) {
            return;
        }
        let mut next_tick = Instant::now() + self.tick;
        while !self.stopped() {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let received = {
                let mut notifications = connection.client.notifications();
                let received = notifications.timeout_iter(wait).next();
                if let Ok(Some(notification)) = &received {
                    told.hear(notification.payload(), &connection.key);
                    // Take in what else is pending: one catch-up covers them all.
                    let mut pending = notifications.iter();
                    while let Ok(Some(notification)) = pending.next() {
                        told.hear(notification.payload(), &connection.key);
                    }
                }
                received.map(|notification| notification.is_some())
            };
            let alive = match received {
                Ok(true) => connection.wake(&told, false, wake),
                Ok(false) => {
                    // The timer: read the log, and make sure the session is still alive.
                    next_tick = Instant::now() + self.tick;
                    connection.wake(&told, true, wake)
                        && match connection
                            .client
                            .is_valid(self.tick.max(Duration::from_secs(1)))
                        {
                            Ok(()) => true,
                            Err(error) => {
                                tracing::warn!(%error, "revocation listener lost its connection");
                                false
                            }
                        }
                }
                Err(error) => {
                    tracing::warn!(%error, "revocation listener lost its connection");
                    false
                }
            };
            told.clear();
            if !alive {
                return;
            }
        }
    }

    /// Sleeps `duration`, waking early when the session stops.
    fn pause(&self, duration: Duration) {
        let end = Instant::now() + duration;
        while !self.stopped() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

/// The session's connection, listening, with the read by sequence prepared on it and
/// the key notifications are signed under.
struct Connection {
    client: Client,
    list_after: Statement,
    key: Vec<u8>,
}

impl Connection {
    /// Runs the owner's `wake` with a reader on this connection, serving what `told`
    /// carried and reading the log besides when the wake-up `must_read`. `false` when a
    /// read failed on the connection, which must then be replaced.
    fn wake(
        &mut self,
        told: &Told,
        must_read: bool,
        wake: &mut impl FnMut(&mut SessionReader<'_>),
    ) -> bool {
        let reading = Reading {
            client: &mut self.client,
            list_after: &self.list_after,
        };
        let mut reader = SessionReader::new(Some(reading), told, must_read);
        wake(&mut reader);
        if reader.broken() {
            tracing::warn!("revocation listener could not read the log; reconnecting");
            return false;
        }
        true
    }
}
