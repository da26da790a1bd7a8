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

use std::borrow::Cow;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use std::fmt::Write as _;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, LabelSetEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::collectors::{CollectorConfig, MetricType as CsvType};
use crate::jobs::{GpuReport, JobReport};
use crate::snapshot::{GpuSample, Snapshot, Value, unix_seconds};

/// The exposition format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Prometheus text format 0.0.4, what dcgm-exporter serves.
    PrometheusText,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// The HTTP `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::PrometheusText => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// Picks the format a scraper asks for in its `Accept` header:
    /// OpenMetrics when it lists `application/openmetrics-text` with a
    /// weight at least that of `text/plain`, else text.
    pub fn from_accept(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::PrometheusText;
        };
        let weight = |media: &str| -> Option<f32> {
            accept
                .split(',')
                .filter_map(|part| {
                    let mut params = part.split(';').map(str::trim);
                    let kind = params.next()?;
                    if !kind.eq_ignore_ascii_case(media) {
                        return None;
                    }
                    let q = params
                        .find_map(|p| p.strip_prefix("q="))
                        .and_then(|q| q.parse::<f32>().ok())
                        .unwrap_or(1.0);
                    Some(q)
                })
                .reduce(f32::max)
        };
        match (weight("application/openmetrics-text"), weight("text/plain")) {
            (Some(om), text) if om > 0.0 && om >= text.unwrap_or(0.0) => Format::OpenMetrics,
            _ => Format::PrometheusText,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Format, Labels, RenderedLabels};
    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
    use prometheus_client::metrics::MetricType;
    use prometheus_client::registry::Registry;
    use std::borrow::Cow;

    #[derive(Debug)]
    struct One<L: EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static>(L);

    impl<L: EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static> Collector for One<L> {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
            let mut family = encoder.encode_descriptor("m", "h", None, MetricType::Gauge)?;
            family.encode_family(&self.0)?.encode_gauge(&1i64)
        }
    }

    fn text<L: EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static>(labels: L) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(One(labels)));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).expect("encode");
        out
    }

    #[test]
    fn rendered_labels_write_what_prometheus_client_writes() {
        for values in [
            ["0", "GPU-1", "plain"],
            ["1", "quote \" and back\\slash", "new\nline"],
            ["", "", ""],
        ] {
            let labels: Labels<'static> = vec![
                ("gpu", Cow::Borrowed(values[0])),
                ("UUID", Cow::Borrowed(values[1])),
                ("Hostname", Cow::Borrowed(values[2])),
            ];
            let owned: Vec<(String, String)> = labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_string()))
                .collect();
            assert_eq!(
                text(RenderedLabels::new(&labels)),
                text(owned),
                "{values:?}"
            );
        }
    }

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

    #[test]
    fn accept_header_negotiation() {
        let f = |a: &str| Format::from_accept(Some(a));
        assert_eq!(Format::from_accept(None), Format::PrometheusText);
        assert_eq!(f("*/*"), Format::PrometheusText);
        // What Prometheus 2.x sends.
        assert_eq!(
            f(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            ),
            Format::OpenMetrics
        );
        assert_eq!(
            f("application/openmetrics-text;q=0"),
            Format::PrometheusText
        );
        assert_eq!(
            f("text/plain;version=0.0.4,application/openmetrics-text;q=0.5"),
            Format::PrometheusText
        );
    }
}

/// Encodes snapshots for one collectors config.
#[derive(Debug, Clone)]
pub struct Encoder {
    config: Arc<CollectorConfig>,
    hostname_label: bool,
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
            hostname_label: true,
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
        self.hostname_label = false;
        self
    }

    /// The collectors config this encoder exports.
    pub fn config(&self) -> &CollectorConfig {
        &self.config
    }

    /// Encodes `snapshot` into a new string.
    pub fn encode(&self, snapshot: &Arc<Snapshot>, format: Format) -> String {
        let collector = SnapshotCollector {
            snapshot: Arc::clone(snapshot),
            config: Arc::clone(&self.config),
            hostname_label: self.hostname_label,
            build_labels: Arc::clone(&self.build_labels),
            format,
        };
        encode_collector(collector, format, 64 * 1024)
    }
}

