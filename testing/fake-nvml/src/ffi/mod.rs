//! The exported NVML C ABI.
//!
//! Every function here has the exact signature of its `nvml.h` counterpart
//! (the types come from `nvml-wrapper-sys`), is exported unmangled from the
//! cdylib, and follows NVML's conventions:
//!
//! * called before `nvmlInit*` (or after the last `nvmlShutdown`) it returns
//!   `NVML_ERROR_UNINITIALIZED`;
//! * a NULL out-pointer, or a device handle this library did not issue, is
//!   `NVML_ERROR_INVALID_ARGUMENT`;
//! * out-parameters are written only when the call returns `NVML_SUCCESS`
//!   (except where NVML itself reports a required size alongside
//!   `NVML_ERROR_INSUFFICIENT_SIZE`);
//! * the body runs inside a panic boundary: a panic becomes
//!   `NVML_ERROR_UNKNOWN`, never an unwind into C.
//!
//! A device call then proceeds in this order: latency (scenario `latency`
//! entries plus `ALGALON_FAKE_NVML_LATENCY_MS`) → `NVML_ERROR_GPU_IS_LOST`
//! once `lost_after_s` has passed → scenario `faults` → the GPU's
//! `unsupported` list → a MIG handle whose device has been destroyed answers
//! the stale-handle error → MIG handles answer only the calls MIG devices
//! support → the answer from the scenario at the current scenario time.
//!
//! # Safety
//!
//! The contract of every function is NVML's: each pointer argument must be
//! NULL or valid for reads/writes of the pointed-to type (or, for buffers,
//! of the stated length), and device, event-set and GPM-sample handles must
//! be ones this library returned (others are rejected, not dereferenced).
#![allow(clippy::missing_safety_doc)]
// the common contract is stated above
// Function and parameter names are NVML's, exactly as in nvml.h.
#![allow(non_snake_case)]

pub mod device;
pub mod events;
pub mod gpm;
pub mod health;
pub mod instances;
pub mod mig;
pub mod processes;
pub mod system;

use std::ffi::{c_char, c_uint};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use nvml_wrapper_sys::bindings::nvmlDevice_t;

use crate::names::entry;
use crate::scenario::{Device, MigDevice};
use crate::state::{self, Session, rc};

/// Result of a call body: `Err` carries the NVML return code.
pub(crate) type Ret = Result<(), u32>;

/// Counts the call and runs `body` inside a panic boundary.
pub(crate) fn guard(call: &'static str, body: impl FnOnce() -> Ret) -> u32 {
    state::count_call(call);
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => rc::SUCCESS,
        Ok(Err(code)) => code,
        Err(_) => rc::UNKNOWN,
    }
}

/// `NVML_ERROR_INVALID_ARGUMENT` for a NULL pointer.
pub(crate) fn non_null<T>(ptr: *mut T) -> Result<*mut T, u32> {
    if ptr.is_null() {
        Err(rc::INVALID_ARGUMENT)
    } else {
        Ok(ptr)
    }
}

/// `NVML_ERROR_NOT_SUPPORTED` for a reading the scenario leaves out.
pub(crate) fn supported<T>(value: Option<T>) -> Result<T, u32> {
    value.ok_or(rc::NOT_SUPPORTED)
}

/// Writes `value` through a pointer already checked by [`non_null`].
///
/// # Safety
///
/// `ptr` must be valid for a write of `T` (the caller's NVML contract).
pub(crate) unsafe fn put<T>(ptr: *mut T, value: T) {
    // SAFETY: non-null and valid per the caller's contract.
    unsafe { ptr.write(value) }
}

/// Copies `s` and a NUL into the caller's `len`-byte buffer, or reports
/// `NVML_ERROR_INSUFFICIENT_SIZE` when it does not fit (as NVML does).
///
/// # Safety
///
/// `buf` must be NULL or valid for writes of `len` bytes.
pub(crate) unsafe fn put_str(buf: *mut c_char, len: c_uint, s: &str) -> Ret {
    let buf = non_null(buf)?;
    let bytes = s.as_bytes();
    if bytes.len() + 1 > len as usize {
        return Err(rc::INSUFFICIENT_SIZE);
    }
    // SAFETY: `buf` holds `len` > bytes.len() bytes per the caller's contract,
    // and a `&str` cannot overlap caller-owned output memory.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), bytes.len());
        buf.add(bytes.len()).write(0);
    }
    Ok(())
}

/// `s` as a NUL-terminated fixed-size C string field (truncated to fit).
pub(crate) fn c_array<const N: usize>(s: &str) -> [c_char; N] {
    let mut out = [0 as c_char; N];
    for (o, b) in out.iter_mut().zip(s.bytes().take(N - 1)) {
        *o = b as c_char;
    }
    out
}

fn sleep(d: Duration) {
    if !d.is_zero() {
        std::thread::sleep(d);
    }
}

/// What a device call's body sees.
pub(crate) struct Cx<'a> {
    pub session: &'a Session,
    pub dev: &'a Device,
    /// The MIG device, for a MIG handle (as it is at `t`).
    pub mig: Option<&'a MigDevice>,
    /// Scenario time of this answer.
    pub t: f64,
}

impl Cx<'_> {
    /// NVML timestamp (µs since the epoch) of this answer.
    pub fn now_us(&self) -> u64 {
        self.session.timestamp_us(self.t)
    }
}

