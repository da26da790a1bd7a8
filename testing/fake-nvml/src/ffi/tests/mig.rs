//! MIG through the exported functions: the H100 MIG scenario's devices,
//! profiles, instances, GPM per GPU instance and reconfiguration.

use std::ffi::{CStr, CString, c_char, c_uint};
use std::ptr::null_mut;

use nvml_wrapper_sys::bindings::*;

use super::super::instances::*;
use super::{handle, set_time, start, string_of, u32_of};
use crate::ffi::device::*;
use crate::ffi::gpm::*;
use crate::ffi::mig::*;
use crate::ffi::processes::*;
use crate::ffi::system::*;
use crate::state::rc;

const H100_MIG: &str = include_str!("../../../../scenarios/h100-mig.json");
const MIXED: &str = include_str!("../../../../scenarios/mixed.json");

fn mig_handle(parent: nvmlDevice_t, index: u32) -> Result<nvmlDevice_t, u32> {
    let mut h = null_mut();
    match unsafe { nvmlDeviceGetMigDeviceHandleByIndex(parent, index, &mut h) } {
        rc::SUCCESS => Ok(h),
        code => Err(code),
    }
}

fn mig_handles(parent: nvmlDevice_t) -> Vec<nvmlDevice_t> {
    (0..7).map_while(|i| mig_handle(parent, i).ok()).collect()
}

fn mode(dev: nvmlDevice_t) -> Result<(u32, u32), u32> {
    let (mut cur, mut pend) = (9, 9);
    match unsafe { nvmlDeviceGetMigMode(dev, &mut cur, &mut pend) } {
        rc::SUCCESS => Ok((cur, pend)),
        code => Err(code),
    }
}

fn gi_id(mig: nvmlDevice_t) -> Result<u32, u32> {
    u32_of(|o| unsafe { nvmlDeviceGetGpuInstanceId(mig, o) })
}

fn name(dev: nvmlDevice_t) -> Result<String, u32> {
    string_of(|b, l| unsafe { nvmlDeviceGetName(dev, b, l) })
}

fn uuid(dev: nvmlDevice_t) -> Result<String, u32> {
    string_of(|b, l| unsafe { nvmlDeviceGetUUID(dev, b, l) })
}

fn c_name(name: &[c_char]) -> String {
    unsafe { CStr::from_ptr(name.as_ptr()) }
        .to_str()
        .expect("utf-8")
        .to_string()
}

