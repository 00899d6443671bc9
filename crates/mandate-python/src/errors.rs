//! Python exceptions mirroring the Rust error kinds, and the one place Rust
//! errors become them.
//!
//! Every exception derives from `MandateError`; its message is the Rust
//! error's message followed by its causes, on one line. Nothing here may echo
//! key material: the Rust errors never contain it, and no message is built
//! from a key.

use mandate_issuer::client::ClientError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    mandate,
    MandateError,
    PyException,
    "Base class of every error Mandate raises."
);
create_exception!(
    mandate,
    MalformedTokenError,
    MandateError,
    "The token text is not base64, or the bytes are not a Biscuit token."
);
create_exception!(
    mandate,
    InvalidSignatureError,
    MandateError,
    "The token's signatures do not verify: tampered bytes or another root."
);
create_exception!(
    mandate,
    UnknownKeyIdError,
    MandateError,
    "The token names a root key id the verifier does not trust."
);
create_exception!(
    mandate,
    InvalidKeyError,
    MandateError,
    "A key string or key file is not an Ed25519 key in Mandate's format."
);
create_exception!(
    mandate,
    KeyPermissionsError,
    MandateError,
    "A private key file may be read or written by its group or others."
);
create_exception!(
    mandate,
    DatalogError,
    MandateError,
    "Datalog text (a policy, a raw check) does not parse."
);
create_exception!(
    mandate,
    InvalidArgumentError,
    MandateError,
    "A restriction, request or claim value is not acceptable."
);
create_exception!(
    mandate,
    InvalidNameError,
    InvalidArgumentError,
    "A name (principal, agent, task, service, attribute) is not canonical."
);
create_exception!(
    mandate,
    NotInParentError,
    MandateError,
    "A delegation would widen, or could never match, what the parent allows."
);
create_exception!(
    mandate,
    NotHolderError,
    MandateError,
    "A signed hop was asked for with a key that does not hold the token."
);
create_exception!(
    mandate,
    ChainError,
    MandateError,
    "The token's delegation chain is broken."
);
create_exception!(
    mandate,
    KeyFileError,
    MandateError,
    "Reading or writing a key file failed."
);
create_exception!(
    mandate,
    TokenExpiredError,
    MandateError,
    "The mandate expired before the request time."
);
create_exception!(
    mandate,
    RegistryError,
    MandateError,
    "The revocation store or registry refused or failed."
);

create_exception!(
    mandate,
    IssuerError,
    MandateError,
    "The issuer refused a request or could not be reached. `status` is the HTTP status and `code` the error code (`invalid_grant`, `task_not_found`, ...); both are None when the issuer was not reached."
);
create_exception!(
    mandate,
    TaskAuthError,
    IssuerError,
    "The issuer did not take the mandate and proof as its task agent's (401 `unauthenticated`, 403 `forbidden`): another key, another task's or a delegated mandate, a replayed proof."
);
create_exception!(
    mandate,
    TaskClosedError,
    IssuerError,
    "The task is closed or past its deadline (409 `task_closed`): the issuer mints nothing more for it."
);

/// `text` with any private key in it replaced: an `ed25519-private/…` key's
/// digits, 64 hex digits standing alone (a key's secret without its
/// prefix) and a PEM private key block. Messages and `repr`s quote what the
/// caller passed, and a key passed in the wrong place must not reach a log.
pub fn redacted(text: &str) -> String {
    hex_secrets_redacted(&pem_redacted(&prefixed_redacted(text)))
}

/// `ed25519-private/` followed by at least 16 letters or digits.
fn prefixed_redacted(text: &str) -> String {
    const PREFIX: &str = "ed25519-private/";
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(found) = lower[at..].find(PREFIX) {
        let digits = at + found + PREFIX.len();
        let run = text[digits..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(text.len() - digits);
        out.push_str(&text[at..digits]);
        if run >= 16 {
            out.push_str("<redacted>");
            at = digits + run;
        } else {
            at = digits;
        }
    }
    out.push_str(&text[at..]);
    out
}

/// A `-----BEGIN … PRIVATE KEY-----` block, to its END line or the end.
fn pem_redacted(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(found) = lower[at..].find("-----begin") {
        let begin = at + found;
        let line_end = lower[begin + 10..]
            .find("-----")
            .map_or(lower.len(), |e| begin + 10 + e + 5);
        if !lower[begin..line_end].contains("private key") {
            out.push_str(&text[at..line_end]);
            at = line_end;
            continue;
        }
        out.push_str(&text[at..begin]);
        out.push_str("<private key redacted>");
        at = lower[line_end..]
            .find("-----end")
            .and_then(|e| {
                let end = line_end + e + 8;
                lower[end..].find("-----").map(|c| end + c + 5)
            })
            .unwrap_or(lower.len());
    }
    out.push_str(&text[at..]);
    out
}

/// Exactly 64 hex digits between non-alphanumerics, not after a `/` (a
/// public key prints as `ed25519/<hex>`).
fn hex_secrets_redacted(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let run = &bytes[start..i];
        let after_slash = start > 0 && bytes[start - 1] == b'/';
        if run.len() == 64 && run.iter().all(u8::is_ascii_hexdigit) && !after_slash {
            out.push_str(&text[at..start]);
            out.push_str("<redacted>");
            at = i;
        }
    }
    out.push_str(&text[at..]);
    out
}

