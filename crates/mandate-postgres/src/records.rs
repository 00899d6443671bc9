//! Records kept one row each, column for column, keyed by their first column
//! `id`, as the issuer's task and request stores keep them: created only when
//! the id is free, and replaced only when the stored row still equals the
//! one the caller read. A replacement is one conditional `UPDATE` whose
//! `WHERE` names every column of the current record; PostgreSQL re-checks
//! that condition against the newest row version when two replicas update
//! at once, so exactly one swap wins and the other changes nothing, as with
//! sled's compare-and-swap.
//!
//! Every statement commits before it returns (synchronous commit), and none
//! holds a row lock past its own statement.

use postgres::types::ToSql;
use postgres::{Client, Row};

/// A record's row: its table, its columns and their values.
pub(crate) trait RecordRow: Sized {
    /// The table the rows live in.
    const TABLE: &'static str;
    /// The columns, `id` first, in the order of [`RecordRow::values`] and of
    /// what [`RecordRow::read`] reads.
    const COLUMNS: &'static [&'static str];

    /// The values, in [`RecordRow::COLUMNS`]' order.
    fn values(&self) -> Vec<&(dyn ToSql + Sync)>;

    /// Reads a row selected with [`columns`].
    ///
    /// # Errors
    /// A column is missing or of another type.
    fn read(row: &Row) -> Result<Self, postgres::Error>;
}

/// The record's columns as a `SELECT` list, in [`RecordRow::COLUMNS`]' order.
pub(crate) fn columns<R: RecordRow>() -> String {
    R::COLUMNS.join(", ")
}

/// The id of a row selected with [`columns`], or an empty string when even
/// that cannot be read: what a "corrupt record" error names.
pub(crate) fn id_of(row: &Row) -> String {
    row.try_get(0).unwrap_or_default()
}

/// Stores `record` unless its id is taken; whether it was stored.
pub(crate) fn insert<R: RecordRow>(
    client: &mut Client,
    record: &R,
) -> Result<bool, postgres::Error> {
    let placeholders = (1..=R::COLUMNS.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let inserted = client.execute(
        &format!(
            "INSERT INTO {} ({}) VALUES ({placeholders}) ON CONFLICT (id) DO NOTHING",
            R::TABLE,
            columns::<R>()
        ),
        &record.values(),
    )?;
    Ok(inserted == 1)
}

/// The row stored under `id`.
pub(crate) fn select<R: RecordRow>(
    client: &mut Client,
    id: &str,
) -> Result<Option<Row>, postgres::Error> {
    client.query_opt(
        &format!("SELECT {} FROM {} WHERE id = $1", columns::<R>(), R::TABLE),
        &[&id],
    )
}

/// Replaces `current` by `new` (the same id) if `current` is still what is
/// stored; whether it was replaced.
pub(crate) fn swap<R: RecordRow>(
    client: &mut Client,
    current: &R,
    new: &R,
) -> Result<bool, postgres::Error> {
    let mut values = current.values();
    // The id stays; the other columns take the new record's values.
    values.extend(new.values().into_iter().skip(1));
    let swapped = client.execute(&swap_statement(R::TABLE, R::COLUMNS), &values)?;
    Ok(swapped == 1)
}

/// `UPDATE table SET c = $(n+i)… WHERE id = $1 AND c IS NOT DISTINCT FROM $(i+1)…`
/// for the `n` columns `columns` (`id` first): the current values are
/// `$1..$n`, the new ones (all but the id) `$(n+1)..$(2n-1)`.
fn swap_statement(table: &str, columns: &[&str]) -> String {
    let n = columns.len();
    let set = columns
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, column)| format!("{column} = ${}", n + i))
        .collect::<Vec<_>>()
        .join(", ");
    let unchanged = columns
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, column)| format!(" AND {column} IS NOT DISTINCT FROM ${}", i + 1))
        .collect::<String>();
    format!("UPDATE {table} SET {set} WHERE id = $1{unchanged}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swap_sets_the_new_values_where_every_current_one_still_stands() {
        assert_eq!(
            swap_statement("t", &["id", "a", "b"]),
            "UPDATE t SET a = $4, b = $5 \
             WHERE id = $1 AND a IS NOT DISTINCT FROM $2 AND b IS NOT DISTINCT FROM $3"
        );
    }
}
