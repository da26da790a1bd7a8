//! Per-device identity and readings.

use std::ffi::{c_char, c_int, c_uint, c_ulonglong};

use nvml_wrapper_sys::bindings::{
    nvmlBAR1Memory_t, nvmlBrandType_t, nvmlClockId_t, nvmlClockType_t, nvmlComputeMode_t,
    nvmlConfComputeMemSizeInfo_t, nvmlDevice_t, nvmlDeviceArchitecture_t, nvmlDriverModel_t,
    nvmlEnableState_t, nvmlInforomObject_t, nvmlMemory_t, nvmlMemory_v2_t, nvmlPciInfo_t,
    nvmlPcieUtilCounter_t, nvmlPstates_t, nvmlReturn_t, nvmlTemperature_t,
    nvmlTemperatureSensors_t, nvmlTemperatureThresholds_t, nvmlUtilization_t,
};

use super::{Cx, Ret, c_array, device_call, non_null, put, put_str, supported};
use crate::names::entry;
use crate::scenario::{Clocks, MemoryReading, Pcie, Value};
use crate::state::rc;

/// `NVML_STRUCT_VERSION(Memory, 2)`, what nvml-wrapper and pynvml send.
const MEMORY_V2_VERSION: c_uint = (size_of::<nvmlMemory_v2_t>() as c_uint) | (2 << 24);
/// `NVML_STRUCT_VERSION(Temperature, 1)`.
const TEMPERATURE_V1_VERSION: c_uint = (size_of::<nvmlTemperature_t>() as c_uint) | (1 << 24);
/// NVML's sampling period for encoder/decoder utilization, µs.
const CODEC_SAMPLING_US: c_uint = 167_000;

fn enable_state(on: bool) -> nvmlEnableState_t {
    c_uint::from(on)
}

/// Shorthand for the common "one `unsigned int` out" call.
fn put_u32(out: *mut c_uint, value: Result<c_uint, u32>) -> Ret {
    let out = non_null(out)?;
    let value = value?;
    unsafe { put(out, value) };
    Ok(())
}

fn put_u64(out: *mut c_ulonglong, value: Result<c_ulonglong, u32>) -> Ret {
    let out = non_null(out)?;
    let value = value?;
    unsafe { put(out, value) };
    Ok(())
}

/// `nvmlDeviceGetIndex`: the GPU's NVML index.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetIndex(
    device: nvmlDevice_t,
    index: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetIndex, device, |cx| {
        put_u32(index, Ok(cx.dev.index))
    })
}

/// `nvmlDeviceGetUUID`: `uuid` (a MIG device's own `MIG-…` UUID).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUUID(
    device: nvmlDevice_t,
    uuid: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetUUID, device, |cx| {
        let value = cx.mig.map_or(&cx.dev.spec.uuid, |m| &m.spec.uuid);
        unsafe { put_str(uuid, length, value) }
    })
}

/// `nvmlDeviceGetName`: `name`; a MIG device is `"<name> MIG <profile>"`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetName(
    device: nvmlDevice_t,
    name: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetName, device, |cx| {
        let value = match cx.mig {
            Some(m) => m.name(&cx.dev.spec.name),
            None => cx.dev.spec.name.clone(),
        };
        unsafe { put_str(name, length, &value) }
    })
}

fn pci_info(cx: &Cx<'_>) -> nvmlPciInfo_t {
    let spec = &cx.dev.spec;
    nvmlPciInfo_t {
        busIdLegacy: c_array(&cx.dev.pci.bus_id_legacy()),
        domain: cx.dev.pci.domain,
        bus: cx.dev.pci.bus.into(),
        device: cx.dev.pci.device.into(),
        pciDeviceId: spec.pci_device_id.map_or(0, |h| h.0),
        pciSubSystemId: spec.pci_subsystem_id.map_or(0, |h| h.0),
        busId: c_array(&cx.dev.pci.bus_id()),
    }
}

fn pci_call(call: &'static str, device: nvmlDevice_t, pci: *mut nvmlPciInfo_t) -> nvmlReturn_t {
    device_call(call, device, |cx| {
        let out = non_null(pci)?;
        unsafe { put(out, pci_info(cx)) };
        Ok(())
    })
}