/// Calls a MIG device handle answers; everything else is
/// `NVML_ERROR_NOT_SUPPORTED` on one, as on real MIG devices.
const MIG_CALLS: &[&str] = &[
    entry::nvmlDeviceGetName,
    entry::nvmlDeviceGetUUID,
    entry::nvmlDeviceGetMemoryInfo,
    entry::nvmlDeviceGetMemoryInfo_v2,
    entry::nvmlDeviceGetBAR1MemoryInfo,
    entry::nvmlDeviceGetPciInfo_v3,
    entry::nvmlDeviceGetPciInfo_v2,
    entry::nvmlDeviceGetPciInfo,
    entry::nvmlDeviceGetMinorNumber,
    entry::nvmlDeviceGetBrand,
    entry::nvmlDeviceGetArchitecture,
    entry::nvmlDeviceGetCudaComputeCapability,
    entry::nvmlDeviceIsMigDeviceHandle,
    entry::nvmlDeviceGetGpuInstanceId,
    entry::nvmlDeviceGetComputeInstanceId,
    entry::nvmlDeviceGetDeviceHandleFromMigDeviceHandle,
    entry::nvmlDeviceGetAttributes_v2,
    entry::nvmlDeviceGetComputeRunningProcesses_v3,
    entry::nvmlDeviceGetComputeRunningProcesses_v2,
    entry::nvmlDeviceGetComputeRunningProcesses,
    entry::nvmlDeviceGetGraphicsRunningProcesses_v3,
    entry::nvmlDeviceGetGraphicsRunningProcesses_v2,
    entry::nvmlDeviceGetGraphicsRunningProcesses,
    entry::nvmlDeviceGetMPSComputeRunningProcesses_v3,
    entry::nvmlDeviceGetMPSComputeRunningProcesses_v2,
    entry::nvmlDeviceGetMPSComputeRunningProcesses,
    entry::nvmlDeviceGetRunningProcessDetailList,
];

/// Latency, lost-GPU, fault and unsupported handling shared by every call
/// that concerns one GPU. Returns the scenario time of the answer.
/// Calls real NVML answers from the driver's host-side records even for a GPU
/// that fell off the bus (their documented return codes have no
/// `NVML_ERROR_GPU_IS_LOST`): an XID 79 event can still be tied to its GPU.
const ANSWERED_WHEN_LOST: &[&str] = &[entry::nvmlDeviceGetIndex];

pub(crate) fn gate(session: &Session, call: &'static str, dev: &Device) -> Result<f64, u32> {
    let gpu = Some(dev.index);
    let before = session.t();
    sleep(session.scenario.latency(call, gpu, before) + session.env_latency);
    let t = session.t();
    if dev.is_lost(t) && !ANSWERED_WHEN_LOST.contains(&call) {
        return Err(rc::GPU_IS_LOST);
    }
    if let Some(code) = session.scenario.fault(call, gpu, t) {
        return Err(code);
    }
    if dev.unsupported(call) {
        return Err(rc::NOT_SUPPORTED);
    }
    Ok(t)
}

/// Runs a call on `device` (a GPU or MIG handle).
pub(crate) fn device_call(
    call: &'static str,
    device: nvmlDevice_t,
    body: impl FnOnce(&Cx<'_>) -> Ret,
) -> u32 {
    sized_device_call(call, device, std::ptr::null_mut(), body)
}

/// [`device_call`] for a call with NVML's size protocol, `count` being its
/// in/out element count. An `INSUFFICIENT_SIZE` fault then models a list
/// that keeps growing between the size probe and the fetch: every call asks
/// for one entry more than the caller offered.
pub(crate) fn sized_device_call(
    call: &'static str,
    device: nvmlDevice_t,
    count: *mut c_uint,
    body: impl FnOnce(&Cx<'_>) -> Ret,
) -> u32 {
    guard(call, || {
        let session = state::session()?;
        let id = state::lookup(device).ok_or(rc::INVALID_ARGUMENT)?;
        let dev = session.device(id.gpu).ok_or(rc::INVALID_ARGUMENT)?;
        let t = match gate(&session, call, dev) {
            Err(rc::INSUFFICIENT_SIZE) if !count.is_null() => {
                // SAFETY: non-null and valid per NVML's contract.
                unsafe { put(count, (*count).saturating_add(1)) };
                return Err(rc::INSUFFICIENT_SIZE);
            }
            other => other?,
        };
        let mig = match id.mig {
            None => None,
            Some(slot) => Some(mig_device(dev, slot, t)?),
        };
        if mig.is_some() && !MIG_CALLS.contains(&call) {
            return Err(rc::NOT_SUPPORTED);
        }
        body(&Cx {
            session: &session,
            dev,
            mig,
            t,
        })
    })
}

/// MIG device `slot` of `dev` at `t`, or the scenario's stale-handle error
/// (default `NVML_ERROR_INVALID_ARGUMENT`) once it has been destroyed.
pub(crate) fn mig_device(dev: &Device, slot: u32, t: f64) -> Result<&MigDevice, u32> {
    let timeline = dev.mig.as_ref().ok_or(rc::INVALID_ARGUMENT)?;
    timeline
        .device(slot as usize, t)
        .ok_or(timeline.stale_handle_error)
}

/// Runs a call that concerns no single GPU: latency and faults with no
/// `gpu` apply.
pub(crate) fn system_call(call: &'static str, body: impl FnOnce(&Arc<Session>, f64) -> Ret) -> u32 {
    guard(call, || {
        let session = state::session()?;
        let before = session.t();
        sleep(session.scenario.latency(call, None, before));
        let t = session.t();
        if let Some(code) = session.scenario.fault(call, None, t) {
            return Err(code);
        }
        body(&session, t)
    })
}

#[cfg(test)]
mod tests;
