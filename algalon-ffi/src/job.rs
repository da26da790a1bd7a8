//! `algalon_job`: a named window over the sampler's GPUs (energy, util,
//! memory per job).

use std::ffi::c_char;
use std::sync::Arc;

use algalon_core::jobs::{
    EnergyScope, EnergySource, GpuReport, JobError, JobReport, JobSpec, WindowId, check_count_name,
};
use parking_lot::Mutex;

use crate::error::{Fail, FfiResult, algalon_result, boundary, boundary_value};
use crate::sampler::{SamplerInner, algalon_sampler};
use crate::snapshot::{ALGALON_NAME_SIZE, ALGALON_UUID_SIZE};
use crate::util::{arg_out, arg_ref, arg_str, fixed, write_str};

/// A job window over the GPUs of its sampler that this process can see
/// (`CUDA_VISIBLE_DEVICES`, see `algalon_options_set_visible_devices`), from
/// `algalon_job_begin` to `algalon_job_end`: the core's job session, the
/// same one the Python package's `Monitor` wraps, so the same run gives the
/// same report (`algalon_job_report_json`) in both.
///
/// Energy is the difference of NVML's energy counter between the boundary
/// samples that begin and end take (power integrated over the samples for a
/// GPU without a counter; `algalon_job_gpu_report.energy_source` says
/// which). Every sample the sampler takes in between — by any thread, or by
/// its background thread — is counted too, so a background interval gives
/// mean/peak readings over the job. Jobs nest and overlap freely. Labels
/// come from the environment (`SLURM_JOB_ID`, torchrun `RANK`, Kubernetes
/// pod, …). With per-process readings on (`algalon_options_set_processes`),
/// the memory of the job's own processes — this process, its descendants
/// and any `algalon_job_add_pid` — is recorded too.
///
/// Ownership: created by `algalon_job_begin`, freed by the caller with
/// `algalon_job_free` (ended or not). The job keeps its sampler's NVML
/// session alive, so it may outlive `algalon_sampler_free`.
///
/// Thread safety: all functions taking `const algalon_job *` may be called
/// from any thread, concurrently; `algalon_job_end` and
/// `algalon_job_add_count` too (they lock). `algalon_job_free` once, when no
/// other thread uses the job.
#[derive(Debug)]
pub struct algalon_job {
    sampler: Arc<SamplerInner>,
    id: WindowId,
    /// The final report once ended.
    ended: Mutex<Option<JobReport>>,
}

impl algalon_job {
    /// The final report, or the report so far while the job runs.
    fn report(&self) -> FfiResult<JobReport> {
        if let Some(r) = self.ended.lock().as_ref() {
            return Ok(r.clone());
        }
        self.sampler.session.peek(self.id).ok_or_else(|| {
            Fail::new(
                algalon_result::AlreadyEnded,
                "the job's window is no longer open",
            )
        })
    }
}

/// Where a GPU's job energy comes from.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum algalon_energy_source {
    /// Energy is unknown (`has_energy` is false).
    None = 0,
    /// The difference of NVML's total-energy counter (mJ resolution).
    Counter = 1,
    /// Power samples integrated over time (GPUs without an energy counter,
    /// or windows shorter than the counter's resolution).
    Integrated = 2,
}

/// Whose energy and power an `algalon_job_gpu_report` gives.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum algalon_energy_scope {
    /// The device measured is a whole GPU: the energy is its own.
    Gpu = 0,
    /// The device measured is a MIG instance (`is_mig`): energy and power
    /// are its parent GPU's as a whole, shared by all the GPU's instances
    /// (NVML measures none per instance); `energy_estimate_j` is the
    /// instance's share.
    ParentGpu = 1,
}

