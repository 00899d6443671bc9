//! Python arguments to the Rust values they stand for: requests, attributes,
//! times, durations and JSON.
//!
//! Every conversion validates through the same Rust constructor the CLI and
//! the HTTP API use (`Request::validated`, `humantime`), so Python accepts
//! exactly what they accept.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mandate_core::{AttrValue, Request};
use pyo3::prelude::*;
use pyo3::types::PyAny;

use crate::errors;

/// One attribute value as Python gives it: an `int` stays an integer, a
/// `str` is taken as the CLI takes `KEY=VALUE` (decimal text is an integer).
#[derive(FromPyObject)]
pub enum AttrArg {
    /// Refused: Python's `True` is also the integer 1, and would pass
    /// checks on numbers unnoticed.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// Text.
    Str(String),
}

impl AttrArg {
    fn value(self, key: &str) -> PyResult<AttrValue> {
        match self {
            AttrArg::Bool(flag) => Err(pyo3::exceptions::PyTypeError::new_err(errors::redacted(
                &format!(
                    "attribute {:?} is {}, a bool: give an int or a str",
                    key.chars().take(64).collect::<String>(),
                    if flag { "True" } else { "False" }
                ),
            ))),
            AttrArg::Int(n) => Ok(AttrValue::Int(n)),
            AttrArg::Str(text) => Ok(AttrValue::parse(&text)),
        }
    }
}

/// A point in time: a `datetime` is not accepted (time zones); Unix seconds
/// (`float`) or `None` for now.
pub fn time(at: Option<f64>) -> PyResult<SystemTime> {
    match at {
        None => Ok(SystemTime::now()),
        Some(secs) if secs.is_finite() && secs >= 0.0 => Duration::try_from_secs_f64(secs)
            .ok()
            .and_then(|since| UNIX_EPOCH.checked_add(since))
            .ok_or_else(|| errors::invalid(format!("time {secs} is out of range"))),
        Some(secs) => Err(errors::invalid(format!(
            "time {secs} is not a non-negative number of Unix seconds"
        ))),
    }
}

/// A duration: human text (`90s`, `10m`, `2h`) or seconds as a number.
#[derive(FromPyObject)]
pub enum DurationArg {
    /// Refused: `True` would be one second.
    Bool(bool),
    /// Seconds.
    Seconds(f64),
    /// Human text.
    Text(String),
}

impl DurationArg {
    /// The duration, which must lie in `min..=max`; `what` names it in errors.
    pub fn resolve(self, what: &str, min: Duration, max: Duration) -> PyResult<Duration> {
        let value = match self {
            DurationArg::Bool(flag) => {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "{what} is {}, a bool: give seconds or text such as 90s",
                    if flag { "True" } else { "False" }
                )))
            }
            DurationArg::Seconds(secs) if (0.0..1e12).contains(&secs) => {
                Duration::from_secs_f64(secs)
            }
            DurationArg::Seconds(secs) => {
                return Err(errors::invalid(format!("{what} {secs} is not a duration")))
            }
            DurationArg::Text(text) => humantime::parse_duration(&text).map_err(|_| {
                errors::invalid(format!("invalid {what} `{text}` (examples: 90s, 10m, 2h)"))
            })?,
        };
        if value < min {
            return Err(errors::invalid(format!(
                "{what} is too short: the minimum is {}",
                humantime::format_duration(min)
            )));
        }
        if value > max {
            return Err(errors::invalid(format!(
                "{what} is too long: the maximum is {}",
                humantime::format_duration(max)
            )));
        }
        Ok(value)
    }
}

/// The request a verifier decides and a proof signs, validated as the CLI
/// validates it.
pub fn build(
    service: &str,
    operation: &str,
    resource: &str,
    attrs: Option<BTreeMap<String, AttrArg>>,
    at: Option<f64>,
) -> PyResult<Request> {
    let attrs = attrs
        .unwrap_or_default()
        .into_iter()
        .map(|(key, value)| {
            let value = value.value(&key)?;
            Ok((key, value))
        })
        .collect::<PyResult<Vec<_>>>()?;
    Request::validated(service, operation, resource, attrs, time(at)?).map_err(errors::core)
}

/// A Rust value with a JSON form, as the Python value `json.loads` makes of it.
pub fn to_python<'py, T: serde::Serialize>(
    py: Python<'py>,
    value: &T,
) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value)
        .map_err(|e| errors::MandateError::new_err(format!("encoding a report: {e}")))?;
    py.import("json")?.call_method1("loads", (text,))
}
