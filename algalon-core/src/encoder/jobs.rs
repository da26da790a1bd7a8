//! The job series of job reports ([`encode_jobs`]).

use std::borrow::Cow;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};

use super::format::Format;
use super::render::{encode_collector, own_family};
use crate::jobs::SERIES_IDENTITY_LABELS;
use crate::labels::sanitize_label_name;
use crate::report::{EnergyScope, GpuReport, JobReport};
use crate::series::{Series, SeriesKind};
use crate::snapshot::{Snapshot, Value};

/// Per-job series for a report list (`running` says whether each job is
/// still open), used by the Python and C faces to serve or push job usage:
///
/// * `algalon_job_info{job_id,job_name,<labels>} 1`
/// * `algalon_job_gpu_energy_joules_total{job_id,job_name,<identity>,gpu,UUID,source}`
/// * `algalon_job_gpu_utilization_ratio`, `algalon_job_gpu_memory_peak_bytes`,
///   `algalon_job_gpu_power_mean_watts`, `algalon_job_duration_seconds`,
///   `algalon_job_running`.
/// * A job on a MIG device: its per-GPU series carry `GPU_I_PROFILE` and
///   `GPU_I_ID` (memory is the instance's); its parent GPU's energy is
///   `algalon_job_mig_parent_energy_joules` (shared by the GPU's
///   instances, never in `algalon_job_gpu_energy_joules`), the instance's
///   share by compute slices `algalon_job_mig_energy_estimate_joules`, and
///   its GPM activity `algalon_job_mig_{sm_active,sm_occupancy,tensor_active,dram_active}_ratio`.
/// * `algalon_job_interrupted{job_id} 0` for a job not interrupted,
///   `algalon_job_interrupted{job_id,exception} 1` with
///   [`JobReport::interrupted`] as `exception` for one that was.
///
/// `job_id` is the job's globally unique [`JobId`](crate::report::JobId);
/// every series but `algalon_job_info` also carries `job_name` and the
/// environment identity of [`SERIES_IDENTITY_LABELS`] the job has (Slurm
/// job, step and task, torchrun run and rank, Kubernetes pod), so runs and
/// ranks can be told apart and grouped on any series. Each is fixed for a
/// job: they add no series.
pub fn encode_jobs(reports: &[(JobReport, bool)], format: Format) -> String {
    let collector = JobCollector {
        reports: reports.to_vec(),
        format,
    };
    encode_collector(collector, format, 4096)
}

/// The series a process that measures jobs serves besides its jobs' (the
/// Python `Monitor.serve`), from its latest snapshot, so that `/metrics`
/// says what runs and whether its GPUs answer before the first job:
///
/// * `algalon_build_info{version,driver_version,nvml_version,cuda_driver_version} 1`
/// * `algalon_gpu_up{gpu,UUID,pci_bus_id,device,modelName,Hostname}` per
///   GPU the process measures.
pub fn encode_job_process(snapshot: &Arc<Snapshot>, format: Format) -> String {
    encode_collector(
        ProcessCollector {
            snapshot: Arc::clone(snapshot),
            format,
        },
        format,
        1024,
    )
}