/// Totals of a job, written by `algalon_job_end`. A plain struct the caller
/// owns.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct algalon_job_report {
    /// Unix time of the first (begin) sample, seconds.
    pub started_at: f64,
    /// Unix time of the last (end) sample, seconds.
    pub ended_at: f64,
    /// `ended_at - started_at`, seconds.
    pub duration_s: f64,
    /// Whether `energy_j` is known (at least one whole GPU's energy is).
    pub has_energy: bool,
    /// Sum of the whole GPUs' energy during the job, joules (a MIG
    /// device's parent energy is shared and not counted here).
    pub energy_j: f64,
    /// GPUs in the report; read each with `algalon_job_gpu`.
    pub gpu_count: usize,
    /// Whether `energy_estimate_j` is set: the job ran on MIG devices.
    pub has_energy_estimate: bool,
    /// `energy_j` plus each MIG device's `energy_estimate_j`, joules — an
    /// estimate.
    pub energy_estimate_j: f64,
}

/// What a job saw on one GPU. A plain struct the caller owns; each optional
/// value has a `has_*` flag (false: absent, value 0 to be ignored).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct algalon_job_gpu_report {
    /// NVML index.
    pub index: u32,
    /// `GPU-…` UUID, NUL-terminated.
    pub uuid: [c_char; ALGALON_UUID_SIZE],
    /// Model name, NUL-terminated.
    pub name: [c_char; ALGALON_NAME_SIZE],
    /// Whether `energy_j` is known.
    pub has_energy: bool,
    /// Energy used during the job, joules.
    pub energy_j: f64,
    /// How `energy_j` was obtained.
    pub energy_source: algalon_energy_source,
    /// Whether `util_mean_percent` / `util_max_percent` are known.
    pub has_util: bool,
    /// Mean GPU utilization over the samples, %.
    pub util_mean_percent: f64,
    /// Highest GPU utilization seen, %.
    pub util_max_percent: f64,
    /// Whether `memory_peak_bytes` is known.
    pub has_memory_peak: bool,
    /// Highest framebuffer memory used, bytes.
    pub memory_peak_bytes: u64,
    /// Whether `power_mean_w` / `power_max_w` are known.
    pub has_power: bool,
    /// Mean power draw, W: `energy_j` ÷ the duration when the energy comes
    /// from the GPU's counter, else the mean of the power samples.
    pub power_mean_w: f64,
    /// Highest power draw, W.
    pub power_max_w: f64,
    /// Whether `temperature_max_c` is known.
    pub has_temperature: bool,
    /// Highest GPU temperature, °C.
    pub temperature_max_c: f64,
    /// Samples of this GPU in the job (with the GPU up).
    pub samples: u64,
    /// Whether `process_memory_peak_bytes` is known (per-process readings
    /// on, and NVML gave the job's processes' memory).
    pub has_process_memory_peak: bool,
    /// Highest GPU memory used by the job's own processes, bytes.
    pub process_memory_peak_bytes: u64,
    /// Whether this process sees the GPU (`cuda_index` is set).
    pub has_cuda_index: bool,
    /// The GPU's CUDA index in this process (`cuda:N`).
    pub cuda_index: u32,
    /// Whether the GPU was down during part of the job (lost, failing):
    /// its readings stop there; `algalon_job_report_json` says why.
    pub was_down: bool,
    /// Whose energy and power these are: `ALGALON_ENERGY_SCOPE_PARENT_GPU`
    /// for a MIG device (its parent GPU's, shared by its instances).
    pub energy_scope: algalon_energy_scope,
    /// Whether `energy_estimate_j` is set (a MIG device whose energy and
    /// compute slices are known).
    pub has_energy_estimate: bool,
    /// A MIG device's share of its parent GPU's `energy_j` by compute
    /// slices (`mig_slices` / `mig_parent_slices`), joules — an estimate.
    pub energy_estimate_j: f64,
    /// Whether the device measured is a MIG instance of this GPU (the
    /// `CUDA_VISIBLE_DEVICES` entry was `MIG-…`): `index`, `uuid` and
    /// `name` are then the parent GPU's, `memory_peak_bytes` the
    /// instance's, and the `mig_*` fields below are set.
    pub is_mig: bool,
    /// The MIG device's `MIG-…` UUID, NUL-terminated.
    pub mig_uuid: [c_char; ALGALON_UUID_SIZE],
    /// Its profile (`1g.10gb`, `3g.40gb`, …), NUL-terminated.
    pub mig_profile: [c_char; ALGALON_NAME_SIZE],
    /// Whether `mig_gpu_instance_id` / `mig_compute_instance_id` are known.
    pub has_mig_instance_ids: bool,
    /// GPU instance id (dcgm-exporter's `GPU_I_ID`).
    pub mig_gpu_instance_id: u32,
    /// Compute instance id.
    pub mig_compute_instance_id: u32,
    /// Compute slices of the instance (0: unknown).
    pub mig_slices: u32,
    /// Compute slices of the whole parent GPU (0: unknown).
    pub mig_parent_slices: u32,
    /// Whether `mig_memory_total_bytes` is known.
    pub has_mig_memory_total: bool,
    /// The instance's framebuffer size, bytes.
    pub mig_memory_total_bytes: u64,
    /// Whether `mig_sm_active_mean` is known (GPUs with GPM).
    pub has_mig_sm_active: bool,
    /// Mean `DCGM_FI_PROF_SM_ACTIVE` of the instance (0-1).
    pub mig_sm_active_mean: f64,
    /// Whether `mig_sm_occupancy_mean` is known.
    pub has_mig_sm_occupancy: bool,
    /// Mean `DCGM_FI_PROF_SM_OCCUPANCY` of the instance (0-1).
    pub mig_sm_occupancy_mean: f64,
    /// Whether `mig_tensor_active_mean` is known.
    pub has_mig_tensor_active: bool,
    /// Mean `DCGM_FI_PROF_PIPE_TENSOR_ACTIVE` of the instance (0-1).
    pub mig_tensor_active_mean: f64,
    /// Whether `mig_dram_active_mean` is known.
    pub has_mig_dram_active: bool,
    /// Mean `DCGM_FI_PROF_DRAM_ACTIVE` of the instance (0-1).
    pub mig_dram_active_mean: f64,
    /// Processes NVML listed on the instance during the job (the job's
    /// own and others'); the PIDs are in `algalon_job_report_json`.
    pub mig_process_count: usize,
    /// Whether the instance was destroyed during the job: its readings and
    /// energy stop there (the job goes on).
    pub mig_destroyed: bool,
}

