//! GPU Performance Monitoring: samples record (GPU, MIG device, scenario
//! time); metrics are the scenario's `gpm` values — the GPU's, or for MIG
//! samples the GPU instance's own — averaged over the two samples' times
//! (the value at the second sample's time when both coincide, as with a
//! frozen clock).

use std::collections::HashMap;
use std::ffi::c_uint;
use std::sync::LazyLock;

use nvml_wrapper_sys::bindings::{
    NVML_GPM_METRICS_GET_VERSION, NVML_GPM_SUPPORT_VERSION, nvmlDevice_t, nvmlGpmMetric_t,
    nvmlGpmMetricsGet_t, nvmlGpmSample_t, nvmlGpmSupport_t, nvmlReturn_t,
};
use parking_lot::Mutex;

use super::{Cx, device_call, gate, guard, non_null, put, supported, system_call};
use crate::names;
use crate::names::entry;
use crate::scenario::Gpm;
use crate::state::{self, rc};

#[derive(Debug, Clone, Copy, PartialEq)]
struct Taken {
    gpu: u32,
    /// The MIG device (its slot) of a `nvmlGpmMigSampleGet` sample.
    mig: Option<usize>,
    t: f64,
}

#[derive(Debug, Default)]
struct Sample {
    taken: Option<Taken>,
}

/// Live samples, keyed by the address of their boxed state (the handle;
/// compared, never dereferenced).
static SAMPLES: LazyLock<Mutex<HashMap<usize, Box<Sample>>>> = LazyLock::new(Mutex::default);

fn gpm<'a>(cx: &Cx<'a>) -> Option<&'a Gpm> {
    cx.dev.spec.gpm.as_ref().filter(|g| g.supported)
}

/// `nvmlGpmQueryDeviceSupport`: `gpm.supported` (false without a `gpm`
/// block); `version` must be `NVML_GPM_SUPPORT_VERSION`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlGpmQueryDeviceSupport(
    device: nvmlDevice_t,
    gpmSupport: *mut nvmlGpmSupport_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlGpmQueryDeviceSupport, device, |cx| {
        let out = non_null(gpmSupport)?;
        // SAFETY: non-null and valid per NVML's contract.
        let version = unsafe { (*out).version };
        if version != NVML_GPM_SUPPORT_VERSION {
            return Err(rc::ARGUMENT_VERSION_MISMATCH);
        }
        let answer = nvmlGpmSupport_t {
            version,
            isSupportedDevice: c_uint::from(gpm(cx).is_some()),
        };
        unsafe { put(out, answer) };
        Ok(())
    })
}

/// `nvmlGpmQueryIfStreamingEnabled`: 0 (streaming is not modelled).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlGpmQueryIfStreamingEnabled(
    device: nvmlDevice_t,
    state: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlGpmQueryIfStreamingEnabled, device, |cx| {
        let out = non_null(state)?;
        supported(gpm(cx))?;
        unsafe { put(out, 0) };
        Ok(())
    })
}

/// `nvmlGpmSetStreamingEnabled`: accepted on GPM-capable GPUs (no effect).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlGpmSetStreamingEnabled(
    device: nvmlDevice_t,
    _state: c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlGpmSetStreamingEnabled, device, |cx| {
        supported(gpm(cx)).map(drop)
    })
}

/// `nvmlGpmSampleAlloc`: a new sample handle (free with
/// `nvmlGpmSampleFree`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlGpmSampleAlloc(gpmSample: *mut nvmlGpmSample_t) -> nvmlReturn_t {
    system_call(entry::nvmlGpmSampleAlloc, |_, _| {
        let out = non_null(gpmSample)?;
        let sample = Box::<Sample>::default();
        let key = std::ptr::from_ref(sample.as_ref()) as usize;
        SAMPLES.lock().insert(key, sample);
        unsafe { put(out, key as nvmlGpmSample_t) };
        Ok(())
    })
}

/// `nvmlGpmSampleFree`: releases a sample; unknown handles →
/// `NVML_ERROR_INVALID_ARGUMENT` (never a double free).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlGpmSampleFree(gpmSample: nvmlGpmSample_t) -> nvmlReturn_t {
    system_call(entry::nvmlGpmSampleFree, |_, _| {
        SAMPLES
            .lock()
            .remove(&(gpmSample as usize))
            .map(drop)
            .ok_or(rc::INVALID_ARGUMENT)
    })
}

fn record(cx: &Cx<'_>, sample: nvmlGpmSample_t, mig: Option<usize>) -> Result<(), u32> {
    supported(gpm(cx))?;
    let mut samples = SAMPLES.lock();
    let s = samples
        .get_mut(&(sample as usize))
        .ok_or(rc::INVALID_ARGUMENT)?;
    s.taken = Some(Taken {
        gpu: cx.dev.index,
        mig,
        t: cx.t,
    });
    Ok(())
}

