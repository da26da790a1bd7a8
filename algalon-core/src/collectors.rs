//! dcgm-exporter's collectors CSV: which fields to export, as what type, with
//! what help text.
//!
//! The format is dcgm-exporter's, read the way it reads it: one
//! `DCGM FIELD, Prometheus metric type, help message` row per line, `#`
//! comments, blank lines ignored, spaces around fields trimmed, double quotes
//! allowed around a field that contains a comma. Types are `gauge`, `counter`
//! and `label` (label fields become labels on every series of the GPU).
//! NVIDIA's `default-counters.csv` and `dcp-metrics-included.csv` load
//! unchanged; the built-in default is a verbatim copy of the former.

use std::path::Path;

use crate::catalog::{self, Field, Kind};
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

/// A row that names a real DCGM field which NVML cannot provide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The DCGM field name.
    pub name: String,
    /// 1-based line in the file.
    pub line: usize,
    /// Why it is not exported.
    pub reason: &'static str,
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
    /// Rows naming fields that cannot be provided; they are not exported.
    pub skipped: Vec<Skipped>,
}

impl Default for CollectorConfig {
    /// dcgm-exporter's default field set.
    fn default() -> Self {
        CollectorConfig::parse(DEFAULT_COUNTERS_CSV, "<built-in default-counters.csv>")
            .expect("the built-in default-counters.csv parses (checked by tests)")
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

    /// Parses collectors CSV text; `file` names it in error messages.
    pub fn parse(text: &str, file: &str) -> Result<Self> {
        let mut config = CollectorConfig {
            source: file.to_owned(),
            metrics: Vec::new(),
            labels: Vec::new(),
            skipped: Vec::new(),
        };
        let mut first_seen: Vec<(Field, usize)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |message: String| Error::CollectorsParse {
                file: file.to_owned(),
                line,
                message,
            };
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let cols = split_row(trimmed).map_err(err)?;
            if cols.len() != 3 {
                return Err(err(format!(
                    "expected 3 comma-separated fields (DCGM field, Prometheus type, help), \
                     found {}: {trimmed:?}",
                    cols.len()
                )));
            }
            let (name, type_name, help) = (cols[0].as_str(), cols[1].as_str(), &cols[2]);
            let Some(field) = Field::from_name(name) else {
                if let Some((_, reason)) = catalog::UNAVAILABLE
                    .iter()
                    .chain(catalog::DCGM_EXP_FIELDS)
                    .find(|(n, _)| *n == name)
                {
                    config.skipped.push(Skipped {
                        name: name.to_owned(),
                        line,
                        reason,
                    });
                    continue;
                }
                let hint = match catalog::closest_name(name) {
                    Some(close) => format!("; did you mean {close}?"),
                    None => "; see the metric list in README.md".to_owned(),
                };
                return Err(err(format!("unknown DCGM field {name:?}{hint}")));
            };
            if let Some((_, first)) = first_seen.iter().find(|(f, _)| *f == field) {
                return Err(err(format!(
                    "{name} is listed twice (first on line {first}); keep one row"
                )));
            }
            first_seen.push((field, line));
            let def = field.def();
            let metric_type = match type_name.to_ascii_lowercase().as_str() {
                "label" if def.kind == Kind::Label => {
                    config.labels.push(field);
                    continue;
                }
                "label" => {
                    return Err(err(format!(
                        "{name} is a numeric field and cannot be a label; use type {}",
                        if def.kind == Kind::Counter {
                            "counter"
                        } else {
                            "gauge"
                        }
                    )));
                }
                _ if def.kind == Kind::Label => {
                    return Err(err(format!(
                        "{name} is a text field; use type label (found {type_name:?})"
                    )));
                }
                "gauge" => MetricType::Gauge,
                "counter" => MetricType::Counter,
                "histogram" | "summary" => {
                    return Err(err(format!(
                        "type {type_name:?} for {name} is not supported: a GPU field is a \
                         single value; use gauge or counter"
                    )));
                }
                _ => {
                    return Err(err(format!(
                        "unknown Prometheus type {type_name:?} for {name}; use gauge, counter \
                         or label"
                    )));
                }
            };
            config.metrics.push(Metric {
                field,
                metric_type,
                help: if help.is_empty() {
                    def.help.to_owned()
                } else {
                    help.clone()
                },
            });
        }
        Ok(config)
    }

    /// Every field the sampler must read for this config (metrics and labels).
    pub fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        self.metrics
            .iter()
            .map(|m| m.field)
            .chain(self.labels.iter().copied())
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
            (
                "DCGM_FI_DEV_GPU_UTIL, gauge, a\nDCGM_FI_DEV_GPU_UTIL, gauge, b\n",
                "listed twice (first on line 1)",
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
}
