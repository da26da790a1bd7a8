//! The sampler: the only code that talks to NVML.
//!
//! [`Sampler::sample`] reads every selected GPU once and returns a
//! [`Snapshot`]. Each GPU is read by its own long-lived worker thread
//! (`worker`), all at once: a sample takes as long as the slowest GPU, and a
//! GPU whose NVML call hangs is reported down after
//! [`SamplerOptions::gpu_timeout`] while the others' readings still arrive
//! (see `worker` for which calls may overlap, and why). [`BackgroundSampler`](crate::BackgroundSampler) calls it on a fixed-rate thread and
//! publishes the latest `Arc<Snapshot>`, so readers (HTTP handlers, Python,
//! C) never wait on NVML.
//!
//! A reading NVML cannot give is left out (`None`), never reported as 0:
//! "not supported" is remembered per GPU and field and logged once; other
//! errors leave the reading out for this sample and are counted in
//! [`Snapshot::errors`]. Identity, labels and host facts that failed that way
//! are read again on the next sample. A GPU that NVML reports lost is marked
//! down and the others go on; when the driver itself goes away the sampler
//! re-initialises NVML on a later sample.
//!
//! One concern per file: `load` opens the library, `host` reads host facts,
//! `select` resolves device selectors, `worker` runs one thread per GPU,
//! `progress` says where each worker is, `slot` is what a worker keeps
//! about its GPU between samples, `gpu` reads one GPU (identity, labels,
//! every catalog source), and `processes` its process list. The background thread is
//! [`crate::background`]'s; how an NVML error affects a reading is
//! [`crate::nvml_error`]'s, shared with the XID listener.

mod gpu;
mod host;
mod load;
mod mig;
mod mig_ids;
mod processes;
mod progress;
mod select;
mod slot;
mod worker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime};

use nvml_wrapper::Nvml;
use nvml_wrapper::structs::device::FieldId;

use crate::catalog::{Field, Source};
use crate::collectors::CollectorConfig;
use crate::error::Result;
use crate::nvml_error::{ErrorCounts, merge_counts};
use crate::snapshot::{CallError, DownReason, GpuSample, Snapshot};
use crate::xid::XidListener;
use gpu::attach_xids;
use host::{System, read_system};
pub use load::NVML_LIB_ENV;
use load::open_nvml;
pub use progress::SampleProgress;
use select::select_devices;
use worker::{Plan, Reply, Request, Worker};

/// Fields every sampler reads whatever the collectors file says: per-job
/// accounting and the faces' GPU views need them.
pub const CORE_FIELDS: &[Field] = &[
    Field::GpuUtil,
    Field::MemCopyUtil,
    Field::FbUsed,
    Field::FbFree,
    Field::FbTotal,
    Field::GpuTemp,
    Field::PowerUsage,
    Field::TotalEnergyConsumption,
];

/// Environment variable that, set to `1`, makes [`SamplerOptions::default`]
/// read one GPU at a time ([`SamplerOptions::parallel`] false): a switch for
/// a driver that misbehaves under concurrent calls, and the serial baseline
/// of the benchmarks.
pub const SERIAL_ENV: &str = "ALGALON_SERIAL_SAMPLING";

/// How long a sample waits for one GPU before reporting it down as hung
/// ([`SamplerOptions::gpu_timeout`]): healthy NVML calls take microseconds
/// to milliseconds, so this is generous even for a loaded machine.
pub const DEFAULT_GPU_TIMEOUT: Duration = Duration::from_secs(2);

