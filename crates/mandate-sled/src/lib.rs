//! Opening a sled folder the way every Mandate store does.
//!
//! sled locks its folder while a database is open, and its background
//! threads keep a dropped database (and so the lock) alive for a moment
//! after the last handle goes. A store reopened in the same process, or
//! right after another process exited, can therefore find the lock still
//! held. [`open`] waits for it for up to [`LOCK_WAIT`] before reporting
//! the folder in use, so a genuine second holder is still refused, only a
//! little later.

use std::time::{Duration, Instant};

/// How long [`open`] waits for another holder of the folder's lock to let go.
pub const LOCK_WAIT: Duration = Duration::from_secs(3);

/// How often [`open`] tries again while the lock is held.
const RETRY_EVERY: Duration = Duration::from_millis(10);

/// Opens the database `config` describes, waiting up to [`LOCK_WAIT`] for
/// the folder's lock.
///
/// # Errors
/// Whatever sled reports: for a lock held past the wait, the I/O error
/// "could not acquire lock".
pub fn open(config: &sled::Config) -> Result<sled::Db, sled::Error> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            Err(sled::Error::Io(e)) if is_lock_held(&e) && Instant::now() < deadline => {
                std::thread::sleep(RETRY_EVERY);
            }
            other => return other,
        }
    }
}

/// Whether sled failed because another handle holds the folder's lock.
fn is_lock_held(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::WouldBlock
        || error.to_string().contains("could not acquire lock")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // reason: a test fails loudly.
    use super::*;

    #[test]
    fn a_folder_reopened_right_after_dropping_its_database_opens() {
        let dir = tempfile::tempdir().unwrap();
        // The default configuration keeps a background flusher, the thread
        // that holds a dropped database longest.
        let config = sled::Config::new().path(dir.path());
        for round in 0..5u8 {
            let db = open(&config).unwrap();
            db.insert([round], &[round]).unwrap();
            db.flush().unwrap();
        }
        let db = open(&config).unwrap();
        assert_eq!(db.len(), 5, "every round's write survived its reopening");
    }

    #[test]
    fn a_folder_held_open_is_refused_after_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let config = sled::Config::new().path(dir.path());
        let _held = open(&config).unwrap();
        let started = Instant::now();
        let error = open(&config).unwrap_err();
        assert!(error.to_string().contains("lock"), "{error}");
        assert!(started.elapsed() >= LOCK_WAIT, "it waited before refusing");
    }
}