/// Runs one collector through prometheus-client's encoder for `format`.
fn encode_collector(collector: impl Collector, format: Format, capacity: usize) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    let mut out = String::with_capacity(capacity);
    let written = match format {
        Format::PrometheusText => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        }
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
    };
    // Writing into a String cannot fail; a formatting error here would be a
    // bug in a label or value encoder.
    written.expect("encoding into a String does not fail");
    out
}

#[derive(Debug)]
struct SnapshotCollector {
    snapshot: Arc<Snapshot>,
    config: Arc<CollectorConfig>,
    hostname_label: bool,
    build_labels: Arc<[(&'static str, String)]>,
    format: Format,
}

/// Help text as `format` requires it. prometheus-client escapes backslashes
/// and newlines in the text format's HELP but writes OpenMetrics HELP
/// verbatim, where backslashes, `"` and newlines must be escaped; help comes
/// from the user's collectors CSV, so it may hold any of them.
fn help_text(help: &str, format: Format) -> Cow<'_, str> {
    if format == Format::PrometheusText || !help.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(help);
    }
    let mut out = String::with_capacity(help.len() + 8);
    escape_label_value(&mut out, help);
    Cow::Owned(out)
}

type Labels<'a> = Vec<(&'static str, Cow<'a, str>)>;

/// A GPU's label set, rendered and escaped once per encode.
///
/// prometheus-client escapes label values byte by byte for every series it
/// writes; a GPU's identity labels are the same on all of its ~30 series, so
/// rendering them once roughly halves the encoder's time. The rendered text
/// goes out through the label-key writer, which writes verbatim, and the last
/// label's value through the value writer, so the library still escapes that
/// value and closes the quote. The golden files and the escaping test pin the
/// bytes this produces.
#[derive(Debug)]
struct RenderedLabels {
    /// `k1="v1",…,kn` with values escaped.
    head: String,
    /// The last label's value, unescaped.
    last: String,
}

impl RenderedLabels {
    fn new(labels: &[(&'static str, Cow<'_, str>)]) -> Self {
        let mut head = String::with_capacity(256);
        let Some(((last_key, last_value), rest)) = labels.split_last() else {
            return RenderedLabels {
                head,
                last: String::new(),
            };
        };
        for (key, value) in rest {
            head.push_str(key);
            head.push_str("=\"");
            escape_label_value(&mut head, value);
            head.push_str("\",");
        }
        head.push_str(last_key);
        RenderedLabels {
            head,
            last: last_value.to_string(),
        }
    }
}

/// Escapes a label value as the text formats require: `\\`, `\"`, `\n`.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

impl EncodeLabelSet for RenderedLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        if self.head.is_empty() {
            return Ok(());
        }
        let mut label = encoder.encode_label();
        let mut key = label.encode_label_key()?;
        key.write_str(&self.head)?;
        let mut value = key.encode_label_value()?;
        value.write_str(&self.last)?;
        value.finish()
    }
}

impl SnapshotCollector {
    /// The identity labels dcgm-exporter puts on every GPU series.
    fn base_labels<'a>(&'a self, gpu: &'a GpuSample) -> Labels<'a> {
        let mut labels: Labels<'a> = Vec::with_capacity(8);
        labels.push(("gpu", Cow::Owned(gpu.index.to_string())));
        labels.push(("UUID", Cow::Borrowed(&gpu.uuid)));
        labels.push(("pci_bus_id", Cow::Borrowed(&gpu.pci_bus_id)));
        if let Some(minor) = gpu.minor_number {
            labels.push(("device", Cow::Owned(format!("nvidia{minor}"))));
        }
        labels.push(("modelName", Cow::Borrowed(&gpu.name)));
        if self.hostname_label {
            labels.push(("Hostname", Cow::Borrowed(&self.snapshot.hostname)));
        }
        labels
    }

