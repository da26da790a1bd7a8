//! One long-lived thread per selected GPU. A sample hands every idle worker
//! a request and waits for the answers, so it takes as long as the slowest
//! GPU, not the sum; a GPU whose call hangs keeps only its own worker.
//!
//! # Which NVML calls run concurrently
//!
//! NVML documents itself as thread-safe ("safe to make simultaneous NVML
//! calls from multiple threads", NVML API Reference). Datadog's agent, which
//! collects NVML in parallel, found two limits in practice: overlapping
//! `nvmlDeviceGetFieldValues` calls on one A100 made NVLink fields read as
//! unsupported (DataDog/datadog-agent PR #54821, which put field values and
//! the GPM sample calls behind library-wide locks), and two
//! `nvmlGpmSampleGet` calls on the same device handle faulted inside the
//! driver (agent 7.82.0). Its wrapper now serialises every call on one
//! device handle and keeps different handles concurrent
//! (`pkg/gpu/safenvml/device_concurrency_test.go`: "native NVML calls must
//! never overlap on the same device handle"; a process-wide lock "would
//! serialize every GPU").
//!
//! Algalon's rule follows from its shape: every call on a GPU — identity,
//! readings, `nvmlDeviceGetFieldValues`, `nvmlGpmSampleGet` /
//! `nvmlGpmMetricsGet`, process lists — is made by that GPU's one worker,
//! one after another, so calls on one handle never overlap; calls on
//! different GPUs run concurrently, field values and GPM included (each
//! reported failure involved one handle). Host-level calls (driver and NVML
//! versions) run on the sampling thread between samples; the XID listener
//! waits on its event set on its own thread, as before. Where a driver
//! misbehaves anyway, `SamplerOptions::parallel = false`
//! (`ALGALON_SERIAL_SAMPLING=1`) reads one GPU at a time through the same
//! workers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};
use std::thread::JoinHandle;

use nvml_wrapper::enums::gpm::GpmMetricId;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::{GpmSample, Nvml};

use super::gpu::{Ctx, sample_gpu};
use super::host::System;
use super::progress::SampleProgress;
use super::slot::Slot;
use crate::catalog::Field;
use crate::nvml_error::{ErrorCounts, FailureLog, GpuErrors};
use crate::snapshot::GpuSample;

/// What every sample reads; fixed for the sampler's life.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) fields: Vec<Field>,
    pub(super) field_value_ids: Vec<FieldId>,
    pub(super) gpm_ids: Vec<GpmMetricId>,
    pub(super) processes: bool,
    pub(super) instances: crate::devices::InstanceSet,
    pub(super) proc_root: PathBuf,
}

/// Read the GPU for sample `seq`.
pub(super) struct Request {
    pub(super) seq: u64,
    pub(super) system: Arc<System>,
}

/// One GPU's answer to a [`Request`].
pub(super) struct Reply {
    /// The worker's position among the selected GPUs.
    pub(super) pos: usize,
    pub(super) seq: u64,
    pub(super) gpu: GpuSample,
    /// NVML itself is gone, not just this GPU.
    pub(super) driver_gone: bool,
    /// The GPU answers again after being down: register its XID events again.
    pub(super) came_back: bool,
    /// How long the read took.
    pub(super) took: std::time::Duration,
    /// This read's NVML failures.
    pub(super) errors: ErrorCounts,
    /// Fields this GPU answered "not supported" for, first time.
    pub(super) newly_unsupported: BTreeMap<Field, Vec<u32>>,
}

/// The sampler's handle on one worker thread.
pub(super) struct Worker {
    requests: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    /// The sample whose request the worker is still reading, if any.
    pub(super) pending: Option<u64>,
}

