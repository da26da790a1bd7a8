//! The exported functions called directly, as C would.
//!
//! The library state is process-global, so every test holds `LOCK` for its
//! whole run and loads its scenario through `state::TEST_SOURCE`.

use std::ffi::{CStr, CString, c_char, c_uint, c_ulonglong};
use std::ptr::{null, null_mut};
use std::time::{Duration, Instant};

use nvml_wrapper_sys::bindings::*;
use parking_lot::{Mutex, MutexGuard};

use super::device::*;
use super::events::*;
use super::gpm::*;
use super::health::*;
use super::mig::*;
use super::processes::*;
use super::system::*;
use crate::scenario::Scenario;
use crate::state::{self, rc};

mod mig;

const H100X8: &str = include_str!("../../../scenarios/h100x8.json");
const MIXED: &str = include_str!("../../../scenarios/mixed.json");
const FAULTY: &str = include_str!("../../../scenarios/faulty.json");

static LOCK: Mutex<()> = Mutex::new(());

struct Fixture {
    scenario: Scenario,
    _guard: MutexGuard<'static, ()>,
}

fn shut_all() {
    while unsafe { nvmlShutdown() } == rc::SUCCESS {}
}

/// Initialises NVML on `json` with the clock frozen at `t`.
fn start(json: &str, t: Option<f64>) -> Fixture {
    let guard = LOCK.lock();
    shut_all();
    *state::TEST_SOURCE.lock() = Some((json.to_string(), t));
    assert_eq!(unsafe { nvmlInit_v2() }, rc::SUCCESS);
    Fixture {
        scenario: Scenario::from_json_str(json).expect("valid scenario"),
        _guard: guard,
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        shut_all();
        *state::TEST_SOURCE.lock() = None;
    }
}

fn handle(i: u32) -> nvmlDevice_t {
    let mut h = null_mut();
    assert_eq!(
        unsafe { nvmlDeviceGetHandleByIndex_v2(i, &mut h) },
        rc::SUCCESS
    );
    h
}

fn set_time(t: f64) {
    assert_eq!(unsafe { algalon_fake_nvml_set_time(t) }, rc::SUCCESS);
}

fn string_of(f: impl FnOnce(*mut c_char, c_uint) -> nvmlReturn_t) -> Result<String, u32> {
    let mut buf = [0 as c_char; 128];
    match f(buf.as_mut_ptr(), buf.len() as c_uint) {
        rc::SUCCESS => {
            let s = unsafe { CStr::from_ptr(buf.as_ptr()) };
            Ok(s.to_str().expect("utf-8").to_string())
        }
        code => Err(code),
    }
}

fn u32_of(f: impl FnOnce(*mut c_uint) -> nvmlReturn_t) -> Result<u32, u32> {
    let mut v = 0xdead_beef;
    match f(&mut v) {
        rc::SUCCESS => Ok(v),
        code => {
            assert_eq!(v, 0xdead_beef, "out-param written on failure");
            Err(code)
        }
    }
}

#[test]
fn calls_before_init_are_uninitialized() {
    let _guard = LOCK.lock();
    shut_all();
    let mut n = 0;
    assert_eq!(unsafe { nvmlDeviceGetCount_v2(&mut n) }, rc::UNINITIALIZED);
    assert_eq!(unsafe { nvmlShutdown() }, rc::UNINITIALIZED);
    assert_eq!(
        unsafe { nvmlDeviceGetPowerUsage(null_mut(), &mut n) },
        rc::UNINITIALIZED
    );
    let text = unsafe { CStr::from_ptr(nvmlErrorString(rc::NOT_SUPPORTED)) };
    assert_eq!(text, c"Not Supported", "works without init");
    let text = unsafe { CStr::from_ptr(nvmlErrorString(rc::INSUFFICIENT_SIZE)) };
    assert_eq!(text, c"Insufficient Size");
    let text = unsafe { CStr::from_ptr(nvmlErrorString(rc::GPU_IS_LOST)) };
    assert_eq!(text, c"GPU is lost");
}

#[test]
fn init_without_scenario_reports_driver_not_loaded() {
    let _guard = LOCK.lock();
    shut_all();
    if std::env::var_os(state::SCENARIO_ENV).is_some() {
        return; // the environment picked a scenario for this run
    }
    assert_eq!(unsafe { nvmlInit_v2() }, rc::DRIVER_NOT_LOADED);
    let mut n = 0;
    assert_eq!(unsafe { nvmlDeviceGetCount_v2(&mut n) }, rc::UNINITIALIZED);
}

#[test]
fn malformed_scenario_fails_init_with_unknown() {
    let _guard = LOCK.lock();
    shut_all();
    *state::TEST_SOURCE.lock() = Some(("{\"gpus\": [}".into(), None));
    assert_eq!(unsafe { nvmlInit_v2() }, rc::UNKNOWN);
    *state::TEST_SOURCE.lock() = None;
}

#[test]
fn refcount_and_scenario_switch() {
    let fx = start(H100X8, Some(0.0));
    let mut n = 0;
    assert_eq!(unsafe { nvmlInitWithFlags(0) }, rc::SUCCESS);
    assert_eq!(unsafe { nvmlInit() }, rc::SUCCESS);
    assert_eq!(unsafe { nvmlShutdown() }, rc::SUCCESS);
    assert_eq!(unsafe { nvmlShutdown() }, rc::SUCCESS);
    assert_eq!(unsafe { nvmlDeviceGetCount_v2(&mut n) }, rc::SUCCESS);
    assert_eq!(n, 8);
    let h0 = handle(0);
    assert_eq!(unsafe { nvmlShutdown() }, rc::SUCCESS);
    assert_eq!(unsafe { nvmlDeviceGetCount(&mut n) }, rc::UNINITIALIZED);

    *state::TEST_SOURCE.lock() = Some((MIXED.into(), Some(0.0)));
    assert_eq!(unsafe { nvmlInit_v2() }, rc::SUCCESS);
    assert_eq!(unsafe { nvmlDeviceGetCount(&mut n) }, rc::SUCCESS);
    assert_eq!(n, 4);
    assert_eq!(handle(0), h0, "handles are stable across re-init");
    let name = string_of(|b, l| unsafe { nvmlDeviceGetName(handle(1), b, l) });
    assert_eq!(name.as_deref(), Ok("NVIDIA L4"));
    drop(fx);
}