#[test]
fn seven_1g_devices_in_nvml_order() {
    let fx = start(H100_MIG, Some(21.0));
    let gpu0 = handle(0);
    assert_eq!(mode(gpu0), Ok((1, 1)));
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetMaxMigDeviceCount(gpu0, o) }),
        Ok(7)
    );
    let migs = mig_handles(gpu0);
    assert_eq!(migs.len(), 7);
    assert_eq!(mig_handle(gpu0, 7), Err(rc::NOT_FOUND));
    let want = fx.scenario.devices()[0].mig_devices_at(21.0);
    for (h, d) in migs.iter().zip(want) {
        assert_eq!(gi_id(*h), Ok(d.spec.gpu_instance_id));
        assert_eq!(name(*h).as_deref(), Ok("NVIDIA H100 80GB HBM3 MIG 1g.10gb"));
        assert_eq!(uuid(*h).as_deref(), Ok(d.spec.uuid.as_str()));
        let mut m = nvmlMemory_v2_t {
            version: (size_of::<nvmlMemory_v2_t>() as u32) | (2 << 24),
            total: 0,
            reserved: 0,
            free: 0,
            used: 0,
        };
        assert_eq!(
            unsafe { nvmlDeviceGetMemoryInfo_v2(*h, &mut m) },
            rc::SUCCESS
        );
        let want = d.memory(21.0);
        assert_eq!(
            (m.total, m.used, m.free),
            (want.total, want.used, want.free)
        );
        assert_eq!(m.total, 9984 << 20);
    }
    let gis: Vec<u32> = migs.iter().map(|h| gi_id(*h).expect("gi")).collect();
    assert_eq!(gis, [7, 8, 9, 10, 11, 12, 13]);

    // Processes: each MIG device its own, the parent every one.
    let procs = |dev: nvmlDevice_t| {
        let mut infos: [nvmlProcessInfo_t; 8] = unsafe { std::mem::zeroed() };
        let mut count = 8;
        assert_eq!(
            unsafe { nvmlDeviceGetComputeRunningProcesses_v3(dev, &mut count, infos.as_mut_ptr()) },
            rc::SUCCESS
        );
        infos[..count as usize]
            .iter()
            .map(|p| (p.pid, p.gpuInstanceId, p.computeInstanceId))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        procs(gpu0),
        [(6101, 7, 0), (6102, 8, 0), (6103, 9, 0), (6104, 11, 0)]
    );
    assert_eq!(procs(migs[2]), [(6103, 9, 0)]);
    assert_eq!(procs(migs[3]), []);
    // Whole-GPU readings stay on the parent.
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetPowerUsage(migs[0], o) }),
        Err(rc::NOT_SUPPORTED)
    );
    assert!(u32_of(|o| unsafe { nvmlDeviceGetPowerUsage(gpu0, o) }).is_ok());
    let mut util = nvmlUtilization_t { gpu: 0, memory: 0 };
    assert_eq!(
        unsafe { nvmlDeviceGetUtilizationRates(gpu0, &mut util) },
        rc::NOT_SUPPORTED,
        "not supported on a MIG-enabled GPU"
    );

    // Attributes: MIG handles only.
    let mut attrs: nvmlDeviceAttributes_t = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { nvmlDeviceGetAttributes_v2(migs[0], &mut attrs) },
        rc::SUCCESS
    );
    assert_eq!(
        (
            attrs.multiprocessorCount,
            attrs.gpuInstanceSliceCount,
            attrs.computeInstanceSliceCount,
            attrs.memorySizeMB
        ),
        (16, 1, 1, 9984)
    );
    assert_eq!(
        unsafe { nvmlDeviceGetAttributes_v2(gpu0, &mut attrs) },
        rc::NOT_SUPPORTED
    );

    // A whole GPU: mode disabled, no MIG devices, maximum 0.
    let gpu3 = handle(3);
    assert_eq!(mode(gpu3), Ok((0, 0)));
    assert_eq!(mig_handle(gpu3, 0), Err(rc::NOT_FOUND));
    assert_eq!(
        u32_of(|o| unsafe { nvmlDeviceGetMaxMigDeviceCount(gpu3, o) }),
        Ok(0)
    );
}