/// `nvmlDeviceGetPciInfo_v3`: `pci_bus_id` (busId `%08X:%02X:%02X.0`,
/// busIdLegacy `%04X:…`), `pci_device_id`, `pci_subsystem_id`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPciInfo_v3(
    device: nvmlDevice_t,
    pci: *mut nvmlPciInfo_t,
) -> nvmlReturn_t {
    pci_call(entry::nvmlDeviceGetPciInfo_v3, device, pci)
}

/// `nvmlDeviceGetPciInfo_v2`: as `_v3`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPciInfo_v2(
    device: nvmlDevice_t,
    pci: *mut nvmlPciInfo_t,
) -> nvmlReturn_t {
    pci_call(entry::nvmlDeviceGetPciInfo_v2, device, pci)
}

/// `nvmlDeviceGetPciInfo` (v1): as `_v3`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPciInfo(
    device: nvmlDevice_t,
    pci: *mut nvmlPciInfo_t,
) -> nvmlReturn_t {
    pci_call(entry::nvmlDeviceGetPciInfo, device, pci)
}

/// `nvmlDeviceGetMinorNumber`: `minor_number` (default: the index).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMinorNumber(
    device: nvmlDevice_t,
    minorNumber: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetMinorNumber, device, |cx| {
        put_u32(
            minorNumber,
            Ok(cx.dev.spec.minor_number.unwrap_or(cx.dev.index)),
        )
    })
}

fn string_call(
    call: &'static str,
    device: nvmlDevice_t,
    buf: *mut c_char,
    length: c_uint,
    pick: impl FnOnce(&Cx<'_>) -> Option<String>,
) -> nvmlReturn_t {
    device_call(call, device, |cx| {
        let value = supported(pick(cx))?;
        unsafe { put_str(buf, length, &value) }
    })
}

/// `nvmlDeviceGetSerial`: `serial`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetSerial(
    device: nvmlDevice_t,
    serial: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    string_call(entry::nvmlDeviceGetSerial, device, serial, length, |cx| {
        cx.dev.spec.serial.clone()
    })
}

/// `nvmlDeviceGetVbiosVersion`: `vbios_version`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetVbiosVersion(
    device: nvmlDevice_t,
    version: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    string_call(
        entry::nvmlDeviceGetVbiosVersion,
        device,
        version,
        length,
        |cx| cx.dev.spec.vbios_version.clone(),
    )
}

/// `nvmlDeviceGetBoardPartNumber`: `board_part_number`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetBoardPartNumber(
    device: nvmlDevice_t,
    partNumber: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    string_call(
        entry::nvmlDeviceGetBoardPartNumber,
        device,
        partNumber,
        length,
        |cx| cx.dev.spec.board_part_number.clone(),
    )
}

/// `nvmlDeviceGetBrand`: `brand`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetBrand(
    device: nvmlDevice_t,
    type_: *mut nvmlBrandType_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetBrand, device, |cx| {
        put_u32(type_, supported(cx.dev.spec.brand.map(|b| b.nvml())))
    })
}

/// `nvmlDeviceGetInforomImageVersion`: `inforom.image`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetInforomImageVersion(
    device: nvmlDevice_t,
    version: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    string_call(
        entry::nvmlDeviceGetInforomImageVersion,
        device,
        version,
        length,
        |cx| cx.dev.spec.inforom.as_ref()?.image.clone(),
    )
}

/// `nvmlDeviceGetInforomVersion`: `inforom.oem` / `.ecc` / `.power`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetInforomVersion(
    device: nvmlDevice_t,
    object: nvmlInforomObject_t,
    version: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetInforomVersion, device, |cx| {
        let inforom = supported(cx.dev.spec.inforom.as_ref())?;
        let value = match object {
            0 => &inforom.oem,
            1 => &inforom.ecc,
            2 => &inforom.power,
            _ => return Err(rc::INVALID_ARGUMENT),
        };
        unsafe { put_str(version, length, supported(value.as_deref())?) }
    })
}