/// How to open NVML and what to read.
#[derive(Debug, Clone)]
pub struct SamplerOptions {
    /// NVML library to load. `None`: `$ALGALON_NVML_LIB`, else the system's
    /// `libnvidia-ml.so.1`.
    pub nvml_lib: Option<PathBuf>,
    /// Fields to read (label fields included). [`CORE_FIELDS`] are always added.
    pub fields: Vec<Field>,
    /// GPUs to sample, as NVML indices or UUIDs (a unique UUID prefix is
    /// enough). `None` samples every GPU.
    pub devices: Option<Vec<String>>,
    /// Read the processes on each GPU (memory, SM/memory utilization).
    pub processes: bool,
    /// Listen for XID events (`DCGM_FI_DEV_XID_ERRORS`).
    pub xid_events: bool,
    /// MIG instances to read on GPUs in MIG mode (dcgm-exporter's `-d …+i`),
    /// a [`crate::devices::InstanceSet`]: `None` (the default) reads none,
    /// `All` every instance, `List` those with these GPU instance ids.
    /// Instances are enumerated on every sample, so reconfiguration shows
    /// up at once.
    pub instances: crate::devices::InstanceSet,
    /// Host name to report; `None` uses the machine's.
    pub hostname: Option<String>,
    /// Where `/proc` is, for process names and jobs (a container with the
    /// host's PID namespace may mount the host's elsewhere).
    pub proc_root: PathBuf,
    /// Read the GPUs concurrently, each on its own worker thread (the
    /// default). `false` reads them one after another through the same
    /// workers; the default is `false` when `$ALGALON_SERIAL_SAMPLING` is `1`.
    pub parallel: bool,
    /// How long a sample waits for a GPU's reading. A GPU that has not
    /// answered by then is reported down (`algalon_gpu_up` 0, its readings
    /// left out, `down_reason` naming the call that hangs) in this and every
    /// following sample until its call returns; the other GPUs are read as
    /// usual. Only the first sample of a hang waits this long.
    pub gpu_timeout: Duration,
}

impl Default for SamplerOptions {
    /// dcgm-exporter's default field set, every GPU, XID events on, no
    /// processes, GPUs read in parallel with a [`DEFAULT_GPU_TIMEOUT`].
    fn default() -> Self {
        SamplerOptions {
            nvml_lib: None,
            fields: CollectorConfig::default().fields().collect(),
            devices: None,
            processes: false,
            xid_events: true,
            instances: crate::devices::InstanceSet::None,
            hostname: None,
            proc_root: PathBuf::from("/proc"),
            parallel: std::env::var_os(SERIAL_ENV).is_none_or(|v| v != "1"),
            gpu_timeout: DEFAULT_GPU_TIMEOUT,
        }
    }
}

impl SamplerOptions {
    /// Reads exactly the fields of `config` (plus [`CORE_FIELDS`]).
    pub fn with_collectors(mut self, config: &CollectorConfig) -> Self {
        self.fields = config.fields().collect();
        self
    }
}

/// Reads every selected GPU through NVML. See the module docs.
pub struct Sampler {
    nvml: Arc<Nvml>,
    library: String,
    options: SamplerOptions,
    plan: Arc<Plan>,
    /// NVML indices of the selected GPUs, by position.
    indices: Vec<u32>,
    workers: Vec<Worker>,
    replies: Receiver<Reply>,
    reply_tx: Sender<Reply>,
    /// The GPUs reported hung (and logged), by position.
    hung: Vec<bool>,
    system: Arc<System>,
    hostname: String,
    xid: Option<XidListener>,
    seq: u64,
    /// NVML failures since the sampler started, by GPU, call and error.
    errors: ErrorCounts,
    /// Set when the driver went away; the next sample re-initialises NVML.
    reopen: bool,
    /// Where each GPU's worker is, for [`Sampler::progress`].
    progress: Arc<SampleProgress>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("library", &self.library)
            .field("gpus", &self.indices)
            .field("fields", &self.plan.fields.len())
            .field("parallel", &self.options.parallel)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Sampler {
    /// Loads NVML, selects the GPUs and starts one worker thread per GPU.
    /// Fails with [`Error::NvmlNotFound`](crate::Error::NvmlNotFound) when
    /// no library loads, [`Error::NvmlInit`](crate::Error::NvmlInit) when
    /// NVML refuses to start, [`Error::NoSuchDevice`](crate::Error::NoSuchDevice)
    /// when a device selector matches no GPU, and
    /// [`Error::Thread`](crate::Error::Thread) when a thread cannot be started.
    pub fn new(options: SamplerOptions) -> Result<Sampler> {
        let (nvml, library) = open_nvml(options.nvml_lib.as_deref().map(|p| p.as_os_str()))?;
        let mut fields: Vec<Field> = options.fields.clone();
        for &f in CORE_FIELDS {
            if !fields.contains(&f) {
                fields.push(f);
            }
        }
        let field_value_ids = fields
            .iter()
            .filter_map(|f| match f.def().source {
                Source::FieldValue(id) | Source::FieldValueScaled(id, _) => Some(FieldId(id)),
                _ => None,
            })
            .collect();
        let gpm_ids = fields
            .iter()
            .filter_map(|f| match f.def().source {
                Source::Gpm(id, _) => Some(id),
                _ => None,
            })
            .collect();
        let hostname = options
            .hostname
            .clone()
            .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned());
        let nvml = Arc::new(nvml);
        let indices = select_devices(&nvml, options.devices.as_deref())?;
        mig::check_instances(&nvml, &indices, &options.instances)?;
        let plan = Arc::new(Plan {
            fields,
            field_value_ids,
            gpm_ids,
            processes: options.processes,
            instances: options.instances.clone(),
            proc_root: options.proc_root.clone(),
        });
        let progress = Arc::new(SampleProgress::new(&indices));
        let (reply_tx, replies) = std::sync::mpsc::channel();
        let mut errors = BTreeMap::new();
        let system = Arc::new(read_system(&nvml, &mut errors));
        let mut sampler = Sampler {
            nvml,
            library,
            options,
            plan,
            hung: vec![false; indices.len()],
            indices,
            workers: Vec::new(),
            replies,
            reply_tx,
            system,
            hostname,
            xid: None,
            seq: 0,
            errors,
            reopen: false,
            progress,
        };
        sampler.start_workers()?;
        sampler.start_xid()?;
        Ok(sampler)
    }

