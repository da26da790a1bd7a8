//! Multi-Instance GPU: mode, MIG device handles, their instance ids and
//! attributes. What exists is the GPU's MIG configuration at the answer's
//! scenario time (its `mig.schedule` reconfigures it).

use std::ffi::c_uint;

use nvml_wrapper_sys::bindings::{nvmlDevice_t, nvmlDeviceAttributes_t, nvmlReturn_t};

use super::{Cx, device_call, non_null, put, supported};
use crate::names::entry;
use crate::scenario::MigTimeline;
use crate::state::{self, DeviceId, rc};

/// The GPU's MIG timeline; `NVML_ERROR_NOT_SUPPORTED` without a `mig` block
/// (a GPU that cannot do MIG).
fn timeline<'a>(cx: &Cx<'a>) -> Result<&'a MigTimeline, u32> {
    supported(cx.dev.mig.as_ref())
}

/// `nvmlDeviceGetMigMode`: the current and pending mode at the answer's
/// time; not supported without a `mig` block.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMigMode(
    device: nvmlDevice_t,
    currentMode: *mut c_uint,
    pendingMode: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetMigMode, device, |cx| {
        let (cur, pend) = (non_null(currentMode)?, non_null(pendingMode)?);
        let config = timeline(cx)?.at(cx.t);
        unsafe {
            put(cur, c_uint::from(config.enabled));
            put(pend, c_uint::from(config.pending));
        }
        Ok(())
    })
}

/// `nvmlDeviceGetMaxMigDeviceCount`: `mig.max_devices` (default 7) while MIG
/// is enabled; 0 while it is disabled or the GPU cannot do MIG, as NVML
/// documents.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMaxMigDeviceCount(
    device: nvmlDevice_t,
    count: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetMaxMigDeviceCount, device, |cx| {
        let out = non_null(count)?;
        let max = cx.dev.mig.as_ref().map_or(0, |m| m.max_device_count(cx.t));
        unsafe { put(out, max) };
        Ok(())
    })
}

/// `nvmlDeviceGetMigDeviceHandleByIndex`: the handle of the `index`-th MIG
/// device (ascending GPU instance id) at the answer's time — the same handle
/// for as long as that device exists. `NVML_ERROR_NOT_FOUND` past the last
/// one and while MIG is disabled; not supported without a `mig` block.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMigDeviceHandleByIndex(
    device: nvmlDevice_t,
    index: c_uint,
    migDevice: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetMigDeviceHandleByIndex, device, |cx| {
        let out = non_null(migDevice)?;
        let config = timeline(cx)?.at(cx.t);
        let found = config
            .devices
            .get(index as usize)
            .filter(|_| config.enabled)
            .ok_or(rc::NOT_FOUND)?;
        let handle = state::handle(DeviceId {
            gpu: cx.dev.index,
            mig: Some(u32::try_from(found.slot).map_err(|_| rc::UNKNOWN)?),
        });
        unsafe { put(out, handle) };
        Ok(())
    })
}

/// `nvmlDeviceIsMigDeviceHandle`: 1 for MIG device handles, 0 otherwise.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceIsMigDeviceHandle(
    device: nvmlDevice_t,
    isMigDevice: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceIsMigDeviceHandle, device, |cx| {
        let out = non_null(isMigDevice)?;
        unsafe { put(out, c_uint::from(cx.mig.is_some())) };
        Ok(())
    })
}

/// `nvmlDeviceGetGpuInstanceId`: the MIG device's `gpu_instance_id`; not
/// supported on a GPU handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetGpuInstanceId(
    device: nvmlDevice_t,
    id: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetGpuInstanceId, device, |cx| {
        let out = non_null(id)?;
        let mig = supported(cx.mig)?;
        unsafe { put(out, mig.spec.gpu_instance_id) };
        Ok(())
    })
}

/// `nvmlDeviceGetComputeInstanceId`: the MIG device's `compute_instance_id`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetComputeInstanceId(
    device: nvmlDevice_t,
    id: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetComputeInstanceId, device, |cx| {
        let out = non_null(id)?;
        let mig = supported(cx.mig)?;
        unsafe { put(out, mig.spec.compute_instance_id) };
        Ok(())
    })
}

/// `nvmlDeviceGetDeviceHandleFromMigDeviceHandle`: the parent GPU's handle;
/// `NVML_ERROR_INVALID_ARGUMENT` for a GPU handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetDeviceHandleFromMigDeviceHandle(
    migDevice: nvmlDevice_t,
    device: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    device_call(
        entry::nvmlDeviceGetDeviceHandleFromMigDeviceHandle,
        migDevice,
        |cx| {
            let out = non_null(device)?;
            if cx.mig.is_none() {
                return Err(rc::INVALID_ARGUMENT);
            }
            let parent = state::handle(DeviceId {
                gpu: cx.dev.index,
                mig: None,
            });
            unsafe { put(out, parent) };
            Ok(())
        },
    )
}

/// `nvmlDeviceGetAttributes_v2`: a MIG device's multiprocessors, shared
/// engines, GPU/compute instance slices and memory, from its profile (what
/// apportioning a GPU's energy by compute slices needs). NVML serves it on
/// MIG device handles only: not supported on a GPU handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetAttributes_v2(
    device: nvmlDevice_t,
    attributes: *mut nvmlDeviceAttributes_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetAttributes_v2, device, |cx| {
        let out = non_null(attributes)?;
        let p = supported(cx.mig)?.profile;
        let value = nvmlDeviceAttributes_t {
            multiprocessorCount: p.multiprocessors,
            sharedCopyEngineCount: p.copy_engines,
            sharedDecoderCount: p.decoders,
            sharedEncoderCount: p.encoders,
            sharedJpegCount: p.jpegs,
            sharedOfaCount: p.ofas,
            gpuInstanceSliceCount: p.slices,
            computeInstanceSliceCount: p.slices,
            memorySizeMB: p.memory_mib,
        };
        unsafe { put(out, value) };
        Ok(())
    })
}
