//! What a valid name is: the one canonical spelling of a principal, an agent
//! or a task, checked identically wherever a name enters Mandate (issue,
//! delegate `--to`, revoke and lift), so the name a token carries and the name
//! an operator revokes compare byte for byte.
//!
//! The rules (normative copy: `datalog/README.md`, "Names"):
//!
//! - not empty, at most [`MAX_NAME_LEN`] bytes;
//! - no leading or trailing whitespace; inside, no control character and no
//!   whitespace other than a plain space (U+0020); no `"` or `\`;
//! - no default-ignorable code point (zero-width characters, joiners, bidi
//!   controls, variation selectors, ...): they are invisible, so two names
//!   that print alike would differ;
//! - already in Unicode Normalization Form C: a decomposed `é` is refused,
//!   and the error names the NFC spelling;
//! - every non-ASCII character is allowed in identifiers by UTS #39's General
//!   Security Profile (no symbols, emoji, compatibility forms such as
//!   full-width letters), and the letters are at most *highly restrictive*
//!   (UTS #39 §5.2): one script, or Latin with Han and Japanese/Korean — a
//!   Cyrillic `а` among Latin letters is refused; a non-ASCII name whose
//!   confusable skeleton is plain ASCII (an all-Cyrillic `асе`) is refused
//!   too, because it reads as an ASCII name;
//! - **principals are case-insensitive** (they are usually e-mail addresses)
//!   and their canonical spelling is lower case. A principal that is not
//!   canonical is *refused*, with the canonical spelling in the message,
//!   rather than silently rewritten: a policy file or an audit query compares
//!   the exact string, so the spelling in the token must be the one the
//!   operator typed and saw, and issue, revoke and lift then compare
//!   identically because they all accept only the canonical spelling.
//!   Agents and tasks are case-sensitive (`Planner` and `planner` are two
//!   agents).
//!
//! Displays mark non-ASCII unambiguously with [`display_name`].
//!
//! This module never rewrites a name behind the caller's back and never
//! panics on any input.

use std::fmt;

use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization as _};
use unicode_security::{GeneralSecurityProfile as _, RestrictionLevel, RestrictionLevelDetection};

use crate::Error;

/// The longest principal, agent, task, service or operation name accepted,
/// in bytes.
pub const MAX_NAME_LEN: usize = 256;

/// Which name is checked: the kinds differ only in case sensitivity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NameKind {
    /// Who an agent acts for; case-insensitive, canonical in lower case.
    Principal,
    /// An agent's name; case-sensitive.
    Agent,
    /// A task id; case-sensitive.
    Task,
}

impl NameKind {
    /// `principal`, `agent` or `task`.
    pub fn as_str(self) -> &'static str {
        match self {
            NameKind::Principal => "principal",
            NameKind::Agent => "agent",
            NameKind::Task => "task",
        }
    }
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a name is not canonical. Every character or spelling it carries is
/// already escaped with [`display_name`], so printing it is safe.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameProblem {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The name starts or ends with whitespace.
    SurroundingWhitespace,
    /// A control character or whitespace other than a plain space.
    ControlOrWhitespace {
        /// The character, escaped.
        ch: String,
    },
    /// A `"` or `\`.
    QuoteOrBackslash,
    /// A default-ignorable (invisible) code point.
    Invisible {
        /// The character, escaped.
        ch: String,
    },
    /// The name is not in NFC.
    NotNfc {
        /// The NFC spelling, escaped.
        nfc: String,
    },
    /// A character UTS #39 restricts from identifiers.
    Restricted {
        /// The character, escaped.
        ch: String,
    },
    /// Letters of scripts that UTS #39 does not allow together.
    MixedScript,
    /// A non-ASCII name that reads as the ASCII name `skeleton`.
    LooksLikeAscii {
        /// The ASCII name it is confusable with.
        skeleton: String,
    },
    /// A principal not in lower case.
    NotLowercase {
        /// The canonical spelling, escaped.
        canonical: String,
    },
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameProblem::Empty => f.write_str("is empty"),
            NameProblem::TooLong { len } => {
                write!(f, "is {len} bytes, longer than {MAX_NAME_LEN}")
            }
            NameProblem::SurroundingWhitespace => {
                f.write_str("has leading or trailing whitespace")
            }
            NameProblem::ControlOrWhitespace { ch } => write!(
                f,
                "contains `{ch}`: only a plain space may separate words"
            ),
            NameProblem::QuoteOrBackslash => f.write_str("contains a quote or a backslash"),
            NameProblem::Invisible { ch } => {
                write!(f, "contains the invisible character `{ch}`")
            }
            NameProblem::NotNfc { nfc } => write!(
                f,
                "is not in Unicode NFC; write it as `{nfc}` (the same text, composed)"
            ),
            NameProblem::Restricted { ch } => write!(
                f,
                "contains `{ch}`, which is not allowed in names (UTS #39 identifier profile)"
            ),
            NameProblem::MixedScript => f.write_str(
                "mixes letters of scripts that can be confused (UTS #39: e.g. Cyrillic with Latin)",
            ),
            NameProblem::LooksLikeAscii { skeleton } => write!(
                f,
                "is not ASCII but reads as the ASCII name `{skeleton}`"
            ),
            NameProblem::NotLowercase { canonical } => write!(
                f,
                "is not canonical: principals are case-insensitive and written in lower case; use `{canonical}`"
            ),
        }
    }
}

