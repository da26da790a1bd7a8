//! Running processes and per-process utilization (NVML's two-call size
//! protocols).

use std::ffi::{c_uint, c_ulonglong};

use nvml_wrapper_sys::bindings::{
    nvmlDevice_t, nvmlProcessDetail_v1_t, nvmlProcessDetailList_t, nvmlProcessInfo_t,
    nvmlProcessInfo_v1_t, nvmlProcessUtilizationSample_t, nvmlReturn_t,
};

use super::{Cx, Ret, device_call, non_null, put, sized_device_call};
use crate::names::entry;
use crate::scenario::{ProcessKind, ProcessSpec};
use crate::state::rc;

/// NVML's "no instance" id in process records.
const NO_INSTANCE: c_uint = c_uint::MAX;

#[derive(Clone, Copy, PartialEq, Eq)]
enum List {
    Compute,
    Graphics,
    Mps,
}

/// The processes a list call reports at the answer's time. A MIG handle
/// sees only the processes in its GPU and compute instance; the parent GPU's
/// handle lists every process of every instance (NVML's aggregate view).
fn listed<'a>(cx: &'a Cx<'_>, list: List) -> Vec<&'a ProcessSpec> {
    cx.dev
        .processes_at(cx.t)
        .filter(|p| match list {
            List::Mps => false,
            List::Compute => p.kind != ProcessKind::Graphics,
            List::Graphics => p.kind != ProcessKind::Compute,
        })
        .filter(|p| {
            cx.mig.is_none_or(|m| {
                p.gpu_instance_id == Some(m.spec.gpu_instance_id)
                    && p.compute_instance_id
                        .is_none_or(|ci| ci == m.spec.compute_instance_id)
            })
        })
        .collect()
}

/// NVML's size protocol: with `*count` too small, report the size needed and
/// `NVML_ERROR_INSUFFICIENT_SIZE` (`infos` may then be NULL); otherwise fill
/// `infos` and set `*count`.
fn two_call<T>(
    count: *mut c_uint,
    infos: *mut T,
    items: &[&ProcessSpec],
    record: impl Fn(&ProcessSpec) -> T,
) -> Ret {
    let count = non_null(count)?;
    let n = c_uint::try_from(items.len()).map_err(|_| rc::UNKNOWN)?;
    // SAFETY: non-null and valid per NVML's contract.
    let capacity = unsafe { *count };
    if capacity < n {
        unsafe { put(count, n) };
        return Err(rc::INSUFFICIENT_SIZE);
    }
    if n > 0 {
        let infos = non_null(infos)?;
        for (i, p) in items.iter().enumerate() {
            // SAFETY: the caller's array holds `capacity >= n` entries.
            unsafe { put(infos.add(i), record(p)) };
        }
    }
    unsafe { put(count, n) };
    Ok(())
}

fn info(cx: &Cx<'_>, p: &ProcessSpec) -> nvmlProcessInfo_t {
    nvmlProcessInfo_t {
        pid: p.pid,
        usedGpuMemory: p.used_bytes(cx.t),
        gpuInstanceId: p.gpu_instance_id.unwrap_or(NO_INSTANCE),
        computeInstanceId: p.compute_instance_id.unwrap_or(NO_INSTANCE),
    }
}

fn info_v1(cx: &Cx<'_>, p: &ProcessSpec) -> nvmlProcessInfo_v1_t {
    nvmlProcessInfo_v1_t {
        pid: p.pid,
        usedGpuMemory: p.used_bytes(cx.t),
    }
}

fn list_call(
    call: &'static str,
    device: nvmlDevice_t,
    count: *mut c_uint,
    infos: *mut nvmlProcessInfo_t,
    list: List,
) -> nvmlReturn_t {
    sized_device_call(call, device, count, |cx| {
        two_call(count, infos, &listed(cx, list), |p| info(cx, p))
    })
}

fn list_call_v1(
    call: &'static str,
    device: nvmlDevice_t,
    count: *mut c_uint,
    infos: *mut nvmlProcessInfo_v1_t,
    list: List,
) -> nvmlReturn_t {
    sized_device_call(call, device, count, |cx| {
        two_call(count, infos, &listed(cx, list), |p| info_v1(cx, p))
    })
}

