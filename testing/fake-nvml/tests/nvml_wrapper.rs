//! Drives the built cdylib through nvml-wrapper 0.13 — the path Algalon's
//! sampler takes — and checks it reports exactly what the scenario says.
//!
//! The library reads its scenario from the environment at init, so this
//! binary has a single test that sets the variables before any other thread
//! exists and then runs every phase in order.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use nvidia_ml::scenario::Scenario;
use nvml_wrapper::Nvml;
use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::enums::device::{SampleValue, UsedGpuMemory};
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::enums::gpm::GpmMetricId;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::gpm::gpm_metrics_get;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper_sys::bindings::field_id::{
    NVML_FI_DEV_MEMORY_TEMP, NVML_FI_DEV_NVLINK_LINK_COUNT, NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION,
};

fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.json"))
}

/// The cdylib cargo built alongside this test (`target/<profile>/deps`).
fn library() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps dir");
    for dir in [deps, deps.parent().expect("profile dir")] {
        let lib = dir.join("libnvidia_ml.so");
        if lib.exists() {
            return lib;
        }
    }
    panic!("libnvidia_ml.so not found next to {}", exe.display());
}

fn set_env(name: &str, value: Option<&OsStr>) {
    // SAFETY: this binary has one test and it runs before any thread that
    // could read the environment is started; the library reads it on init.
    unsafe {
        match value {
            Some(v) => std::env::set_var(name, v),
            None => std::env::remove_var(name),
        }
    }
}

fn open(lib: &Path, scenario: &str, t: f64) -> Nvml {
    set_env(
        nvidia_ml::SCENARIO_ENV,
        Some(scenario_path(scenario).as_os_str()),
    );
    set_env(nvidia_ml::FROZEN_TIME_ENV, Some(OsStr::new(&t.to_string())));
    Nvml::builder()
        .lib_path(lib.as_os_str())
        .init()
        .unwrap_or_else(|e| panic!("init on {scenario}: {e}"))
}

#[test]
fn nvml_wrapper_reads_the_scenario() {
    let lib = library();
    h100_node(&lib);
    mixed_fleet(&lib);
    faulty_node(&lib);

    set_env(nvidia_ml::SCENARIO_ENV, None);
    let err = Nvml::builder()
        .lib_path(lib.as_os_str())
        .init()
        .expect_err("no scenario");
    assert!(matches!(err, NvmlError::DriverNotLoaded), "{err:?}");
}