/// `nvmlGpmSampleGet`: records the GPU and the current scenario time.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlGpmSampleGet(
    device: nvmlDevice_t,
    gpmSample: nvmlGpmSample_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlGpmSampleGet, device, |cx| {
        record(cx, gpmSample, None)
    })
}

/// `nvmlGpmMigSampleGet`: as `nvmlGpmSampleGet` for GPU instance
/// `gpuInstanceId` of the (parent) GPU, whose metrics are that instance's own
/// `gpm` values. `NVML_ERROR_INVALID_ARGUMENT` when no MIG device with that
/// GPU instance id exists now; not supported when the GPU has no `gpm`
/// support or the instance no `gpm` block.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlGpmMigSampleGet(
    device: nvmlDevice_t,
    gpuInstanceId: c_uint,
    gpmSample: nvmlGpmSample_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlGpmMigSampleGet, device, |cx| {
        supported(gpm(cx))?;
        let mig = cx
            .dev
            .mig_devices_at(cx.t)
            .iter()
            .find(|m| m.spec.gpu_instance_id == gpuInstanceId)
            .ok_or(rc::INVALID_ARGUMENT)?;
        supported(mig.spec.gpm.as_ref().filter(|g| g.supported))?;
        record(cx, gpmSample, Some(mig.slot))
    })
}

fn taken(sample: nvmlGpmSample_t) -> Result<Taken, u32> {
    SAMPLES
        .lock()
        .get(&(sample as usize))
        .ok_or(rc::INVALID_ARGUMENT)?
        .taken
        .ok_or(rc::INVALID_ARGUMENT)
}

/// `nvmlGpmMetricsGet`: fills `metrics[i].value` (mean over the samples'
/// times; activity metrics in percent 0..100, PCIe in MiB/s) and `metricInfo`
/// for the served `NVML_GPM_METRIC_*` ids; others get
/// `NVML_ERROR_NOT_SUPPORTED` in `metrics[i].nvmlReturn`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlGpmMetricsGet(metricsGet: *mut nvmlGpmMetricsGet_t) -> nvmlReturn_t {
    guard(entry::nvmlGpmMetricsGet, || {
        let session = state::session()?;
        let out = non_null(metricsGet)?;
        // SAFETY: non-null and valid per NVML's contract.
        let mut request = unsafe { out.read() };
        if request.version != NVML_GPM_METRICS_GET_VERSION {
            return Err(rc::ARGUMENT_VERSION_MISMATCH);
        }
        let n = request.numMetrics as usize;
        if n > request.metrics.len() {
            return Err(rc::INVALID_ARGUMENT);
        }
        let (s1, s2) = (taken(request.sample1)?, taken(request.sample2)?);
        // Two samples of different devices, or of a GPU instance destroyed
        // and recreated in between, cannot be compared.
        if (s1.gpu, s1.mig) != (s2.gpu, s2.mig) || s2.t < s1.t {
            return Err(rc::INVALID_ARGUMENT);
        }
        let dev = session.device(s1.gpu).ok_or(rc::INVALID_ARGUMENT)?;
        gate(&session, entry::nvmlGpmMetricsGet, dev)?;
        let spec = match s2.mig {
            None => dev.spec.gpm.as_ref(),
            Some(slot) => dev
                .mig_device(slot, s2.t)
                .ok_or(rc::INVALID_ARGUMENT)?
                .spec
                .gpm
                .as_ref(),
        };
        let spec = spec.filter(|g| g.supported).ok_or(rc::NOT_SUPPORTED)?;
        let links = dev.spec.nvlink.as_ref().map_or(0, |l| l.links);
        for m in &mut request.metrics[..n] {
            fill(m, spec, links, s1.t, s2.t, |name| dev.unsupported(name));
        }
        unsafe { put(out, request) };
        Ok(())
    })
}

fn fill(
    m: &mut nvmlGpmMetric_t,
    spec: &Gpm,
    links: u32,
    t1: f64,
    t2: f64,
    unsupported: impl Fn(&str) -> bool,
) {
    let info = names::gpm_metric(m.metricId).filter(|info| !unsupported(info.name));
    let reading = spec
        .metric(m.metricId)
        .or_else(|| spec.link_metric(m.metricId, links));
    let (Some(info), Some((value, factor))) = (info, reading) else {
        m.nvmlReturn = rc::NOT_SUPPORTED;
        m.value = 0.0;
        return;
    };
    let mean = value.mean(t1, t2) * factor;
    m.value = if factor == 1.0 {
        mean.clamp(0.0, 100.0)
    } else {
        mean.max(0.0)
    };
    m.nvmlReturn = rc::SUCCESS;
    // NVML hands out pointers to static strings; callers never write them.
    m.metricInfo.shortName = info.short_name.as_ptr().cast_mut();
    m.metricInfo.longName = info.long_name.as_ptr().cast_mut();
    m.metricInfo.unit = info.unit.as_ptr().cast_mut();
}
