//! `algalon_sampler`: the NVML session, shared by threads and jobs.

use std::sync::Arc;
use std::time::Duration;

use algalon_core::jobs::{GpuChoice, JobSession, SessionOptions};
use algalon_core::{Encoder, Field, SamplerOptions, Snapshot};

use crate::error::{Fail, FfiResult, algalon_result, boundary, boundary_value};
use crate::options::algalon_options;
use crate::snapshot::algalon_snapshot;
use crate::util::{arg_out, arg_ref};

/// Fields `algalon_gpu_sample` reports beyond the core's always-read ones;
/// read whatever the collectors file says (they are not exported unless it
/// lists them).
const STRUCT_FIELDS: &[Field] = &[Field::SmClock, Field::MemClock, Field::EnforcedPowerLimit];

/// A sampler: one NVML session over the selected GPUs.
///
/// Ownership: created by `algalon_sampler_new`, freed by the caller with
/// `algalon_sampler_free`. Snapshots and jobs made from it are separate
/// handles with their own `_free`; they stay valid after the sampler is
/// freed (a job keeps the NVML session open until it is freed too).
///
/// Thread safety: every function that takes a `const algalon_sampler *`
/// may be called from any number of threads at once on the same sampler.
/// Samples are taken one at a time (NVML is read by one thread at a time per
/// sampler; a concurrent `algalon_sampler_sample` waits for the one in
/// flight). `algalon_sampler_free` must be called once, when no other
/// thread is using the sampler.
#[derive(Debug)]
pub struct algalon_sampler {
    pub(crate) inner: Arc<SamplerInner>,
}

/// The core's job session (sampler, jobs, the process's CUDA view) and the
/// encoder of its snapshots.
#[derive(Debug)]
pub(crate) struct SamplerInner {
    pub(crate) session: JobSession,
    pub(crate) encoder: Arc<Encoder>,
}

// The C API shares one sampler across threads.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<algalon_sampler>();
    shareable::<SamplerInner>();
};

fn closed() -> Fail {
    // The C face never closes its session; a sampler outlives its handles.
    Fail::new(algalon_result::CoreError, "the sampler is closed")
}

impl SamplerInner {
    /// Takes a sample now and feeds it to every open job, in sample order.
    pub(crate) fn sample(&self) -> FfiResult<Arc<Snapshot>> {
        self.session.sample().ok_or_else(closed)
    }

    fn latest(&self) -> FfiResult<Arc<Snapshot>> {
        self.session.latest().ok_or_else(closed)
    }
}

/// Opens NVML and selects the GPUs. `opts` may be NULL for the defaults (see
/// `algalon_options_new`); it is not kept and may be freed after the call.
///
/// Jobs of the sampler measure the GPUs it reads that this process can see:
/// `CUDA_VISIBLE_DEVICES` (or `algalon_options_set_visible_devices`)
/// applies, and gives each GPU its CUDA index in the job reports.
///
/// Fails with `ALGALON_RESULT_NVML_NOT_FOUND` when no NVML library loads,
/// `ALGALON_RESULT_NVML_INIT` when NVML refuses to start,
/// `ALGALON_RESULT_NO_SUCH_DEVICE` when a device selector or a
/// `CUDA_VISIBLE_DEVICES` entry matches no GPU,
/// `ALGALON_RESULT_THREAD` when a background thread cannot start;
/// `algalon_last_error` says why and what to do.
///
/// Ownership: on success `*out` is a new sampler the caller frees with
/// `algalon_sampler_free`.
///
/// # Safety
///
/// `opts` must be NULL or a live options handle; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_sampler_new(
    opts: *const algalon_options,
    out: *mut *mut algalon_sampler,
) -> algalon_result {
    boundary("algalon_sampler_new", || {
        let out = arg_out(out, "out")?;
        // SAFETY: NULL or a live handle, by contract.
        let opts = unsafe { opts.as_ref() }.cloned().unwrap_or_default();
        let config = opts.collectors.unwrap_or_default();
        let mut core = SamplerOptions::default().with_collectors(&config);
        for &f in STRUCT_FIELDS {
            if !core.fields.contains(&f) {
                core.fields.push(f);
            }
        }
        core.nvml_lib = opts.nvml_lib;
        core.devices = opts.devices;
        core.processes = opts.processes;
        core.xid_events = opts.xid_events;
        core.hostname = opts.hostname;
        let mut session = SessionOptions::new(core);
        session.gpus = GpuChoice::Sampled;
        session.interval = (opts.interval_ms > 0).then(|| Duration::from_millis(opts.interval_ms));
        if let Some(visible) = opts.visible_devices {
            session.visible_devices = visible;
        }
        let handle = algalon_sampler {
            inner: Arc::new(SamplerInner {
                session: JobSession::new(session)?,
                encoder: Arc::new(Encoder::new(config)),
            }),
        };
        // SAFETY: checked non-NULL; valid by contract.
        unsafe { out.write(Box::into_raw(Box::new(handle))) };
        Ok(())
    })
}