    /// Base labels plus the label-type fields of the collectors config.
    fn field_labels<'a>(&'a self, gpu: &'a GpuSample, base: &Labels<'a>) -> Labels<'a> {
        let mut labels = base.clone();
        for field in &self.config.labels {
            if let Some(text) = gpu.labels.get(field) {
                labels.push((field.name(), Cow::Borrowed(text)));
            }
        }
        labels
    }
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let snap = &*self.snapshot;
        let base: Vec<Labels<'_>> = snap.gpus.iter().map(|g| self.base_labels(g)).collect();
        let per_gpu: Vec<RenderedLabels> = snap
            .gpus
            .iter()
            .zip(&base)
            .map(|(g, b)| RenderedLabels::new(&self.field_labels(g, b)))
            .collect();

        for metric in &self.config.metrics {
            if !snap.gpus.iter().any(|g| g.get(metric.field).is_some()) {
                continue;
            }
            let metric_type = match metric.metric_type {
                CsvType::Gauge => MetricType::Gauge,
                CsvType::Counter => MetricType::Unknown,
            };
            let help = help_text(&metric.help, self.format);
            let mut family =
                encoder.encode_descriptor(metric.field.name(), &help, None, metric_type)?;
            for (gpu, labels) in snap.gpus.iter().zip(&per_gpu) {
                let Some(value) = gpu.get(metric.field) else {
                    continue;
                };
                let mut sample = family.encode_family(labels)?;
                match value {
                    Value::Int(v) => sample.encode_gauge(&v)?,
                    Value::Float(v) => sample.encode_gauge(&v)?,
                }
            }
        }

        {
            let mut family = encoder.encode_descriptor(
                "algalon_gpu_up",
                "Whether NVML answers for this GPU (1) or it is lost or failing (0).",
                None,
                MetricType::Gauge,
            )?;
            for (gpu, labels) in snap.gpus.iter().zip(&base) {
                family
                    .encode_family(labels)?
                    .encode_gauge(&i64::from(gpu.up))?;
            }
        }

        if snap.gpus.iter().any(|g| !g.xid_counts.is_empty()) {
            let mut family = encoder.encode_descriptor(
                "algalon_xid_errors",
                "XID errors reported by the driver since the sampler started, by XID.",
                None,
                MetricType::Counter,
            )?;
            for (gpu, labels) in snap.gpus.iter().zip(&base) {
                for (xid, count) in &gpu.xid_counts {
                    let xid_label = [("xid", xid.to_string())];
                    let both = (&labels[..], &xid_label[..]);
                    family
                        .encode_family(&both)?
                        .encode_counter::<NoLabelSet, _, u64>(count, None)?;
                }
            }
        }

        encode_processes(&mut encoder, snap, &base)?;
        encode_self_metrics(&mut encoder, snap, &self.build_labels)
    }
}