/// `nvmlDeviceGetComputeRunningProcesses_v3`: `processes` of type `compute`
/// or `compute+graphics` running now (`start_s <= t < end_s`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetComputeRunningProcesses_v3(
    device: nvmlDevice_t,
    infoCount: *mut c_uint,
    infos: *mut nvmlProcessInfo_t,
) -> nvmlReturn_t {
    list_call(
        entry::nvmlDeviceGetComputeRunningProcesses_v3,
        device,
        infoCount,
        infos,
        List::Compute,
    )
}

/// `nvmlDeviceGetComputeRunningProcesses_v2`: as `_v3` (same record layout).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetComputeRunningProcesses_v2(
    device: nvmlDevice_t,
    infoCount: *mut c_uint,
    infos: *mut nvmlProcessInfo_t,
) -> nvmlReturn_t {
    list_call(
        entry::nvmlDeviceGetComputeRunningProcesses_v2,
        device,
        infoCount,
        infos,
        List::Compute,
    )
}

/// `nvmlDeviceGetComputeRunningProcesses` (v1 records: pid, memory).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetComputeRunningProcesses(
    device: nvmlDevice_t,
    infoCount: *mut c_uint,
    infos: *mut nvmlProcessInfo_v1_t,
) -> nvmlReturn_t {
    list_call_v1(
        entry::nvmlDeviceGetComputeRunningProcesses,
        device,
        infoCount,
        infos,
        List::Compute,
    )
}

/// `nvmlDeviceGetGraphicsRunningProcesses_v3`: `processes` of type
/// `graphics` or `compute+graphics` running now.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetGraphicsRunningProcesses_v3(
    device: nvmlDevice_t,
    infoCount: *mut c_uint,
    infos: *mut nvmlProcessInfo_t,
) -> nvmlReturn_t {
    list_call(
        entry::nvmlDeviceGetGraphicsRunningProcesses_v3,
        device,
        infoCount,
        infos,
        List::Graphics,
    )
}

/// `nvmlDeviceGetGraphicsRunningProcesses_v2`: as `_v3`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetGraphicsRunningProcesses_v2(
    device: nvmlDevice_t,
    infoCount: *mut c_uint,
    infos: *mut nvmlProcessInfo_t,
) -> nvmlReturn_t {
    list_call(
        entry::nvmlDeviceGetGraphicsRunningProcesses_v2,
        device,
        infoCount,
        infos,
        List::Graphics,
    )
}

/// `nvmlDeviceGetGraphicsRunningProcesses` (v1 records).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetGraphicsRunningProcesses(
    device: nvmlDevice_t,
    infoCount: *mut c_uint,
    infos: *mut nvmlProcessInfo_v1_t,
) -> nvmlReturn_t {
    list_call_v1(
        entry::nvmlDeviceGetGraphicsRunningProcesses,
        device,
        infoCount,
        infos,
        List::Graphics,
    )
}

/// `nvmlDeviceGetMPSComputeRunningProcesses_v3`: always empty (no MPS).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMPSComputeRunningProcesses_v3(
    device: nvmlDevice_t,
    infoCount: *mut c_uint,
    infos: *mut nvmlProcessInfo_t,
) -> nvmlReturn_t {
    list_call(
        entry::nvmlDeviceGetMPSComputeRunningProcesses_v3,
        device,
        infoCount,
        infos,
        List::Mps,
    )
}

/// `nvmlDeviceGetMPSComputeRunningProcesses_v2`: always empty.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMPSComputeRunningProcesses_v2(
    device: nvmlDevice_t,
    infoCount: *mut c_uint,
    infos: *mut nvmlProcessInfo_t,
) -> nvmlReturn_t {
    list_call(
        entry::nvmlDeviceGetMPSComputeRunningProcesses_v2,
        device,
        infoCount,
        infos,
        List::Mps,
    )
}

/// `nvmlDeviceGetMPSComputeRunningProcesses` (v1 records): always empty.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMPSComputeRunningProcesses(
    device: nvmlDevice_t,
    infoCount: *mut c_uint,
    infos: *mut nvmlProcessInfo_v1_t,
) -> nvmlReturn_t {
    list_call_v1(
        entry::nvmlDeviceGetMPSComputeRunningProcesses,
        device,
        infoCount,
        infos,
        List::Mps,
    )
}