#[test]
fn system_queries() {
    let _fx = start(H100X8, Some(0.0));
    let driver = string_of(|b, l| unsafe { nvmlSystemGetDriverVersion(b, l) });
    assert_eq!(driver.as_deref(), Ok("550.54.15"));
    let nvml = string_of(|b, l| unsafe { nvmlSystemGetNVMLVersion(b, l) });
    assert_eq!(nvml.as_deref(), Ok("12.550.54.15"));
    let mut cuda = 0;
    assert_eq!(
        unsafe { nvmlSystemGetCudaDriverVersion_v2(&mut cuda) },
        rc::SUCCESS
    );
    assert_eq!(cuda, 12040);
    let name = string_of(|b, l| unsafe { nvmlSystemGetProcessName(7001, b, l) });
    assert_eq!(name.as_deref(), Ok("tritonserver"));
    let missing = string_of(|b, l| unsafe { nvmlSystemGetProcessName(1, b, l) });
    assert_eq!(missing, Err(rc::NOT_FOUND));
    let mut small = [0 as c_char; 4];
    assert_eq!(
        unsafe { nvmlSystemGetDriverVersion(small.as_mut_ptr(), 4) },
        rc::INSUFFICIENT_SIZE
    );
    assert_eq!(
        unsafe { nvmlSystemGetDriverVersion(null_mut(), 80) },
        rc::INVALID_ARGUMENT
    );
    assert_eq!(
        unsafe { nvmlDeviceGetCount_v2(null_mut()) },
        rc::INVALID_ARGUMENT
    );
}

#[test]
fn handles_by_index_uuid_pci_and_serial() {
    let fx = start(H100X8, Some(0.0));
    let d3 = &fx.scenario.devices()[3];
    let h3 = handle(3);
    assert_eq!(handle(3), h3, "the same pointer every time");

    let uuid = CString::new(d3.spec.uuid.to_uppercase()).expect("c");
    let mut h = null_mut();
    assert_eq!(
        unsafe { nvmlDeviceGetHandleByUUID(uuid.as_ptr(), &mut h) },
        rc::SUCCESS
    );
    assert_eq!(h, h3);

    for form in ["00000000:5D:00.0", "0000:5d:00.0", "5D:00.0"] {
        let bus = CString::new(form).expect("c");
        let mut h = null_mut();
        assert_eq!(
            unsafe { nvmlDeviceGetHandleByPciBusId_v2(bus.as_ptr(), &mut h) },
            rc::SUCCESS,
            "{form}"
        );
        assert_eq!(h, h3, "{form}");
    }
    let serial = CString::new(d3.spec.serial.clone().expect("serial")).expect("c");
    let mut h = null_mut();
    assert_eq!(
        unsafe { nvmlDeviceGetHandleBySerial(serial.as_ptr(), &mut h) },
        rc::SUCCESS
    );
    assert_eq!(h, h3);

    let nope = c"GPU-00000000-0000-0000-0000-000000000000";
    let mut h = null_mut();
    assert_eq!(
        unsafe { nvmlDeviceGetHandleByUUID(nope.as_ptr(), &mut h) },
        rc::NOT_FOUND
    );
    assert!(h.is_null(), "not written on failure");
    assert_eq!(
        unsafe { nvmlDeviceGetHandleByIndex_v2(8, &mut h) },
        rc::INVALID_ARGUMENT
    );
    assert_eq!(
        unsafe { nvmlDeviceGetHandleByUUID(null(), &mut h) },
        rc::INVALID_ARGUMENT
    );

    assert_eq!(u32_of(|o| unsafe { nvmlDeviceGetIndex(h3, o) }), Ok(3));
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetMinorNumber(h3, o) }),
        Ok(3)
    );
    // A pointer this library never issued is rejected, not dereferenced.
    let bogus = 0x1000 as nvmlDevice_t;
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetIndex(bogus, o) }),
        Err(rc::INVALID_ARGUMENT)
    );
}

#[test]
fn identity_strings_and_pci_info() {
    let fx = start(H100X8, Some(0.0));
    let h = handle(4);
    let d = &fx.scenario.devices()[4];
    let name = string_of(|b, l| unsafe { nvmlDeviceGetName(h, b, l) });
    assert_eq!(name.as_deref(), Ok("NVIDIA H100 80GB HBM3"));
    let uuid = string_of(|b, l| unsafe { nvmlDeviceGetUUID(h, b, l) });
    assert_eq!(uuid.as_deref(), Ok(d.spec.uuid.as_str()));
    let vbios = string_of(|b, l| unsafe { nvmlDeviceGetVbiosVersion(h, b, l) });
    assert_eq!(vbios.as_deref(), Ok("96.00.74.00.0D"));
    let image = string_of(|b, l| unsafe { nvmlDeviceGetInforomImageVersion(h, b, l) });
    assert_eq!(image.as_deref(), Ok("G520.0200.00.05"));
    let power_obj = string_of(|b, l| unsafe { nvmlDeviceGetInforomVersion(h, 2, b, l) });
    assert_eq!(power_obj, Err(rc::NOT_SUPPORTED));
    let mut tiny = [0 as c_char; 8];
    assert_eq!(
        unsafe { nvmlDeviceGetName(h, tiny.as_mut_ptr(), 8) },
        rc::INSUFFICIENT_SIZE
    );
    assert_eq!(tiny, [0; 8], "nothing written on failure");

    let mut pci: nvmlPciInfo_t = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { nvmlDeviceGetPciInfo_v3(h, &mut pci) }, rc::SUCCESS);
    let bus_id = unsafe { CStr::from_ptr(pci.busId.as_ptr()) };
    let legacy = unsafe { CStr::from_ptr(pci.busIdLegacy.as_ptr()) };
    assert_eq!(bus_id, c"00000000:9A:00.0");
    assert_eq!(legacy, c"0000:9A:00.0");
    assert_eq!((pci.domain, pci.bus, pci.device), (0, 0x9a, 0));
    assert_eq!(pci.pciDeviceId, 0x2330_10de);
    assert_eq!(pci.pciSubSystemId, 0x16c1_10de);

    assert_eq!(u32_of(|o| unsafe { nvmlDeviceGetBrand(h, o) }), Ok(14));
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetArchitecture(h, o) }),
        Ok(9)
    );
    let (mut major, mut minor) = (0, 0);
    assert_eq!(
        unsafe { nvmlDeviceGetCudaComputeCapability(h, &mut major, &mut minor) },
        rc::SUCCESS
    );
    assert_eq!((major, minor), (9, 0));
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetPersistenceMode(h, o) }),
        Ok(1)
    );
    assert_eq!(u32_of(|o| unsafe { nvmlDeviceGetComputeMode(h, o) }), Ok(0));
}