impl From<&GpuReport> for algalon_job_gpu_report {
    fn from(g: &GpuReport) -> Self {
        let util = g.util_mean.zip(g.util_max);
        let power = g.power_mean_w.zip(g.power_max_w);
        let mig = g.mig.as_ref();
        let ids = mig.and_then(|m| m.gpu_instance_id.zip(m.compute_instance_id));
        let mem_total = mig.and_then(|m| m.memory_total_bytes);
        let gpm = [
            mig.and_then(|m| m.sm_active_mean),
            mig.and_then(|m| m.sm_occupancy_mean),
            mig.and_then(|m| m.tensor_active_mean),
            mig.and_then(|m| m.dram_active_mean),
        ];
        algalon_job_gpu_report {
            index: g.index,
            uuid: fixed(&g.uuid),
            name: fixed(&g.name),
            has_energy: g.energy_j.is_some(),
            energy_j: g.energy_j.unwrap_or(0.0),
            energy_source: match (g.energy_j, g.energy_source) {
                (Some(_), Some(EnergySource::Counter)) => algalon_energy_source::Counter,
                (Some(_), Some(EnergySource::Integrated)) => algalon_energy_source::Integrated,
                _ => algalon_energy_source::None,
            },
            has_util: util.is_some(),
            util_mean_percent: util.map_or(0.0, |u| u.0),
            util_max_percent: util.map_or(0.0, |u| u.1),
            has_memory_peak: g.memory_peak_bytes.is_some(),
            memory_peak_bytes: g.memory_peak_bytes.unwrap_or(0),
            has_power: power.is_some(),
            power_mean_w: power.map_or(0.0, |p| p.0),
            power_max_w: power.map_or(0.0, |p| p.1),
            has_temperature: g.temperature_max_c.is_some(),
            temperature_max_c: g.temperature_max_c.unwrap_or(0.0),
            samples: g.samples,
            has_process_memory_peak: g.process_memory_peak_bytes.is_some(),
            process_memory_peak_bytes: g.process_memory_peak_bytes.unwrap_or(0),
            has_cuda_index: g.cuda_index.is_some(),
            cuda_index: g.cuda_index.unwrap_or(0),
            was_down: g.down_reason.is_some(),
            energy_scope: match g.energy_scope {
                EnergyScope::Gpu => algalon_energy_scope::Gpu,
                EnergyScope::ParentGpu => algalon_energy_scope::ParentGpu,
            },
            has_energy_estimate: g.energy_estimate_j.is_some(),
            energy_estimate_j: g.energy_estimate_j.unwrap_or(0.0),
            is_mig: mig.is_some(),
            mig_uuid: fixed(mig.map_or("", |m| m.uuid.as_str())),
            mig_profile: fixed(mig.map_or("", |m| m.profile.as_str())),
            has_mig_instance_ids: ids.is_some(),
            mig_gpu_instance_id: ids.map_or(0, |i| i.0),
            mig_compute_instance_id: ids.map_or(0, |i| i.1),
            mig_slices: mig.and_then(|m| m.slices).unwrap_or(0),
            mig_parent_slices: mig.and_then(|m| m.parent_slices).unwrap_or(0),
            has_mig_memory_total: mem_total.is_some(),
            mig_memory_total_bytes: mem_total.unwrap_or(0),
            has_mig_sm_active: gpm[0].is_some(),
            mig_sm_active_mean: gpm[0].unwrap_or(0.0),
            has_mig_sm_occupancy: gpm[1].is_some(),
            mig_sm_occupancy_mean: gpm[1].unwrap_or(0.0),
            has_mig_tensor_active: gpm[2].is_some(),
            mig_tensor_active_mean: gpm[2].unwrap_or(0.0),
            has_mig_dram_active: gpm[3].is_some(),
            mig_dram_active_mean: gpm[3].unwrap_or(0.0),
            mig_process_count: mig.map_or(0, |m| m.pids.len()),
            mig_destroyed: mig.is_some_and(|m| m.destroyed_at.is_some()),
        }
    }
}

