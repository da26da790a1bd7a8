//! The sampler: the only code that talks to NVML.
//!
//! [`Sampler::sample`] reads every selected GPU once and returns a
//! [`Snapshot`]. [`BackgroundSampler`] calls it on a fixed-rate thread and
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::enums::device::{SampleValue, UsedGpuMemory};
use nvml_wrapper::enums::gpm::GpmMetricId;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::{MemoryInfo, Utilization};
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::{Device, GpmSample, Nvml};
use parking_lot::{Condvar, Mutex, RwLock};

use crate::catalog::{Field, Kind, LabelSource, MemoryPart, Source};
use crate::collectors::CollectorConfig;
use crate::error::{Error, Result};
use crate::procinfo::{self, ProcessIdentity};
use crate::snapshot::{
    CallError, DownReason, GpuSample, ProcessKind, ProcessSample, Snapshot, Value,
};
use crate::xid::XidListener;

/// Environment variable naming the NVML library to load.
pub const NVML_LIB_ENV: &str = "ALGALON_NVML_LIB";

/// Sonames tried, in order, when no library is named.
const SYSTEM_LIBRARIES: &[&str] = &["libnvidia-ml.so.1", "libnvidia-ml.so"];

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
    /// Host name to report; `None` uses the machine's.
    pub hostname: Option<String>,
    /// Where `/proc` is, for process names and jobs (a container with the
    /// host's PID namespace may mount the host's elsewhere).
    pub proc_root: PathBuf,
}

