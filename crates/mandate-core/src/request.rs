//! The request a verifier decides: what is being called, on what, when, and
//! under which runtime conditions.
//!
//! Resources are normalised here, before they become Datalog facts, so a
//! prefix restriction cannot be escaped with `..`, `//` or percent-encoding.

use std::fmt;
use std::time::SystemTime;

use crate::Error;

/// One call an agent makes, as the verifier sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The service being called (`service(S)`).
    pub service: String,
    /// The operation (`operation(O)`).
    pub operation: String,
    /// The resource (`resource(R)`), already normalised.
    pub resource: ResourcePath,
    /// Runtime conditions (`attr(Key, Value)`), at most [`Request::MAX_ATTRS`].
    pub attrs: Vec<(String, AttrValue)>,
    /// The time of the call (`time(T)`).
    pub time: SystemTime,
    /// The acting agent's proof of possession for this call, if any.
    pub proof: Option<crate::Proof>,
}

impl Request {
    /// The most attributes one request may carry; every input that can grow
    /// has a bound.
    pub const MAX_ATTRS: usize = 64;

    /// A request at `time` without attributes.
    pub fn new(
        service: impl Into<String>,
        operation: impl Into<String>,
        resource: ResourcePath,
        time: SystemTime,
    ) -> Request {
        Request {
            service: service.into(),
            operation: operation.into(),
            resource,
            attrs: Vec::new(),
            time,
            proof: None,
        }
    }

    /// The one validating constructor, used by the CLI and the HTTP API
    /// alike: checks the service and operation names, normalises the
    /// resource, and refuses an empty, badly named or repeated attribute key
    /// and more than [`Request::MAX_ATTRS`] attributes.
    ///
    /// # Errors
    /// [`Error::Invalid`] or [`Error::InvalidName`] naming what is wrong.
    pub fn validated(
        service: &str,
        operation: &str,
        resource: &str,
        attrs: impl IntoIterator<Item = (String, AttrValue)>,
        time: SystemTime,
    ) -> Result<Request, Error> {
        crate::check_name("service", service)?;
        crate::check_name("operation", operation)?;
        let resource = ResourcePath::parse(resource)?;
        let mut request = Request::new(service, operation, resource, time);
        for (key, value) in attrs {
            request = request.with_attr(key, value)?;
        }
        Ok(request)
    }

    /// Adds one attribute.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty, badly named or repeated key, or too
    /// many attributes.
    pub fn with_attr(mut self, key: String, value: AttrValue) -> Result<Request, Error> {
        if key.is_empty() {
            return Err(Error::Invalid("an attribute has an empty key".into()));
        }
        crate::check_name("attribute name", &key)?;
        if self.attrs.iter().any(|(k, _)| *k == key) {
            // Two values for one key would let a check pass on either.
            return Err(Error::Invalid(format!("attribute `{key}` given twice")));
        }
        if self.attrs.len() >= Request::MAX_ATTRS {
            return Err(Error::Invalid(format!(
                "a request carries at most {} attributes",
                Request::MAX_ATTRS
            )));
        }
        self.attrs.push((key, value));
        Ok(self)
    }

    /// Attaches a proof of possession.
    pub fn with_proof(mut self, proof: crate::Proof) -> Request {
        self.proof = Some(proof);
        self
    }

    /// Adds a `KEY=VALUE` attribute (see [`AttrValue::parse`]).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a missing `=`, an empty or repeated key, or too
    /// many attributes.
    pub fn with_attr_arg(self, arg: &str) -> Result<Request, Error> {
        let (key, value) = arg
            .split_once('=')
            .ok_or_else(|| Error::Invalid(format!("attribute `{arg}` is not KEY=VALUE")))?;
        if key.is_empty() {
            return Err(Error::Invalid(format!(
                "attribute `{arg}` has an empty key"
            )));
        }
        self.with_attr(key.to_string(), AttrValue::parse(value))
    }
}

/// The host of an absolute http(s) URL, normalised (lowercase, IDNA,
/// no trailing dot, no port, no user info), or `None` for anything else.
pub fn url_host(text: &str) -> Option<String> {
    let url = url::Url::parse(text).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str()?;
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

/// Normalises a host name given in a restriction the way [`url_host`]
/// normalises a request URL's host.
pub(crate) fn normalise_host(host: &str) -> Result<String, Error> {
    url_host(&format!("https://{host}/"))
        .filter(|h| !host.contains(['/', '@', ':', '?', '#']) && !h.is_empty())
        .ok_or_else(|| Error::Invalid(format!("`{host}` is not a host name")))
}

/// The value of a request attribute. Decimal integers become Datalog
/// integers, so numeric bounds compare numbers; everything else is a string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum AttrValue {
    /// A 64-bit signed integer.
    Int(i64),
    /// Any other text.
    Str(String),
}

impl AttrValue {
    /// `"120"` → `Int(120)`, `"card"` → `Str("card")`.
    pub fn parse(text: &str) -> AttrValue {
        match text.parse::<i64>() {
            Ok(n) => AttrValue::Int(n),
            Err(_) => AttrValue::Str(text.to_string()),
        }
    }