#[test]
fn readings_follow_the_scenario_clock() {
    let fx = start(H100X8, Some(12.5));
    let d = &fx.scenario.devices()[1];
    let h = handle(1);
    for t in [12.5, 33.0, 71.25] {
        set_time(t);
        let mut u = nvmlUtilization_t { gpu: 0, memory: 0 };
        assert_eq!(
            unsafe { nvmlDeviceGetUtilizationRates(h, &mut u) },
            rc::SUCCESS
        );
        let spec_u = d.spec.utilization.as_ref().expect("util");
        assert_eq!(u.gpu, spec_u.gpu.percent_at(t));
        assert_eq!(u.memory, spec_u.memory.percent_at(t));
        assert_eq!(
            u32_of(|o| unsafe { nvmlDeviceGetPowerUsage(h, o) }).ok(),
            d.power_mw(t)
        );
        let mut e = 0;
        assert_eq!(
            unsafe { nvmlDeviceGetTotalEnergyConsumption(h, &mut e) },
            rc::SUCCESS
        );
        assert_eq!(Some(e), d.energy_mj(t));
        assert_eq!(
            u32_of(|o| unsafe { nvmlDeviceGetTemperature(h, 0, o) }).ok(),
            d.spec.temperature_c.as_ref().map(|v| v.u32_at(t))
        );
        let sm = d.spec.clocks.as_ref().expect("clocks").sm_mhz.u32_at(t);
        assert_eq!(
            u32_of(|o| unsafe { nvmlDeviceGetClockInfo(h, 1, o) }),
            Ok(sm)
        );
        assert_eq!(
            u32_of(|o| unsafe { nvmlDeviceGetClockInfo(h, 0, o) }),
            Ok(sm)
        );
        assert_eq!(
            u32_of(|o| unsafe { nvmlDeviceGetClock(h, 1, 0, o) }),
            Ok(sm)
        );
    }
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetMaxClockInfo(h, 2, o) }),
        Ok(2619)
    );
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetClock(h, 1, 1, o) }),
        Ok(1755)
    );
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetEnforcedPowerLimit(h, o) }),
        Ok(700_000)
    );
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetTemperatureThreshold(h, 1, o) }),
        Ok(89)
    );
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetTemperature(h, 7, o) }),
        Err(rc::INVALID_ARGUMENT)
    );
    // No fan on a datacenter GPU: not supported, zero fans, and fan 0 of
    // the _v2 call out of range (what a real H200 on driver 580 answers).
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetFanSpeed(h, o) }),
        Err(rc::NOT_SUPPORTED)
    );
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetFanSpeed_v2(h, 0, o) }),
        Err(rc::INVALID_ARGUMENT)
    );
    assert_eq!(u32_of(|o| unsafe { nvmlDeviceGetNumFans(h, o) }), Ok(0));
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetCurrPcieLinkGeneration(h, o) }),
        Ok(5)
    );
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetPcieLinkMaxSpeed(h, o) }),
        Ok(32000)
    );

    let mut temp = nvmlTemperature_t {
        version: (size_of::<nvmlTemperature_t>() as u32) | (1 << 24),
        sensorType: 0,
        temperature: 0,
    };
    assert_eq!(
        unsafe { nvmlDeviceGetTemperatureV(h, &mut temp) },
        rc::SUCCESS
    );
    assert_eq!(
        temp.temperature as u32,
        d.spec.temperature_c.as_ref().expect("temp").u32_at(71.25)
    );
}

#[test]
fn memory_info_v1_and_v2() {
    let fx = start(H100X8, Some(20.0));
    let h = handle(0);
    let m = fx.scenario.devices()[0].memory(20.0);
    let mut v1 = nvmlMemory_t {
        total: 0,
        free: 0,
        used: 0,
    };
    assert_eq!(unsafe { nvmlDeviceGetMemoryInfo(h, &mut v1) }, rc::SUCCESS);
    assert_eq!(
        (v1.total, v1.used, v1.free),
        (m.total, m.used_v1, m.free_v1)
    );
    assert_eq!(v1.used + v1.free, v1.total);

    let version = (size_of::<nvmlMemory_v2_t>() as u32) | (2 << 24);
    assert_eq!(version, 0x0200_0028, "what pynvml sends as nvmlMemory_v2");
    let mut v2 = nvmlMemory_v2_t {
        version,
        total: 0,
        reserved: 0,
        free: 0,
        used: 0,
    };
    assert_eq!(
        unsafe { nvmlDeviceGetMemoryInfo_v2(h, &mut v2) },
        rc::SUCCESS
    );
    assert_eq!(
        (v2.version, v2.total, v2.reserved, v2.used, v2.free),
        (version, m.total, m.reserved, m.used, m.free)
    );
    assert_eq!(v2.reserved, 549 << 20);
    assert_eq!(v2.used + v2.free + v2.reserved, v2.total);

    let mut wrong = nvmlMemory_v2_t {
        version: 1,
        total: 7,
        reserved: 7,
        free: 7,
        used: 7,
    };
    assert_eq!(
        unsafe { nvmlDeviceGetMemoryInfo_v2(h, &mut wrong) },
        rc::ARGUMENT_VERSION_MISMATCH
    );
    assert_eq!(wrong.total, 7, "not written on failure");
    assert_eq!(
        unsafe { nvmlDeviceGetMemoryInfo(h, null_mut()) },
        rc::INVALID_ARGUMENT
    );
}