impl Default for SamplerOptions {
    /// dcgm-exporter's default field set, every GPU, XID events on, no processes.
    fn default() -> Self {
        SamplerOptions {
            nvml_lib: None,
            fields: CollectorConfig::default().fields().collect(),
            devices: None,
            processes: false,
            xid_events: true,
            hostname: None,
            proc_root: PathBuf::from("/proc"),
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

/// GPM samples of the previous interval, one slot per selected GPU; they
/// borrow the NVML handle, hence the self-referential cell.
struct GpmState<'a> {
    prev: Vec<Option<GpmSample<'a>>>,
}

self_cell::self_cell!(
    struct NvmlCell {
        owner: Arc<Nvml>,
        #[covariant]
        dependent: GpmState,
    }
);

/// What the sampler knows about one selected GPU between samples.
#[derive(Debug, Clone)]
struct Slot {
    index: u32,
    uuid: String,
    pci_bus_id: String,
    name: String,
    minor_number: Option<u32>,
    labels: BTreeMap<Field, String>,
    identified: bool,
    /// Fields this GPU answered "not supported" for: not asked again.
    unsupported: HashSet<Field>,
    /// Newest process-utilization timestamp seen, for the next query.
    last_process_ts: u64,
    /// Identities of the processes seen last sample, so `/proc` is read
    /// once per process rather than once per sample.
    identities: HashMap<u32, ProcessIdentity>,
    /// Marked down since it last answered: when it answers again, its XID
    /// events are registered again (NVML drops a lost GPU's registration).
    was_down: bool,
}

impl Slot {
    fn new(index: u32) -> Slot {
        Slot {
            index,
            uuid: String::new(),
            pci_bus_id: String::new(),
            name: String::new(),
            minor_number: None,
            labels: BTreeMap::new(),
            identified: false,
            unsupported: HashSet::new(),
            last_process_ts: 0,
            identities: HashMap::new(),
            was_down: false,
        }
    }
}

/// NVML failures by call and error name.
type ErrorCounts = BTreeMap<(&'static str, &'static str), u64>;

fn count_error(errors: &mut ErrorCounts, call: &'static str, e: &NvmlError) {
    *errors.entry((call, error_name(e))).or_default() += 1;
}

/// Host-level facts, read at NVML initialisation and again while one that
/// NVML could not give for now is missing.
#[derive(Debug, Clone, Default)]
struct System {
    driver_version: Option<String>,
    nvml_version: Option<String>,
    cuda_driver_version: Option<i32>,
    /// A fact failed for a reason that may pass: read them again.
    retry: bool,
}

/// Reads every selected GPU through NVML. See the module docs.
pub struct Sampler {
    cell: NvmlCell,
    library: String,
    options: SamplerOptions,
    fields: Vec<Field>,
    field_value_ids: Vec<FieldId>,
    gpm_ids: Vec<GpmMetricId>,
    slots: Vec<Slot>,
    system: System,
    hostname: String,
    xid: Option<XidListener>,
    seq: u64,
    /// NVML failures since the sampler started, by call and error.
    errors: ErrorCounts,
    /// Set when the driver went away; the next sample re-initialises NVML.
    reopen: bool,
    /// The GPU whose NVML calls are in flight, for [`Sampler::progress`].
    progress: Arc<SampleProgress>,
}

/// Which GPU a [`Sampler`] is reading at this moment: when a sample takes
/// far longer than it should, this names the GPU whose NVML call hangs
/// (`/health` says so). One relaxed store per GPU per sample.
#[derive(Debug)]
pub struct SampleProgress {
    gpu: AtomicU32,
}

impl SampleProgress {
    const NONE: u32 = u32::MAX;

    fn new() -> Self {
        SampleProgress {
            gpu: AtomicU32::new(Self::NONE),
        }
    }

    /// The NVML index of the GPU being read, `None` between samples and
    /// during host-level calls.
    pub fn current_gpu(&self) -> Option<u32> {
        let gpu = self.gpu.load(Ordering::Relaxed);
        (gpu != Self::NONE).then_some(gpu)
    }

    fn set(&self, gpu: Option<u32>) {
        self.gpu.store(gpu.unwrap_or(Self::NONE), Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("library", &self.library)
            .field(
                "gpus",
                &self.slots.iter().map(|s| s.index).collect::<Vec<_>>(),
            )
            .field("fields", &self.fields.len())
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Sampler {
    /// Loads NVML and selects the GPUs. Fails with [`Error::NvmlNotFound`]
    /// when no library loads, [`Error::NvmlInit`] when NVML refuses to start,
    /// and [`Error::NoSuchDevice`] when a device selector matches no GPU.
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
                Source::FieldValue(id) => Some(FieldId(id)),
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
        let slots = select_devices(&nvml, options.devices.as_deref())?;
        let mut sampler = Sampler {
            cell: NvmlCell::new(Arc::clone(&nvml), |_| GpmState {
                prev: (0..slots.len()).map(|_| None).collect(),
            }),
            library,
            options,
            fields,
            field_value_ids,
            gpm_ids,
            slots,
            system: System::default(),
            hostname,
            xid: None,
            seq: 0,
            errors: BTreeMap::new(),
            reopen: false,
            progress: Arc::new(SampleProgress::new()),
        };
        sampler.system = read_system(&nvml, &mut sampler.errors);
        sampler.start_xid(nvml)?;
        Ok(sampler)
    }

    fn start_xid(&mut self, nvml: Arc<Nvml>) -> Result<()> {
        let wants_xid = self.fields.contains(&Field::XidErrors);
        self.xid = if self.options.xid_events && wants_xid {
            let indices = self.slots.iter().map(|s| s.index).collect();
            Some(XidListener::start(nvml, indices)?)
        } else {
            None
        };
        Ok(())
    }

    /// Which GPU this sampler is reading right now; shared, so another
    /// thread can tell where a sample that takes too long is stuck.
    pub fn progress(&self) -> Arc<SampleProgress> {
        Arc::clone(&self.progress)
    }

    /// The NVML library that was loaded (path or soname).
    pub fn library(&self) -> &str {
        &self.library
    }

    /// NVML indices of the selected GPUs.
    pub fn gpu_indices(&self) -> Vec<u32> {
        self.slots.iter().map(|s| s.index).collect()
    }

    /// NVML's version string, e.g. `12.550.54.15`.
    pub fn nvml_version(&self) -> Option<&str> {
        self.system.nvml_version.as_deref()
    }

    /// Reads every selected GPU once.
    pub fn sample(&mut self) -> Snapshot {
        let started = Instant::now();
        let taken_at = SystemTime::now();
        if self.reopen {
            self.try_reopen();
        }
        self.seq += 1;
        if self.system.retry && !self.reopen {
            let fresh = read_system(self.cell.borrow_owner(), &mut self.errors);
            let old = std::mem::take(&mut self.system);
            self.system = System {
                driver_version: fresh.driver_version.or(old.driver_version),
                nvml_version: fresh.nvml_version.or(old.nvml_version),
                cuda_driver_version: fresh.cuda_driver_version.or(old.cuda_driver_version),
                retry: fresh.retry,
            };
            if !self.system.retry {
                // The driver and NVML version labels are copied at
                // identification: read them into every GPU again.
                self.slots.iter_mut().for_each(|s| s.identified = false);
            }
        }
        let mut driver_gone = false;
        let mut newly_unsupported: BTreeMap<Field, Vec<u32>> = BTreeMap::new();
        let Sampler {
            cell,
            slots,
            fields,
            field_value_ids,
            gpm_ids,
            system,
            options,
            xid,
            reopen,
            errors,
            progress,
            ..
        } = self;
        let gpus = if *reopen {
            // NVML is still unavailable: report every GPU down, keep identities.
            slots
                .iter()
                .map(|slot| {
                    let mut gpu = slot_sample(slot);
                    gpu.up = false;
                    gpu.down_reason = Some(DownReason {
                        call: "nvmlInit_v2",
                        error: "NVML is not available (driver unloaded?); retrying".into(),
                    });
                    gpu
                })
                .collect()
        } else {
            cell.with_dependent_mut(|nvml, gpm| {
                let ctx = Ctx {
                    nvml,
                    fields,
                    field_value_ids,
                    gpm_ids,
                    system,
                    processes: options.processes,
                    proc_root: &options.proc_root,
                    xid: xid.as_ref(),
                };
                slots
                    .iter_mut()
                    .zip(gpm.prev.iter_mut())
                    .map(|(slot, gpm_prev)| {
                        progress.set(Some(slot.index));
                        let (mut gpu, gone) =
                            sample_gpu(&ctx, slot, gpm_prev, errors, &mut newly_unsupported);
                        driver_gone |= gone;
                        if gpu.up
                            && std::mem::take(&mut slot.was_down)
                            && let Some(xid) = ctx.xid
                        {
                            xid.renew(slot.index);
                        }
                        attach_xids(&mut gpu, ctx.xid, ctx.fields);
                        gpu
                    })
                    .collect()
            })
        };
        progress.set(None);
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
        if driver_gone {
            log::warn!("NVML reports the driver gone; re-initialising on the next sample");
            self.reopen = true;
        }
        if let Some(xid) = &self.xid {
            for (key, n) in xid.take_errors() {
                *self.errors.entry(key).or_default() += n;
            }
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
                .map(|(&(call, error), &count)| CallError { call, error, count })
                .collect(),
        }
    }

    /// Re-initialises NVML after the driver went away (reload, upgrade).
    fn try_reopen(&mut self) {
        let lib = self.options.nvml_lib.clone();
        match open_nvml(lib.as_deref().map(|p| p.as_os_str())) {
            Ok((nvml, library)) => {
                log::info!("NVML re-initialised from {library}");
                self.xid = None;
                let nvml = Arc::new(nvml);
                let count = self.slots.len();
                self.cell = NvmlCell::new(Arc::clone(&nvml), |_| GpmState {
                    prev: (0..count).map(|_| None).collect(),
                });
                self.library = library;
                self.system = read_system(&nvml, &mut self.errors);
                for slot in &mut self.slots {
                    slot.identified = false;
                    slot.unsupported.clear();
                    // The new XID listener registers every GPU afresh.
                    slot.was_down = false;
                }
                self.reopen = false;
                if let Err(e) = self.start_xid(nvml) {
                    log::warn!("XID listener not restarted: {e}");
                }
            }
            Err(e) => log::debug!("NVML still unavailable: {e}"),
        }
    }
}

/// Loads NVML from `explicit`, else `$ALGALON_NVML_LIB`, else the system.
fn open_nvml(explicit: Option<&OsStr>) -> Result<(Nvml, String)> {
    let env = std::env::var_os(NVML_LIB_ENV).filter(|v| !v.is_empty());
    let candidates: Vec<&OsStr> = match (explicit, env.as_deref()) {
        (Some(p), _) => vec![p],
        (None, Some(p)) => vec![p],
        (None, None) => SYSTEM_LIBRARIES.iter().map(OsStr::new).collect(),
    };
    let mut last_reason = String::new();
    for candidate in &candidates {
        let shown = candidate.to_string_lossy().into_owned();
        match Nvml::builder().lib_path(candidate).init() {
            Ok(nvml) => return Ok((nvml, shown)),
            Err(NvmlError::LibloadingError(e)) => last_reason = e.to_string(),
            Err(NvmlError::FailedToLoadSymbol(e)) => {
                last_reason = format!("{shown} is not an NVML library ({e})");
            }
            Err(source) => {
                let hint = match source {
                    NvmlError::DriverNotLoaded => {
                        "The NVIDIA kernel driver is not loaded: check that `nvidia-smi` works \
                         on this host (modprobe nvidia), or run where the GPUs are"
                    }
                    NvmlError::NoPermission => {
                        "This user cannot open /dev/nvidia*: run as root or as a member of \
                         the group owning the device nodes"
                    }
                    NvmlError::LibRmVersionMismatch => {
                        "The NVML library and the kernel driver are different versions: \
                         reload the driver or reboot after the driver upgrade"
                    }
                    _ => "Check that `nvidia-smi` works on this host",
                };
                return Err(Error::NvmlInit {
                    library: shown,
                    source,
                    hint,
                });
            }
        }
    }
    Err(Error::NvmlNotFound {
        tried: candidates
            .iter()
            .map(|c| c.to_string_lossy())
            .collect::<Vec<_>>()
            .join(", "),
        reason: last_reason,
    })
}

fn read_system(nvml: &Nvml, errors: &mut ErrorCounts) -> System {
    let mut retry = false;
    let driver_version = system_fact(
        "nvmlSystemGetDriverVersion",
        nvml.sys_driver_version(),
        errors,
        &mut retry,
    );
    let nvml_version = system_fact(
        "nvmlSystemGetNVMLVersion",
        nvml.sys_nvml_version(),
        errors,
        &mut retry,
    );
    let cuda_driver_version = system_fact(
        "nvmlSystemGetCudaDriverVersion_v2",
        nvml.sys_cuda_driver_version(),
        errors,
        &mut retry,
    );
    System {
        driver_version,
        nvml_version,
        cuda_driver_version,
        retry,
    }
}

/// One host fact: `None` when NVML cannot give it; a failure other than
/// "not supported" is counted and sets `retry`.
fn system_fact<T>(
    call: &'static str,
    result: Result<T, NvmlError>,
    errors: &mut ErrorCounts,
    retry: &mut bool,
) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            if !matches!(verdict(&e), Verdict::Unsupported) {
                log::debug!("{call} failed: {e}; reading it again next sample");
                count_error(errors, call, &e);
                *retry = true;
            }
            None
        }
    }
}

/// Resolves device selectors to NVML indices (every GPU when `None`).
fn select_devices(nvml: &Nvml, selectors: Option<&[String]>) -> Result<Vec<Slot>> {
    let count = nvml.device_count().map_err(|source| Error::Nvml {
        call: "nvmlDeviceGetCount_v2",
        source,
    })?;
    let Some(selectors) = selectors.filter(|s| !s.is_empty()) else {
        return Ok((0..count).map(Slot::new).collect());
    };
    let uuids: Vec<Option<String>> = (0..count)
        .map(|i| nvml.device_by_index(i).and_then(|d| d.uuid()).ok())
        .collect();
    let mut chosen: Vec<u32> = Vec::new();
    for selector in selectors {
        let s = selector.trim();
        let matched: Vec<u32> = if let Ok(i) = s.parse::<u32>() {
            (i < count).then_some(i).into_iter().collect()
        } else {
            let wanted = s.to_ascii_lowercase();
            let exact: Vec<u32> = (0..count)
                .filter(|&i| {
                    uuids[i as usize].as_deref().map(str::to_ascii_lowercase)
                        == Some(wanted.clone())
                })
                .collect();
            if exact.is_empty() {
                (0..count)
                    .filter(|&i| {
                        uuids[i as usize]
                            .as_deref()
                            .is_some_and(|u| u.to_ascii_lowercase().starts_with(&wanted))
                    })
                    .collect()
            } else {
                exact
            }
        };
        match matched.as_slice() {
            [i] => {
                if !chosen.contains(i) {
                    chosen.push(*i);
                }
            }
            _ => {
                let available = (0..count)
                    .map(|i| match &uuids[i as usize] {
                        Some(u) => format!("{i} ({u})"),
                        None => i.to_string(),
                    })
                    .collect::<Vec<_>>();
                let available = if available.is_empty() {
                    "no GPUs".to_owned()
                } else {
                    format!("GPUs {}", available.join(", "))
                };
                let selector = if matched.len() > 1 {
                    format!("{s:?} (ambiguous: matches {} GPUs)", matched.len())
                } else {
                    format!("{s:?}")
                };
                return Err(Error::NoSuchDevice {
                    selector,
                    available,
                });
            }
        }
    }
    chosen.sort_unstable();
    Ok(chosen.into_iter().map(Slot::new).collect())
}

/// Everything `sample_gpu` reads but does not change.
struct Ctx<'a, 'n> {
    nvml: &'n Nvml,
    fields: &'a [Field],
    field_value_ids: &'a [FieldId],
    gpm_ids: &'a [GpmMetricId],
    system: &'a System,
    processes: bool,
    proc_root: &'a std::path::Path,
    xid: Option<&'a XidListener>,
}

fn slot_sample(slot: &Slot) -> GpuSample {
    let mut gpu = GpuSample::new(
        slot.index,
        slot.uuid.clone(),
        slot.pci_bus_id.clone(),
        slot.name.clone(),
    );
    gpu.minor_number = slot.minor_number;
    gpu.labels = slot.labels.clone();
    gpu
}

/// How one NVML error affects a reading.
pub(crate) enum Verdict {
    /// The GPU cannot give this reading at all: remember, log once.
    Unsupported,
    /// The GPU is gone: mark it down.
    Lost,
    /// NVML itself is gone: mark down and re-initialise.
    DriverGone,
    /// Nothing to report this time (no data yet).
    Absent,
    /// A real failure: leave the reading out and count it.
    Failed,
}

pub(crate) fn verdict(e: &NvmlError) -> Verdict {
    match e {
        NvmlError::NotSupported
        | NvmlError::FunctionNotFound
        | NvmlError::FailedToLoadSymbol(_) => Verdict::Unsupported,
        NvmlError::GpuLost | NvmlError::ResetRequired => Verdict::Lost,
        NvmlError::DriverNotLoaded | NvmlError::Uninitialized | NvmlError::LibRmVersionMismatch => {
            Verdict::DriverGone
        }
        NvmlError::NoData | NvmlError::NotFound => Verdict::Absent,
        _ => Verdict::Failed,
    }
}

/// A short, stable name for an NVML error (used as a label value).
pub fn error_name(e: &NvmlError) -> &'static str {
    match e {
        NvmlError::Uninitialized => "Uninitialized",
        NvmlError::InvalidArg => "InvalidArg",
        NvmlError::NotSupported => "NotSupported",
        NvmlError::NoPermission => "NoPermission",
        NvmlError::NotFound => "NotFound",
        NvmlError::InsufficientSize(_) => "InsufficientSize",
        NvmlError::InsufficientPower => "InsufficientPower",
        NvmlError::DriverNotLoaded => "DriverNotLoaded",
        NvmlError::Timeout => "Timeout",
        NvmlError::IrqIssue => "IrqIssue",
        NvmlError::LibraryNotFound => "LibraryNotFound",
        NvmlError::FunctionNotFound | NvmlError::FailedToLoadSymbol(_) => "FunctionNotFound",
        NvmlError::CorruptedInfoROM => "CorruptedInfoROM",
        NvmlError::GpuLost => "GpuLost",
        NvmlError::ResetRequired => "ResetRequired",
        NvmlError::OperatingSystem => "OperatingSystem",
        NvmlError::LibRmVersionMismatch => "LibRmVersionMismatch",
        NvmlError::InUse => "InUse",
        NvmlError::InsufficientMemory => "InsufficientMemory",
        NvmlError::NoData => "NoData",
        NvmlError::Unknown => "Unknown",
        _ => "Other",
    }
}

