//! The job series of job reports (see [`crate::jobs::encode_reports`]).

use std::borrow::Cow;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::{Format, encode_collector};
use crate::jobs::{GpuReport, JobReport};
use crate::labels::sanitize_label_name;
use crate::snapshot::Value;

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
                    let key = sanitize_label_name(k);
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