impl From<&JobReport> for algalon_job_report {
    fn from(r: &JobReport) -> Self {
        algalon_job_report {
            started_at: r.started_at,
            ended_at: r.ended_at,
            duration_s: r.duration_s,
            has_energy: r.energy_j.is_some(),
            energy_j: r.energy_j.unwrap_or(0.0),
            gpu_count: r.gpus.len(),
            has_energy_estimate: r.energy_estimate_j.is_some(),
            energy_estimate_j: r.energy_estimate_j.unwrap_or(0.0),
        }
    }
}

/// Opens a job window named `name` over the GPUs of `sampler` this process
/// can see and takes its first boundary sample now (on the calling thread).
///
/// Ownership: on success `*out` is a new job the caller frees with
/// `algalon_job_free`.
///
/// Thread safety: any thread, concurrently with other calls on the sampler.
///
/// # Safety
///
/// `sampler` must be a live sampler; `name` a NUL-terminated UTF-8 string;
/// `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_job_begin(
    sampler: *const algalon_sampler,
    name: *const c_char,
    out: *mut *mut algalon_job,
) -> algalon_result {
    boundary("algalon_job_begin", || {
        // SAFETY: the caller's contract.
        let sampler = unsafe { arg_ref(sampler, "sampler") }?;
        // SAFETY: the caller's contract.
        let name = unsafe { arg_str(name, "name") }?;
        let out = arg_out(out, "out")?;
        if name.trim().is_empty() {
            return Err(Fail::new(
                algalon_result::InvalidArgument,
                "argument `name` is empty: give the job a name",
            ));
        }
        let inner = Arc::clone(&sampler.inner);
        // The session takes the opening boundary sample.
        let id = inner
            .session
            .begin(JobSpec {
                name: name.to_owned(),
                ..JobSpec::default()
            })
            .map_err(job_fail)?;
        let job = algalon_job {
            sampler: inner,
            id,
            ended: Mutex::new(None),
        };
        // SAFETY: checked non-NULL; valid by contract.
        unsafe { out.write(Box::into_raw(Box::new(job))) };
        Ok(())
    })
}

