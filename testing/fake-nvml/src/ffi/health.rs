//! Health and counters: ECC, retired pages, row remapping, clock-event
//! reasons, violation time, NVLink, and `nvmlDeviceGetFieldValues`.

use std::ffi::{c_int, c_uint, c_ulonglong};

use nvml_wrapper_sys::bindings::{
    nvmlDevice_t, nvmlEccCounterType_t, nvmlEnableState_t, nvmlFieldValue_t, nvmlMemoryErrorType_t,
    nvmlNvLinkErrorCounter_t, nvmlPageRetirementCause_t, nvmlPerfPolicyType_t, nvmlReturn_t,
    nvmlValue_t, nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_INT,
    nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_LONG_LONG, nvmlValueType_t, nvmlViolationTime_t,
};

use super::device::milliwatts;
use super::{Cx, Ret, device_call, non_null, put, sized_device_call, supported};
use crate::names;
use crate::names::entry;
use crate::scenario::{NvLink, Value};
use crate::state::rc;

/// Every clock-event reason bit NVML defines (GPU idle … display clock).
const ALL_EVENT_REASONS: c_ulonglong = 0x1ff;
/// Base of the synthesized retired-page addresses.
const RETIRED_PAGE_BASE: c_ulonglong = 0x0000_0040_0000_0000;
/// Unix time stamped on every synthesized retired page (2024-01-01).
const RETIRED_PAGE_TIME: c_ulonglong = 1_704_067_200;

/// `nvmlDeviceGetViolationStatus`: `violations_ns.<policy>` with
/// `referenceTime` = now (µs since the epoch).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetViolationStatus(
    device: nvmlDevice_t,
    perfPolicyType: nvmlPerfPolicyType_t,
    violTime: *mut nvmlViolationTime_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetViolationStatus, device, |cx| {
        let out = non_null(violTime)?;
        if perfPolicyType >= 12 {
            return Err(rc::INVALID_ARGUMENT);
        }
        let v = supported(cx.dev.spec.violations_ns.as_ref())?;
        let ns = supported(v.by_policy(perfPolicyType))?.u64_at(cx.t);
        let value = nvmlViolationTime_t {
            referenceTime: cx.now_us(),
            violationTime: ns,
        };
        unsafe { put(out, value) };
        Ok(())
    })
}

fn ecc_count(cx: &Cx<'_>, error_type: c_uint, counter_type: c_uint) -> Result<c_ulonglong, u32> {
    let ecc = supported(cx.dev.spec.ecc.as_ref())?;
    let value = match (error_type, counter_type) {
        (0, 0) => &ecc.sbe_volatile,
        (1, 0) => &ecc.dbe_volatile,
        (0, 1) => &ecc.sbe_aggregate,
        (1, 1) => &ecc.dbe_aggregate,
        _ => return Err(rc::INVALID_ARGUMENT),
    };
    Ok(value.u64_at(cx.t))
}

/// `nvmlDeviceGetTotalEccErrors`: `ecc.{sbe,dbe}_{volatile,aggregate}`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTotalEccErrors(
    device: nvmlDevice_t,
    errorType: nvmlMemoryErrorType_t,
    counterType: nvmlEccCounterType_t,
    eccCounts: *mut c_ulonglong,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetTotalEccErrors, device, |cx| {
        let out = non_null(eccCounts)?;
        let n = ecc_count(cx, errorType, counterType)?;
        unsafe { put(out, n) };
        Ok(())
    })
}

/// `nvmlDeviceGetEccMode`: `ecc.enabled` as current and pending mode.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetEccMode(
    device: nvmlDevice_t,
    current: *mut nvmlEnableState_t,
    pending: *mut nvmlEnableState_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetEccMode, device, |cx| {
        let (cur, pend) = (non_null(current)?, non_null(pending)?);
        let on = c_uint::from(supported(cx.dev.spec.ecc.as_ref())?.enabled);
        unsafe {
            put(cur, on);
            put(pend, on);
        }
        Ok(())
    })
}

