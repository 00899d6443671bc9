//! What a check narrows, recognised from its signed structure.
//!
//! `delegate` refuses a restriction that asks for more than the token still
//! allows. What the token allows is read here, from the checks themselves
//! rather than from a summary a block states beside them: a check is
//! recognised when its structure is exactly one of the forms
//! [`crate::Restrictions`] compiles (whoever wrote it, `--check` included),
//! and then it narrows exactly as the verifier enforces it. Anything else is
//! not recognised and narrows nothing here, which can only let a delegation
//! through that the verifier will then deny; it never widens a token.
//!
//! Part of the structural reader: `blocks.rs` calls [`recognise`] on blocks
//! whose bounds it checked, so every walk here is short.

use std::collections::BTreeSet;

use biscuit_auth::format::schema;

use crate::symbols::Symbols;
use crate::vocab;

/// One recognised check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Narrowing {
    /// Only these operations.
    Operations(BTreeSet<String>),
    /// Only these services.
    Services(BTreeSet<String>),
    /// Not after this time, in seconds since the Unix epoch.
    ExpiresAt(u64),
    /// No deeper than this delegation depth.
    MaxDepth(i64),
}

/// What `check` narrows, if it is one of the recognised forms:
///
/// - `check if operation("a")` and `check if operation($x), {"a", "b"}.contains($x)`,
///   or alternatives of these joined with `or` (the union); the same for
///   `service`;
/// - `check if time($x), $x <= DATE`;
/// - `check if delegation_depth($x), $x <= N`.
///
/// Only `check if` (not `check all`, not `reject if`) without scope
/// annotations, so the check sees the request's facts as any block's check
/// does by default.
pub(crate) fn recognise(check: &schema::Check, symbols: Symbols<'_>) -> Option<Narrowing> {
    if !matches!(check.kind, None | Some(0)) {
        return None;
    }
    if check.queries.is_empty() || check.queries.iter().any(|q| !q.scope.is_empty()) {
        return None;
    }
    if let [query] = check.queries.as_slice() {
        if let Some(bound) = upper_bound(query, symbols) {
            return Some(bound);
        }
    }
    // Alternatives of the same predicate allow the union of their values.
    let mut name = None;
    let mut values = BTreeSet::new();
    for query in &check.queries {
        let (this, allowed) = membership(query, symbols)?;
        if name.is_some_and(|first| first != this) {
            return None;
        }
        name = Some(this);
        values.extend(allowed);
    }
    match name? {
        vocab::OPERATION => Some(Narrowing::Operations(values)),
        vocab::SERVICE => Some(Narrowing::Services(values)),
        _ => None,
    }
}

/// `P("a")`, or `P($x), {"a", ...}.contains($x)`, for `P` one of
/// `operation` and `service`: the predicate's name and the allowed values.
fn membership<'a>(
    query: &schema::Rule,
    symbols: Symbols<'a>,
) -> Option<(&'a str, BTreeSet<String>)> {
    use schema::op::Content as Op;
    use schema::op_binary::Kind;
    use schema::term::Content as Term;
    let [predicate] = query.body.as_slice() else {
        return None;
    };
    let name = symbols.get(predicate.name)?;
    if name != vocab::OPERATION && name != vocab::SERVICE {
        return None;
    }
    let [term] = predicate.terms.as_slice() else {
        return None;
    };
    match (&term.content, query.expressions.as_slice()) {
        (Some(Term::String(value)), []) => {
            Some((name, BTreeSet::from([symbols.get(*value)?.to_string()])))
        }
        (Some(Term::Variable(var)), [expression]) => match expression.ops.as_slice() {
            [schema::Op {
                content: Some(Op::Value(set)),
            }, schema::Op {
                content: Some(Op::Value(item)),
            }, schema::Op {
                content: Some(Op::Binary(binary)),
            }] if binary.kind == Kind::Contains as i32
                && item.content == Some(Term::Variable(*var)) =>
            {
                let Some(Term::Set(set)) = &set.content else {
                    return None;
                };
                let values = set
                    .set
                    .iter()
                    .map(|t| match &t.content {
                        Some(Term::String(i)) => symbols.get(*i).map(str::to_string),
                        _ => None,
                    })
                    .collect::<Option<BTreeSet<String>>>()?;
                Some((name, values))
            }
            _ => None,
        },
        _ => None,
    }
}