/// `NVML_STRUCT_VERSION(ProcessDetailList, 1)`.
const PROCESS_DETAIL_LIST_V1: c_uint = (size_of::<nvmlProcessDetailList_t>() as c_uint) | (1 << 24);

/// `nvmlDeviceGetRunningProcessDetailList`: the compute (`mode` 0), graphics
/// (1) or MPS (2) list in one versioned struct, with the same size protocol
/// through `numProcArrayEntries`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetRunningProcessDetailList(
    device: nvmlDevice_t,
    plist: *mut nvmlProcessDetailList_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetRunningProcessDetailList, device, |cx| {
        let out = non_null(plist)?;
        // SAFETY: non-null and valid per NVML's contract.
        let mut request = unsafe { out.read() };
        if request.version != PROCESS_DETAIL_LIST_V1 {
            return Err(rc::ARGUMENT_VERSION_MISMATCH);
        }
        let list = match request.mode {
            0 => List::Compute,
            1 => List::Graphics,
            2 => List::Mps,
            _ => return Err(rc::INVALID_ARGUMENT),
        };
        let items = listed(cx, list);
        let n = c_uint::try_from(items.len()).map_err(|_| rc::UNKNOWN)?;
        if request.numProcArrayEntries < n || (n > 0 && request.procArray.is_null()) {
            request.numProcArrayEntries = n;
            unsafe { put(out, request) };
            return Err(rc::INSUFFICIENT_SIZE);
        }
        for (i, p) in items.iter().enumerate() {
            let record = nvmlProcessDetail_v1_t {
                pid: p.pid,
                usedGpuMemory: p.used_bytes(cx.t),
                gpuInstanceId: p.gpu_instance_id.unwrap_or(NO_INSTANCE),
                computeInstanceId: p.compute_instance_id.unwrap_or(NO_INSTANCE),
                usedGpuCcProtectedMemory: 0,
            };
            // SAFETY: the caller's array holds `numProcArrayEntries >= n` entries.
            unsafe { put(request.procArray.add(i), record) };
        }
        request.numProcArrayEntries = n;
        unsafe { put(out, request) };
        Ok(())
    })
}

/// `nvmlDeviceGetProcessUtilization`: one sample (stamped now) per running
/// process that has `sm_util` or `mem_util`, if now is newer than
/// `lastSeenTimeStamp`. `utilization` NULL → the sample count and
/// `NVML_ERROR_INSUFFICIENT_SIZE`; no samples → `NVML_ERROR_NOT_FOUND`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetProcessUtilization(
    device: nvmlDevice_t,
    utilization: *mut nvmlProcessUtilizationSample_t,
    processSamplesCount: *mut c_uint,
    lastSeenTimeStamp: c_ulonglong,
) -> nvmlReturn_t {
    let call = entry::nvmlDeviceGetProcessUtilization;
    sized_device_call(call, device, processSamplesCount, |cx| {
        let count = non_null(processSamplesCount)?;
        let now = cx.now_us();
        let samples: Vec<nvmlProcessUtilizationSample_t> = if now > lastSeenTimeStamp {
            cx.dev
                .processes_at(cx.t)
                .filter(|p| p.sm_util.is_some() || p.mem_util.is_some())
                .map(|p| nvmlProcessUtilizationSample_t {
                    pid: p.pid,
                    timeStamp: now,
                    smUtil: p.sm_util.as_ref().map_or(0, |v| v.percent_at(cx.t)),
                    memUtil: p.mem_util.as_ref().map_or(0, |v| v.percent_at(cx.t)),
                    encUtil: 0,
                    decUtil: 0,
                })
                .collect()
        } else {
            Vec::new()
        };
        if samples.is_empty() {
            return Err(rc::NOT_FOUND);
        }
        let n = c_uint::try_from(samples.len()).map_err(|_| rc::UNKNOWN)?;
        // SAFETY: non-null and valid per NVML's contract.
        let capacity = unsafe { *count };
        if utilization.is_null() || capacity < n {
            unsafe { put(count, n) };
            return Err(rc::INSUFFICIENT_SIZE);
        }
        for (i, s) in samples.into_iter().enumerate() {
            // SAFETY: the caller's array holds `capacity >= n` entries.
            unsafe { put(utilization.add(i), s) };
        }
        unsafe { put(count, n) };
        Ok(())
    })
}