/// Field values of one `nvmlDeviceGetFieldValues` call, by field id.
type FieldValues = HashMap<u32, Result<Value, NvmlError>>;
/// GPM metrics of one interval; `None` on the first interval.
type GpmValues = Option<HashMap<GpmMetricId, Result<f64, NvmlError>>>;

/// Per-GPU, per-sample cache of readings that several fields share.
#[derive(Default)]
struct Shared {
    memory: Option<Result<MemoryInfo, NvmlError>>,
    utilization: Option<Result<Utilization, NvmlError>>,
    field_values: Option<Result<FieldValues, NvmlError>>,
    gpm: Option<Result<GpmValues, (&'static str, NvmlError)>>,
}

/// The NVML function whose failure left `source` out: GPM readings come
/// from two calls, the others from the catalog's one.
fn failed_call(source: Source, shared: &Shared) -> &'static str {
    match (source, &shared.gpm) {
        (Source::Gpm(..), Some(Err((call, _)))) => call,
        _ => source.call_name(),
    }
}

/// Samples one GPU. Returns the sample and whether NVML itself is gone.
fn sample_gpu<'n>(
    ctx: &Ctx<'_, 'n>,
    slot: &mut Slot,
    gpm_prev: &mut Option<GpmSample<'n>>,
    errors: &mut ErrorCounts,
    newly_unsupported: &mut BTreeMap<Field, Vec<u32>>,
) -> (GpuSample, bool) {
    let device = match ctx.nvml.device_by_index(slot.index) {
        Ok(d) => d,
        Err(e) => {
            let mut gpu = slot_sample(slot);
            let gone = mark_down(
                &mut gpu,
                slot,
                gpm_prev,
                "nvmlDeviceGetHandleByIndex_v2",
                &e,
            );
            return (gpu, gone);
        }
    };
    if !slot.identified
        && let Err((call, e)) = identify(ctx, &device, slot, errors)
    {
        let mut gpu = slot_sample(slot);
        let gone = mark_down(&mut gpu, slot, gpm_prev, call, &e);
        return (gpu, gone);
    }
    let mut gpu = slot_sample(slot);
    let mut shared = Shared::default();
    for &field in ctx.fields {
        let def = field.def();
        if def.kind == Kind::Label || slot.unsupported.contains(&field) {
            continue;
        }
        if field == Field::XidErrors {
            continue; // from the XID listener, see `attach_xids`
        }
        match read(ctx, &device, def.source, &mut shared, gpm_prev) {
            Ok(value) => gpu.set(field, value),
            Err(e) => match verdict(&e) {
                Verdict::Unsupported => {
                    log::debug!(
                        "GPU {} ({}): {} is not available ({}: {e}); series left out",
                        slot.index,
                        slot.name,
                        def.name,
                        def.source.call_name()
                    );
                    slot.unsupported.insert(field);
                    newly_unsupported.entry(field).or_default().push(slot.index);
                }
                Verdict::Absent => {}
                Verdict::Failed => count_error(errors, failed_call(def.source, &shared), &e),
                Verdict::Lost | Verdict::DriverGone => {
                    let call = failed_call(def.source, &shared);
                    let gone = mark_down(&mut gpu, slot, gpm_prev, call, &e);
                    return (gpu, gone);
                }
            },
        }
    }
    if ctx.processes {
        match read_processes(&device, slot, ctx.proc_root, errors) {
            Ok(list) => gpu.processes = list,
            Err((call, e)) => match verdict(&e) {
                Verdict::Lost | Verdict::DriverGone => {
                    let gone = mark_down(&mut gpu, slot, gpm_prev, call, &e);
                    return (gpu, gone);
                }
                Verdict::Failed => count_error(errors, call, &e),
                Verdict::Unsupported | Verdict::Absent => {}
            },
        }
    }
    (gpu, false)
}

