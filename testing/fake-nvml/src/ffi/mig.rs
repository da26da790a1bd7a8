//! Multi-Instance GPU: mode, MIG device handles and their instance ids.

use std::ffi::c_uint;

use nvml_wrapper_sys::bindings::{nvmlDevice_t, nvmlReturn_t};

use super::{device_call, non_null, put, supported};
use crate::names::entry;
use crate::state::{self, DeviceId, rc};

/// `nvmlDeviceGetMigMode`: `mig.enabled` as current and pending mode;
/// not supported without a `mig` block.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMigMode(
    device: nvmlDevice_t,
    currentMode: *mut c_uint,
    pendingMode: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetMigMode, device, |cx| {
        let (cur, pend) = (non_null(currentMode)?, non_null(pendingMode)?);
        let on = c_uint::from(supported(cx.dev.spec.mig.as_ref())?.enabled);
        unsafe {
            put(cur, on);
            put(pend, on);
        }
        Ok(())
    })
}

/// `nvmlDeviceGetMaxMigDeviceCount`: `mig.max_devices` (default 7).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMaxMigDeviceCount(
    device: nvmlDevice_t,
    count: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetMaxMigDeviceCount, device, |cx| {
        let out = non_null(count)?;
        let mig = supported(cx.dev.spec.mig.as_ref())?;
        unsafe { put(out, mig.max_devices.unwrap_or(7)) };
        Ok(())
    })
}

/// `nvmlDeviceGetMigDeviceHandleByIndex`: a stable handle for
/// `mig.instances[index]`; `NVML_ERROR_NOT_FOUND` past the last one.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMigDeviceHandleByIndex(
    device: nvmlDevice_t,
    index: c_uint,
    migDevice: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetMigDeviceHandleByIndex, device, |cx| {
        let out = non_null(migDevice)?;
        let mig = supported(cx.dev.spec.mig.as_ref())?;
        if !mig.enabled {
            return Err(rc::INVALID_ARGUMENT);
        }
        if index as usize >= mig.instances.len() {
            return Err(rc::NOT_FOUND);
        }
        let handle = state::handle(DeviceId {
            gpu: cx.dev.index,
            mig: Some(index),
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

/// `nvmlDeviceGetGpuInstanceId`: the MIG device's `gpu_instance_id`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetGpuInstanceId(
    device: nvmlDevice_t,
    id: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetGpuInstanceId, device, |cx| {
        let out = non_null(id)?;
        let mig = supported(cx.mig)?;
        unsafe { put(out, mig.gpu_instance_id) };
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
        unsafe { put(out, mig.compute_instance_id) };
        Ok(())
    })
}

/// `nvmlDeviceGetDeviceHandleFromMigDeviceHandle`: the parent GPU's handle.
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
