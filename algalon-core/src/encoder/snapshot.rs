//! The series of one [`Snapshot`]: the GPU fields of the collectors config,
//! GPU up, XIDs, per-process series, and the sampler's own.

use std::borrow::Cow;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::format::Format;
use super::render::{Labels, RenderedLabels, help_text, own_family};
use super::{Extras, LabelStyle, WindowCounts};
use crate::catalog::Field;
use crate::collectors::{CollectorConfig, ExpKind, ExpSeries, MetricType as CsvType};
use crate::series::Series;
use crate::snapshot::{GpuSample, Snapshot, Value, unix_seconds};

#[derive(Debug)]
pub(super) struct SnapshotCollector {
    snapshot: Arc<Snapshot>,
    config: Arc<CollectorConfig>,
    style: LabelStyle,
    build_labels: Arc<[(&'static str, String)]>,
    extras: Arc<Extras>,
    format: Format,
}

impl SnapshotCollector {
    pub(super) fn new(
        snapshot: Arc<Snapshot>,
        config: Arc<CollectorConfig>,
        style: LabelStyle,
        build_labels: Arc<[(&'static str, String)]>,
        extras: Arc<Extras>,
        format: Format,
    ) -> Self {
        SnapshotCollector {
            snapshot,
            config,
            style,
            build_labels,
            extras,
            format,
        }
    }

    /// The identity labels dcgm-exporter puts on every GPU series.
    fn base_labels<'a>(&'a self, gpu: &'a GpuSample) -> Labels<'a> {
        let mut labels: Labels<'a> = Vec::with_capacity(8);
        labels.push(("gpu", Cow::Owned(gpu.index.to_string())));
        labels.push((self.style.uuid_key(), Cow::Borrowed(&gpu.uuid)));
        labels.push(("pci_bus_id", Cow::Borrowed(&gpu.pci_bus_id)));
        if let Some(minor) = gpu.minor_number {
            labels.push(("device", Cow::Owned(format!("nvidia{minor}"))));
        }
        labels.push(("modelName", self.style.model_name(&gpu.name)));
        if let Some(key) = self.style.hostname.key() {
            labels.push((key, Cow::Borrowed(&self.snapshot.hostname)));
        }
        labels
    }

    /// The label-type fields of the collectors config, each under the name
    /// the file gives it (dcgm-exporter's label name is the row's spelling),
    /// sorted by name as dcgm-exporter's template writes its label map.
    fn field_labels<'a>(&'a self, gpu: &'a GpuSample) -> Labels<'a> {
        let mut labels = Labels::new();
        for field in &self.config.labels {
            if let Some(text) = gpu.labels.get(field) {
                labels.push((self.config.series_name(*field), Cow::Borrowed(text)));
            }
        }
        labels.sort_by(|a, b| a.0.cmp(b.0));
        labels
    }

    /// The extra label sets each series of GPU `index` is written with: one
    /// per HPC job (`hpc_job="…"`, dcgm-exporter's HPC job mapping) times one
    /// per label set the face attached (such as the pods holding the GPU),
    /// each sorted by name; a single empty set when there is neither.
    fn sets(&self, index: u32) -> Vec<Labels<'_>> {
        fn with<'a>(extra: &'a [(String, String)], job: Option<&'a str>) -> Labels<'a> {
            let mut labels: Labels<'a> = extra
                .iter()
                .map(|(k, v)| (k.as_str(), Cow::Borrowed(v.as_str())))
                .collect();
            if let Some(job) = job {
                labels.push(("hpc_job", Cow::Borrowed(job)));
            }
            labels.sort_by(|a, b| a.0.cmp(b.0));
            labels
        }
        let jobs: Vec<Option<&str>> = match self.extras.hpc_jobs.get(&index) {
            Some(jobs) if !jobs.is_empty() => jobs.iter().map(|j| Some(j.as_str())).collect(),
            _ => vec![None],
        };
        let attached: &[crate::encoder::LabelSet] = match self.extras.gpu_label_sets.get(&index) {
            Some(sets) if !sets.is_empty() => sets,
            _ => &[],
        };
        let mut out = Vec::with_capacity(jobs.len() * attached.len().max(1));
        for job in jobs {
            if attached.is_empty() {
                out.push(with(&[], job));
            }
            for set in attached {
                out.push(with(set, job));
            }
        }
        out
    }

    /// dcgm-exporter's attributes of a series of `field` with `value`:
    /// `err_code` and `err_msg` on `DCGM_FI_DEV_XID_ERRORS` (its XID text
    /// table), then the GPU's extra set (`hpc_job`, pod labels); its template
    /// writes them after the labels, sorted by name.
    fn attributes<'a>(field: Field, value: Value, set: &Labels<'a>) -> Labels<'a> {
        let mut attrs = Labels::new();
        if field == Field::XidErrors {
            let code = match value {
                Value::Int(v) => i64::try_from(v).unwrap_or(i64::MAX),
                // dcgm-exporter converts with int(); NVML gives XIDs as integers.
                Value::Float(v) => v as i64,
            };
            attrs.push(("err_code", Cow::Owned(code.to_string())));
            attrs.push(("err_msg", Cow::Borrowed(crate::xid_text::err_msg(code))));
        }
        if attrs.is_empty() {
            return set.clone();
        }
        attrs.extend(set.iter().cloned());
        attrs.sort_by(|a, b| a.0.cmp(b.0));
        attrs
    }
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let snap = &*self.snapshot;
        let base: Vec<Labels<'_>> = snap.gpus.iter().map(|g| self.base_labels(g)).collect();
        let fields: Vec<Labels<'_>> = snap.gpus.iter().map(|g| self.field_labels(g)).collect();
        let per_gpu: Vec<RenderedLabels> = base
            .iter()
            .zip(&fields)
            .map(|(b, f)| RenderedLabels::new(&[&b[..], &f[..]].concat()))
            .collect();
        let sets: Vec<Vec<Labels<'_>>> = snap.gpus.iter().map(|g| self.sets(g.index)).collect();
        let per_instance = super::mig::rendered(&snap.gpus, &base, &fields);

        for metric in &self.config.metrics {
            if !snap.gpus.iter().any(|g| {
                g.get(metric.field).is_some()
                    || super::mig::with_series(g).any(|m| m.get(metric.field).is_some())
            }) {
                continue;
            }
            let metric_type = match metric.metric_type {
                CsvType::Gauge => MetricType::Gauge,
                CsvType::Counter => MetricType::Unknown,
            };
            let help = help_text(&metric.help, self.format);
            let name = self.config.series_name(metric.field);
            let mut family = encoder.encode_descriptor(name, &help, None, metric_type)?;
            for (i, gpu) in snap.gpus.iter().enumerate() {
                if let Some(value) = gpu.get(metric.field) {
                    for set in &sets[i] {
                        let attrs = Self::attributes(metric.field, value, set);
                        let rendered;
                        let labels = if attrs.is_empty() {
                            &per_gpu[i]
                        } else {
                            rendered =
                                RenderedLabels::new(&[&base[i][..], &fields[i], &attrs].concat());
                            &rendered
                        };
                        let mut sample = family.encode_family(labels)?;
                        match value {
                            Value::Int(v) => sample.encode_gauge(&v)?,
                            Value::Float(v) => sample.encode_gauge(&v)?,
                        }
                    }
                }
                // An instance's reading of the field, on its own series.
                for (m, labels) in super::mig::with_series(gpu).zip(&per_instance[i]) {
                    let Some(value) = m.get(metric.field) else {
                        continue;
                    };
                    let attached = m
                        .gpu_instance_id
                        .and_then(|gi| self.extras.instance_label_sets.get(&(gpu.index, gi)))
                        .filter(|sets| !sets.is_empty());
                    let Some(attached) = attached else {
                        let mut sample = family.encode_family(labels)?;
                        match value {
                            Value::Int(v) => sample.encode_gauge(&v)?,
                            Value::Float(v) => sample.encode_gauge(&v)?,
                        }
                        continue;
                    };
                    let instance = super::mig::instance_base(&base[i], m);
                    for set in attached {
                        let mut extra: Labels<'_> = set
                            .iter()
                            .map(|(k, v)| (k.as_str(), Cow::Borrowed(v.as_str())))
                            .collect();
                        extra.sort_by(|a, b| a.0.cmp(b.0));
                        let labels =
                            RenderedLabels::new(&[&instance[..], &fields[i], &extra].concat());
                        let mut sample = family.encode_family(&labels)?;
                        match value {
                            Value::Int(v) => sample.encode_gauge(&v)?,
                            Value::Float(v) => sample.encode_gauge(&v)?,
                        }
                    }
                }
            }
        }

        for exp in &self.config.exp {
            let counts = match exp.kind {
                ExpKind::XidErrorsCount => self.extras.xid_counts.as_ref(),
                ExpKind::ClockEventsCount => self.extras.clock_event_counts.as_ref(),
            };
            if let Some(counts) = counts {
                self.encode_exp(&mut encoder, exp, counts, &base, &fields, &sets)?;
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

        encode_processes(&mut encoder, snap, &base, &self.extras, self.format)?;
        encode_self_metrics(&mut encoder, snap, &self.build_labels, self.format)
    }
}

impl SnapshotCollector {
    /// One of dcgm-exporter's windowed count series: per GPU, one series per
    /// event seen in the window (`xid="79"`, `clock_event="power_cap"`), or
    /// one series of 0 without that label when there was none; the
    /// collectors' label fields, `window_size_in_ms` and the event label are
    /// sorted by name, as dcgm-exporter's template writes its label map.
    fn encode_exp(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        exp: &ExpSeries,
        counts: &WindowCounts,
        base: &[Labels<'_>],
        fields: &[Labels<'_>],
        sets: &[Vec<Labels<'_>>],
    ) -> Result<(), std::fmt::Error> {
        let metric_type = match exp.metric_type {
            CsvType::Gauge => MetricType::Gauge,
            CsvType::Counter => MetricType::Unknown,
        };
        let help = help_text(&exp.help, self.format);
        let mut family = encoder.encode_descriptor(exp.kind.name(), &help, None, metric_type)?;
        let window = counts.window_ms.to_string();
        let none = std::collections::BTreeMap::new();
        for (i, gpu) in self.snapshot.gpus.iter().enumerate() {
            let seen = counts.by_gpu.get(&gpu.uuid).unwrap_or(&none);
            let events: Vec<(Option<&str>, u64)> = if seen.is_empty() {
                vec![(None, 0)]
            } else {
                seen.iter().map(|(e, n)| (Some(e.as_str()), *n)).collect()
            };
            for (event, count) in events {
                let mut sorted: Labels<'_> = fields[i].clone();
                sorted.push(("window_size_in_ms", Cow::Borrowed(&window)));
                if let Some(event) = event {
                    sorted.push((exp.kind.value_label(), Cow::Borrowed(event)));
                }
                sorted.sort_by(|a, b| a.0.cmp(b.0));
                for set in &sets[i] {
                    let mut all: Labels<'_> = base[i].clone();
                    all.extend(sorted.iter().cloned());
                    all.extend(set.iter().cloned());
                    family
                        .encode_family(&RenderedLabels::new(&all))?
                        .encode_gauge(&count)?;
                }
            }
        }
        Ok(())
    }
}

fn encode_processes(
    encoder: &mut DescriptorEncoder<'_>,
    snap: &Snapshot,
    base: &[Labels<'_>],
    extras: &Extras,
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
                if let Some(more) = extras.process_labels.get(&p.pid) {
                    who.extend(
                        more.iter()
                            .map(|(k, v)| (k.as_str(), Cow::Borrowed(v.as_str()))),
                    );
                }
                let on_instance;
                let gpu_labels = match super::mig::instance_of(gpu, p.pid) {
                    Some(m) => {
                        on_instance = super::mig::instance_base(labels, m);
                        &on_instance
                    }
                    None => labels,
                };
                let all = (&gpu_labels[..], &who[..]);
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