/// XID history is not a reading: it stays on a GPU that went down (XID 79 is
/// how a GPU falling off the bus announces itself), while the last-XID gauge,
/// like every DCGM field, is reported only for a GPU that is up.
fn attach_xids(gpu: &mut GpuSample, xid: Option<&XidListener>, fields: &[Field]) {
    let Some(record) = xid.and_then(|x| x.record(gpu.index)) else {
        return;
    };
    if gpu.up && fields.contains(&Field::XidErrors) {
        gpu.set(Field::XidErrors, Some(Value::Int(record.last.unwrap_or(0))));
    }
    gpu.xid_counts = record.counts;
}

/// Marks a GPU down after `call` failed with `e`: its readings go, its GPM
/// baseline goes (a ratio must not span the outage), and its identity is
/// read again when it answers (a reset or replaced board). Returns whether
/// NVML itself is gone, not just this GPU.
fn mark_down<'n>(
    gpu: &mut GpuSample,
    slot: &mut Slot,
    gpm_prev: &mut Option<GpmSample<'n>>,
    call: &'static str,
    e: &NvmlError,
) -> bool {
    *gpm_prev = None;
    slot.identified = false;
    slot.was_down = true;
    gpu.clear_values();
    gpu.up = false;
    gpu.down_reason = Some(DownReason {
        call,
        error: e.to_string(),
    });
    matches!(verdict(e), Verdict::DriverGone)
}

