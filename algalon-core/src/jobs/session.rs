//! [`JobSession`]: the job model every face wraps — a sampler (foreground or
//! background) feeding a [`JobTracker`], the process's CUDA view of the
//! GPUs, boundary samples at a job's begin and end, the job's own process
//! tree, and name and label rules. The Python `Monitor` and the C
//! `algalon_sampler`/`algalon_job` are thin layers over it, so the same run
//! gives the same [`JobReport`] in both.
//!
//! Lock order, everywhere: the engine (read) → the process state → the
//! tracker's own lock.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use super::mig::{names_mig, parents, view, with_instances};
use super::{JobTracker, WindowSpec, identity_from_env};
use crate::devices::{CUDA_VISIBLE_DEVICES, Selector, Visible};
use crate::error::Result;
use crate::labels::{is_reserved_label_name, is_valid_label_name};
use crate::proctree;
use crate::report::{JobId, JobReport, WindowId};
use crate::snapshot::Snapshot;
use crate::{BackgroundSampler, Sampler, SamplerOptions};

/// How often the process tree of the job is re-read from `/proc`.
const PID_REFRESH: Duration = Duration::from_secs(1);

/// Why a job could not be started or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// A name or label the job rules refuse; the text says which and why.
    #[error("{0}")]
    Invalid(String),
    /// The session was closed: no sampler feeds new jobs.
    #[error("the job session is closed")]
    Closed,
    /// The window is not open (ended, dropped, or never begun here).
    #[error("window {0} is not open")]
    NotOpen(u64),
}

/// A job's name: anything but blank.
pub fn check_job_name(name: &str) -> std::result::Result<(), JobError> {
    if name.trim().is_empty() {
        return Err(JobError::Invalid("a job needs a non-empty name".to_owned()));
    }
    Ok(())
}

/// Units `count` accepts: plural nouns, so that `sample` and `samples`
/// cannot silently become two counts.
pub const COUNT_NAMES: &[&str] = &[
    "samples",
    "tokens",
    "steps",
    "batches",
    "epochs",
    "sequences",
    "images",
    "requests",
];

/// A progress count's name: one of [`COUNT_NAMES`]. The error lists them
/// and suggests the one meant when it is a near miss (`sample`, `Tokens`).
pub fn check_count_name(name: &str) -> std::result::Result<(), JobError> {
    if COUNT_NAMES.contains(&name) {
        return Ok(());
    }
    let folded = name.trim().to_lowercase();
    let meant = COUNT_NAMES
        .iter()
        .find(|c| **c == folded || c.strip_suffix('s') == Some(folded.as_str()));
    let hint = meant.map_or_else(String::new, |c| format!(" (did you mean {c:?}?)"));
    Err(JobError::Invalid(format!(
        "unknown count {name:?}{hint}: count one of {}",
        COUNT_NAMES.join(", ")
    )))
}

/// A user label's name: a Prometheus label name, not one Algalon or the
/// scraper sets ([`RESERVED_LABELS`](crate::labels::RESERVED_LABELS)).
pub fn check_label_name(name: &str) -> std::result::Result<(), JobError> {
    if !is_valid_label_name(name) {
        return Err(JobError::Invalid(format!(
            "label name {name:?} is not a valid Prometheus label name: use letters, digits and _, not starting with a digit or __"
        )));
    }
    if is_reserved_label_name(name) {
        return Err(JobError::Invalid(format!(
            "label name {name:?} is reserved (Algalon or the scraper sets it); choose another name"
        )));
    }
    Ok(())
}

/// Which GPUs a session's jobs measure.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum GpuChoice {
    /// Every device the process can see (`CUDA_VISIBLE_DEVICES` applied):
    /// whole GPUs, and MIG devices its `MIG-…` entries name (measured as
    /// instances of their parent GPU); the sampler reads only those GPUs. None left is an error. Under torchrun
    /// ([`SessionOptions::local_rank`] set) and with more than one GPU
    /// visible, only `cuda:LOCAL_RANK`, the GPU a rank uses by torchrun's
    /// convention: every rank measuring every GPU would count each GPU once
    /// per rank when ranks are summed.
    #[default]
    Visible,
    /// These, resolved in the process's view ([`Visible::select`]); the
    /// sampler reads only those.
    Selected(Vec<Selector>),
    /// The GPUs the sampler reads ([`SamplerOptions::devices`]) that the
    /// process can see; possibly none (the sampler still serves snapshots).
    Sampled,
}

