//! Init/shutdown, system queries, device enumeration and handle lookups, plus
//! the `algalon_fake_nvml_*` test controls.

use std::ffi::{CStr, c_char, c_double, c_int, c_uint, c_ulonglong};

use nvml_wrapper_sys::bindings::{nvmlDevice_t, nvmlReturn_t};

use super::{gate, guard, non_null, put, put_str, system_call};
use crate::names::{self, entry};
use crate::scenario::{Device, PciAddress};
use crate::state::{self, DeviceId, Session, rc};

/// `nvmlInit_v2`: the 0→1 call loads `$ALGALON_FAKE_NVML_SCENARIO` and
/// starts scenario time; later calls only count up.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlInit_v2() -> nvmlReturn_t {
    guard(entry::nvmlInit_v2, || {
        match state::init(entry::nvmlInit_v2) {
            rc::SUCCESS => Ok(()),
            code => Err(code),
        }
    })
}

/// `nvmlInitWithFlags`: as `nvmlInit_v2` (flags are accepted and ignored).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlInitWithFlags(_flags: c_uint) -> nvmlReturn_t {
    guard(entry::nvmlInitWithFlags, || {
        match state::init(entry::nvmlInitWithFlags) {
            rc::SUCCESS => Ok(()),
            code => Err(code),
        }
    })
}

/// `nvmlInit` (v1): as `nvmlInit_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlInit() -> nvmlReturn_t {
    guard(entry::nvmlInit, || match state::init(entry::nvmlInit) {
        rc::SUCCESS => Ok(()),
        code => Err(code),
    })
}

/// `nvmlShutdown`: counts the init refcount down; at 0 the scenario is
/// dropped (the next init re-reads it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlShutdown() -> nvmlReturn_t {
    guard(entry::nvmlShutdown, || match state::shutdown() {
        rc::SUCCESS => Ok(()),
        code => Err(code),
    })
}

/// `nvmlErrorString`: NVML's static text for a return code (works without
/// init, like the real one).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlErrorString(result: nvmlReturn_t) -> *const c_char {
    state::count_call(entry::nvmlErrorString);
    names::error_text(result).as_ptr()
}

/// `nvmlSystemGetDriverVersion`: `driver_version`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(
    version: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    system_call(entry::nvmlSystemGetDriverVersion, |s, _| unsafe {
        put_str(version, length, &s.scenario.driver_version)
    })
}

/// `nvmlSystemGetNVMLVersion`: `nvml_version`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetNVMLVersion(
    version: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    system_call(entry::nvmlSystemGetNVMLVersion, |s, _| unsafe {
        put_str(version, length, &s.scenario.nvml_version)
    })
}

/// `nvmlSystemGetCudaDriverVersion`: `cuda_driver_version`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetCudaDriverVersion(
    cudaDriverVersion: *mut c_int,
) -> nvmlReturn_t {
    system_call(entry::nvmlSystemGetCudaDriverVersion, |s, _| {
        let out = non_null(cudaDriverVersion)?;
        unsafe { put(out, s.scenario.cuda_driver_version) };
        Ok(())
    })
}

/// `nvmlSystemGetCudaDriverVersion_v2`: `cuda_driver_version`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetCudaDriverVersion_v2(
    cudaDriverVersion: *mut c_int,
) -> nvmlReturn_t {
    system_call(entry::nvmlSystemGetCudaDriverVersion_v2, |s, _| {
        let out = non_null(cudaDriverVersion)?;
        unsafe { put(out, s.scenario.cuda_driver_version) };
        Ok(())
    })
}

/// `nvmlSystemGetProcessName`: the `name` of any scenario process with this
/// pid; `NVML_ERROR_NOT_FOUND` otherwise.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetProcessName(
    pid: c_uint,
    name: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    system_call(entry::nvmlSystemGetProcessName, |s, _| {
        let found = s
            .scenario
            .devices()
            .iter()
            .flat_map(|d| &d.spec.processes)
            .find(|p| p.pid == pid)
            .ok_or(rc::NOT_FOUND)?;
        unsafe { put_str(name, length, &found.name) }
    })
}

/// `nvmlUnitGetCount`: 0 (no S-class units).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlUnitGetCount(unitCount: *mut c_uint) -> nvmlReturn_t {
    system_call(entry::nvmlUnitGetCount, |_, _| {
        let out = non_null(unitCount)?;
        unsafe { put(out, 0) };
        Ok(())
    })
}

fn device_count(s: &Session) -> c_uint {
    c_uint::try_from(s.scenario.devices().len()).unwrap_or(c_uint::MAX)
}

/// `nvmlDeviceGetCount_v2`: the number of GPUs after `count` expansion (MIG
/// devices are not counted, lost GPUs are).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(deviceCount: *mut c_uint) -> nvmlReturn_t {
    system_call(entry::nvmlDeviceGetCount_v2, |s, _| {
        let out = non_null(deviceCount)?;
        unsafe { put(out, device_count(s)) };
        Ok(())
    })
}

/// `nvmlDeviceGetCount` (v1): as `nvmlDeviceGetCount_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCount(deviceCount: *mut c_uint) -> nvmlReturn_t {
    system_call(entry::nvmlDeviceGetCount, |s, _| {
        let out = non_null(deviceCount)?;
        unsafe { put(out, device_count(s)) };
        Ok(())
    })
}

/// Looks up a GPU (or MIG device) by `find`, gates the call on it and writes
/// its handle.
fn lookup_call(
    call: &'static str,
    out: *mut nvmlDevice_t,
    find: impl FnOnce(&Session) -> Result<DeviceId, u32>,
) -> nvmlReturn_t {
    guard(call, || {
        let session = state::session()?;
        let out = non_null(out)?;
        let id = find(&session)?;
        let dev = session.device(id.gpu).ok_or(rc::INVALID_ARGUMENT)?;
        gate(&session, call, dev)?;
        unsafe { put(out, state::handle(id)) };
        Ok(())
    })
}

