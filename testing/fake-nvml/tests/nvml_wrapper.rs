//! Drives the built cdylib through nvml-wrapper 0.13 — the path Algalon's
//! sampler takes — and checks it reports exactly what the scenario says.
//!
//! The library reads its scenario from the environment at init, so this
//! binary has a single test that sets the variables before any other thread
//! exists and then runs every phase in order.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use nvidia_ml::scenario::Scenario;
use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
use nvml_wrapper::enums::device::{SampleValue, UsedGpuMemory};
use nvml_wrapper::enums::event::XidError;
use nvml_wrapper::enums::gpm::GpmMetricId;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::gpm::gpm_metrics_get;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::{Device, Nvml};
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
    mig_node(&lib);

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
        // No fan: index 0 is out of range, as on a real H200 (driver 580).
        assert!(matches!(dev.fan_speed(0), Err(NvmlError::InvalidArg)));
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
        &[GpmMetricId::SmOccupancy, GpmMetricId::Nvdec0Util],
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

/// One MIG device as Algalon's sampler reads it.
#[derive(Debug, PartialEq)]
struct MigReading {
    uuid: String,
    /// From the device name, `"<parent name> MIG <profile>"`.
    profile: String,
    gpu_instance_id: u32,
    compute_instance_id: u32,
    memory_total: u64,
    memory_used: u64,
    pids: Vec<u32>,
    compute_slices: u32,
}

/// `nvmlDeviceGetGpuInstanceId` / `nvmlDeviceGetComputeInstanceId`, which
/// nvml-wrapper 0.13 does not wrap: only through its raw symbol table.
fn instance_ids(nvml: &Nvml, mig: &Device<'_>) -> Result<(u32, u32), u32> {
    let lib = nvml.lib();
    let gi_sym = lib.nvmlDeviceGetGpuInstanceId.as_ref().expect("symbol");
    let ci_sym = lib.nvmlDeviceGetComputeInstanceId.as_ref().expect("symbol");
    let (mut gi, mut ci) = (0, 0);
    // SAFETY: a handle nvml-wrapper issued, and valid out-pointers.
    let (a, b) = unsafe { (gi_sym(mig.handle(), &mut gi), ci_sym(mig.handle(), &mut ci)) };
    match (a, b) {
        (0, 0) => Ok((gi, ci)),
        (0, e) | (e, _) => Err(e),
    }
}

/// What the sampler does per GPU: MIG mode, then every MIG device by index
/// until `NotFound`, each read through nvml-wrapper.
fn read_migs(nvml: &Nvml, gpu: &Device<'_>) -> Vec<MigReading> {
    let parent_name = gpu.name().expect("name");
    let mode = gpu.mig_mode().expect("mig mode");
    if mode.current == 0 {
        assert_eq!(gpu.mig_device_count().expect("max"), 0);
        return Vec::new();
    }
    let max = gpu.mig_device_count().expect("max");
    let mut out = Vec::new();
    for index in 0..max {
        let mig = match gpu.mig_device_by_index(index) {
            Ok(m) => m,
            Err(NvmlError::NotFound) => break,
            Err(e) => panic!("MIG device {index}: {e}"),
        };
        assert!(mig.mig_is_mig_device_handle().expect("is mig"));
        let parent = mig.mig_parent_device().expect("parent");
        assert_eq!(
            parent.uuid().expect("parent uuid"),
            gpu.uuid().expect("uuid")
        );
        let name = mig.name().expect("name");
        let profile = name
            .strip_prefix(&format!("{parent_name} MIG "))
            .expect("MIG device name")
            .to_string();
        let (gpu_instance_id, compute_instance_id) = instance_ids(nvml, &mig).expect("ids");
        let memory = mig.memory_info().expect("memory");
        let procs = mig.running_compute_processes().expect("processes");
        assert!(
            procs
                .iter()
                .all(|p| p.gpu_instance_id == Some(gpu_instance_id))
        );
        let attrs = mig.attributes().expect("attributes");
        assert_eq!(attrs.memory_size_mb << 20, memory.total);
        out.push(MigReading {
            uuid: mig.uuid().expect("uuid"),
            profile,
            gpu_instance_id,
            compute_instance_id,
            memory_total: memory.total,
            memory_used: memory.used,
            pids: procs.iter().map(|p| p.pid).collect(),
            compute_slices: attrs.compute_instance_slice_count,
        });
    }
    out
}

/// What the scenario says the sampler must see on GPU `gpu` at `t`.
fn expected_migs(scenario: &Scenario, gpu: usize, t: f64) -> Vec<MigReading> {
    let dev = &scenario.devices()[gpu];
    dev.mig_devices_at(t)
        .iter()
        .map(|m| {
            let memory = m.memory(t);
            MigReading {
                uuid: m.spec.uuid.clone(),
                profile: m.spec.profile.clone(),
                gpu_instance_id: m.spec.gpu_instance_id,
                compute_instance_id: m.spec.compute_instance_id,
                memory_total: memory.total,
                memory_used: memory.used,
                pids: dev
                    .processes_at(t)
                    .filter(|p| p.gpu_instance_id == Some(m.spec.gpu_instance_id))
                    .map(|p| p.pid)
                    .collect(),
                compute_slices: m.profile.slices,
            }
        })
        .collect()
}

fn set_clock(file: &Path, t: f64) {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, t.to_string()).expect("write clock");
    std::fs::rename(&tmp, file).expect("rename clock");
}

