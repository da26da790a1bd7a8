//! Where each GPU's worker is: idle, or inside an NVML call since when and
//! in which reading. The sampler names a GPU that hangs from it, and so can
//! another thread (`/health`) while a sample waits.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::catalog::{CATALOG, Field};
use crate::snapshot::GpuSample;

/// What a GPU's worker is reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Getting the device handle.
    Handle,
    /// Reading identity and label fields.
    Identify,
    /// Reading one field.
    Field(Field),
    /// Reading the process lists.
    Processes,
}

impl Stage {
    const HANDLE: u32 = 0;
    const IDENTIFY: u32 = 1;
    const PROCESSES: u32 = 2;
    const FIELD: u32 = 16;

    fn code(self) -> u32 {
        match self {
            Stage::Handle => Self::HANDLE,
            Stage::Identify => Self::IDENTIFY,
            Stage::Processes => Self::PROCESSES,
            Stage::Field(f) => Self::FIELD + f as u32,
        }
    }

    fn from_code(code: u32) -> Stage {
        match code {
            Self::IDENTIFY => Stage::Identify,
            Self::PROCESSES => Stage::Processes,
            c => match c
                .checked_sub(Self::FIELD)
                .and_then(|i| CATALOG.get(i as usize))
            {
                Some(def) => Stage::Field(def.field),
                None => Stage::Handle,
            },
        }
    }

    /// The NVML function this stage is in (the first one, for a stage that
    /// makes several calls).
    pub(super) fn call(self) -> &'static str {
        match self {
            Stage::Handle => "nvmlDeviceGetHandleByIndex_v2",
            Stage::Identify => "nvmlDeviceGetUUID",
            Stage::Processes => "nvmlDeviceGetComputeRunningProcesses_v3",
            Stage::Field(f) => f.def().source.call_name(),
        }
    }

    /// What the worker was doing, in words.
    pub(super) fn doing(self) -> String {
        match self {
            Stage::Handle => "getting its device handle".to_owned(),
            Stage::Identify => "reading its identity (UUID, name, PCI bus id, labels)".to_owned(),
            Stage::Processes => "reading its process list".to_owned(),
            Stage::Field(f) => format!("reading {}", f.name()),
        }
    }
}

/// One GPU's worker, as seen from other threads.
#[derive(Debug)]
pub(super) struct GpuProgress {
    index: u32,
    /// Nanoseconds since [`SampleProgress`]'s base when the current read
    /// started, plus one; 0 while idle.
    busy_since: AtomicU64,
    stage: AtomicU32,
    /// The GPU's identity as last read, so that a GPU that hangs before its
    /// first answer is still reported under its UUID.
    identity: Mutex<Option<GpuSample>>,
    base: Instant,
}

impl GpuProgress {
    /// The worker starts reading.
    pub(super) fn begin(&self) {
        let ns = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        self.stage.store(Stage::HANDLE, Ordering::Relaxed);
        self.busy_since.store(ns + 1, Ordering::Release);
    }

    /// The worker finished reading.
    pub(super) fn end(&self) {
        self.busy_since.store(0, Ordering::Release);
    }

    /// The worker moves on to `stage` (one relaxed store).
    pub(super) fn at(&self, stage: Stage) {
        self.stage.store(stage.code(), Ordering::Relaxed);
    }

    /// The worker (re)identified the GPU.
    pub(super) fn identified(&self, identity: GpuSample) {
        *self.identity.lock() = Some(identity);
    }

    /// The identity last read, if any.
    pub(super) fn identity(&self) -> Option<GpuSample> {
        self.identity.lock().clone()
    }

    /// How long the worker has been in its current read, and where; `None`
    /// while idle.
    pub(super) fn busy(&self) -> Option<(Duration, Stage)> {
        let since = self.busy_since.load(Ordering::Acquire);
        if since == 0 {
            return None;
        }
        let now = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let stage = Stage::from_code(self.stage.load(Ordering::Relaxed));
        Some((Duration::from_nanos(now.saturating_sub(since - 1)), stage))
    }
}

/// Which GPUs a [`Sampler`](crate::Sampler) is reading at this moment, each
/// on its own worker thread: when a GPU's NVML call hangs, this names it
/// (`/health` says so). A few relaxed stores per GPU per sample.
#[derive(Debug)]
pub struct SampleProgress {
    gpus: Vec<GpuProgress>,
}

impl SampleProgress {
    pub(super) fn new(indices: &[u32]) -> Self {
        let base = Instant::now();
        SampleProgress {
            gpus: indices
                .iter()
                .map(|&index| GpuProgress {
                    index,
                    busy_since: AtomicU64::new(0),
                    stage: AtomicU32::new(Stage::HANDLE),
                    identity: Mutex::new(None),
                    base,
                })
                .collect(),
        }
    }

    /// The worker of the selected GPU at `pos`.
    pub(super) fn gpu(&self, pos: usize) -> &GpuProgress {
        &self.gpus[pos]
    }

    /// The NVML index of the GPU whose read has been in NVML longest (the
    /// one a sample waits for, or one that hangs); `None` while no GPU is
    /// being read.
    pub fn current_gpu(&self) -> Option<u32> {
        self.gpus
            .iter()
            .filter_map(|g| g.busy().map(|(d, _)| (d, g.index)))
            .max_by_key(|&(d, _)| d)
            .map(|(_, index)| index)
    }

    /// The GPUs being read now, with how long each has been in its read.
    pub fn busy_gpus(&self) -> Vec<(u32, Duration)> {
        self.gpus
            .iter()
            .filter_map(|g| g.busy().map(|(d, _)| (g.index, d)))
            .collect()
    }
}
