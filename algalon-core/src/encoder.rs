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
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::collectors::{CollectorConfig, MetricType as CsvType};
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
    /// OpenMetrics when it lists `application/openmetrics-text`, else text.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::PrometheusText,
        }
    }
}

/// Encodes snapshots for one collectors config.
#[derive(Debug, Clone)]
pub struct Encoder {
    config: Arc<CollectorConfig>,
    hostname_label: bool,
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
        }
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
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SnapshotCollector {
            snapshot: Arc::clone(snapshot),
            config: Arc::clone(&self.config),
            hostname_label: self.hostname_label,
        }));
        let mut out = String::with_capacity(64 * 1024);
        let written = match format {
            Format::PrometheusText => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            }
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
        };
        // Writing into a String cannot fail; a formatting error here would be
        // a bug in a label or value encoder.
        written.expect("encoding into a String does not fail");
        out
    }
}

#[derive(Debug)]
struct SnapshotCollector {
    snapshot: Arc<Snapshot>,
    config: Arc<CollectorConfig>,
    hostname_label: bool,
}

type Labels<'a> = Vec<(&'static str, Cow<'a, str>)>;

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

    fn field_labels<'a>(&'a self, gpu: &'a GpuSample) -> Labels<'a> {
        let mut labels = self.base_labels(gpu);
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
        let per_gpu: Vec<Labels<'_>> = snap.gpus.iter().map(|g| self.field_labels(g)).collect();

        for metric in &self.config.metrics {
            if !snap.gpus.iter().any(|g| g.get(metric.field).is_some()) {
                continue;
            }
            let metric_type = match metric.metric_type {
                CsvType::Gauge => MetricType::Gauge,
                CsvType::Counter => MetricType::Unknown,
            };
            let mut family =
                encoder.encode_descriptor(metric.field.name(), &metric.help, None, metric_type)?;
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

        let base: Vec<Labels<'_>> = snap.gpus.iter().map(|g| self.base_labels(g)).collect();
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
        encode_self_metrics(&mut encoder, snap)
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
) -> Result<(), std::fmt::Error> {
    let info: Vec<(&str, Cow<'_, str>)> = [
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