#[test]
fn process_lists_use_the_two_call_protocol() {
    let _fx = start(H100X8, Some(5.0));
    let h = handle(2);

    // Size query with a NULL array.
    let mut count = 0;
    assert_eq!(
        unsafe { nvmlDeviceGetComputeRunningProcesses_v3(h, &mut count, null_mut()) },
        rc::INSUFFICIENT_SIZE
    );
    assert_eq!(count, 1);

    set_time(20.0); // tritonserver (10..40) is running too
    let mut infos = [nvmlProcessInfo_t {
        pid: 0,
        usedGpuMemory: 0,
        gpuInstanceId: 0,
        computeInstanceId: 0,
    }; 4];
    let mut count = 1;
    assert_eq!(
        unsafe { nvmlDeviceGetComputeRunningProcesses_v3(h, &mut count, infos.as_mut_ptr()) },
        rc::INSUFFICIENT_SIZE
    );
    assert_eq!(count, 2);
    assert_eq!(infos[0].pid, 0, "array untouched when too small");
    let mut count = 4;
    assert_eq!(
        unsafe { nvmlDeviceGetComputeRunningProcesses_v3(h, &mut count, infos.as_mut_ptr()) },
        rc::SUCCESS
    );
    assert_eq!(count, 2);
    assert_eq!((infos[0].pid, infos[1].pid), (4244, 7001));
    assert_eq!(infos[1].usedGpuMemory, 2048 << 20);
    assert_eq!(infos[1].gpuInstanceId, u32::MAX, "not a MIG process");

    let mut v1 = [nvmlProcessInfo_v1_t {
        pid: 0,
        usedGpuMemory: 0,
    }; 2];
    let mut count = 2;
    assert_eq!(
        unsafe { nvmlDeviceGetComputeRunningProcesses(h, &mut count, v1.as_mut_ptr()) },
        rc::SUCCESS
    );
    assert_eq!((count, v1[1].pid), (2, 7001));

    // Graphics and MPS lists are empty: success with count 0, NULL allowed.
    let mut count = 0;
    assert_eq!(
        unsafe { nvmlDeviceGetGraphicsRunningProcesses_v3(h, &mut count, null_mut()) },
        rc::SUCCESS
    );
    assert_eq!(
        unsafe { nvmlDeviceGetMPSComputeRunningProcesses_v3(h, &mut count, null_mut()) },
        rc::SUCCESS
    );
    assert_eq!(count, 0);

    set_time(40.0); // end_s is exclusive
    let mut count = 4;
    assert_eq!(
        unsafe { nvmlDeviceGetComputeRunningProcesses_v2(h, &mut count, infos.as_mut_ptr()) },
        rc::SUCCESS
    );
    assert_eq!(count, 1);
}

#[test]
fn process_utilization_protocol() {
    let _fx = start(H100X8, Some(20.0));
    let h = handle(2);
    let mut count = 0;
    assert_eq!(
        unsafe { nvmlDeviceGetProcessUtilization(h, null_mut(), &mut count, 0) },
        rc::INSUFFICIENT_SIZE
    );
    assert_eq!(count, 2);
    let mut samples = [nvmlProcessUtilizationSample_t {
        pid: 0,
        timeStamp: 0,
        smUtil: 0,
        memUtil: 0,
        encUtil: 0,
        decUtil: 0,
    }; 2];
    assert_eq!(
        unsafe { nvmlDeviceGetProcessUtilization(h, samples.as_mut_ptr(), &mut count, 0) },
        rc::SUCCESS
    );
    assert_eq!(samples[1].pid, 7001);
    assert_eq!((samples[1].smUtil, samples[1].memUtil), (9, 4));
    let stamp = samples[0].timeStamp;
    assert!(stamp > 1_600_000_000_000_000, "µs since the epoch: {stamp}");
    // Nothing newer than the last sample seen.
    let mut count = 0;
    assert_eq!(
        unsafe { nvmlDeviceGetProcessUtilization(h, null_mut(), &mut count, stamp) },
        rc::NOT_FOUND
    );
}

#[test]
fn retired_pages_protocol() {
    let _fx = start(MIXED, Some(0.0));
    let t4 = handle(2);
    let mut count = 0;
    assert_eq!(
        unsafe { nvmlDeviceGetRetiredPages(t4, 0, &mut count, null_mut()) },
        rc::INSUFFICIENT_SIZE
    );
    assert_eq!(count, 2);
    let (mut addrs, mut stamps) = ([0 as c_ulonglong; 2], [0 as c_ulonglong; 2]);
    assert_eq!(
        unsafe {
            nvmlDeviceGetRetiredPages_v2(t4, 0, &mut count, addrs.as_mut_ptr(), stamps.as_mut_ptr())
        },
        rc::SUCCESS
    );
    assert!(addrs[0] != 0 && addrs[1] != addrs[0]);
    assert!(stamps[0] > 0);
    let mut count = 0;
    assert_eq!(
        unsafe { nvmlDeviceGetRetiredPages(t4, 1, &mut count, null_mut()) },
        rc::SUCCESS,
        "no DBE pages"
    );
    // Hopper-style GPUs have no page retirement.
    let a100 = handle(0);
    assert_eq!(
        unsafe { nvmlDeviceGetRetiredPages(a100, 0, &mut count, null_mut()) },
        rc::NOT_SUPPORTED
    );
    let (mut c, mut u, mut p, mut f) = (9, 9, 9, 9);
    assert_eq!(
        unsafe { nvmlDeviceGetRemappedRows(a100, &mut c, &mut u, &mut p, &mut f) },
        rc::SUCCESS
    );
    assert_eq!((c, u, p, f), (0, 0, 0, 0));
}

fn field(id: u32) -> nvmlFieldValue_t {
    let mut v: nvmlFieldValue_t = unsafe { std::mem::zeroed() };
    v.fieldId = id;
    v
}

