//! Restrictions: the structured ways to narrow a mandate, each compiled to a
//! Datalog check, and offline delegation that appends them as a block.
//!
//! Values never reach Datalog as text: they are bound as parameters, so a
//! service name or an attribute value cannot inject Datalog. Raw Datalog
//! enters only through [`Restrictions::checks`], which is parsed and refused
//! with its position when it does not parse.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use biscuit_auth::builder::{
    self, Binary, BlockBuilder, Check, CheckKind, Expression, Op, Predicate, Rule, Term, Unary,
};

use crate::name::check_name;
use crate::request::{AttrValue, ResourcePath};
use crate::vocab;
use crate::Error;

/// The longest raw `--check` accepted, in bytes: a check is a line of
/// Datalog, and biscuit's parser builds a tree as deep as the longest
/// operator chain in it.
pub const MAX_CHECK_LEN: usize = 4096;

/// Checks a service or operation name: letters, digits, `_`, `-`, `.`.
fn check_ident(what: &str, name: &str) -> Result<(), Error> {
    check_name(what, name)?;
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(Error::Invalid(format!(
            "{what} `{name}` may contain only letters, digits, `_`, `-` and `.`"
        )));
    }
    Ok(())
}

/// One granted right: an operation on a service, written `SERVICE:OPERATION`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Right {
    /// The service, e.g. `expenses`.
    pub service: String,
    /// The operation, e.g. `submit`.
    pub operation: String,
}

impl FromStr for Right {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (service, operation) = s
            .split_once(':')
            .ok_or_else(|| Error::Invalid(format!("right `{s}` is not SERVICE:OPERATION")))?;
        check_ident("service", service)?;
        check_ident("operation", operation)?;
        Ok(Right {
            service: service.into(),
            operation: operation.into(),
        })
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.service, self.operation)
    }
}

/// The ways a mandate can be narrowed. Every field adds one check; fields
/// with several values allow any one of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Restrictions {
    /// Only these operations.
    pub operations: Vec<String>,
    /// Only these services.
    pub services: Vec<String>,
    /// Only resources equal to, or below, one of these paths. `/data/q3`
    /// admits `/data/q3` and `/data/q3/x`, never `/data/q3-old`.
    pub resource_prefixes: Vec<ResourcePath>,
    /// Only exactly one of these resources.
    pub resources: Vec<ResourcePath>,
    /// `attr(KEY, V)` must be present with an integer `MIN <= V <= MAX`.
    pub attr_range: Vec<(String, i64, i64)>,
    /// `attr(KEY, URL)` must be present, an absolute http(s) URL whose host
    /// is one of the listed hosts (compared after the verifier normalises
    /// the URL, so `user@host`, case, ports and trailing dots cannot fool it).
    pub url_hosts: Vec<(String, Vec<String>)>,
    /// `attr(KEY, V)` must be present with an integer `V <= N`.
    pub attr_max: Vec<(String, i64)>,
    /// `attr(KEY, V)` must be present with `V` one of the listed values.
    pub attr_in: Vec<(String, Vec<AttrValue>)>,
    /// An expiry; refused when later than the parent's.
    pub expires_at: Option<SystemTime>,
    /// How many further signed hops the token may take from here.
    pub max_depth: Option<u32>,
    /// Raw Datalog checks, the escape hatch (`check if ...`).
    pub checks: Vec<String>,
}

impl Restrictions {
    /// Whether no restriction is set.
    pub fn is_empty(&self) -> bool {
        *self == Restrictions::default()
    }

    /// Parses an `--attr-max KEY=N` argument.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the argument is not `KEY=<integer>`.
    pub fn parse_attr_max(arg: &str) -> Result<(String, i64), Error> {
        let (key, n) = arg
            .split_once('=')
            .ok_or_else(|| Error::Invalid(format!("`{arg}` is not KEY=N")))?;
        check_name("attribute name", key)?;
        let n = n
            .trim()
            .parse::<i64>()
            .map_err(|_| Error::Invalid(format!("`{n}` in `{arg}` is not an integer")))?;
        Ok((key.into(), n))
    }

