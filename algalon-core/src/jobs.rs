//! Per-job GPU usage: named windows over a set of GPUs, fed by snapshots.
//!
//! A [`JobTracker`] holds any number of open windows (they nest and
//! overlap). Every snapshot the sampler takes is [`observe`](JobTracker::observe)d
//! by every open window; [`end`](JobTracker::end) turns a window into a
//! [`JobReport`]: per GPU, energy (NVML's total-energy counter where the GPU
//! has one, else power integrated over the samples — and the report says
//! which), mean/max utilization, peak memory, mean/max power, max
//! temperature, sample count and the peak memory of the job's own processes.
//!
//! GPUs are identified by UUID, so a window over "cuda:0" counts the physical
//! GPU it really is, and windows of several ranks on one node never count a
//! GPU twice. [`resolve_visible_devices`] maps `CUDA_VISIBLE_DEVICES` to UUIDs;
//! [`identity_from_env`] reads Slurm, torchrun and Kubernetes job identity.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;

use crate::catalog::Field;
use crate::devices::{HostGpu, Visible};
use crate::error::Result;
use crate::snapshot::{Snapshot, unix_seconds};

/// Identifies an open window of a [`JobTracker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct WindowId(pub u64);

/// Where a GPU's energy figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EnergySource {
    /// The difference of NVML's total-energy counter (millijoule resolution).
    Counter,
    /// Power samples integrated over time (trapezoids between samples).
    Integrated,
}

impl EnergySource {
    /// `"counter"` or `"integrated"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EnergySource::Counter => "counter",
            EnergySource::Integrated => "integrated",
        }
    }
}

/// What one window saw on one GPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuReport {
    /// NVML index.
    pub index: u32,
    /// GPU UUID.
    pub uuid: String,
    /// Model name.
    pub name: String,
    /// Energy used during the window, in joules; `None` when it could not
    /// be measured (see `energy_note`).
    pub energy_j: Option<f64>,
    /// How `energy_j` was obtained.
    pub energy_source: Option<EnergySource>,
    /// Why energy is missing or less exact than usual, when it is.
    pub energy_note: Option<String>,
    /// Mean GPU utilization over the samples, %.
    pub util_mean: Option<f64>,
    /// Highest GPU utilization seen, %.
    pub util_max: Option<f64>,
    /// Highest framebuffer memory used, bytes.
    pub memory_peak_bytes: Option<u64>,
    /// Mean power draw, W.
    pub power_mean_w: Option<f64>,
    /// Highest power draw, W.
    pub power_max_w: Option<f64>,
    /// Highest GPU temperature, °C.
    pub temperature_max_c: Option<f64>,
    /// Samples of this GPU in the window (with the GPU up).
    pub samples: u64,
    /// Highest GPU memory used by the window's own processes, bytes; `None`
    /// when the window tracks no processes or NVML gave no per-process memory.
    pub process_memory_peak_bytes: Option<u64>,
}

/// A finished (or still running) window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobReport {
    /// The window's id in its tracker.
    pub id: WindowId,
    /// The name given at `begin`.
    pub name: String,
    /// Environment identity merged with user labels.
    pub labels: BTreeMap<String, String>,
    /// Unix time of the first sample, seconds.
    pub started_at: f64,
    /// Unix time of the last sample, seconds.
    pub ended_at: f64,
    /// `ended_at - started_at`, seconds.
    pub duration_s: f64,
    /// Per GPU, in NVML index order.
    pub gpus: Vec<GpuReport>,
    /// Sum of the GPUs' energy, J; `None` when no GPU's energy is known.
    pub energy_j: Option<f64>,
    /// Progress counts given by the job (`samples`, `tokens`, …).
    pub counts: BTreeMap<String, f64>,
    /// What cut the job short, as its face names it — an exception's type
    /// (`KeyboardInterrupt`), `dropped` for a job abandoned while running —
    /// or `None` for a job that ran to its end (or still runs). Set by
    /// [`JobTracker::mark_interrupted`] or [`JobTracker::end_interrupted`];
    /// exported as `algalon_job_interrupted`.
    pub interrupted: Option<String>,
}

impl JobReport {
    /// Energy per unit of a count (`energy_per("tokens")` = J/token).
    pub fn energy_per(&self, count: &str) -> Option<f64> {
        let n = *self.counts.get(count)?;
        (n > 0.0).then_some(self.energy_j? / n)
    }

