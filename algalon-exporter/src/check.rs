//! `--check-config`: validates the collectors CSV and the web config
//! offline — no NVML, no socket — and prints what would be exported, so a
//! configuration can be checked in CI or before a rollout, as
//! `promtool check config` does for Prometheus.

use std::io::Write;
use std::path::Path;

use algalon_core::{CollectorConfig, MetricType};

use crate::cli::Cli;
use crate::error::StartError;
use crate::webconfig::WebConfig;

/// Checks `cli`'s configuration, writing the report to `out` and each error
/// (with file and line) to `err`; true when everything is valid.
pub fn run(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> bool {
    let mut ok = true;
    let collectors = match cli.collectors.as_deref() {
        Some(path) => CollectorConfig::from_path(path),
        None => Ok(CollectorConfig::default()),
    };
    match collectors {
        Ok(config) => {
            let _ = describe_collectors(&config, cli, out);
        }
        Err(e) => {
            ok = false;
            let _ = writeln!(err, "algalon-exporter: {}", StartError::from(e).one_line());
        }
    }
    if let Some(path) = &cli.web_config_file {
        match WebConfig::load(path) {
            Ok(web) => {
                let _ = describe_web(&web, path, out);
            }
            Err(e) => {
                ok = false;
                let _ = writeln!(err, "algalon-exporter: {}", e.one_line());
            }
        }
    }
    let _ = if ok {
        writeln!(out, "configuration ok")
    } else {
        writeln!(out, "configuration invalid")
    };
    ok
}

fn describe_collectors(
    config: &CollectorConfig,
    cli: &Cli,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let given = cli.collectors.is_some();
    let labels = config.labels.len();
    writeln!(
        out,
        "collectors {}: {} exported{}",
        config.source,
        crate::app::count(config.metrics.len(), "metric", "metrics"),
        if labels > 0 {
            format!(", {}", crate::app::count(labels, "label", "labels"))
        } else {
            String::new()
        }
    )?;
    let width = config
        .metrics
        .iter()
        .map(|m| config.series_name(m.field).len())
        .max()
        .unwrap_or(0);
    for m in &config.metrics {
        // DCGM counters keep their names and are typed untyped (see README).
        let kind = match m.metric_type {
            MetricType::Gauge => "gauge",
            MetricType::Counter => "counter",
        };
        writeln!(
            out,
            "  {:width$}  {kind:<7}  {}",
            config.series_name(m.field),
            m.help
        )?;
    }
    for field in &config.labels {
        writeln!(out, "  label {}", config.series_name(*field))?;
    }
    for e in &config.exp {
        let (kind, window) = match e.kind {
            algalon_core::collectors::ExpKind::XidErrorsCount => ("xid", cli.xid_count_window_ms),
            algalon_core::collectors::ExpKind::ClockEventsCount => {
                ("clock_event", cli.clock_events_count_window_ms)
            }
        };
        writeln!(
            out,
            "  {}  per {kind} in the last {window} ms (dcgm-exporter's windowed count)",
            e.kind.name()
        )?;
    }
    // The built-in file is dcgm-exporter's verbatim: its rows NVML cannot
    // serve are expected, so they are only counted.
    if given {
        for s in &config.skipped {
            writeln!(
                out,
                "  not exported: {}:{}: {}: {}",
                config.source, s.line, s.name, s.reason
            )?;
        }
    } else if !config.skipped.is_empty() {
        writeln!(
            out,
            "  ({} of dcgm-exporter's default rows need DCGM and are not exported)",
            config.skipped.len()
        )?;
    }
    Ok(())
}

fn describe_web(web: &WebConfig, path: &Path, out: &mut dyn Write) -> std::io::Result<()> {
    let auth = match &web.auth {
        Some(auth) => format!("basic auth for {}", auth.users().join(", ")),
        None => "no basic auth".to_owned(),
    };
    writeln!(
        out,
        "web config {}: serving {}, {auth}{}",
        path.display(),
        web.scheme(),
        if web.headers.is_empty() {
            String::new()
        } else {
            format!(
                ", headers {}",
                web.headers
                    .iter()
                    .map(|(name, _)| name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    )?;
    for warning in &web.warnings {
        writeln!(out, "  warning: {warning}")?;
    }
    Ok(())
}
