//! How a command ended.

/// How a command ended; the value is the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Success, or an allowed request.
    Ok = 0,
    /// A denied request.
    Denied = 1,
    /// Any error.
    Error = 2,
}
