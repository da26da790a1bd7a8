//! dcgm-exporter's collectors CSV: which fields to export, as what type, with
//! what help text.
//!
//! The format is dcgm-exporter's, read the way it reads it: one
//! `DCGM field, Prometheus metric type, help message` row per line, `#`
//! comments, blank lines ignored, spaces around fields trimmed, double quotes
//! allowed around a field that contains a comma. Types are `gauge`, `counter`
//! and `label` (label fields become labels on every series of the GPU).
//!
//! A row may name a field by any name dcgm-exporter accepts (see
//! [`dcgm_fields`]): its current DCGM name, a deprecated
//! alias (`DCGM_FI_DEV_CLOCK_THROTTLE_REASONS`) or dcgm-exporter 1.x's name
//! (`dcgm_sm_clock`). A field the catalog reads is exported; a real DCGM
//! field Algalon cannot provide, a dcgm-exporter `DCGM_EXP_*` series and a
//! second row for a field already listed are [`Skipped`] with their reason
//! (dcgm-exporter, too, exports a field once, from its first row); only a
//! name that is no DCGM field, a malformed row, or a file without any row is
//! an error, and every bad row of a file is reported, each with its line.
//! NVIDIA's `default-counters.csv`, `dcp-metrics-included.csv` and
//! `1.x-compatibility-metrics.csv` load unchanged; the built-in default is a
//! verbatim copy of the first.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

pub use crate::catalog::ExpKind;
use crate::catalog::{self, CATALOG, Field, Kind};
use crate::dcgm_fields;
pub use crate::error::RowError;
use crate::error::{Error, Result};

/// The built-in collectors file: dcgm-exporter's `default-counters.csv`, verbatim.
pub const DEFAULT_COUNTERS_CSV: &str = include_str!("default-counters.csv");

/// How a selected field is typed in the exposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// `# TYPE … gauge`.
    Gauge,
    /// A DCGM counter. Its series name stays DCGM's byte for byte (no
    /// `_total`), so it is typed `untyped` in the Prometheus text format and
    /// `unknown` in OpenMetrics — see the encoder's docs.
    Counter,
}

/// One exported field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    /// The field.
    pub field: Field,
    /// Its type, as the CSV says.
    pub metric_type: MetricType,
    /// Its help text, as the CSV says (the catalog's when the CSV's is empty).
    pub help: String,
}

/// One windowed count series a collectors file enables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpSeries {
    /// Which one.
    pub kind: ExpKind,
    /// Its type, as the CSV says.
    pub metric_type: MetricType,
    /// Its help text, as the CSV says.
    pub help: String,
}

/// A row that is not exported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The field's name, as the row writes it.
    pub name: String,
    /// 1-based line in the file.
    pub line: usize,
    /// DCGM's field id (none for dcgm-exporter's own `DCGM_EXP_*` series).
    pub dcgm_id: Option<u16>,
    /// Why it is not exported.
    pub reason: String,
}

/// A parsed collectors file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorConfig {
    /// Where it came from (path, or `<built-in default-counters.csv>`).
    pub source: String,
    /// Exported series, in file order.
    pub metrics: Vec<Metric>,
    /// Label-type fields, in file order.
    pub labels: Vec<Field>,
    /// Rows that are not exported, with their reasons.
    pub skipped: Vec<Skipped>,
    /// Fields the file names by another of their DCGM names than the
    /// catalog's (a DCGM 4.6 name, a deprecated alias, a dcgm-exporter 1.x
    /// name), with the name it uses: dcgm-exporter exports a row under the
    /// name the row gives it. See [`CollectorConfig::series_name`].
    pub names: BTreeMap<Field, String>,
    /// dcgm-exporter's windowed count series the file enables, in file order.
    pub exp: Vec<ExpSeries>,
}

impl Default for CollectorConfig {
    /// dcgm-exporter's default field set.
    fn default() -> Self {
        CollectorConfig::parse(DEFAULT_COUNTERS_CSV, "<built-in default-counters.csv>")
            .expect("the built-in default-counters.csv parses (checked by tests)")
    }
}

