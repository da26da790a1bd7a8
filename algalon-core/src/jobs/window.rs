//! One window's accumulators: what every snapshot adds, and the report.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use crate::catalog::Field;
use crate::report::{EnergySource, GpuReport, JobId, JobReport};
use crate::snapshot::{Snapshot, unix_seconds};

#[derive(Debug, Default, Clone)]
pub(super) struct GpuAcc {
    index: u32,
    uuid: String,
    name: String,
    first_energy_mj: Option<u64>,
    last_energy_mj: Option<u64>,
    energy_counter_broken: bool,
    integrated_j: f64,
    integrated_covers_all: bool,
    last_power: Option<(f64, f64)>,
    util_sum: f64,
    util_n: u64,
    util_max: Option<f64>,
    mem_peak: Option<u64>,
    power_sum: f64,
    power_n: u64,
    power_max: Option<f64>,
    temp_max: Option<f64>,
    samples: u64,
    proc_mem_peak: Option<u64>,
    /// Why the GPU was down in the window, first occurrence.
    down_reason: Option<String>,
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[derive(Debug, Clone)]
pub(super) struct Window {
    /// The job's globally unique id.
    pub(super) job_id: JobId,
    pub(super) name: String,
    pub(super) labels: BTreeMap<String, String>,
    /// UUIDs the window covers; `None`: every GPU in the snapshots.
    pub(super) gpus: Option<HashSet<String>>,
    /// Processes whose memory counts as the job's own; `None`: no filter.
    pub(super) pids: Option<HashSet<u32>>,
    pub(super) first_at: Option<f64>,
    pub(super) last_at: Option<f64>,
    pub(super) accs: BTreeMap<String, GpuAcc>,
    pub(super) counts: BTreeMap<String, f64>,
    /// What interrupted the window, once marked.
    pub(super) interrupted: Option<String>,
    /// Host of the snapshots (the first one's).
    pub(super) hostname: String,
    /// UUID → CUDA index in the measuring process.
    pub(super) cuda: BTreeMap<String, u32>,
    /// The sampling interval the window's samples should keep, if any.
    pub(super) interval: Option<Duration>,
    /// Longest sample seen.
    pub(super) slowest: Option<Duration>,
    /// Caveats on the whole report given at the start.
    pub(super) notes: Vec<String>,
}

impl Window {
    pub(super) fn observe(&mut self, snap: &Snapshot) {
        let t = unix_seconds(snap.taken_at);
        if self.last_at.is_some_and(|last| t <= last) {
            return; // the same snapshot seen twice (boundary sample + callback)
        }
        if self.first_at.is_none() {
            self.hostname.clone_from(&snap.hostname);
        }
        self.first_at.get_or_insert(t);
        self.last_at = Some(t);
        self.slowest = self.slowest.max(Some(snap.duration));
        for gpu in &snap.gpus {
            if self
                .gpus
                .as_ref()
                .is_some_and(|set| !set.contains(&gpu.uuid))
            {
                continue;
            }
            let acc = self.accs.entry(gpu.uuid.clone()).or_insert_with(|| GpuAcc {
                index: gpu.index,
                uuid: gpu.uuid.clone(),
                name: gpu.name.clone(),
                integrated_covers_all: true,
                ..GpuAcc::default()
            });
            if !gpu.up {
                if acc.down_reason.is_none() {
                    acc.down_reason = Some(
                        gpu.down_reason
                            .as_ref()
                            .map_or_else(|| "GPU down".to_owned(), ToString::to_string),
                    );
                }
                acc.last_power = None;
                acc.integrated_covers_all = false;
                continue;
            }
            acc.samples += 1;
            match gpu.energy_mj() {
                Some(e) => {
                    if acc.last_energy_mj.is_some_and(|last| e < last) {
                        // Driver reload resets the counter: the difference
                        // would be meaningless.
                        acc.energy_counter_broken = true;
                    }
                    acc.first_energy_mj.get_or_insert(e);
                    acc.last_energy_mj = Some(e);
                }
                None => {
                    if acc.first_energy_mj.is_some() {
                        acc.energy_counter_broken = true;
                    }
                }
            }
            let power = gpu.get_f64(Field::PowerUsage);
            match (acc.last_power, power) {
                (Some((t0, p0)), Some(p1)) => acc.integrated_j += (t - t0) * (p0 + p1) / 2.0,
                (None, Some(_)) if acc.samples > 1 => acc.integrated_covers_all = false,
                _ => {}
            }
            acc.last_power = power.map(|p| (t, p));
            if let Some(p) = power {
                acc.power_sum += p;
                acc.power_n += 1;
                acc.power_max = max_opt(acc.power_max, Some(p));
            } else {
                acc.integrated_covers_all = false;
            }
            if let Some(u) = gpu.gpu_util() {
                acc.util_sum += u;
                acc.util_n += 1;
                acc.util_max = max_opt(acc.util_max, Some(u));
            }
            if let Some(m) = gpu.memory_used_bytes() {
                acc.mem_peak = Some(acc.mem_peak.map_or(m, |p| p.max(m)));
            }
            acc.temp_max = max_opt(acc.temp_max, gpu.temperature_c());
            if let Some(pids) = &self.pids {
                let own: Option<u64> = gpu
                    .processes
                    .iter()
                    .filter(|p| pids.contains(&p.pid))
                    .filter_map(|p| p.used_memory_bytes)
                    .reduce(|a, b| a + b);
                if let Some(own) = own {
                    acc.proc_mem_peak = Some(acc.proc_mem_peak.map_or(own, |p| p.max(own)));
                }
            }
        }
    }

