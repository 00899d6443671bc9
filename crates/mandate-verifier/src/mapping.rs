//! Turns an HTTP request, as a proxy in front of a service saw it, into the
//! Mandate [`Request`] a verifier decides: which service, operation, resource
//! and attributes a `GET /accounts/42/balance?amount=5` is.
//!
//! The rules come from an operator's mapping file (TOML, `[[route]]` tables,
//! see `docs/proxies.md`), checked whole when it is loaded: an unknown key, a
//! bad template or a resource that could never be valid is refused there,
//! naming the route. At request time the first route whose methods and path
//! template match wins; no match is a refusal ([`MappingError::NoRoute`]),
//! never a default.
//!
//! Everything a peer sends is bounded and read once: the request target's
//! length and segment count, the query's pairs, each attribute value. Path
//! segments are percent-decoded strictly and a segment that backends might
//! read differently (`..`, `%2F`, `;`, a backslash, non-ASCII, a second
//! encoding) is refused, so the path matched here is the path every backend
//! sees. This module does no I/O besides [`Mapping::from_file`] and knows
//! nothing of HTTP libraries: headers arrive through [`HeaderSource`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use mandate_core::{AttrValue, Request, ResourcePath};
use serde::Deserialize;

/// The largest mapping file accepted.
pub const MAX_MAPPING_BYTES: usize = 1024 * 1024;
/// The most routes one mapping file may hold.
pub const MAX_ROUTES: usize = 4096;
/// The longest original request target (path and query) accepted.
pub const MAX_TARGET_LEN: usize = 4096;
/// The most path segments an original request may have.
pub const MAX_SEGMENTS: usize = 128;
/// The most `name=value` pairs read from a query string.
pub const MAX_QUERY_PAIRS: usize = 256;
/// The longest attribute value taken from a header, the query or the path.
pub const MAX_ATTR_VALUE_LEN: usize = 1024;
/// The longest HTTP method accepted.
pub const MAX_METHOD_LEN: usize = 32;
/// The longest capture name in a template.
const MAX_CAPTURE_NAME_LEN: usize = 64;

/// Why a mapping file was refused, or why a request could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MappingError {
    /// The file could not be read.
    #[error("cannot read mapping file {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The file is not TOML of the mapping's shape (an unknown key, a
    /// missing field, a wrong type), or is too large.
    #[error("mapping file refused: {message}")]
    Syntax {
        /// The parser's message, with the line.
        message: String,
    },
    /// One route cannot be served.
    #[error("mapping file refused: [[route]] number {number} (path {path:?}): {message}")]
    Route {
        /// The route's position in the file, counting from 1.
        number: usize,
        /// Its path template, as written.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// No route matches the request's method and path.
    #[error("no route of the mapping matches this method and path")]
    NoRoute,
    /// The original request target is malformed or ambiguous.
    #[error("request path refused: {why}")]
    BadTarget {
        /// What is wrong.
        why: String,
    },
    /// The original request's method is malformed.
    #[error(
        "request method refused: it must be 1 to {MAX_METHOD_LEN} letters, digits, `-` or `_`"
    )]
    BadMethod,
    /// An attribute the route reads is missing, repeated, too long or of the
    /// wrong type.
    #[error("attribute `{name}` refused: {why}")]
    BadAttr {
        /// The attribute.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// The mapped request is not a valid Mandate request (a name or a
    /// resource the verifier refuses).
    #[error("mapped request refused: {0}")]
    Request(String),
}

impl MappingError {
    /// A stable machine-readable code for the one JSON error shape.
    pub fn code(&self) -> &'static str {
        match self {
            MappingError::Read { .. }
            | MappingError::Syntax { .. }
            | MappingError::Route { .. } => "mapping_invalid",
            MappingError::NoRoute => "no_route",
            MappingError::BadTarget { .. } => "bad_path",
            MappingError::BadMethod => "bad_method",
            MappingError::BadAttr { .. } => "bad_attr",
            MappingError::Request(_) => "bad_request",
        }
    }
}

/// One header of the original request, as a [`HeaderSource`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderLookup<'a> {
    /// Not sent.
    Absent,
    /// Sent once, with these bytes.
    One(&'a [u8]),
    /// Sent more than once: which one a backend reads is anyone's guess, so
    /// a route reading it refuses the request.
    Repeated,
}

/// The headers of the original request.
pub trait HeaderSource {
    /// The header `name` (lower case).
    fn header(&self, name: &str) -> HeaderLookup<'_>;
}

