//! `Monitor` and `Job`: a background sampler feeding a job tracker.
//!
//! The sampler thread is pure Rust and never takes the GIL; its callback
//! feeds every snapshot to the open windows, keeps their process set (this
//! process and its children) current and notes GPUs that go down. `Monitor`
//! methods that wait on NVML (start, the boundary samples of a job, close)
//! detach from the interpreter while they wait.
//!
//! Lock order, everywhere: `sampler` (read) → `windows` → the tracker's own
//! lock. `named` and a job's `state` are never held across a sample.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use algalon_core::jobs::{
    JobTracker, WindowId, WindowSpec, identity_from_env, is_valid_label_name,
};
use algalon_core::{BackgroundSampler, Error, Sampler, Snapshot};
use parking_lot::{Mutex, RwLock};
use pyo3::exceptions::{PyOSError, PyUserWarning, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use algalon_core::devices::Visible;

use crate::devices::{self, Gpu, GpuSelectors};
use crate::errors::{AlgalonError, ConfigError, py_err};
use crate::proctree;
use crate::report::{Extras, Report};
use crate::server::ServerHandle;

/// How often the sampler thread re-reads the job's process tree.
const PID_REFRESH: Duration = Duration::from_secs(1);
/// Longest sampling interval `Monitor()` takes, s (a day).
const MAX_INTERVAL_S: f64 = 86_400.0;
/// How long `close()` waits for an in-flight sample (a hung NVML call).
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// The `error` of a job whose `Job` object was collected while it ran.
const DROPPED: &str = "dropped";
/// Label names the job series use themselves, or that scrapers own.
const RESERVED_LABELS: &[&str] = &["job_id", "job_name", "job", "instance", "Hostname"];

/// An open window as the sampler callback sees it.
#[derive(Debug, Default)]
struct OpenWindow {
    /// PIDs given with `pids=`, counted besides the process tree.
    extra_pids: Vec<u32>,
    /// UUID → why the GPU was down, first occurrence.
    down: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct Windows {
    open: BTreeMap<WindowId, OpenWindow>,
    /// This process and its descendants, as last read from `/proc`.
    tree: Vec<u32>,
    /// When `tree` was read (`None`: never).
    tree_at: Option<Instant>,
}

impl Windows {
    fn tree_is_stale(&self) -> bool {
        self.tree_at.is_none_or(|t| t.elapsed() >= PID_REFRESH)
    }
}

/// Everything a `Monitor` and its `Job`s share.
struct Inner {
    /// The process that started the sampler (see `check`).
    owner_pid: u32,
    proc_root: PathBuf,
    interval: Duration,
    library: String,
    hostname: String,
    visible: Visible,
    /// UUIDs sampled, CUDA order first.
    measured: Vec<String>,
    tracker: Arc<JobTracker>,
    windows: Arc<Mutex<Windows>>,
    /// `None` once closed.
    sampler: RwLock<Option<BackgroundSampler>>,
    servers: Mutex<Vec<Arc<ServerHandle>>>,
    /// `begin_window` names of open windows.
    named: Mutex<BTreeMap<String, Arc<JobCore>>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("interval", &self.interval)
            .field("gpus", &self.measured)
            .finish_non_exhaustive()
    }
}

fn union(a: Vec<u32>, b: &[u32]) -> Vec<u32> {
    let mut set: BTreeSet<u32> = a.into_iter().collect();
    set.extend(b.iter().copied());
    set.into_iter().collect()
}

fn on_sample(
    snap: &Snapshot,
    tracker: &JobTracker,
    windows: &Mutex<Windows>,
    owner_pid: u32,
    proc_root: &Path,
) {
    // Read /proc without holding the lock: a job starting meanwhile must not wait.
    let stale = {
        let w = windows.lock();
        !w.open.is_empty() && w.tree_is_stale()
    };
    let fresh_tree = stale.then(|| proctree::descendants(proc_root, owner_pid));
    {
        let mut w = windows.lock();
        if let Some(tree) = fresh_tree {
            w.tree = tree;
            w.tree_at = Some(Instant::now());
            for (id, window) in &w.open {
                tracker.set_pids(*id, union(w.tree.clone(), &window.extra_pids));
            }
        }
        for gpu in snap.gpus.iter().filter(|g| !g.up) {
            let why = gpu
                .down_reason
                .as_ref()
                .map_or_else(|| "GPU down".to_owned(), ToString::to_string);
            for window in w.open.values_mut() {
                window
                    .down
                    .entry(gpu.uuid.clone())
                    .or_insert_with(|| why.clone());
            }
        }
    }
    tracker.observe(snap);
}

impl Inner {
    /// Refuses use after `close()` or from a forked child. After `fork()`
    /// the child has no sampler thread and its locks may be held by threads
    /// that do not exist there, so nothing of this Monitor can be trusted:
    /// the child gets a clear error and can create a fresh Monitor.
    fn check(&self) -> PyResult<()> {
        if std::process::id() != self.owner_pid {
            return Err(AlgalonError::new_err(format!(
                "this Monitor was started in process {} and cannot be used after fork() (this is process {}); create a new algalon.Monitor() in the child",
                self.owner_pid,
                std::process::id()
            )));
        }
        Ok(())
    }

    fn closed_error() -> PyErr {
        AlgalonError::new_err("this Monitor is closed; create a new algalon.Monitor()")
    }

    fn extras(&self, running: bool, down: BTreeMap<String, String>) -> Extras {
        Extras {
            cuda: self
                .measured
                .iter()
                .filter_map(|u| Some((u.clone(), self.visible.cuda_index(u)?)))
                .collect(),
            down,
            hostname: self.hostname.clone(),
            running,
        }
    }

    /// This process and its descendants: the sampler thread's copy when it
    /// is recent, else read now (a job starting after a quiet spell).
    fn process_tree(&self) -> Vec<u32> {
        {
            let w = self.windows.lock();
            if !w.tree_is_stale() {
                return w.tree.clone();
            }
        }
        let tree = proctree::descendants(&self.proc_root, self.owner_pid);
        let mut w = self.windows.lock();
        w.tree = tree.clone();
        w.tree_at = Some(Instant::now());
        tree
    }

    fn begin(&self, py: Python<'_>, job: &JobCore) -> PyResult<WindowId> {
        self.check()?;
        let mut labels = identity_from_env(|k| std::env::var(k).ok());
        labels.extend(job.user_labels.clone());
        py.detach(|| {
            let sampler = self.sampler.read();
            let Some(bg) = sampler.as_ref() else {
                return Err(Inner::closed_error());
            };
            let tree = self.process_tree();
            let id = self.tracker.begin(WindowSpec {
                name: job.name.clone(),
                labels,
                gpus: Some(self.measured.clone()),
                pids: Some(union(tree, &job.extra_pids)),
            });
            self.windows.lock().open.insert(
                id,
                OpenWindow {
                    extra_pids: job.extra_pids.clone(),
                    down: BTreeMap::new(),
                },
            );
            // The boundary sample: the window starts now, not at the next tick.
            bg.sample_now();
            Ok(id)
        })
    }

    /// Ends window `id`; `error` names the exception that left its `with`
    /// block, if one did.
    fn end(&self, py: Python<'_>, id: WindowId, error: Option<String>) -> PyResult<Report> {
        self.check()?;
        let (report, down) = py.detach(|| {
            let sampler = self.sampler.read();
            // The process set is at most PID_REFRESH old (the sampler thread
            // keeps it current): a job's end does not read /proc itself.
            // After close() there is no sampler: the report ends at the last sample.
            if let Some(bg) = sampler.as_ref() {
                bg.sample_now();
            }
            let window = self.windows.lock().open.remove(&id);
            // Marked as it ends, in one step: no scrape sees it finished
            // and not interrupted.
            let report = match (&window, &error) {
                (Some(_), Some(e)) => self.tracker.end_interrupted(id, e),
                _ => self.tracker.end(id),
            };
            (report, window.map(|w| w.down).unwrap_or_default())
        });
        let report =
            report.ok_or_else(|| PyValueError::new_err(format!("window {} is not open", id.0)))?;
        Ok(Report::new(report, self.extras(false, down)))
    }

    fn peek(&self, id: WindowId) -> Option<Report> {
        let down = self
            .windows
            .lock()
            .open
            .get(&id)
            .map(|w| w.down.clone())
            .unwrap_or_default();
        let report = self.tracker.peek(id)?;
        Some(Report::new(report, self.extras(true, down)))
    }

    /// Stops the sampler and the servers (idempotent).
    fn close(&self) {
        let sampler = self.sampler.write().take();
        if let Some(bg) = sampler {
            bg.stop_timeout(CLOSE_WAIT);
        }
        for server in self.servers.lock().drain(..) {
            server.stop();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if std::process::id() != self.owner_pid {
            // A forked child: the threads do not exist here, their join
            // handles would wait forever, their locks may be poisoned by the
            // fork. Leak them; the parent still owns the real ones.
            if let Some(bg) = self.sampler.get_mut().take() {
                std::mem::forget(bg);
            }
            for server in self.servers.get_mut().drain(..) {
                server.abandon();
            }
            return;
        }
        for server in self.servers.get_mut().drain(..) {
            server.stop();
        }
        // The BackgroundSampler's own Drop stops its thread.
    }
}

/// Checks and normalises user labels: Prometheus label names, values
/// str / int / float / bool.
fn user_labels(labels: Option<&Bound<'_, PyAny>>) -> PyResult<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let Some(labels) = labels.filter(|l| !l.is_none()) else {
        return Ok(out);
    };
    let items = labels.call_method0("items").map_err(|_| {
        PyValueError::new_err(
            "labels must be a mapping of label name to value, e.g. {\"team\": \"nlp\"}",
        )
    })?;
    for item in items.try_iter()? {
        let (key, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
        let Ok(key) = key.extract::<String>() else {
            return Err(PyValueError::new_err(format!(
                "label names must be str, not {}",
                key.get_type().name()?
            )));
        };
        if !is_valid_label_name(&key) {
            return Err(PyValueError::new_err(format!(
                "label name {key:?} is not a valid Prometheus label name: use letters, digits and _, not starting with a digit or __"
            )));
        }
        if RESERVED_LABELS.contains(&key.as_str()) {
            return Err(PyValueError::new_err(format!(
                "label name {key:?} is reserved (Algalon or the scraper sets it); choose another name"
            )));
        }
        let is_plain = value.is_instance_of::<pyo3::types::PyString>()
            || value.is_instance_of::<pyo3::types::PyInt>()
            || value.is_instance_of::<pyo3::types::PyFloat>();
        if !is_plain {
            return Err(PyValueError::new_err(format!(
                "label {key:?}: value must be str, int, float or bool, not {}",
                value.get_type().name()?
            )));
        }
        out.insert(key, value.str()?.extract::<String>()?);
    }
    Ok(out)
}

fn job_name(name: &str) -> PyResult<String> {
    if name.trim().is_empty() {
        return Err(PyValueError::new_err("a job needs a non-empty name"));
    }
    Ok(name.to_owned())
}

/// What a job is, independent of the Monitor (so that `Monitor` can keep
/// named windows without a reference cycle).
#[derive(Debug)]
struct JobCore {
    name: String,
    user_labels: BTreeMap<String, String>,
    extra_pids: Vec<u32>,
    state: Mutex<JobState>,
}

#[derive(Debug)]
enum JobState {
    Pending,
    Running(WindowId),
    Ended(Box<Report>),
}

/// Samples the GPUs this process uses in the background and measures jobs.
///
/// `Monitor(interval=0.1, gpus=None, nvml_lib=None)`: `gpus` are CUDA indices
/// (ints, into the devices `CUDA_VISIBLE_DEVICES` leaves this process) or
/// `GPU-` UUIDs / unique prefixes (str); `None` measures every GPU this
/// process can see. Raises `NvmlUnavailableError` (subclasses
/// `NvmlNotFoundError`, `NvmlInitError`) when NVML cannot be used and
/// `DeviceNotFoundError` when a GPU id matches no GPU.
///
/// After `fork()`, the child cannot use its copy of the Monitor (every
/// method raises `AlgalonError`); it can create a fresh Monitor.
#[pyclass(module = "algalon", frozen)]
#[derive(Debug)]
pub struct Monitor {
    inner: Arc<Inner>,
}

#[pymethods]
impl Monitor {
    #[new]
    #[pyo3(signature = (interval=0.1, gpus=None, nvml_lib=None))]
    fn new(
        py: Python<'_>,
        interval: f64,
        gpus: Option<GpuSelectors>,
        nvml_lib: Option<PathBuf>,
    ) -> PyResult<Monitor> {
        if !(interval.is_finite() && interval > 0.0) {
            return Err(ConfigError::new_err(format!(
                "invalid sampling interval {interval}: give seconds, e.g. 0.1"
            )));
        }
        // Far larger intervals overflow `Duration` or the sampler thread's clock.
        if interval > MAX_INTERVAL_S {
            return Err(ConfigError::new_err(format!(
                "invalid sampling interval {interval} s: give at most {MAX_INTERVAL_S} s (a day), e.g. 0.1"
            )));
        }
        let interval = Duration::from_secs_f64(interval);
        let owner_pid = std::process::id();
        let proc_root = PathBuf::from("/proc");
        let tracker = Arc::new(JobTracker::new());
        let windows = Arc::new(Mutex::new(Windows::default()));
        let (cb_tracker, cb_windows, cb_root) = (
            Arc::clone(&tracker),
            Arc::clone(&windows),
            proc_root.clone(),
        );
        let built = py.detach(move || -> Result<_, Error> {
            let (probe, _snap, visible) = devices::probe(nvml_lib.clone())?;
            let selectors = gpus
                .map(|g| {
                    g.0.iter()
                        .map(|s| s.to_core(&visible))
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?;
            let measured = visible.measured(selectors.as_deref())?;
            let everything = visible.all.len() == measured.len();
            let sampler = if everything {
                probe
            } else {
                // Opened before the probe closes, so NVML is not torn down
                // and set up again in between.
                let chosen =
                    Sampler::new(devices::sampler_options(nvml_lib, Some(measured.clone())))?;
                drop(probe);
                chosen
            };
            let library = sampler.library().to_owned();
            let bg = BackgroundSampler::spawn(sampler, interval, move |snap| {
                on_sample(snap, &cb_tracker, &cb_windows, owner_pid, &cb_root);
            })?;
            let hostname = bg.latest().hostname.clone();
            Ok((bg, visible, measured, library, hostname))
        });
        let (bg, visible, measured, library, hostname) = built.map_err(py_err)?;
        let mig = visible.mig();
        if !mig.is_empty() {
            let msg = format!(
                "CUDA_VISIBLE_DEVICES names MIG instances ({}); Algalon cannot yet map a MIG instance to its GPU, so they are not measured",
                mig.join(", ")
            );
            let msg = std::ffi::CString::new(msg).unwrap_or_default();
            PyErr::warn(py, &py.get_type::<PyUserWarning>(), &msg, 1)?;
        }
        if let (Some(env), Some(ignored)) = (&visible.env, &visible.ignored) {
            let msg =
                format!("CUDA_VISIBLE_DEVICES={env:?}: {ignored}; Algalon measures what CUDA uses");
            let msg = std::ffi::CString::new(msg).unwrap_or_default();
            PyErr::warn(py, &py.get_type::<PyUserWarning>(), &msg, 1)?;
        }
        Ok(Monitor {
            inner: Arc::new(Inner {
                owner_pid,
                proc_root,
                interval,
                library,
                hostname,
                visible,
                measured,
                tracker,
                windows,
                sampler: RwLock::new(Some(bg)),
                servers: Mutex::new(Vec::new()),
                named: Mutex::new(BTreeMap::new()),
            }),
        })
    }

    /// A job over this Monitor's GPUs, measured while inside `with`:
    /// `with mon.job("finetune", labels={"team": "nlp"}) as job: ...`.
    /// `pids` adds processes outside this process tree whose GPU memory
    /// counts as the job's.
    #[pyo3(signature = (name, labels=None, pids=None))]
    fn job(
        &self,
        name: &str,
        labels: Option<&Bound<'_, PyAny>>,
        pids: Option<Vec<u32>>,
    ) -> PyResult<Job> {
        self.inner.check()?;
        Ok(Job {
            monitor: Arc::clone(&self.inner),
            core: Arc::new(JobCore {
                name: job_name(name)?,
                user_labels: user_labels(labels)?,
                extra_pids: pids.unwrap_or_default(),
                state: Mutex::new(JobState::Pending),
            }),
        })
    }

    /// Opens a named window now (Zeus-style); `end_window(name)` closes it.
    /// Windows nest and overlap; two open windows cannot share a name.
    #[pyo3(signature = (name, labels=None, pids=None))]
    fn begin_window(
        &self,
        py: Python<'_>,
        name: &str,
        labels: Option<&Bound<'_, PyAny>>,
        pids: Option<Vec<u32>>,
    ) -> PyResult<Job> {
        let job = self.job(name, labels, pids)?;
        {
            let mut named = self.inner.named.lock();
            if named.contains_key(name) {
                return Err(PyValueError::new_err(format!(
                    "a window named {name:?} is already open; end it first or use another name"
                )));
            }
            named.insert(name.to_owned(), Arc::clone(&job.core));
        }
        if let Err(e) = job.start_window(py) {
            self.inner.named.lock().remove(name);
            return Err(e);
        }
        Ok(job)
    }

    /// Closes the window `begin_window(name)` opened and returns its report.
    fn end_window(&self, py: Python<'_>, name: &str) -> PyResult<Report> {
        self.inner.check()?;
        let core = self.inner.named.lock().remove(name);
        let Some(core) = core else {
            let open: Vec<String> = self
                .inner
                .named
                .lock()
                .keys()
                .map(|k| format!("{k:?}"))
                .collect();
            return Err(PyValueError::new_err(format!(
                "no open window named {name:?} (open: {})",
                if open.is_empty() {
                    "none".to_owned()
                } else {
                    open.join(", ")
                }
            )));
        };
        Job {
            monitor: Arc::clone(&self.inner),
            core,
        }
        .end_with(py, None)
    }

    /// Decorator measuring every call of a function as a job (sync or
    /// async): `@mon.track("evaluate")` or plain `@mon.track`. The wrapper's
    /// `last_report` holds the report of its latest call.
    #[pyo3(signature = (name=None, *, labels=None))]
    fn track<'py>(
        slf: &Bound<'py, Self>,
        name: Option<&Bound<'py, PyAny>>,
        labels: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        slf.get().inner.check()?;
        user_labels(labels)?;
        slf.py()
            .import("algalon._track")?
            .call_method1("track", (slf, name, labels))
    }

    /// Serves `/metrics` (this process's job series: `algalon_job_info`,
    /// energy, utilization, memory, duration) on `addr:port` from a
    /// background thread; `port=0` picks a free port (see `.port`).
    #[pyo3(signature = (port=9401, addr="127.0.0.1"))]
    fn serve(&self, py: Python<'_>, port: u16, addr: &str) -> PyResult<MetricsServer> {
        self.inner.check()?;
        if self.inner.sampler.read().is_none() {
            return Err(Inner::closed_error());
        }
        let tracker = Arc::clone(&self.inner.tracker);
        let handle = py
            .detach(|| ServerHandle::start(addr, port, tracker))
            .map_err(|e| {
                PyOSError::new_err(format!("cannot serve /metrics on {addr}:{port}: {e}"))
            })?;
        self.inner.servers.lock().push(Arc::clone(&handle));
        Ok(MetricsServer { handle })
    }

    /// Reports of the finished windows kept (the latest 256) and of the
    /// open ones so far.
    fn reports(&self) -> PyResult<Vec<Report>> {
        self.inner.check()?;
        Ok(self
            .inner
            .tracker
            .reports()
            .into_iter()
            .map(|(r, running)| Report::new(r, self.inner.extras(running, BTreeMap::new())))
            .collect())
    }

    /// The measured GPUs at the latest sample, in CUDA order.
    #[getter]
    fn gpus(&self) -> PyResult<Vec<Gpu>> {
        self.inner.check()?;
        let sampler = self.inner.sampler.read();
        let Some(bg) = sampler.as_ref() else {
            return Err(Inner::closed_error());
        };
        let snap = bg.latest();
        Ok(devices::gpus_in_cuda_order(
            &snap,
            &self.inner.visible,
            Some(&self.inner.measured),
        ))
    }

    /// Sampling interval, s.
    #[getter]
    fn interval(&self) -> f64 {
        self.inner.interval.as_secs_f64()
    }

    /// The NVML library in use.
    #[getter]
    fn library(&self) -> &str {
        &self.inner.library
    }

    /// Host name reported with the series.
    #[getter]
    fn hostname(&self) -> &str {
        &self.inner.hostname
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.sampler.read().is_none()
    }

    /// Stops sampling and serving. Open jobs can still be ended; their
    /// reports stop at the last sample. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.inner.check()?;
        py.detach(|| self.inner.close());
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let gpus: Vec<String> = self
            .inner
            .measured
            .iter()
            .map(|u| match self.inner.visible.cuda_index(u) {
                Some(i) => format!("cuda:{i}={u}"),
                None => u.clone(),
            })
            .collect();
        format!(
            "<Monitor {} every {:.3} s{}>",
            gpus.join(" "),
            self.inner.interval.as_secs_f64(),
            if self.closed() { ", closed" } else { "" }
        )
    }
}

/// A job or window of a `Monitor`. Use as a context manager
/// (`with mon.job(...) as job:`) or with `start()` / `end()`.
#[pyclass(module = "algalon", frozen)]
#[derive(Debug)]
pub struct Job {
    monitor: Arc<Inner>,
    core: Arc<JobCore>,
}

impl Job {
    fn start_window(&self, py: Python<'_>) -> PyResult<()> {
        {
            let state = self.core.state.lock();
            match &*state {
                JobState::Pending => {}
                JobState::Running(_) => {
                    return Err(PyValueError::new_err(format!(
                        "job {:?} is already running",
                        self.core.name
                    )));
                }
                JobState::Ended(_) => {
                    return Err(PyValueError::new_err(format!(
                        "job {:?} has ended; a job runs once — create another with mon.job()",
                        self.core.name
                    )));
                }
            }
        }
        let id = self.monitor.begin(py, &self.core)?;
        *self.core.state.lock() = JobState::Running(id);
        Ok(())
    }

    /// Ends the job; `error` names the exception that interrupted it.
    fn end_with(&self, py: Python<'_>, error: Option<String>) -> PyResult<Report> {
        let id = self.running_id()?;
        let report = self.monitor.end(py, id, error)?;
        *self.core.state.lock() = JobState::Ended(Box::new(report.clone()));
        self.monitor
            .named
            .lock()
            .retain(|_, core| !Arc::ptr_eq(core, &self.core));
        Ok(report)
    }

    fn running_id(&self) -> PyResult<WindowId> {
        match &*self.core.state.lock() {
            JobState::Running(id) => Ok(*id),
            JobState::Pending => Err(PyValueError::new_err(format!(
                "job {:?} has not started: use `with mon.job(...)` or job.start()",
                self.core.name
            ))),
            JobState::Ended(_) => Err(PyValueError::new_err(format!(
                "job {:?} has already ended",
                self.core.name
            ))),
        }
    }
}

impl Drop for Job {
    /// A running job whose last handle goes away (started without `with`
    /// and never ended, e.g. an exception between `start()` and `end()`)
    /// would otherwise stay open for the Monitor's whole life: fed every
    /// sample and served as running. Its window is closed here, without a
    /// boundary sample, and marked interrupted (`error` "dropped"). A window
    /// opened by `begin_window` is still held by its name until
    /// `end_window`, so it is not closed.
    fn drop(&mut self) {
        if Arc::strong_count(&self.core) > 1 || std::process::id() != self.monitor.owner_pid {
            return;
        }
        let id = match &*self.core.state.lock() {
            JobState::Running(id) => *id,
            JobState::Pending | JobState::Ended(_) => return,
        };
        if self.monitor.windows.lock().open.remove(&id).is_some() {
            self.monitor.tracker.end_interrupted(id, DROPPED);
        } else {
            self.monitor.tracker.end(id);
        }
    }
}

#[pymethods]
impl Job {
    /// Starts measuring (a boundary sample is taken now).
    fn start(slf: &Bound<'_, Self>) -> PyResult<Py<Self>> {
        slf.get().start_window(slf.py())?;
        Ok(slf.clone().unbind())
    }

    /// Stops measuring (a boundary sample is taken now) and returns the report.
    fn end(&self, py: Python<'_>) -> PyResult<Report> {
        self.end_with(py, None)
    }

    /// Adds progress for energy per unit: `job.count(samples=64, tokens=8192)`.
    #[pyo3(signature = (**counts))]
    fn count(&self, counts: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
        self.monitor.check()?;
        let id = self.running_id()?;
        let Some(counts) = counts else {
            return Ok(());
        };
        let mut parsed = Vec::with_capacity(counts.len());
        for (k, v) in counts.iter() {
            let unit: String = k.extract()?;
            let n: f64 = v.extract().map_err(|_| {
                PyValueError::new_err(format!(
                    "count {unit}: expected a number, got {}",
                    v.repr().map_or_else(|_| "?".into(), |r| r.to_string())
                ))
            })?;
            if !(n.is_finite() && n >= 0.0) {
                return Err(PyValueError::new_err(format!(
                    "count {unit}: {n} is not a non-negative number"
                )));
            }
            parsed.push((unit, n));
        }
        for (unit, n) in parsed {
            if !self.monitor.tracker.count(id, &unit, n) {
                return Err(PyValueError::new_err(format!(
                    "job {:?} is not running",
                    self.core.name
                )));
            }
        }
        Ok(())
    }

    /// The report: final once the job ended, the figures so far while it runs.
    #[getter]
    fn report(&self) -> PyResult<Report> {
        match &*self.core.state.lock() {
            JobState::Ended(r) => return Ok((**r).clone()),
            JobState::Pending => {
                return Err(PyValueError::new_err(format!(
                    "job {:?} has not started: use `with mon.job(...)` or job.start()",
                    self.core.name
                )));
            }
            JobState::Running(_) => {}
        }
        self.monitor.check()?;
        let id = self.running_id()?;
        self.monitor.peek(id).ok_or_else(|| {
            PyValueError::new_err(format!("job {:?} is not running", self.core.name))
        })
    }

    /// The job's name.
    #[getter]
    fn name(&self) -> &str {
        &self.core.name
    }

    /// The user's labels (the report adds the environment's identity).
    #[getter]
    fn labels(&self) -> BTreeMap<String, String> {
        self.core.user_labels.clone()
    }

    /// Whether the job is being measured now.
    #[getter]
    fn running(&self) -> bool {
        matches!(&*self.core.state.lock(), JobState::Running(_))
    }

    /// Window id (the `job_id` label), once started.
    #[getter]
    fn id(&self) -> Option<u64> {
        match &*self.core.state.lock() {
            JobState::Pending => None,
            JobState::Running(id) => Some(id.0),
            JobState::Ended(r) => Some(r.inner.id.0),
        }
    }

    fn __enter__(slf: &Bound<'_, Self>) -> PyResult<Py<Self>> {
        Job::start(slf)
    }

    /// Ends the job. When the block is left by an exception
    /// (`KeyboardInterrupt`, an error in the code), the report is still made
    /// — `job.report` after the block, served and pushed as usual — and is
    /// marked `interrupted`, with the exception's type as `error`.
    #[pyo3(signature = (exc_type=None, _exc=None, _tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let error = exc_type.filter(|t| !t.is_none()).map(exception_name);
        self.end_with(py, error)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let state = match &*self.core.state.lock() {
            JobState::Pending => "not started".to_owned(),
            JobState::Running(id) => format!("running as window {}", id.0),
            JobState::Ended(r) => format!("ended after {:.1} s", r.inner.duration_s),
        };
        format!("<Job {:?} {state}>", self.core.name)
    }
}

/// An exception type's name as a user knows it: `KeyboardInterrupt` for a
/// builtin, `module.QualName` otherwise.
fn exception_name(exc_type: &Bound<'_, PyAny>) -> String {
    let attr = |name: &str| {
        exc_type
            .getattr(name)
            .and_then(|v| v.extract::<String>())
            .ok()
    };
    let name = attr("__qualname__")
        .or_else(|| attr("__name__"))
        .unwrap_or_else(|| "exception".to_owned());
    match attr("__module__") {
        Some(module) if module != "builtins" => format!("{module}.{name}"),
        _ => name,
    }
}

/// A `/metrics` server started by `Monitor.serve`.
#[pyclass(module = "algalon", frozen)]
#[derive(Debug)]
pub struct MetricsServer {
    handle: Arc<ServerHandle>,
}

#[pymethods]
impl MetricsServer {
    /// The bound address.
    #[getter]
    fn addr(&self) -> String {
        self.handle.local_addr().ip().to_string()
    }

    /// The bound port (useful with `port=0`).
    #[getter]
    fn port(&self) -> u16 {
        self.handle.local_addr().port()
    }

    /// `http://addr:port/metrics`.
    #[getter]
    fn url(&self) -> String {
        format!("http://{}/metrics", self.handle.local_addr())
    }

    /// Stops serving. Idempotent.
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.handle.stop());
    }

    fn __repr__(&self) -> String {
        format!("<MetricsServer {}>", self.url())
    }
}
