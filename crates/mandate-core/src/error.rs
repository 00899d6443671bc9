//! The core crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while parsing, building or reading a mandate.
///
/// Messages are written for the person at the terminal: each names what was
/// wrong and, where it helps, what was expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token text is not URL-safe base64, or the bytes are not a Biscuit.
    #[error("malformed token: {reason}")]
    MalformedToken {
        /// What the decoder reported.
        reason: String,
    },
    /// The token's signatures do not verify: tampered bytes or another root.
    #[error("invalid token signature: {reason}")]
    InvalidSignature {
        /// What the signature check reported.
        reason: String,
    },
    /// The token names a root key id the caller does not trust.
    #[error("unknown root key id {key_id}: trusted ids are {trusted}")]
    UnknownKeyId {
        /// The id in the token (`none` when the token names none).
        key_id: String,
        /// The ids the caller trusts, comma separated.
        trusted: String,
    },
    /// A key string or key file is not an Ed25519 key in Mandate's format.
    #[error("invalid key: {reason}")]
    InvalidKey {
        /// Why the key was refused.
        reason: String,
    },
    /// A private key file may be read or written by its group or others.
    #[error(
        "permissions {mode:04o} for {} are too open: a private key must be readable by its owner only (chmod 600)",
        .path.display()
    )]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Datalog text (a policy, a `--check`) does not parse.
    #[error("Datalog error at line {line}, column {column}: {message}")]
    Datalog {
        /// 1-based line of the first error.
        line: usize,
        /// 1-based column of the first error.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// A restriction or claim value is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// A name (principal, agent, task, service, attribute...) is not in its
    /// canonical form; see [`crate::name`].
    #[error("{what} `{name}` {problem}")]
    InvalidName {
        /// What was named (`principal`, `agent name`, ...).
        what: String,
        /// The name as given, escaped with [`crate::name::display_name`]
        /// (and cut to 64 characters).
        name: String,
        /// The rule it breaks.
        problem: crate::name::NameProblem,
    },
    /// A restriction would widen, or could never match, what the parent allows.
    #[error("{requested} is not allowed by the parent token; it allows {allowed}")]
    NotInParent {
        /// What was asked for, e.g. `operation "write"`.
        requested: String,
        /// What the parent allows, e.g. `expenses:read, expenses:submit`.
        allowed: String,
    },
    /// A signed hop was asked for with a key that does not hold the token.
    #[error(
        "the signer key {signer} is not the key of the current holder {holder} ({holder_key})"
    )]
    NotHolder {
        /// The key given to sign.
        signer: String,
        /// The current holder's name.
        holder: String,
        /// The current holder's key.
        holder_key: String,
    },
    /// The token's delegation chain is broken.
    #[error("broken delegation chain: {0}")]
    Chain(#[source] crate::chain_error::ChainError),
    /// Reading or writing a key file failed. The path is shown unless it
    /// may be key material pasted where a path belongs.
    #[error("{action} {}", crate::keys::describe_path(.path))]
    Io {
        /// What was being done (`reading`, `writing`).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// biscuit-auth reported an error that has no more specific variant.
    #[error("token error")]
    Biscuit(#[source] biscuit_auth::error::Token),
}

/// Which Datalog grammar a text is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatalogKind {
    /// Facts, rules and checks (a token block, a `--check`).
    Block,
    /// Facts, rules, checks and `allow`/`deny` policies (a service policy).
    Policy,
}

/// Parses `source` once and, on failure, reports the first error with its
/// exact line and column.
///
/// # Errors
/// [`Error::Datalog`].
pub fn parse_datalog(
    source: &str,
    kind: DatalogKind,
) -> Result<biscuit_parser::parser::SourceResult<'_>, Error> {
    check_nesting(source)?;
    let result = match kind {
        DatalogKind::Block => biscuit_parser::parser::parse_block_source(source),
        DatalogKind::Policy => biscuit_parser::parser::parse_source(source),
    };
    result.map_err(|errors| {
        let first = errors.first();
        // The parser's errors borrow the unparsed rest of `source`; where
        // that slice starts is where the error is.
        let offset = first
            .map(|e| (e.input.as_ptr() as usize).saturating_sub(source.as_ptr() as usize))
            .unwrap_or(0)
            .min(source.len());
        let (line, column) = line_column(source, offset);
        let message = first.and_then(|e| e.message.clone()).unwrap_or_else(|| {
            let rest = source.get(offset..).unwrap_or("");
            let near: String = rest.lines().next().unwrap_or("").chars().take(32).collect();
            if near.trim().is_empty() {
                "unexpected end of input".to_string()
            } else {
                format!("unexpected input near `{}`", near.trim_end())
            }
        });
        Error::Datalog {
            line,
            column,
            message,
        }
    })
}

/// Deepest nesting accepted in Datalog text, counting brackets and prefix
/// negations (`!!!x`). biscuit's parser recurses once for each, so deeper
/// text could exhaust a thread's stack before it reports an error.
const MAX_TEXT_NESTING: usize = 64;