    /// One worker per selected GPU, on the current NVML handle. The replies
    /// of earlier workers (if any) can no longer arrive: a fresh channel.
    fn start_workers(&mut self) -> Result<()> {
        self.stop_workers();
        let (reply_tx, replies) = std::sync::mpsc::channel();
        self.reply_tx = reply_tx;
        self.replies = replies;
        for (pos, &index) in self.indices.iter().enumerate() {
            let worker = Worker::spawn(
                pos,
                index,
                Arc::clone(&self.nvml),
                Arc::clone(&self.plan),
                Arc::clone(&self.progress),
                self.reply_tx.clone(),
            )?;
            self.workers.push(worker);
        }
        Ok(())
    }

    /// Lets every worker go: idle ones are joined, one stuck in NVML exits
    /// when its call returns.
    fn stop_workers(&mut self) {
        self.workers.iter_mut().for_each(Worker::close);
        self.workers.iter_mut().for_each(Worker::join_if_idle);
        self.workers.clear();
    }

    fn start_xid(&mut self) -> Result<()> {
        let wants_xid = self.plan.fields.contains(&Field::XidErrors);
        self.xid = if self.options.xid_events && wants_xid {
            Some(XidListener::start(
                Arc::clone(&self.nvml),
                self.indices.clone(),
            )?)
        } else {
            None
        };
        Ok(())
    }

    /// Which GPUs this sampler's workers are reading right now; shared, so
    /// another thread can tell where a sample that takes too long is stuck.
    pub fn progress(&self) -> Arc<SampleProgress> {
        Arc::clone(&self.progress)
    }

    /// The NVML library that was loaded (path or soname).
    pub fn library(&self) -> &str {
        &self.library
    }

    /// NVML indices of the selected GPUs.
    pub fn gpu_indices(&self) -> Vec<u32> {
        self.indices.clone()
    }

    /// NVML's version string, e.g. `12.550.54.15`.
    pub fn nvml_version(&self) -> Option<&str> {
        self.system.nvml_version.as_deref()
    }