    /// Parses an `--attr-range KEY=MIN..MAX` argument.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the argument is not `KEY=<int>..<int>` with
    /// `MIN <= MAX`.
    pub fn parse_attr_range(arg: &str) -> Result<(String, i64, i64), Error> {
        let bad = || {
            Error::Invalid(format!(
                "`{arg}` is not KEY=MIN..MAX with integers MIN <= MAX"
            ))
        };
        let (key, range) = arg.split_once('=').ok_or_else(bad)?;
        check_name("attribute name", key)?;
        let (min, max) = range.split_once("..").ok_or_else(bad)?;
        let min = min.trim().parse::<i64>().map_err(|_| bad())?;
        let max = max.trim().parse::<i64>().map_err(|_| bad())?;
        if min > max {
            return Err(bad());
        }
        Ok((key.into(), min, max))
    }

    /// Parses an `--url-host KEY=HOST1,HOST2` argument. Hosts are lowercased
    /// and a trailing dot dropped, as the verifier does for request URLs.
    ///
    /// # Errors
    /// [`Error::Invalid`] when no host is listed or a host is not a plain
    /// host name.
    pub fn parse_url_hosts(arg: &str) -> Result<(String, Vec<String>), Error> {
        let (key, hosts) = arg
            .split_once('=')
            .ok_or_else(|| Error::Invalid(format!("`{arg}` is not KEY=HOST1,HOST2")))?;
        check_name("attribute name", key)?;
        let hosts: Vec<String> = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(crate::request::normalise_host)
            .collect::<Result<_, _>>()?;
        if hosts.is_empty() {
            return Err(Error::Invalid(format!("`{arg}` lists no host")));
        }
        Ok((key.into(), hosts))
    }

    /// Parses an `--attr-in KEY=V1,V2` argument.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the argument is not `KEY=V[,V...]`.
    pub fn parse_attr_in(arg: &str) -> Result<(String, Vec<AttrValue>), Error> {
        let (key, values) = arg
            .split_once('=')
            .ok_or_else(|| Error::Invalid(format!("`{arg}` is not KEY=V1,V2")))?;
        check_name("attribute name", key)?;
        let values: Vec<AttrValue> = values
            .split(',')
            .filter(|v| !v.is_empty())
            .map(|v| check_name("attribute value", v).map(|()| AttrValue::parse(v)))
            .collect::<Result<_, _>>()?;
        if values.is_empty() {
            return Err(Error::Invalid(format!("`{arg}` lists no value")));
        }
        Ok((key.into(), values))
    }

    /// Compiles the restrictions into a block. `depth` is the delegation
    /// depth at which the block is added, so `max_depth` is absolute in the
    /// check.
    ///
    /// # Errors
    /// [`Error::Invalid`] for bad names, [`Error::Datalog`] for raw checks
    /// that do not parse.
    pub fn to_block(&self, depth: u32) -> Result<BlockBuilder, Error> {
        self.add_to(BlockBuilder::new(), depth)
    }