impl Worker {
    /// Starts the worker of the GPU at `pos` (NVML index `index`).
    pub(super) fn spawn(
        pos: usize,
        index: u32,
        nvml: Arc<Nvml>,
        plan: Arc<Plan>,
        progress: Arc<SampleProgress>,
        replies: Sender<Reply>,
    ) -> std::io::Result<Worker> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("algalon-gpu{index}"))
            .spawn(move || run(pos, index, &nvml, &plan, &progress, &rx, &replies))?;
        Ok(Worker {
            requests: Some(tx),
            thread: Some(thread),
            pending: None,
        })
    }

    /// Hands the worker a request. False when the worker is gone (it
    /// panicked): then it is reported like a GPU that does not answer.
    pub(super) fn send(&mut self, request: Request) -> bool {
        let seq = request.seq;
        let sent = self
            .requests
            .as_ref()
            .is_some_and(|tx| tx.send(request).is_ok());
        if sent {
            self.pending = Some(seq);
        }
        sent
    }

    /// Closes the request channel: the thread exits once it is idle.
    pub(super) fn close(&mut self) {
        self.requests = None;
    }

    /// Waits for an idle worker's thread to exit; a worker still inside an
    /// NVML call is left to exit on its own when the call returns.
    pub(super) fn join_if_idle(&mut self) {
        self.close();
        if self.pending.is_none()
            && let Some(thread) = self.thread.take()
        {
            let _ = thread.join();
        }
    }
}

// Never inlined: `benches/scripts/own-work.py` counts the instructions
// under this symbol (a worker's whole life) with callgrind.
#[inline(never)]
fn run(
    pos: usize,
    index: u32,
    nvml: &Nvml,
    plan: &Plan,
    progress: &SampleProgress,
    requests: &Receiver<Request>,
    replies: &Sender<Reply>,
) {
    let track = progress.gpu(pos);
    let mut slot = Slot::new(index);
    // Borrows `nvml`, which outlives the loop: the GPM baseline of the
    // previous interval stays with the GPU's worker.
    let mut gpm_prev: Option<GpmSample<'_>> = None;
    let mut mig = super::mig::MigMemory::default();
    let mut failures = FailureLog::default();
    let mut was_up = true;
    // The host facts the GPU was identified with: its driver and NVML
    // version labels come from them, so a GPU identified while they were
    // incomplete is identified again when they change.
    let mut identified_with: Option<Arc<System>> = None;
    while let Ok(request) = requests.recv() {
        let started = std::time::Instant::now();
        track.begin();
        if let Some(before) = &identified_with
            && before.retry
            && !Arc::ptr_eq(before, &request.system)
        {
            slot.identified = false;
        }
        if !slot.identified {
            identified_with = Some(Arc::clone(&request.system));
        }
        let ctx = Ctx {
            nvml,
            fields: &plan.fields,
            field_value_ids: &plan.field_value_ids,
            gpm_ids: &plan.gpm_ids,
            system: &request.system,
            processes: plan.processes,
            instances: &plan.instances,
            proc_root: &plan.proc_root,
            progress: track,
        };
        let mut errors = GpuErrors::new(index);
        let mut newly_unsupported = BTreeMap::new();
        let (gpu, driver_gone) = sample_gpu(
            &ctx,
            &mut slot,
            &mut gpm_prev,
            &mut mig,
            &mut errors,
            &mut newly_unsupported,
        );
        track.end();
        let came_back = gpu.up && std::mem::take(&mut slot.was_down);
        failures.update(&errors, &gpu.uuid);
        log_up_down(&gpu, &mut was_up);
        let reply = Reply {
            pos,
            seq: request.seq,
            gpu,
            driver_gone,
            came_back,
            took: started.elapsed(),
            errors: errors.counts,
            newly_unsupported,
        };
        if replies.send(reply).is_err() {
            break;
        }
    }
}

/// Logs a GPU going down and coming back, once each.
fn log_up_down(gpu: &GpuSample, was_up: &mut bool) {
    let (index, uuid) = (gpu.index, gpu.uuid.as_str());
    match (gpu.up, *was_up) {
        (false, true) => {
            let (call, error) = gpu
                .down_reason
                .as_ref()
                .map_or(("", ""), |r| (r.call, r.error.as_str()));
            log::warn!(
                gpu = index, uuid, call, error;
                "GPU {index} ({uuid}) is down: {call} failed: {error}; its readings are \
                 left out and algalon_gpu_up is 0 until it answers"
            );
        }
        (true, false) => log::info!(gpu = index, uuid; "GPU {index} ({uuid}) answers again"),
        _ => {}
    }
    *was_up = gpu.up;
}