#[test]
fn profile_names_through_gpu_and_compute_instances() {
    let _fx = start(H100_MIG, Some(40.0));
    let gpu1 = handle(1);
    let migs = mig_handles(gpu1);
    assert_eq!(migs.len(), 2);
    let mig = migs[1];
    let gi = gi_id(mig).expect("gi");
    assert_eq!(gi, 2);

    // As nvidia-smi and DCGM do: GPU instance → profile ID → profile name.
    let mut instance = null_mut();
    assert_eq!(
        unsafe { nvmlDeviceGetGpuInstanceById(gpu1, gi, &mut instance) },
        rc::SUCCESS
    );
    let mut info: nvmlGpuInstanceInfo_t = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { nvmlGpuInstanceGetInfo(instance, &mut info) },
        rc::SUCCESS
    );
    assert_eq!(info.device, gpu1);
    assert_eq!((info.id, info.profileId), (2, 9));
    assert_eq!((info.placement.start, info.placement.size), (4, 4));
    let v2 = (size_of::<nvmlGpuInstanceProfileInfo_v2_t>() as u32) | (2 << 24);
    let mut found = None;
    for index in 0.. {
        let mut p: nvmlGpuInstanceProfileInfo_v2_t = unsafe { std::mem::zeroed() };
        p.version = v2;
        match unsafe { nvmlDeviceGetGpuInstanceProfileInfoV(gpu1, index, &mut p) } {
            rc::SUCCESS if p.id == info.profileId => found = Some(p),
            rc::SUCCESS | rc::NOT_SUPPORTED => {}
            rc::INVALID_ARGUMENT => {
                // NVML_GPU_INSTANCE_PROFILE_COUNT of the current nvml.h.
                assert_eq!(index, 0x12);
                break;
            }
            other => panic!("profile {index}: {other}"),
        }
    }
    let p = found.expect("3g.40gb profile");
    assert_eq!(c_name(&p.name), "MIG 3g.40gb");
    assert_eq!(
        (
            p.sliceCount,
            p.instanceCount,
            p.multiprocessorCount,
            p.memorySizeMB
        ),
        (3, 2, 60, 40448)
    );
    // v3 (no P2P field, capabilities at the end), by ID, and the v1 struct.
    let mut p3: nvmlGpuInstanceProfileInfo_v3_t = unsafe { std::mem::zeroed() };
    p3.version = (size_of::<nvmlGpuInstanceProfileInfo_v3_t>() as u32) | (3 << 24);
    assert_eq!(
        unsafe { nvmlDeviceGetGpuInstanceProfileInfoByIdV(gpu1, 15, (&raw mut p3).cast()) },
        rc::SUCCESS
    );
    assert_eq!(c_name(&p3.name), "MIG 1g.20gb");
    assert_eq!((p3.sliceCount, p3.memorySizeMB), (1, 20096));
    let mut bad: nvmlGpuInstanceProfileInfo_v2_t = unsafe { std::mem::zeroed() };
    bad.version = 0x0100_0098;
    assert_eq!(
        unsafe { nvmlDeviceGetGpuInstanceProfileInfoV(gpu1, 0, &mut bad) },
        rc::ARGUMENT_VERSION_MISMATCH
    );
    let mut p1: nvmlGpuInstanceProfileInfo_t = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe {
            nvmlDeviceGetGpuInstanceProfileInfo(gpu1, NVML_GPU_INSTANCE_PROFILE_7_SLICE, &mut p1)
        },
        rc::SUCCESS
    );
    assert_eq!(
        (p1.id, p1.multiprocessorCount, p1.memorySizeMB),
        (0, 132, 81152)
    );

    // Every GPU instance of a profile, and the compute instance inside.
    let mut gis = [null_mut(); 2];
    let mut count = 0;
    assert_eq!(
        unsafe { nvmlDeviceGetGpuInstances(gpu1, 9, gis.as_mut_ptr(), &mut count) },
        rc::SUCCESS
    );
    assert_eq!(count, 2);
    assert!(gis.contains(&instance));
    let mut ci = null_mut();
    assert_eq!(
        unsafe { nvmlGpuInstanceGetComputeInstanceById(instance, 0, &mut ci) },
        rc::SUCCESS
    );
    let mut cis = [null_mut(); 1];
    assert_eq!(
        unsafe {
            nvmlGpuInstanceGetComputeInstances(
                instance,
                NVML_COMPUTE_INSTANCE_PROFILE_3_SLICE,
                cis.as_mut_ptr(),
                &mut count,
            )
        },
        rc::SUCCESS
    );
    assert_eq!((count, cis[0]), (1, ci));
    let mut cinfo: nvmlComputeInstanceInfo_t = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { nvmlComputeInstanceGetInfo_v2(ci, &mut cinfo) },
        rc::SUCCESS
    );
    assert_eq!((cinfo.device, cinfo.gpuInstance), (gpu1, instance));
    assert_eq!(
        (
            cinfo.id,
            cinfo.profileId,
            cinfo.placement.start,
            cinfo.placement.size
        ),
        (0, NVML_COMPUTE_INSTANCE_PROFILE_3_SLICE, 0, 3)
    );
    let mut cp: nvmlComputeInstanceProfileInfo_v2_t = unsafe { std::mem::zeroed() };
    cp.version = (size_of::<nvmlComputeInstanceProfileInfo_v2_t>() as u32) | (2 << 24);
    assert_eq!(
        unsafe {
            nvmlGpuInstanceGetComputeInstanceProfileInfoV(
                instance,
                NVML_COMPUTE_INSTANCE_PROFILE_3_SLICE,
                0,
                &mut cp,
            )
        },
        rc::SUCCESS
    );
    assert_eq!(c_name(&cp.name), "MIG 3g.40gb");
    assert_eq!((cp.sliceCount, cp.multiprocessorCount), (3, 60));
    assert_eq!(
        unsafe {
            nvmlGpuInstanceGetComputeInstanceProfileInfoV(
                instance,
                NVML_COMPUTE_INSTANCE_PROFILE_1_SLICE,
                0,
                &mut cp,
            )
        },
        rc::NOT_SUPPORTED
    );

    // A GPU instance that does not exist; a GPU without MIG.
    assert_eq!(
        unsafe { nvmlDeviceGetGpuInstanceById(gpu1, 3, &mut instance) },
        rc::NOT_FOUND
    );
    assert_eq!(
        unsafe { nvmlDeviceGetGpuInstanceById(handle(4), 1, &mut instance) },
        rc::NOT_SUPPORTED
    );
    let mut placements = [nvmlGpuInstancePlacement_t { start: 0, size: 0 }; 4];
    assert_eq!(
        unsafe {
            nvmlDeviceGetGpuInstancePossiblePlacements_v2(
                handle(4),
                15,
                placements.as_mut_ptr(),
                &mut count,
            )
        },
        rc::SUCCESS,
        "placements are known with MIG disabled too"
    );
    assert_eq!(count, 4);
    assert_eq!(
        placements.map(|p| (p.start, p.size)),
        [(0, 2), (2, 2), (4, 2), (6, 2)]
    );
}

