//! Time as the PostgreSQL stores keep it: whole milliseconds since the Unix
//! epoch in a `BIGINT`, as the sled stores' records do.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch; times before it are 0, times past
/// `i64::MAX` ms are clamped.
pub(crate) fn from_time(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The time [`from_time`] kept; a negative value (only a hand-edited row has
/// one) reads as `None`.
pub(crate) fn to_time(ms: i64) -> Option<SystemTime> {
    let ms = u64::try_from(ms).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}