/// `nvmlDeviceGetArchitecture`: `architecture`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetArchitecture(
    device: nvmlDevice_t,
    arch: *mut nvmlDeviceArchitecture_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetArchitecture, device, |cx| {
        put_u32(arch, supported(cx.dev.spec.architecture.map(|a| a.nvml())))
    })
}

/// `nvmlDeviceGetCudaComputeCapability`: `cuda_compute_capability`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCudaComputeCapability(
    device: nvmlDevice_t,
    major: *mut c_int,
    minor: *mut c_int,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetCudaComputeCapability, device, |cx| {
        let (major, minor) = (non_null(major)?, non_null(minor)?);
        let [ma, mi] = supported(cx.dev.spec.cuda_compute_capability)?;
        unsafe {
            put(major, ma);
            put(minor, mi);
        }
        Ok(())
    })
}

/// `nvmlDeviceGetPersistenceMode`: `persistence_mode`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPersistenceMode(
    device: nvmlDevice_t,
    mode: *mut nvmlEnableState_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetPersistenceMode, device, |cx| {
        put_u32(
            mode,
            supported(cx.dev.spec.persistence_mode.map(enable_state)),
        )
    })
}

/// `nvmlDeviceGetDisplayActive`: `display_active`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetDisplayActive(
    device: nvmlDevice_t,
    isActive: *mut nvmlEnableState_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetDisplayActive, device, |cx| {
        put_u32(
            isActive,
            supported(cx.dev.spec.display_active.map(enable_state)),
        )
    })
}

/// `nvmlDeviceGetDisplayMode`: `display_mode`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetDisplayMode(
    device: nvmlDevice_t,
    display: *mut nvmlEnableState_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetDisplayMode, device, |cx| {
        put_u32(
            display,
            supported(cx.dev.spec.display_mode.map(enable_state)),
        )
    })
}

/// `nvmlDeviceGetComputeMode`: `compute_mode`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetComputeMode(
    device: nvmlDevice_t,
    mode: *mut nvmlComputeMode_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetComputeMode, device, |cx| {
        put_u32(mode, supported(cx.dev.spec.compute_mode.map(|m| m.nvml())))
    })
}

/// `nvmlDeviceGetDriverModel`: `NVML_ERROR_NOT_SUPPORTED`, as on Linux
/// (driver models are a Windows notion).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetDriverModel(
    device: nvmlDevice_t,
    current: *mut nvmlDriverModel_t,
    pending: *mut nvmlDriverModel_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetDriverModel, device, |_| {
        non_null(current)?;
        non_null(pending)?;
        Err(rc::NOT_SUPPORTED)
    })
}

/// `nvmlDeviceGetDriverModel_v2`: `NVML_ERROR_NOT_SUPPORTED`, as on Linux.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetDriverModel_v2(
    device: nvmlDevice_t,
    current: *mut nvmlDriverModel_t,
    pending: *mut nvmlDriverModel_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetDriverModel_v2, device, |_| {
        non_null(current)?;
        non_null(pending)?;
        Err(rc::NOT_SUPPORTED)
    })
}

/// `nvmlDeviceGetConfComputeMemSizeInfo`: `NVML_ERROR_NOT_SUPPORTED`
/// (confidential computing is not modelled).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetConfComputeMemSizeInfo(
    device: nvmlDevice_t,
    memInfo: *mut nvmlConfComputeMemSizeInfo_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetConfComputeMemSizeInfo, device, |_| {
        non_null(memInfo)?;
        Err(rc::NOT_SUPPORTED)
    })
}

/// The GPU's memory, or a MIG device's own.
fn memory_reading(cx: &Cx<'_>) -> MemoryReading {
    cx.mig
        .map_or_else(|| cx.dev.memory(cx.t), |m| m.memory(cx.t))
}

/// `nvmlDeviceGetMemoryInfo` (v1 struct): `memory`, with the reserved memory
/// counted as used (`used = used_mib + reserved_mib`, `free = total - used`),
/// exactly as real NVML's v1 differs from v2.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo(
    device: nvmlDevice_t,
    memory: *mut nvmlMemory_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetMemoryInfo, device, |cx| {
        let out = non_null(memory)?;
        let m = memory_reading(cx);
        let value = nvmlMemory_t {
            total: m.total,
            free: m.free_v1,
            used: m.used_v1,
        };
        unsafe { put(out, value) };
        Ok(())
    })
}

