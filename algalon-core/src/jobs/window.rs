//! One window's accumulators: what every snapshot adds, and the report.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use super::mig::MIG_JOB_FIELDS;
use crate::catalog::Field;
use crate::report::{EnergyScope, EnergySource, GpuReport, JobId, JobReport, MigReport};
use crate::snapshot::{GpuSample, MigInstance, Snapshot, unix_seconds};

/// What a window keeps about a MIG device it measures.
#[derive(Debug, Default, Clone)]
pub(super) struct MigAcc {
    uuid: String,
    profile: String,
    gpu_instance_id: Option<u32>,
    compute_instance_id: Option<u32>,
    slices: Option<u32>,
    parent_slices: Option<u32>,
    memory_total: Option<u64>,
    /// Sum and count of each of [`MIG_JOB_FIELDS`].
    gpm: [(f64, u64); 4],
    pids: BTreeSet<u32>,
    destroyed_at: Option<f64>,
}

impl MigAcc {
    fn new(m: &MigInstance) -> MigAcc {
        MigAcc {
            uuid: m.uuid.clone(),
            profile: m.profile.clone(),
            ..MigAcc::default()
        }
    }

    fn observe(&mut self, m: &MigInstance) {
        self.gpu_instance_id = m.gpu_instance_id.or(self.gpu_instance_id);
        self.compute_instance_id = m.compute_instance_id.or(self.compute_instance_id);
        self.slices = m.slices.or(self.slices);
        self.parent_slices = m.parent_slices.or(self.parent_slices);
        self.memory_total = m.memory_total_bytes().or(self.memory_total);
        for (acc, field) in self.gpm.iter_mut().zip(MIG_JOB_FIELDS) {
            if let Some(v) = m.get(*field) {
                acc.0 += v.as_f64();
                acc.1 += 1;
            }
        }
        self.pids.extend(&m.pids);
    }

    fn report(&self) -> MigReport {
        let mean = |(sum, n): (f64, u64)| (n > 0).then(|| sum / n as f64);
        MigReport {
            uuid: self.uuid.clone(),
            profile: self.profile.clone(),
            gpu_instance_id: self.gpu_instance_id,
            compute_instance_id: self.compute_instance_id,
            slices: self.slices,
            parent_slices: self.parent_slices,
            memory_total_bytes: self.memory_total,
            sm_active_mean: mean(self.gpm[0]),
            sm_occupancy_mean: mean(self.gpm[1]),
            tensor_active_mean: mean(self.gpm[2]),
            dram_active_mean: mean(self.gpm[3]),
            pids: self.pids.iter().copied().collect(),
            destroyed_at: self.destroyed_at,
        }
    }
}

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
    /// The MIG device, when this accumulator measures one (keyed by its
    /// `MIG-…` UUID; the identity above is the parent GPU's).
    mig: Option<MigAcc>,
}

impl GpuAcc {
    fn new(gpu: &GpuSample) -> GpuAcc {
        GpuAcc {
            index: gpu.index,
            uuid: gpu.uuid.clone(),
            name: gpu.name.clone(),
            integrated_covers_all: true,
            ..GpuAcc::default()
        }
    }

    /// A sample in which the GPU is down.
    fn down(&mut self, gpu: &GpuSample) {
        if self.down_reason.is_none() {
            self.down_reason = Some(
                gpu.down_reason
                    .as_ref()
                    .map_or_else(|| "GPU down".to_owned(), ToString::to_string),
            );
        }
        self.last_power = None;
        self.integrated_covers_all = false;
    }