/// What a row's field name resolves to.
enum Resolved {
    /// A catalog field (and its DCGM id).
    Field(Field, u16),
    /// A real DCGM field with no catalog row.
    Unprovided(u16),
    /// One of dcgm-exporter's own `DCGM_EXP_*` series: (name, why not).
    ExporterSeries(&'static str, &'static str),
    /// One of dcgm-exporter's windowed count series, which Algalon serves.
    Exp(ExpKind),
}

impl Resolved {
    /// Two rows name the same thing when they name the same DCGM id
    /// (whatever the spelling) or the same dcgm-exporter series.
    fn key(&self) -> (Option<u16>, &'static str) {
        match *self {
            Resolved::Field(_, id) | Resolved::Unprovided(id) => (Some(id), ""),
            Resolved::ExporterSeries(name, _) => (None, name),
            Resolved::Exp(kind) => (None, kind.name()),
        }
    }
}

fn resolve(name: &str) -> Option<Resolved> {
    if let Some(known) = dcgm_fields::lookup(name) {
        return Some(match catalog_field(known.id) {
            Some(field) => Resolved::Field(field, known.id),
            None => Resolved::Unprovided(known.id),
        });
    }
    if let Some(kind) = ExpKind::from_name(name) {
        return Some(Resolved::Exp(kind));
    }
    catalog::DCGM_EXP_FIELDS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, reason)| Resolved::ExporterSeries(n, reason))
}

/// The catalog field with DCGM id `id`, whichever of its names the catalog uses.
fn catalog_field(id: u16) -> Option<Field> {
    CATALOG
        .iter()
        .find(|d| dcgm_fields::lookup(d.name).is_some_and(|k| k.id == id))
        .map(|d| d.field)
}

/// Why field `id` is not exported: the catalog's own note when it has one,
/// else what the kind of field says.
fn unprovided_reason(id: u16) -> &'static str {
    catalog::UNAVAILABLE
        .iter()
        .find(|(n, _)| dcgm_fields::lookup(n).is_some_and(|k| k.id == id))
        .map_or_else(|| dcgm_fields::unprovided_reason(id), |(_, reason)| reason)
}

/// The exposition type of catalog field `field` named `name` with CSV type
/// `type_name` (lowercase): `None` for a label.
fn metric_type(
    field: Field,
    name: &str,
    type_name: &str,
) -> std::result::Result<Option<MetricType>, String> {
    let kind = field.def().kind;
    match type_name {
        "label" if kind == Kind::Label => Ok(None),
        "label" => Err(format!(
            "{name} is a numeric field and cannot be a label; use type {}",
            if kind == Kind::Counter {
                "counter"
            } else {
                "gauge"
            }
        )),
        _ if kind == Kind::Label => Err(format!(
            "{name} is a text field; use type label (found {type_name:?})"
        )),
        "gauge" => Ok(Some(MetricType::Gauge)),
        "counter" => Ok(Some(MetricType::Counter)),
        _ => Err(format!(
            "type {type_name:?} for {name} is not supported: a GPU field is a single value; \
             use gauge or counter"
        )),
    }
}

