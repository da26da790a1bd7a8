//! Logging: `tracing` to stderr, as text or JSON lines; the core's `log`
//! records are forwarded into it.
//!
//! Values a log shipper filters on travel as fields, not inside the
//! message: `gpu`, `uuid`, `xid`, `call`, `error`, `file`, `line`, …. Text
//! lines show them as `key=value` after the message; JSON lines carry them
//! as top-level keys beside `timestamp`, `level` and `message`. The core's
//! `log` records keep theirs too: [`LogBridge`] turns a record's key-values
//! (`log::warn!(gpu = 3, xid = 79; "…")`) into the same fields, where
//! tracing-log would drop them and add its own `log.*` bookkeeping instead.

use std::io::IsTerminal as _;

use tracing::level_filters::LevelFilter;

use crate::cli::{LogFormat, LogLevel};

/// Installs the global subscriber and the `log` → `tracing` bridge.
pub fn init(format: LogFormat, level: LogLevel) {
    let (level, log_level) = match level {
        LogLevel::Error => (LevelFilter::ERROR, log::LevelFilter::Error),
        LogLevel::Warn => (LevelFilter::WARN, log::LevelFilter::Warn),
        LogLevel::Info => (LevelFilter::INFO, log::LevelFilter::Info),
        LogLevel::Debug => (LevelFilter::DEBUG, log::LevelFilter::Debug),
        LogLevel::Trace => (LevelFilter::TRACE, log::LevelFilter::Trace),
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false);
    let installed = match format {
        LogFormat::Text => tracing::subscriber::set_global_default(
            builder.with_ansi(std::io::stderr().is_terminal()).finish(),
        ),
        LogFormat::Json => tracing::subscriber::set_global_default(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .finish(),
        ),
    };
    if let Err(e) = installed {
        eprintln!("algalon-exporter: logging not initialised: {e}");
        return;
    }
    match log::set_boxed_logger(Box::new(LogBridge)) {
        Ok(()) => log::set_max_level(log_level),
        Err(e) => eprintln!("algalon-exporter: the core's log lines are not forwarded: {e}"),
    }
}

/// The structured values a `log` record may carry, by the field names the
/// exporter's own lines use.
#[derive(Debug, Default)]
struct Fields {
    gpu: Option<u64>,
    uuid: Option<String>,
    xid: Option<u64>,
    call: Option<String>,
    error: Option<String>,
    /// Any other key, as ` key=value` appended to the message.
    rest: String,
}

impl<'kvs> log::kv::VisitSource<'kvs> for Fields {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        match key.as_str() {
            "gpu" if value.to_u64().is_some() => self.gpu = value.to_u64(),
            "xid" if value.to_u64().is_some() => self.xid = value.to_u64(),
            "uuid" => self.uuid = Some(value.to_string()),
            "call" => self.call = Some(value.to_string()),
            "error" => self.error = Some(value.to_string()),
            other => self.rest.push_str(&format!(" {other}={value}")),
        }
        Ok(())
    }
}

/// Forwards the core's `log` records into `tracing` with their key-values
/// as fields.
#[derive(Debug)]
pub struct LogBridge;

impl log::Log for LogBridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        let mut f = Fields::default();
        // A visitor that never fails: the error arm cannot be reached.
        let _ = record.key_values().visit(&mut f);
        let (gpu, xid) = (f.gpu, f.xid);
        let (uuid, call, error) = (f.uuid.as_deref(), f.call.as_deref(), f.error.as_deref());
        let rest = &f.rest;
        macro_rules! forward {
            ($level:expr) => {
                tracing::event!(
                    target: "algalon_core",
                    $level,
                    gpu,
                    uuid,
                    xid,
                    call,
                    error,
                    "{}{rest}",
                    record.args()
                )
            };
        }
        match record.level() {
            log::Level::Error => forward!(tracing::Level::ERROR),
            log::Level::Warn => forward!(tracing::Level::WARN),
            log::Level::Info => forward!(tracing::Level::INFO),
            log::Level::Debug => forward!(tracing::Level::DEBUG),
            log::Level::Trace => forward!(tracing::Level::TRACE),
        }
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Log as _;
    use std::sync::{Arc, Mutex};

    /// A writer the JSON formatter writes into, for the test to read.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_core_record_keeps_its_key_values_as_json_fields() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .json()
            .flatten_event(true)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let kvs: [(&str, log::kv::Value<'_>); 4] = [
                ("gpu", 3u64.into()),
                ("uuid", "GPU-abc".into()),
                ("xid", 79u64.into()),
                ("pid", 4242u64.into()),
            ];
            LogBridge.log(
                &log::Record::builder()
                    .args(format_args!("GPU 3: XID 79"))
                    .level(log::Level::Warn)
                    .target("algalon_core::xid")
                    .key_values(&kvs)
                    .build(),
            );
        });
        let text = String::from_utf8(buffer.0.lock().expect("lock").clone()).expect("utf-8");
        let line: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "GPU 3: XID 79 pid=4242");
        assert_eq!(line["gpu"], 3);
        assert_eq!(line["uuid"], "GPU-abc");
        assert_eq!(line["xid"], 79);
        assert!(
            line.get("call").is_none(),
            "absent values are left out: {line}"
        );
        assert!(!text.contains("log."), "no tracing-log bookkeeping: {text}");
    }
}