/// Checks a name used as a Datalog string (principal, agent, task, service,
/// operation, attribute...) against every rule of this module except case.
///
/// # Errors
/// [`Error::InvalidName`] naming the first rule the name breaks.
pub fn check_name(what: &str, name: &str) -> Result<(), Error> {
    match general_problem(name) {
        None => Ok(()),
        Some(problem) => Err(invalid(what, name, problem)),
    }
}

/// Checks that `value` is the canonical spelling of a `kind` name.
///
/// # Errors
/// [`Error::InvalidName`] naming the first rule the name breaks (for a
/// principal in another case, the canonical spelling).
pub fn check(kind: NameKind, value: &str) -> Result<(), Error> {
    match problem(kind, value) {
        None => Ok(()),
        Some(problem) => Err(invalid(kind.as_str(), value, problem)),
    }
}

/// Why `value` is not the canonical spelling of a `kind` name, or `None`
/// when it is.
pub fn problem(kind: NameKind, value: &str) -> Option<NameProblem> {
    if let Some(problem) = general_problem(value) {
        return Some(problem);
    }
    if kind == NameKind::Principal {
        let lower = lower_nfc(value);
        if lower != value {
            return Some(NameProblem::NotLowercase {
                canonical: display_name(&lower),
            });
        }
    }
    None
}

/// Whether `value` is the canonical spelling of a `kind` name: what a
/// verifier may require of the names in a token's authority block.
pub fn is_canonical(kind: NameKind, value: &str) -> bool {
    problem(kind, value).is_none()
}

/// The canonical spelling of `value` as a `kind` name: NFC, and lower case
/// for a principal. Callers that want to *suggest* a spelling use this;
/// callers that accept a name use [`check`], which refuses anything but the
/// canonical spelling.
///
/// # Errors
/// [`Error::InvalidName`] when no spelling of `value` is a valid name
/// (whitespace, invisible or confusable characters, ...).
pub fn canonical(kind: NameKind, value: &str) -> Result<String, Error> {
    let mut spelled: String = value.nfc().collect();
    if kind == NameKind::Principal {
        spelled = lower_nfc(&spelled);
    }
    check(kind, &spelled)?;
    Ok(spelled)
}

/// The canonical spelling of a principal (lower case, NFC).
///
/// # Errors
/// As [`canonical`].
pub fn canonical_principal(value: &str) -> Result<String, Error> {
    canonical(NameKind::Principal, value)
}

/// `value` for display: printable ASCII as is, every other character
/// (non-ASCII, control) as `\u{XXXX}`, and `\` as `\\`, so two names that
/// differ print differently and nothing printed can pass for another name.
pub fn display_name(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for ch in value.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(ch),
            _ => {
                use fmt::Write as _;
                let _ = write!(out, "\\u{{{:04X}}}", u32::from(ch));
            }
        }
    }
    out
}

/// A name inside a line of prose (`bot acting for bob via ...`): as
/// [`display_name`], and in double quotes when it holds anything but ASCII
/// letters, digits, `.`, `_`, `@`, `+`, `-` and non-ASCII characters
/// (which [`display_name`] escapes). Names may hold spaces and punctuation,
/// so an agent named `sub for alice: read /all` would otherwise read as part
/// of the sentence; names never hold `"`, so the quotes cannot be forged.
pub fn display_label(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|ch| !ch.is_ascii() || ch.is_ascii_alphanumeric() || "._@+-".contains(ch));
    if plain {
        display_name(value)
    } else {
        format!("\"{}\"", display_name(value))
    }
}

fn invalid(what: &str, value: &str, problem: NameProblem) -> Error {
    Error::InvalidName {
        what: what.to_owned(),
        name: display_name(shorten(value)),
        problem,
    }
}

/// At most 64 characters of an over-long name go into a message.
fn shorten(value: &str) -> &str {
    match value.char_indices().nth(64) {
        Some((end, _)) => &value[..end],
        None => value,
    }
}