/// `nvmlDeviceGetMemoryInfo_v2`: `memory` with `reserved`; `version` must be
/// `NVML_STRUCT_VERSION(Memory, 2)` or the call answers
/// `NVML_ERROR_ARGUMENT_VERSION_MISMATCH`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo_v2(
    device: nvmlDevice_t,
    memory: *mut nvmlMemory_v2_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetMemoryInfo_v2, device, |cx| {
        let out = non_null(memory)?;
        // SAFETY: non-null and valid per NVML's contract.
        let version = unsafe { (*out).version };
        if version != MEMORY_V2_VERSION {
            return Err(rc::ARGUMENT_VERSION_MISMATCH);
        }
        let m = memory_reading(cx);
        let value = nvmlMemory_v2_t {
            version,
            total: m.total,
            reserved: m.reserved,
            free: m.free,
            used: m.used,
        };
        unsafe { put(out, value) };
        Ok(())
    })
}

/// `nvmlDeviceGetBAR1MemoryInfo`: `bar1`; a MIG device gets the share of
/// it in proportion to its memory.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetBAR1MemoryInfo(
    device: nvmlDevice_t,
    bar1Memory: *mut nvmlBAR1Memory_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetBAR1MemoryInfo, device, |cx| {
        let out = non_null(bar1Memory)?;
        let bar1 = supported(cx.dev.spec.bar1.as_ref())?;
        let share = cx.mig.map_or(1.0, |m| {
            m.profile.memory_mib as f64 / cx.dev.spec.memory.total_mib.max(1) as f64
        });
        let total = ((bar1.total_mib as f64 * share) as u64) << 20;
        let used = (((bar1.used_mib.at(cx.t) * share).round() as u64) << 20).min(total);
        let value = nvmlBAR1Memory_t {
            bar1Total: total,
            bar1Free: total - used,
            bar1Used: used,
        };
        unsafe { put(out, value) };
        Ok(())
    })
}

fn clock(clocks: Option<&Clocks>, clock_type: nvmlClockType_t, t: f64) -> Result<c_uint, u32> {
    if clock_type > 3 {
        return Err(rc::INVALID_ARGUMENT);
    }
    let value = supported(clocks)?.by_type(clock_type);
    Ok(supported(value)?.u32_at(t))
}

/// `nvmlDeviceGetClockInfo`: `clocks` (graphics = SM unless `graphics_mhz`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetClockInfo(
    device: nvmlDevice_t,
    type_: nvmlClockType_t,
    clock_mhz: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetClockInfo, device, |cx| {
        put_u32(clock_mhz, clock(cx.dev.spec.clocks.as_ref(), type_, cx.t))
    })
}

/// `nvmlDeviceGetMaxClockInfo`: `max_clocks`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMaxClockInfo(
    device: nvmlDevice_t,
    type_: nvmlClockType_t,
    clock_mhz: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetMaxClockInfo, device, |cx| {
        put_u32(
            clock_mhz,
            clock(cx.dev.spec.max_clocks.as_ref(), type_, cx.t),
        )
    })
}

/// `nvmlDeviceGetClock`: `CURRENT` → `clocks`, `APP_CLOCK_TARGET` /
/// `APP_CLOCK_DEFAULT` → `app_clocks`, `CUSTOMER_BOOST_MAX` → `max_clocks`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetClock(
    device: nvmlDevice_t,
    clockType: nvmlClockType_t,
    clockId: nvmlClockId_t,
    clockMHz: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetClock, device, |cx| {
        let spec = &cx.dev.spec;
        let clocks = match clockId {
            0 => spec.clocks.as_ref(),
            1 | 2 => spec.app_clocks.as_ref(),
            3 => spec.max_clocks.as_ref(),
            _ => return Err(rc::INVALID_ARGUMENT),
        };
        put_u32(clockMHz, clock(clocks, clockType, cx.t))
    })
}