#[derive(Debug)]
struct ProcessCollector {
    snapshot: Arc<Snapshot>,
    format: Format,
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let snap = &self.snapshot;
        let cuda = snap
            .cuda_driver_version
            .map(|v| format!("{}.{}", v / 1000, (v % 1000) / 10));
        let info: Vec<(&str, &str)> = [
            ("version", Some(env!("CARGO_PKG_VERSION"))),
            ("driver_version", snap.driver_version.as_deref()),
            ("nvml_version", snap.nvml_version.as_deref()),
            ("cuda_driver_version", cuda.as_deref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
        own_family(&mut encoder, Series::Build, self.format)?.encode_info(&info)?;
        if snap.gpus.is_empty() {
            return Ok(());
        }
        let mut family = own_family(&mut encoder, Series::GpuUp, self.format)?;
        for gpu in &snap.gpus {
            let index = gpu.index.to_string();
            let device = gpu.minor_number.map(|m| format!("nvidia{m}"));
            let mut labels = vec![
                ("gpu", index.as_str()),
                ("UUID", gpu.uuid.as_str()),
                ("pci_bus_id", gpu.pci_bus_id.as_str()),
            ];
            if let Some(device) = &device {
                labels.push(("device", device.as_str()));
            }
            labels.push(("modelName", gpu.name.as_str()));
            labels.push(("Hostname", snap.hostname.as_str()));
            family
                .encode_family(&labels)?
                .encode_gauge(&i64::from(gpu.up))?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct JobCollector {
    reports: Vec<(JobReport, bool)>,
    format: Format,
}

impl Collector for JobCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        if self.reports.is_empty() {
            return Ok(());
        }
        // job_id, job_name and the identity labels, per report.
        let idents: Vec<Vec<(&str, &str)>> = self
            .reports
            .iter()
            .map(|(r, _)| {
                let mut labels = vec![("job_id", r.id.as_str()), ("job_name", r.name.as_str())];
                labels.extend(
                    SERIES_IDENTITY_LABELS
                        .iter()
                        .filter_map(|k| Some((*k, r.labels.get(*k)?.as_str()))),
                );
                labels
            })
            .collect();
        let ids = &idents;
        {
            let mut family = own_family(&mut encoder, Series::Job, self.format)?;
            for (report, _) in &self.reports {
                let mut labels: Vec<(String, Cow<'_, str>)> = vec![
                    ("job_id".to_owned(), Cow::Borrowed(report.id.as_str())),
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
        let per_job: [(Series, JobReading); 2] = [
            (Series::JobDuration, |r, _| Some(Value::Float(r.duration_s))),
            (Series::JobRunning, |_, running| {
                Some(Value::Int(u64::from(running)))
            }),
        ];
        for (series, reading) in per_job {
            let mut family = own_family(&mut encoder, series, self.format)?;
            for ((report, running), id) in self.reports.iter().zip(ids) {
                let Some(v) = reading(report, *running) else {
                    continue;
                };
                let mut sample = family.encode_family(id)?;
                match v {
                    Value::Int(v) => sample.encode_gauge(&v)?,
                    Value::Float(v) => sample.encode_gauge(&v)?,
                }
            }
        }
        {
            let mut family = own_family(&mut encoder, Series::JobInterrupted, self.format)?;
            for ((report, _), id) in self.reports.iter().zip(ids) {
                match &report.interrupted {
                    None => family.encode_family(id)?.encode_gauge(&0u64)?,
                    Some(why) => {
                        let mut labels = id.clone();
                        labels.push(("exception", why.as_str()));
                        family.encode_family(&labels)?.encode_gauge(&1u64)?;
                    }
                }
            }
        }
        if self.reports.iter().any(|(r, _)| !r.counts.is_empty()) {
            let mut family = own_family(&mut encoder, Series::JobProgress, self.format)?;
            for ((report, _), id) in self.reports.iter().zip(ids) {
                for (unit, n) in &report.counts {
                    let mut labels = id.clone();
                    labels.push(("unit", unit.as_str()));
                    family
                        .encode_family(&labels)?
                        .encode_counter::<NoLabelSet, _, u64>(&(n.max(0.0) as u64), None)?;
                }
            }
        }
        type GpuReading = fn(&GpuReport) -> Option<f64>;
        // Whole-GPU energy and power are a MIG device's parent's: its
        // entries get them only in the algalon_job_mig_* families, so no
        // sum over algalon_job_gpu_energy_joules counts a shared GPU once
        // per instance.
        let per_gpu: [(Series, GpuReading); 12] = [
            (Series::JobGpuEnergy, |g| {
                g.energy_j.filter(|_| g.energy_scope == EnergyScope::Gpu)
            }),
            (Series::JobGpuUtilization, |g| {
                g.util_mean.map(|u| u / 100.0)
            }),
            (Series::JobGpuUtilizationMax, |g| {
                g.util_max.map(|u| u / 100.0)
            }),
            (Series::JobGpuMemoryPeak, |g| {
                g.memory_peak_bytes.map(|b| b as f64)
            }),
            (Series::JobGpuPowerMean, |g| {
                g.power_mean_w
                    .filter(|_| g.energy_scope == EnergyScope::Gpu)
            }),
            (Series::JobGpuProcessMemoryPeak, |g| {
                g.process_memory_peak_bytes.map(|b| b as f64)
            }),
            (Series::JobMigParentEnergy, |g| {
                g.energy_j
                    .filter(|_| g.energy_scope == EnergyScope::ParentGpu)
            }),
            (Series::JobMigEnergyEstimate, |g| {
                g.energy_estimate_j.filter(|_| g.mig.is_some())
            }),
            (Series::JobMigSmActive, |g| g.mig.as_ref()?.sm_active_mean),
            (Series::JobMigSmOccupancy, |g| {
                g.mig.as_ref()?.sm_occupancy_mean
            }),
            (Series::JobMigTensorActive, |g| {
                g.mig.as_ref()?.tensor_active_mean
            }),
            (Series::JobMigDramActive, |g| {
                g.mig.as_ref()?.dram_active_mean
            }),
        ];
        for (series, reading) in per_gpu {
            let present = self
                .reports
                .iter()
                .any(|(r, _)| r.gpus.iter().any(|g| reading(g).is_some()));
            if !present {
                continue;
            }
            let mut family = own_family(&mut encoder, series, self.format)?;
            for ((report, _), id) in self.reports.iter().zip(ids) {
                for g in &report.gpus {
                    let Some(v) = reading(g) else { continue };
                    let index = g.index.to_string();
                    let gi = g
                        .mig
                        .as_ref()
                        .and_then(|m| m.gpu_instance_id)
                        .map(|i| i.to_string());
                    let mut labels = id.clone();
                    labels.extend([("gpu", index.as_str()), ("UUID", g.uuid.as_str())]);
                    if let Some(m) = &g.mig {
                        labels.push(("GPU_I_PROFILE", m.profile.as_str()));
                        if let Some(gi) = &gi {
                            labels.push(("GPU_I_ID", gi.as_str()));
                        }
                    }
                    if series.def().kind == SeriesKind::Counter {
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
