//! Encodes a [`Snapshot`] as Prometheus text (0.0.4) or OpenMetrics, with
//! `prometheus-client`.
//!
//! GPU series carry dcgm-exporter's names and labels byte for byte:
//!
//! ```text
//! DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-…",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="w1",DCGM_FI_DRIVER_VERSION="550.54.15"} 85
//! ```
//!
//! **How DCGM counters are typed.** DCGM's counter fields have no `_total`
//! suffix (`DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`), and both exposition formats
//! as `prometheus-client` writes them give a `counter` family `_total`
//! samples. To keep the series names DCGM's, exactly as dashboards, alerts and
//! recording rules query them, DCGM counters are typed `untyped` in the
//! Prometheus text format and `unknown` in OpenMetrics. PromQL's `rate()` and
//! `increase()` work on them as before; VictoriaMetrics ignores the type, and
//! `promtool check metrics` has no counter-suffix complaint to make. Algalon's
//! own counters (`algalon_*_total`) are real counters.
//!
//! A reading that is absent leaves its series out; a family with no series
//! is left out entirely.
//!
//! One module per concern: `format` names the two formats, `render` writes
//! label sets and help text as they require, `snapshot` the GPU, process and sampler series of a
//! [`Snapshot`], `jobs` the job series of job reports. Algalon's own series
//! come from [`crate::series`]; label-name rules from [`crate::labels`].

mod format;
mod jobs;
mod mig;
mod render;
mod snapshot;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::collectors::CollectorConfig;
use crate::snapshot::Snapshot;
pub use format::Format;
pub use jobs::{encode_job_process, encode_jobs};
use render::encode_collector;
use snapshot::SnapshotCollector;

/// The name of the host label on GPU series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostLabel {
    /// `Hostname`, as dcgm-exporter's releases up to 4.8 write it.
    #[default]
    Hostname,
    /// `hostname`, as dcgm-exporter's main branch writes it since its #655.
    Lowercase,
    /// No host label (dcgm-exporter's `--no-hostname`).
    Off,
}

impl HostLabel {
    /// The label's name, if there is one.
    pub fn key(self) -> Option<&'static str> {
        match self {
            HostLabel::Hostname => Some("Hostname"),
            HostLabel::Lowercase => Some("hostname"),
            HostLabel::Off => None,
        }
    }
}

/// dcgm-exporter's options that change how GPU series are labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LabelStyle {
    /// The host label's name, or none.
    pub hostname: HostLabel,
    /// `-o/--use-old-namespace`: dcgm-exporter 1.x's `uuid` label for `UUID`.
    pub old_namespace: bool,
    /// `--replace-blanks-in-model-name`: `modelName="NVIDIA-H100-80GB-HBM3"`.
    pub replace_blanks_in_model_name: bool,
}

impl LabelStyle {
    /// The GPU UUID label's name: `UUID`, or `uuid` in the old namespace.
    pub fn uuid_key(self) -> &'static str {
        if self.old_namespace { "uuid" } else { "UUID" }
    }

    /// The `modelName` label's value for a GPU named `name`: as NVML gives
    /// it, or with each run of blanks replaced by one dash (dcgm-exporter
    /// joins `strings.Fields` with `-`).
    pub fn model_name(self, name: &str) -> std::borrow::Cow<'_, str> {
        if self.replace_blanks_in_model_name && name.contains(char::is_whitespace) {
            std::borrow::Cow::Owned(name.split_whitespace().collect::<Vec<_>>().join("-"))
        } else {
            std::borrow::Cow::Borrowed(name)
        }
    }
}

/// What an encode adds to a snapshot's series besides its readings:
/// dcgm-exporter's `hpc_job` label and its windowed count series.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extras {
    /// dcgm-exporter's `--hpc-job-mapping-dir`: the jobs on each GPU (by
    /// NVML index). Each series of a GPU with jobs is written once per job,
    /// with an `hpc_job` label.
    pub hpc_jobs: BTreeMap<u32, Vec<String>>,
    /// `DCGM_EXP_XID_ERRORS_COUNT`: XIDs per GPU in the last window.
    pub xid_counts: Option<WindowCounts>,
    /// `DCGM_EXP_CLOCK_EVENTS_COUNT`: clock events per GPU in the last window.
    pub clock_event_counts: Option<WindowCounts>,
    /// Label sets a face attaches to a GPU's series (by NVML index), such as
    /// the workloads holding it: each field and windowed-count series of the
    /// GPU is written once per set (times once per `hpc_job`), the set's
    /// labels among the attributes, sorted by name as dcgm-exporter's
    /// template writes them. No entry, or an empty list: written once.
    pub gpu_label_sets: BTreeMap<u32, Vec<LabelSet>>,
    /// As `gpu_label_sets`, for the series of MIG instances, by (GPU index,
    /// GPU instance id).
    pub instance_label_sets: BTreeMap<(u32, u32), Vec<LabelSet>>,
    /// Labels a face adds to a process's series, by PID (after `pod_uid`).
    pub process_labels: BTreeMap<u32, LabelSet>,
}