fn encode_processes(
    encoder: &mut DescriptorEncoder<'_>,
    snap: &Snapshot,
    base: &[Labels<'_>],
) -> Result<(), std::fmt::Error> {
    type Reading = fn(&crate::snapshot::ProcessSample) -> Option<Value>;
    let families: [(&str, &str, Reading); 3] = [
        (
            "algalon_process_gpu_memory_bytes",
            "GPU memory used by a process, in bytes.",
            |p| p.used_memory_bytes.map(Value::Int),
        ),
        (
            "algalon_process_gpu_sm_utilization_ratio",
            "SM utilization of a process over the last interval (0-1).",
            |p| p.sm_util.map(|u| Value::Float(f64::from(u) / 100.0)),
        ),
        (
            "algalon_process_gpu_memory_utilization_ratio",
            "Memory-controller utilization of a process over the last interval (0-1).",
            |p| p.mem_util.map(|u| Value::Float(f64::from(u) / 100.0)),
        ),
    ];
    for (name, help, reading) in families {
        let present = snap
            .gpus
            .iter()
            .any(|g| g.processes.iter().any(|p| reading(p).is_some()));
        if !present {
            continue;
        }
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (gpu, labels) in snap.gpus.iter().zip(base) {
            for p in &gpu.processes {
                let Some(v) = reading(p) else { continue };
                let mut who: Labels<'_> = vec![("pid", Cow::Owned(p.pid.to_string()))];
                let id = &p.identity;
                for (key, value) in [
                    ("process_name", &id.name),
                    ("slurm_job_id", &id.slurm_job_id),
                    ("pod_uid", &id.pod_uid),
                ] {
                    if let Some(v) = value {
                        who.push((key, Cow::Borrowed(v)));
                    }
                }
                let all = (&labels[..], &who[..]);
                let mut sample = family.encode_family(&all)?;
                match v {
                    Value::Int(v) => sample.encode_gauge(&v)?,
                    Value::Float(v) => sample.encode_gauge(&v)?,
                }
            }
        }
    }
    Ok(())
}

fn encode_self_metrics(
    encoder: &mut DescriptorEncoder<'_>,
    snap: &Snapshot,
    build_labels: &[(&'static str, String)],
) -> Result<(), std::fmt::Error> {
    let mut info: Vec<(&str, Cow<'_, str>)> = [
        ("version", Some(Cow::Borrowed(env!("CARGO_PKG_VERSION")))),
        (
            "driver_version",
            snap.driver_version.as_deref().map(Cow::Borrowed),
        ),
        (
            "nvml_version",
            snap.nvml_version.as_deref().map(Cow::Borrowed),
        ),
        (
            "cuda_driver_version",
            snap.cuda_driver_version
                .map(|v| Cow::Owned(format!("{}.{}", v / 1000, (v % 1000) / 10))),
        ),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v?)))
    .collect();
    info.extend(
        build_labels
            .iter()
            .map(|(k, v)| (*k, Cow::Borrowed(v.as_str()))),
    );
    encoder
        .encode_descriptor(
            "algalon_build",
            "Algalon version and the NVIDIA driver and NVML it runs on.",
            None,
            MetricType::Info,
        )?
        .encode_info(&info)?;

    encoder
        .encode_descriptor(
            "algalon_sample_duration_seconds",
            "Time the last sample of all GPUs took, NVML calls included.",
            None,
            MetricType::Gauge,
        )?
        .encode_gauge(&snap.duration.as_secs_f64())?;
    encoder
        .encode_descriptor(
            "algalon_sample_timestamp_seconds",
            "Unix time at which the last sample started; now minus this is the sample age.",
            None,
            MetricType::Gauge,
        )?
        .encode_gauge(&unix_seconds(snap.taken_at))?;
    encoder
        .encode_descriptor(
            "algalon_samples",
            "Samples taken since the sampler started.",
            None,
            MetricType::Counter,
        )?
        .encode_counter::<NoLabelSet, _, u64>(&snap.seq, None)?;
    if !snap.errors.is_empty() {
        let mut family = encoder.encode_descriptor(
            "algalon_nvml_errors",
            "NVML calls that failed (other than \"not supported\") since the sampler started.",
            None,
            MetricType::Counter,
        )?;
        for e in &snap.errors {
            let labels = [("call", e.call), ("error", e.error)];
            family
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&e.count, None)?;
        }
    }
    Ok(())
}

/// Job series (see [`crate::jobs::encode_reports`]).
pub(crate) fn encode_jobs(reports: &[(JobReport, bool)], format: Format) -> String {
    let collector = JobCollector {
        reports: reports.to_vec(),
    };
    encode_collector(collector, format, 4096)
}

#[derive(Debug)]
struct JobCollector {
    reports: Vec<(JobReport, bool)>,
}