fn lower_nfc(value: &str) -> String {
    // Lower-casing can decompose (`İ` becomes `i` + U+0307), so normalise again.
    value.to_lowercase().nfc().collect()
}

fn general_problem(name: &str) -> Option<NameProblem> {
    if name.is_empty() {
        return Some(NameProblem::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Some(NameProblem::TooLong { len: name.len() });
    }
    if name.trim() != name {
        return Some(NameProblem::SurroundingWhitespace);
    }
    let mut ascii = true;
    for ch in name.chars() {
        if ch.is_control() || (ch.is_whitespace() && ch != ' ') {
            return Some(NameProblem::ControlOrWhitespace {
                ch: display_name(ch.encode_utf8(&mut [0; 4])),
            });
        }
        // biscuit-auth prints strings without escaping, and text printed
        // from a block must never read as more than the one string it was.
        if ch == '"' || ch == '\\' {
            return Some(NameProblem::QuoteOrBackslash);
        }
        if is_default_ignorable(ch) {
            return Some(NameProblem::Invisible {
                ch: display_name(ch.encode_utf8(&mut [0; 4])),
            });
        }
        ascii &= ch.is_ascii();
    }
    if ascii {
        // ASCII is in NFC and single-script; nothing below applies.
        return None;
    }
    if is_nfc_quick(name.chars()) != IsNormalized::Yes {
        let nfc: String = name.nfc().collect();
        if nfc != name {
            return Some(NameProblem::NotNfc {
                nfc: display_name(&nfc),
            });
        }
    }
    if let Some(ch) = name
        .chars()
        .find(|ch| !ch.is_ascii() && !ch.identifier_allowed())
    {
        return Some(NameProblem::Restricted {
            ch: display_name(ch.encode_utf8(&mut [0; 4])),
        });
    }
    // ASCII punctuation and spaces belong to no script (and UTS #39 does not
    // allow them in identifiers), so only letters and digits are weighed.
    let letters: String = name
        .chars()
        .filter(|ch| !ch.is_ascii() || ch.is_ascii_alphanumeric())
        .collect();
    if letters.as_str().detect_restriction_level() > RestrictionLevel::HighlyRestrictive {
        return Some(NameProblem::MixedScript);
    }
    let skeleton: String = unicode_security::skeleton(name).collect();
    if skeleton.is_ascii() {
        return Some(NameProblem::LooksLikeAscii {
            skeleton: display_name(&skeleton),
        });
    }
    None
}

/// Unicode's `Default_Ignorable_Code_Point` (DerivedCoreProperties.txt,
/// stable since Unicode 4.0 apart from additions inside reserved ranges,
/// which this table already covers): characters that render as nothing.
fn is_default_ignorable(ch: char) -> bool {
    matches!(
        u32::from(ch),
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Each row: kind, name, `None` when accepted, or a fragment of the
    /// refusal's message.
    #[test]
    fn names_are_accepted_or_refused_for_the_stated_rule() {
        let cases: &[(NameKind, &str, Option<&str>)] = &[
            (NameKind::Principal, "dave", None),
            (NameKind::Principal, "erin@x.com", None),
            (NameKind::Principal, "first.last+tag@example.org", None),
            (NameKind::Principal, "josé@example.es", None),
            (NameKind::Principal, "山田太郎", None),
            (NameKind::Principal, "山田 taro", None),
            (NameKind::Principal, "иван", None),
            (NameKind::Agent, "Planner", None),
            (NameKind::Agent, "expense bot 2", None),
            (NameKind::Task, "Q3-Report", None),
            (NameKind::Principal, "", Some("is empty")),
            (
                NameKind::Principal,
                "dave ",
                Some("leading or trailing whitespace"),
            ),
            (
                NameKind::Agent,
                " dave",
                Some("leading or trailing whitespace"),
            ),
            (NameKind::Task, "da\tve", Some("contains `\\u{0009}`")),
            (NameKind::Task, "da\u{a0}ve", Some("contains `\\u{00A0}`")),
            (NameKind::Task, "da\u{2028}ve", Some("contains `\\u{2028}`")),
            (NameKind::Agent, "a\"b", Some("quote or a backslash")),
            (NameKind::Agent, "a\\b", Some("quote or a backslash")),
            (
                NameKind::Agent,
                "da\u{200D}ve",
                Some("invisible character `\\u{200D}`"),
            ),
            (
                NameKind::Agent,
                "da\u{200B}ve",
                Some("invisible character `\\u{200B}`"),
            ),
            (
                NameKind::Agent,
                "abc\u{202E}def",
                Some("invisible character `\\u{202E}`"),
            ),
            (
                NameKind::Agent,
                "jose\u{301}",
                Some("write it as `jos\\u{00E9}`"),
            ),
            (NameKind::Principal, "Erin@x.com", Some("use `erin@x.com`")),
            (NameKind::Principal, "JOSÉ", Some("use `jos\\u{00E9}`")),
            (
                NameKind::Principal,
                "\u{430}lice",
                Some("mixes letters of scripts"),
            ),
            (
                NameKind::Agent,
                "p\u{430}ypal",
                Some("mixes letters of scripts"),
            ),
            (
                NameKind::Agent,
                "\u{3a9}mega",
                Some("mixes letters of scripts"),
            ),
            (
                NameKind::Agent,
                "\u{430}\u{441}\u{435}",
                Some("reads as the ASCII name `ace`"),
            ),
            (
                NameKind::Agent,
                "\u{ff41}gent",
                Some("not allowed in names"),
            ),
            (
                NameKind::Agent,
                "bot\u{1F916}",
                Some("not allowed in names"),
            ),
        ];
        for (kind, name, expected) in cases {
            let got = check(*kind, name);
            match expected {
                None => assert!(got.is_ok(), "{kind} {name:?} refused: {got:?}"),
                Some(fragment) => {
                    let message = got
                        .expect_err(&format!("{kind} {name:?} accepted"))
                        .to_string();
                    assert!(
                        message.contains(fragment),
                        "{kind} {name:?}: {message:?} lacks {fragment:?}"
                    );
                    assert!(message.is_ascii(), "{message:?} is not escaped");
                }
            }
            assert_eq!(is_canonical(*kind, name), expected.is_none());
        }
    }

    #[test]
    fn length_is_bounded_in_bytes() {
        assert!(check(NameKind::Task, &"a".repeat(MAX_NAME_LEN)).is_ok());
        assert!(matches!(
            problem(NameKind::Task, &"a".repeat(MAX_NAME_LEN + 1)),
            Some(NameProblem::TooLong { len: 257 })
        ));
        // 129 two-byte characters are 258 bytes.
        assert!(matches!(
            problem(NameKind::Task, &"é".repeat(129)),
            Some(NameProblem::TooLong { len: 258 })
        ));
    }

    #[test]
    fn case_matters_for_agents_and_tasks_only() {
        assert!(check(NameKind::Agent, "Erin").is_ok());
        assert!(check(NameKind::Task, "Erin").is_ok());
        assert!(matches!(
            problem(NameKind::Principal, "Erin"),
            Some(NameProblem::NotLowercase { canonical }) if canonical == "erin"
        ));
        // The generic check (services, attributes) does not judge case.
        assert!(check_name("service", "Expenses").is_ok());
    }

    #[test]
    fn canonical_spelling_is_suggested_only_when_it_is_a_name() {
        assert_eq!(canonical_principal("Erin@X.com").unwrap(), "erin@x.com");
        assert_eq!(
            canonical(NameKind::Agent, "jose\u{301}").unwrap(),
            "jos\u{e9}"
        );
        assert_eq!(canonical(NameKind::Agent, "Bot").unwrap(), "Bot");
        assert!(canonical_principal("dave ").is_err());
        assert!(canonical_principal("\u{430}lice").is_err());
        // Composed and decomposed é are one canonical name.
        assert_eq!(
            canonical_principal("JOSE\u{301}").unwrap(),
            canonical_principal("jos\u{e9}").unwrap()
        );
    }

    #[test]
    fn display_marks_every_non_ascii_character() {
        assert_eq!(display_name("alice"), "alice");
        assert_eq!(display_name("\u{430}lice"), "\\u{0430}lice");
        assert_eq!(display_name("jos\u{e9}"), "jos\\u{00E9}");
        assert_eq!(display_name("jose\u{301}"), "jose\\u{0301}");
        assert_eq!(display_name("a\u{1F916}"), "a\\u{1F916}");
        assert_eq!(display_name("tab\there"), "tab\\u{0009}here");
        // A literal backslash cannot pass for an escape.
        assert_eq!(display_name("\\u{0430}"), "\\\\u{0430}");
        assert_ne!(display_name("\\u{0430}"), display_name("\u{430}"));
    }

    #[test]
    fn messages_name_the_kind_and_the_escaped_value() {
        let err = check(NameKind::Principal, "\u{430}lice").unwrap_err();
        assert_eq!(
            err.to_string(),
            "principal `\\u{0430}lice` mixes letters of scripts that can be confused \
             (UTS #39: e.g. Cyrillic with Latin)"
        );
        let err = check_name("agent name", "dave ").unwrap_err();
        assert_eq!(
            err.to_string(),
            "agent name `dave ` has leading or trailing whitespace"
        );
    }
}