/// `nvmlDeviceGetApplicationsClock`: `app_clocks`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetApplicationsClock(
    device: nvmlDevice_t,
    clockType: nvmlClockType_t,
    clockMHz: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetApplicationsClock, device, |cx| {
        put_u32(
            clockMHz,
            clock(cx.dev.spec.app_clocks.as_ref(), clockType, cx.t),
        )
    })
}

/// `nvmlDeviceGetDefaultApplicationsClock`: `app_clocks`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetDefaultApplicationsClock(
    device: nvmlDevice_t,
    clockType: nvmlClockType_t,
    clockMHz: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetDefaultApplicationsClock, device, |cx| {
        put_u32(
            clockMHz,
            clock(cx.dev.spec.app_clocks.as_ref(), clockType, cx.t),
        )
    })
}

/// `nvmlDeviceGetMaxCustomerBoostClock`: `max_clocks`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMaxCustomerBoostClock(
    device: nvmlDevice_t,
    clockType: nvmlClockType_t,
    clockMHz: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetMaxCustomerBoostClock, device, |cx| {
        put_u32(
            clockMHz,
            clock(cx.dev.spec.max_clocks.as_ref(), clockType, cx.t),
        )
    })
}

fn gpu_temperature(cx: &Cx<'_>, sensor: nvmlTemperatureSensors_t) -> Result<c_uint, u32> {
    if sensor != 0 {
        return Err(rc::INVALID_ARGUMENT);
    }
    Ok(supported(cx.dev.spec.temperature_c.as_ref())?.u32_at(cx.t))
}

/// `nvmlDeviceGetTemperature`: `temperature_c` (sensor `NVML_TEMPERATURE_GPU`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTemperature(
    device: nvmlDevice_t,
    sensorType: nvmlTemperatureSensors_t,
    temp: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetTemperature, device, |cx| {
        put_u32(temp, gpu_temperature(cx, sensorType))
    })
}

/// `nvmlDeviceGetTemperatureV`: `temperature_c`; `version` must be
/// `NVML_STRUCT_VERSION(Temperature, 1)`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTemperatureV(
    device: nvmlDevice_t,
    temperature: *mut nvmlTemperature_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetTemperatureV, device, |cx| {
        let out = non_null(temperature)?;
        // SAFETY: non-null and valid per NVML's contract.
        let request = unsafe { *out };
        if request.version != TEMPERATURE_V1_VERSION {
            return Err(rc::ARGUMENT_VERSION_MISMATCH);
        }
        let value = gpu_temperature(cx, request.sensorType)?;
        let answer = nvmlTemperature_t {
            temperature: c_int::try_from(value).unwrap_or(c_int::MAX),
            ..request
        };
        unsafe { put(out, answer) };
        Ok(())
    })
}

/// `nvmlDeviceGetTemperatureThreshold`: `temperature_thresholds_c`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTemperatureThreshold(
    device: nvmlDevice_t,
    thresholdType: nvmlTemperatureThresholds_t,
    temp: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetTemperatureThreshold, device, |cx| {
        let th = supported(cx.dev.spec.temperature_thresholds_c.as_ref())?;
        let value = match thresholdType {
            0 => th.shutdown,
            1 => th.slowdown,
            2 => th.mem_max,
            3 => th.gpu_max,
            4..=7 => None,
            _ => return Err(rc::INVALID_ARGUMENT),
        };
        put_u32(temp, supported(value))
    })
}

/// Fan `fan`'s speed. A fanless GPU (no `fan_percent`: datacenter boards)
/// answers an index as out of range, as a real H200 on driver 580 does for
/// `nvmlDeviceGetFanSpeed_v2(device, 0)`: `NVML_ERROR_INVALID_ARGUMENT`, not
/// "not supported".
fn fan_speed(cx: &Cx<'_>, fan: c_uint) -> Result<c_uint, u32> {
    let Some(speed) = cx.dev.spec.fan_percent.as_ref() else {
        return Err(rc::INVALID_ARGUMENT);
    };
    if fan >= cx.dev.spec.num_fans.unwrap_or(1) {
        return Err(rc::INVALID_ARGUMENT);
    }
    Ok(speed.percent_at(cx.t))
}