impl Collector for JobCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        if self.reports.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = self
            .reports
            .iter()
            .map(|(r, _)| r.id.0.to_string())
            .collect();
        {
            let mut family = encoder.encode_descriptor(
                "algalon_job",
                "A job or window measured by Algalon: its name and identity (Slurm, torchrun, Kubernetes, user labels).",
                None,
                MetricType::Info,
            )?;
            for ((report, _), id) in self.reports.iter().zip(&ids) {
                let mut labels: Vec<(String, Cow<'_, str>)> = vec![
                    ("job_id".to_owned(), Cow::Borrowed(id)),
                    ("job_name".to_owned(), Cow::Borrowed(&report.name)),
                ];
                for (k, v) in &report.labels {
                    let key = crate::jobs::sanitize_label_name(k);
                    if !labels.iter().any(|(existing, _)| *existing == key) {
                        labels.push((key, Cow::Borrowed(v)));
                    }
                }
                family.encode_info(&labels)?;
            }
        }
        type JobReading = fn(&JobReport, bool) -> Option<Value>;
        let per_job: [(&str, &str, MetricType, JobReading); 2] = [
            (
                "algalon_job_duration_seconds",
                "Time between the first and the last sample of the job.",
                MetricType::Gauge,
                |r, _| Some(Value::Float(r.duration_s)),
            ),
            (
                "algalon_job_running",
                "Whether the job's window is still open (1) or ended (0).",
                MetricType::Gauge,
                |_, running| Some(Value::Int(u64::from(running))),
            ),
        ];
        for (name, help, metric_type, reading) in per_job {
            let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
            for ((report, running), id) in self.reports.iter().zip(&ids) {
                let Some(v) = reading(report, *running) else {
                    continue;
                };
                let labels = [("job_id", id.as_str())];
                let mut sample = family.encode_family(&labels)?;
                match v {
                    Value::Int(v) => sample.encode_gauge(&v)?,
                    Value::Float(v) => sample.encode_gauge(&v)?,
                }
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "algalon_job_interrupted",
                "Whether the job ended by an exception (1, with its type as the exception label: KeyboardInterrupt, ...) instead of finishing its with block (0).",
                None,
                MetricType::Gauge,
            )?;
            for ((report, _), id) in self.reports.iter().zip(&ids) {
                match &report.interrupted {
                    None => family
                        .encode_family(&[("job_id", id.as_str())])?
                        .encode_gauge(&0u64)?,
                    Some(why) => family
                        .encode_family(&[("job_id", id.as_str()), ("exception", why.as_str())])?
                        .encode_gauge(&1u64)?,
                }
            }
        }
        if self.reports.iter().any(|(r, _)| !r.counts.is_empty()) {
            let mut family = encoder.encode_descriptor(
                "algalon_job_progress",
                "Progress the job reported (samples, tokens, …), by unit.",
                None,
                MetricType::Counter,
            )?;
            for ((report, _), id) in self.reports.iter().zip(&ids) {
                for (unit, n) in &report.counts {
                    let labels = [("job_id", id.as_str()), ("unit", unit.as_str())];
                    family
                        .encode_family(&labels)?
                        .encode_counter::<NoLabelSet, _, u64>(&(n.max(0.0) as u64), None)?;
                }
            }
        }
        type GpuReading = fn(&GpuReport) -> Option<f64>;
        let per_gpu: [(&str, &str, MetricType, GpuReading); 6] = [
            (
                "algalon_job_gpu_energy_joules",
                "Energy the GPU used during the job, in joules; source says whether from NVML's energy counter or integrated power.",
                MetricType::Counter,
                |g| g.energy_j,
            ),
            (
                "algalon_job_gpu_utilization_ratio",
                "Mean GPU utilization during the job (0-1).",
                MetricType::Gauge,
                |g| g.util_mean.map(|u| u / 100.0),
            ),
            (
                "algalon_job_gpu_utilization_max_ratio",
                "Highest GPU utilization during the job (0-1).",
                MetricType::Gauge,
                |g| g.util_max.map(|u| u / 100.0),
            ),
            (
                "algalon_job_gpu_memory_peak_bytes",
                "Highest GPU memory used during the job, in bytes.",
                MetricType::Gauge,
                |g| g.memory_peak_bytes.map(|b| b as f64),
            ),
            (
                "algalon_job_gpu_power_mean_watts",
                "Mean GPU power draw during the job, in watts.",
                MetricType::Gauge,
                |g| g.power_mean_w,
            ),
            (
                "algalon_job_gpu_process_memory_peak_bytes",
                "Highest GPU memory used by the job's own processes, in bytes.",
                MetricType::Gauge,
                |g| g.process_memory_peak_bytes.map(|b| b as f64),
            ),
        ];
        for (name, help, metric_type, reading) in per_gpu {
            let present = self
                .reports
                .iter()
                .any(|(r, _)| r.gpus.iter().any(|g| reading(g).is_some()));
            if !present {
                continue;
            }
            let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
            for ((report, _), id) in self.reports.iter().zip(&ids) {
                for g in &report.gpus {
                    let Some(v) = reading(g) else { continue };
                    let index = g.index.to_string();
                    let mut labels = vec![
                        ("job_id", id.as_str()),
                        ("gpu", index.as_str()),
                        ("UUID", g.uuid.as_str()),
                    ];
                    if metric_type == MetricType::Counter {
                        labels.push(("source", g.energy_source.map_or("", |s| s.as_str())));
                        family
                            .encode_family(&labels)?
                            .encode_counter::<NoLabelSet, _, f64>(&v, None)?;
                    } else {
                        family.encode_family(&labels)?.encode_gauge(&v)?;
                    }
                }
            }
        }
        Ok(())
    }
}