/// Sorts out one identification call: the value; `None` when NVML cannot
/// give it, for good (not supported) or for now (counted, and `retry` set
/// so that the GPU is identified again next sample); or the error that takes
/// the GPU down (lost, driver gone).
fn settle<T>(
    call: &'static str,
    result: Result<T, NvmlError>,
    errors: &mut ErrorCounts,
    retry: &mut bool,
) -> Result<Option<T>, (&'static str, NvmlError)> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) => match verdict(&e) {
            Verdict::Lost | Verdict::DriverGone => Err((call, e)),
            Verdict::Unsupported => Ok(None),
            Verdict::Absent => {
                *retry = true;
                Ok(None)
            }
            Verdict::Failed => {
                log::debug!("{call} failed: {e}; reading it again next sample");
                count_error(errors, call, &e);
                *retry = true;
                Ok(None)
            }
        },
    }
}

/// Reads the static identity and label fields of a GPU. A GPU whose UUID
/// NVML cannot give is not reported (its series would carry `UUID=""`).
fn identify(
    ctx: &Ctx<'_, '_>,
    device: &Device<'_>,
    slot: &mut Slot,
    errors: &mut ErrorCounts,
) -> Result<(), (&'static str, NvmlError)> {
    let mut retry = false;
    slot.uuid = device.uuid().map_err(|e| ("nvmlDeviceGetUUID", e))?;
    if let Some(name) = settle("nvmlDeviceGetName", device.name(), errors, &mut retry)? {
        slot.name = name;
    }
    if let Some(pci) = settle(
        "nvmlDeviceGetPciInfo_v3",
        device.pci_info(),
        errors,
        &mut retry,
    )? {
        slot.pci_bus_id = pci.bus_id;
    }
    let minor = device.minor_number();
    if let Some(minor) = settle("nvmlDeviceGetMinorNumber", minor, errors, &mut retry)? {
        slot.minor_number = Some(minor);
    }
    for &field in ctx.fields {
        let Source::Label(label) = field.def().source else {
            continue;
        };
        let call = field.def().source.call_name();
        let text = match label {
            LabelSource::DriverVersion => ctx
                .system
                .driver_version
                .clone()
                .ok_or(NvmlError::NotSupported),
            LabelSource::NvmlVersion => ctx
                .system
                .nvml_version
                .clone()
                .ok_or(NvmlError::NotSupported),
            LabelSource::Brand => device.brand().map(|b| format!("{b:?}")),
            LabelSource::Serial => device.serial(),
            LabelSource::InfoRom(object) => device.info_rom_version(object),
            LabelSource::InfoRomImage => device.info_rom_image_version(),
            LabelSource::Vbios => device.vbios_version(),
        };
        match settle(call, text, errors, &mut retry)? {
            Some(t) => {
                slot.labels.insert(field, t);
            }
            None => {
                slot.labels.remove(&field);
                log::info!("GPU {}: label {} not available", slot.index, field.name());
            }
        }
    }
    slot.identified = !retry;
    Ok(())
}