/// `nvmlDeviceGetFanSpeed`: `fan_percent` (absent on datacenter GPUs →
/// not supported).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetFanSpeed(
    device: nvmlDevice_t,
    speed: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetFanSpeed, device, |cx| {
        let _ = supported(cx.dev.spec.fan_percent.as_ref())?;
        put_u32(speed, fan_speed(cx, 0))
    })
}

/// `nvmlDeviceGetFanSpeed_v2`: `fan_percent` for each of `num_fans` fans;
/// any index on a fanless GPU is an invalid argument.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetFanSpeed_v2(
    device: nvmlDevice_t,
    fan: c_uint,
    speed: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetFanSpeed_v2, device, |cx| {
        put_u32(speed, fan_speed(cx, fan))
    })
}

/// `nvmlDeviceGetTargetFanSpeed`: as the current fan speed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTargetFanSpeed(
    device: nvmlDevice_t,
    fan: c_uint,
    targetSpeed: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetTargetFanSpeed, device, |cx| {
        put_u32(targetSpeed, fan_speed(cx, fan))
    })
}

/// `nvmlDeviceGetNumFans`: `num_fans` (default 1) with `fan_percent`, else 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetNumFans(
    device: nvmlDevice_t,
    numFans: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetNumFans, device, |cx| {
        let spec = &cx.dev.spec;
        let n = if spec.fan_percent.is_some() {
            spec.num_fans.unwrap_or(1)
        } else {
            0
        };
        put_u32(numFans, Ok(n))
    })
}

/// `nvmlDeviceGetPowerUsage`: `power_w`, in milliwatts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerUsage(
    device: nvmlDevice_t,
    power: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetPowerUsage, device, |cx| {
        put_u32(power, supported(cx.dev.power_mw(cx.t)))
    })
}

/// `nvmlDeviceGetTotalEnergyConsumption`: `energy_offset_mj + ∫ power`, in
/// millijoules; not supported unless `energy_counter`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTotalEnergyConsumption(
    device: nvmlDevice_t,
    energy: *mut c_ulonglong,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetTotalEnergyConsumption, device, |cx| {
        put_u64(energy, supported(cx.dev.energy_mj(cx.t)))
    })
}

pub(crate) fn milliwatts(w: Option<f64>) -> Result<c_uint, u32> {
    supported(w).map(|w| (w * 1000.0).round() as c_uint)
}

/// `nvmlDeviceGetEnforcedPowerLimit`: `power_limit_w`, in mW.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetEnforcedPowerLimit(
    device: nvmlDevice_t,
    limit: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetEnforcedPowerLimit, device, |cx| {
        put_u32(limit, milliwatts(cx.dev.spec.power_limit_w))
    })
}

/// `nvmlDeviceGetPowerManagementLimit`: `power_limit_w`, in mW.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerManagementLimit(
    device: nvmlDevice_t,
    limit: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetPowerManagementLimit, device, |cx| {
        put_u32(limit, milliwatts(cx.dev.spec.power_limit_w))
    })
}

/// `nvmlDeviceGetPowerManagementDefaultLimit`: `power_default_limit_w`
/// (default: `power_limit_w`), in mW.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerManagementDefaultLimit(
    device: nvmlDevice_t,
    defaultLimit: *mut c_uint,
) -> nvmlReturn_t {
    device_call(
        entry::nvmlDeviceGetPowerManagementDefaultLimit,
        device,
        |cx| {
            let spec = &cx.dev.spec;
            put_u32(
                defaultLimit,
                milliwatts(spec.power_default_limit_w.or(spec.power_limit_w)),
            )
        },
    )
}

