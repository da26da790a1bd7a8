//! Logging: `tracing` to stderr, as text or JSON lines; the core's `log`
//! records are forwarded into it.
//!
//! Values a log shipper filters on travel as fields, not inside the
//! message: `gpu`, `uuid`, `xid`, `call`, `error`, `file`, `line`, …. Text
//! lines show them as `key=value` after the message; JSON lines carry them
//! as top-level keys beside `timestamp`, `level` and `message`.

use std::io::IsTerminal as _;

use tracing::level_filters::LevelFilter;

use crate::cli::{LogFormat, LogLevel};

/// Installs the global subscriber (and the `log` → `tracing` bridge).
pub fn init(format: LogFormat, level: LogLevel) {
    let level = match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false);
    // `try_init` also installs tracing-log's LogTracer, so the core's
    // `log::warn!` lines come out here with the same format.
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    if let Err(e) = installed {
        eprintln!("algalon-exporter: logging not initialised: {e}");
    }
}