/// Reads one source. `Ok(None)`: nothing to report yet (first GPM interval).
fn read<'n>(
    ctx: &Ctx<'_, 'n>,
    device: &Device<'n>,
    source: Source,
    shared: &mut Shared,
    gpm_prev: &mut Option<GpmSample<'n>>,
) -> Result<Option<Value>, NvmlError> {
    let int = |v: u32| Ok(Some(Value::Int(u64::from(v))));
    match source {
        Source::Clock(c) => int(device.clock_info(c)?),
        Source::MaxClock(c) => int(device.max_clock_info(c)?),
        Source::GpuTemp => int(device.temperature(TemperatureSensor::Gpu)?),
        Source::PowerUsage => Ok(Some(Value::Float(
            f64::from(device.power_usage()?) / 1000.0,
        ))),
        Source::TotalEnergy => Ok(Some(Value::Int(device.total_energy_consumption()?))),
        Source::PcieReplay => int(device.pcie_replay_counter()?),
        Source::GpuUtil | Source::MemCopyUtil => {
            let u = shared
                .utilization
                .get_or_insert_with(|| device.utilization_rates())
                .as_ref()
                .map_err(clone_error)?;
            int(if source == Source::GpuUtil {
                u.gpu
            } else {
                u.memory
            })
        }
        Source::EncUtil => int(device.encoder_utilization()?.utilization),
        Source::DecUtil => int(device.decoder_utilization()?.utilization),
        Source::LastXid => Ok(None),
        Source::Violation(policy) => Ok(Some(Value::Int(
            device.violation_status(policy)?.violation_time,
        ))),
        Source::Memory(part) => {
            let m = shared
                .memory
                .get_or_insert_with(|| device.memory_info())
                .as_ref()
                .map_err(clone_error)?;
            let bytes = match part {
                MemoryPart::Free => m.free,
                MemoryPart::Used => m.used,
                MemoryPart::Reserved => m.reserved,
                MemoryPart::Total => m.total,
            };
            Ok(Some(Value::Int(bytes >> 20)))
        }
        Source::Ecc(error, counter) => {
            Ok(Some(Value::Int(device.total_ecc_errors(error, counter)?)))
        }
        Source::RetiredPages(cause) => {
            Ok(Some(Value::Int(device.retired_pages(cause)?.len() as u64)))
        }
        Source::RetiredPending => Ok(Some(Value::Int(u64::from(
            device.are_pages_pending_retired()?,
        )))),
        Source::FieldValue(id) => {
            let values = shared
                .field_values
                .get_or_insert_with(|| read_field_values(device, ctx.field_value_ids))
                .as_ref()
                .map_err(clone_error)?;
            match values.get(&id) {
                Some(Ok(v)) => Ok(Some(*v)),
                Some(Err(e)) => Err(clone_error(e)),
                None => Err(NvmlError::NotSupported),
            }
        }
        Source::Gpm(metric, scale) => {
            let results = shared
                .gpm
                .get_or_insert_with(|| read_gpm(ctx, device, gpm_prev))
                .as_ref()
                .map_err(|e| clone_error(&e.1))?;
            let Some(results) = results else {
                return Ok(None);
            };
            match results.get(&metric) {
                Some(Ok(v)) => Ok(Some(Value::Float(v * scale))),
                Some(Err(e)) => Err(clone_error(e)),
                None => Err(NvmlError::NotSupported),
            }
        }
        Source::FanSpeed => int(device.fan_speed(0)?),
        Source::PState => int(device.performance_state()?.as_c()),
        Source::PowerLimit => Ok(Some(Value::Float(
            f64::from(device.power_management_limit()?) / 1000.0,
        ))),
        Source::EnforcedPowerLimit => Ok(Some(Value::Float(
            f64::from(device.enforced_power_limit()?) / 1000.0,
        ))),
        Source::ThrottleReasons => Ok(Some(Value::Int(device.current_throttle_reasons()?.bits()))),
        Source::PcieThroughput(counter) => int(device.pcie_throughput(counter)?),
        Source::PcieLinkGen => int(device.current_pcie_link_gen()?),
        Source::PcieLinkWidth => int(device.current_pcie_link_width()?),
        Source::Label(_) => Ok(None),
    }
}