impl CollectorConfig {
    /// Reads and parses a collectors file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::CollectorsIo {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses collectors CSV text; `file` names it in error messages. Every
    /// bad row is reported (in [`Error::CollectorsParse`]), not only the first.
    pub fn parse(text: &str, file: &str) -> Result<Self> {
        let mut config = CollectorConfig {
            source: file.to_owned(),
            metrics: Vec::new(),
            labels: Vec::new(),
            skipped: Vec::new(),
            names: BTreeMap::new(),
            exp: Vec::new(),
        };
        let mut errors: Vec<RowError> = Vec::new();
        let mut first_seen = Vec::new();
        let mut rows = 0usize;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            rows += 1;
            if let Err(message) = config.add_row(trimmed, line, &mut first_seen) {
                errors.push(RowError {
                    line: Some(line),
                    message,
                });
            }
        }
        if rows == 0 {
            errors.push(RowError {
                line: None,
                message: "no field to export: the file has no `DCGM field, type, help` row, only \
                          blank lines or comments; list at least one, e.g. \
                          `DCGM_FI_DEV_GPU_UTIL, gauge, GPU utilization (in %).`"
                    .to_owned(),
            });
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(Error::CollectorsParse {
                file: file.to_owned(),
                rows: errors,
            })
        }
    }

    /// Adds one data row (trimmed, not a comment).
    fn add_row(
        &mut self,
        row: &str,
        line: usize,
        first_seen: &mut Vec<((Option<u16>, &'static str), usize)>,
    ) -> std::result::Result<(), String> {
        let cols = split_row(row)?;
        if cols.len() != 3 {
            return Err(format!(
                "expected 3 comma-separated fields (DCGM field, Prometheus type, help), \
                 found {}: {row:?}",
                cols.len()
            ));
        }
        let (name, type_name, help) = (cols[0].as_str(), cols[1].as_str(), &cols[2]);
        let Some(resolved) = resolve(name) else {
            let hint = match catalog::closest_name(name) {
                Some(close) => format!("; did you mean {close}?"),
                None => "; see the metric list in README.md".to_owned(),
            };
            return Err(format!("unknown DCGM field {name:?}{hint}"));
        };
        let type_name = type_name.to_ascii_lowercase();
        if !["gauge", "counter", "label", "histogram", "summary"].contains(&type_name.as_str()) {
            return Err(format!(
                "unknown Prometheus type {type_name:?} for {name}; use gauge, counter or label"
            ));
        }
        let exported = match resolved {
            Resolved::Field(field, _) => Some((field, metric_type(field, name, &type_name)?)),
            _ => None,
        };
        let key = resolved.key();
        let skip = |reason: String| Skipped {
            name: name.to_owned(),
            line,
            dcgm_id: key.0,
            reason,
        };
        if let Some((_, first)) = first_seen.iter().find(|(k, _)| *k == key) {
            self.skipped.push(skip(format!(
                "line {first} already names this field; a field is exported once, from its \
                 first row, as in dcgm-exporter"
            )));
            return Ok(());
        }
        first_seen.push((key, line));
        let Some((field, metric_type)) = exported else {
            let reason = match resolved {
                Resolved::Exp(kind) => return self.add_exp(kind, name, &type_name, help),
                Resolved::ExporterSeries(_, reason) => reason,
                Resolved::Unprovided(id) | Resolved::Field(_, id) => unprovided_reason(id),
            };
            self.skipped.push(skip(reason.to_owned()));
            return Ok(());
        };
        let def = field.def();
        if name != def.name {
            self.names.insert(field, name.to_owned());
        }
        match metric_type {
            None => self.labels.push(field),
            Some(metric_type) => self.metrics.push(Metric {
                field,
                metric_type,
                help: if help.is_empty() {
                    def.help.to_owned()
                } else {
                    help.clone()
                },
            }),
        }
        Ok(())
    }

    /// Adds a windowed count series row.
    fn add_exp(
        &mut self,
        kind: ExpKind,
        name: &str,
        type_name: &str,
        help: &str,
    ) -> std::result::Result<(), String> {
        let metric_type = match type_name {
            "gauge" => MetricType::Gauge,
            "counter" => MetricType::Counter,
            _ => {
                return Err(format!(
                    "type {type_name:?} for {name} is not supported: it counts events; use \
                     counter or gauge"
                ));
            }
        };
        self.exp.push(ExpSeries {
            kind,
            metric_type,
            help: help.to_owned(),
        });
        Ok(())
    }

    /// Every field the sampler must read for this config (metrics and labels).
    pub fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        let clock_events = self
            .exp
            .iter()
            .any(|e| e.kind == ExpKind::ClockEventsCount)
            .then_some(Field::ClockThrottleReasons);
        self.metrics
            .iter()
            .map(|m| m.field)
            .chain(self.labels.iter().copied())
            .chain(clock_events)
    }

    /// Whether the file enables the windowed series `kind`.
    pub fn wants(&self, kind: ExpKind) -> bool {
        self.exp.iter().any(|e| e.kind == kind)
    }

    /// The name the file gives `field`: the series (or label) name
    /// dcgm-exporter exports it under. The catalog's name unless the file
    /// spells the field another way.
    pub fn series_name(&self, field: Field) -> &str {
        self.names.get(&field).map_or(field.name(), String::as_str)
    }
}