    /// A readable, fixed-width table: one line per GPU and a total; an
    /// interrupted job's starts with `(interrupted by <reason>)`.
    pub fn table(&self) -> String {
        let opt = |v: Option<f64>, digits: usize| {
            v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
        };
        let mut out = self
            .interrupted
            .as_ref()
            .map_or_else(String::new, |why| format!("(interrupted by {why}) "));
        out.push_str(&format!(
            "job {:?}: {:.1} s on {} GPU(s)\n",
            self.name,
            self.duration_s,
            self.gpus.len()
        ));
        out.push_str(
            "  GPU  energy J      source      util mean/max %  mem peak GiB  power mean/max W  temp max C  samples\n",
        );
        for g in &self.gpus {
            out.push_str(&format!(
                "  {:<4} {:<12} {:<11} {:>6}/{:<8} {:>12} {:>8}/{:<8} {:>10} {:>8}\n",
                g.index,
                opt(g.energy_j, 1),
                g.energy_source.map_or("-", EnergySource::as_str),
                opt(g.util_mean, 1),
                opt(g.util_max, 0),
                opt(g.memory_peak_bytes.map(|b| b as f64 / 1073741824.0), 2),
                opt(g.power_mean_w, 1),
                opt(g.power_max_w, 1),
                opt(g.temperature_max_c, 0),
                g.samples,
            ));
            if let Some(note) = &g.energy_note {
                out.push_str(&format!("       note: {note}\n"));
            }
        }
        out.push_str(&format!("  total energy: {} J", opt(self.energy_j, 1)));
        for (k, n) in &self.counts {
            if let Some(per) = self.energy_per(k) {
                out.push_str(&format!(", {per:.4} J per {k} ({n} {k})"));
            }
        }
        out.push('\n');
        out
    }
}