#[test]
fn field_values_per_entry_results() {
    let fx = start(H100X8, Some(30.0));
    let d = &fx.scenario.devices()[0];
    let mut values = [
        field(field_id::NVML_FI_DEV_MEMORY_TEMP),
        field(field_id::NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION),
        field(field_id::NVML_FI_DEV_NVLINK_LINK_COUNT),
        field(field_id::NVML_FI_DEV_REMAPPED_COR),
        field(field_id::NVML_FI_DEV_POWER_INSTANT),
        field(field_id::NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL),
        field(field_id::NVML_FI_DEV_PERF_POLICY_POWER),
        field(12345),
    ];
    assert_eq!(
        unsafe { nvmlDeviceGetFieldValues(handle(0), values.len() as i32, values.as_mut_ptr()) },
        rc::SUCCESS
    );
    let ok = |v: &nvmlFieldValue_t| assert_eq!(v.nvmlReturn, rc::SUCCESS, "field {}", v.fieldId);
    values[..7].iter().for_each(ok);
    let mem_temp = d
        .spec
        .memory_temperature_c
        .as_ref()
        .expect("mem temp")
        .u32_at(30.0);
    assert_eq!(
        values[0].valueType,
        nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_INT
    );
    assert_eq!(unsafe { values[0].value.uiVal }, mem_temp);
    assert_eq!(
        values[1].valueType,
        nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
    );
    assert_eq!(Some(unsafe { values[1].value.ullVal }), d.energy_mj(30.0));
    assert_eq!(unsafe { values[2].value.uiVal }, 18);
    assert_eq!(unsafe { values[3].value.uiVal }, 0);
    assert_eq!(Some(unsafe { values[4].value.uiVal }), d.power_mw(30.0));
    assert_eq!(unsafe { values[5].value.ullVal }, 0);
    assert_eq!(unsafe { values[6].value.ullVal }, 1_500_000_000);
    assert_eq!(values[7].nvmlReturn, rc::NOT_SUPPORTED);
    assert!(values[0].timestamp > 1_600_000_000_000_000);

    // The T4 lists the memory-temperature field as unsupported.
    drop(fx);
    let _fx = start(MIXED, Some(0.0));
    let mut values = [
        field(field_id::NVML_FI_DEV_MEMORY_TEMP),
        field(field_id::NVML_FI_DEV_RETIRED_SBE),
    ];
    assert_eq!(
        unsafe { nvmlDeviceGetFieldValues(handle(2), 2, values.as_mut_ptr()) },
        rc::SUCCESS
    );
    assert_eq!(values[0].nvmlReturn, rc::NOT_SUPPORTED);
    assert_eq!(values[1].nvmlReturn, rc::SUCCESS);
    assert_eq!(unsafe { values[1].value.ullVal }, 2);
    assert_eq!(
        unsafe { nvmlDeviceGetFieldValues(handle(2), -1, values.as_mut_ptr()) },
        rc::INVALID_ARGUMENT
    );
}

#[test]
fn faults_latency_and_lost_gpus() {
    let _fx = start(FAULTY, Some(1.0));
    let (h0, h1, h2, h3) = (handle(0), handle(1), handle(2), handle(3));
    assert!(u32_of(|o| unsafe { nvmlDeviceGetPowerUsage(h0, o) }).is_ok());
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetPowerUsage(h1, o) }),
        Err(4) // NO_PERMISSION
    );
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetTemperature(h1, 0, o) }),
        Err(rc::UNKNOWN)
    );
    assert!(u32_of(|o| unsafe { nvmlDeviceGetPowerUsage(h3, o) }).is_ok());

    let mut u = nvmlUtilization_t { gpu: 0, memory: 0 };
    let start = Instant::now();
    assert_eq!(
        unsafe { nvmlDeviceGetUtilizationRates(h2, &mut u) },
        rc::SUCCESS
    );
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "latency injected"
    );
    let start = Instant::now();
    assert_eq!(
        unsafe { nvmlDeviceGetUtilizationRates(h3, &mut u) },
        rc::SUCCESS
    );
    assert!(
        start.elapsed() < Duration::from_millis(300),
        "only on GPU 2"
    );

    set_time(2.0);
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetPowerUsage(h0, o) }),
        Err(rc::GPU_IS_LOST)
    );
    let name = string_of(|b, l| unsafe { nvmlDeviceGetName(h0, b, l) });
    assert_eq!(name, Err(rc::GPU_IS_LOST));
    let mut h = null_mut();
    assert_eq!(
        unsafe { nvmlDeviceGetHandleByIndex_v2(0, &mut h) },
        rc::GPU_IS_LOST
    );
    let mut n = 0;
    assert_eq!(unsafe { nvmlDeviceGetCount_v2(&mut n) }, rc::SUCCESS);
    assert_eq!(n, 4, "a lost GPU is still enumerated");
    assert!(u32_of(|o| unsafe { nvmlDeviceGetPowerUsage(h3, o) }).is_ok());
}

#[test]
fn unsupported_list_overrides_scenario_values() {
    let _fx = start(MIXED, Some(0.0));
    let (mut util, mut period) = (0, 0);
    let t4 = handle(2);
    assert_eq!(
        unsafe { nvmlDeviceGetEncoderUtilization(t4, &mut util, &mut period) },
        rc::NOT_SUPPORTED
    );
    assert_eq!(
        unsafe { nvmlDeviceGetDecoderUtilization(t4, &mut util, &mut period) },
        rc::SUCCESS
    );
    assert_eq!(period, 167_000);
    let mut e = 0;
    assert_eq!(
        unsafe { nvmlDeviceGetTotalEnergyConsumption(t4, &mut e) },
        rc::NOT_SUPPORTED
    );
    let rtx = handle(3);
    assert_eq!(u32_of(|o| unsafe { nvmlDeviceGetNumFans(rtx, o) }), Ok(2));
    assert!(u32_of(|o| unsafe { nvmlDeviceGetFanSpeed_v2(rtx, 1, o) }).is_ok());
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetFanSpeed_v2(rtx, 2, o) }),
        Err(rc::INVALID_ARGUMENT)
    );
}