/// Headers as `(name, value)` pairs; names compare case-insensitively.
impl HeaderSource for [(&str, &str)] {
    fn header(&self, name: &str) -> HeaderLookup<'_> {
        let mut found = self.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
        match (found.next(), found.next()) {
            (None, _) => HeaderLookup::Absent,
            (Some((_, value)), None) => HeaderLookup::One(value.as_bytes()),
            (Some(_), Some(_)) => HeaderLookup::Repeated,
        }
    }
}

/// A checked mapping file.
#[derive(Debug, Clone)]
pub struct Mapping {
    routes: Vec<Route>,
}

/// A request the mapping turned into a Mandate request.
#[derive(Debug, Clone)]
pub struct Mapped {
    /// The request to decide (without a proof of possession).
    pub request: Request,
    /// The route that matched, counting from 1 as in the file.
    pub route: usize,
}

// ---------------------------------------------------------------------------
// The file
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShape {
    #[serde(default)]
    route: Vec<RouteShape>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteShape {
    service: String,
    path: String,
    #[serde(default)]
    methods: Option<Vec<String>>,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    operations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    attrs: BTreeMap<String, AttrShape>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttrShape {
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    capture: Option<String>,
    #[serde(default, rename = "type")]
    kind: AttrType,
    #[serde(default)]
    required: bool,
}

/// The type an attribute value is given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum AttrType {
    /// Kept as text, whatever it looks like.
    #[default]
    String,
    /// A decimal 64-bit integer; anything else refuses the request.
    Int,
}

#[derive(Debug, Clone)]
struct Route {
    number: usize,
    service: String,
    segments: Vec<Segment>,
    /// The template ends in `**`: any further segments (zero or more).
    rest: bool,
    /// `None`: any method.
    methods: Option<Vec<String>>,
    operation: Operation,
    /// `None`: the request's path.
    resource: Option<Vec<Piece>>,
    attrs: Vec<Attr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Capture(String),
}

#[derive(Debug, Clone)]
enum Operation {
    One(String),
    ByMethod(BTreeMap<String, String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Capture(String),
    Rest,
}

#[derive(Debug, Clone)]
struct Attr {
    name: String,
    source: Source,
    kind: AttrType,
    required: bool,
}

#[derive(Debug, Clone)]
enum Source {
    Query(String),
    Header(String),
    Capture(String),
}

impl Mapping {
    /// Reads and checks a mapping file.
    ///
    /// # Errors
    /// [`MappingError::Read`], and the errors of [`Mapping::from_toml`].
    pub fn from_file(path: &Path) -> Result<Mapping, MappingError> {
        let read_error = |message: String| MappingError::Read {
            path: mandate_core::keys::describe_path(path),
            message,
        };
        let metadata = std::fs::metadata(path).map_err(|e| read_error(e.to_string()))?;
        if metadata.len() > MAX_MAPPING_BYTES as u64 {
            return Err(read_error(format!("larger than {MAX_MAPPING_BYTES} bytes")));
        }
        let text =
            mandate_core::text_file::read_text_file(path, mandate_core::text_file::MAX_TEXT_FILE)
                .map_err(|e| read_error(e.to_string()))?;
        Mapping::from_toml(&text)
    }

    /// Parses and checks a mapping.
    ///
    /// # Errors
    /// [`MappingError::Syntax`] for text that is not a mapping (unknown keys
    /// included), [`MappingError::Route`] naming the first route that cannot
    /// be served.
    pub fn from_toml(text: &str) -> Result<Mapping, MappingError> {
        if text.len() > MAX_MAPPING_BYTES {
            return Err(MappingError::Syntax {
                message: format!("larger than {MAX_MAPPING_BYTES} bytes"),
            });
        }
        let file: FileShape = toml::from_str(text).map_err(|e| MappingError::Syntax {
            message: e.to_string().trim_end().to_owned(),
        })?;
        if file.route.is_empty() {
            return Err(MappingError::Syntax {
                message: "no [[route]]: a mapping without routes would refuse every request".into(),
            });
        }
        if file.route.len() > MAX_ROUTES {
            return Err(MappingError::Syntax {
                message: format!("more than {MAX_ROUTES} routes"),
            });
        }
        let routes = file
            .route
            .into_iter()
            .enumerate()
            .map(|(i, shape)| Route::compile(i + 1, shape))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Mapping { routes })
    }

    /// How many routes the mapping holds.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the mapping holds no route (never true for a loaded file).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Maps the original request `method` `target` (path and query, as sent:
    /// percent-encoded) with its `headers` to a Mandate request at `now`.
    ///
    /// # Errors
    /// [`MappingError::BadMethod`] and [`MappingError::BadTarget`] for a
    /// malformed method or target, [`MappingError::NoRoute`] when no route
    /// matches, [`MappingError::BadAttr`] when the matching route's
    /// attributes cannot be read, [`MappingError::Request`] when the result
    /// is not a valid request.
    pub fn map<H: HeaderSource + ?Sized>(
        &self,
        method: &str,
        target: &str,
        headers: &H,
        now: SystemTime,
    ) -> Result<Mapped, MappingError> {
        check_method(method).map_err(|()| MappingError::BadMethod)?;
        let target = Target::parse(target)?;
        for route in &self.routes {
            let Some(operation) = route.operation_for(method) else {
                continue;
            };
            let Some(captures) = route.matches(&target.segments) else {
                continue;
            };
            return route.build(operation, &target, &captures, headers, now);
        }
        Err(MappingError::NoRoute)
    }
}

impl Route {
    fn compile(number: usize, shape: RouteShape) -> Result<Route, MappingError> {
        let path_text = shape.path.clone();
        let bad = |message: String| MappingError::Route {
            number,
            path: path_text.clone(),
            message,
        };
        mandate_core::check_name("service", &shape.service).map_err(|e| bad(e.to_string()))?;
        let (segments, rest) = parse_path_template(&shape.path).map_err(&bad)?;
        let captures: Vec<&str> = segments
            .iter()
            .filter_map(|s| match s {
                Segment::Capture(name) => Some(name.as_str()),
                Segment::Literal(_) => None,
            })
            .collect();

        let methods = match shape.methods {
            None => None,
            Some(methods) if methods.is_empty() => {
                return Err(bad(
                    "`methods` is empty: leave it out to accept every method".into(),
                ))
            }
            Some(methods) => {
                for method in &methods {
                    check_method(method).map_err(|()| {
                        bad(format!(
                            "method {method:?} is not an upper-case HTTP method (GET, POST, ...)"
                        ))
                    })?;
                }
                Some(methods)
            }
        };
        let operation = match (shape.operation, shape.operations) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "give `operation` or `operations` (per method), not both".into(),
                ))
            }
            (None, None) => {
                return Err(bad(
                    "no operation: give `operation = \"...\"` or `[route.operations]`".into(),
                ))
            }
            (Some(op), None) => {
                mandate_core::check_name("operation", &op).map_err(|e| bad(e.to_string()))?;
                Operation::One(op)
            }
            (None, Some(map)) => {
                if map.is_empty() {
                    return Err(bad("`operations` is empty".into()));
                }
                for (method, op) in &map {
                    check_method(method).map_err(|()| {
                        bad(format!(
                            "`operations` key {method:?} is not an upper-case HTTP method"
                        ))
                    })?;
                    mandate_core::check_name("operation", op).map_err(|e| bad(e.to_string()))?;
                }
                if let Some(methods) = &methods {
                    if let Some(missing) = methods.iter().find(|m| !map.contains_key(*m)) {
                        return Err(bad(format!(
                            "method {missing} is listed in `methods` but has no entry in `operations`"
                        )));
                    }
                }
                Operation::ByMethod(map)
            }
        };

        let resource = match &shape.resource {
            None => None,
            Some(template) => {
                let pieces = parse_resource_template(template, &captures, rest).map_err(&bad)?;
                // With every capture standing for a plain segment, the
                // template must give a valid resource; otherwise no request
                // could ever pass this route.
                let sample = render(&pieces, &|_| "x", "x");
                ResourcePath::parse(&sample).map_err(|e| {
                    bad(format!(
                        "resource template {template:?} is not a valid resource: {e}"
                    ))
                })?;
                Some(pieces)
            }
        };

        if shape.attrs.len() > Request::MAX_ATTRS {
            return Err(bad(format!("more than {} attributes", Request::MAX_ATTRS)));
        }
        let mut attrs = Vec::with_capacity(shape.attrs.len());
        for (name, attr) in shape.attrs {
            mandate_core::check_name("attribute name", &name).map_err(|e| bad(e.to_string()))?;
            let source = match (attr.query, attr.header, attr.capture) {
                (Some(q), None, None) => {
                    if q.is_empty() || q.len() > 256 || q.chars().any(|c| c.is_control()) {
                        return Err(bad(format!(
                            "attribute `{name}`: query parameter name must be 1 to 256 characters without control characters"
                        )));
                    }
                    Source::Query(q)
                }
                (None, Some(h), None) => {
                    if !is_token(&h) || h.len() > 256 {
                        return Err(bad(format!(
                            "attribute `{name}`: {h:?} is not a header name"
                        )));
                    }
                    Source::Header(h.to_ascii_lowercase())
                }
                (None, None, Some(c)) => {
                    if !captures.contains(&c.as_str()) {
                        return Err(bad(format!(
                            "attribute `{name}`: the path template has no capture `{{{c}}}`"
                        )));
                    }
                    Source::Capture(c)
                }
                _ => {
                    return Err(bad(format!(
                        "attribute `{name}` needs exactly one of `query`, `header` or `capture`"
                    )))
                }
            };
            attrs.push(Attr {
                name,
                source,
                kind: attr.kind,
                required: attr.required,
            });
        }

        Ok(Route {
            number,
            service: shape.service,
            segments,
            rest,
            methods,
            operation,
            resource,
            attrs,
        })
    }

    /// The operation for `method`, or `None` when this route does not
    /// accept it.
    fn operation_for(&self, method: &str) -> Option<&str> {
        if let Some(methods) = &self.methods {
            if !methods.iter().any(|m| m == method) {
                return None;
            }
        }
        match &self.operation {
            Operation::One(op) => Some(op),
            Operation::ByMethod(map) => map.get(method).map(String::as_str),
        }
    }

    /// The captures, when the decoded `segments` match the template.
    fn matches<'a>(&self, segments: &'a [String]) -> Option<Vec<(&str, &'a str)>> {
        if segments.len() < self.segments.len()
            || (!self.rest && segments.len() != self.segments.len())
        {
            return None;
        }
        let mut captures = Vec::new();
        for (template, segment) in self.segments.iter().zip(segments) {
            match template {
                Segment::Literal(text) if text == segment => {}
                Segment::Literal(_) => return None,
                Segment::Capture(name) => captures.push((name.as_str(), segment.as_str())),
            }
        }
        Some(captures)
    }

    fn build<H: HeaderSource + ?Sized>(
        &self,
        operation: &str,
        target: &Target<'_>,
        captures: &[(&str, &str)],
        headers: &H,
        now: SystemTime,
    ) -> Result<Mapped, MappingError> {
        let capture = |name: &str| {
            captures
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("", |(_, value)| *value)
        };
        let rest = target.segments[self.segments.len().min(target.segments.len())..].join("/");
        let resource = match &self.resource {
            None => target.path(),
            Some(pieces) => render(pieces, &capture, &rest),
        };
        let mut attrs = Vec::with_capacity(self.attrs.len());
        for attr in &self.attrs {
            let bad = |why: String| MappingError::BadAttr {
                name: attr.name.clone(),
                why,
            };
            let text = match &attr.source {
                Source::Capture(name) => Some(capture(name).to_owned()),
                Source::Query(name) => target.query_value(name).map_err(&bad)?,
                Source::Header(name) => header_value(headers, name).map_err(&bad)?,
            };
            let Some(text) = text else {
                if attr.required {
                    return Err(bad("missing".into()));
                }
                continue;
            };
            if text.len() > MAX_ATTR_VALUE_LEN {
                return Err(bad(format!("longer than {MAX_ATTR_VALUE_LEN} bytes")));
            }
            if text.chars().any(char::is_control) {
                return Err(bad("control character".into()));
            }
            let value = match attr.kind {
                AttrType::String => AttrValue::Str(text),
                AttrType::Int => AttrValue::Int(
                    text.parse::<i64>()
                        .map_err(|_| bad("not a decimal 64-bit integer".into()))?,
                ),
            };
            attrs.push((attr.name.clone(), value));
        }
        let request = Request::validated(&self.service, operation, &resource, attrs, now)
            .map_err(|e| MappingError::Request(e.to_string()))?;
        Ok(Mapped {
            request,
            route: self.number,
        })
    }
}