    /// The GPU-wide readings of a sample of an up GPU: energy, power,
    /// temperature (a MIG device's are its parent's).
    fn whole_gpu(&mut self, gpu: &GpuSample, t: f64) {
        self.samples += 1;
        match gpu.energy_mj() {
            Some(e) => {
                if self.last_energy_mj.is_some_and(|last| e < last) {
                    // Driver reload resets the counter: the difference
                    // would be meaningless.
                    self.energy_counter_broken = true;
                }
                self.first_energy_mj.get_or_insert(e);
                self.last_energy_mj = Some(e);
            }
            None => {
                if self.first_energy_mj.is_some() {
                    self.energy_counter_broken = true;
                }
            }
        }
        let power = gpu.get_f64(Field::PowerUsage);
        match (self.last_power, power) {
            (Some((t0, p0)), Some(p1)) => self.integrated_j += (t - t0) * (p0 + p1) / 2.0,
            (None, Some(_)) if self.samples > 1 => self.integrated_covers_all = false,
            _ => {}
        }
        self.last_power = power.map(|p| (t, p));
        if let Some(p) = power {
            self.power_sum += p;
            self.power_n += 1;
            self.power_max = max_opt(self.power_max, Some(p));
        } else {
            self.integrated_covers_all = false;
        }
        self.temp_max = max_opt(self.temp_max, gpu.temperature_c());
    }

    /// Memory used by the job's own processes among `procs` (of the GPU,
    /// or of one MIG device).
    fn own_memory<'a>(
        &mut self,
        pids: Option<&HashSet<u32>>,
        procs: impl Iterator<Item = &'a crate::snapshot::ProcessSample>,
    ) {
        let Some(pids) = pids else { return };
        let own: Option<u64> = procs
            .filter(|p| pids.contains(&p.pid))
            .filter_map(|p| p.used_memory_bytes)
            .reduce(|a, b| a + b);
        if let Some(own) = own {
            raise_peak(&mut self.proc_mem_peak, own);
        }
    }
}