#[test]
fn remaining_capacity_counts_free_placements() {
    let _fx = start(MIXED, Some(10.0));
    let a100 = handle(0);
    let left = |id| u32_of(|o| unsafe { nvmlDeviceGetGpuInstanceRemainingCapacity(a100, id, o) });
    // 3g.20gb at 0..4 and 2g.10gb at 4..6: slices 6 and 7 are free.
    assert_eq!(left(19), Ok(1), "1g.5gb");
    assert_eq!(left(15), Ok(1), "1g.10gb");
    assert_eq!(left(14), Ok(0), "2g.10gb");
    assert_eq!(left(9), Ok(0), "3g.20gb");
    assert_eq!(left(77), Err(rc::NOT_SUPPORTED));
}

#[test]
fn reconfiguration_retires_handles_and_creates_new_ones() {
    let fx = start(H100_MIG, Some(10.0));
    let gpu1 = handle(1);
    let before = mig_handles(gpu1);
    assert_eq!(
        before.iter().map(|h| gi_id(*h)).collect::<Vec<_>>(),
        [Ok(2), Ok(3), Ok(9), Ok(10)]
    );
    let names: Vec<String> = before.iter().map(|h| name(*h).expect("name")).collect();
    assert!(names[0].ends_with("MIG 3g.40gb") && names[1].ends_with("MIG 2g.20gb"));
    let gone_uuid = uuid(before[1]).expect("uuid");
    let mut gi3 = null_mut();
    assert_eq!(
        unsafe { nvmlDeviceGetGpuInstanceById(gpu1, 3, &mut gi3) },
        rc::SUCCESS
    );

    set_time(30.0);
    let after = mig_handles(gpu1);
    assert_eq!(
        after.iter().map(|h| gi_id(*h)).collect::<Vec<_>>(),
        [Ok(1), Ok(2)]
    );
    assert_eq!(after[1], before[0], "the surviving device keeps its handle");
    assert!(
        !before.contains(&after[0]),
        "a new device gets a new handle"
    );
    let new = &fx.scenario.devices()[1].mig_devices_at(30.0)[0];
    assert_eq!(uuid(after[0]).as_deref(), Ok(new.spec.uuid.as_str()));
    // Destroyed devices: their handles are stale, their UUIDs unknown.
    for stale in &before[1..] {
        assert_eq!(gi_id(*stale), Err(rc::INVALID_ARGUMENT));
        assert_eq!(uuid(*stale), Err(rc::INVALID_ARGUMENT));
        let mut m = nvmlMemory_t {
            total: 0,
            free: 0,
            used: 0,
        };
        assert_eq!(
            unsafe { nvmlDeviceGetMemoryInfo(*stale, &mut m) },
            rc::INVALID_ARGUMENT
        );
    }
    let c = CString::new(gone_uuid).expect("c");
    let mut by_uuid = null_mut();
    assert_eq!(
        unsafe { nvmlDeviceGetHandleByUUID(c.as_ptr(), &mut by_uuid) },
        rc::NOT_FOUND
    );
    let mut info: nvmlGpuInstanceInfo_t = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { nvmlGpuInstanceGetInfo(gi3, &mut info) },
        rc::INVALID_ARGUMENT
    );
    // Back in time the old devices answer again (a frozen clock is moved
    // by tests only).
    set_time(29.0);
    assert_eq!(gi_id(before[1]), Ok(3));

    // GPU 2: whole GPU, then MIG pending, then enabled.
    let gpu2 = handle(2);
    set_time(24.0);
    assert_eq!(mode(gpu2), Ok((0, 0)));
    let mut util = nvmlUtilization_t { gpu: 0, memory: 0 };
    assert_eq!(
        unsafe { nvmlDeviceGetUtilizationRates(gpu2, &mut util) },
        rc::SUCCESS
    );
    set_time(26.0);
    assert_eq!(mode(gpu2), Ok((0, 1)));
    assert_eq!(mig_handle(gpu2, 0), Err(rc::NOT_FOUND));
    set_time(31.0);
    assert_eq!(mode(gpu2), Ok((1, 1)));
    let migs = mig_handles(gpu2);
    let names: Vec<String> = migs.iter().map(|h| name(*h).expect("name")).collect();
    assert_eq!(
        names,
        [
            "NVIDIA H100 80GB HBM3 MIG 4g.40gb",
            "NVIDIA H100 80GB HBM3 MIG 3g.40gb"
        ]
    );
    assert_eq!(
        unsafe { nvmlDeviceGetUtilizationRates(gpu2, &mut util) },
        rc::NOT_SUPPORTED
    );
}