#[test]
fn mig_devices() {
    let fx = start(MIXED, Some(10.0));
    let a100 = handle(0);
    let (mut cur, mut pend) = (9, 9);
    assert_eq!(
        unsafe { nvmlDeviceGetMigMode(a100, &mut cur, &mut pend) },
        rc::SUCCESS
    );
    assert_eq!((cur, pend), (1, 1));
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetMaxMigDeviceCount(a100, o) }),
        Ok(7)
    );
    let mut mig = null_mut();
    assert_eq!(
        unsafe { nvmlDeviceGetMigDeviceHandleByIndex(a100, 1, &mut mig) },
        rc::SUCCESS
    );
    let mut again = null_mut();
    assert_eq!(
        unsafe { nvmlDeviceGetMigDeviceHandleByIndex(a100, 1, &mut again) },
        rc::SUCCESS
    );
    assert_eq!(mig, again);
    assert_eq!(
        unsafe { nvmlDeviceGetMigDeviceHandleByIndex(a100, 2, &mut again) },
        rc::NOT_FOUND
    );
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceIsMigDeviceHandle(mig, o) }),
        Ok(1)
    );
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceIsMigDeviceHandle(a100, o) }),
        Ok(0)
    );
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetGpuInstanceId(mig, o) }),
        Ok(5)
    );
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetComputeInstanceId(mig, o) }),
        Ok(0)
    );
    let name = string_of(|b, l| unsafe { nvmlDeviceGetName(mig, b, l) });
    assert_eq!(name.as_deref(), Ok("NVIDIA A100-SXM4-40GB MIG 2g.10gb"));
    let inst = &fx.scenario.devices()[0]
        .spec
        .mig
        .as_ref()
        .expect("mig")
        .instances[1];
    let uuid = string_of(|b, l| unsafe { nvmlDeviceGetUUID(mig, b, l) });
    assert_eq!(uuid.as_deref(), Ok(inst.uuid.as_str()));
    let mut parent = null_mut();
    assert_eq!(
        unsafe { nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig, &mut parent) },
        rc::SUCCESS
    );
    assert_eq!(parent, a100);
    let mut m = nvmlMemory_t {
        total: 0,
        free: 0,
        used: 0,
    };
    assert_eq!(unsafe { nvmlDeviceGetMemoryInfo(mig, &mut m) }, rc::SUCCESS);
    assert_eq!((m.total, m.used), (9856 << 20, 4110 << 20));
    // Only the instance's own processes.
    let mut infos = [nvmlProcessInfo_t {
        pid: 0,
        usedGpuMemory: 0,
        gpuInstanceId: 0,
        computeInstanceId: 0,
    }; 4];
    let mut count = 4;
    assert_eq!(
        unsafe { nvmlDeviceGetComputeRunningProcesses_v3(mig, &mut count, infos.as_mut_ptr()) },
        rc::SUCCESS
    );
    assert_eq!((count, infos[0].pid, infos[0].gpuInstanceId), (1, 5102, 5));
    // Whole-GPU readings are not available on a MIG device.
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetPowerUsage(mig, o) }),
        Err(rc::NOT_SUPPORTED)
    );
    let uuid = CString::new(inst.uuid.clone()).expect("c");
    let mut by_uuid = null_mut();
    assert_eq!(
        unsafe { nvmlDeviceGetHandleByUUID(uuid.as_ptr(), &mut by_uuid) },
        rc::SUCCESS
    );
    assert_eq!(by_uuid, mig);
    // A non-MIG GPU.
    let l4 = handle(1);
    assert_eq!(
        unsafe { nvmlDeviceGetMigMode(l4, &mut cur, &mut pend) },
        rc::NOT_SUPPORTED
    );
}

#[test]
fn xid_events_through_event_sets() {
    let _fx = start(H100X8, Some(59.0));
    let mut set = null_mut();
    assert_eq!(unsafe { nvmlEventSetCreate(&mut set) }, rc::SUCCESS);
    let xid = c_ulonglong::from(nvmlEventTypeXidCriticalError);
    let mut supported = 0;
    assert_eq!(
        unsafe { nvmlDeviceGetSupportedEventTypes(handle(3), &mut supported) },
        rc::SUCCESS
    );
    assert_ne!(supported & xid, 0);
    for i in 0..8 {
        assert_eq!(
            unsafe { nvmlDeviceRegisterEvents(handle(i), xid, set) },
            rc::SUCCESS
        );
    }
    let mut data: nvmlEventData_t = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { nvmlEventSetWait_v2(set, &mut data, 30) },
        rc::TIMEOUT
    );
    set_time(60.0);
    assert_eq!(
        unsafe { nvmlEventSetWait_v2(set, &mut data, 30) },
        rc::SUCCESS
    );
    assert_eq!(data.device, handle(3));
    assert_eq!(data.eventType, xid);
    assert_eq!(data.eventData, 94);
    assert_eq!(
        unsafe { nvmlEventSetWait(set, &mut data, 0) },
        rc::TIMEOUT,
        "delivered once"
    );
    assert_eq!(unsafe { nvmlEventSetFree(set) }, rc::SUCCESS);
    assert_eq!(
        unsafe { nvmlEventSetFree(set) },
        rc::INVALID_ARGUMENT,
        "no double free"
    );

    // With the clock running, the wait returns when the event falls due.
    set_time(59.9);
    assert_eq!(unsafe { algalon_fake_nvml_resume_time() }, rc::SUCCESS);
    let mut set = null_mut();
    assert_eq!(unsafe { nvmlEventSetCreate(&mut set) }, rc::SUCCESS);
    assert_eq!(
        unsafe { nvmlDeviceRegisterEvents(handle(3), xid, set) },
        rc::SUCCESS
    );
    let begin = Instant::now();
    assert_eq!(
        unsafe { nvmlEventSetWait_v2(set, &mut data, 5000) },
        rc::SUCCESS
    );
    assert!(begin.elapsed() < Duration::from_secs(2));
    assert_eq!(data.eventData, 94);
    assert_eq!(unsafe { nvmlEventSetFree(set) }, rc::SUCCESS);
}