    /// Reads every selected GPU once: all at once (or one at a time when
    /// [`SamplerOptions::parallel`] is false), each for at most
    /// [`SamplerOptions::gpu_timeout`].
    pub fn sample(&mut self) -> Snapshot {
        let started = Instant::now();
        let taken_at = SystemTime::now();
        if self.reopen {
            self.try_reopen();
        }
        self.seq += 1;
        if self.system.retry && !self.reopen {
            let fresh = read_system(&self.nvml, &mut self.errors);
            let old = &self.system;
            let system = System {
                driver_version: fresh.driver_version.or(old.driver_version.clone()),
                nvml_version: fresh.nvml_version.or(old.nvml_version.clone()),
                cuda_driver_version: fresh.cuda_driver_version.or(old.cuda_driver_version),
                retry: fresh.retry,
            };
            // The workers copy the driver and NVML version labels at
            // identification: a worker identifies its GPU again when the
            // facts it identified with were incomplete and have changed
            // (`worker::run`), so a new value only when something changed.
            if system != *self.system {
                self.system = Arc::new(system);
            }
        }
        let mut newly_unsupported: BTreeMap<Field, Vec<u32>> = BTreeMap::new();
        let mut driver_gone = false;
        let gpus = if self.reopen {
            // NVML is still unavailable: report every GPU down, keep identities.
            (0..self.indices.len())
                .map(|pos| {
                    let mut gpu = self.identity(pos);
                    gpu.up = false;
                    gpu.down_reason = Some(DownReason {
                        call: "nvmlInit_v2",
                        error: "NVML is not available (driver unloaded?); retrying".into(),
                    });
                    gpu
                })
                .collect()
        } else {
            let mut answers = self.collect(&mut newly_unsupported, &mut driver_gone);
            (0..self.indices.len())
                .map(|pos| {
                    let mut gpu = answers[pos].take().unwrap_or_else(|| self.hung_gpu(pos));
                    attach_xids(&mut gpu, self.xid.as_ref(), &self.plan.fields);
                    gpu
                })
                .collect()
        };
        // One line per field, not per GPU and field: an 8-GPU node lacking a
        // field says so once.
        for (field, gpus) in newly_unsupported {
            let list: Vec<String> = gpus.iter().map(u32::to_string).collect();
            log::info!(
                "{} is not available on GPU {} ({} not supported); its series are left out",
                field.name(),
                list.join(", "),
                field.def().source.call_name()
            );
        }
        if driver_gone && !self.reopen {
            log::warn!("NVML reports the driver gone; re-initialising on the next sample");
            self.reopen = true;
        }
        if let Some(xid) = &self.xid {
            merge_counts(&mut self.errors, xid.take_errors());
        }
        Snapshot {
            hostname: self.hostname.clone(),
            driver_version: self.system.driver_version.clone(),
            nvml_version: self.system.nvml_version.clone(),
            cuda_driver_version: self.system.cuda_driver_version,
            taken_at,
            duration: started.elapsed(),
            seq: self.seq,
            gpus,
            errors: self
                .errors
                .iter()
                .map(|(&(gpu, call, error), &count)| CallError {
                    gpu,
                    call,
                    error,
                    count,
                })
                .collect(),
        }
    }

