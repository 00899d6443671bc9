//! Display text for a token's blocks: Datalog as a person reads it, with
//! every string escaped and every output bounded.
//!
//! The text is for people (inspection, failed-check reasons, audit lines)
//! and must never be parsed back: Mandate reads blocks structurally
//! (`blocks.rs`). Strings print with `"`, `\`, control and non-ASCII
//! characters escaped, so a hostile string cannot make the text look like
//! other statements, and no printed statement is longer than
//! [`MAX_STATEMENT`] characters. Walks are bounded by the structural limits
//! the reader checked before printing.

use std::fmt::Write as _;

use biscuit_auth::format::schema;

use crate::bounds;
use crate::symbols::Symbols;

/// Longest printed statement, in bytes; longer ones end in `…`.
pub const MAX_STATEMENT: usize = 1024;
/// Longest printed block, in bytes; longer ones end in `…`.
pub const MAX_BLOCK: usize = 64 * 1024;

/// A time as RFC 3339 (seconds), or `<date N>` with N seconds since the Unix
/// epoch when it lies beyond what RFC 3339 can write (year 9999): dates in a
/// token are the token writer's choice, and a formatter that fails would
/// turn a report into a crash.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    const MAX_RFC3339: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(since) if since.as_secs() <= MAX_RFC3339 => {
            humantime::format_rfc3339_seconds(t).to_string()
        }
        Ok(since) => format!("<date {}>", since.as_secs()),
        Err(_) => "<date before 1970>".into(),
    }
}

/// Escapes `text` so it prints on one line and unambiguously: quotes,
/// backslashes, control and non-ASCII characters become escapes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            other => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(other));
            }
        }
    }
    out
}

/// Shortens `text` to at most `max` bytes (on a character boundary), ending
/// in `…` when it was cut.
pub fn shorten(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// Prints statements of one block against its symbol table.
pub(crate) struct Printer<'a> {
    symbols: Symbols<'a>,
}