fn h100_node(lib: &Path) {
    let t = 75.0;
    let nvml = open(lib, "h100x8", t);
    let scenario = Scenario::load(scenario_path("h100x8")).expect("scenario");
    assert_eq!(nvml.sys_driver_version().expect("driver"), "550.54.15");
    assert_eq!(nvml.sys_cuda_driver_version().expect("cuda"), 12040);
    assert_eq!(nvml.device_count().expect("count"), 8);

    for expected in scenario.devices() {
        let dev = nvml.device_by_index(expected.index).expect("device");
        let spec = &expected.spec;
        assert_eq!(dev.name().expect("name"), spec.name);
        assert_eq!(dev.uuid().expect("uuid"), spec.uuid);
        assert_eq!(dev.index().expect("index"), expected.index);
        assert_eq!(dev.pci_info().expect("pci").bus_id, spec.pci_bus_id);
        let mem = dev.memory_info().expect("memory v2");
        let want = expected.memory(t);
        assert_eq!(
            (mem.total, mem.reserved, mem.used, mem.free),
            (want.total, want.reserved, want.used, want.free)
        );
        let util = dev.utilization_rates().expect("util");
        let want_util = spec.utilization.as_ref().expect("util");
        assert_eq!(util.gpu, want_util.gpu.percent_at(t));
        assert_eq!(util.memory, want_util.memory.percent_at(t));
        assert_eq!(
            Some(dev.power_usage().expect("power")),
            expected.power_mw(t)
        );
        assert_eq!(
            Some(dev.total_energy_consumption().expect("energy")),
            expected.energy_mj(t)
        );
        assert_eq!(
            dev.temperature(TemperatureSensor::Gpu).expect("temp"),
            spec.temperature_c.as_ref().expect("temp").u32_at(t)
        );
        assert_eq!(
            dev.clock_info(Clock::SM).expect("sm clock"),
            spec.clocks.as_ref().expect("clocks").sm_mhz.u32_at(t)
        );
        assert_eq!(dev.enforced_power_limit().expect("limit"), 700_000);
        assert!(matches!(dev.fan_speed(0), Err(NvmlError::NotSupported)));
        assert_eq!(dev.num_fans().expect("fans"), 0);

        let procs = dev.running_compute_processes().expect("processes");
        let want_pids: Vec<u32> = expected.processes_at(t).map(|p| p.pid).collect();
        assert_eq!(procs.iter().map(|p| p.pid).collect::<Vec<_>>(), want_pids);
        let first = expected.processes_at(t).next().expect("a process");
        assert!(
            matches!(procs[0].used_gpu_memory, UsedGpuMemory::Used(b) if b == first.used_bytes(t))
        );

        let fields = dev
            .field_values_for(&[
                FieldId(NVML_FI_DEV_MEMORY_TEMP),
                FieldId(NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION),
                FieldId(NVML_FI_DEV_NVLINK_LINK_COUNT),
            ])
            .expect("fields");
        let value = |i: usize| {
            fields[i]
                .as_ref()
                .expect("sample")
                .value
                .as_ref()
                .ok()
                .cloned()
        };
        let mem_temp = spec
            .memory_temperature_c
            .as_ref()
            .expect("mem temp")
            .u32_at(t);
        assert!(matches!(value(0), Some(SampleValue::U32(v)) if v == mem_temp));
        assert!(matches!(value(1), Some(SampleValue::U64(v)) if Some(v) == expected.energy_mj(t)));
        assert!(matches!(value(2), Some(SampleValue::U32(18))));
        assert!(dev.gpm_support().expect("gpm support"));
    }

    // Process utilization samples, newer than a second ago.
    let dev = nvml.device_by_index(5).expect("device 5");
    let samples = dev.process_utilization_stats(None).expect("samples");
    assert_eq!(
        samples.iter().map(|s| s.pid).collect::<Vec<_>>(),
        [4247, 8123]
    );

    // GPM between two samples (same frozen instant → the value at t).
    let dev = nvml.device_by_index(1).expect("device 1");
    let (s1, s2) = (dev.gpm_sample().expect("s1"), dev.gpm_sample().expect("s2"));
    let metrics = gpm_metrics_get(
        &nvml,
        &s1,
        &s2,
        &[GpmMetricId::SmOccupancy, GpmMetricId::IntegerUtil],
    )
    .expect("gpm metrics");
    let occupancy = scenario.devices()[1]
        .spec
        .gpm
        .as_ref()
        .expect("gpm")
        .sm_occupancy
        .as_ref()
        .expect("occ");
    let got = metrics[0].as_ref().expect("occupancy").value;
    assert!((got - occupancy.at(t)).abs() < 1e-9, "{got}");
    assert!(matches!(metrics[1], Err(NvmlError::NotSupported)));
    drop((s1, s2));

    // The XID on GPU 3 (due at t = 60) arrives through an event set.
    let set = nvml.create_event_set().expect("event set");
    let gpu3 = nvml.device_by_index(3).expect("device 3");
    let set = gpu3
        .register_events(EventTypes::CRITICAL_XID_ERROR, set)
        .expect("register");
    let event = set.wait(100).expect("xid");
    assert_eq!(event.device.index().expect("index"), 3);
    assert!(event.event_type.contains(EventTypes::CRITICAL_XID_ERROR));
    assert!(matches!(event.event_data, Some(XidError::Value(94))));
    assert!(matches!(set.wait(10), Err(NvmlError::Timeout)));
}

fn mixed_fleet(lib: &Path) {
    let nvml = open(lib, "mixed", 10.0);
    assert_eq!(nvml.device_count().expect("count"), 4);
    let a100 = nvml.device_by_index(0).expect("a100");
    assert!(matches!(
        a100.utilization_rates(),
        Err(NvmlError::NotSupported)
    ));
    let mig = a100.mig_device_by_index(0).expect("mig 0");
    assert_eq!(
        mig.name().expect("mig name"),
        "NVIDIA A100-SXM4-40GB MIG 3g.20gb"
    );
    assert_eq!(mig.memory_info().expect("mig memory").total, 19968 << 20);
    let t4 = nvml.device_by_index(2).expect("t4");
    assert!(matches!(
        t4.total_energy_consumption(),
        Err(NvmlError::NotSupported)
    ));
    assert!(matches!(
        t4.encoder_utilization(),
        Err(NvmlError::NotSupported)
    ));
    let fields = t4
        .field_values_for(&[FieldId(NVML_FI_DEV_MEMORY_TEMP)])
        .expect("fields");
    assert!(matches!(
        fields[0].as_ref().expect("sample").value,
        Err(NvmlError::NotSupported)
    ));
    let rtx = nvml.device_by_index(3).expect("rtx");
    assert_eq!(rtx.num_fans().expect("fans"), 2);
    assert!(rtx.fan_speed(1).is_ok());
}

fn faulty_node(lib: &Path) {
    let nvml = open(lib, "faulty", 5.0);
    let lost = nvml.device_by_index(0);
    assert!(matches!(lost, Err(NvmlError::GpuLost)), "{lost:?}");
    let gpu1 = nvml.device_by_index(1).expect("gpu 1");
    assert!(matches!(gpu1.power_usage(), Err(NvmlError::NoPermission)));
    assert!(matches!(
        gpu1.temperature(TemperatureSensor::Gpu),
        Err(NvmlError::Unknown)
    ));
    assert!(gpu1.utilization_rates().is_ok());
    let gpu2 = nvml.device_by_index(2).expect("gpu 2");
    let begin = std::time::Instant::now();
    assert!(gpu2.utilization_rates().is_ok());
    assert!(begin.elapsed() >= std::time::Duration::from_millis(300));
    assert!(
        nvml.device_by_index(3)
            .expect("gpu 3")
            .power_usage()
            .is_ok()
    );
}