#[test]
fn a_lost_gpu_must_register_its_events_again() {
    const LOST_AND_BACK: &str = r#"{
        "driver_version": "550.54.15", "nvml_version": "12.550.54.15",
        "cuda_driver_version": 12040,
        "gpus": [{"name": "NVIDIA A100-SXM4-40GB",
                  "uuid": "GPU-00000000-aaaa-4bbb-8ccc-dddddddddd00",
                  "pci_bus_id": "00000000:01:00.0",
                  "memory": {"total_mib": 40960, "reserved_mib": 400, "used_mib": 1000},
                  "xid_events": [{"at_s": 5, "xid": 13}, {"at_s": 10, "xid": 79},
                                 {"at_s": 15, "xid": 48}, {"at_s": 25, "xid": 31}]}],
        "faults": [{"call": "*", "gpu": 0, "error": "GPU_IS_LOST", "from_s": 10, "until_s": 20}]
    }"#;
    let _fx = start(LOST_AND_BACK, Some(1.0));
    let gpu = handle(0);
    let xid = c_ulonglong::from(nvmlEventTypeXidCriticalError);
    let mut set = null_mut();
    assert_eq!(unsafe { nvmlEventSetCreate(&mut set) }, rc::SUCCESS);
    assert_eq!(
        unsafe { nvmlDeviceRegisterEvents(gpu, xid, set) },
        rc::SUCCESS
    );
    let mut data: nvmlEventData_t = unsafe { std::mem::zeroed() };
    let mut next = || match unsafe { nvmlEventSetWait_v2(set, &mut data, 0) } {
        rc::SUCCESS => Some(data.eventData),
        rc::TIMEOUT => None,
        other => panic!("nvmlEventSetWait_v2: {other}"),
    };
    set_time(30.0);
    // XID 79 falls due as the GPU is lost and still arrives; nothing after.
    assert_eq!((next(), next(), next()), (Some(13), Some(79), None));
    set_time(12.0);
    assert_eq!(
        unsafe { nvmlDeviceRegisterEvents(gpu, xid, set) },
        rc::GPU_IS_LOST
    );
    // A failed registration leaves the set undefined (nvml-wrapper frees
    // it); a fresh one after the GPU is back gets only what happens since.
    assert_eq!(unsafe { nvmlEventSetFree(set) }, rc::SUCCESS);
    set_time(21.0);
    assert_eq!(unsafe { nvmlEventSetCreate(&mut set) }, rc::SUCCESS);
    assert_eq!(
        unsafe { nvmlDeviceRegisterEvents(gpu, xid, set) },
        rc::SUCCESS
    );
    let mut data: nvmlEventData_t = unsafe { std::mem::zeroed() };
    set_time(30.0);
    assert_eq!(
        unsafe { nvmlEventSetWait_v2(set, &mut data, 0) },
        rc::SUCCESS
    );
    assert_eq!(
        data.eventData, 31,
        "XIDs of the GPU's earlier life are not replayed"
    );
    assert_eq!(
        unsafe { nvmlEventSetWait_v2(set, &mut data, 0) },
        rc::TIMEOUT
    );
    assert_eq!(unsafe { nvmlEventSetFree(set) }, rc::SUCCESS);
}

#[test]
fn gpm_metrics_average_between_samples() {
    let fx = start(H100X8, Some(10.0));
    let h = handle(1);
    let mut support = nvmlGpmSupport_t {
        version: NVML_GPM_SUPPORT_VERSION,
        isSupportedDevice: 9,
    };
    assert_eq!(
        unsafe { nvmlGpmQueryDeviceSupport(h, &mut support) },
        rc::SUCCESS
    );
    assert_eq!(support.isSupportedDevice, 1);
    let mut bad = nvmlGpmSupport_t {
        version: 7,
        isSupportedDevice: 9,
    };
    assert_eq!(
        unsafe { nvmlGpmQueryDeviceSupport(h, &mut bad) },
        rc::ARGUMENT_VERSION_MISMATCH
    );

    let (mut s1, mut s2) = (null_mut(), null_mut());
    assert_eq!(unsafe { nvmlGpmSampleAlloc(&mut s1) }, rc::SUCCESS);
    assert_eq!(unsafe { nvmlGpmSampleAlloc(&mut s2) }, rc::SUCCESS);
    assert_eq!(unsafe { nvmlGpmSampleGet(h, s1) }, rc::SUCCESS);
    set_time(13.0);
    assert_eq!(unsafe { nvmlGpmSampleGet(h, s2) }, rc::SUCCESS);

    let mut req: nvmlGpmMetricsGet_t = unsafe { std::mem::zeroed() };
    req.version = NVML_GPM_METRICS_GET_VERSION;
    req.numMetrics = 3;
    req.sample1 = s1;
    req.sample2 = s2;
    req.metrics[0].metricId = nvmlGpmMetricId_t_NVML_GPM_METRIC_SM_OCCUPANCY;
    req.metrics[1].metricId = nvmlGpmMetricId_t_NVML_GPM_METRIC_PCIE_RX_PER_SEC;
    // A metric the fake does not serve.
    req.metrics[2].metricId = nvmlGpmMetricId_t_NVML_GPM_METRIC_NVDEC_0_UTIL;
    assert_eq!(unsafe { nvmlGpmMetricsGet(&mut req) }, rc::SUCCESS);
    let gpm = fx.scenario.devices()[1].spec.gpm.clone().expect("gpm");
    let occ = gpm.sm_occupancy.expect("occ").mean(10.0, 13.0);
    assert_eq!(req.metrics[0].nvmlReturn, rc::SUCCESS);
    assert!((req.metrics[0].value - occ).abs() < 1e-9);
    let unit = unsafe { CStr::from_ptr(req.metrics[0].metricInfo.unit) };
    assert_eq!(unit, c"%");
    let rx = gpm.pcie_rx_bytes_s.expect("rx").mean(10.0, 13.0) / 1048576.0;
    assert!((req.metrics[1].value - rx).abs() < 1e-6);
    assert_eq!(req.metrics[2].nvmlReturn, rc::NOT_SUPPORTED);

    req.version = 2;
    assert_eq!(
        unsafe { nvmlGpmMetricsGet(&mut req) },
        rc::ARGUMENT_VERSION_MISMATCH
    );
    assert_eq!(unsafe { nvmlGpmSampleFree(s1) }, rc::SUCCESS);
    assert_eq!(unsafe { nvmlGpmSampleFree(s2) }, rc::SUCCESS);
    assert_eq!(unsafe { nvmlGpmSampleFree(s2) }, rc::INVALID_ARGUMENT);
    drop(fx);

    let _fx = start(MIXED, Some(0.0));
    let mut support = nvmlGpmSupport_t {
        version: NVML_GPM_SUPPORT_VERSION,
        isSupportedDevice: 9,
    };
    assert_eq!(
        unsafe { nvmlGpmQueryDeviceSupport(handle(2), &mut support) },
        rc::SUCCESS
    );
    assert_eq!(support.isSupportedDevice, 0);
    let mut s = null_mut();
    assert_eq!(unsafe { nvmlGpmSampleAlloc(&mut s) }, rc::SUCCESS);
    assert_eq!(unsafe { nvmlGpmSampleGet(handle(2), s) }, rc::NOT_SUPPORTED);
    assert_eq!(unsafe { nvmlGpmSampleFree(s) }, rc::SUCCESS);
}

