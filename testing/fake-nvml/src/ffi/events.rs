//! Event sets: the scenario's `xid_events` delivered as
//! `nvmlEventTypeXidCriticalError`.
//!
//! Each set delivers every XID of its registered GPUs whose `at_s` has been
//! reached, once, earliest first — including XIDs due before the set was
//! created, so a test with a frozen clock past `at_s` still sees them.
//!
//! A registration does not survive the GPU falling off the bus: it delivers
//! only XIDs on its side of every loss of that GPU (`lost_after_s`, or the
//! start of a `"*"` `GPU_IS_LOST` fault window). An XID at the very moment
//! of the loss (XID 79) is still delivered; a GPU that comes back must be
//! registered again to deliver XIDs after that.

use std::collections::{HashMap, HashSet};
use std::ffi::{c_uint, c_ulonglong};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use nvml_wrapper_sys::bindings::{
    nvmlDevice_t, nvmlEventData_t, nvmlEventSet_t, nvmlEventTypeClock,
    nvmlEventTypeDoubleBitEccError, nvmlEventTypePState, nvmlEventTypeSingleBitEccError,
    nvmlEventTypeXidCriticalError, nvmlReturn_t,
};
use parking_lot::Mutex;

use super::{Ret, device_call, guard, non_null, put, system_call};
use crate::names::entry;
use crate::state::{self, DeviceId, Session, rc};

/// Longest single sleep while waiting on a frozen clock, so a clock change
/// (`algalon_fake_nvml_set_time`, resume) is noticed promptly.
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Default)]
struct EventSet {
    /// `(gpu index, registered event mask, scenario time of registration)`.
    registrations: Vec<(u32, c_ulonglong, f64)>,
    /// `(gpu index, index into xid_events)` already delivered.
    delivered: HashSet<(u32, usize)>,
}

/// Live sets, keyed by the address of their boxed state (which is the
/// handle; it is only ever compared, never dereferenced).
static SETS: LazyLock<Mutex<HashMap<usize, Box<EventSet>>>> = LazyLock::new(Mutex::default);

fn supported_events(ecc: bool) -> c_ulonglong {
    let mut mask =
        c_ulonglong::from(nvmlEventTypeXidCriticalError | nvmlEventTypePState | nvmlEventTypeClock);
    if ecc {
        mask |= c_ulonglong::from(nvmlEventTypeSingleBitEccError | nvmlEventTypeDoubleBitEccError);
    }
    mask
}

/// `nvmlDeviceGetSupportedEventTypes`: XID critical errors, P-state and clock
/// changes, and ECC errors when the GPU has an `ecc` block.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetSupportedEventTypes(
    device: nvmlDevice_t,
    eventTypes: *mut c_ulonglong,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetSupportedEventTypes, device, |cx| {
        let out = non_null(eventTypes)?;
        unsafe { put(out, supported_events(cx.dev.spec.ecc.is_some())) };
        Ok(())
    })
}

/// `nvmlDeviceRegisterEvents`: adds this GPU to the set; event types the GPU
/// does not support → `NVML_ERROR_NOT_SUPPORTED`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceRegisterEvents(
    device: nvmlDevice_t,
    eventTypes: c_ulonglong,
    set: nvmlEventSet_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceRegisterEvents, device, |cx| {
        if eventTypes & !supported_events(cx.dev.spec.ecc.is_some()) != 0 {
            return Err(rc::NOT_SUPPORTED);
        }
        let mut sets = SETS.lock();
        let es = sets.get_mut(&(set as usize)).ok_or(rc::INVALID_ARGUMENT)?;
        es.registrations.push((cx.dev.index, eventTypes, cx.t));
        Ok(())
    })
}

/// `nvmlEventSetCreate`: a new, empty event set (free with
/// `nvmlEventSetFree`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlEventSetCreate(set: *mut nvmlEventSet_t) -> nvmlReturn_t {
    system_call(entry::nvmlEventSetCreate, |_, _| {
        let out = non_null(set)?;
        let es = Box::<EventSet>::default();
        let key = std::ptr::from_ref(es.as_ref()) as usize;
        SETS.lock().insert(key, es);
        unsafe { put(out, key as nvmlEventSet_t) };
        Ok(())
    })
}