/// Refuses text nested deeper than [`MAX_TEXT_NESTING`], scanning once,
/// before the recursive parser sees it. Brackets inside string literals do
/// not count; a run of prefix negations counts one level each.
fn check_nesting(source: &str) -> Result<(), Error> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut negations = 0usize;
    let too_deep = |offset: usize| {
        let (line, column) = line_column(source, offset);
        Err(Error::Datalog {
            line,
            column,
            message: format!("expression nested deeper than {MAX_TEXT_NESTING}"),
        })
    };
    let mut chars = source.char_indices().peekable();
    while let Some((offset, c)) = chars.next() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '!' if chars.peek().map(|(_, next)| *next) != Some('=') => {
                negations += 1;
                if depth + negations > MAX_TEXT_NESTING {
                    return too_deep(offset);
                }
            }
            c if c.is_whitespace() => {}
            '"' => {
                in_string = true;
                negations = 0;
            }
            '(' | '[' | '{' => {
                depth += 1;
                if depth + negations > MAX_TEXT_NESTING {
                    return too_deep(offset);
                }
            }
            ')' | ']' | '}' => {
                depth = depth.saturating_sub(1);
                negations = 0;
            }
            _ => negations = 0,
        }
    }
    Ok(())
}

/// Checks that `source` parses; see [`parse_datalog`].
///
/// # Errors
/// [`Error::Datalog`].
pub fn check_datalog(source: &str, kind: DatalogKind) -> Result<(), Error> {
    parse_datalog(source, kind).map(|_| ())
}

impl Error {
    /// Converts an error biscuit-auth reported for Datalog `source`. A
    /// parse error is located by parsing `source` again ([`parse_datalog`]:
    /// biscuit-auth's own error keeps only a copy of the rest of the line).
    pub fn from_datalog(source: &str, err: biscuit_auth::error::Token) -> Error {
        use biscuit_auth::error::Token;
        use biscuit_parser::error::LanguageError;
        match err {
            Token::Language(LanguageError::ParseError(_)) => {
                match parse_datalog(source, DatalogKind::Policy) {
                    Err(located) => located,
                    Ok(_) => Error::Invalid(format!("`{source}` is not accepted here")),
                }
            }
            Token::Language(LanguageError::Parameters {
                missing_parameters,
                unused_parameters,
            }) => Error::Invalid(format!(
                "Datalog parameters: missing {missing_parameters:?}, unused {unused_parameters:?}"
            )),
            other => Error::Biscuit(other),
        }
    }

    /// Converts a biscuit deserialisation or signature error.
    pub(crate) fn from_format(err: biscuit_auth::error::Token) -> Error {
        use biscuit_auth::error::{Format, Token};
        match err {
            Token::Base64(e) => Error::MalformedToken {
                reason: format!("not URL-safe base64 ({e})"),
            },
            Token::Format(Format::Signature(e)) => Error::InvalidSignature {
                reason: e.to_string(),
            },
            Token::Format(Format::SealedSignature) => Error::InvalidSignature {
                reason: "sealed signature does not verify".into(),
            },
            Token::Format(Format::UnknownPublicKey) => Error::InvalidSignature {
                reason: "the root public key was not recognised".into(),
            },
            // Every other format error means the bytes are not a token we can
            // read (truncated, garbled, an unsupported version...).
            Token::Format(e) => Error::MalformedToken {
                reason: format_detail(&e),
            },
            other => Error::Biscuit(other),
        }
    }
}

fn format_detail(e: &biscuit_auth::error::Format) -> String {
    use biscuit_auth::error::Format;
    match e {
        Format::DeserializationError(d)
        | Format::BlockDeserializationError(d)
        | Format::InvalidKey(d)
        | Format::SignatureDeserializationError(d)
        | Format::BlockSignatureDeserializationError(d)
        | Format::ExistingPublicKey(d) => format!("{e} ({d})"),
        _ => e.to_string(),
    }
}

fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datalog_positions_are_exact() {
        let src =
            "// policy\ncheck if time($t);\nallow if service($s) operation($o);\ndeny if true;\n";
        match check_datalog(src, DatalogKind::Policy) {
            Err(Error::Datalog {
                line,
                column,
                message,
            }) => {
                assert_eq!((line, column), (3, 1), "{message}");
                assert!(!message.contains('\n'), "{message}");
            }
            other => panic!("expected a Datalog error, got {other:?}"),
        }
        assert!(check_datalog("check if true;", DatalogKind::Block).is_ok());
    }

    #[test]
    fn deep_brackets_are_refused_before_the_parser_recurses() {
        let deep = format!(
            "check if {}true{};",
            "(".repeat(100_000),
            ")".repeat(100_000)
        );
        match check_datalog(&deep, DatalogKind::Block) {
            Err(Error::Datalog {
                line,
                column,
                message,
            }) => {
                assert_eq!((line, column), (1, 10 + MAX_TEXT_NESTING));
                assert!(message.contains("nested deeper"), "{message}");
            }
            other => panic!("expected a Datalog error, got {other:?}"),
        }
        let negations = format!("check if {}true;", "!".repeat(100_000));
        assert!(matches!(
            check_datalog(&negations, DatalogKind::Block),
            Err(Error::Datalog { .. })
        ));
        // `!=` is not a negation, and short runs are fine.
        assert!(check_datalog("check if !!true, 1 != 2;", DatalogKind::Block).is_ok());
        // Brackets inside strings do not count.
        let quoted = format!("check if resource(\"{}\");", "(".repeat(1_000));
        assert!(check_datalog(&quoted, DatalogKind::Block).is_ok());
    }

    #[test]
    fn datalog_error_has_position() {
        let src = "allow if true;\ncheck if oops(";
        let err = biscuit_auth::builder::BlockBuilder::new()
            .code(src)
            .err()
            .map(|e| Error::from_datalog(src, e));
        match err {
            Some(Error::Datalog { line, column, .. }) => {
                assert_eq!(line, 2);
                assert!(column >= 1, "column {column}");
            }
            other => panic!("expected a Datalog error, got {other:?}"),
        }
    }
}