    /// The Datalog term for this value.
    pub fn to_term(&self) -> biscuit_auth::builder::Term {
        match self {
            AttrValue::Int(n) => biscuit_auth::builder::int(*n),
            AttrValue::Str(s) => biscuit_auth::builder::string(s),
        }
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Int(n) => write!(f, "{n}"),
            AttrValue::Str(s) => write!(f, "{s}"),
        }
    }
}

/// A resource path that is safe to compare by prefix: absolute, no empty
/// segment, no `.` or `..` segment, no percent-encoding, no backslash, no
/// control character. Resources that are not paths (`invoice-17`) are kept
/// as they are, provided they contain none of those characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath(String);

impl ResourcePath {
    /// The longest resource accepted.
    pub const MAX_LEN: usize = 1024;

    /// Checks and normalises a resource. A single trailing `/` is dropped
    /// (`/data/` is `/data`).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the offending part.
    pub fn parse(text: &str) -> Result<ResourcePath, Error> {
        // Quoted escaped and cut: the text is the caller's, and a message
        // is one line of bounded length whatever it holds.
        let bad = |why: &str| {
            let head: String = text.chars().take(129).collect();
            let shown = crate::print::shorten(crate::print::escape(&head), 128);
            Error::Invalid(format!("resource `{shown}` refused: {why}"))
        };
        if text.is_empty() {
            return Err(bad("empty"));
        }
        if text.len() > ResourcePath::MAX_LEN {
            return Err(bad("longer than 1024 bytes"));
        }
        if text.contains('%') {
            return Err(bad("percent-encoding is not accepted"));
        }
        if text.contains(['\\', '"']) || text.chars().any(char::is_control) {
            return Err(bad("quote, backslash or control character"));
        }
        // Backends disagree about `..;`, fullwidth dots and trailing blanks;
        // a prefix check is only sound if every backend sees the same path.
        if !text.is_ascii() {
            return Err(bad("non-ASCII characters are not accepted"));
        }
        if text.contains(';') || text.chars().any(|c| c.is_ascii_whitespace()) {
            return Err(bad("`;` or whitespace"));
        }
        let trimmed = if text.len() > 1 {
            text.strip_suffix('/').unwrap_or(text)
        } else {
            text
        };
        if trimmed.contains('/') && trimmed != "/" {
            let mut segments = trimmed.split('/');
            if trimmed.starts_with('/') {
                segments.next();
            }
            for segment in segments {
                match segment {
                    "" => return Err(bad("empty path segment (`//`)")),
                    "." | ".." => return Err(bad("`.` or `..` segment")),
                    _ => {}
                }
            }
        } else if trimmed == "." || trimmed == ".." {
            return Err(bad("`.` or `..` segment"));
        }
        Ok(ResourcePath(trimmed.to_string()))
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResourcePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn resources_are_normalised_or_refused() {
        assert_eq!(
            ResourcePath::parse("/data/q3/").unwrap().as_str(),
            "/data/q3"
        );
        assert_eq!(
            ResourcePath::parse("invoice-17").unwrap().as_str(),
            "invoice-17"
        );
        assert_eq!(ResourcePath::parse("/").unwrap().as_str(), "/");
        for bad in [
            "",
            "/data/../secret",
            "/data//x",
            "/data/%2e%2e/x",
            "/data/./x",
            "..",
            "a\\b",
            "/data/q3/..;/secret",
            "/data/q3/\u{ff0e}\u{ff0e}/secret",
            "/data/q3/.. /secret",
            "/data/q3/x y",
        ] {
            assert!(ResourcePath::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_refused_resource_is_quoted_on_one_short_line() {
        let forged = format!("bob\nALLOW: \u{202e}{}", "x".repeat(10_000));
        let message = ResourcePath::parse(&forged).unwrap_err().to_string();
        assert!(
            !message.contains('\n') && !message.contains('\u{202e}'),
            "{message}"
        );
        assert!(message.len() < 300, "{message}");
        assert!(message.contains("bob\\nALLOW"), "{message}");
    }

    #[test]
    fn url_hosts_are_normalised() {
        assert_eq!(
            url_host("https://API.Example.com./x").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(
            url_host("https://evil.com@api.example.com:8443/").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(
            url_host("https://api.example.com.evil.com/").as_deref(),
            Some("api.example.com.evil.com")
        );
        assert_eq!(url_host("ftp://api.example.com/"), None);
        assert_eq!(url_host("api.example.com"), None);
        assert_eq!(
            normalise_host("Api.Example.COM").unwrap(),
            "api.example.com"
        );
        assert!(normalise_host("a.com/x").is_err());
        assert!(normalise_host("u@a.com").is_err());
    }

    #[test]
    fn attributes_are_typed() {
        assert_eq!(AttrValue::parse("120"), AttrValue::Int(120));
        assert_eq!(AttrValue::parse("-3"), AttrValue::Int(-3));
        assert_eq!(AttrValue::parse("card"), AttrValue::Str("card".into()));
        let at = SystemTime::UNIX_EPOCH;
        let r = Request::new("s", "o", ResourcePath::parse("/x").unwrap(), at);
        assert!(r.clone().with_attr_arg("amount").is_err());
        assert!(r.clone().with_attr_arg("=1").is_err());
        let r = r.with_attr_arg("amount=5=6").unwrap();
        assert_eq!(r.attrs[0], ("amount".into(), AttrValue::Str("5=6".into())));
    }
}