fn by_index(s: &Session, index: c_uint) -> Result<DeviceId, u32> {
    s.device(index).ok_or(rc::INVALID_ARGUMENT)?;
    Ok(DeviceId {
        gpu: index,
        mig: None,
    })
}

/// `nvmlDeviceGetHandleByIndex_v2`: a stable handle for GPU `index`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(
    index: c_uint,
    device: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    lookup_call(entry::nvmlDeviceGetHandleByIndex_v2, device, |s| {
        by_index(s, index)
    })
}

/// `nvmlDeviceGetHandleByIndex` (v1): as `_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex(
    index: c_uint,
    device: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    lookup_call(entry::nvmlDeviceGetHandleByIndex, device, |s| {
        by_index(s, index)
    })
}

/// Reads a caller's NUL-terminated string argument.
///
/// # Safety
///
/// `s` must be NULL or point to a NUL-terminated string.
unsafe fn arg_str<'a>(s: *const c_char) -> Result<&'a str, u32> {
    if s.is_null() {
        return Err(rc::INVALID_ARGUMENT);
    }
    // SAFETY: non-null and NUL-terminated per the caller's contract.
    let s = unsafe { CStr::from_ptr(s) };
    s.to_str().map_err(|_| rc::INVALID_ARGUMENT)
}

fn find_device(s: &Session, pred: impl Fn(&Device) -> bool) -> Result<DeviceId, u32> {
    s.scenario
        .devices()
        .iter()
        .find(|d| pred(d))
        .map(|d| DeviceId {
            gpu: d.index,
            mig: None,
        })
        .ok_or(rc::NOT_FOUND)
}

/// `nvmlDeviceGetHandleByUUID`: GPU UUIDs and the UUIDs of the MIG devices
/// that exist now (case-insensitive); a destroyed or not yet created MIG
/// device is `NVML_ERROR_NOT_FOUND`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByUUID(
    uuid: *const c_char,
    device: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    lookup_call(entry::nvmlDeviceGetHandleByUUID, device, |s| {
        let uuid = unsafe { arg_str(uuid) }?;
        let t = s.t();
        for d in s.scenario.devices() {
            if d.spec.uuid.eq_ignore_ascii_case(uuid) {
                return Ok(DeviceId {
                    gpu: d.index,
                    mig: None,
                });
            }
            if let Some(m) = d
                .mig_devices_at(t)
                .iter()
                .find(|m| m.spec.uuid.eq_ignore_ascii_case(uuid))
            {
                return Ok(DeviceId {
                    gpu: d.index,
                    mig: Some(u32::try_from(m.slot).map_err(|_| rc::UNKNOWN)?),
                });
            }
        }
        Err(rc::NOT_FOUND)
    })
}

fn by_pci(s: &Session, bus_id: *const c_char) -> Result<DeviceId, u32> {
    let text = unsafe { arg_str(bus_id) }?;
    let want = PciAddress::parse(text).ok_or(rc::INVALID_ARGUMENT)?;
    find_device(s, |d| {
        (d.pci.domain, d.pci.bus, d.pci.device) == (want.domain, want.bus, want.device)
    })
}

/// `nvmlDeviceGetHandleByPciBusId_v2`: accepts `"00000000:18:00.0"`,
/// `"0000:18:00.0"` or `"18:00.0"`, any case.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByPciBusId_v2(
    pciBusId: *const c_char,
    device: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    lookup_call(entry::nvmlDeviceGetHandleByPciBusId_v2, device, |s| {
        by_pci(s, pciBusId)
    })
}

/// `nvmlDeviceGetHandleByPciBusId` (v1): as `_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByPciBusId(
    pciBusId: *const c_char,
    device: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    lookup_call(entry::nvmlDeviceGetHandleByPciBusId, device, |s| {
        by_pci(s, pciBusId)
    })
}

/// `nvmlDeviceGetHandleBySerial`: by board `serial`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleBySerial(
    serial: *const c_char,
    device: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    lookup_call(entry::nvmlDeviceGetHandleBySerial, device, |s| {
        let serial = unsafe { arg_str(serial) }?;
        find_device(s, |d| d.spec.serial.as_deref() == Some(serial))
    })
}

/// Test control (not NVML): how many times this copy of the library served
/// the exported function `name`; 0 for NULL or an unknown name.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_fake_nvml_call_count(name: *const c_char) -> c_ulonglong {
    match unsafe { arg_str(name) } {
        Ok(name) => state::call_count(name),
        Err(_) => 0,
    }
}

/// Test control (not NVML): resets every call counter.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_fake_nvml_reset_call_counts() {
    state::reset_call_counts();
}

/// Test control (not NVML): freezes scenario time at `t` seconds (from now
/// until shutdown or `algalon_fake_nvml_resume_time`). Needs init.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_fake_nvml_set_time(t: c_double) -> nvmlReturn_t {
    match state::session() {
        Ok(_) if !t.is_finite() || t < 0.0 => rc::INVALID_ARGUMENT,
        Ok(s) => {
            s.freeze_at(t);
            rc::SUCCESS
        }
        Err(code) => code,
    }
}

/// Test control (not NVML): lets frozen scenario time run again from its
/// current value. Needs init.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_fake_nvml_resume_time() -> nvmlReturn_t {
    match state::session() {
        Ok(s) => {
            s.resume();
            rc::SUCCESS
        }
        Err(code) => code,
    }
}