/// Extra `name="value"` labels of a series; names must be valid label names
/// that the series does not already carry.
pub type LabelSet = Vec<(String, String)>;

/// Counts of events per GPU over a sliding window (see [`crate::windows`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowCounts {
    /// The window's length in milliseconds (`window_size_in_ms` label).
    pub window_ms: u64,
    /// Per GPU UUID: each event (an XID number, a clock-event name) and how
    /// often it was seen in the window.
    pub by_gpu: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Encodes snapshots for one collectors config.
#[derive(Debug, Clone)]
pub struct Encoder {
    config: Arc<CollectorConfig>,
    style: LabelStyle,
    /// Labels a face adds to `algalon_build_info` (e.g. its git revision).
    build_labels: Arc<[(&'static str, String)]>,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new(CollectorConfig::default())
    }
}

impl Encoder {
    /// An encoder exporting the fields of `config`, with the `Hostname` label.
    pub fn new(config: CollectorConfig) -> Self {
        Encoder {
            config: Arc::new(config),
            style: LabelStyle::default(),
            build_labels: Arc::new([]),
        }
    }

    /// Adds `key="value"` to `algalon_build_info`, after Algalon's own labels.
    pub fn with_build_label(mut self, key: &'static str, value: impl Into<String>) -> Self {
        let mut labels = self.build_labels.to_vec();
        labels.push((key, value.into()));
        self.build_labels = labels.into();
        self
    }

    /// Leaves the `Hostname` label out (dcgm-exporter's `--no-hostname`).
    pub fn without_hostname(mut self) -> Self {
        self.style.hostname = HostLabel::Off;
        self
    }

    /// Labels GPU series as `style` says.
    pub fn with_label_style(mut self, style: LabelStyle) -> Self {
        self.style = style;
        self
    }

    /// How GPU series are labelled.
    pub fn label_style(&self) -> LabelStyle {
        self.style
    }

    /// The collectors config this encoder exports.
    pub fn config(&self) -> &CollectorConfig {
        &self.config
    }

    /// Encodes `snapshot` into a new string.
    pub fn encode(&self, snapshot: &Arc<Snapshot>, format: Format) -> String {
        self.encode_with(snapshot, format, &Arc::new(Extras::default()))
    }

    /// Encodes `snapshot` with `extras` (`hpc_job` labels, windowed counts).
    pub fn encode_with(
        &self,
        snapshot: &Arc<Snapshot>,
        format: Format,
        extras: &Arc<Extras>,
    ) -> String {
        let collector = SnapshotCollector::new(
            Arc::clone(snapshot),
            Arc::clone(&self.config),
            self.style,
            Arc::clone(&self.build_labels),
            Arc::clone(extras),
            format,
        );
        encode_collector(collector, format, 64 * 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::Format;

    #[test]
    fn help_text_is_escaped_as_each_format_requires() {
        use crate::{CollectorConfig, Encoder, Field, GpuSample, Snapshot, Value};
        use std::sync::Arc;
        use std::time::{Duration, SystemTime};

        let config = CollectorConfig::parse(
            "DCGM_FI_DEV_GPU_UTIL, gauge, \"say \"\"hi\"\" to C:\\new\"\n",
            "help.csv",
        )
        .expect("quoted help parses");
        let mut gpu = GpuSample::new(0, "GPU-1".into(), "00000000:18:00.0".into(), "H100".into());
        gpu.set(Field::GpuUtil, Some(Value::Int(5)));
        let snapshot = Arc::new(Snapshot {
            hostname: "w1".into(),
            driver_version: None,
            nvml_version: None,
            cuda_driver_version: None,
            taken_at: SystemTime::UNIX_EPOCH,
            duration: Duration::ZERO,
            seq: 1,
            gpus: vec![gpu],
            errors: Vec::new(),
        });
        let encoder = Encoder::new(config);
        let om = encoder.encode(&snapshot, Format::OpenMetrics);
        assert!(
            om.contains("# HELP DCGM_FI_DEV_GPU_UTIL say \\\"hi\\\" to C:\\\\new\n"),
            "{om}"
        );
        let text = encoder.encode(&snapshot, Format::PrometheusText);
        assert!(
            text.contains("# HELP DCGM_FI_DEV_GPU_UTIL say \"hi\" to C:\\\\new\n"),
            "{text}"
        );
    }
}
