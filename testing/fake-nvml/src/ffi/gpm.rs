//! GPU Performance Monitoring: samples record (GPU, instance, scenario time);
//! metrics are the scenario's `gpm` values averaged over the two samples'
//! times (the value at the second sample's time when both coincide, as with
//! a frozen clock).

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
    gpu_instance: Option<u32>,
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

fn record(cx: &Cx<'_>, sample: nvmlGpmSample_t, gpu_instance: Option<u32>) -> Result<(), u32> {
    supported(gpm(cx))?;
    let mut samples = SAMPLES.lock();
    let s = samples
        .get_mut(&(sample as usize))
        .ok_or(rc::INVALID_ARGUMENT)?;
    s.taken = Some(Taken {
        gpu: cx.dev.index,
        gpu_instance,
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

/// `nvmlGpmMigSampleGet`: as `nvmlGpmSampleGet` for a GPU instance of the
/// parent (reports the parent's `gpm` values).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlGpmMigSampleGet(
    device: nvmlDevice_t,
    gpuInstanceId: c_uint,
    gpmSample: nvmlGpmSample_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlGpmMigSampleGet, device, |cx| {
        let known = cx
            .dev
            .spec
            .mig
            .iter()
            .flat_map(|m| &m.instances)
            .any(|i| i.gpu_instance_id == gpuInstanceId);
        if !known {
            return Err(rc::INVALID_ARGUMENT);
        }
        record(cx, gpmSample, Some(gpuInstanceId))
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
        if (s1.gpu, s1.gpu_instance) != (s2.gpu, s2.gpu_instance) || s2.t < s1.t {
            return Err(rc::INVALID_ARGUMENT);
        }
        let dev = session.device(s1.gpu).ok_or(rc::INVALID_ARGUMENT)?;
        gate(&session, entry::nvmlGpmMetricsGet, dev)?;
        let spec = dev
            .spec
            .gpm
            .as_ref()
            .filter(|g| g.supported)
            .ok_or(rc::NOT_SUPPORTED)?;
        for m in &mut request.metrics[..n] {
            fill(m, spec, s1.t, s2.t, |name| dev.unsupported(name));
        }
        unsafe { put(out, request) };
        Ok(())
    })
}

fn fill(m: &mut nvmlGpmMetric_t, spec: &Gpm, t1: f64, t2: f64, unsupported: impl Fn(&str) -> bool) {
    let info = names::gpm_metric(m.metricId).filter(|info| !unsupported(info.name));
    let (Some(info), Some((value, factor))) = (info, spec.metric(m.metricId)) else {
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