    /// The report so far; `running` for a window still open.
    pub(super) fn report(&self, running: bool) -> JobReport {
        let started_at = self.first_at.unwrap_or(0.0);
        let ended_at = self.last_at.unwrap_or(started_at);
        let duration = ended_at - started_at;
        let mut gpus: Vec<GpuReport> = self
            .accs
            .values()
            .map(|a| {
                let mut g = gpu_report(a, duration);
                g.cuda_index = self.cuda.get(&a.uuid).copied();
                g
            })
            .collect();
        gpus.sort_by_key(|g| g.index);
        let known: Vec<f64> = gpus.iter().filter_map(|g| g.energy_j).collect();
        let mut notes = self.notes.clone();
        if let (Some(slowest), Some(interval)) = (self.slowest, self.interval)
            && slowest > interval
        {
            notes.push(format!(
                "sampling fell behind its {:.3} s interval: the slowest sample took {:.3} s (a slow GPU or NVML call), so the job's start and end may be late by up to that much and fewer samples were taken",
                interval.as_secs_f64(),
                slowest.as_secs_f64()
            ));
        }
        JobReport {
            id: self.job_id.clone(),
            name: self.name.clone(),
            labels: self.labels.clone(),
            hostname: self.hostname.clone(),
            running,
            started_at,
            ended_at,
            duration_s: duration,
            energy_j: (!known.is_empty()).then(|| known.iter().sum()),
            gpus,
            counts: self.counts.clone(),
            interrupted: self.interrupted.clone(),
            slowest_sample_s: self.slowest.map(|d| d.as_secs_f64()),
            notes,
        }
    }
}

/// NVML's energy counter counts millijoules but is refreshed by the driver
/// only every few tens of milliseconds; below this window length a counter
/// difference of 0 is not evidence of zero energy.
const COUNTER_RESOLUTION: Duration = Duration::from_millis(100);

fn gpu_report(a: &GpuAcc, duration_s: f64) -> GpuReport {
    let mean = |sum: f64, n: u64| (n > 0).then(|| sum / n as f64);
    let (energy_j, energy_source, energy_note) = if a.samples < 2 {
        (
            None,
            None,
            Some("fewer than two samples in the window: energy cannot be measured; use a shorter sampling interval".to_owned()),
        )
    } else {
        match (a.first_energy_mj, a.last_energy_mj, a.energy_counter_broken) {
            (Some(first), Some(last), false)
                if last > first || duration_s >= COUNTER_RESOLUTION.as_secs_f64() =>
            {
                (
                    Some((last - first) as f64 / 1000.0),
                    Some(EnergySource::Counter),
                    None,
                )
            }
            (Some(_), Some(_), false) => (
                Some(a.integrated_j),
                Some(EnergySource::Integrated),
                Some(format!(
                    "window of {:.0} ms is shorter than the energy counter's resolution; energy integrated from power samples",
                    duration_s * 1000.0
                )),
            ),
            (_, _, broken) => {
                let why = if broken {
                    "the energy counter reset or vanished during the window (driver reload?)"
                } else {
                    "this GPU has no energy counter"
                };
                if a.power_n >= 2 {
                    let gap = if a.integrated_covers_all {
                        ""
                    } else {
                        "; power was missing for part of the window, which is not counted"
                    };
                    (
                        Some(a.integrated_j),
                        Some(EnergySource::Integrated),
                        Some(format!("{why}: energy integrated from power samples{gap}")),
                    )
                } else {
                    (
                        None,
                        None,
                        Some(format!("{why}, and power could not be read")),
                    )
                }
            }
        }
    };
    GpuReport {
        cuda_index: None,
        index: a.index,
        uuid: a.uuid.clone(),
        name: a.name.clone(),
        energy_j,
        energy_source,
        energy_note,
        util_mean: mean(a.util_sum, a.util_n),
        util_max: a.util_max,
        memory_peak_bytes: a.mem_peak,
        power_mean_w: mean(a.power_sum, a.power_n),
        power_max_w: a.power_max,
        temperature_max_c: a.temp_max,
        samples: a.samples,
        process_memory_peak_bytes: a.proc_mem_peak,
        down_reason: a.down_reason.clone(),
    }
}