fn read_field_values(device: &Device<'_>, ids: &[FieldId]) -> Result<FieldValues, NvmlError> {
    let samples = device.field_values_for(ids)?;
    Ok(ids
        .iter()
        .zip(samples)
        .map(|(id, sample)| {
            let value = sample.and_then(|s| s.value).and_then(|v| match v {
                SampleValue::F64(f) => Ok(Value::Float(f)),
                SampleValue::U32(u) => Ok(Value::Int(u64::from(u))),
                SampleValue::U64(u) => Ok(Value::Int(u)),
                SampleValue::I64(i) => u64::try_from(i)
                    .map(Value::Int)
                    .map_err(|_| NvmlError::NoData),
            });
            (id.0, value)
        })
        .collect())
}

/// Takes this interval's GPM sample; with the previous one, computes the
/// metrics. `Ok(None)` on the first interval.
fn read_gpm<'n>(
    ctx: &Ctx<'_, 'n>,
    device: &Device<'n>,
    prev: &mut Option<GpmSample<'n>>,
) -> Result<GpmValues, (&'static str, NvmlError)> {
    // Allocating and taking the sample are one nvml-wrapper call; a failure
    // of either is counted under the second.
    let sample = device.gpm_sample().map_err(|e| ("nvmlGpmSampleGet", e))?;
    let Some(before) = prev.replace(sample) else {
        return Ok(None);
    };
    let after = prev.as_ref().expect("just stored");
    let results = nvml_wrapper::gpm::gpm_metrics_get(ctx.nvml, &before, after, ctx.gpm_ids)
        .map_err(|e| ("nvmlGpmMetricsGet", e))?;
    Ok(Some(
        ctx.gpm_ids
            .iter()
            .copied()
            .zip(results)
            .map(|(id, r)| (id, r.map(|m| m.value)))
            .collect(),
    ))
}

/// The GPU's processes. `Err` names the call that failed: then no process
/// list is reported this sample (a partial one would read as "gone").
fn read_processes(
    device: &Device<'_>,
    slot: &mut Slot,
    proc_root: &std::path::Path,
    errors: &mut ErrorCounts,
) -> Result<Vec<ProcessSample>, (&'static str, NvmlError)> {
    let mut out: Vec<ProcessSample> = Vec::new();
    for (kind, call) in [
        (
            ProcessKind::Compute,
            "nvmlDeviceGetComputeRunningProcesses_v3",
        ),
        (
            ProcessKind::Graphics,
            "nvmlDeviceGetGraphicsRunningProcesses_v3",
        ),
    ] {
        let list = match kind {
            ProcessKind::Compute => device.running_compute_processes(),
            ProcessKind::Graphics => device.running_graphics_processes(),
        };
        let list = match list {
            Ok(l) => l,
            Err(NvmlError::NotSupported | NvmlError::FunctionNotFound) => continue,
            Err(e) => return Err((call, e)),
        };
        for p in list {
            if out.iter().any(|o| o.pid == p.pid) {
                continue;
            }
            out.push(ProcessSample {
                pid: p.pid,
                identity: ProcessIdentity::default(),
                kind,
                used_memory_bytes: match p.used_gpu_memory {
                    UsedGpuMemory::Used(b) => Some(b),
                    UsedGpuMemory::Unavailable => None,
                },
                sm_util: None,
                mem_util: None,
            });
        }
    }
    if !out.is_empty() {
        match device.process_utilization_stats(slot.last_process_ts) {
            Ok(samples) => {
                for s in samples {
                    slot.last_process_ts = slot.last_process_ts.max(s.timestamp);
                    if let Some(p) = out.iter_mut().find(|p| p.pid == s.pid) {
                        p.sm_util = Some(s.sm_util);
                        p.mem_util = Some(s.mem_util);
                    }
                }
            }
            Err(e) => {
                let call = "nvmlDeviceGetProcessUtilization";
                match verdict(&e) {
                    Verdict::Lost | Verdict::DriverGone => return Err((call, e)),
                    Verdict::Failed => count_error(errors, call, &e),
                    Verdict::Unsupported | Verdict::Absent => {}
                }
                log::debug!("GPU {}: process utilization unavailable: {e}", slot.index);
            }
        }
    }
    out.sort_by_key(|p| p.pid);
    // Keep identities only for live processes: the cache never outgrows the
    // process list.
    let mut known = std::mem::take(&mut slot.identities);
    for p in &mut out {
        let identity = known
            .remove(&p.pid)
            .unwrap_or_else(|| procinfo::identify(proc_root, p.pid));
        p.identity = identity.clone();
        slot.identities.insert(p.pid, identity);
    }
    Ok(out)
}

/// `NvmlError` is not `Clone`; cached shared results hand out equivalents.
fn clone_error(e: &NvmlError) -> NvmlError {
    match e {
        NvmlError::Uninitialized => NvmlError::Uninitialized,
        NvmlError::InvalidArg => NvmlError::InvalidArg,
        NvmlError::NotSupported => NvmlError::NotSupported,
        NvmlError::NoPermission => NvmlError::NoPermission,
        NvmlError::NotFound => NvmlError::NotFound,
        NvmlError::InsufficientSize(s) => NvmlError::InsufficientSize(*s),
        NvmlError::DriverNotLoaded => NvmlError::DriverNotLoaded,
        NvmlError::Timeout => NvmlError::Timeout,
        NvmlError::FunctionNotFound => NvmlError::FunctionNotFound,
        NvmlError::FailedToLoadSymbol(s) => NvmlError::FailedToLoadSymbol(s.clone()),
        NvmlError::GpuLost => NvmlError::GpuLost,
        NvmlError::ResetRequired => NvmlError::ResetRequired,
        NvmlError::LibRmVersionMismatch => NvmlError::LibRmVersionMismatch,
        NvmlError::NoData => NvmlError::NoData,
        NvmlError::InsufficientMemory => NvmlError::InsufficientMemory,
        NvmlError::OperatingSystem => NvmlError::OperatingSystem,
        _ => NvmlError::Unknown,
    }
}