/// `nvmlDeviceGetDefaultEccMode`: `ecc.enabled`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetDefaultEccMode(
    device: nvmlDevice_t,
    defaultMode: *mut nvmlEnableState_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetDefaultEccMode, device, |cx| {
        let out = non_null(defaultMode)?;
        let on = c_uint::from(supported(cx.dev.spec.ecc.as_ref())?.enabled);
        unsafe { put(out, on) };
        Ok(())
    })
}

/// The shared body of the retired-pages calls (NVML's two-call protocol).
fn retired_pages(
    cx: &Cx<'_>,
    cause: nvmlPageRetirementCause_t,
    page_count: *mut c_uint,
    addresses: *mut c_ulonglong,
    timestamps: Option<*mut c_ulonglong>,
) -> Ret {
    let count_ptr = non_null(page_count)?;
    let pages = supported(cx.dev.spec.retired_pages.as_ref())?;
    let n = match cause {
        0 => pages.sbe,
        1 => pages.dbe,
        _ => return Err(rc::INVALID_ARGUMENT),
    };
    // SAFETY: non-null and valid per NVML's contract.
    let capacity = unsafe { *count_ptr };
    if capacity < n {
        unsafe { put(count_ptr, n) };
        return Err(rc::INSUFFICIENT_SIZE);
    }
    if n > 0 {
        let addresses = non_null(addresses)?;
        let timestamps = timestamps.map(non_null).transpose()?;
        for i in 0..n as usize {
            let page =
                RETIRED_PAGE_BASE + (c_ulonglong::from(cause) << 32) + (i as c_ulonglong) * 0x1000;
            // SAFETY: the caller's arrays hold `capacity >= n` entries.
            unsafe {
                put(addresses.add(i), page);
                if let Some(ts) = timestamps {
                    put(ts.add(i), RETIRED_PAGE_TIME + i as c_ulonglong);
                }
            }
        }
    }
    unsafe { put(count_ptr, n) };
    Ok(())
}

/// `nvmlDeviceGetRetiredPages`: `retired_pages.sbe` / `.dbe` synthesized page
/// addresses, two-call size protocol.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetRetiredPages(
    device: nvmlDevice_t,
    cause: nvmlPageRetirementCause_t,
    pageCount: *mut c_uint,
    addresses: *mut c_ulonglong,
) -> nvmlReturn_t {
    sized_device_call(entry::nvmlDeviceGetRetiredPages, device, pageCount, |cx| {
        retired_pages(cx, cause, pageCount, addresses, None)
    })
}

/// `nvmlDeviceGetRetiredPages_v2`: as v1 plus retirement timestamps.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetRetiredPages_v2(
    device: nvmlDevice_t,
    cause: nvmlPageRetirementCause_t,
    pageCount: *mut c_uint,
    addresses: *mut c_ulonglong,
    timestamps: *mut c_ulonglong,
) -> nvmlReturn_t {
    sized_device_call(
        entry::nvmlDeviceGetRetiredPages_v2,
        device,
        pageCount,
        |cx| retired_pages(cx, cause, pageCount, addresses, Some(timestamps)),
    )
}

/// `nvmlDeviceGetRetiredPagesPendingStatus`: `retired_pages.pending`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetRetiredPagesPendingStatus(
    device: nvmlDevice_t,
    isPending: *mut nvmlEnableState_t,
) -> nvmlReturn_t {
    device_call(
        entry::nvmlDeviceGetRetiredPagesPendingStatus,
        device,
        |cx| {
            let out = non_null(isPending)?;
            let pending = supported(cx.dev.spec.retired_pages.as_ref())?.pending;
            unsafe { put(out, c_uint::from(pending)) };
            Ok(())
        },
    )
}

