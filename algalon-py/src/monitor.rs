//! `Monitor` and `Job`: the Python face of the core's
//! [`JobSession`](algalon_core::jobs::JobSession).
//!
//! The session owns the sampler (its thread is pure Rust and never takes the
//! GIL), the process's CUDA view, boundary samples, the job's own process
//! tree, lost GPUs and the label rules. This module adds what is Python's
//! own: `Job` objects and their life cycle, named windows, label values
//! from Python objects, the fork guard, and `/metrics` servers. `Monitor`
//! methods that wait on NVML (start, the boundary samples of a job, close)
//! detach from the interpreter while they wait.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use algalon_core::jobs::{
    GpuChoice, JobError, JobId, JobSession, JobSpec, SessionOptions, WindowId, check_count_name,
    check_job_name, check_label_name,
};
use parking_lot::Mutex;
use pyo3::exceptions::{PyOSError, PyUserWarning, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::devices::{self, Gpu, GpuSelectors};
use crate::errors::{AlgalonError, ConfigError, py_err};
use crate::report::Report;
use crate::server::ServerHandle;

/// Longest sampling interval `Monitor()` takes, s (a day).
const MAX_INTERVAL_S: f64 = 86_400.0;
/// How long `close()` waits for an in-flight sample (a hung NVML call).
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// The `error` of a job whose `Job` object was collected while it ran.
const DROPPED: &str = "dropped";

/// Everything a `Monitor` and its `Job`s share.
struct Inner {
    /// The process that started the sampler (see `check`).
    owner_pid: u32,
    /// Shared (weakly) with the `/metrics` servers, which read its latest
    /// snapshot.
    session: Arc<JobSession>,
    servers: Mutex<Vec<Arc<ServerHandle>>>,
    /// `begin_window` names of open windows.
    named: Mutex<BTreeMap<String, Arc<JobCore>>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// Whether `e` means this machine has no GPU to measure (no driver, NVML
/// that does not start, or — when no GPU was asked for by name — none
/// visible), which `Monitor(missing_ok=True)` tolerates.
fn no_gpu_here(e: &algalon_core::Error, chose: bool) -> bool {
    match e {
        algalon_core::Error::NvmlNotFound { .. } | algalon_core::Error::NvmlInit { .. } => true,
        algalon_core::Error::NoSuchDevice { .. } => !chose,
        _ => false,
    }
}

/// A core job error as the Python exception a user expects.
fn job_err(e: JobError) -> PyErr {
    match e {
        JobError::Closed => Inner::closed_error(),
        other => PyValueError::new_err(other.to_string()),
    }
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

    fn begin(&self, py: Python<'_>, job: &JobCore) -> PyResult<(WindowId, JobId)> {
        self.check()?;
        let spec = JobSpec {
            name: job.name.clone(),
            labels: job.user_labels.clone(),
            pids: job.extra_pids.clone(),
        };
        let id = crate::exit::release(py, || self.session.begin(spec)).map_err(job_err)?;
        let job_id = self
            .session
            .job_id(id)
            .ok_or_else(|| PyValueError::new_err(format!("job {:?} is not running", job.name)))?;
        Ok((id, job_id))
    }

    /// Ends window `id`; `error` names the exception that left its `with`
    /// block, if one did.
    fn end(&self, py: Python<'_>, id: WindowId, error: Option<String>) -> PyResult<Report> {
        self.check()?;
        let report = crate::exit::release(py, || self.session.end(id, error.as_deref()));
        let report =
            report.ok_or_else(|| PyValueError::new_err(format!("window {} is not open", id.0)))?;
        Ok(Report::new(report))
    }

    fn peek(&self, id: WindowId) -> Option<Report> {
        self.session.peek(id).map(Report::new)
    }

    /// Stops the sampler and the servers (idempotent).
    fn close(&self) {
        self.session.close(CLOSE_WAIT);
        for server in self.servers.lock().drain(..) {
            server.stop();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if std::process::id() != self.owner_pid {
            // A forked child: the server threads do not exist here (the
            // session leaks its sampler itself).
            for server in self.servers.get_mut().drain(..) {
                server.abandon();
            }
            return;
        }
        for server in self.servers.get_mut().drain(..) {
            server.stop();
        }
        // The session's own Drop stops its thread.
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
        check_label_name(&key).map_err(job_err)?;
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
    check_job_name(name).map_err(job_err)?;
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
    Running(WindowId, JobId),
    Ended(Box<Report>),
}

/// Samples the GPUs this process uses in the background and measures jobs.
///
/// `Monitor(interval=0.1, gpus=None, nvml_lib=None, *, missing_ok=False)`: `gpus` are CUDA indices
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
    #[pyo3(signature = (interval=0.1, gpus=None, nvml_lib=None, *, missing_ok=false))]
    fn new(
        py: Python<'_>,
        interval: f64,
        gpus: Option<GpuSelectors>,
        nvml_lib: Option<PathBuf>,
        missing_ok: bool,
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
        let selectors = gpus.as_ref().map(devices::selectors).transpose()?;
        let chose = selectors.is_some();
        let built = crate::exit::release(py, move || {
            let mut opts = SessionOptions::new(devices::sampler_options(nvml_lib, None));
            opts.interval = Some(interval);
            if let Some(list) = selectors {
                opts.gpus = GpuChoice::Selected(list);
            }
            JobSession::new(opts)
        });
        let session = match built {
            Ok(session) => session,
            // No driver or no GPU: with missing_ok, jobs still run and say
            // that no GPU was measured. A GPU asked for by name that does
            // not exist stays an error (a typo, not a laptop).
            Err(e) if missing_ok && no_gpu_here(&e, chose) => {
                let reason = e.to_string();
                let msg = format!(
                    "algalon measures no GPU ({reason}); jobs record wall time only (Monitor(missing_ok=True))"
                );
                let msg = std::ffi::CString::new(msg).unwrap_or_default();
                PyErr::warn(py, &py.get_type::<PyUserWarning>(), &msg, 1)?;
                JobSession::without_gpus(
                    &reason,
                    std::env::var(algalon_core::devices::CUDA_VISIBLE_DEVICES).ok(),
                )
            }
            Err(e) => return Err(py_err(e)),
        };
        let visible = session.visible();
        if let (Some(env), Some(ignored)) = (&visible.env, &visible.ignored) {
            let msg =
                format!("CUDA_VISIBLE_DEVICES={env:?}: {ignored}; Algalon measures what CUDA uses");
            let msg = std::ffi::CString::new(msg).unwrap_or_default();
            PyErr::warn(py, &py.get_type::<PyUserWarning>(), &msg, 1)?;
        }
        Ok(Monitor {
            inner: Arc::new(Inner {
                owner_pid,
                session: Arc::new(session),
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

    /// Serves `/metrics` on `addr:port` from a background thread: build info
    /// and the measured GPUs' `algalon_gpu_up` from the start, then this
    /// process's job series (`algalon_job_info`, energy, utilization,
    /// memory, duration); `port=0` picks a free port (see `.port`).
    #[pyo3(signature = (port=9401, addr="127.0.0.1"))]
    fn serve(&self, py: Python<'_>, port: u16, addr: &str) -> PyResult<MetricsServer> {
        self.inner.check()?;
        if self.inner.session.is_closed() {
            return Err(Inner::closed_error());
        }
        let tracker = Arc::clone(self.inner.session.tracker());
        let session = Arc::downgrade(&self.inner.session);
        let handle = crate::exit::release(py, || ServerHandle::start(addr, port, session, tracker))
            .map_err(|e| serve_error(py, addr, port, &e))?;
        self.inner.servers.lock().push(Arc::clone(&handle));
        Ok(MetricsServer { handle })
    }

    /// Reports of the finished windows kept (the latest 256) and of the
    /// open ones so far.
    fn reports(&self) -> PyResult<Vec<Report>> {
        self.inner.check()?;
        Ok(self
            .inner
            .session
            .reports()
            .into_iter()
            .map(Report::new)
            .collect())
    }

    /// The measured GPUs at the latest sample, in CUDA order.
    #[getter]
    fn gpus(&self) -> PyResult<Vec<Gpu>> {
        self.inner.check()?;
        let session = &self.inner.session;
        let Some(snap) = session.latest() else {
            return Err(Inner::closed_error());
        };
        Ok(devices::gpus_in_cuda_order(
            &snap,
            session.visible(),
            Some(session.measured()),
        ))
    }

    /// Sampling interval, s.
    #[getter]
    fn interval(&self) -> f64 {
        self.inner
            .session
            .interval()
            .map_or(0.0, |i| i.as_secs_f64())
    }

    /// The NVML library in use.
    #[getter]
    fn library(&self) -> &str {
        self.inner.session.library()
    }

    /// Host name reported with the series.
    #[getter]
    fn hostname(&self) -> &str {
        self.inner.session.hostname()
    }

    /// Why no GPU is measured (`Monitor(missing_ok=True)` on a machine
    /// without a driver or GPU), else `None`.
    #[getter]
    fn no_gpu_reason(&self) -> Option<&str> {
        self.inner.session.no_gpu()
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.session.is_closed()
    }

    /// Stops sampling and serving. Open jobs can still be ended; their
    /// reports stop at the last sample. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.inner.check()?;
        crate::exit::release(py, || self.inner.close());
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
        let session = &self.inner.session;
        if session.no_gpu().is_some() {
            return format!(
                "<Monitor measuring no GPU (missing_ok){}>",
                if self.closed() { ", closed" } else { "" }
            );
        }
        let gpus: Vec<String> = session
            .measured()
            .iter()
            .map(|u| match session.visible().cuda_index(u) {
                Some(i) => format!("cuda:{i}={u}"),
                None => u.clone(),
            })
            .collect();
        format!(
            "<Monitor {} every {:.3} s{}>",
            gpus.join(" "),
            self.interval(),
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
                JobState::Running(..) => {
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
        let (id, job_id) = self.monitor.begin(py, &self.core)?;
        *self.core.state.lock() = JobState::Running(id, job_id);
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
            JobState::Running(id, _) => Ok(*id),
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
            JobState::Running(id, _) => *id,
            JobState::Pending | JobState::Ended(_) => return,
        };
        self.monitor.session.abandon(id, Some(DROPPED));
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
            check_count_name(&unit).map_err(job_err)?;
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
            if self.monitor.session.count(id, &unit, n).is_err() {
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
            JobState::Running(..) => {}
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
        matches!(&*self.core.state.lock(), JobState::Running(..))
    }

    /// The job's globally unique id (a UUID, the `job_id` label), once started.
    #[getter]
    fn id(&self) -> Option<String> {
        match &*self.core.state.lock() {
            JobState::Pending => None,
            JobState::Running(_, id) => Some(id.to_string()),
            JobState::Ended(r) => Some(r.inner.id.to_string()),
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
            JobState::Running(_, id) => format!("running as job {id}"),
            JobState::Ended(r) => format!("ended after {:.1} s", r.inner.duration_s),
        };
        format!("<Job {:?} {state}>", self.core.name)
    }
}

/// Why `serve()` could not listen, as `algalon.ServeError` (an `OSError`
/// too, with the OS's `errno`): the address and what to do.
fn serve_error(py: Python<'_>, addr: &str, port: u16, e: &std::io::Error) -> PyErr {
    let what = match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "port {port} is already in use (another program, or another Monitor.serve, listens there): pass another port, or port=0 to pick a free one (see .port)"
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "no permission to listen on port {port} (ports below 1024 need privileges): pass a port of 1024 or more"
        ),
        std::io::ErrorKind::AddrNotAvailable => format!(
            "{addr} is not an address of this host: pass \"127.0.0.1\", \"0.0.0.0\" or one of its addresses"
        ),
        _ => e.to_string(),
    };
    let message = format!("cannot serve /metrics on {addr}:{port}: {what}");
    let made = py
        .import("algalon._errors")
        .and_then(|m| m.getattr("ServeError"))
        .and_then(|cls| cls.call1((message.clone(),)))
        .and_then(|err| {
            err.setattr("errno", e.raw_os_error())?;
            Ok(PyErr::from_value(err))
        });
    made.unwrap_or_else(|_| PyOSError::new_err(message))
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
        crate::exit::release(py, || self.handle.stop());
    }

    fn __repr__(&self) -> String {
        format!("<MetricsServer {}>", self.url())
    }
}