/// `time($x), $x <= DATE` or `delegation_depth($x), $x <= N`.
fn upper_bound(query: &schema::Rule, symbols: Symbols<'_>) -> Option<Narrowing> {
    use schema::op::Content as Op;
    use schema::op_binary::Kind;
    use schema::term::Content as Term;
    let [predicate] = query.body.as_slice() else {
        return None;
    };
    let [schema::Term {
        content: Some(Term::Variable(var)),
    }] = predicate.terms.as_slice()
    else {
        return None;
    };
    let [expression] = query.expressions.as_slice() else {
        return None;
    };
    let [schema::Op {
        content: Some(Op::Value(left)),
    }, schema::Op {
        content: Some(Op::Value(right)),
    }, schema::Op {
        content: Some(Op::Binary(binary)),
    }] = expression.ops.as_slice()
    else {
        return None;
    };
    if binary.kind != Kind::LessOrEqual as i32 || left.content != Some(Term::Variable(*var)) {
        return None;
    }
    match (symbols.get(predicate.name)?, &right.content) {
        (vocab::TIME, Some(Term::Date(at))) => Some(Narrowing::ExpiresAt(*at)),
        (vocab::DELEGATION_DEPTH, Some(Term::Integer(n))) => Some(Narrowing::MaxDepth(*n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::blocks::{read_all, Detail};
    use biscuit_auth::builder::BlockBuilder;

    /// What the checks of an authority block written as `code` narrow,
    /// the recognised ones in order.
    fn narrowings(code: &str) -> Vec<Narrowing> {
        let token = biscuit_auth::Biscuit::builder()
            .code(code)
            .unwrap()
            .build(&biscuit_auth::KeyPair::new())
            .unwrap();
        let blocks = read_all(&token.container().to_proto(), Detail::Scope).unwrap();
        blocks[0].narrowings.clone()
    }

    fn set(values: &[&str]) -> BTreeSet<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn the_compiled_forms_are_recognised() {
        let found = narrowings(
            r#"check if operation("read");
               check if operation($x), {"read", "write"}.contains($x);
               check if service("a") or service($s), {"b"}.contains($s);
               check if time($t), $t <= 2030-01-01T00:00:00Z;
               check if delegation_depth($d), $d <= 3;"#,
        );
        assert_eq!(
            found,
            vec![
                Narrowing::Operations(set(&["read"])),
                Narrowing::Operations(set(&["read", "write"])),
                Narrowing::Services(set(&["a", "b"])),
                Narrowing::ExpiresAt(1_893_456_000),
                Narrowing::MaxDepth(3),
            ]
        );
    }

    #[test]
    fn anything_else_narrows_nothing() {
        let found = narrowings(
            r#"reject if operation("read");
               check all operation($x), {"read"}.contains($x);
               check if operation("read") or service("a");
               check if operation("read") trusting previous;
               check if operation($x), {"read"}.contains($y), resource($y);
               check if operation($x), $x == "read";
               check if time($t), $t < 2030-01-01T00:00:00Z;
               check if time($t), 2030-01-01T00:00:00Z >= $t;
               check if delegation_depth($d), $d <= 3, $d >= 1;
               check if operation($x), {"read"}.contains($x), resource("/a");
               check if resource("/a");"#,
        );
        assert_eq!(found, vec![]);
    }

    #[test]
    fn an_appended_block_reads_back_what_its_checks_narrow() {
        let token = biscuit_auth::Biscuit::builder()
            .code("check if time($t), $t <= 2030-01-01T00:00:00Z;")
            .unwrap()
            .build(&biscuit_auth::KeyPair::new())
            .unwrap()
            .append(
                BlockBuilder::new()
                    .code(r#"check if operation("read");"#)
                    .unwrap(),
            )
            .unwrap();
        let blocks = read_all(&token.container().to_proto(), Detail::Scope).unwrap();
        assert_eq!(
            blocks[0].narrowings,
            vec![Narrowing::ExpiresAt(1_893_456_000)]
        );
        assert_eq!(
            blocks[1].narrowings,
            vec![Narrowing::Operations(set(&["read"]))]
        );
    }
}
