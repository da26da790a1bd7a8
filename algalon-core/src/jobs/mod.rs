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

mod mig;
mod session;
mod window;

use std::collections::BTreeMap;

use parking_lot::Mutex;

use crate::devices::{HostGpu, Visible};
use crate::error::Result;
pub use crate::report::{
    EnergyScope, EnergySource, GpuReport, JobId, JobReport, MigReport, WindowId,
};
use crate::snapshot::Snapshot;
pub use session::{
    COUNT_NAMES, GpuChoice, JobError, JobSession, JobSpec, SessionOptions, check_count_name,
    check_job_name, check_label_name,
};
use window::Window;

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
    /// UUID → CUDA index in the measuring process, for the report's
    /// `cuda_index` (empty outside a [`JobSession`]).
    pub cuda_indices: BTreeMap<String, u32>,
    /// The interval samples should keep; a sample that takes longer is
    /// noted in the report ([`JobReport::notes`]). `None`: not checked.
    pub interval: Option<std::time::Duration>,
    /// Caveats on the whole report, known at the start (e.g. that no GPU
    /// is measured).
    pub notes: Vec<String>,
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

    /// Opens a window with a new random [`JobId`]; it sees every snapshot
    /// observed from now on.
    pub fn begin(&self, spec: WindowSpec) -> WindowId {
        let mut inner = self.inner.lock();
        inner.next += 1;
        let id = WindowId(inner.next);
        inner.open.insert(
            id,
            Window {
                job_id: JobId::random(),
                name: spec.name,
                labels: spec.labels,
                gpus: spec.gpus.map(|g| g.into_iter().collect()),
                pids: spec.pids.map(|p| p.into_iter().collect()),
                first_at: None,
                last_at: None,
                accs: BTreeMap::new(),
                counts: BTreeMap::new(),
                interrupted: None,
                hostname: String::new(),
                cuda: spec.cuda_indices,
                interval: spec.interval,
                slowest: None,
                notes: spec.notes,
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
        self.inner.lock().open.get(&id).map(|w| w.report(true))
    }

    /// The globally unique id of an open window's job.
    pub fn job_id(&self, id: WindowId) -> Option<JobId> {
        self.inner.lock().open.get(&id).map(|w| w.job_id.clone())
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
        let report = inner.open.remove(&id)?.report(false);
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
            .chain(inner.open.values().map(|w| (w.report(true), true)))
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

/// Identity labels every job series carries besides `job_id` and
/// `job_name` (when the job has them), so that series of runs, ranks and
/// steps can be grouped without a join on `algalon_job_info`. Each is fixed
/// for a job, so they add no series: `job_id` alone is unique. Other labels
/// (the user's, `world_size`, `slurm_job_name`) stay on `algalon_job_info`.
pub const SERIES_IDENTITY_LABELS: &[&str] = &[
    "slurm_job_id",
    "slurm_step_id",
    "slurm_procid",
    "slurm_array_job_id",
    "slurm_array_task_id",
    "torchelastic_run_id",
    "rank",
    "local_rank",
    "k8s_namespace",
    "k8s_pod",
];

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

pub use crate::labels::{is_valid_label_name, sanitize_label_name};

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
}