#[test]
fn calls_are_counted() {
    let _fx = start(H100X8, Some(0.0));
    let before = crate::call_count("nvmlDeviceGetPowerUsage");
    let h = handle(0);
    let mut p = 0;
    for _ in 0..3 {
        unsafe { nvmlDeviceGetPowerUsage(h, &mut p) };
    }
    assert_eq!(crate::call_count("nvmlDeviceGetPowerUsage"), before + 3);
    assert_eq!(
        unsafe { algalon_fake_nvml_call_count(c"nvmlDeviceGetPowerUsage".as_ptr()) },
        before + 3
    );
    assert_eq!(unsafe { algalon_fake_nvml_call_count(null()) }, 0);
}

/// One H100 with a training process, `faults` added.
fn with_faults(faults: &str) -> String {
    let mut s: serde_json::Value = serde_json::from_str(H100X8).expect("JSON");
    s["gpus"] = serde_json::json!([s["gpus"][0].clone()]);
    s["faults"] = serde_json::from_str(faults).expect("faults JSON");
    s.to_string()
}

#[test]
fn insufficient_size_fault_is_a_list_that_keeps_growing() {
    let json = with_faults(
        r#"[{"call": "nvmlDeviceGetComputeRunningProcesses_v3", "error": "INSUFFICIENT_SIZE",
             "from_s": 1, "until_s": 2}]"#,
    );
    let _fx = start(&json, Some(1.5));
    let h = handle(0);
    let mut infos = [nvmlProcessInfo_t {
        pid: 0,
        usedGpuMemory: 0,
        gpuInstanceId: 0,
        computeInstanceId: 0,
    }; 8];
    // Whatever room the caller offers, one more entry is needed.
    for offered in [0, 1, 6, 7] {
        let mut count = offered;
        assert_eq!(
            unsafe { nvmlDeviceGetComputeRunningProcesses_v3(h, &mut count, infos.as_mut_ptr()) },
            rc::INSUFFICIENT_SIZE
        );
        assert_eq!(count, offered + 1);
    }
    set_time(2.0);
    let mut count = 8;
    assert_eq!(
        unsafe { nvmlDeviceGetComputeRunningProcesses_v3(h, &mut count, infos.as_mut_ptr()) },
        rc::SUCCESS
    );
    assert_eq!(count, 1, "the window is over: the real list");
}

#[test]
fn a_nested_init_sees_init_faults_at_the_current_time() {
    let json = with_faults(
        r#"[{"call": "nvmlInit_v2", "error": "DRIVER_NOT_LOADED", "from_s": 1, "until_s": 2},
            {"call": "*", "error": "DRIVER_NOT_LOADED", "from_s": 1, "until_s": 2}]"#,
    );
    let _fx = start(&json, Some(0.5));
    let h = handle(0);
    set_time(1.5);
    assert_eq!(unsafe { nvmlInit_v2() }, rc::DRIVER_NOT_LOADED);
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetPowerUsage(h, o) }),
        Err(rc::DRIVER_NOT_LOADED)
    );
    set_time(2.5);
    assert_eq!(unsafe { nvmlInit_v2() }, rc::SUCCESS, "the driver is back");
    assert!(u32_of(|o| unsafe { nvmlDeviceGetPowerUsage(h, o) }).is_ok());
    assert_eq!(unsafe { nvmlShutdown() }, rc::SUCCESS);
}

#[test]
fn gpm_sample_alloc_and_free_take_system_faults() {
    let json = with_faults(r#"[{"call": "nvmlGpmSampleAlloc", "error": "UNKNOWN"}]"#);
    let _fx = start(&json, Some(0.5));
    let mut sample = null_mut();
    assert_eq!(unsafe { nvmlGpmSampleAlloc(&mut sample) }, rc::UNKNOWN);
}

/// Calls on different GPUs run at the same time: a call's injected latency
/// sleeps outside every lock of the library, so a sampler that reads GPUs
/// in parallel measures itself, not a library that serialises them.
#[test]
fn calls_on_different_gpus_run_concurrently_latency_included() {
    let mut s: serde_json::Value = serde_json::from_str(H100X8).expect("JSON");
    s["latency"] = serde_json::json!([{"call": "*", "ms": 100}]);
    let _fx = start(&s.to_string(), Some(1.0));
    let handles: Vec<usize> = (0..8).map(|i| handle(i) as usize).collect();
    let power = |h: usize| {
        u32_of(|o| unsafe { nvmlDeviceGetPowerUsage(h as nvmlDevice_t, o) }).expect("power usage")
    };
    let start = Instant::now();
    power(handles[0]);
    let one = start.elapsed();
    assert!(
        one >= Duration::from_millis(100),
        "latency injected: {one:?}"
    );
    let start = Instant::now();
    std::thread::scope(|scope| {
        for &h in &handles {
            scope.spawn(move || {
                for _ in 0..2 {
                    power(h);
                }
            });
        }
    });
    let eight = start.elapsed();
    // Serialised, 8 GPUs × 2 calls would take 16 × one; concurrent, 2 × one.
    assert!(
        eight < one * 6,
        "8 threads × 2 calls took {eight:?}, one call {one:?}: calls are serialised"
    );
}