/// `nvmlDeviceGetRemappedRows`: `remapped_rows`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetRemappedRows(
    device: nvmlDevice_t,
    corrRows: *mut c_uint,
    uncRows: *mut c_uint,
    isPending: *mut c_uint,
    failureOccurred: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetRemappedRows, device, |cx| {
        let outs = [
            non_null(corrRows)?,
            non_null(uncRows)?,
            non_null(isPending)?,
            non_null(failureOccurred)?,
        ];
        let r = supported(cx.dev.spec.remapped_rows.as_ref())?;
        let values = [
            r.correctable,
            r.uncorrectable,
            c_uint::from(r.pending),
            c_uint::from(r.failure),
        ];
        for (out, v) in outs.into_iter().zip(values) {
            unsafe { put(out, v) };
        }
        Ok(())
    })
}

fn current_reasons(cx: &Cx<'_>) -> Result<c_ulonglong, u32> {
    Ok(supported(cx.dev.spec.throttle_reasons.as_ref())?.u64_at(cx.t))
}

fn supported_reasons(cx: &Cx<'_>) -> Result<c_ulonglong, u32> {
    supported(cx.dev.spec.throttle_reasons.as_ref())?;
    Ok(cx
        .dev
        .spec
        .supported_throttle_reasons
        .unwrap_or(ALL_EVENT_REASONS))
}

fn put_reasons(out: *mut c_ulonglong, value: Result<c_ulonglong, u32>) -> Ret {
    let out = non_null(out)?;
    let value = value?;
    unsafe { put(out, value) };
    Ok(())
}

/// `nvmlDeviceGetCurrentClocksThrottleReasons`: `throttle_reasons` bitmask.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCurrentClocksThrottleReasons(
    device: nvmlDevice_t,
    clocksThrottleReasons: *mut c_ulonglong,
) -> nvmlReturn_t {
    device_call(
        entry::nvmlDeviceGetCurrentClocksThrottleReasons,
        device,
        |cx| put_reasons(clocksThrottleReasons, current_reasons(cx)),
    )
}

/// `nvmlDeviceGetCurrentClocksEventReasons`: `throttle_reasons` bitmask.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCurrentClocksEventReasons(
    device: nvmlDevice_t,
    clocksEventReasons: *mut c_ulonglong,
) -> nvmlReturn_t {
    device_call(
        entry::nvmlDeviceGetCurrentClocksEventReasons,
        device,
        |cx| put_reasons(clocksEventReasons, current_reasons(cx)),
    )
}

/// `nvmlDeviceGetSupportedClocksThrottleReasons`:
/// `supported_throttle_reasons` (default: every defined bit).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetSupportedClocksThrottleReasons(
    device: nvmlDevice_t,
    supportedClocksThrottleReasons: *mut c_ulonglong,
) -> nvmlReturn_t {
    device_call(
        entry::nvmlDeviceGetSupportedClocksThrottleReasons,
        device,
        |cx| put_reasons(supportedClocksThrottleReasons, supported_reasons(cx)),
    )
}

/// `nvmlDeviceGetSupportedClocksEventReasons`: as the throttle variant.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetSupportedClocksEventReasons(
    device: nvmlDevice_t,
    supportedClocksEventReasons: *mut c_ulonglong,
) -> nvmlReturn_t {
    device_call(
        entry::nvmlDeviceGetSupportedClocksEventReasons,
        device,
        |cx| put_reasons(supportedClocksEventReasons, supported_reasons(cx)),
    )
}

fn nvlink<'a>(cx: &Cx<'a>, link: c_uint) -> Result<&'a NvLink, u32> {
    let n = supported(cx.dev.spec.nvlink.as_ref())?;
    if link >= n.links {
        return Err(rc::INVALID_ARGUMENT);
    }
    Ok(n)
}

/// `nvmlDeviceGetNvLinkState`: links below `nvlink.active_links` are active.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetNvLinkState(
    device: nvmlDevice_t,
    link: c_uint,
    isActive: *mut nvmlEnableState_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetNvLinkState, device, |cx| {
        let out = non_null(isActive)?;
        let n = nvlink(cx, link)?;
        unsafe { put(out, c_uint::from(link < n.active())) };
        Ok(())
    })
}

