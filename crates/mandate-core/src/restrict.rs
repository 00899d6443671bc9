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
use biscuit_parser::builder::Term as ParsedTerm;

use crate::blocks::BlockContents;
use crate::chain::Chain;
use crate::inspect::AuthorityClaims;
use crate::keys::{PublicKey, SecretKey};
use crate::name::check_name;
use crate::request::{AttrValue, ResourcePath};
use crate::token::UnverifiedMandate;
use crate::vocab;
use crate::Error;

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
mod summary {
    pub const OPERATIONS: &str = "operations";
    pub const SERVICES: &str = "services";
    pub const EXPIRES: &str = "expires";
    pub const MAX_DEPTH: &str = "max_depth";
}

/// What a token allows after every block, as far as its structured
/// restrictions say. Read unverified: it serves to refuse a delegation that
/// would widen (or could never help), never to decide a request.
#[derive(Debug, Clone)]
struct Effective {
    rights: Vec<Right>,
    operations: Option<BTreeSet<String>>,
    services: Option<BTreeSet<String>>,
    expires_at: Option<SystemTime>,
    max_depth: Option<i64>,
}

/// The expiry that applies after every block's `--ttl`, read unverified
/// (for reports only).
pub(crate) fn effective_expiry(
    claims: &AuthorityClaims,
    blocks: &[BlockContents],
) -> Option<SystemTime> {
    Effective::read(claims, blocks).expires_at
}

impl Effective {
    fn read(claims: &AuthorityClaims, blocks: &[BlockContents]) -> Effective {
        let mut effective = Effective {
            rights: claims.rights.clone(),
            operations: None,
            services: None,
            expires_at: claims.expires_at,
            max_depth: None,
        };
        for block in blocks {
            for (name, terms) in &block.facts {
                if name != vocab::RESTRICTS {
                    continue;
                }
                match terms.as_slice() {
                    [ParsedTerm::Str(kind), ParsedTerm::Set(values)] => {
                        let values: BTreeSet<String> = values
                            .iter()
                            .filter_map(|t| match t {
                                ParsedTerm::Str(s) => Some(s.clone()),
                                _ => None,
                            })
                            .collect();
                        let slot = match kind.as_str() {
                            summary::OPERATIONS => &mut effective.operations,
                            summary::SERVICES => &mut effective.services,
                            _ => continue,
                        };
                        *slot = Some(match slot.take() {
                            Some(prev) => prev.intersection(&values).cloned().collect(),
                            None => values,
                        });
                    }
                    [ParsedTerm::Str(kind), ParsedTerm::Date(at)] if kind == summary::EXPIRES => {
                        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(*at);
                        effective.expires_at = Some(effective.expires_at.map_or(at, |e| e.min(at)));
                    }
                    [ParsedTerm::Str(kind), ParsedTerm::Integer(n)]
                        if kind == summary::MAX_DEPTH =>
                    {
                        effective.max_depth = Some(effective.max_depth.map_or(*n, |m| m.min(*n)));
                    }
                    _ => {}
                }
            }
        }
        effective
    }

    fn allows_service(&self, service: &str) -> bool {
        self.rights.iter().any(|r| r.service == service)
            && self.services.as_ref().is_none_or(|s| s.contains(service))
    }

    fn allows_operation(&self, operation: &str, services: &[String]) -> bool {
        self.rights.iter().any(|r| {
            r.operation == operation
                && (services.is_empty() || services.contains(&r.service))
                && self.allows_service(&r.service)
        }) && self
            .operations
            .as_ref()
            .is_none_or(|o| o.contains(operation))
    }

    fn describe(&self) -> String {
        let rights: Vec<String> = self
            .rights
            .iter()
            .filter(|r| {
                self.allows_service(&r.service)
                    && self
                        .operations
                        .as_ref()
                        .is_none_or(|o| o.contains(&r.operation))
            })
            .map(Right::to_string)
            .collect();
        if rights.is_empty() {
            "nothing".into()
        } else {
            rights.join(", ")
        }
    }