/// A core job error as a result code and message.
fn job_fail(e: JobError) -> Fail {
    let code = match e {
        JobError::Invalid(_) => algalon_result::InvalidArgument,
        JobError::NotOpen(_) => algalon_result::AlreadyEnded,
        _ => algalon_result::CoreError,
    };
    Fail::new(code, e.to_string())
}

impl Drop for algalon_job {
    fn drop(&mut self) {
        if self.ended.get_mut().is_none() {
            // Close the window so the tracker does not feed it forever.
            self.sampler.session.abandon(self.id, None);
        }
    }
}

/// Takes the closing boundary sample, ends the job and writes its totals to
/// `*out`. Per-GPU figures: `algalon_job_gpu`; a table: `algalon_job_table`.
/// `ALGALON_RESULT_ALREADY_ENDED` on a second call (`*out` untouched).
///
/// Ownership: `*out` is the caller's struct. The job handle stays valid
/// (for `algalon_job_gpu` / `algalon_job_table`) until `algalon_job_free`.
///
/// # Safety
///
/// `job` must be a live job; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_job_end(
    job: *const algalon_job,
    out: *mut algalon_job_report,
) -> algalon_result {
    boundary("algalon_job_end", || {
        // SAFETY: the caller's contract.
        let job = unsafe { arg_ref(job, "job") }?;
        let out = arg_out(out, "out")?;
        let mut ended = job.ended.lock();
        if ended.is_some() {
            return Err(Fail::new(
                algalon_result::AlreadyEnded,
                "the job has already ended (algalon_job_end was called before)",
            ));
        }
        let report = job.sampler.session.end(job.id, None).ok_or_else(|| {
            Fail::new(
                algalon_result::AlreadyEnded,
                "the job's window is no longer open",
            )
        })?;
        let summary = algalon_job_report::from(&report);
        *ended = Some(report);
        // SAFETY: checked non-NULL; valid by contract.
        unsafe { out.write(summary) };
        Ok(())
    })
}

/// Frees a job; a job not ended yet is ended without a closing sample and
/// its report discarded. NULL does nothing.
///
/// # Safety
///
/// `job` must be NULL or a job handle not freed yet, used by no other
/// thread now or afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_job_free(job: *mut algalon_job) {
    boundary_value((), || {
        if !job.is_null() {
            // SAFETY: a live handle from algalon_job_begin, by contract.
            drop(unsafe { Box::from_raw(job) });
        }
    })
}

/// Adds `n` to a progress count of the job (`"tokens"`, `"samples"`, …);
/// the table then shows the energy per unit (J per token). Names are those
/// Python's `job.count` takes: `samples`, `tokens`, `steps`, `batches`,
/// `epochs`, `sequences`, `images`, `requests`.
/// `ALGALON_RESULT_ALREADY_ENDED` once the job has ended;
/// `ALGALON_RESULT_INVALID_ARGUMENT` for another name (the last error lists
/// the valid ones) or a non-finite `n`.
///
/// # Safety
///
/// `job` must be a live job; `what` a NUL-terminated UTF-8 string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_job_add_count(
    job: *const algalon_job,
    what: *const c_char,
    n: f64,
) -> algalon_result {
    boundary("algalon_job_add_count", || {
        // SAFETY: the caller's contract.
        let job = unsafe { arg_ref(job, "job") }?;
        // SAFETY: the caller's contract.
        let what = unsafe { arg_str(what, "what") }?;
        if what.is_empty() || !n.is_finite() {
            return Err(Fail::new(
                algalon_result::InvalidArgument,
                format!("cannot add {n} to count {what:?}: give a name and a finite number"),
            ));
        }
        check_count_name(what)
            .map_err(|e| Fail::new(algalon_result::InvalidArgument, e.to_string()))?;
        let ended = job.ended.lock();
        if ended.is_some() || job.sampler.session.count(job.id, what, n).is_err() {
            return Err(Fail::new(
                algalon_result::AlreadyEnded,
                "the job has already ended",
            ));
        }
        Ok(())
    })
}