/// Frees a sampler (and stops its background thread, once no job uses it).
/// NULL does nothing.
///
/// # Safety
///
/// `sampler` must be NULL or a handle from `algalon_sampler_new` not freed
/// yet, used by no other thread now or afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_sampler_free(sampler: *mut algalon_sampler) {
    boundary_value((), || {
        if !sampler.is_null() {
            // SAFETY: a live handle from algalon_sampler_new, by contract.
            drop(unsafe { Box::from_raw(sampler) });
        }
    })
}

/// Reads every selected GPU now, on the calling thread, and feeds the
/// snapshot to the sampler's open jobs. A GPU that fails is marked down in
/// the snapshot (`up == false`); the call itself does not fail for it.
///
/// Ownership: on success `*out` is a new snapshot the caller frees with
/// `algalon_snapshot_free`.
///
/// Thread safety: any thread, concurrently with every other `const` call on
/// the same sampler (samples are serialized internally).
///
/// # Safety
///
/// `sampler` must be a live sampler; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_sampler_sample(
    sampler: *const algalon_sampler,
    out: *mut *mut algalon_snapshot,
) -> algalon_result {
    boundary("algalon_sampler_sample", || {
        // SAFETY: the caller's contract.
        let sampler = unsafe { arg_ref(sampler, "sampler") }?;
        let out = arg_out(out, "out")?;
        let snap = sampler.inner.sample()?;
        let handle = algalon_snapshot::new(snap, Arc::clone(&sampler.inner.encoder));
        // SAFETY: checked non-NULL; valid by contract.
        unsafe { out.write(Box::into_raw(Box::new(handle))) };
        Ok(())
    })
}

/// The most recent snapshot, without reading NVML when the sampler has a
/// background thread (`algalon_options_set_interval_ms`): cheap enough for
/// a request path. Without a thread it is the last `algalon_sampler_sample`,
/// or a new sample when there has been none.
///
/// Ownership: on success `*out` is a new snapshot handle (sharing the data)
/// that the caller frees with `algalon_snapshot_free`.
///
/// Thread safety: any thread, concurrently.
///
/// # Safety
///
/// `sampler` must be a live sampler; `out` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_sampler_latest(
    sampler: *const algalon_sampler,
    out: *mut *mut algalon_snapshot,
) -> algalon_result {
    boundary("algalon_sampler_latest", || {
        // SAFETY: the caller's contract.
        let sampler = unsafe { arg_ref(sampler, "sampler") }?;
        let out = arg_out(out, "out")?;
        let snap = sampler.inner.latest()?;
        let handle = algalon_snapshot::new(snap, Arc::clone(&sampler.inner.encoder));
        // SAFETY: checked non-NULL; valid by contract.
        unsafe { out.write(Box::into_raw(Box::new(handle))) };
        Ok(())
    })
}