/// The next due, undelivered XID for `es`: `(gpu, index, xid)`; and when
/// none is due, the earliest future `at_s`. An XID counts only for a GPU
/// registered on the same side of every loss of that GPU.
fn next_xid(session: &Session, es: &EventSet, t: f64) -> (Option<(u32, usize, u64)>, Option<f64>) {
    let mut due: Option<(f64, u32, usize, u64)> = None;
    let mut future: Option<f64> = None;
    let xid_bit = c_ulonglong::from(nvmlEventTypeXidCriticalError);
    let mut gpus: Vec<u32> = es
        .registrations
        .iter()
        .filter(|(_, mask, _)| mask & xid_bit != 0)
        .map(|(gpu, ..)| *gpu)
        .collect();
    gpus.sort_unstable();
    gpus.dedup();
    for gpu in gpus {
        let Some(dev) = session.device(gpu) else {
            continue;
        };
        let losses = session.scenario.losses(gpu);
        let registered: Vec<f64> = es
            .registrations
            .iter()
            .filter(|(g, mask, _)| *g == gpu && mask & xid_bit != 0)
            .map(|(.., at)| *at)
            .collect();
        let reaches = |at_s: f64| {
            registered.iter().any(|&r| {
                if r <= at_s {
                    // Lost after registering: an XID at the very moment of
                    // the loss (XID 79) still arrives, later ones do not.
                    !losses.iter().any(|&(from, _)| r < from && from < at_s)
                } else {
                    // Registered after a loss: nothing from before it, or
                    // from while the GPU was off the bus, is replayed.
                    !losses
                        .iter()
                        .any(|&(from, until)| from < r && until.is_none_or(|u| at_s < u))
                }
            })
        };
        for (i, x) in dev.spec.xid_events.iter().enumerate() {
            if es.delivered.contains(&(gpu, i)) || !reaches(x.at_s) {
                continue;
            }
            if x.at_s <= t {
                if due.is_none_or(|(at, ..)| x.at_s < at) {
                    due = Some((x.at_s, gpu, i, x.xid));
                }
            } else if future.is_none_or(|f| x.at_s < f) {
                future = Some(x.at_s);
            }
        }
    }
    (due.map(|(_, gpu, i, xid)| (gpu, i, xid)), future)
}

fn wait(
    call: &'static str,
    set: nvmlEventSet_t,
    data: *mut nvmlEventData_t,
    timeout_ms: c_uint,
) -> Ret {
    let session = state::session()?;
    let out = non_null(data)?;
    let key = set as usize;
    if !SETS.lock().contains_key(&key) {
        return Err(rc::INVALID_ARGUMENT);
    }
    let t0 = session.t();
    std::thread::sleep(session.scenario.latency(call, None, t0));
    if let Some(code) = session.scenario.fault(call, None, session.t()) {
        return Err(code);
    }
    let deadline = Instant::now() + Duration::from_millis(timeout_ms.into());
    loop {
        let t = session.t();
        let future = {
            let mut sets = SETS.lock();
            let es = sets.get_mut(&key).ok_or(rc::INVALID_ARGUMENT)?;
            let (due, future) = next_xid(&session, es, t);
            if let Some((gpu, i, xid)) = due {
                es.delivered.insert((gpu, i));
                let event = nvmlEventData_t {
                    device: state::handle(DeviceId { gpu, mig: None }),
                    eventType: nvmlEventTypeXidCriticalError.into(),
                    eventData: xid,
                    gpuInstanceId: c_uint::MAX,
                    computeInstanceId: c_uint::MAX,
                };
                unsafe { put(out, event) };
                return Ok(());
            }
            future
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(rc::TIMEOUT);
        }
        // With a frozen clock a test may move time at any moment: poll. On a
        // running clock nothing changes before the next scheduled XID, so
        // sleep until then, as a real driver blocks in the kernel; an idle
        // waiter then costs what it costs with real NVML.
        let mut nap = deadline - now;
        if session.frozen() {
            nap = nap.min(POLL);
        } else if let Some(at) = future {
            nap = nap.min(Duration::from_secs_f64((at - t).max(0.0005)));
        }
        std::thread::sleep(nap);
    }
}

/// `nvmlEventSetWait_v2`: waits up to `timeoutms` for the next XID of the
/// registered GPUs; `NVML_ERROR_TIMEOUT` when none arrives.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlEventSetWait_v2(
    set: nvmlEventSet_t,
    data: *mut nvmlEventData_t,
    timeoutms: c_uint,
) -> nvmlReturn_t {
    guard(entry::nvmlEventSetWait_v2, || {
        wait(entry::nvmlEventSetWait_v2, set, data, timeoutms)
    })
}

/// `nvmlEventSetWait` (v1): as `_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlEventSetWait(
    set: nvmlEventSet_t,
    data: *mut nvmlEventData_t,
    timeoutms: c_uint,
) -> nvmlReturn_t {
    guard(entry::nvmlEventSetWait, || {
        wait(entry::nvmlEventSetWait, set, data, timeoutms)
    })
}

/// `nvmlEventSetFree`: releases a set; unknown handles →
/// `NVML_ERROR_INVALID_ARGUMENT` (never a double free).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlEventSetFree(set: nvmlEventSet_t) -> nvmlReturn_t {
    system_call(entry::nvmlEventSetFree, |_, _| {
        SETS.lock()
            .remove(&(set as usize))
            .map(drop)
            .ok_or(rc::INVALID_ARGUMENT)
    })
}