/// How a [`JobSession`] samples and what its jobs cover.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// The sampler's options (devices are chosen by `gpus` unless it is
    /// [`GpuChoice::Sampled`]).
    pub sampler: SamplerOptions,
    /// A background thread samples every `interval`; `None`: only
    /// [`JobSession::sample`] and the boundary samples read NVML.
    pub interval: Option<Duration>,
    /// Which GPUs jobs measure.
    pub gpus: GpuChoice,
    /// The value of `CUDA_VISIBLE_DEVICES` to apply (`None`: unset, every
    /// GPU); [`SessionOptions::new`] reads it from the environment.
    pub visible_devices: Option<String>,
    /// Where `/proc` is, for the job's own process tree.
    pub proc_root: PathBuf,
    /// torchrun's `LOCAL_RANK` (`None`: unset or not a number);
    /// [`SessionOptions::new`] reads it from the environment. Used by
    /// [`GpuChoice::Visible`].
    pub local_rank: Option<u32>,
}

impl SessionOptions {
    /// Foreground sampling of every visible GPU, `CUDA_VISIBLE_DEVICES` from
    /// the environment.
    pub fn new(sampler: SamplerOptions) -> SessionOptions {
        SessionOptions {
            sampler,
            interval: None,
            gpus: GpuChoice::Visible,
            visible_devices: std::env::var(CUDA_VISIBLE_DEVICES).ok(),
            proc_root: PathBuf::from("/proc"),
            local_rank: std::env::var("LOCAL_RANK")
                .ok()
                .and_then(|v| v.trim().parse().ok()),
        }
    }
}

/// What a new job is.
#[derive(Debug, Clone, Default)]
pub struct JobSpec {
    /// The job's name (not blank).
    pub name: String,
    /// The user's labels (checked by [`check_label_name`]); the session adds
    /// the environment's identity (Slurm, torchrun, Kubernetes) beneath them.
    pub labels: BTreeMap<String, String>,
    /// Processes outside this process's tree whose GPU memory counts as the
    /// job's own.
    pub pids: Vec<u32>,
}

enum Engine {
    /// No thread: samples are taken by the callers.
    Foreground {
        /// Boxed: a `Sampler` is large and the enum otherwise small.
        sampler: Box<Mutex<Sampler>>,
        latest: Mutex<Option<Arc<Snapshot>>>,
    },
    /// A thread samples every interval; callers may sample in between.
    Background(BackgroundSampler),
    /// No GPU to read ([`JobSession::without_gpus`]): samples carry the
    /// time only, so jobs measure wall time.
    Clock {
        hostname: String,
        /// Sequence number of the last sample, and the sample.
        latest: Mutex<(u64, Option<Arc<Snapshot>>)>,
    },
}

/// The job's own processes: this process's tree (re-read at most every
/// [`PID_REFRESH`]) plus each window's extra PIDs.
#[derive(Debug)]
struct Procs {
    root: PathBuf,
    owner: u32,
    /// Whether per-process memory is read at all.
    enabled: bool,
    state: Mutex<ProcState>,
}

#[derive(Debug, Default)]
struct ProcState {
    extra: BTreeMap<WindowId, Vec<u32>>,
    tree: Vec<u32>,
    tree_at: Option<Instant>,
}

fn union(a: &[u32], b: &[u32]) -> Vec<u32> {
    let set: BTreeSet<u32> = a.iter().chain(b).copied().collect();
    set.into_iter().collect()
}

impl Procs {
    fn stale(state: &ProcState) -> bool {
        state.tree_at.is_none_or(|t| t.elapsed() >= PID_REFRESH)
    }

    /// Before each snapshot reaches the tracker: a fresh tree for the open
    /// windows when the last one is old. `/proc` is read without the lock,
    /// so a job starting meanwhile does not wait.
    fn refresh(&self, tracker: &JobTracker) {
        if !self.enabled {
            return;
        }
        let stale = {
            let s = self.state.lock();
            !s.extra.is_empty() && Self::stale(&s)
        };
        if !stale {
            return;
        }
        let tree = proctree::descendants(&self.root, self.owner);
        let mut s = self.state.lock();
        for (id, extra) in &s.extra {
            tracker.set_pids(*id, union(&tree, extra));
        }
        s.tree = tree;
        s.tree_at = Some(Instant::now());
    }