impl<'a> Printer<'a> {
    pub(crate) fn new(symbols: Symbols<'a>) -> Printer<'a> {
        Printer { symbols }
    }

    fn symbol(&self, index: u64) -> String {
        self.symbols
            .get(index)
            .map_or_else(|| format!("<symbol {index}>"), escape)
    }

    fn term(&self, term: &schema::Term, depth: usize) -> String {
        use schema::term::Content;
        // The reader refused deeper nesting before anything was printed;
        // the guard keeps the recursion bounded on its own too.
        if depth > bounds::MAX_TERM_DEPTH {
            return "…".into();
        }
        let list = |terms: &mut dyn Iterator<Item = String>| terms.collect::<Vec<_>>().join(", ");
        match &term.content {
            Some(Content::Variable(i)) => format!("${}", self.symbol(u64::from(*i))),
            Some(Content::Integer(n)) => n.to_string(),
            Some(Content::String(i)) => format!("\"{}\"", self.symbol(*i)),
            Some(Content::Date(d)) => std::time::UNIX_EPOCH
                .checked_add(std::time::Duration::from_secs(*d))
                .map_or_else(|| format!("<date {d}>"), rfc3339),
            Some(Content::Bytes(bytes)) => format!("hex:{}", hex::encode(bytes)),
            Some(Content::Bool(b)) => b.to_string(),
            Some(Content::Null(_)) => "null".into(),
            Some(Content::Set(set)) if set.set.is_empty() => "{,}".into(),
            Some(Content::Set(set)) => format!(
                "{{{}}}",
                list(&mut set.set.iter().map(|t| self.term(t, depth + 1)))
            ),
            Some(Content::Array(array)) => format!(
                "[{}]",
                list(&mut array.array.iter().map(|t| self.term(t, depth + 1)))
            ),
            Some(Content::Map(map)) => format!(
                "{{{}}}",
                list(&mut map.entries.iter().map(|entry| {
                    let key = match &entry.key.content {
                        Some(schema::map_key::Content::Integer(n)) => n.to_string(),
                        Some(schema::map_key::Content::String(i)) => {
                            format!("\"{}\"", self.symbol(*i))
                        }
                        None => "<key>".into(),
                    };
                    format!("{key}: {}", self.term(&entry.value, depth + 1))
                }))
            ),
            None => "<term>".into(),
        }
    }

    fn predicate(&self, predicate: &schema::Predicate) -> String {
        let terms: Vec<String> = predicate.terms.iter().map(|t| self.term(t, 0)).collect();
        format!("{}({})", self.symbol(predicate.name), terms.join(", "))
    }

    /// An expression, from biscuit's postfix operations back to infix, with
    /// a stack (closure bodies recurse at most `MAX_CLOSURE_DEPTH` deep).
    fn expression(&self, ops: &[schema::Op], depth: usize) -> String {
        use schema::op::Content;
        if depth > bounds::MAX_CLOSURE_DEPTH {
            return "…".into();
        }
        let mut stack: Vec<String> = Vec::new();
        for op in ops {
            match &op.content {
                Some(Content::Value(term)) => stack.push(self.term(term, 0)),
                Some(Content::Unary(unary)) => {
                    let Some(value) = stack.pop() else {
                        return "<invalid expression>".into();
                    };
                    stack.push(self.unary(unary, value));
                }
                Some(Content::Binary(binary)) => {
                    let (Some(right), Some(left)) = (stack.pop(), stack.pop()) else {
                        return "<invalid expression>".into();
                    };
                    stack.push(self.binary(binary, left, right));
                }
                Some(Content::Closure(closure)) => {
                    let body = self.expression(&closure.ops, depth + 1);
                    if closure.params.is_empty() {
                        stack.push(body);
                    } else {
                        let params: Vec<String> = closure
                            .params
                            .iter()
                            .map(|p| format!("${}", self.symbol(u64::from(*p))))
                            .collect();
                        stack.push(format!("{} -> {body}", params.join(", ")));
                    }
                }
                None => return "<invalid expression>".into(),
            }
            // Keep intermediate text bounded: a statement prints at most
            // MAX_STATEMENT bytes anyway.
            if let Some(top) = stack.last_mut() {
                if top.len() > MAX_STATEMENT {
                    *top = shorten(std::mem::take(top), MAX_STATEMENT);
                }
            }
        }
        match stack.as_slice() {
            [one] => one.clone(),
            _ => "<invalid expression>".into(),
        }
    }

    fn unary(&self, unary: &schema::OpUnary, value: String) -> String {
        use schema::op_unary::Kind;
        match Kind::from_i32(unary.kind) {
            Some(Kind::Negate) => format!("!{value}"),
            Some(Kind::Parens) => format!("({value})"),
            Some(Kind::Length) => format!("{value}.length()"),
            Some(Kind::TypeOf) => format!("{value}.type()"),
            Some(Kind::Ffi) => format!(
                "{value}.extern::{}()",
                unary
                    .ffi_name
                    .map_or_else(|| "?".into(), |n| self.symbol(n))
            ),
            None => format!("<unary {}>({value})", unary.kind),
        }
    }

    fn binary(&self, binary: &schema::OpBinary, left: String, right: String) -> String {
        use schema::op_binary::Kind;
        let infix = |op: &str| format!("{left} {op} {right}");
        let method = |name: &str| format!("{left}.{name}({right})");
        match Kind::from_i32(binary.kind) {
            Some(Kind::LessThan) => infix("<"),
            Some(Kind::GreaterThan) => infix(">"),
            Some(Kind::LessOrEqual) => infix("<="),
            Some(Kind::GreaterOrEqual) => infix(">="),
            Some(Kind::Equal) => infix("==="),
            Some(Kind::HeterogeneousEqual) => infix("=="),
            Some(Kind::NotEqual) => infix("!=="),
            Some(Kind::HeterogeneousNotEqual) => infix("!="),
            Some(Kind::Contains) => method("contains"),
            Some(Kind::Prefix) => method("starts_with"),
            Some(Kind::Suffix) => method("ends_with"),
            Some(Kind::Regex) => method("matches"),
            Some(Kind::Add) => infix("+"),
            Some(Kind::Sub) => infix("-"),
            Some(Kind::Mul) => infix("*"),
            Some(Kind::Div) => infix("/"),
            Some(Kind::And) => infix("&&!"),
            Some(Kind::Or) => infix("||!"),
            Some(Kind::Intersection) => method("intersection"),
            Some(Kind::Union) => method("union"),
            Some(Kind::BitwiseAnd) => infix("&"),
            Some(Kind::BitwiseOr) => infix("|"),
            Some(Kind::BitwiseXor) => infix("^"),
            Some(Kind::LazyAnd) => infix("&&"),
            Some(Kind::LazyOr) => infix("||"),
            Some(Kind::All) => method("all"),
            Some(Kind::Any) => method("any"),
            Some(Kind::Get) => method("get"),
            Some(Kind::TryOr) => method("try_or"),
            Some(Kind::Ffi) => method(&format!(
                "extern::{}",
                binary
                    .ffi_name
                    .map_or_else(|| "?".into(), |n| self.symbol(n))
            )),
            None => format!("<binary {}>({left}, {right})", binary.kind),
        }
    }

    fn body(&self, rule: &schema::Rule) -> String {
        let mut parts: Vec<String> = rule.body.iter().map(|p| self.predicate(p)).collect();
        parts.extend(rule.expressions.iter().map(|e| self.expression(&e.ops, 0)));
        let mut text = parts.join(", ");
        if !rule.scope.is_empty() {
            let scopes: Vec<String> = rule.scope.iter().map(scope).collect();
            let _ = write!(text, " trusting {}", scopes.join(", "));
        }
        text
    }

    /// A rule, `head <- body`.
    pub(crate) fn rule(&self, rule: &schema::Rule) -> String {
        shorten(
            format!("{} <- {}", self.predicate(&rule.head), self.body(rule)),
            MAX_STATEMENT,
        )
    }

    /// A check, `check if ...`, `check all ...` or `reject if ...`.
    pub(crate) fn check(&self, check: &schema::Check) -> String {
        use schema::check::Kind;
        let kind = match check.kind.map(Kind::from_i32) {
            None | Some(Some(Kind::One)) => "check if",
            Some(Some(Kind::All)) => "check all",
            Some(Some(Kind::Reject)) => "reject if",
            Some(None) => "<check kind>",
        };
        let queries: Vec<String> = check.queries.iter().map(|q| self.body(q)).collect();
        shorten(format!("{kind} {}", queries.join(" or ")), MAX_STATEMENT)
    }

    /// A fact.
    pub(crate) fn fact(&self, fact: &schema::Fact) -> String {
        shorten(self.predicate(&fact.predicate), MAX_STATEMENT)
    }
}

/// Appends one printed statement to a block's source, one per line, the
/// whole source bounded by [`MAX_BLOCK`].
pub(crate) fn push_statement(source: &mut String, statement: String) {
    if source.len() >= MAX_BLOCK {
        if !source.ends_with('…') {
            source.push('…');
        }
        return;
    }
    source.push_str(&statement);
    source.push_str(";\n");
}

fn scope(scope: &schema::Scope) -> String {
    use schema::scope::{Content, ScopeType};
    match &scope.content {
        Some(Content::ScopeType(kind)) => match ScopeType::from_i32(*kind) {
            Some(ScopeType::Authority) => "authority".into(),
            Some(ScopeType::Previous) => "previous".into(),
            None => "<scope>".into(),
        },
        Some(Content::PublicKey(index)) => format!("<public key #{index}>"),
        None => "<scope>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_quote_unescaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(
            escape("x\"); principal(\"alice"),
            r#"x\"); principal(\"alice"#
        );
        assert_eq!(escape("\u{430}lice\n"), "\\u{430}lice\\n");
    }

    #[test]
    fn dates_beyond_rfc3339_print_as_numbers() {
        let far = std::time::UNIX_EPOCH + std::time::Duration::from_secs(300_000_000_000);
        assert_eq!(rfc3339(far), "<date 300000000000>");
        let near = std::time::UNIX_EPOCH + std::time::Duration::from_secs(86_400);
        assert_eq!(rfc3339(near), "1970-01-02T00:00:00Z");
    }

    #[test]
    fn shortening_respects_char_boundaries() {
        assert_eq!(shorten("ééé".into(), 3), "é…");
        assert_eq!(shorten("abc".into(), 3), "abc");
    }
}