/// The H100 MIG node through nvml-wrapper, with scenario time stepped by the
/// clock file across GPU 1's repartitioning and GPU 2's switch to MIG.
fn mig_node(lib: &Path) {
    let dir = std::env::temp_dir().join(format!("fake-nvml-mig-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let clock = dir.join("clock");
    set_clock(&clock, 10.0);
    set_env(nvidia_ml::FROZEN_TIME_ENV, None);
    set_env(nvidia_ml::CLOCK_FILE_ENV, Some(clock.as_os_str()));
    set_env(
        nvidia_ml::SCENARIO_ENV,
        Some(scenario_path("h100-mig").as_os_str()),
    );
    let scenario = Scenario::load(scenario_path("h100-mig")).expect("scenario");
    let nvml = Nvml::builder()
        .lib_path(lib.as_os_str())
        .init()
        .expect("init");
    let gpus: Vec<Device<'_>> = (0..8)
        .map(|i| nvml.device_by_index(i).expect("device"))
        .collect();

    for t in [10.0, 21.0] {
        set_clock(&clock, t);
        for (i, gpu) in gpus.iter().enumerate() {
            assert_eq!(
                read_migs(&nvml, gpu),
                expected_migs(&scenario, i, t),
                "GPU {i} at {t}"
            );
        }
    }
    let gpu0 = read_migs(&nvml, &gpus[0]);
    assert_eq!(gpu0.len(), 7);
    assert!(
        gpu0.iter()
            .all(|m| m.profile == "1g.10gb" && m.compute_slices == 1)
    );
    let gpu1: Vec<String> = read_migs(&nvml, &gpus[1])
        .into_iter()
        .map(|m| m.profile)
        .collect();
    assert_eq!(gpu1, ["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"]);
    // The parent lists every process, with the instance it runs in.
    let all = gpus[0].running_compute_processes().expect("processes");
    assert_eq!(
        all.iter()
            .map(|p| (p.pid, p.gpu_instance_id))
            .collect::<Vec<_>>(),
        [
            (6101, Some(7)),
            (6102, Some(8)),
            (6103, Some(9)),
            (6104, Some(11))
        ]
    );
    assert!(matches!(
        gpus[0].utilization_rates(),
        Err(NvmlError::NotSupported)
    ));
    let profile = gpus[0].profile_info(0).expect("1g.10gb profile");
    assert_eq!(
        (profile.id, profile.slice_count, profile.memory_size_mb),
        (19, 1, 9984)
    );

    // GPM per GPU instance, between two clock steps.
    set_clock(&clock, 10.0);
    let s1 = gpus[0].gpm_mig_sample(7).expect("sample");
    set_clock(&clock, 14.0);
    let s2 = gpus[0].gpm_mig_sample(7).expect("sample");
    let ids = [
        GpmMetricId::SmUtil,
        GpmMetricId::SmOccupancy,
        GpmMetricId::AnyTensorUtil,
        GpmMetricId::DramBwUtil,
    ];
    let got = gpm_metrics_get(&nvml, &s1, &s2, &ids).expect("metrics");
    let gi7 = &scenario.devices()[0].mig_devices_at(14.0)[0];
    let gpm = gi7.spec.gpm.as_ref().expect("gpm");
    for (m, id) in got.iter().zip([2, 3, 5, 10]) {
        let value = m.as_ref().expect("metric").value;
        let mean = gpm.metric(id).expect("value").0.mean(10.0, 14.0);
        assert!(
            (value - mean).abs() < 1e-9,
            "metric {id}: {value} vs {mean}"
        );
    }
    drop((s1, s2));

    // Repartitioning: GPU 1's destroyed devices go stale, the survivor stays.
    set_clock(&clock, 20.0);
    let old = gpus[1].mig_device_by_index(1).expect("2g.20gb");
    let old_uuid = old.uuid().expect("uuid");
    // A job pinned with CUDA_VISIBLE_DEVICES=MIG-… finds its device by UUID.
    let by_uuid = nvml.device_by_uuid(old_uuid.as_str()).expect("by uuid");
    assert!(by_uuid.mig_is_mig_device_handle().expect("is mig"));
    assert_eq!(
        by_uuid
            .mig_parent_device()
            .expect("parent")
            .index()
            .expect("index"),
        1
    );
    set_clock(&clock, 30.0);
    assert!(matches!(old.uuid(), Err(NvmlError::InvalidArg)));
    assert!(matches!(
        nvml.device_by_uuid(old_uuid.as_str()),
        Err(NvmlError::NotFound)
    ));
    assert_eq!(
        read_migs(&nvml, &gpus[1]),
        expected_migs(&scenario, 1, 30.0)
    );
    assert_eq!(read_migs(&nvml, &gpus[1]).len(), 2);
    // GPU 2: pending at 26, MIG at 31.
    set_clock(&clock, 26.0);
    let mode = gpus[2].mig_mode().expect("mode");
    assert_eq!((mode.current, mode.pending), (0, 1));
    set_clock(&clock, 31.0);
    let gpu2 = read_migs(&nvml, &gpus[2]);
    assert_eq!(gpu2, expected_migs(&scenario, 2, 31.0));
    assert_eq!(gpu2[0].profile, "4g.40gb");
    assert_eq!(gpu2[0].pids, [6301]);

    drop(gpus);
    drop(nvml);
    set_env(nvidia_ml::CLOCK_FILE_ENV, None);
    std::fs::remove_dir_all(&dir).ok();
}