    /// The tree now: the sampler thread's copy when recent, else read.
    fn tree(&self) -> Vec<u32> {
        {
            let s = self.state.lock();
            if !Self::stale(&s) {
                return s.tree.clone();
            }
        }
        let tree = proctree::descendants(&self.root, self.owner);
        let mut s = self.state.lock();
        s.tree.clone_from(&tree);
        s.tree_at = Some(Instant::now());
        tree
    }
}

fn observe(snap: &Snapshot, procs: &Procs, tracker: &JobTracker) {
    procs.refresh(tracker);
    tracker.observe(snap);
}

/// A sampler, a job tracker and the process's view of the GPUs: the job
/// model of every face. Share it (`Arc<JobSession>`): every method takes
/// `&self` and may be called from any thread.
pub struct JobSession {
    engine: RwLock<Option<Engine>>,
    tracker: Arc<JobTracker>,
    procs: Arc<Procs>,
    visible: Visible,
    measured: Vec<String>,
    cuda: BTreeMap<String, u32>,
    hostname: String,
    library: String,
    interval: Option<Duration>,
    /// Why no GPU is measured, for a session made by
    /// [`without_gpus`](JobSession::without_gpus).
    no_gpu: Option<String>,
}

impl std::fmt::Debug for JobSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobSession")
            .field("measured", &self.measured)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl JobSession {
    /// Opens NVML, resolves the process's view of the GPUs and starts
    /// sampling. Fails as [`Sampler::new`] does, with
    /// [`Error::NoSuchDevice`](crate::Error::NoSuchDevice) when
    /// `CUDA_VISIBLE_DEVICES` or a selector names no GPU (or nothing is left
    /// to measure under [`GpuChoice::Visible`] / [`GpuChoice::Selected`]),
    /// and with [`Error::Thread`](crate::Error::Thread) when the sampling
    /// thread cannot start.
    pub fn new(opts: SessionOptions) -> Result<JobSession> {
        let chosen = match &opts.gpus {
            GpuChoice::Selected(list) => list.as_slice(),
            _ => &[],
        };
        let mig = names_mig(opts.visible_devices.as_deref(), chosen);
        let base = if mig {
            with_instances(opts.sampler.clone())
        } else {
            opts.sampler.clone()
        };
        let all_devices = SamplerOptions {
            devices: None,
            ..base.clone()
        };
        let (sampler, snap, visible, measured) = match &opts.gpus {
            GpuChoice::Visible | GpuChoice::Selected(_) => {
                let mut probe = Sampler::new(all_devices)?;
                let snap = probe.sample();
                let visible = view(&snap, mig, opts.visible_devices.clone())?;
                let rank_gpu;
                let selectors = match &opts.gpus {
                    GpuChoice::Selected(list) => Some(list.as_slice()),
                    _ => match opts.local_rank {
                        Some(rank)
                            if visible.cuda.len() > 1 && (rank as usize) < visible.cuda.len() =>
                        {
                            rank_gpu = [Selector::Cuda(rank)];
                            Some(rank_gpu.as_slice())
                        }
                        _ => None,
                    },
                };
                let measured = visible.measured(selectors)?;
                let gpus = parents(&visible, &measured);
                let sampler = if gpus.len() == snap.gpus.len() {
                    probe
                } else {
                    // Opened before the probe closes, so NVML is not torn
                    // down and set up again in between.
                    let chosen = Sampler::new(SamplerOptions {
                        devices: Some(gpus),
                        ..base.clone()
                    })?;
                    drop(probe);
                    chosen
                };
                (sampler, snap, visible, measured)
            }
            GpuChoice::Sampled => {
                let mut sampler = Sampler::new(base.clone())?;
                // CUDA numbers every GPU of the host: a sampler that reads
                // some of them cannot say which index each has.
                let snap = if opts.sampler.devices.is_some() {
                    Sampler::new(all_devices)?.sample()
                } else {
                    sampler.sample()
                };
                let visible = view(&snap, mig, opts.visible_devices.clone())?;
                let sampled: Vec<u32> = sampler.gpu_indices();
                let measured: Vec<String> = visible
                    .measurable()
                    .into_iter()
                    .filter(|u| {
                        visible
                            .gpu_of(u)
                            .and_then(|g| visible.nvml_index(&g))
                            .is_some_and(|i| sampled.contains(&i))
                    })
                    .collect();
                (sampler, snap, visible, measured)
            }
        };
        let cuda = measured
            .iter()
            .filter_map(|u| Some((u.clone(), visible.cuda_index(u)?)))
            .collect();
        let tracker = Arc::new(JobTracker::new());
        let procs = Arc::new(Procs {
            root: opts.proc_root.clone(),
            owner: std::process::id(),
            enabled: opts.sampler.processes,
            state: Mutex::new(ProcState::default()),
        });
        let library = sampler.library().to_owned();
        let engine = match opts.interval {
            None => Engine::Foreground {
                sampler: Box::new(Mutex::new(sampler)),
                latest: Mutex::new(None),
            },
            Some(interval) => {
                let (t, p) = (Arc::clone(&tracker), Arc::clone(&procs));
                Engine::Background(BackgroundSampler::spawn(sampler, interval, move |snap| {
                    observe(snap, &p, &t);
                })?)
            }
        };
        Ok(JobSession {
            engine: RwLock::new(Some(engine)),
            tracker,
            procs,
            visible,
            measured,
            cuda,
            hostname: snap.hostname.clone(),
            library,
            interval: opts.interval,
            no_gpu: None,
        })
    }

    /// A session that measures no GPU, for machines without a driver or
    /// GPU: jobs record wall time (samples carry the time only, taken at
    /// each job's start and end), and every report says why no GPU was
    /// measured (`reason`, in [`JobReport::notes`]).
    pub fn without_gpus(reason: &str, visible_devices: Option<String>) -> JobSession {
        let hostname = gethostname::gethostname().to_string_lossy().into_owned();
        JobSession {
            engine: RwLock::new(Some(Engine::Clock {
                hostname: hostname.clone(),
                latest: Mutex::new((0, None)),
            })),
            tracker: Arc::new(JobTracker::new()),
            procs: Arc::new(Procs {
                root: PathBuf::from("/proc"),
                owner: std::process::id(),
                enabled: false,
                state: Mutex::new(ProcState::default()),
            }),
            visible: Visible {
                all: Vec::new(),
                cuda: Vec::new(),
                env: visible_devices,
                ignored: None,
                instances: Vec::new(),
            },
            measured: Vec::new(),
            cuda: BTreeMap::new(),
            hostname,
            library: String::new(),
            interval: None,
            no_gpu: Some(format!(
                "no GPU was measured ({reason}): the report has the job's wall time only"
            )),
        }
    }

    /// Why no GPU is measured, for a session made by
    /// [`without_gpus`](Self::without_gpus).
    pub fn no_gpu(&self) -> Option<&str> {
        self.no_gpu.as_deref()
    }

    fn sample_with(&self, engine: &Engine) -> Arc<Snapshot> {
        match engine {
            Engine::Foreground { sampler, latest } => {
                // Held across observe so that jobs see snapshots in the
                // order they were taken (a window ignores an older one).
                let mut sampler = sampler.lock();
                let snap = Arc::new(sampler.sample());
                observe(&snap, &self.procs, &self.tracker);
                *latest.lock() = Some(Arc::clone(&snap));
                snap
            }
            // The background sampler's callback feeds the jobs.
            Engine::Background(bg) => bg.sample_now(),
            Engine::Clock { hostname, latest } => {
                let mut latest = latest.lock();
                latest.0 += 1;
                let snap = Arc::new(Snapshot {
                    hostname: hostname.clone(),
                    driver_version: None,
                    nvml_version: None,
                    cuda_driver_version: None,
                    taken_at: std::time::SystemTime::now(),
                    duration: Duration::ZERO,
                    seq: latest.0,
                    gpus: Vec::new(),
                    errors: Vec::new(),
                });
                self.tracker.observe(&snap);
                latest.1 = Some(Arc::clone(&snap));
                snap
            }
        }
    }

    /// Reads every sampled GPU now, on the calling thread, and feeds the
    /// snapshot to the open jobs. `None` once closed.
    pub fn sample(&self) -> Option<Arc<Snapshot>> {
        let engine = self.engine.read();
        engine.as_ref().map(|e| self.sample_with(e))
    }

    /// The latest snapshot: the background thread's, or the last
    /// [`sample`](Self::sample) (a new one when there was none). `None` once
    /// closed.
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        let engine = self.engine.read();
        match engine.as_ref()? {
            Engine::Background(bg) => Some(bg.latest()),
            e @ Engine::Foreground { latest, .. } => {
                let last = latest.lock().clone();
                Some(last.unwrap_or_else(|| self.sample_with(e)))
            }
            e @ Engine::Clock { latest, .. } => {
                let last = latest.lock().1.clone();
                Some(last.unwrap_or_else(|| self.sample_with(e)))
            }
        }
    }

    /// Starts a job over the measured GPUs: checks its name and labels,
    /// records this process's tree (and `spec.pids`) as its own processes,
    /// and takes the opening boundary sample now.
    pub fn begin(&self, spec: JobSpec) -> std::result::Result<WindowId, JobError> {
        check_job_name(&spec.name)?;
        for key in spec.labels.keys() {
            check_label_name(key)?;
        }
        let mut labels = identity_from_env(|k| std::env::var(k).ok());
        labels.extend(spec.labels);
        let engine = self.engine.read();
        let Some(engine) = engine.as_ref() else {
            return Err(JobError::Closed);
        };
        let pids = self
            .procs
            .enabled
            .then(|| union(&self.procs.tree(), &spec.pids));
        let mut state = self.procs.state.lock();
        let id = self.tracker.begin(WindowSpec {
            name: spec.name,
            labels,
            gpus: Some(self.measured.clone()),
            pids,
            cuda_indices: self.cuda.clone(),
            interval: self.interval,
            notes: self.no_gpu.iter().cloned().collect(),
        });
        state.extra.insert(id, spec.pids);
        drop(state);
        // The boundary sample: the window starts now, not at the next tick.
        self.sample_with(engine);
        Ok(id)
    }

    /// Ends a job with a closing boundary sample (none after
    /// [`close`](Self::close): the report stops at the last sample);
    /// `interrupted` names what cut it short, if anything.
    pub fn end(&self, id: WindowId, interrupted: Option<&str>) -> Option<JobReport> {
        let engine = self.engine.read();
        if let Some(e) = engine.as_ref() {
            self.sample_with(e);
        }
        let tracked = self.procs.state.lock().extra.remove(&id).is_some();
        // Marked as it ends, in one step: no reader sees it finished and
        // not interrupted.
        match interrupted {
            Some(why) if tracked => self.tracker.end_interrupted(id, why),
            _ => self.tracker.end(id),
        }
    }

    /// Ends a job without a closing sample (its handle was dropped while it
    /// ran); with a `reason`, it is marked interrupted by it.
    pub fn abandon(&self, id: WindowId, reason: Option<&str>) -> Option<JobReport> {
        let tracked = self.procs.state.lock().extra.remove(&id).is_some();
        match reason {
            Some(why) if tracked => self.tracker.end_interrupted(id, why),
            _ => self.tracker.end(id),
        }
    }

    /// The report so far of an open job.
    pub fn peek(&self, id: WindowId) -> Option<JobReport> {
        self.tracker.peek(id)
    }

    /// Adds `n` to a progress count of an open job; `what` is one of
    /// [`COUNT_NAMES`].
    pub fn count(&self, id: WindowId, what: &str, n: f64) -> std::result::Result<(), JobError> {
        check_count_name(what)?;
        if self.tracker.count(id, what, n) {
            Ok(())
        } else {
            Err(JobError::NotOpen(id.0))
        }
    }

    /// The globally unique id of an open job (its `job_id` label).
    pub fn job_id(&self, id: WindowId) -> Option<JobId> {
        self.tracker.job_id(id)
    }

    /// Counts `pids`' GPU memory as the job's own from the next sample on.
    pub fn add_pids(&self, id: WindowId, pids: &[u32]) -> std::result::Result<(), JobError> {
        let mut s = self.procs.state.lock();
        let Some(extra) = s.extra.get_mut(&id) else {
            return Err(JobError::NotOpen(id.0));
        };
        extra.extend_from_slice(pids);
        let all = union(&s.tree, &s.extra[&id]);
        if self.procs.enabled {
            self.tracker.set_pids(id, all);
        }
        Ok(())
    }

    /// Reports of the finished jobs kept and of the open ones so far.
    pub fn reports(&self) -> Vec<JobReport> {
        self.tracker.reports().into_iter().map(|(r, _)| r).collect()
    }

    /// The tracker (for serving or encoding the job series).
    pub fn tracker(&self) -> &Arc<JobTracker> {
        &self.tracker
    }

    /// The process's view of the host's GPUs.
    pub fn visible(&self) -> &Visible {
        &self.visible
    }

    /// UUIDs the jobs measure, CUDA order first.
    pub fn measured(&self) -> &[String] {
        &self.measured
    }

    /// Host name of the snapshots.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// The NVML library in use.
    pub fn library(&self) -> &str {
        &self.library
    }

    /// The background interval, if there is a thread.
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.engine.read().is_none()
    }

    /// Stops sampling (waits up to `wait` for a sample in flight, such as a
    /// hung NVML call). Open jobs can still be ended; their reports stop at
    /// the last sample. Idempotent.
    pub fn close(&self, wait: Duration) {
        let engine = self.engine.write().take();
        if let Some(Engine::Background(bg)) = engine {
            bg.stop_timeout(wait);
        }
    }
}