/// `nvmlDeviceGetPowerManagementLimitConstraints`: `power_limit_constraints_w`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerManagementLimitConstraints(
    device: nvmlDevice_t,
    minLimit: *mut c_uint,
    maxLimit: *mut c_uint,
) -> nvmlReturn_t {
    device_call(
        entry::nvmlDeviceGetPowerManagementLimitConstraints,
        device,
        |cx| {
            let (min_out, max_out) = (non_null(minLimit)?, non_null(maxLimit)?);
            let [lo, hi] = supported(cx.dev.spec.power_limit_constraints_w)?;
            let (lo, hi) = (milliwatts(Some(lo))?, milliwatts(Some(hi))?);
            unsafe {
                put(min_out, lo);
                put(max_out, hi);
            }
            Ok(())
        },
    )
}

/// `nvmlDeviceGetPowerManagementMode`: enabled when `power_limit_w` is set.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerManagementMode(
    device: nvmlDevice_t,
    mode: *mut nvmlEnableState_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetPowerManagementMode, device, |cx| {
        put_u32(
            mode,
            supported(cx.dev.spec.power_limit_w.map(|_| enable_state(true))),
        )
    })
}

fn pstate(cx: &Cx<'_>) -> Result<nvmlPstates_t, u32> {
    Ok(supported(cx.dev.spec.pstate.as_ref())?.u32_at(cx.t).min(15))
}

/// `nvmlDeviceGetPowerState`: `pstate`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerState(
    device: nvmlDevice_t,
    pState: *mut nvmlPstates_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetPowerState, device, |cx| {
        put_u32(pState, pstate(cx))
    })
}

/// `nvmlDeviceGetPerformanceState`: `pstate`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPerformanceState(
    device: nvmlDevice_t,
    pState: *mut nvmlPstates_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetPerformanceState, device, |cx| {
        put_u32(pState, pstate(cx))
    })
}

fn pcie<'a>(cx: &Cx<'a>) -> Result<&'a Pcie, u32> {
    supported(cx.dev.spec.pcie.as_ref())
}

fn pcie_value(cx: &Cx<'_>, pick: impl FnOnce(&Pcie) -> Option<&Value>) -> Result<c_uint, u32> {
    Ok(supported(pick(pcie(cx)?))?.u32_at(cx.t))
}

/// `nvmlDeviceGetPcieReplayCounter`: `pcie.replay_counter`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPcieReplayCounter(
    device: nvmlDevice_t,
    value: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetPcieReplayCounter, device, |cx| {
        put_u32(value, pcie_value(cx, |p| p.replay_counter.as_ref()))
    })
}

/// `nvmlDeviceGetPcieThroughput`: `pcie.tx_kib_s` / `pcie.rx_kib_s`, KB/s.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPcieThroughput(
    device: nvmlDevice_t,
    counter: nvmlPcieUtilCounter_t,
    value: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetPcieThroughput, device, |cx| {
        let v = match counter {
            0 => pcie_value(cx, |p| p.tx_kib_s.as_ref()),
            1 => pcie_value(cx, |p| p.rx_kib_s.as_ref()),
            _ => Err(rc::INVALID_ARGUMENT),
        };
        put_u32(value, v)
    })
}

/// `nvmlDeviceGetCurrPcieLinkGeneration`: `pcie.link_gen`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCurrPcieLinkGeneration(
    device: nvmlDevice_t,
    currLinkGen: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetCurrPcieLinkGeneration, device, |cx| {
        put_u32(currLinkGen, pcie(cx).map(|p| p.link_gen))
    })
}

/// `nvmlDeviceGetCurrPcieLinkWidth`: `pcie.link_width`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCurrPcieLinkWidth(
    device: nvmlDevice_t,
    currLinkWidth: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetCurrPcieLinkWidth, device, |cx| {
        put_u32(currLinkWidth, pcie(cx).map(|p| p.link_width))
    })
}

fn max_gen(p: &Pcie) -> c_uint {
    p.max_link_gen.unwrap_or(p.link_gen)
}

/// `nvmlDeviceGetMaxPcieLinkGeneration`: `pcie.max_link_gen`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMaxPcieLinkGeneration(
    device: nvmlDevice_t,
    maxLinkGen: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetMaxPcieLinkGeneration, device, |cx| {
        put_u32(maxLinkGen, pcie(cx).map(max_gen))
    })
}