/// Samples on a fixed-rate thread and publishes the latest snapshot.
///
/// Readers call [`BackgroundSampler::latest`], which clones an `Arc` under a
/// lock held for nanoseconds: a slow or hung NVML call delays the next
/// snapshot, never a reader. The thread stops when this value is dropped.
pub struct BackgroundSampler {
    shared: Arc<BgShared>,
    thread: Option<JoinHandle<()>>,
}

type OnSample = Box<dyn FnMut(&Arc<Snapshot>) + Send>;

struct BgShared {
    latest: RwLock<Arc<Snapshot>>,
    /// The sampler and the callback, taken together so that snapshots are
    /// published (and handed to the callback) in the order they were taken.
    engine: Mutex<(Sampler, OnSample)>,
    stop: Mutex<bool>,
    wake: Condvar,
    interval: Duration,
}

impl BgShared {
    fn sample_and_publish(&self) -> Arc<Snapshot> {
        let mut engine = self.engine.lock();
        let (sampler, on_sample) = &mut *engine;
        let snapshot = Arc::new(sampler.sample());
        *self.latest.write() = Arc::clone(&snapshot);
        on_sample(&snapshot);
        snapshot
    }
}

impl std::fmt::Debug for BackgroundSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundSampler")
            .field("interval", &self.shared.interval)
            .field("seq", &self.shared.latest.read().seq)
            .finish()
    }
}

/// How long dropping a [`BackgroundSampler`] waits for an in-flight sample
/// (a hung NVML call) before leaving the thread to finish on its own.
const DROP_WAIT: Duration = Duration::from_secs(5);

impl BackgroundSampler {
    /// Takes a first sample now (so [`latest`](Self::latest) has data at
    /// once), then samples every `interval` on a thread named
    /// `algalon-sampler`. `on_sample` runs after each sample is published —
    /// the exporter pre-encodes its `/metrics` body there, the job tracker
    /// accumulates windows.
    pub fn spawn<F>(mut sampler: Sampler, interval: Duration, mut on_sample: F) -> Result<Self>
    where
        F: FnMut(&Arc<Snapshot>) + Send + 'static,
    {
        if interval < Duration::from_millis(1) {
            return Err(Error::InvalidInterval(interval));
        }
        let first = Arc::new(sampler.sample());
        on_sample(&first);
        let shared = Arc::new(BgShared {
            latest: RwLock::new(first),
            engine: Mutex::new((sampler, Box::new(on_sample))),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            interval,
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("algalon-sampler".into())
            .spawn(move || {
                let mut next = Instant::now() + interval;
                loop {
                    {
                        let mut stop = thread_shared.stop.lock();
                        while !*stop && Instant::now() < next {
                            thread_shared.wake.wait_until(&mut stop, next);
                        }
                        if *stop {
                            return;
                        }
                    }
                    thread_shared.sample_and_publish();
                    next += interval;
                    let now = Instant::now();
                    if next < now {
                        // Sampling took longer than the interval: skip the
                        // missed ticks instead of bursting to catch up.
                        let behind = now - next;
                        let skip = behind.as_nanos() / interval.as_nanos() + 1;
                        next += interval * u32::try_from(skip).unwrap_or(u32::MAX);
                    }
                }
            })?;
        Ok(BackgroundSampler {
            shared,
            thread: Some(thread),
        })
    }

    /// The most recent snapshot.
    pub fn latest(&self) -> Arc<Snapshot> {
        Arc::clone(&self.shared.latest.read())
    }

    /// Takes a sample now, on the calling thread, and publishes it like a
    /// scheduled one (the callback runs too). Job windows use this for exact
    /// boundaries. Waits for an in-flight scheduled sample to finish first.
    pub fn sample_now(&self) -> Arc<Snapshot> {
        self.shared.sample_and_publish()
    }

    /// The sampling interval.
    pub fn interval(&self) -> Duration {
        self.shared.interval
    }

    /// Stops the thread and waits for it (at most one in-flight sample).
    pub fn stop(mut self) {
        self.signal_stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Stops the thread, waiting at most `timeout` for an in-flight sample.
    /// Returns false when the thread was still busy (a hung NVML call); it is
    /// then left to exit on its own when the call returns.
    pub fn stop_timeout(mut self, timeout: Duration) -> bool {
        self.stop_within(timeout)
    }

    fn signal_stop(&self) {
        *self.shared.stop.lock() = true;
        self.shared.wake.notify_all();
    }

    fn stop_within(&mut self, timeout: Duration) -> bool {
        self.signal_stop();
        let Some(thread) = self.thread.take() else {
            return true;
        };
        let deadline = Instant::now() + timeout;
        while !thread.is_finished() {
            if Instant::now() >= deadline {
                log::warn!("the sampling thread is stuck in an NVML call; leaving it behind");
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = thread.join();
        true
    }
}

impl Drop for BackgroundSampler {
    fn drop(&mut self) {
        self.stop_within(DROP_WAIT);
    }
}
