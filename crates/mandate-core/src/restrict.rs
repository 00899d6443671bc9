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

use crate::inspect::AuthorityClaims;
use crate::request::{AttrValue, ResourcePath};
use crate::token::UnverifiedMandate;
use crate::vocab;
use crate::Error;

/// The longest service, operation, principal, agent or task name accepted.
pub const MAX_NAME_LEN: usize = 256;

/// Checks a name used as a Datalog string (service, operation, agent...).
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::Invalid(format!("{what} is empty")));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::Invalid(format!(
            "{what} is longer than {MAX_NAME_LEN} bytes"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "{what} `{}` contains a control character",
            name.escape_debug()
        )));
    }
    Ok(())
}

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
            .map(AttrValue::parse)
            .collect();
        if values.is_empty() {
            return Err(Error::Invalid(format!("`{arg}` lists no value")));
        }
        Ok((key.into(), values))
    }

    /// Refuses restrictions that name an operation or service the token's
    /// rights do not carry, or an expiry later than the token's: such a
    /// block would never help, and usually means a typo.
    pub(crate) fn check_within(&self, claims: &AuthorityClaims) -> Result<(), Error> {
        let allowed = || {
            claims
                .rights
                .iter()
                .map(Right::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let services: Vec<&str> = if self.services.is_empty() {
            claims.rights.iter().map(|r| r.service.as_str()).collect()
        } else {
            self.services.iter().map(String::as_str).collect()
        };
        for service in &self.services {
            if !claims.rights.iter().any(|r| &r.service == service) {
                return Err(Error::NotInParent {
                    requested: format!("service `{service}`"),
                    allowed: allowed(),
                });
            }
        }
        for operation in &self.operations {
            let carried = claims
                .rights
                .iter()
                .any(|r| &r.operation == operation && services.contains(&r.service.as_str()));
            if !carried {
                return Err(Error::NotInParent {
                    requested: format!("operation `{operation}`"),
                    allowed: allowed(),
                });
            }
        }
        if let (Some(asked), Some(parent)) = (self.expires_at, claims.expires_at) {
            if asked > parent {
                return Err(Error::NotInParent {
                    requested: format!("expiry {}", humantime::format_rfc3339_seconds(asked)),
                    allowed: format!("at most {}", humantime::format_rfc3339_seconds(parent)),
                });
            }
        }
        Ok(())
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
        for (key, max) in &self.attr_max {
            check_name("attribute name", key)?;
            let mut params = HashMap::new();
            params.insert("key".to_string(), builder::string(key));
            params.insert("max".to_string(), builder::int(*max));
            block = code(
                block,
                &format!("check if {}({{key}}, $v), $v <= {{max}}", vocab::ATTR),
                params,
            )?;
        }
        for (key, values) in &self.attr_in {
            check_name("attribute name", key)?;
            let mut params = HashMap::new();
            params.insert("key".to_string(), builder::string(key));
            params.insert(
                "allowed".to_string(),
                Term::Set(values.iter().map(AttrValue::to_term).collect()),
            );
            block = code(
                block,
                &format!(
                    "check if {}({{key}}, $v), {{allowed}}.contains($v)",
                    vocab::ATTR
                ),
                params,
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
            if !trimmed.trim_start().starts_with("check ") {
                return Err(Error::Invalid(format!(
                    "`{}` is not a check (raw restrictions start with `check if`)",
                    trimmed
                )));
            }
            block = block
                .code(trimmed)
                .map_err(|e| Error::from_datalog(trimmed, e))?;
        }
        Ok(block)
    }
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
    let mut params = HashMap::new();
    params.insert(name.to_string(), value);
    code(block, source, params)
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

/// Narrows a mandate offline: appends one block carrying `restrictions`.
///
/// Needs no key and no network. The block is refused when it would name an
/// operation or service the token does not carry, or a later expiry.
///
/// # Errors
/// [`Error::Invalid`] when `restrictions` is empty, [`Error::NotInParent`]
/// when it asks for more than the parent has, and the errors of
/// [`Restrictions::to_block`].
pub fn delegate(
    token: &UnverifiedMandate,
    restrictions: &Restrictions,
) -> Result<UnverifiedMandate, Error> {
    if restrictions.is_empty() {
        return Err(Error::Invalid(
            "nothing to delegate: give at least one restriction".into(),
        ));
    }
    // The claims are read unverified: they only serve to refuse a block that
    // could never help. The verifier enforces the rights either way.
    let claims = AuthorityClaims::read_unverified(token)?;
    restrictions.check_within(&claims)?;
    let depth = crate::inspect::hop_count(token);
    token.append(restrictions.to_block(depth)?)
}