/// Copies what the job saw on its `i`-th GPU (0 ≤ i <
/// `algalon_job_report.gpu_count`, in NVML index order) into `*out`: the
/// final figures after `algalon_job_end`, the figures so far before it.
/// `ALGALON_RESULT_OUT_OF_RANGE` when `i` is too large.
///
/// # Safety
///
/// `job` must be a live job; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_job_gpu(
    job: *const algalon_job,
    i: usize,
    out: *mut algalon_job_gpu_report,
) -> algalon_result {
    boundary("algalon_job_gpu", || {
        // SAFETY: the caller's contract.
        let job = unsafe { arg_ref(job, "job") }?;
        let out = arg_out(out, "out")?;
        let report = job.report()?;
        let gpu = report.gpus.get(i).ok_or_else(|| {
            Fail::new(
                algalon_result::OutOfRange,
                format!(
                    "GPU position {i} is out of range: the job covers {} GPU(s)",
                    report.gpus.len()
                ),
            )
        })?;
        let value = algalon_job_gpu_report::from(gpu);
        // SAFETY: checked non-NULL; valid by contract.
        unsafe { out.write(value) };
        Ok(())
    })
}

/// Copies a readable table of the job (one line per GPU: energy and its
/// source, mean/max util, peak memory, mean/max power, max temperature,
/// samples; then the total) into `buf` by the string protocol (see
/// `algalon_last_error`). Final after `algalon_job_end`, so far before —
/// while the job runs, a sample between the size probe and the copy can
/// make the table longer, so retry on `ALGALON_RESULT_INSUFFICIENT_SIZE`.
///
/// # Safety
///
/// `job` must be a live job; `buf` valid for `len` bytes of writes (or NULL
/// with `len` 0); `out_n` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_job_table(
    job: *const algalon_job,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> algalon_result {
    boundary("algalon_job_table", || {
        // SAFETY: the caller's contract.
        let job = unsafe { arg_ref(job, "job") }?;
        let table = job.report()?.table();
        // SAFETY: the caller's contract.
        unsafe { write_str(&table, buf, len, out_n) }
    })
}

/// Counts the GPU memory of process `pid` as the job's own from the next
/// sample on, besides this process and its descendants (a worker started
/// outside this process tree). Needs per-process readings
/// (`algalon_options_set_processes`). `ALGALON_RESULT_ALREADY_ENDED` once
/// the job has ended.
///
/// # Safety
///
/// `job` must be a live job.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_job_add_pid(job: *const algalon_job, pid: u32) -> algalon_result {
    boundary("algalon_job_add_pid", || {
        // SAFETY: the caller's contract.
        let job = unsafe { arg_ref(job, "job") }?;
        let ended = job.ended.lock();
        if ended.is_some() {
            return Err(Fail::new(
                algalon_result::AlreadyEnded,
                "the job has already ended",
            ));
        }
        job.sampler
            .session
            .add_pids(job.id, &[pid])
            .map_err(job_fail)
    })
}

/// Copies the job's report as JSON into `buf` by the string protocol (see
/// `algalon_last_error`): the schema the Python package's
/// `Report.to_json` / `Report.from_json` write and read (`"schema": 4`),
/// with every figure of `algalon_job_report` and `algalon_job_gpu_report`
/// plus the job's globally unique `id` (a UUID, the `job_id` label of its
/// series), labels, counts, CUDA indices, notes and lost GPUs' reasons. Final
/// after `algalon_job_end`, so far before (`"running": true`) — while the
/// job runs, a sample between the size probe and the copy can change the
/// text, so retry on `ALGALON_RESULT_INSUFFICIENT_SIZE`.
///
/// # Safety
///
/// `job` must be a live job; `buf` valid for `len` bytes of writes (or NULL
/// with `len` 0); `out_n` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_job_report_json(
    job: *const algalon_job,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> algalon_result {
    boundary("algalon_job_report_json", || {
        // SAFETY: the caller's contract.
        let job = unsafe { arg_ref(job, "job") }?;
        let json = job.report()?.to_json();
        // SAFETY: the caller's contract.
        unsafe { write_str(&json, buf, len, out_n) }
    })
}