/// `nvmlDeviceGetNvLinkErrorCounter`: this link's share of
/// `nvlink.replay_errors` / `recovery_errors` / `crc_flit_errors` /
/// `crc_data_errors`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetNvLinkErrorCounter(
    device: nvmlDevice_t,
    link: c_uint,
    counter: nvmlNvLinkErrorCounter_t,
    counterValue: *mut c_ulonglong,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetNvLinkErrorCounter, device, |cx| {
        let out = non_null(counterValue)?;
        let n = nvlink(cx, link)?;
        let total = match counter {
            0 => &n.replay_errors,
            1 => &n.recovery_errors,
            2 => &n.crc_flit_errors,
            3 => &n.crc_data_errors,
            4 => &None,
            _ => return Err(rc::INVALID_ARGUMENT),
        };
        let value = n.share(supported(total.as_ref())?.u64_at(cx.t), link);
        unsafe { put(out, value) };
        Ok(())
    })
}

/// A field value: its type tag and union.
type Field = (nvmlValueType_t, nvmlValue_t);

fn ui(v: c_uint) -> Field {
    (
        nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_INT,
        nvmlValue_t { uiVal: v },
    )
}

fn ull(v: c_ulonglong) -> Field {
    (
        nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_LONG_LONG,
        nvmlValue_t { ullVal: v },
    )
}

/// Which NVLink counter a per-link field ID reads, and for which link
/// (`None` for the `_TOTAL` field).
fn nvlink_field(id: u32) -> Option<(usize, Option<u32>)> {
    // (first ID of L0..L5, TOTAL, first ID of L6..L11) for each counter, in
    // the order crc_flit, crc_data, replay, recovery, bandwidth.
    const GROUPS: [(u32, u32, u32); 5] = [
        (32, 38, 96),
        (39, 45, 102),
        (46, 52, 108),
        (53, 59, 114),
        (60, 66, 120),
    ];
    GROUPS
        .iter()
        .enumerate()
        .find_map(|(g, &(low, total, high))| {
            if (low..low + 6).contains(&id) {
                Some((g, Some(id - low)))
            } else if id == total {
                Some((g, None))
            } else if (high..high + 6).contains(&id) {
                Some((g, Some(id - high + 6)))
            } else {
                None
            }
        })
}

fn nvlink_counter(n: &NvLink, group: usize) -> Option<&Value> {
    match group {
        0 => n.crc_flit_errors.as_ref(),
        1 => n.crc_data_errors.as_ref(),
        2 => n.replay_errors.as_ref(),
        3 => n.recovery_errors.as_ref(),
        _ => n.bandwidth_total.as_ref(),
    }
}