impl Drop for JobSession {
    fn drop(&mut self) {
        if std::process::id() != self.procs.owner {
            // A forked child: the sampler thread does not exist here, its
            // join handle would wait forever and its locks may be held by
            // threads that do not exist. Leak it; the parent owns the real one.
            if let Some(engine) = self.engine.get_mut().take() {
                std::mem::forget(engine);
            }
        }
        // Otherwise the BackgroundSampler's own Drop stops its thread.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::RESERVED_LABELS;

    #[test]
    fn names_and_labels_follow_the_rules() {
        assert!(check_job_name(" ").is_err());
        assert!(check_job_name("train").is_ok());
        assert!(check_label_name("team").is_ok());
        for bad in ["1team", "__x", "a-b"] {
            let err = check_label_name(bad).expect_err(bad).to_string();
            assert!(err.contains("not a valid Prometheus label name"), "{err}");
        }
        for reserved in RESERVED_LABELS {
            let err = check_label_name(reserved).expect_err(reserved).to_string();
            assert!(err.contains("is reserved"), "{err}");
        }
    }

    #[test]
    fn count_names_are_known_units() {
        for ok in COUNT_NAMES {
            assert!(check_count_name(ok).is_ok());
        }
        let err = check_count_name("sample")
            .expect_err("singular")
            .to_string();
        assert!(err.contains("did you mean \"samples\""), "{err}");
        assert!(err.contains("samples, tokens, steps"), "{err}");
        let err = check_count_name("Tokens").expect_err("case").to_string();
        assert!(err.contains("did you mean \"tokens\""), "{err}");
        let err = check_count_name("bananas")
            .expect_err("unknown")
            .to_string();
        assert!(
            !err.contains("did you mean") && err.contains("count one of"),
            "{err}"
        );
        assert!(check_count_name("").is_err());
    }

    #[test]
    fn a_session_without_gpus_measures_wall_time_and_says_why() {
        let session = JobSession::without_gpus("NVML not found", None);
        let id = session
            .begin(JobSpec {
                name: "laptop".into(),
                ..JobSpec::default()
            })
            .expect("begins");
        std::thread::sleep(Duration::from_millis(60));
        let report = session.end(id, None).expect("open");
        assert!(report.duration_s >= 0.05, "{}", report.duration_s);
        assert!(report.gpus.is_empty() && report.energy_j.is_none());
        assert_eq!(
            report.notes,
            ["no GPU was measured (NVML not found): the report has the job's wall time only"]
        );
        assert!(session.latest().expect("open").gpus.is_empty());
        session.close(Duration::ZERO);
        assert!(session.latest().is_none());
    }

    #[test]
    fn union_sorts_and_dedupes() {
        assert_eq!(union(&[3, 1], &[1, 2]), vec![1, 2, 3]);
    }
}