// ---------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------

/// `/accounts/{id}/balance` or `/files/**`: literal segments, `{name}`
/// captures of one segment, and an optional final `**`.
fn parse_path_template(text: &str) -> Result<(Vec<Segment>, bool), String> {
    if !text.starts_with('/') {
        return Err("the path template must start with `/`".into());
    }
    if text.len() > ResourcePath::MAX_LEN {
        return Err(format!(
            "the path template is longer than {} bytes",
            ResourcePath::MAX_LEN
        ));
    }
    let body = text.strip_prefix('/').unwrap_or(text);
    let body = body.strip_suffix('/').unwrap_or(body);
    let mut segments = Vec::new();
    let mut rest = false;
    if body.is_empty() {
        return Ok((segments, rest));
    }
    let parts: Vec<&str> = body.split('/').collect();
    if parts.len() > MAX_SEGMENTS {
        return Err(format!("more than {MAX_SEGMENTS} segments"));
    }
    for (i, part) in parts.iter().enumerate() {
        if *part == "**" {
            if i + 1 != parts.len() {
                return Err("`**` may only be the last segment".into());
            }
            rest = true;
        } else if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            check_capture_name(name)?;
            if segments.contains(&Segment::Capture(name.to_owned())) {
                return Err(format!("capture `{{{name}}}` appears twice"));
            }
            segments.push(Segment::Capture(name.to_owned()));
        } else {
            if part.contains(['{', '}', '*']) {
                return Err(format!(
                    "segment {part:?}: a capture is a whole segment `{{name}}`, and `**` only ends a template"
                ));
            }
            check_segment(part).map_err(|why| format!("segment {part:?}: {why}"))?;
            segments.push(Segment::Literal((*part).to_owned()));
        }
    }
    Ok((segments, rest))
}

