//! The series of one [`Snapshot`]: the GPU fields of the collectors config,
//! GPU up, XIDs, per-process series, and the sampler's own.

use std::borrow::Cow;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::format::Format;
use super::render::{Labels, RenderedLabels, help_text, own_family};
use crate::collectors::{CollectorConfig, MetricType as CsvType};
use crate::series::Series;
use crate::snapshot::{GpuSample, Snapshot, Value, unix_seconds};

#[derive(Debug)]
pub(super) struct SnapshotCollector {
    snapshot: Arc<Snapshot>,
    config: Arc<CollectorConfig>,
    hostname_label: bool,
    build_labels: Arc<[(&'static str, String)]>,
    format: Format,
}

impl SnapshotCollector {
    pub(super) fn new(
        snapshot: Arc<Snapshot>,
        config: Arc<CollectorConfig>,
        hostname_label: bool,
        build_labels: Arc<[(&'static str, String)]>,
        format: Format,
    ) -> Self {
        SnapshotCollector {
            snapshot,
            config,
            hostname_label,
            build_labels,
            format,
        }
    }

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
            let mut family = own_family(&mut encoder, Series::GpuUp, self.format)?;
            for (gpu, labels) in snap.gpus.iter().zip(&base) {
                family
                    .encode_family(labels)?
                    .encode_gauge(&i64::from(gpu.up))?;
            }
        }

        if snap.gpus.iter().any(|g| !g.xid_counts.is_empty()) {
            let mut family = own_family(&mut encoder, Series::XidErrors, self.format)?;
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

        encode_processes(&mut encoder, snap, &base, self.format)?;
        encode_self_metrics(&mut encoder, snap, &self.build_labels, self.format)
    }
}

fn encode_processes(
    encoder: &mut DescriptorEncoder<'_>,
    snap: &Snapshot,
    base: &[Labels<'_>],
    format: Format,
) -> Result<(), std::fmt::Error> {
    type Reading = fn(&crate::snapshot::ProcessSample) -> Option<Value>;
    let families: [(Series, Reading); 3] = [
        (Series::ProcessGpuMemory, |p| {
            p.used_memory_bytes.map(Value::Int)
        }),
        (Series::ProcessSmUtilization, |p| {
            p.sm_util.map(|u| Value::Float(f64::from(u) / 100.0))
        }),
        (Series::ProcessMemoryUtilization, |p| {
            p.mem_util.map(|u| Value::Float(f64::from(u) / 100.0))
        }),
    ];
    for (series, reading) in families {
        let present = snap
            .gpus
            .iter()
            .any(|g| g.processes.iter().any(|p| reading(p).is_some()));
        if !present {
            continue;
        }
        let mut family = own_family(encoder, series, format)?;
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
    format: Format,
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
    own_family(encoder, Series::Build, format)?.encode_info(&info)?;

    own_family(encoder, Series::SampleDuration, format)?
        .encode_gauge(&snap.duration.as_secs_f64())?;
    own_family(encoder, Series::SampleTimestamp, format)?
        .encode_gauge(&unix_seconds(snap.taken_at))?;
    own_family(encoder, Series::Samples, format)?
        .encode_counter::<NoLabelSet, _, u64>(&snap.seq, None)?;
    if !snap.errors.is_empty() {
        let mut family = own_family(encoder, Series::NvmlErrors, format)?;
        for e in &snap.errors {
            // Host-level calls carry no `gpu` label (see series.rs).
            let gpu = e.gpu.map(|g| g.to_string());
            let mut labels: Vec<(&str, &str)> = Vec::with_capacity(3);
            if let Some(gpu) = gpu.as_deref() {
                labels.push(("gpu", gpu));
            }
            labels.push(("call", e.call));
            labels.push(("error", e.error));
            family
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&e.count, None)?;
        }
    }
    Ok(())
}