#[derive(Debug, Default, Clone)]
struct GpuAcc {
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
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[derive(Debug, Clone)]
struct Window {
    name: String,
    labels: BTreeMap<String, String>,
    /// UUIDs the window covers; `None`: every GPU in the snapshots.
    gpus: Option<HashSet<String>>,
    /// Processes whose memory counts as the job's own; `None`: no filter.
    pids: Option<HashSet<u32>>,
    first_at: Option<f64>,
    last_at: Option<f64>,
    accs: BTreeMap<String, GpuAcc>,
    counts: BTreeMap<String, f64>,
    /// What interrupted the window, once marked.
    interrupted: Option<String>,
}

impl Window {
    fn observe(&mut self, snap: &Snapshot) {
        let t = unix_seconds(snap.taken_at);
        if self.last_at.is_some_and(|last| t <= last) {
            return; // the same snapshot seen twice (boundary sample + callback)
        }
        self.first_at.get_or_insert(t);
        self.last_at = Some(t);
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

    fn report(&self, id: WindowId) -> JobReport {
        let started_at = self.first_at.unwrap_or(0.0);
        let ended_at = self.last_at.unwrap_or(started_at);
        let duration = ended_at - started_at;
        let mut gpus: Vec<GpuReport> = self
            .accs
            .values()
            .map(|a| gpu_report(a, duration))
            .collect();
        gpus.sort_by_key(|g| g.index);
        let known: Vec<f64> = gpus.iter().filter_map(|g| g.energy_j).collect();
        JobReport {
            id,
            name: self.name.clone(),
            labels: self.labels.clone(),
            started_at,
            ended_at,
            duration_s: duration,
            energy_j: (!known.is_empty()).then(|| known.iter().sum()),
            gpus,
            counts: self.counts.clone(),
            interrupted: self.interrupted.clone(),
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
    }
}

/// What a new window covers.
#[derive(Debug, Clone, Default)]
pub struct WindowSpec {
    /// Name of the job or window.
    pub name: String,
    /// Labels (environment identity merged with the user's).
    pub labels: BTreeMap<String, String>,
    /// GPU UUIDs to cover; `None` covers every GPU the sampler reads.
    pub gpus: Option<Vec<String>>,
    /// PIDs whose per-process GPU memory is the job's own; `None` records
    /// no per-process memory.
    pub pids: Option<Vec<u32>>,
}

/// Open windows, fed by snapshots. Cheap to share (`Arc<JobTracker>`):
/// every method takes `&self`.
#[derive(Debug, Default)]
pub struct JobTracker {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    open: BTreeMap<WindowId, Window>,
    /// Latest report of each finished window, for exposition (bounded).
    finished: Vec<JobReport>,
}

/// Finished windows kept for `/metrics` and pushes; the oldest go first.
const FINISHED_KEPT: usize = 256;

impl JobTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a window; it sees every snapshot observed from now on.
    pub fn begin(&self, spec: WindowSpec) -> WindowId {
        let mut inner = self.inner.lock();
        inner.next += 1;
        let id = WindowId(inner.next);
        inner.open.insert(
            id,
            Window {
                name: spec.name,
                labels: spec.labels,
                gpus: spec.gpus.map(|g| g.into_iter().collect()),
                pids: spec.pids.map(|p| p.into_iter().collect()),
                first_at: None,
                last_at: None,
                accs: BTreeMap::new(),
                counts: BTreeMap::new(),
                interrupted: None,
            },
        );
        id
    }

    /// Feeds a snapshot to every open window.
    pub fn observe(&self, snap: &Snapshot) {
        for window in self.inner.lock().open.values_mut() {
            window.observe(snap);
        }
    }

    /// Adds `n` to a progress count of an open window (`samples`, `tokens`).
    /// Returns false when the window is not open.
    pub fn count(&self, id: WindowId, what: &str, n: f64) -> bool {
        match self.inner.lock().open.get_mut(&id) {
            Some(w) => {
                *w.counts.entry(what.to_owned()).or_default() += n;
                true
            }
            None => false,
        }
    }

    /// Replaces the PIDs whose memory counts as the window's own.
    pub fn set_pids(&self, id: WindowId, pids: Vec<u32>) -> bool {
        match self.inner.lock().open.get_mut(&id) {
            Some(w) => {
                w.pids = Some(pids.into_iter().collect());
                true
            }
            None => false,
        }
    }

    /// The report so far of an open window.
    pub fn peek(&self, id: WindowId) -> Option<JobReport> {
        self.inner.lock().open.get(&id).map(|w| w.report(id))
    }

    /// Closes a window and returns its report (`None` if it is not open).
    pub fn end(&self, id: WindowId) -> Option<JobReport> {
        Self::finish(&mut self.inner.lock(), id)
    }

    /// Marks an open window interrupted: its reports from now on — running,
    /// then finished — carry `reason` in [`JobReport::interrupted`] (an
    /// exception's type name such as `KeyboardInterrupt`, or `dropped`).
    /// The first mark stands: a window is interrupted once, by the first
    /// thing that cut it short. Returns false when the window is not open.
    pub fn mark_interrupted(&self, id: WindowId, reason: &str) -> bool {
        match self.inner.lock().open.get_mut(&id) {
            Some(w) => {
                w.interrupted.get_or_insert_with(|| reason.to_owned());
                true
            }
            None => false,
        }
    }

    /// [`mark_interrupted`](Self::mark_interrupted) and [`end`](Self::end)
    /// at once: no [`reports`](Self::reports) call sees the window in
    /// between. `None` if the window is not open.
    pub fn end_interrupted(&self, id: WindowId, reason: &str) -> Option<JobReport> {
        let mut inner = self.inner.lock();
        let window = inner.open.get_mut(&id)?;
        window.interrupted.get_or_insert_with(|| reason.to_owned());
        Self::finish(&mut inner, id)
    }

    /// Moves window `id` from the open ones to the finished ones kept.
    fn finish(inner: &mut Inner, id: WindowId) -> Option<JobReport> {
        let report = inner.open.remove(&id)?.report(id);
        if inner.finished.len() == FINISHED_KEPT {
            inner.finished.remove(0);
        }
        inner.finished.push(report.clone());
        Some(report)
    }

    /// Open windows by name, for lookups such as `end_window("epoch-3")`:
    /// the most recently opened one first.
    pub fn find_open(&self, name: &str) -> Option<WindowId> {
        self.inner
            .lock()
            .open
            .iter()
            .rev()
            .find(|(_, w)| w.name == name)
            .map(|(id, _)| *id)
    }

    /// Reports of every open window (so far) and the finished ones kept.
    pub fn reports(&self) -> Vec<(JobReport, bool)> {
        let inner = self.inner.lock();
        inner
            .finished
            .iter()
            .map(|r| (r.clone(), false))
            .chain(inner.open.iter().map(|(id, w)| (w.report(*id), true)))
            .collect()
    }
}

/// Maps a `CUDA_VISIBLE_DEVICES` value to GPU UUIDs in CUDA order, by the
/// one device grammar ([`crate::devices`]).
///
/// `gpus` lists the host's GPUs as `(NVML index, UUID)` in NVML order (CUDA's
/// default order is by PCI bus, which NVML's index also follows on Linux).
/// Entries may be integers (NVML/CUDA index), `GPU-…` UUIDs, unique prefixes
/// of them, or `MIG-…` ids (kept as given: a MIG instance is its own device).
/// As CUDA does, parsing stops at the first invalid entry (e.g. `-1`, or
/// the empty one in `1,,2`), so `0,-1,1` means just GPU 0; an entry that is
/// well-formed but matches no GPU is an error, since it means the job's
/// report would silently cover the wrong devices.
pub fn resolve_visible_devices(value: &str, gpus: &[(u32, String)]) -> Result<Vec<String>> {
    let host = gpus
        .iter()
        .map(|(i, u)| HostGpu::new(*i, u.clone()))
        .collect();
    Ok(Visible::new(host, Some(value.to_owned()))?.cuda)
}

/// Job identity from the environment: Slurm (`SLURM_JOB_ID`,
/// `SLURM_STEP_ID`, `SLURM_PROCID`, …), torchrun (`RANK`, `LOCAL_RANK`,
/// `WORLD_SIZE`, `TORCHELASTIC_RUN_ID`) and Kubernetes (pod name and
/// namespace as set by the Downward API or the container's hostname).
/// `get` reads one variable (`std::env::var(..).ok()` in production).
pub fn identity_from_env(get: impl Fn(&str) -> Option<String>) -> BTreeMap<String, String> {
    const VARS: &[(&str, &str)] = &[
        ("SLURM_JOB_ID", "slurm_job_id"),
        ("SLURM_STEP_ID", "slurm_step_id"),
        ("SLURM_PROCID", "slurm_procid"),
        ("SLURM_JOB_NAME", "slurm_job_name"),
        ("SLURM_ARRAY_JOB_ID", "slurm_array_job_id"),
        ("SLURM_ARRAY_TASK_ID", "slurm_array_task_id"),
        ("RANK", "rank"),
        ("LOCAL_RANK", "local_rank"),
        ("WORLD_SIZE", "world_size"),
        ("TORCHELASTIC_RUN_ID", "torchelastic_run_id"),
        ("POD_NAME", "k8s_pod"),
        ("POD_NAMESPACE", "k8s_namespace"),
    ];
    let mut labels: BTreeMap<String, String> = VARS
        .iter()
        .filter_map(|(var, label)| {
            let v = get(var)?;
            let v = v.trim();
            (!v.is_empty()).then(|| ((*label).to_owned(), v.to_owned()))
        })
        .collect();
    // Inside a Kubernetes pod without the Downward API, the pod name is the hostname.
    if !labels.contains_key("k8s_pod")
        && get("KUBERNETES_SERVICE_HOST").is_some()
        && let Some(host) = get("HOSTNAME").filter(|h| !h.is_empty())
    {
        labels.insert("k8s_pod".to_owned(), host);
    }
    labels
}

/// Whether `name` can be a Prometheus label name (user labels that cannot
/// are rewritten by [`sanitize_label_name`]).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// `name` made into a valid label name: invalid characters become `_`, a
/// leading digit gets a `_` prefix, and leading underscores shrink to one
/// (names starting with `__`, such as `__name__`, are reserved to
/// Prometheus and would rewrite the series on ingestion).
pub fn sanitize_label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with("__") {
        out = format!("_{}", out.trim_start_matches('_'));
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Per-job series for a report list, used by the Python and C faces to
/// serve or push job usage:
///
/// * `algalon_job_info{job_id,name,<labels>} 1`
/// * `algalon_job_gpu_energy_joules_total{job_id,gpu,UUID,source}`
/// * `algalon_job_gpu_utilization_ratio`, `algalon_job_gpu_memory_peak_bytes`,
///   `algalon_job_gpu_power_mean_watts`, `algalon_job_duration_seconds`,
///   `algalon_job_running`.
/// * `algalon_job_interrupted{job_id} 0` for a job not interrupted,
///   `algalon_job_interrupted{job_id,exception} 1` with
///   [`JobReport::interrupted`] as `exception` for one that was.
pub fn encode_reports(reports: &[(JobReport, bool)], format: crate::Format) -> String {
    crate::encoder::encode_jobs(reports, format)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpus() -> Vec<(u32, String)> {
        vec![
            (0, "GPU-11111111-2222-3333-4444-555555555550".into()),
            (1, "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeee1".into()),
        ]
    }

    #[test]
    fn visible_devices_by_index_uuid_prefix_and_mig() {
        let g = gpus();
        assert_eq!(
            resolve_visible_devices("1,0", &g).expect("indices"),
            vec![g[1].1.clone(), g[0].1.clone()]
        );
        assert_eq!(
            resolve_visible_devices("GPU-aaaa", &g).expect("prefix"),
            vec![g[1].1.clone()]
        );
        assert_eq!(
            resolve_visible_devices(" aaaaaaaa ", &g).expect("bare prefix"),
            vec![g[1].1.clone()]
        );
        assert_eq!(
            resolve_visible_devices("MIG-0c7f0b3e-1111-5e2a-9c4b-000000000001", &g).expect("mig"),
            vec!["MIG-0c7f0b3e-1111-5e2a-9c4b-000000000001".to_owned()]
        );
        // All-digit entries are indices, as in CUDA.
        assert!(resolve_visible_devices("11111111", &g).is_err());
        // CUDA stops at the first invalid entry.
        assert_eq!(
            resolve_visible_devices("0,-1,1", &g).expect("stop"),
            vec![g[0].1.clone()]
        );
        assert_eq!(
            resolve_visible_devices("", &g).expect("none"),
            Vec::<String>::new()
        );
        assert_eq!(
            resolve_visible_devices("0,0", &g).expect("dup"),
            vec![g[0].1.clone()]
        );
    }

    #[test]
    fn visible_devices_that_match_nothing_are_errors() {
        let err = resolve_visible_devices("0,5", &gpus())
            .expect_err("no GPU 5")
            .to_string();
        assert!(err.contains("CUDA_VISIBLE_DEVICES entry \"5\""), "{err}");
        assert!(err.contains("1 (GPU-aaaaaaaa"), "{err}");
        let err = resolve_visible_devices("GPU-", &gpus())
            .expect_err("ambiguous")
            .to_string();
        assert!(err.contains("ambiguous"), "{err}");
    }

    #[test]
    fn identity_from_slurm_torchrun_and_kubernetes() {
        let env: BTreeMap<&str, &str> = [
            ("SLURM_JOB_ID", "4242"),
            ("SLURM_PROCID", "3"),
            ("RANK", "3"),
            ("LOCAL_RANK", "1"),
            ("WORLD_SIZE", "16"),
            ("TORCHELASTIC_RUN_ID", " "),
            ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
            ("HOSTNAME", "trainer-7f9c"),
        ]
        .into_iter()
        .collect();
        let labels = identity_from_env(|k| env.get(k).map(|v| (*v).to_owned()));
        let expect: BTreeMap<String, String> = [
            ("slurm_job_id", "4242"),
            ("slurm_procid", "3"),
            ("rank", "3"),
            ("local_rank", "1"),
            ("world_size", "16"),
            ("k8s_pod", "trainer-7f9c"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(labels, expect);
        assert!(identity_from_env(|_| None).is_empty());
    }

    #[test]
    fn label_names_are_sanitized() {
        assert!(is_valid_label_name("team"));
        assert!(!is_valid_label_name("1team"));
        assert!(!is_valid_label_name("__reserved"));
        assert_eq!(sanitize_label_name("my-label.x"), "my_label_x");
        assert_eq!(sanitize_label_name("9lives"), "_9lives");
        assert_eq!(sanitize_label_name(""), "_");
        assert_eq!(sanitize_label_name("__name__"), "_name__");
        assert_eq!(sanitize_label_name("__"), "_");
        assert_eq!(sanitize_label_name("_-9"), "_9");
        for name in ["__name__", "__", "___x", "--", "_-9", "é", "9", "a-b", ""] {
            let sane = sanitize_label_name(name);
            assert!(is_valid_label_name(&sane), "{name:?} became {sane:?}");
        }
    }
}