/// One line: the error's message, then each cause's; private keys redacted.
fn report(error: &dyn std::error::Error) -> String {
    redacted(&report_raw(error))
}

fn report_raw(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The exception for a core error.
pub fn core(error: mandate_core::Error) -> PyErr {
    use mandate_core::Error as E;
    let message = report(&error);
    match error {
        E::MalformedToken { .. } => MalformedTokenError::new_err(message),
        E::InvalidSignature { .. } => InvalidSignatureError::new_err(message),
        E::UnknownKeyId { .. } => UnknownKeyIdError::new_err(message),
        E::InvalidKey { .. } => InvalidKeyError::new_err(message),
        E::KeyPermissions { .. } => KeyPermissionsError::new_err(message),
        E::Datalog { .. } => DatalogError::new_err(message),
        E::Invalid(_) => InvalidArgumentError::new_err(message),
        E::InvalidName { .. } => InvalidNameError::new_err(message),
        E::NotInParent { .. } => NotInParentError::new_err(message),
        E::NotHolder { .. } => NotHolderError::new_err(message),
        E::Chain(_) => ChainError::new_err(message),
        E::Io { .. } => KeyFileError::new_err(message),
        _ => MandateError::new_err(message),
    }
}

/// The exception for a verifier error.
pub fn verifier(error: mandate_verifier::Error) -> PyErr {
    use mandate_verifier::Error as E;
    match error {
        E::Token(inner) => core(inner),
        E::Expired { .. } => TokenExpiredError::new_err(report(&error)),
        other => MandateError::new_err(report(&other)),
    }
}

/// The exception for an issuer error.
pub fn issuer(error: mandate_issuer::Error) -> PyErr {
    use mandate_issuer::Error as E;
    match error {
        E::Core(inner) => core(inner),
        E::Invalid(_) => InvalidArgumentError::new_err(report(&error)),
        other => MandateError::new_err(report(&other)),
    }
}

/// The exception for an issuer client error: by the issuer's error code, with
/// `status` and `code` set on it (None when the issuer was not reached).
pub fn issuer_client(py: Python<'_>, error: ClientError) -> PyErr {
    let message = report(&error);
    let (raised, status, code) = match error {
        ClientError::Refused { status, code, .. } => {
            let raised = match code.as_str() {
                "task_closed" => TaskClosedError::new_err(message),
                "unauthenticated" | "forbidden" => TaskAuthError::new_err(message),
                _ => IssuerError::new_err(message),
            };
            (raised, Some(status), Some(code))
        }
        ClientError::ApprovalPending { code, .. } => {
            // `approval_required` answers the exchange (403); a collection
            // still waiting answers `authorization_pending` (400).
            let status = if code == "approval_required" {
                403
            } else {
                400
            };
            (IssuerError::new_err(message), Some(status), Some(code))
        }
        ClientError::Invalid(_) => return InvalidArgumentError::new_err(message),
        _ => (IssuerError::new_err(message), None, None),
    };
    let value = raised.value(py);
    // Setting an attribute on a fresh exception instance does not fail; if it
    // did, the exception would still carry its message.
    let _ = value.setattr("status", status);
    let _ = value.setattr("code", code);
    raised
}

/// The exception for a registry or store error.
pub fn registry(error: mandate_registry::Error) -> PyErr {
    RegistryError::new_err(report(&error))
}

/// An argument the binding itself refuses (a duration, a type).
pub fn invalid(message: impl Into<String>) -> PyErr {
    InvalidArgumentError::new_err(redacted(&message.into()))
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn private_keys_are_redacted_wherever_they_appear() {
        let hex = "ab".repeat(32);
        assert_eq!(
            redacted(&format!("invalid right `ed25519-private/{hex}` here")),
            "invalid right `ed25519-private/<redacted>` here"
        );
        assert_eq!(
            redacted(&format!(
                "a ED25519-PRIVATE/{hex} and ed25519-private/{hex}"
            )),
            "a ED25519-PRIVATE/<redacted> and ed25519-private/<redacted>"
        );
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----";
        assert_eq!(
            redacted(&format!("bad key {pem} end")),
            "bad key <private key redacted> end"
        );
        assert_eq!(
            redacted("-----BEGIN PRIVATE KEY----- cut"),
            "<private key redacted>"
        );
        let public = format!("ed25519/{hex}");
        assert_eq!(redacted(&public), public);
        assert_eq!(
            redacted(&format!("right `{hex}` is bad")),
            "right `<redacted>` is bad"
        );
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let long_id = "0123456789abcdef".repeat(8);
        for text in [
            "expected `ed25519-private/<hex>`",
            "a key file holds ed25519-private/ and 64 hex digits",
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY----- then a private key",
            &format!("token sha256:0123456789abcdef, id {long_id}"),
        ] {
            assert_eq!(redacted(text), text);
        }
    }
}
