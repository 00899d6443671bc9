//! Applying a store's committed migrations at start-up, once, even when
//! several replicas start together on one empty database.
//!
//! Each store has a migration table of its own, so the stores' schemas move
//! independently. The run holds a PostgreSQL advisory lock named after that
//! table: a second replica waits for the first to finish instead of
//! racing it to create the same tables.

use refinery::Runner;

use crate::{Error, Pool};

/// Runs `runner`'s migrations not yet recorded in `table`, under an advisory
/// lock derived from `table`.
///
/// # Errors
/// [`Error::Unavailable`] when no connection can be had, [`Error::Query`]
/// when a migration fails.
pub(crate) fn run(pool: &Pool, mut runner: Runner, table: &str) -> Result<(), Error> {
    let mut client = pool.get()?;
    let key = lock_key(table);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&key])
        .map_err(|e| Error::Query(e.to_string()))?;
    let outcome = runner
        .set_migration_table_name(table)
        .run(&mut *client)
        .map(|_| ())
        .map_err(|e| Error::Query(format!("migrating {table}: {}", with_causes(&e))));
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&key])
        .map(|_| ())
        .map_err(|e| Error::Query(e.to_string()));
    outcome.and(unlocked)
}

/// `error` and each of its causes, so that the database's own reason
/// ("permission denied for schema public") is not hidden behind "db error".
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        cause = inner.source();
    }
    text
}

/// A stable 64-bit lock id for `name` (FNV-1a): the same in every process.
pub(crate) fn lock_key(table: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in table.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::lock_key;

    #[test]
    fn each_table_has_its_own_stable_lock() {
        assert_eq!(lock_key("a"), lock_key("a"));
        assert_ne!(
            lock_key("mandate_issuer_migrations"),
            lock_key("mandate_audit_migrations")
        );
    }
}