/// Splits one CSV row into trimmed fields, honouring double quotes.
fn split_row(row: &str) -> std::result::Result<Vec<String>, String> {
    let mut fields = Vec::with_capacity(3);
    let mut cur = String::new();
    let mut chars = row.chars().peekable();
    let mut in_quotes = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    in_quotes = false;
                }
            }
            '"' if cur.trim().is_empty() && !was_quoted => {
                cur.clear();
                in_quotes = true;
                was_quoted = true;
            }
            ',' if !in_quotes => {
                fields.push(finish(&mut cur, was_quoted));
                was_quoted = false;
            }
            _ => cur.push(c),
        }
    }
    if in_quotes {
        return Err(format!("unterminated double quote in {row:?}"));
    }
    fields.push(finish(&mut cur, was_quoted));
    Ok(fields)
}

fn finish(cur: &mut String, quoted: bool) -> String {
    let s = std::mem::take(cur);
    if quoted { s } else { s.trim().to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_default_is_dcgm_exporters_file() {
        let config = CollectorConfig::default();
        let names: Vec<_> = config.metrics.iter().map(|m| m.field.name()).collect();
        assert_eq!(names.first(), Some(&"DCGM_FI_DEV_SM_CLOCK"));
        assert!(
            names.contains(&"DCGM_FI_DEV_DEC_UTIL"),
            "trailing space trimmed"
        );
        assert!(names.contains(&"DCGM_FI_PROF_PCIE_RX_BYTES"));
        assert_eq!(config.labels, vec![Field::DriverVersion]);
        assert_eq!(config.skipped.len(), 1);
        assert_eq!(config.skipped[0].name, "DCGM_FI_DEV_VGPU_LICENSE_STATUS");
        assert_eq!(config.skipped[0].dcgm_id, Some(526));
        assert!(config.names.is_empty(), "{:?}", config.names);
        let energy = config
            .metrics
            .iter()
            .find(|m| m.field == Field::TotalEnergyConsumption)
            .expect("energy is in the default set");
        assert_eq!(energy.metric_type, MetricType::Counter);
        assert_eq!(energy.help, "Total energy consumption since boot (in mJ).");
    }

    #[test]
    fn unknown_field_names_file_line_and_suggestion() {
        let err = CollectorConfig::parse(
            "# comment\n\nDCGM_FI_DEV_GPU_UTIL, gauge, ok\nDCGM_FI_DEV_GPU_TMP, gauge, typo\n",
            "my.csv",
        )
        .expect_err("typo must fail");
        let msg = err.to_string();
        assert!(msg.starts_with("my.csv:4: "), "{msg}");
        assert!(msg.contains("DCGM_FI_DEV_GPU_TMP"), "{msg}");
        assert!(msg.contains("did you mean DCGM_FI_DEV_GPU_TEMP?"), "{msg}");
    }

    #[test]
    fn malformed_rows_are_errors_with_the_row() {
        for (text, needle) in [
            (
                "DCGM_FI_DEV_GPU_UTIL, gauge\n",
                "expected 3 comma-separated fields",
            ),
            ("DCGM_FI_DEV_GPU_UTIL, gauge, a, b\n", "found 4"),
            (
                "DCGM_FI_DEV_GPU_UTIL, gaugee, help\n",
                "unknown Prometheus type \"gaugee\"",
            ),
            (
                "DCGM_FI_DEV_GPU_UTIL, label, help\n",
                "cannot be a label; use type gauge",
            ),
            ("DCGM_FI_DRIVER_VERSION, gauge, help\n", "use type label"),
            ("DCGM_FI_DEV_GPU_UTIL, histogram, help\n", "not supported"),
            (
                "DCGM_FI_DEV_GPU_UTIL, gauge, \"open\n",
                "unterminated double quote",
            ),
        ] {
            let msg = CollectorConfig::parse(text, "f.csv")
                .expect_err(text)
                .to_string();
            assert!(msg.contains(needle), "{text:?} gave {msg:?}");
            assert!(msg.starts_with("f.csv:"), "{msg}");
        }
    }

    #[test]
    fn quoted_help_may_hold_commas_and_quotes() {
        let config = CollectorConfig::parse(
            "DCGM_FI_DEV_GPU_UTIL, gauge, \"Util, in %, \"\"busy\"\" time\"\n",
            "q.csv",
        )
        .expect("quoted help parses");
        assert_eq!(config.metrics[0].help, "Util, in %, \"busy\" time");
    }

    #[test]
    fn empty_help_falls_back_to_catalog() {
        let config = CollectorConfig::parse("DCGM_FI_DEV_GPU_TEMP, gauge,\n", "e.csv")
            .expect("empty help is allowed");
        assert_eq!(config.metrics[0].help, "GPU temperature (in C).");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = CollectorConfig::from_path("/nonexistent/counters.csv").expect_err("missing");
        assert!(
            err.to_string().contains("/nonexistent/counters.csv"),
            "{err}"
        );
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line() {
        let err = CollectorConfig::parse(
            "DCGM_FI_DEV_GPU_UTIL, gauge, ok\nDCGM_FI_DEV_GPU_TMP, gauge, typo\n\
             DCGM_FI_DEV_FB_USED, gauge\nDCGM_FI_DEV_SM_CLOCK, gauge, ok\n\
             DCGM_FI_DEV_MEM_CLOCK, gaugee, typo\n",
            "many.csv",
        )
        .expect_err("three bad rows");
        let lines = err.lines();
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(
            lines[0].starts_with("many.csv:2: unknown DCGM field"),
            "{lines:?}"
        );
        assert!(lines[1].starts_with("many.csv:3: expected 3"), "{lines:?}");
        assert!(
            lines[2].starts_with("many.csv:5: unknown Prometheus type"),
            "{lines:?}"
        );
        let one = err.to_string();
        assert!(!one.contains('\n'), "Display is one line: {one:?}");
        assert!(
            one.contains("many.csv:2:") && one.contains("many.csv:5:"),
            "{one}"
        );
    }

    #[test]
    fn a_file_without_rows_is_an_error() {
        for text in ["", "\n\n", "# only a comment\n  # another\n"] {
            let err = CollectorConfig::parse(text, "empty.csv").expect_err(text);
            let msg = err.to_string();
            assert!(msg.starts_with("empty.csv: no field to export"), "{msg}");
            assert_eq!(err.lines().len(), 1);
        }
    }

    #[test]
    fn any_dcgm_name_of_a_catalog_field_is_exported() {
        let config = CollectorConfig::parse(
            "DCGM_FI_DEV_CLOCKS_EVENT_REASONS, gauge, reasons\n\
             dcgm_sm_clock, gauge, SM clock\n\
             DCGM_FI_DEV_GPU_UTIL_RATIO, gauge, util\n\
             DCGM_FI_SYSTEM_DRIVER_VERSION, label, driver\n\
             DCGM_FI_DEV_GPU_TEMP, gauge, temp\n",
            "names.csv",
        )
        .expect("every name is a DCGM field");
        let fields: Vec<_> = config.metrics.iter().map(|m| m.field).collect();
        assert_eq!(
            fields,
            [
                Field::ClockThrottleReasons,
                Field::SmClock,
                Field::GpuUtil,
                Field::GpuTemp
            ]
        );
        assert_eq!(config.labels, [Field::DriverVersion]);
        assert_eq!(
            config.series_name(Field::ClockThrottleReasons),
            "DCGM_FI_DEV_CLOCKS_EVENT_REASONS"
        );
        assert_eq!(config.series_name(Field::SmClock), "dcgm_sm_clock");
        assert_eq!(
            config.series_name(Field::DriverVersion),
            "DCGM_FI_SYSTEM_DRIVER_VERSION"
        );
        assert_eq!(config.series_name(Field::GpuTemp), "DCGM_FI_DEV_GPU_TEMP");
        assert!(!config.names.contains_key(&Field::GpuTemp));
    }

    #[test]
    fn real_fields_algalon_cannot_read_are_skipped_with_a_reason() {
        let config = CollectorConfig::parse(
            "DCGM_FI_DEV_GPU_UTIL, gauge, util\n\
             DCGM_FI_DEV_NVLINK_BANDWIDTH_L17, counter, link 17\n\
             DCGM_FI_DEV_NVSWITCH_LINK_CRC_ERRORS, counter, switch\n\
             DCGM_FI_DEV_COUNT, gauge, count\n\
             DCGM_EXP_GPU_HEALTH_STATUS, gauge, health\n",
            "skip.csv",
        )
        .expect("real fields never fail the file");
        assert_eq!(config.metrics.len(), 1);
        let skipped: Vec<_> = config
            .skipped
            .iter()
            .map(|s| (s.line, s.name.as_str(), s.dcgm_id))
            .collect();
        assert_eq!(
            skipped,
            [
                (2, "DCGM_FI_DEV_NVLINK_BANDWIDTH_L17", Some(496)),
                (3, "DCGM_FI_DEV_NVSWITCH_LINK_CRC_ERRORS", Some(787)),
                (4, "DCGM_FI_DEV_COUNT", Some(4)),
                (5, "DCGM_EXP_GPU_HEALTH_STATUS", None),
            ]
        );
        assert!(
            config.skipped[1].reason.contains("NVSwitch"),
            "{:?}",
            config.skipped[1]
        );
        assert_eq!(config.skipped[2].reason, "a host-level DCGM field");
        assert!(config.skipped.iter().all(|s| !s.reason.is_empty()));
    }

    #[test]
    fn dcgm_exporters_windowed_counts_are_served() {
        let config = CollectorConfig::parse(
            "DCGM_FI_DEV_GPU_UTIL, gauge, util\n\
             DCGM_EXP_XID_ERRORS_COUNT, gauge, xid count\n\
             DCGM_EXP_CLOCK_EVENTS_COUNT, counter, clock events\n\
             DCGM_EXP_XID_ERRORS_COUNT, gauge, again\n",
            "exp.csv",
        )
        .expect("dcgm-exporter's own series load");
        assert_eq!(
            config.exp,
            [
                ExpSeries {
                    kind: ExpKind::XidErrorsCount,
                    metric_type: MetricType::Gauge,
                    help: "xid count".into()
                },
                ExpSeries {
                    kind: ExpKind::ClockEventsCount,
                    metric_type: MetricType::Counter,
                    help: "clock events".into()
                },
            ]
        );
        assert_eq!(config.skipped.len(), 1, "the second XID row");
        assert_eq!(config.skipped[0].line, 4);
        // The clock-event count needs the throttle bitmask read.
        assert!(config.fields().any(|f| f == Field::ClockThrottleReasons));
        let err = CollectorConfig::parse("DCGM_EXP_XID_ERRORS_COUNT, label, x\n", "bad.csv")
            .expect_err("an event count is no label")
            .to_string();
        assert!(
            err.contains("bad.csv:1") && err.contains("counts events"),
            "{err}"
        );
    }

    #[test]
    fn a_field_named_twice_is_exported_once_from_its_first_row() {
        let config = CollectorConfig::parse(
            "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS, gauge, first\n\
             DCGM_FI_DEV_GPU_UTIL, gauge, util\n\
             DCGM_FI_DEV_CLOCKS_EVENT_REASONS, gauge, second name\n\
             DCGM_FI_DEV_GPU_UTIL, counter, again\n",
            "twice.csv",
        )
        .expect("a repeated field is not an error");
        assert_eq!(config.metrics.len(), 2);
        assert_eq!(config.metrics[0].help, "first");
        assert_eq!(config.metrics[1].metric_type, MetricType::Gauge);
        assert!(
            config.names.is_empty(),
            "the first row's name is the catalog's"
        );
        let lines: Vec<_> = config.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, [3, 4]);
        assert!(
            config.skipped[0]
                .reason
                .starts_with("line 1 already names this field"),
            "{:?}",
            config.skipped[0]
        );
        // A repeated row is still checked.
        let err = CollectorConfig::parse(
            "DCGM_FI_DEV_GPU_UTIL, gauge, a\nDCGM_FI_DEV_GPU_UTIL, label, b\n",
            "t.csv",
        )
        .expect_err("a bad type stays an error");
        assert!(err.to_string().starts_with("t.csv:2:"), "{err}");
    }
}
