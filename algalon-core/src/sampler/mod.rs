//! The sampler: the only code that talks to NVML.
//!
//! [`Sampler::sample`] reads every selected GPU once and returns a
//! [`Snapshot`]. [`BackgroundSampler`](crate::BackgroundSampler) calls it on a fixed-rate thread and
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
//! `select` resolves device selectors, `slot` is what is kept per GPU
//! between samples, `gpu` reads one GPU (identity, labels, every catalog
//! source), and `processes` its process list. The background thread is
//! [`crate::background`]'s; how an NVML error affects a reading is
//! [`crate::nvml_error`]'s, shared with the XID listener.

mod gpu;
mod host;
mod load;
mod processes;
mod select;
mod slot;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Instant, SystemTime};

use nvml_wrapper::enums::gpm::GpmMetricId;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::{GpmSample, Nvml};

use crate::catalog::{Field, Source};
use crate::collectors::CollectorConfig;
use crate::error::Result;
use crate::nvml_error::ErrorCounts;
use crate::snapshot::{CallError, DownReason, Snapshot};
use crate::xid::XidListener;
use gpu::{Ctx, attach_xids, sample_gpu};
use host::{System, read_system};
pub use load::NVML_LIB_ENV;
use load::open_nvml;
use select::select_devices;
use slot::{Slot, slot_sample};

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
    /// Loads NVML and selects the GPUs. Fails with
    /// [`Error::NvmlNotFound`](crate::Error::NvmlNotFound) when no library
    /// loads, [`Error::NvmlInit`](crate::Error::NvmlInit) when NVML refuses
    /// to start, and [`Error::NoSuchDevice`](crate::Error::NoSuchDevice)
    /// when a device selector matches no GPU.
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
        let slots: Vec<Slot> = select_devices(&nvml, options.devices.as_deref())?
            .into_iter()
            .map(Slot::new)
            .collect();
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