/// `/accounts/{id}`, `/files/{**}`: text with placeholders naming the path
/// template's captures (`{**}`: the segments `**` matched).
fn parse_resource_template(
    text: &str,
    captures: &[&str],
    rest: bool,
) -> Result<Vec<Piece>, String> {
    if text.len() > ResourcePath::MAX_LEN {
        return Err(format!(
            "the resource template is longer than {} bytes",
            ResourcePath::MAX_LEN
        ));
    }
    let mut pieces = Vec::new();
    let mut remaining = text;
    while let Some(open) = remaining.find(['{', '}']) {
        if remaining[open..].starts_with('}') {
            return Err(format!("resource template {text:?}: unmatched `}}`"));
        }
        if open > 0 {
            pieces.push(Piece::Text(remaining[..open].to_owned()));
        }
        let after = &remaining[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("resource template {text:?}: unclosed `{{`"))?;
        let name = &after[..close];
        if name == "**" {
            if !rest {
                return Err(format!(
                    "resource template {text:?} uses `{{**}}` but the path template does not end in `**`"
                ));
            }
            pieces.push(Piece::Rest);
        } else if captures.contains(&name) {
            pieces.push(Piece::Capture(name.to_owned()));
        } else {
            return Err(format!(
                "resource template {text:?} uses `{{{name}}}`, which the path template does not capture"
            ));
        }
        remaining = &after[close + 1..];
    }
    if !remaining.is_empty() {
        pieces.push(Piece::Text(remaining.to_owned()));
    }
    Ok(pieces)
}