    /// Adds the compiled checks to an existing block (the issuer puts them in
    /// the authority block).
    ///
    /// Each check is built from terms, not from text, in the form
    /// `datalog/README.md` lists: a restriction to one value is the
    /// predicate with that value (`check if operation("read")`), to several
    /// a set's `contains`. The effective scope is read back from exactly
    /// these forms (`narrowing.rs`), so a block carries nothing beside
    /// its checks.
    ///
    /// # Errors
    /// As [`Restrictions::to_block`].
    pub fn add_to(&self, mut block: BlockBuilder, depth: u32) -> Result<BlockBuilder, Error> {
        let mut add = |check: Check| -> Result<(), Error> {
            block = std::mem::take(&mut block)
                .check(check)
                .map_err(Error::Biscuit)?;
            Ok(())
        };
        if !self.operations.is_empty() {
            for op in &self.operations {
                check_ident("operation", op)?;
            }
            add(one_of(
                vocab::OPERATION,
                &[],
                "o",
                strings(&self.operations),
            ))?;
        }
        if !self.services.is_empty() {
            for service in &self.services {
                check_ident("service", service)?;
            }
            add(one_of(vocab::SERVICE, &[], "s", strings(&self.services)))?;
        }
        if !self.resource_prefixes.is_empty() {
            add(prefix_check(&self.resource_prefixes))?;
        }
        if !self.resources.is_empty() {
            let resources = self.resources.iter().map(|r| builder::string(r.as_str()));
            add(one_of(vocab::RESOURCE, &[], "r", resources.collect()))?;
        }
        for (key, min, max) in &self.attr_range {
            let v = builder::var("v");
            add(check_if(
                vec![attr(vocab::ATTR, key, v.clone())?],
                vec![
                    vec![
                        Op::Value(v.clone()),
                        Op::Value(builder::int(*min)),
                        Op::Binary(Binary::GreaterOrEqual),
                    ],
                    at_most(v, builder::int(*max)),
                ],
            ))?;
        }
        for (key, hosts) in &self.url_hosts {
            check_name("attribute name", key)?;
            add(one_of(
                vocab::ATTR_HOST,
                &[builder::string(key)],
                "h",
                strings(hosts),
            ))?;
        }
        for (key, max) in &self.attr_max {
            let v = builder::var("v");
            add(check_if(
                vec![attr(vocab::ATTR, key, v.clone())?],
                vec![at_most(v, builder::int(*max))],
            ))?;
        }
        for (key, values) in &self.attr_in {
            check_name("attribute name", key)?;
            // A Biscuit set holds one type: biscuit-auth builds and signs a
            // mixed one, then fails reading it back (and panics doing so when
            // appending a signed block), so it is refused here.
            let ints = values
                .iter()
                .filter(|v| matches!(v, AttrValue::Int(_)))
                .count();
            if ints != 0 && ints != values.len() {
                return Err(Error::Invalid(format!(
                    "the values of attribute `{key}` mix numbers and strings; \
                     give all numbers or all strings"
                )));
            }
            add(one_of(
                vocab::ATTR,
                &[builder::string(key)],
                "v",
                values.iter().map(AttrValue::to_term).collect(),
            ))?;
        }
        if let Some(at) = self.expires_at {
            let t = builder::var("t");
            add(check_if(
                vec![builder::pred(vocab::TIME, std::slice::from_ref(&t))],
                vec![at_most(t, builder::date(&at))],
            ))?;
        }
        if let Some(further) = self.max_depth {
            let d = builder::var("d");
            add(check_if(
                vec![builder::pred(
                    vocab::DELEGATION_DEPTH,
                    std::slice::from_ref(&d),
                )],
                vec![at_most(
                    d,
                    builder::int(i64::from(depth) + i64::from(further)),
                )],
            ))?;
        }
        for check in &self.checks {
            let trimmed = check.trim().trim_end_matches(';');
            if trimmed.len() > MAX_CHECK_LEN {
                return Err(Error::Invalid(format!(
                    "a raw check is longer than {MAX_CHECK_LEN} bytes"
                )));
            }
            if !trimmed.starts_with("check ") {
                return Err(Error::Invalid(format!(
                    "`{trimmed}` is not a check (raw restrictions start with `check if`)"
                )));
            }
            // Exactly one check: text after it (`; right("bank", "pay")`)
            // would otherwise slip facts or rules into the block — into the
            // authority block when issuing.
            let parsed = crate::error::parse_datalog(trimmed, crate::error::DatalogKind::Block)?;
            // Scopes too, of the block or of the check's own queries
            // (`check if ... trusting ed25519/...`).
            let scoped = parsed
                .checks
                .iter()
                .any(|(_, check)| check.queries.iter().any(|q| !q.scopes.is_empty()));
            if parsed.checks.len() != 1
                || !parsed.facts.is_empty()
                || !parsed.rules.is_empty()
                || !parsed.scopes.is_empty()
                || scoped
            {
                return Err(Error::Invalid(format!(
                    "`{trimmed}` must be exactly one check, without facts, rules or scopes"
                )));
            }
            block = block
                .code(trimmed)
                .map_err(|e| Error::from_datalog(trimmed, e))?;
        }
        Ok(block)
    }
}