/// `peak` raised to `v` (set when it had no value yet).
fn raise_peak(peak: &mut Option<u64>, v: u64) {
    *peak = Some(peak.map_or(v, |p| p.max(v)));
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
            self.observe_instances(gpu, t);
            if self
                .gpus
                .as_ref()
                .is_some_and(|set| !set.contains(&gpu.uuid))
            {
                continue;
            }
            let acc = self
                .accs
                .entry(gpu.uuid.clone())
                .or_insert_with(|| GpuAcc::new(gpu));
            if !gpu.up {
                acc.down(gpu);
                continue;
            }
            acc.whole_gpu(gpu, t);
            if let Some(u) = gpu.gpu_util() {
                acc.util_sum += u;
                acc.util_n += 1;
                acc.util_max = max_opt(acc.util_max, Some(u));
            }
            if let Some(m) = gpu.memory_used_bytes() {
                raise_peak(&mut acc.mem_peak, m);
            }
            acc.own_memory(self.pids.as_ref(), gpu.processes.iter());
        }
    }

    /// The MIG devices of `gpu` the window measures: each one's memory,
    /// GPM activity and processes, with its parent's energy, power and
    /// temperature. One that is gone from an up GPU's list was destroyed:
    /// noted once, and nothing more is added to it.
    fn observe_instances(&mut self, gpu: &GpuSample, t: f64) {
        let Some(set) = &self.gpus else { return };
        for m in &gpu.mig {
            if set.contains(&m.uuid) && !self.accs.contains_key(&m.uuid) {
                let mut acc = GpuAcc::new(gpu);
                acc.mig = Some(MigAcc::new(m));
                self.accs.insert(m.uuid.clone(), acc);
            }
        }
        for acc in self.accs.values_mut() {
            if acc.uuid != gpu.uuid {
                continue;
            }
            let Some(mig) = &mut acc.mig else { continue };
            if mig.destroyed_at.is_some() {
                continue;
            }
            if !gpu.up {
                acc.down(gpu);
                continue;
            }
            let Some(m) = gpu.mig.iter().find(|m| m.uuid == mig.uuid) else {
                mig.destroyed_at = Some(t);
                acc.last_power = None;
                continue;
            };
            mig.observe(m);
            acc.whole_gpu(gpu, t);
            if let Some(used) = m.memory_used_bytes() {
                raise_peak(&mut acc.mem_peak, used);
            }
            let on_instance = gpu.processes.iter().filter(|p| m.pids.contains(&p.pid));
            acc.own_memory(self.pids.as_ref(), on_instance);
        }
    }

    /// The report so far; `running` for a window still open.
    pub(super) fn report(&self, running: bool) -> JobReport {
        let started_at = self.first_at.unwrap_or(0.0);
        let ended_at = self.last_at.unwrap_or(started_at);
        let duration = ended_at - started_at;
        let mut gpus: Vec<GpuReport> = self
            .accs
            .iter()
            .map(|(key, a)| {
                let mut g = gpu_report(a, duration);
                g.cuda_index = self.cuda.get(key).copied();
                g
            })
            .collect();
        gpus.sort_by_key(|g| (g.index, g.mig.as_ref().and_then(|m| m.gpu_instance_id)));
        let known: Vec<f64> = gpus
            .iter()
            .filter(|g| g.energy_scope == EnergyScope::Gpu)
            .filter_map(|g| g.energy_j)
            .collect();
        let on_mig = gpus.iter().any(|g| g.mig.is_some());
        // A MIG device whose parent the job also measures whole adds
        // nothing: the whole GPU's energy already holds its share.
        let whole: HashSet<&str> = gpus
            .iter()
            .filter(|g| g.mig.is_none())
            .map(|g| g.uuid.as_str())
            .collect();
        let estimate = on_mig.then(|| {
            gpus.iter()
                .filter_map(|g| match g.energy_scope {
                    EnergyScope::Gpu => g.energy_j,
                    EnergyScope::ParentGpu if whole.contains(g.uuid.as_str()) => None,
                    EnergyScope::ParentGpu => g.energy_estimate_j,
                })
                .sum::<f64>()
        });
        let mut notes = self.notes.clone();
        if on_mig {
            notes.push("the job ran on MIG devices, whose energy and power are their parent GPU's, shared by its instances: energy_j counts whole GPUs only, and energy_estimate_j adds each MIG device's share of its GPU's energy by compute slices (an estimate)".to_owned());
        }
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
            energy_estimate_j: estimate,
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
    let mig = a.mig.as_ref().map(MigAcc::report);
    let (energy_scope, energy_estimate_j, energy_note) = match &mig {
        None => (EnergyScope::Gpu, None, energy_note),
        Some(m) => {
            let share = m.share();
            let shared = format!(
                "energy and power are GPU {}'s ({}) as a whole, shared by its MIG instances; {}",
                a.index,
                a.uuid,
                match (m.slices, m.parent_slices, share) {
                    (Some(n), Some(total), Some(_)) => format!(
                        "energy_estimate_j is this instance's share by compute slices ({n}/{total}), an estimate"
                    ),
                    _ => "the instance's compute slices are unknown, so no share is estimated"
                        .to_owned(),
                }
            );
            let note =
                Some(energy_note.map_or_else(|| shared.clone(), |n| format!("{shared}; {n}")));
            (
                EnergyScope::ParentGpu,
                energy_j.zip(share).map(|(e, s)| e * s),
                note,
            )
        }
    };
    GpuReport {
        cuda_index: None,
        index: a.index,
        uuid: a.uuid.clone(),
        name: a.name.clone(),
        energy_j,
        energy_source,
        energy_scope,
        energy_estimate_j,
        energy_note,
        util_mean: mean(a.util_sum, a.util_n),
        util_max: a.util_max,
        memory_peak_bytes: a.mem_peak,
        // With the energy counter, the mean power over the window is exactly
        // energy ÷ duration; power samples are NVML's own running averages
        // (about a second on recent GPUs), which trail a load that starts or
        // stops within the window (an H200 under a 16 s bf16 load: 370 W from
        // samples against 384 W from the counter).
        power_mean_w: match (energy_source, energy_j) {
            (Some(EnergySource::Counter), Some(j)) if duration_s > 0.0 && a.power_n > 0 => {
                Some(j / duration_s)
            }
            _ => mean(a.power_sum, a.power_n),
        },
        power_max_w: a.power_max,
        temperature_max_c: a.temp_max,
        samples: a.samples,
        process_memory_peak_bytes: a.proc_mem_peak,
        down_reason: a.down_reason.clone(),
        mig,
    }
}