#[test]
fn the_stale_handle_error_is_configurable() {
    let json = H100_MIG.replacen(
        r#""schedule": [
          {
            "at_s": 30,"#,
        r#""stale_handle_error": "NOT_FOUND",
        "schedule": [
          {
            "at_s": 30,"#,
        1,
    );
    assert_ne!(json, H100_MIG);
    let _fx = start(&json, Some(10.0));
    let stale = mig_handle(handle(1), 1).expect("2g.20gb");
    set_time(30.0);
    assert_eq!(gi_id(stale), Err(rc::NOT_FOUND));
}

fn gpm_request(s1: nvmlGpmSample_t, s2: nvmlGpmSample_t, ids: &[u32]) -> nvmlGpmMetricsGet_t {
    let mut req: nvmlGpmMetricsGet_t = unsafe { std::mem::zeroed() };
    req.version = NVML_GPM_METRICS_GET_VERSION;
    req.numMetrics = ids.len() as c_uint;
    req.sample1 = s1;
    req.sample2 = s2;
    for (m, id) in req.metrics.iter_mut().zip(ids) {
        m.metricId = *id;
    }
    req
}

#[test]
fn gpm_per_gpu_instance() {
    let fx = start(H100_MIG, Some(10.0));
    let gpu0 = handle(0);
    let (mut s1, mut s2) = (null_mut(), null_mut());
    assert_eq!(unsafe { nvmlGpmSampleAlloc(&mut s1) }, rc::SUCCESS);
    assert_eq!(unsafe { nvmlGpmSampleAlloc(&mut s2) }, rc::SUCCESS);
    assert_eq!(unsafe { nvmlGpmMigSampleGet(gpu0, 7, s1) }, rc::SUCCESS);
    set_time(14.0);
    assert_eq!(unsafe { nvmlGpmMigSampleGet(gpu0, 7, s2) }, rc::SUCCESS);
    let ids = [
        nvmlGpmMetricId_t_NVML_GPM_METRIC_SM_UTIL,
        nvmlGpmMetricId_t_NVML_GPM_METRIC_SM_OCCUPANCY,
        nvmlGpmMetricId_t_NVML_GPM_METRIC_ANY_TENSOR_UTIL,
        nvmlGpmMetricId_t_NVML_GPM_METRIC_DRAM_BW_UTIL,
        nvmlGpmMetricId_t_NVML_GPM_METRIC_FP64_UTIL,
    ];
    let mut req = gpm_request(s1, s2, &ids);
    assert_eq!(unsafe { nvmlGpmMetricsGet(&mut req) }, rc::SUCCESS);
    let gi7 = &fx.scenario.devices()[0].mig_devices_at(10.0)[0];
    let gpm = gi7.spec.gpm.as_ref().expect("gpm");
    for (m, id) in req.metrics.iter().zip(ids).take(4) {
        let (value, _) = gpm.metric(id).expect("value");
        assert_eq!(m.nvmlReturn, rc::SUCCESS);
        assert!((m.value - value.mean(10.0, 14.0)).abs() < 1e-9, "{id}");
    }
    assert_eq!(
        req.metrics[4].nvmlReturn,
        rc::NOT_SUPPORTED,
        "not in the scenario"
    );

    // An idle instance reads 0 (its activity is 0, not missing).
    assert_eq!(unsafe { nvmlGpmMigSampleGet(gpu0, 10, s1) }, rc::SUCCESS);
    assert_eq!(unsafe { nvmlGpmMigSampleGet(gpu0, 10, s2) }, rc::SUCCESS);
    let mut req = gpm_request(s1, s2, &ids[..1]);
    assert_eq!(unsafe { nvmlGpmMetricsGet(&mut req) }, rc::SUCCESS);
    assert_eq!((req.metrics[0].nvmlReturn, req.metrics[0].value), (0, 0.0));
    // Samples of two instances do not compare.
    assert_eq!(unsafe { nvmlGpmMigSampleGet(gpu0, 7, s1) }, rc::SUCCESS);
    assert_eq!(
        unsafe { nvmlGpmMetricsGet(&mut gpm_request(s1, s2, &ids[..1])) },
        rc::INVALID_ARGUMENT
    );
    // No such GPU instance; the parent's own GPM block has no readings.
    assert_eq!(
        unsafe { nvmlGpmMigSampleGet(gpu0, 1, s1) },
        rc::INVALID_ARGUMENT
    );
    assert_eq!(unsafe { nvmlGpmSampleGet(gpu0, s1) }, rc::SUCCESS);
    assert_eq!(unsafe { nvmlGpmSampleGet(gpu0, s2) }, rc::SUCCESS);
    let mut req = gpm_request(s1, s2, &ids[..1]);
    assert_eq!(unsafe { nvmlGpmMetricsGet(&mut req) }, rc::SUCCESS);
    assert_eq!(req.metrics[0].nvmlReturn, rc::NOT_SUPPORTED);

    // GPU 1: GI 9 is destroyed at 30, GI 2 survives it.
    let gpu1 = handle(1);
    set_time(29.0);
    assert_eq!(unsafe { nvmlGpmMigSampleGet(gpu1, 9, s1) }, rc::SUCCESS);
    set_time(31.0);
    assert_eq!(
        unsafe { nvmlGpmMigSampleGet(gpu1, 9, s2) },
        rc::INVALID_ARGUMENT
    );
    set_time(29.0);
    assert_eq!(unsafe { nvmlGpmMigSampleGet(gpu1, 2, s1) }, rc::SUCCESS);
    set_time(31.0);
    assert_eq!(unsafe { nvmlGpmMigSampleGet(gpu1, 2, s2) }, rc::SUCCESS);
    let mut req = gpm_request(s1, s2, &ids[..1]);
    assert_eq!(unsafe { nvmlGpmMetricsGet(&mut req) }, rc::SUCCESS);
    assert_eq!(req.metrics[0].nvmlReturn, rc::SUCCESS);
    assert_eq!(unsafe { nvmlGpmSampleFree(s1) }, rc::SUCCESS);
    assert_eq!(unsafe { nvmlGpmSampleFree(s2) }, rc::SUCCESS);
}