fn strings(values: &[String]) -> BTreeSet<Term> {
    values.iter().map(|v| builder::string(v)).collect()
}

/// `check if BODY, EXPRESSIONS` (one alternative).
fn check_if(body: Vec<Predicate>, expressions: Vec<Vec<Op>>) -> Check {
    Check {
        queries: vec![query(body, expressions)],
        kind: CheckKind::One,
    }
}

fn query(body: Vec<Predicate>, expressions: Vec<Vec<Op>>) -> Rule {
    Rule::new(
        builder::pred::<Term>("query", &[]),
        body,
        expressions
            .into_iter()
            .map(|ops| Expression { ops })
            .collect(),
        vec![],
    )
}

/// `$x <= BOUND`.
fn at_most(x: Term, bound: Term) -> Vec<Op> {
    vec![
        Op::Value(x),
        Op::Value(bound),
        Op::Binary(Binary::LessOrEqual),
    ]
}

/// `PREDICATE("KEY", VALUE)`, for a valid attribute name `key`.
fn attr(predicate: &str, key: &str, value: Term) -> Result<Predicate, Error> {
    check_name("attribute name", key)?;
    Ok(builder::pred(predicate, &[builder::string(key), value]))
}

/// `check if PREDICATE(LEADING.., "V")` for one value, `check if
/// PREDICATE(LEADING.., $VAR), {"V1", "V2"}.contains($VAR)` for several:
/// either way, some fact `PREDICATE(LEADING.., V)` must hold a listed value.
fn one_of(predicate: &str, leading: &[Term], var: &str, mut values: BTreeSet<Term>) -> Check {
    let mut terms = leading.to_vec();
    if values.len() == 1 {
        terms.extend(values.pop_first());
        return check_if(vec![builder::pred(predicate, &terms)], vec![]);
    }
    let x = builder::var(var);
    terms.push(x.clone());
    check_if(
        vec![builder::pred(predicate, &terms)],
        vec![vec![
            Op::Value(Term::Set(values)),
            Op::Value(x),
            Op::Binary(Binary::Contains),
        ]],
    )
}