/// `nvmlDeviceGetMaxPcieLinkWidth`: `pcie.max_link_width`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMaxPcieLinkWidth(
    device: nvmlDevice_t,
    maxLinkWidth: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetMaxPcieLinkWidth, device, |cx| {
        put_u32(
            maxLinkWidth,
            pcie(cx).map(|p| p.max_link_width.unwrap_or(p.link_width)),
        )
    })
}

/// `nvmlDeviceGetGpuMaxPcieLinkGeneration`: `pcie.max_link_gen`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetGpuMaxPcieLinkGeneration(
    device: nvmlDevice_t,
    maxLinkGenDevice: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetGpuMaxPcieLinkGeneration, device, |cx| {
        put_u32(maxLinkGenDevice, pcie(cx).map(max_gen))
    })
}

/// Per-lane transfer rate of a PCIe generation, in MT/s (`NVML_PCIE_LINK_MAX_SPEED_*`).
fn gen_speed(generation: c_uint) -> Result<c_uint, u32> {
    match generation {
        1 => Ok(2500),
        2 => Ok(5000),
        3 => Ok(8000),
        4 => Ok(16000),
        5 => Ok(32000),
        6 => Ok(64000),
        _ => Err(rc::NOT_SUPPORTED),
    }
}

/// `nvmlDeviceGetPcieLinkMaxSpeed`: the per-lane speed of `pcie.max_link_gen`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPcieLinkMaxSpeed(
    device: nvmlDevice_t,
    maxSpeed: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetPcieLinkMaxSpeed, device, |cx| {
        put_u32(maxSpeed, pcie(cx).and_then(|p| gen_speed(max_gen(p))))
    })
}

/// `nvmlDeviceGetPcieSpeed`: the per-lane speed of `pcie.link_gen`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPcieSpeed(
    device: nvmlDevice_t,
    pcieSpeed: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetPcieSpeed, device, |cx| {
        put_u32(pcieSpeed, pcie(cx).and_then(|p| gen_speed(p.link_gen)))
    })
}

/// `nvmlDeviceGetUtilizationRates`: `utilization.gpu` / `.memory`, percent.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUtilizationRates(
    device: nvmlDevice_t,
    utilization: *mut nvmlUtilization_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetUtilizationRates, device, |cx| {
        let out = non_null(utilization)?;
        let u = supported(cx.dev.spec.utilization.as_ref())?;
        let value = nvmlUtilization_t {
            gpu: u.gpu.percent_at(cx.t),
            memory: u.memory.percent_at(cx.t),
        };
        unsafe { put(out, value) };
        Ok(())
    })
}

fn codec_call(
    call: &'static str,
    device: nvmlDevice_t,
    utilization: *mut c_uint,
    sampling_period_us: *mut c_uint,
    decoder: bool,
) -> nvmlReturn_t {
    device_call(call, device, |cx| {
        let (util_out, period_out) = (non_null(utilization)?, non_null(sampling_period_us)?);
        let u = supported(cx.dev.spec.utilization.as_ref())?;
        let value = supported(if decoder { &u.decoder } else { &u.encoder }.as_ref())?;
        let pct = value.percent_at(cx.t);
        unsafe {
            put(util_out, pct);
            put(period_out, CODEC_SAMPLING_US);
        }
        Ok(())
    })
}

/// `nvmlDeviceGetEncoderUtilization`: `utilization.encoder`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetEncoderUtilization(
    device: nvmlDevice_t,
    utilization: *mut c_uint,
    samplingPeriodUs: *mut c_uint,
) -> nvmlReturn_t {
    codec_call(
        entry::nvmlDeviceGetEncoderUtilization,
        device,
        utilization,
        samplingPeriodUs,
        false,
    )
}

/// `nvmlDeviceGetDecoderUtilization`: `utilization.decoder`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetDecoderUtilization(
    device: nvmlDevice_t,
    utilization: *mut c_uint,
    samplingPeriodUs: *mut c_uint,
) -> nvmlReturn_t {
    codec_call(
        entry::nvmlDeviceGetDecoderUtilization,
        device,
        utilization,
        samplingPeriodUs,
        true,
    )
}