fn render<'a>(pieces: &[Piece], capture: &dyn Fn(&str) -> &'a str, rest: &str) -> String {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Capture(name) => out.push_str(capture(name)),
            Piece::Rest => out.push_str(rest),
        }
    }
    out
}

fn check_capture_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    if !first_ok
        || name.len() > MAX_CAPTURE_NAME_LEN
        || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!(
            "capture `{{{name}}}`: names are lower-case letters, digits and `_`, at most {MAX_CAPTURE_NAME_LEN}"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The original request
// ---------------------------------------------------------------------------

/// An RFC 9110 method: a token. Mandate accepts the usual upper-case form.
fn check_method(method: &str) -> Result<(), ()> {
    let ok = !method.is_empty()
        && method.len() <= MAX_METHOD_LEN
        && method
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(())
    }
}

/// An RFC 9110 token (header names).
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether a decoded path segment is one every backend reads the same way.
fn check_segment(segment: &str) -> Result<(), &'static str> {
    if segment.is_empty() {
        return Err("empty segment (`//`)");
    }
    if segment == "." || segment == ".." {
        return Err("`.` or `..` segment");
    }
    if !segment.is_ascii() {
        return Err("non-ASCII characters");
    }
    if segment
        .bytes()
        .any(|b| b.is_ascii_control() || b.is_ascii_whitespace())
    {
        return Err("control character or whitespace");
    }
    if segment.contains(['/', '\\', ';', '%', '"']) {
        // `%2F` would split a segment for some backends only; `;` starts
        // path parameters for some (`..;`); `%` after decoding is a second
        // encoding.
        return Err("`/`, `\\`, `;`, `\"` or a second percent-encoding");
    }
    Ok(())
}