/// `check if resource($r), ($r + "/").starts_with("P0/") or resource($r), ...`
///
/// The trailing `/` is what makes the prefix segment-safe: `/data/reports`
/// admits `/data/reports` and `/data/reports/q3` but not
/// `/data/reports-old`. Appending `/` to the resource as well covers the
/// prefix itself with one string instead of two (`$r == "P0" ||
/// $r.starts_with("P0/")` says the same). A prefix that already ends in `/`
/// (the root) is compared as it is.
fn prefix_check(prefixes: &[ResourcePath]) -> Check {
    let r = builder::var("r");
    let queries = prefixes
        .iter()
        .map(|prefix| {
            let prefix = prefix.as_str();
            let mut ops = vec![Op::Value(r.clone())];
            if prefix.ends_with('/') {
                ops.push(Op::Value(builder::string(prefix)));
            } else {
                ops.extend([
                    Op::Value(builder::string("/")),
                    Op::Binary(Binary::Add),
                    Op::Unary(Unary::Parens),
                    Op::Value(builder::string(&format!("{prefix}/"))),
                ]);
            }
            ops.push(Op::Binary(Binary::Prefix));
            query(
                vec![builder::pred(vocab::RESOURCE, std::slice::from_ref(&r))],
                vec![ops],
            )
        })
        .collect();
    Check {
        queries,
        kind: CheckKind::One,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::blocks::{read_all, Detail};
    use biscuit_auth::builder::AuthorizerBuilder;
    use biscuit_auth::{Biscuit, KeyPair};

    fn token_with(restrictions: &Restrictions) -> Biscuit {
        Biscuit::builder()
            .build(&KeyPair::new())
            .unwrap()
            .append(restrictions.to_block(0).unwrap())
            .unwrap()
    }

    /// The block `restrictions` compile to, as its checks print.
    fn compiled(restrictions: &Restrictions) -> Vec<String> {
        let token = token_with(restrictions);
        let blocks = read_all(&token.container().to_proto(), Detail::Text).unwrap();
        assert!(blocks[1].facts.is_empty(), "{:?}", blocks[1].facts);
        blocks[1].checks.clone()
    }

    fn resources(list: &[&str]) -> Vec<ResourcePath> {
        list.iter()
            .map(|r| ResourcePath::parse(r).unwrap())
            .collect()
    }

    #[test]
    fn every_flag_compiles_to_its_documented_check() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_893_456_000);
        let one = Restrictions {
            operations: vec!["read".into()],
            services: vec!["data".into()],
            resource_prefixes: resources(&["/p"]),
            resources: resources(&["/a"]),
            attr_range: vec![("n".into(), 1, 9)],
            url_hosts: vec![("url".into(), vec!["a.example".into()])],
            attr_max: vec![("amount".into(), 499)],
            attr_in: vec![("method".into(), vec![AttrValue::parse("card")])],
            expires_at: Some(at),
            max_depth: Some(2),
            checks: vec!["check if time($t)".into()],
        };
        assert_eq!(
            compiled(&one),
            [
                r#"check if operation("read")"#,
                r#"check if service("data")"#,
                r#"check if resource($r), ($r + "/").starts_with("/p/")"#,
                r#"check if resource("/a")"#,
                r#"check if attr("n", $v), $v >= 1, $v <= 9"#,
                r#"check if attr_host("url", "a.example")"#,
                r#"check if attr("amount", $v), $v <= 499"#,
                r#"check if attr("method", "card")"#,
                "check if time($t), $t <= 2030-01-01T00:00:00Z",
                "check if delegation_depth($d), $d <= 2",
                "check if time($t)",
            ]
        );
        let several = Restrictions {
            operations: vec!["write".into(), "read".into()],
            services: vec!["b".into(), "a".into()],
            resource_prefixes: resources(&["/p", "/"]),
            resources: resources(&["/a", "/b"]),
            url_hosts: vec![("url".into(), vec!["a.example".into(), "b.example".into()])],
            attr_in: vec![("n".into(), vec![AttrValue::Int(2), AttrValue::Int(1)])],
            ..Restrictions::default()
        };
        assert_eq!(
            compiled(&several),
            [
                r#"check if operation($o), {"read", "write"}.contains($o)"#,
                r#"check if service($s), {"a", "b"}.contains($s)"#,
                r#"check if resource($r), ($r + "/").starts_with("/p/") or resource($r), $r.starts_with("/")"#,
                r#"check if resource($r), {"/a", "/b"}.contains($r)"#,
                r#"check if attr_host("url", $h), {"a.example", "b.example"}.contains($h)"#,
                r#"check if attr("n", $v), {1, 2}.contains($v)"#,
            ]
        );
    }

    /// Whether a request for `resource` passes the block.
    fn admits(restrictions: &Restrictions, resource: &str) -> bool {
        AuthorizerBuilder::new()
            .fact(builder::fact(vocab::RESOURCE, &[builder::string(resource)]))
            .unwrap()
            .code("allow if true")
            .unwrap()
            .set_limits(crate::default_run_limits())
            .build(&token_with(restrictions))
            .unwrap()
            .authorize()
            .is_ok()
    }

    #[test]
    fn a_prefix_admits_itself_and_what_is_below_it_only() {
        let prefixes = |list: &[&str]| Restrictions {
            resource_prefixes: resources(list),
            ..Restrictions::default()
        };
        let reports = prefixes(&["/reports/alice"]);
        for inside in ["/reports/alice", "/reports/alice/r1", "/reports/alice/a/b"] {
            assert!(admits(&reports, inside), "{inside}");
        }
        for outside in ["/reports/alice-old", "/reports/alic", "/reports", "/", ""] {
            assert!(!admits(&reports, outside), "{outside}");
        }
        let root = prefixes(&["/"]);
        assert!(admits(&root, "/"));
        assert!(admits(&root, "/x/y"));
        assert!(!admits(&root, ""));
        let two = prefixes(&["/a", "/b/c"]);
        assert!(admits(&two, "/a"));
        assert!(admits(&two, "/b/c/d"));
        assert!(!admits(&two, "/b"));
    }
}
