//! Fresh databases for tests that run against a real PostgreSQL server.
//!
//! Tests read the server's URL from `MANDATE_TEST_PG`; when it is unset they
//! say so on stderr and skip. Each call creates a database of its own, so
//! tests (and test runs) never see each other's rows.

use postgres::{Client, NoTls};

/// The variable naming the test server, e.g. `postgres://postgres@127.0.0.1:5432/test`.
pub const TEST_PG_VAR: &str = "MANDATE_TEST_PG";

/// Creates an empty database on the test server and returns its URL, or
/// `None` (after printing `SKIPPED: <test> ...` to stderr) when
/// `MANDATE_TEST_PG` is unset.
///
/// # Panics
/// When the variable is set but the server cannot be reached or the
/// database cannot be created: a configured server that is down is a
/// failure, not a skip.
#[allow(clippy::expect_used, clippy::print_stderr)]
pub fn fresh_database(test: &str) -> Option<String> {
    let Ok(admin) = std::env::var(TEST_PG_VAR) else {
        eprintln!("SKIPPED: {test} needs PostgreSQL; set {TEST_PG_VAR} to a server URL");
        return None;
    };
    let mut client = Client::connect(&admin, NoTls)
        .unwrap_or_else(|e| panic!("{TEST_PG_VAR} is set but the server is unreachable: {e}"));
    let name = format!("mandate_test_{}", random_suffix());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("creating a test database");
    Some(url_with_database(&admin, &name))
}

fn random_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}_{}", std::process::id(), nanos)
}

/// `admin` with its path (the database name) replaced by `name`.
fn url_with_database(admin: &str, name: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::url_with_database;

    #[test]
    fn the_database_name_is_replaced_and_the_rest_kept() {
        assert_eq!(
            url_with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            url_with_database("postgres://u:p@h/test?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            url_with_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }
}