    /// Hands this sample's request to the workers — every idle one at once,
    /// or one at a time when serial — and gathers their answers, giving
    /// each GPU at most `gpu_timeout` from its request. `None` for a GPU
    /// that did not answer in time (or whose worker is still in an earlier
    /// sample's call).
    fn collect(
        &mut self,
        newly_unsupported: &mut BTreeMap<Field, Vec<u32>>,
        driver_gone: &mut bool,
    ) -> Vec<Option<GpuSample>> {
        let n = self.workers.len();
        let seq = self.seq;
        let mut answers: Vec<Option<GpuSample>> = (0..n).map(|_| None).collect();
        // Answers of earlier samples that came after those samples were
        // published: the worker is free again; its late readings are stale.
        while let Ok(late) = self.replies.try_recv() {
            self.absorb(late, newly_unsupported, driver_gone);
        }
        let mut queue: std::collections::VecDeque<usize> = (0..n)
            .filter(|&pos| self.workers[pos].pending.is_none())
            .collect();
        let max_in_flight = if self.options.parallel { n } else { 1 };
        // Positions in flight for this sample, with their deadlines.
        let mut in_flight: Vec<(usize, Instant)> = Vec::with_capacity(n);
        let timeout = self.options.gpu_timeout;
        loop {
            while in_flight.len() < max_in_flight
                && let Some(pos) = queue.pop_front()
            {
                let request = Request {
                    seq,
                    system: Arc::clone(&self.system),
                };
                if self.workers[pos].send(request) {
                    in_flight.push((pos, Instant::now() + timeout));
                }
            }
            let Some(&deadline) = in_flight.iter().map(|(_, d)| d).min() else {
                break;
            };
            let now = Instant::now();
            let reply = if now < deadline {
                self.replies.recv_timeout(deadline - now)
            } else {
                Err(RecvTimeoutError::Timeout)
            };
            match reply {
                Ok(reply) => {
                    let pos = reply.pos;
                    let fresh = reply.seq == seq;
                    let gpu = self.absorb(reply, newly_unsupported, driver_gone);
                    in_flight.retain(|&(p, _)| p != pos);
                    if fresh {
                        answers[pos] = Some(gpu);
                    } else if answers[pos].is_none() {
                        // Back from a hang: read it for this sample too.
                        queue.push_back(pos);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let now = Instant::now();
                    in_flight.retain(|&(_, d)| d > now);
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        answers
    }

    /// Takes one worker's reply into the sampler's state (errors, fields
    /// found unsupported, driver gone, XID renewal, the end of a hang) and
    /// returns its GPU.
    fn absorb(
        &mut self,
        reply: Reply,
        newly_unsupported: &mut BTreeMap<Field, Vec<u32>>,
        driver_gone: &mut bool,
    ) -> GpuSample {
        let Reply {
            pos,
            seq: _,
            gpu,
            driver_gone: gone,
            came_back,
            took,
            errors,
            newly_unsupported: unsupported,
        } = reply;
        if let Some(worker) = self.workers.get_mut(pos) {
            worker.pending = None;
        }
        merge_counts(&mut self.errors, errors);
        for (field, gpus) in unsupported {
            newly_unsupported.entry(field).or_default().extend(gpus);
        }
        *driver_gone |= gone;
        if came_back && let Some(xid) = &self.xid {
            xid.renew(gpu.index);
        }
        if self.hung.get_mut(pos).is_some_and(std::mem::take) {
            let (index, uuid, seconds) = (gpu.index, gpu.uuid.as_str(), took.as_secs_f64());
            log::info!(
                gpu = index, uuid = uuid, seconds = seconds;
                "NVML answers again on GPU {index} ({uuid}): the read that hung took \
                 {seconds:.1} s; its readings are back"
            );
        }
        gpu
    }

    /// The GPU at `pos` with its identity, no readings.
    fn identity(&self, pos: usize) -> GpuSample {
        self.progress.gpu(pos).identity().unwrap_or_else(|| {
            GpuSample::new(
                self.indices[pos],
                String::new(),
                String::new(),
                String::new(),
            )
        })
    }

    /// The GPU at `pos`, whose worker did not answer in time: down, with
    /// the call it hangs in. Logged once when the hang is first seen.
    fn hung_gpu(&mut self, pos: usize) -> GpuSample {
        let mut gpu = self.identity(pos);
        let (waited, stage) = self
            .progress
            .gpu(pos)
            .busy()
            .unwrap_or((self.options.gpu_timeout, progress::Stage::Handle));
        gpu.up = false;
        gpu.down_reason = Some(DownReason {
            call: stage.call(),
            error: format!(
                "no answer for {:.1} s while {} (the call hangs); the other GPUs are read as usual",
                waited.as_secs_f64(),
                stage.doing()
            ),
        });
        if !std::mem::replace(&mut self.hung[pos], true) {
            let (index, uuid, call) = (gpu.index, gpu.uuid.as_str(), stage.call());
            let seconds = waited.as_secs_f64();
            log::warn!(
                gpu = index, uuid = uuid, call = call, seconds = seconds;
                "NVML hangs on GPU {index} ({uuid}): {call} has not returned for {seconds:.1} s \
                 ({}); the GPU is reported down (algalon_gpu_up 0, readings left out) until \
                 it returns, the other GPUs are read as usual",
                stage.doing()
            );
        }
        gpu
    }

    /// Re-initialises NVML after the driver went away (reload, upgrade).
    fn try_reopen(&mut self) {
        let lib = self.options.nvml_lib.clone();
        match open_nvml(lib.as_deref().map(|p| p.as_os_str())) {
            Ok((nvml, library)) => {
                log::info!("NVML re-initialised from {library}");
                self.xid = None;
                self.nvml = Arc::new(nvml);
                self.library = library;
                self.system = Arc::new(read_system(&self.nvml, &mut self.errors));
                self.hung.iter_mut().for_each(|h| *h = false);
                // Fresh workers: every GPU is identified again, its
                // unsupported fields asked again, its GPM baseline and XID
                // registration taken afresh.
                if let Err(e) = self.start_workers() {
                    log::warn!("GPU workers not restarted: {e}; retrying");
                    return;
                }
                self.reopen = false;
                if let Err(e) = self.start_xid() {
                    log::warn!("XID listener not restarted: {e}");
                }
            }
            Err(e) => log::debug!("NVML still unavailable: {e}"),
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop_workers();
    }
}