    /// Refuses restrictions that ask for more than the token has, or that
    /// would let the chain grow past an earlier depth limit.
    fn check(&self, asked: &Restrictions, depth_after: u32) -> Result<(), Error> {
        for service in &asked.services {
            if !self.allows_service(service) {
                return Err(Error::NotInParent {
                    requested: format!("service `{service}`"),
                    allowed: self.describe(),
                });
            }
        }
        for operation in &asked.operations {
            if !self.allows_operation(operation, &asked.services) {
                return Err(Error::NotInParent {
                    requested: format!("operation `{operation}`"),
                    allowed: self.describe(),
                });
            }
        }
        let rfc3339 = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
        if let (Some(asked), Some(parent)) = (asked.expires_at, self.expires_at) {
            if asked > parent {
                return Err(Error::NotInParent {
                    requested: format!("expiry {}", rfc3339(asked)),
                    allowed: format!("an expiry no later than {}", rfc3339(parent)),
                });
            }
        }
        if let Some(max) = self.max_depth {
            if i64::from(depth_after) > max {
                return Err(Error::NotInParent {
                    requested: format!("delegation depth {depth_after}"),
                    allowed: format!("a depth of at most {max}"),
                });
            }
            if let Some(further) = asked.max_depth {
                let asked_abs = i64::from(depth_after) + i64::from(further);
                if asked_abs > max {
                    return Err(Error::NotInParent {
                        requested: format!("--max-depth {further} (depth {asked_abs})"),
                        allowed: format!("a depth of at most {max}"),
                    });
                }
            }
        }
        Ok(())
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

/// Refuses restrictions minted into a new mandate that name an operation or
/// service outside `rights`, or an expiry after `expires_at`: such a mandate
/// could never be used as asked.
///
/// # Errors
/// [`Error::NotInParent`] naming what the rights allow.
pub fn check_within_rights(
    restrictions: &Restrictions,
    rights: &[Right],
    expires_at: SystemTime,
) -> Result<(), Error> {
    let effective = Effective {
        rights: rights.to_vec(),
        operations: None,
        services: None,
        expires_at: Some(expires_at),
        max_depth: None,
    };
    effective.check(restrictions, 0)
}

/// Reads the claimed scope and chain of a token, parsing each block once.
fn read_unverified(token: &UnverifiedMandate) -> Result<(Effective, Chain), Error> {
    let blocks = token.blocks()?;
    let (claims, chain) = crate::chain::read(&blocks);
    let chain = chain.map_err(Error::Chain)?;
    Ok((Effective::read(&claims, &blocks), chain))
}

/// The agent a signed hop hands the authority to.
#[derive(Debug, Clone)]
pub struct NextAgent {
    /// Its name.
    pub name: String,
    /// Its public key; only the holder of the matching secret key can use or
    /// pass on the delegated token.
    pub key: PublicKey,
}

/// Narrows a mandate offline: appends one unsigned block of restrictions.
///
/// Needs no key and no network, and never changes who holds the authority.
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
    // The chain and scope are read unverified: they only serve to refuse a
    // block that could never help. The verifier enforces every check anyway.
    let (effective, chain) = read_unverified(token)?;
    effective.check(restrictions, chain.depth())?;
    token.append(restrictions.to_block(chain.depth())?)
}

/// Appends a block signed by the current holder's key: a hop to `to` when
/// given (the next agent then holds the authority), otherwise restrictions
/// that provably come from the holder.
///
/// # Errors
/// [`Error::NotHolder`] when `signer` is not the current holder's key, and
/// the errors of [`delegate`].
pub fn delegate_signed(
    token: &UnverifiedMandate,
    signer: &SecretKey,
    to: Option<&NextAgent>,
    restrictions: &Restrictions,
) -> Result<UnverifiedMandate, Error> {
    if to.is_none() && restrictions.is_empty() {
        return Err(Error::Invalid(
            "nothing to delegate: give --to or at least one restriction".into(),
        ));
    }
    let (effective, chain) = read_unverified(token)?;
    let holder = chain.holder();
    if holder.key != Some(signer.public()) {
        return Err(Error::NotHolder {
            signer: signer.public().to_string(),
            holder: holder.name.clone(),
            holder_key: holder
                .key
                .map_or_else(|| "none (bearer token)".to_string(), |k| k.to_string()),
        });
    }
    let depth_after = chain.depth() + u32::from(to.is_some());
    effective.check(restrictions, depth_after)?;
    let mut block = BlockBuilder::new();
    if let Some(next) = to {
        check_name("agent name", &next.name)?;
        block = block
            .fact(builder::fact(
                vocab::HOP,
                &[
                    builder::string(&next.name),
                    builder::string(&next.key.to_string()),
                ],
            ))
            .map_err(Error::Biscuit)?;
    }
    let block = restrictions.add_to(block, depth_after)?;
    token.append_third_party(signer, block)
}
