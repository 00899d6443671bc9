//! A token's fingerprint as log lines print it, computed only when a line
//! that prints it is written.
//!
//! Every answer may be logged with the token's fingerprint (never the token),
//! but at the default level the audit target is off, and hashing every token
//! on every call cost about a percent of a warm decision for nothing. A
//! [`Fingerprint`] holds the token text and hashes it in `Display`, which
//! `tracing` calls only for an enabled line. It must never print the token.

use std::fmt;
use std::sync::Arc;

/// `sha256:<16 hex>` of a token, or `-` for a request without one, computed
/// when displayed.
#[derive(Clone)]
pub struct Fingerprint(Option<Arc<str>>);

impl Fingerprint {
    /// The fingerprint of `token` (shared with the evaluation, not copied).
    pub fn of(token: &Arc<str>) -> Fingerprint {
        Fingerprint(Some(Arc::clone(token)))
    }

    /// For a request that carried no usable token: prints `-`.
    pub fn none() -> Fingerprint {
        Fingerprint(None)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(token) => f.write_str(&mandate_core::fingerprint(token)),
            None => f.write_str("-"),
        }
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_the_fingerprint_never_the_token() {
        let token: Arc<str> = Arc::from("EnQKCgoIc2VjcmV0LXRva2Vu");
        let shown = Fingerprint::of(&token).to_string();
        assert_eq!(shown, mandate_core::fingerprint(&token));
        assert!(shown.starts_with("sha256:"), "{shown}");
        assert!(!shown.contains(&*token));
        assert_eq!(format!("{:?}", Fingerprint::of(&token)), shown);
        assert_eq!(Fingerprint::none().to_string(), "-");
    }
}
