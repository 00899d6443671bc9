//! Reading the small text files Mandate is given (keys, key sets, policies,
//! configurations, tokens) with a bound: a path that names `/dev/zero`, a
//! device or a huge file is refused after reading just past the bound,
//! instead of filling memory.

use std::io::Read as _;
use std::path::Path;

/// The longest key file accepted (an Ed25519 key is under 100 bytes).
pub const MAX_KEY_FILE: usize = 4 * 1024;
/// The longest policy, configuration, mapping or key-set file accepted.
pub const MAX_TEXT_FILE: usize = 1024 * 1024;

/// Why text was refused for its length: it is longer than `max` bytes.
///
/// Carried inside the [`std::io::Error`] [`read_bounded`] returns, so a
/// caller that allows some slack beyond what it names (a token and the
/// whitespace around it) can tell this refusal from the reader's own errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("longer than {max} bytes")]
pub struct TooLong {
    /// The bound the text went past.
    pub max: usize,
}

impl TooLong {
    /// The `TooLong` inside `error`, if that is why it was refused.
    #[must_use]
    pub fn in_error(error: &std::io::Error) -> Option<TooLong> {
        error.get_ref()?.downcast_ref::<TooLong>().copied()
    }
}

/// Reads UTF-8 text from `reader`, at most `max` bytes.
///
/// # Errors
/// The reader's own errors; [`std::io::ErrorKind::InvalidData`] for text
/// that is not UTF-8 or is longer than `max` bytes (then carrying a
/// [`TooLong`]).
pub fn read_bounded(reader: impl std::io::Read, max: usize) -> std::io::Result<String> {
    let mut text = String::new();
    reader.take(max as u64 + 1).read_to_string(&mut text)?;
    if text.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            TooLong { max },
        ));
    }
    Ok(text)
}

/// Reads the text file `path`, at most `max` bytes.
///
/// # Errors
/// As [`read_bounded`], and the file's own opening errors.
pub fn read_text_file(path: &Path, max: usize) -> std::io::Result<String> {
    read_bounded(std::fs::File::open(path)?, max)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn text_within_the_bound_is_read_and_longer_text_is_refused() {
        assert_eq!(read_bounded(&b"abc"[..], 3).unwrap(), "abc");
        let error = read_bounded(&b"abcd"[..], 3).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("longer than 3 bytes"));
        assert_eq!(TooLong::in_error(&error), Some(TooLong { max: 3 }));
        // Text that is not UTF-8 is refused for that, not for its length.
        let error = read_bounded(&b"\xff"[..], 3).unwrap_err();
        assert_eq!(TooLong::in_error(&error), None);
        // An endless source is refused after max + 1 bytes.
        assert!(read_bounded(std::io::repeat(b'a'), 1024).is_err());
    }
}