/// The original request target, checked and split once.
struct Target<'a> {
    /// Decoded segments, without the trailing slash.
    segments: Vec<String>,
    /// The raw query (after `?`), if any.
    query: Option<&'a str>,
}

impl<'a> Target<'a> {
    fn parse(text: &'a str) -> Result<Target<'a>, MappingError> {
        let bad = |why: &str| MappingError::BadTarget {
            why: why.to_owned(),
        };
        if text.len() > MAX_TARGET_LEN {
            return Err(MappingError::BadTarget {
                why: format!("longer than {MAX_TARGET_LEN} bytes"),
            });
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(
                "characters outside visible ASCII must be percent-encoded",
            ));
        }
        if text.contains('#') {
            return Err(bad("a fragment (`#`) is never sent to a server"));
        }
        let (path, query) = match text.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (text, None),
        };
        if !path.starts_with('/') {
            return Err(bad("not an absolute path (it must start with `/`)"));
        }
        let body = &path[1..];
        let body = body.strip_suffix('/').unwrap_or(body);
        let mut segments = Vec::new();
        if !body.is_empty() {
            for raw in body.split('/') {
                if segments.len() == MAX_SEGMENTS {
                    return Err(MappingError::BadTarget {
                        why: format!("more than {MAX_SEGMENTS} segments"),
                    });
                }
                let decoded = percent_decode(raw).map_err(&bad)?;
                check_segment(&decoded).map_err(&bad)?;
                segments.push(decoded);
            }
        }
        Ok(Target { segments, query })
    }

    /// The decoded path, normalised as a resource (`/` when empty).
    fn path(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            out.push('/');
            out.push_str(segment);
        }
        if out.is_empty() {
            out.push('/');
        }
        out
    }

    /// The decoded value of query parameter `name`; refused when repeated.
    fn query_value(&self, name: &str) -> Result<Option<String>, String> {
        let Some(query) = self.query else {
            return Ok(None);
        };
        let mut found = None;
        for (i, pair) in query.split('&').enumerate() {
            if i == MAX_QUERY_PAIRS {
                return Err(format!(
                    "the query has more than {MAX_QUERY_PAIRS} parameters"
                ));
            }
            if pair.is_empty() {
                continue;
            }
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = form_decode(key).map_err(|why| format!("a query parameter name: {why}"))?;
            if key != name {
                continue;
            }
            if found.is_some() {
                // Backends disagree on which of two values counts.
                return Err(format!("query parameter `{name}` given more than once"));
            }
            found =
                Some(form_decode(value).map_err(|why| format!("query parameter `{name}`: {why}"))?);
        }
        Ok(found)
    }
}

fn header_value<H: HeaderSource + ?Sized>(
    headers: &H,
    name: &str,
) -> Result<Option<String>, String> {
    match headers.header(name) {
        HeaderLookup::Absent => Ok(None),
        HeaderLookup::Repeated => Err(format!("header `{name}` sent more than once")),
        HeaderLookup::One(bytes) => {
            if bytes.len() > MAX_ATTR_VALUE_LEN {
                return Err(format!(
                    "header `{name}` is longer than {MAX_ATTR_VALUE_LEN} bytes"
                ));
            }
            if !bytes
                .iter()
                .all(|b| b.is_ascii_graphic() || *b == b' ' || *b == b'\t')
            {
                return Err(format!("header `{name}` is not visible ASCII"));
            }
            let text = String::from_utf8_lossy(bytes);
            Ok(Some(text.trim_matches([' ', '\t']).to_owned()))
        }
    }
}

/// Strict percent-decoding: every `%` starts two hex digits, and the result
/// is UTF-8.
fn percent_decode(text: &str) -> Result<String, &'static str> {
    decode(text, false)
}

/// Query decoding (`application/x-www-form-urlencoded`): `+` is a space.
fn form_decode(text: &str) -> Result<String, &'static str> {
    decode(text, true)
}

fn decode(text: &str, plus_is_space: bool) -> Result<String, &'static str> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .ok_or("`%` not followed by two hex digits")?;
                let high = hex_value(hex[0]).ok_or("`%` not followed by two hex digits")?;
                let low = hex_value(hex[1]).ok_or("`%` not followed by two hex digits")?;
                out.push(high * 16 + low);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "percent-encoding that is not UTF-8")
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;
