//! Restrictions: the structured ways to narrow a mandate, each compiled to a
//! Datalog check, and offline delegation that appends them as a block.
//!
//! Values never reach Datalog as text: they are bound as parameters, so a
//! service name or an attribute value cannot inject Datalog. Raw Datalog
//! enters only through [`Restrictions::checks`], which is parsed and refused
//! with its position when it does not parse.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use biscuit_auth::builder::{self, BlockBuilder, Term};

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
    /// # Errors
    /// As [`Restrictions::to_block`].
    pub fn add_to(&self, mut block: BlockBuilder, depth: u32) -> Result<BlockBuilder, Error> {
        block = self.add_summary(block, depth)?;
        if !self.operations.is_empty() {
            for op in &self.operations {
                check_ident("operation", op)?;
            }
            block = with_param(
                block,
                &format!(
                    "check if {}($o), {{allowed}}.contains($o)",
                    vocab::OPERATION
                ),
                "allowed",
                string_set(&self.operations),
            )?;
        }
        if !self.services.is_empty() {
            for service in &self.services {
                check_ident("service", service)?;
            }
            block = with_param(
                block,
                &format!("check if {}($s), {{allowed}}.contains($s)", vocab::SERVICE),
                "allowed",
                string_set(&self.services),
            )?;
        }
        if !self.resource_prefixes.is_empty() {
            block = add_prefix_check(block, &self.resource_prefixes)?;
        }
        if !self.resources.is_empty() {
            let resources: Vec<String> = self
                .resources
                .iter()
                .map(|r| r.as_str().to_string())
                .collect();
            block = with_param(
                block,
                &format!("check if {}($r), {{allowed}}.contains($r)", vocab::RESOURCE),
                "allowed",
                string_set(&resources),
            )?;
        }
        for (key, min, max) in &self.attr_range {
            block = attr_check(
                block,
                key,
                &format!(
                    "check if {}({{key}}, $v), $v >= {{min}}, $v <= {{max}}",
                    vocab::ATTR
                ),
                [("min", builder::int(*min)), ("max", builder::int(*max))],
            )?;
        }
        for (key, hosts) in &self.url_hosts {
            block = attr_check(
                block,
                key,
                &format!(
                    "check if {}({{key}}, $h), {{allowed}}.contains($h)",
                    vocab::ATTR_HOST
                ),
                [("allowed", string_set(hosts))],
            )?;
        }
        for (key, max) in &self.attr_max {
            block = attr_check(
                block,
                key,
                &format!("check if {}({{key}}, $v), $v <= {{max}}", vocab::ATTR),
                [("max", builder::int(*max))],
            )?;
        }
        for (key, values) in &self.attr_in {
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
            let allowed = Term::Set(values.iter().map(AttrValue::to_term).collect());
            block = attr_check(
                block,
                key,
                &format!(
                    "check if {}({{key}}, $v), {{allowed}}.contains($v)",
                    vocab::ATTR
                ),
                [("allowed", allowed)],
            )?;
        }
        if let Some(at) = self.expires_at {
            block = with_param(
                block,
                &format!("check if {}($t), $t <= {{at}}", vocab::TIME),
                "at",
                builder::date(&at),
            )?;
        }
        if let Some(further) = self.max_depth {
            block = with_param(
                block,
                &format!("check if {}($d), $d <= {{max}}", vocab::DELEGATION_DEPTH),
                "max",
                builder::int(i64::from(depth) + i64::from(further)),
            )?;
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
            if parsed.checks.len() != 1
                || !parsed.facts.is_empty()
                || !parsed.rules.is_empty()
                || !parsed.scopes.is_empty()
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

impl Restrictions {
    /// Adds `restricts(Kind, Value)` facts summarising the structured
    /// restrictions, so a later `delegate` can refuse to widen them. The
    /// summary is informational: no check reads it and the verifier never
    /// trusts it (facts outside the authority block are not trusted).
    fn add_summary(&self, mut block: BlockBuilder, depth: u32) -> Result<BlockBuilder, Error> {
        let mut add = |kind: &str, value: Term| -> Result<(), Error> {
            let fact = builder::fact(vocab::RESTRICTS, &[builder::string(kind), value]);
            block = std::mem::take(&mut block)
                .fact(fact)
                .map_err(Error::Biscuit)?;
            Ok(())
        };
        if !self.operations.is_empty() {
            add(summary::OPERATIONS, string_set(&self.operations))?;
        }
        if !self.services.is_empty() {
            add(summary::SERVICES, string_set(&self.services))?;
        }
        if let Some(at) = self.expires_at {
            add(summary::EXPIRES, builder::date(&at))?;
        }
        if let Some(further) = self.max_depth {
            add(
                summary::MAX_DEPTH,
                builder::int(i64::from(depth) + i64::from(further)),
            )?;
        }
        Ok(block)
    }
}

/// Kinds of `restricts(Kind, Value)` summary facts.
pub(crate) mod summary {
    pub const OPERATIONS: &str = "operations";
    pub const SERVICES: &str = "services";
    pub const EXPIRES: &str = "expires";
    pub const MAX_DEPTH: &str = "max_depth";
}

fn string_set(values: &[String]) -> Term {
    Term::Set(
        values
            .iter()
            .map(|v| builder::string(v))
            .collect::<BTreeSet<_>>(),
    )
}

fn code(
    block: BlockBuilder,
    source: &str,
    params: HashMap<String, Term>,
) -> Result<BlockBuilder, Error> {
    block
        .code_with_params(source, params, HashMap::new())
        .map_err(|e| Error::from_datalog(source, e))
}

fn with_param(
    block: BlockBuilder,
    source: &str,
    name: &str,
    value: Term,
) -> Result<BlockBuilder, Error> {
    code(block, source, HashMap::from([(name.to_string(), value)]))
}

/// A check on attribute `key`: `source` names it `{key}`, plus `params`.
fn attr_check<const N: usize>(
    block: BlockBuilder,
    key: &str,
    source: &str,
    params: [(&str, Term); N],
) -> Result<BlockBuilder, Error> {
    check_name("attribute name", key)?;
    let mut all: HashMap<String, Term> = params
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
    all.insert("key".to_string(), builder::string(key));
    code(block, source, all)
}

/// `check if resource($r), $r == P0 || $r.starts_with(P0/) or resource($r), ...`
///
/// The trailing `/` is what makes the prefix segment-safe: `/data/reports`
/// admits `/data/reports/q3` but not `/data/reports-old`.
fn add_prefix_check(block: BlockBuilder, prefixes: &[ResourcePath]) -> Result<BlockBuilder, Error> {
    let mut params = HashMap::new();
    let mut alternatives = Vec::new();
    for (i, prefix) in prefixes.iter().enumerate() {
        let exact = prefix.as_str().to_string();
        let below = if exact.ends_with('/') {
            exact.clone()
        } else {
            format!("{exact}/")
        };
        params.insert(format!("exact{i}"), builder::string(&exact));
        params.insert(format!("below{i}"), builder::string(&below));
        alternatives.push(format!(
            "{}($r), $r == {{exact{i}}} || $r.starts_with({{below{i}}})",
            vocab::RESOURCE
        ));
    }
    code(
        block,
        &format!("check if {}", alternatives.join(" or ")),
        params,
    )
}