/// One entry of `nvmlDeviceGetFieldValues`.
fn field_value(cx: &Cx<'_>, id: u32, scope: u32) -> Result<Field, u32> {
    let spec = &cx.dev.spec;
    let t = cx.t;
    if names::field_name(id).is_some_and(|name| cx.dev.unsupported(name)) {
        return Err(rc::NOT_SUPPORTED);
    }
    if let Some((group, link)) = nvlink_field(id) {
        let n = supported(spec.nvlink.as_ref())?;
        let total = supported(nvlink_counter(n, group))?.u64_at(t);
        return match link {
            None => Ok(ull(total)),
            Some(l) if l < n.links => Ok(ull(n.share(total, l))),
            Some(_) => Err(rc::INVALID_ARGUMENT),
        };
    }
    let flag = |b: bool| ui(c_uint::from(b));
    match id {
        1 | 2 => Ok(flag(supported(spec.ecc.as_ref())?.enabled)),
        3 => ecc_count(cx, 0, 0).map(ull),
        4 => ecc_count(cx, 1, 0).map(ull),
        5 => ecc_count(cx, 0, 1).map(ull),
        6 => ecc_count(cx, 1, 1).map(ull),
        29 => Ok(ull(supported(spec.retired_pages.as_ref())?.sbe.into())),
        30 => Ok(ull(supported(spec.retired_pages.as_ref())?.dbe.into())),
        31 => Ok(flag(supported(spec.retired_pages.as_ref())?.pending)),
        74..=79 => {
            let v = supported(spec.violations_ns.as_ref())?;
            Ok(ull(supported(v.by_policy(id - 74))?.u64_at(t)))
        }
        82 => Ok(ui(supported(spec.memory_temperature_c.as_ref())?.u32_at(t))),
        83 | 191 => Ok(ull(supported(cx.dev.energy_mj(t))?)),
        91 => Ok(ui(supported(spec.nvlink.as_ref())?.links)),
        94 => {
            let pcie = supported(spec.pcie.as_ref())?;
            Ok(ui(supported(pcie.replay_counter.as_ref())?.u32_at(t)))
        }
        138..=141 => {
            let n = supported(spec.nvlink.as_ref())?;
            if scope >= n.links {
                return Err(rc::INVALID_ARGUMENT);
            }
            let rate = if matches!(id, 138 | 140) {
                &n.tx_kib_s
            } else {
                &n.rx_kib_s
            };
            let kib = supported(rate.as_ref())?.integral(0.0, t).round() as u64;
            Ok(ull(n.share(kib, scope)))
        }
        142 => Ok(ui(supported(spec.remapped_rows.as_ref())?.correctable)),
        143 => Ok(ui(supported(spec.remapped_rows.as_ref())?.uncorrectable)),
        144 => Ok(flag(supported(spec.remapped_rows.as_ref())?.pending)),
        145 => Ok(flag(supported(spec.remapped_rows.as_ref())?.failure)),
        185 | 186 => {
            // scopeId 0 is the GPU; module and memory power are not modelled.
            if scope != 0 {
                return Err(rc::NOT_SUPPORTED);
            }
            let power = supported(spec.power_w.as_ref())?;
            let watts = if id == 185 {
                power.mean(t - 1.0, t)
            } else {
                power.at(t)
            };
            Ok(ui((watts * 1000.0).round() as c_uint))
        }
        187 => Ok(ui(milliwatts(
            spec.power_limit_constraints_w.map(|c| c[0]),
        )?)),
        188 => Ok(ui(milliwatts(
            spec.power_limit_constraints_w.map(|c| c[1]),
        )?)),
        189 => Ok(ui(milliwatts(
            spec.power_default_limit_w.or(spec.power_limit_w),
        )?)),
        190 => Ok(ui(milliwatts(spec.power_limit_w)?)),
        197 | 198 => {
            let pcie = supported(spec.pcie.as_ref())?;
            let rate = if id == 197 {
                &pcie.tx_kib_s
            } else {
                &pcie.rx_kib_s
            };
            let kib = supported(rate.as_ref())?.integral(0.0, t);
            Ok(ull((kib * 1024.0).round() as u64))
        }
        _ => Err(rc::NOT_SUPPORTED),
    }
}

/// `nvmlDeviceGetFieldValues`: fills each entry's `nvmlReturn`, `valueType`,
/// `value`, `timestamp` (µs) and `latencyUsec`; IDs the fake does not serve
/// (see `names::FIELDS`) get `NVML_ERROR_NOT_SUPPORTED` in their entry.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetFieldValues(
    device: nvmlDevice_t,
    valuesCount: c_int,
    values: *mut nvmlFieldValue_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetFieldValues, device, |cx| {
        let values = non_null(values)?;
        let count = usize::try_from(valuesCount).map_err(|_| rc::INVALID_ARGUMENT)?;
        let latency_us = cx.session.env_latency.as_micros();
        for i in 0..count {
            // SAFETY: the caller's array holds `valuesCount` entries.
            let entry = unsafe { values.add(i) };
            let mut v = unsafe { entry.read() };
            match field_value(cx, v.fieldId, v.scopeId) {
                Ok((value_type, value)) => {
                    v.valueType = value_type;
                    v.value = value;
                    v.nvmlReturn = rc::SUCCESS;
                }
                Err(code) => v.nvmlReturn = code,
            }
            v.timestamp = i64::try_from(cx.now_us()).unwrap_or(i64::MAX);
            v.latencyUsec = i64::try_from(latency_us).unwrap_or(i64::MAX);
            unsafe { put(entry, v) };
        }
        Ok(())
    })
}
