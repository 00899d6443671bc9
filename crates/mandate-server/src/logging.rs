//! Logs on stderr, as text or as one JSON object per event.

use crate::settings::LogFormat;

/// Installs the process's log subscriber: `MANDATE_LOG` (an `EnvFilter`
/// directive such as `info,mandate::audit=warn`) or else `default`. A second
/// call does nothing.
pub fn init(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MANDATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    // Already installed (a test, or a second server in one process): keep it.
    drop(installed);
}
