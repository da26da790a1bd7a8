//! Name tables: the exported NVML symbols, the field IDs and GPM metrics the
//! fake serves, and NVML's return codes with their `nvmlErrorString` texts.
//!
//! Scenario validation checks `faults[].call`, `latency[].call` and
//! `gpus[].unsupported` against these tables, so a typo fails loudly instead
//! of silently never matching.

use std::ffi::CStr;

/// Builds, from one table of `ffi` module → exported functions, everything
/// that names them: [`EXPORTED`] (what scenarios may name in `faults`,
/// `latency` and `unsupported`) and the [`entry`] constants each export's
/// body counts, logs, faults and delays itself under. A row whose function
/// does not exist does not compile, and an export's body names itself as
/// `entry::<its name>`, which does not compile without its row; a unit test
/// checks every export does. Adding an entry point is its function plus one
/// row here.
macro_rules! entry_points {
    ($($module:ident: [$($name:ident),* $(,)?],)*) => {
        /// Every NVML function this library exports, in table order.
        pub const EXPORTED: &[&str] = &[$($(stringify!($name),)*)*];

        /// The name of each exported NVML function, as it appears in the
        /// call counter, the call log (`ALGALON_FAKE_NVML_CALL_LOG`) and a
        /// scenario's `faults`, `latency` and `unsupported`.
        #[allow(non_upper_case_globals)]
        pub mod entry {
            $($(
                #[doc = concat!("`", stringify!($name), "`")]
                pub const $name: &str = stringify!($name);
            )*)*
        }

        // Each row names a function its module defines.
        const _: () = {
            $($(let _ = crate::ffi::$module::$name;)*)*
        };
    };
}

entry_points! {
    system: [
        nvmlInit_v2,
        nvmlInitWithFlags,
        nvmlInit,
        nvmlShutdown,
        nvmlErrorString,
        nvmlSystemGetDriverVersion,
        nvmlSystemGetNVMLVersion,
        nvmlSystemGetCudaDriverVersion,
        nvmlSystemGetCudaDriverVersion_v2,
        nvmlSystemGetProcessName,
        nvmlUnitGetCount,
        nvmlDeviceGetCount_v2,
        nvmlDeviceGetCount,
        nvmlDeviceGetHandleByIndex_v2,
        nvmlDeviceGetHandleByIndex,
        nvmlDeviceGetHandleByUUID,
        nvmlDeviceGetHandleByPciBusId_v2,
        nvmlDeviceGetHandleByPciBusId,
        nvmlDeviceGetHandleBySerial,
    ],
    device: [
        nvmlDeviceGetIndex,
        nvmlDeviceGetUUID,
        nvmlDeviceGetName,
        nvmlDeviceGetPciInfo_v3,
        nvmlDeviceGetPciInfo_v2,
        nvmlDeviceGetPciInfo,
        nvmlDeviceGetMinorNumber,
        nvmlDeviceGetSerial,
        nvmlDeviceGetVbiosVersion,
        nvmlDeviceGetBoardPartNumber,
        nvmlDeviceGetBrand,
        nvmlDeviceGetInforomImageVersion,
        nvmlDeviceGetInforomVersion,
        nvmlDeviceGetArchitecture,
        nvmlDeviceGetCudaComputeCapability,
        nvmlDeviceGetPersistenceMode,
        nvmlDeviceGetDisplayActive,
        nvmlDeviceGetDisplayMode,
        nvmlDeviceGetComputeMode,
        nvmlDeviceGetDriverModel,
        nvmlDeviceGetDriverModel_v2,
        nvmlDeviceGetConfComputeMemSizeInfo,
        nvmlDeviceGetMemoryInfo,
        nvmlDeviceGetMemoryInfo_v2,
        nvmlDeviceGetBAR1MemoryInfo,
        nvmlDeviceGetClockInfo,
        nvmlDeviceGetMaxClockInfo,
        nvmlDeviceGetClock,
        nvmlDeviceGetApplicationsClock,
        nvmlDeviceGetDefaultApplicationsClock,
        nvmlDeviceGetMaxCustomerBoostClock,
        nvmlDeviceGetTemperature,
        nvmlDeviceGetTemperatureV,
        nvmlDeviceGetTemperatureThreshold,
        nvmlDeviceGetFanSpeed,
        nvmlDeviceGetFanSpeed_v2,
        nvmlDeviceGetTargetFanSpeed,
        nvmlDeviceGetNumFans,
        nvmlDeviceGetPowerUsage,
        nvmlDeviceGetTotalEnergyConsumption,
        nvmlDeviceGetEnforcedPowerLimit,
        nvmlDeviceGetPowerManagementLimit,
        nvmlDeviceGetPowerManagementDefaultLimit,
        nvmlDeviceGetPowerManagementLimitConstraints,
        nvmlDeviceGetPowerManagementMode,
        nvmlDeviceGetPowerState,
        nvmlDeviceGetPerformanceState,
        nvmlDeviceGetPcieReplayCounter,
        nvmlDeviceGetPcieThroughput,
        nvmlDeviceGetCurrPcieLinkGeneration,
        nvmlDeviceGetCurrPcieLinkWidth,
        nvmlDeviceGetMaxPcieLinkGeneration,
        nvmlDeviceGetMaxPcieLinkWidth,
        nvmlDeviceGetGpuMaxPcieLinkGeneration,
        nvmlDeviceGetPcieLinkMaxSpeed,
        nvmlDeviceGetPcieSpeed,
        nvmlDeviceGetUtilizationRates,
        nvmlDeviceGetEncoderUtilization,
        nvmlDeviceGetDecoderUtilization,
    ],
    health: [
        nvmlDeviceGetViolationStatus,
        nvmlDeviceGetTotalEccErrors,
        nvmlDeviceGetEccMode,
        nvmlDeviceGetDefaultEccMode,
        nvmlDeviceGetRetiredPages,
        nvmlDeviceGetRetiredPages_v2,
        nvmlDeviceGetRetiredPagesPendingStatus,
        nvmlDeviceGetRemappedRows,
        nvmlDeviceGetCurrentClocksThrottleReasons,
        nvmlDeviceGetCurrentClocksEventReasons,
        nvmlDeviceGetSupportedClocksThrottleReasons,
        nvmlDeviceGetSupportedClocksEventReasons,
        nvmlDeviceGetNvLinkState,
        nvmlDeviceGetNvLinkErrorCounter,
        nvmlDeviceGetFieldValues,
    ],
    processes: [
        nvmlDeviceGetComputeRunningProcesses_v3,
        nvmlDeviceGetComputeRunningProcesses_v2,
        nvmlDeviceGetComputeRunningProcesses,
        nvmlDeviceGetGraphicsRunningProcesses_v3,
        nvmlDeviceGetGraphicsRunningProcesses_v2,
        nvmlDeviceGetGraphicsRunningProcesses,
        nvmlDeviceGetMPSComputeRunningProcesses_v3,
        nvmlDeviceGetMPSComputeRunningProcesses_v2,
        nvmlDeviceGetMPSComputeRunningProcesses,
        nvmlDeviceGetRunningProcessDetailList,
        nvmlDeviceGetProcessUtilization,
    ],
    mig: [
        nvmlDeviceGetMigMode,
        nvmlDeviceGetMaxMigDeviceCount,
        nvmlDeviceGetMigDeviceHandleByIndex,
        nvmlDeviceIsMigDeviceHandle,
        nvmlDeviceGetGpuInstanceId,
        nvmlDeviceGetComputeInstanceId,
        nvmlDeviceGetDeviceHandleFromMigDeviceHandle,
        nvmlDeviceGetAttributes_v2,
    ],
    instances: [
        nvmlDeviceGetGpuInstanceProfileInfo,
        nvmlDeviceGetGpuInstanceProfileInfoV,
        nvmlDeviceGetGpuInstanceProfileInfoByIdV,
        nvmlDeviceGetGpuInstancePossiblePlacements_v2,
        nvmlDeviceGetGpuInstanceRemainingCapacity,
        nvmlDeviceGetGpuInstances,
        nvmlDeviceGetGpuInstanceById,
        nvmlGpuInstanceGetInfo,
        nvmlGpuInstanceGetComputeInstanceProfileInfo,
        nvmlGpuInstanceGetComputeInstanceProfileInfoV,
        nvmlGpuInstanceGetComputeInstances,
        nvmlGpuInstanceGetComputeInstanceById,
        nvmlComputeInstanceGetInfo_v2,
    ],
    events: [
        nvmlDeviceGetSupportedEventTypes,
        nvmlDeviceRegisterEvents,
        nvmlEventSetCreate,
        nvmlEventSetWait_v2,
        nvmlEventSetWait,
        nvmlEventSetFree,
    ],
    gpm: [
        nvmlGpmQueryDeviceSupport,
        nvmlGpmQueryIfStreamingEnabled,
        nvmlGpmSetStreamingEnabled,
        nvmlGpmSampleAlloc,
        nvmlGpmSampleFree,
        nvmlGpmSampleGet,
        nvmlGpmMigSampleGet,
        nvmlGpmMetricsGet,
    ],
}

/// The calls that bring NVML up; scenario faults may name them (to model a
/// driver that is not loaded), but the `"*"` wildcard never matches them.
pub const INIT_CALLS: &[&str] = &[
    entry::nvmlInit_v2,
    entry::nvmlInitWithFlags,
    entry::nvmlInit,
];

/// Field IDs that `nvmlDeviceGetFieldValues` serves (v12 numbering), with
/// their `nvml.h` names. Any other ID answers `NVML_ERROR_NOT_SUPPORTED` in
/// its entry.
pub const FIELDS: &[(u32, &str)] = &[
    (1, "NVML_FI_DEV_ECC_CURRENT"),
    (2, "NVML_FI_DEV_ECC_PENDING"),
    (3, "NVML_FI_DEV_ECC_SBE_VOL_TOTAL"),
    (4, "NVML_FI_DEV_ECC_DBE_VOL_TOTAL"),
    (5, "NVML_FI_DEV_ECC_SBE_AGG_TOTAL"),
    (6, "NVML_FI_DEV_ECC_DBE_AGG_TOTAL"),
    (29, "NVML_FI_DEV_RETIRED_SBE"),
    (30, "NVML_FI_DEV_RETIRED_DBE"),
    (31, "NVML_FI_DEV_RETIRED_PENDING"),
    (32, "NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_L0"),
    (33, "NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_L1"),
    (34, "NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_L2"),
    (35, "NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_L3"),
    (36, "NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_L4"),
    (37, "NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_L5"),
    (38, "NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL"),
    (39, "NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_L0"),
    (40, "NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_L1"),
    (41, "NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_L2"),
    (42, "NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_L3"),
    (43, "NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_L4"),
    (44, "NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_L5"),
    (45, "NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL"),
    (46, "NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_L0"),
    (47, "NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_L1"),
    (48, "NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_L2"),
    (49, "NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_L3"),
    (50, "NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_L4"),
    (51, "NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_L5"),
    (52, "NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL"),
    (53, "NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_L0"),
    (54, "NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_L1"),
    (55, "NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_L2"),
    (56, "NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_L3"),
    (57, "NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_L4"),
    (58, "NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_L5"),
    (59, "NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL"),
    (60, "NVML_FI_DEV_NVLINK_BANDWIDTH_C0_L0"),
    (61, "NVML_FI_DEV_NVLINK_BANDWIDTH_C0_L1"),
    (62, "NVML_FI_DEV_NVLINK_BANDWIDTH_C0_L2"),
    (63, "NVML_FI_DEV_NVLINK_BANDWIDTH_C0_L3"),
    (64, "NVML_FI_DEV_NVLINK_BANDWIDTH_C0_L4"),
    (65, "NVML_FI_DEV_NVLINK_BANDWIDTH_C0_L5"),
    (66, "NVML_FI_DEV_NVLINK_BANDWIDTH_C0_TOTAL"),
    (74, "NVML_FI_DEV_PERF_POLICY_POWER"),
    (75, "NVML_FI_DEV_PERF_POLICY_THERMAL"),
    (76, "NVML_FI_DEV_PERF_POLICY_SYNC_BOOST"),
    (77, "NVML_FI_DEV_PERF_POLICY_BOARD_LIMIT"),
    (78, "NVML_FI_DEV_PERF_POLICY_LOW_UTILIZATION"),
    (79, "NVML_FI_DEV_PERF_POLICY_RELIABILITY"),
    (82, "NVML_FI_DEV_MEMORY_TEMP"),
    (83, "NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION"),
    (91, "NVML_FI_DEV_NVLINK_LINK_COUNT"),
    (94, "NVML_FI_DEV_PCIE_REPLAY_COUNTER"),
    (96, "NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_L6"),
    (97, "NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_L7"),
    (98, "NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_L8"),
    (99, "NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_L9"),
    (100, "NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_L10"),
    (101, "NVML_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_L11"),
    (102, "NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_L6"),
    (103, "NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_L7"),
    (104, "NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_L8"),
    (105, "NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_L9"),
    (106, "NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_L10"),
    (107, "NVML_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_L11"),
    (108, "NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_L6"),
    (109, "NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_L7"),
    (110, "NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_L8"),
    (111, "NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_L9"),
    (112, "NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_L10"),
    (113, "NVML_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_L11"),
    (114, "NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_L6"),
    (115, "NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_L7"),
    (116, "NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_L8"),
    (117, "NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_L9"),
    (118, "NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_L10"),
    (119, "NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_L11"),
    (120, "NVML_FI_DEV_NVLINK_BANDWIDTH_C0_L6"),
    (121, "NVML_FI_DEV_NVLINK_BANDWIDTH_C0_L7"),
    (122, "NVML_FI_DEV_NVLINK_BANDWIDTH_C0_L8"),
    (123, "NVML_FI_DEV_NVLINK_BANDWIDTH_C0_L9"),
    (124, "NVML_FI_DEV_NVLINK_BANDWIDTH_C0_L10"),
    (125, "NVML_FI_DEV_NVLINK_BANDWIDTH_C0_L11"),
    (138, "NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX"),
    (139, "NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX"),
    (140, "NVML_FI_DEV_NVLINK_THROUGHPUT_RAW_TX"),
    (141, "NVML_FI_DEV_NVLINK_THROUGHPUT_RAW_RX"),
    (142, "NVML_FI_DEV_REMAPPED_COR"),
    (143, "NVML_FI_DEV_REMAPPED_UNC"),
    (144, "NVML_FI_DEV_REMAPPED_PENDING"),
    (145, "NVML_FI_DEV_REMAPPED_FAILURE"),
    (185, "NVML_FI_DEV_POWER_AVERAGE"),
    (186, "NVML_FI_DEV_POWER_INSTANT"),
    (187, "NVML_FI_DEV_POWER_MIN_LIMIT"),
    (188, "NVML_FI_DEV_POWER_MAX_LIMIT"),
    (189, "NVML_FI_DEV_POWER_DEFAULT_LIMIT"),
    (190, "NVML_FI_DEV_POWER_CURRENT_LIMIT"),
    (191, "NVML_FI_DEV_ENERGY"),
    (197, "NVML_FI_DEV_PCIE_COUNT_TX_BYTES"),
    (198, "NVML_FI_DEV_PCIE_COUNT_RX_BYTES"),
];

/// A GPM metric the fake computes, with the names and unit real NVML reports
/// in `metricInfo`.
#[derive(Debug, Clone, Copy)]
pub struct GpmMetric {
    /// `NVML_GPM_METRIC_*` value.
    pub id: u32,
    /// The `nvml.h` enumerator name.
    pub name: &'static str,
    /// `metricInfo.shortName`.
    pub short_name: &'static CStr,
    /// `metricInfo.longName`.
    pub long_name: &'static CStr,
    /// `metricInfo.unit`.
    pub unit: &'static CStr,
}

/// The GPM metrics the fake computes (from the scenario's `gpm` block).
pub const GPM_METRICS: &[GpmMetric] = &[
    GpmMetric {
        id: 1,
        name: "NVML_GPM_METRIC_GRAPHICS_UTIL",
        short_name: c"gr_util",
        long_name: c"graphics engine utilization",
        unit: c"%",
    },
    GpmMetric {
        id: 2,
        name: "NVML_GPM_METRIC_SM_UTIL",
        short_name: c"sm_util",
        long_name: c"SM utilization",
        unit: c"%",
    },
    GpmMetric {
        id: 3,
        name: "NVML_GPM_METRIC_SM_OCCUPANCY",
        short_name: c"sm_occupancy",
        long_name: c"SM occupancy",
        unit: c"%",
    },
    GpmMetric {
        id: 4,
        name: "NVML_GPM_METRIC_INTEGER_UTIL",
        short_name: c"integer_util",
        long_name: c"integer utilization",
        unit: c"%",
    },
    GpmMetric {
        id: 5,
        name: "NVML_GPM_METRIC_ANY_TENSOR_UTIL",
        short_name: c"any_tensor_util",
        long_name: c"any tensor utilization",
        unit: c"%",
    },
    GpmMetric {
        id: 6,
        name: "NVML_GPM_METRIC_DFMA_TENSOR_UTIL",
        short_name: c"dfma_tensor_util",
        long_name: c"DFMA tensor utilization",
        unit: c"%",
    },
    GpmMetric {
        id: 7,
        name: "NVML_GPM_METRIC_HMMA_TENSOR_UTIL",
        short_name: c"hmma_tensor_util",
        long_name: c"HMMA tensor utilization",
        unit: c"%",
    },
    GpmMetric {
        id: 9,
        name: "NVML_GPM_METRIC_IMMA_TENSOR_UTIL",
        short_name: c"imma_tensor_util",
        long_name: c"IMMA tensor utilization",
        unit: c"%",
    },
    GpmMetric {
        id: 10,
        name: "NVML_GPM_METRIC_DRAM_BW_UTIL",
        short_name: c"dram_bw_util",
        long_name: c"DRAM bandwidth utilization",
        unit: c"%",
    },
    GpmMetric {
        id: 11,
        name: "NVML_GPM_METRIC_FP64_UTIL",
        short_name: c"fp64_util",
        long_name: c"FP64 utilization",
        unit: c"%",
    },
    GpmMetric {
        id: 12,
        name: "NVML_GPM_METRIC_FP32_UTIL",
        short_name: c"fp32_util",
        long_name: c"FP32 utilization",
        unit: c"%",
    },
    GpmMetric {
        id: 13,
        name: "NVML_GPM_METRIC_FP16_UTIL",
        short_name: c"fp16_util",
        long_name: c"FP16 utilization",
        unit: c"%",
    },
    GpmMetric {
        id: 20,
        name: "NVML_GPM_METRIC_PCIE_TX_PER_SEC",
        short_name: c"pcie_tx",
        long_name: c"PCIe transmit throughput",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 21,
        name: "NVML_GPM_METRIC_PCIE_RX_PER_SEC",
        short_name: c"pcie_rx",
        long_name: c"PCIe receive throughput",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 60,
        name: "NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC",
        short_name: c"nvlink_total_rx",
        long_name: c"NvLink read bandwidth for all links",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 61,
        name: "NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC",
        short_name: c"nvlink_total_tx",
        long_name: c"NvLink write bandwidth for all links",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 62,
        name: "NVML_GPM_METRIC_NVLINK_L0_RX_PER_SEC",
        short_name: c"nvlink_l0_rx",
        long_name: c"NvLink read bandwidth for link 0",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 63,
        name: "NVML_GPM_METRIC_NVLINK_L0_TX_PER_SEC",
        short_name: c"nvlink_l0_tx",
        long_name: c"NvLink write bandwidth for link 0",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 64,
        name: "NVML_GPM_METRIC_NVLINK_L1_RX_PER_SEC",
        short_name: c"nvlink_l1_rx",
        long_name: c"NvLink read bandwidth for link 1",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 65,
        name: "NVML_GPM_METRIC_NVLINK_L1_TX_PER_SEC",
        short_name: c"nvlink_l1_tx",
        long_name: c"NvLink write bandwidth for link 1",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 66,
        name: "NVML_GPM_METRIC_NVLINK_L2_RX_PER_SEC",
        short_name: c"nvlink_l2_rx",
        long_name: c"NvLink read bandwidth for link 2",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 67,
        name: "NVML_GPM_METRIC_NVLINK_L2_TX_PER_SEC",
        short_name: c"nvlink_l2_tx",
        long_name: c"NvLink write bandwidth for link 2",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 68,
        name: "NVML_GPM_METRIC_NVLINK_L3_RX_PER_SEC",
        short_name: c"nvlink_l3_rx",
        long_name: c"NvLink read bandwidth for link 3",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 69,
        name: "NVML_GPM_METRIC_NVLINK_L3_TX_PER_SEC",
        short_name: c"nvlink_l3_tx",
        long_name: c"NvLink write bandwidth for link 3",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 70,
        name: "NVML_GPM_METRIC_NVLINK_L4_RX_PER_SEC",
        short_name: c"nvlink_l4_rx",
        long_name: c"NvLink read bandwidth for link 4",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 71,
        name: "NVML_GPM_METRIC_NVLINK_L4_TX_PER_SEC",
        short_name: c"nvlink_l4_tx",
        long_name: c"NvLink write bandwidth for link 4",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 72,
        name: "NVML_GPM_METRIC_NVLINK_L5_RX_PER_SEC",
        short_name: c"nvlink_l5_rx",
        long_name: c"NvLink read bandwidth for link 5",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 73,
        name: "NVML_GPM_METRIC_NVLINK_L5_TX_PER_SEC",
        short_name: c"nvlink_l5_tx",
        long_name: c"NvLink write bandwidth for link 5",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 74,
        name: "NVML_GPM_METRIC_NVLINK_L6_RX_PER_SEC",
        short_name: c"nvlink_l6_rx",
        long_name: c"NvLink read bandwidth for link 6",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 75,
        name: "NVML_GPM_METRIC_NVLINK_L6_TX_PER_SEC",
        short_name: c"nvlink_l6_tx",
        long_name: c"NvLink write bandwidth for link 6",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 76,
        name: "NVML_GPM_METRIC_NVLINK_L7_RX_PER_SEC",
        short_name: c"nvlink_l7_rx",
        long_name: c"NvLink read bandwidth for link 7",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 77,
        name: "NVML_GPM_METRIC_NVLINK_L7_TX_PER_SEC",
        short_name: c"nvlink_l7_tx",
        long_name: c"NvLink write bandwidth for link 7",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 78,
        name: "NVML_GPM_METRIC_NVLINK_L8_RX_PER_SEC",
        short_name: c"nvlink_l8_rx",
        long_name: c"NvLink read bandwidth for link 8",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 79,
        name: "NVML_GPM_METRIC_NVLINK_L8_TX_PER_SEC",
        short_name: c"nvlink_l8_tx",
        long_name: c"NvLink write bandwidth for link 8",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 80,
        name: "NVML_GPM_METRIC_NVLINK_L9_RX_PER_SEC",
        short_name: c"nvlink_l9_rx",
        long_name: c"NvLink read bandwidth for link 9",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 81,
        name: "NVML_GPM_METRIC_NVLINK_L9_TX_PER_SEC",
        short_name: c"nvlink_l9_tx",
        long_name: c"NvLink write bandwidth for link 9",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 82,
        name: "NVML_GPM_METRIC_NVLINK_L10_RX_PER_SEC",
        short_name: c"nvlink_l10_rx",
        long_name: c"NvLink read bandwidth for link 10",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 83,
        name: "NVML_GPM_METRIC_NVLINK_L10_TX_PER_SEC",
        short_name: c"nvlink_l10_tx",
        long_name: c"NvLink write bandwidth for link 10",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 84,
        name: "NVML_GPM_METRIC_NVLINK_L11_RX_PER_SEC",
        short_name: c"nvlink_l11_rx",
        long_name: c"NvLink read bandwidth for link 11",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 85,
        name: "NVML_GPM_METRIC_NVLINK_L11_TX_PER_SEC",
        short_name: c"nvlink_l11_tx",
        long_name: c"NvLink write bandwidth for link 11",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 86,
        name: "NVML_GPM_METRIC_NVLINK_L12_RX_PER_SEC",
        short_name: c"nvlink_l12_rx",
        long_name: c"NvLink read bandwidth for link 12",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 87,
        name: "NVML_GPM_METRIC_NVLINK_L12_TX_PER_SEC",
        short_name: c"nvlink_l12_tx",
        long_name: c"NvLink write bandwidth for link 12",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 88,
        name: "NVML_GPM_METRIC_NVLINK_L13_RX_PER_SEC",
        short_name: c"nvlink_l13_rx",
        long_name: c"NvLink read bandwidth for link 13",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 89,
        name: "NVML_GPM_METRIC_NVLINK_L13_TX_PER_SEC",
        short_name: c"nvlink_l13_tx",
        long_name: c"NvLink write bandwidth for link 13",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 90,
        name: "NVML_GPM_METRIC_NVLINK_L14_RX_PER_SEC",
        short_name: c"nvlink_l14_rx",
        long_name: c"NvLink read bandwidth for link 14",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 91,
        name: "NVML_GPM_METRIC_NVLINK_L14_TX_PER_SEC",
        short_name: c"nvlink_l14_tx",
        long_name: c"NvLink write bandwidth for link 14",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 92,
        name: "NVML_GPM_METRIC_NVLINK_L15_RX_PER_SEC",
        short_name: c"nvlink_l15_rx",
        long_name: c"NvLink read bandwidth for link 15",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 93,
        name: "NVML_GPM_METRIC_NVLINK_L15_TX_PER_SEC",
        short_name: c"nvlink_l15_tx",
        long_name: c"NvLink write bandwidth for link 15",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 94,
        name: "NVML_GPM_METRIC_NVLINK_L16_RX_PER_SEC",
        short_name: c"nvlink_l16_rx",
        long_name: c"NvLink read bandwidth for link 16",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 95,
        name: "NVML_GPM_METRIC_NVLINK_L16_TX_PER_SEC",
        short_name: c"nvlink_l16_tx",
        long_name: c"NvLink write bandwidth for link 16",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 96,
        name: "NVML_GPM_METRIC_NVLINK_L17_RX_PER_SEC",
        short_name: c"nvlink_l17_rx",
        long_name: c"NvLink read bandwidth for link 17",
        unit: c"MiB/sec",
    },
    GpmMetric {
        id: 97,
        name: "NVML_GPM_METRIC_NVLINK_L17_TX_PER_SEC",
        short_name: c"nvlink_l17_tx",
        long_name: c"NvLink write bandwidth for link 17",
        unit: c"MiB/sec",
    },
];

/// NVML return codes: value, `NVML_ERROR_` suffix (scenario spelling) and the
/// text `nvmlErrorString` returns for it.
pub const RETURN_CODES: &[(u32, &str, &CStr)] = &[
    (0, "SUCCESS", c"Success"),
    (1, "UNINITIALIZED", c"Uninitialized"),
    (2, "INVALID_ARGUMENT", c"Invalid Argument"),
    (3, "NOT_SUPPORTED", c"Not Supported"),
    (4, "NO_PERMISSION", c"Insufficient Permissions"),
    (5, "ALREADY_INITIALIZED", c"Already Initialized"),
    (6, "NOT_FOUND", c"Not Found"),
    (7, "INSUFFICIENT_SIZE", c"Insufficient Size"),
    (8, "INSUFFICIENT_POWER", c"Insufficient External Power"),
    (9, "DRIVER_NOT_LOADED", c"Driver Not Loaded"),
    (10, "TIMEOUT", c"Timeout"),
    (11, "IRQ_ISSUE", c"Interrupt Request Issue"),
    (12, "LIBRARY_NOT_FOUND", c"NVML Shared Library Not Found"),
    (13, "FUNCTION_NOT_FOUND", c"Function Not Found"),
    (14, "CORRUPTED_INFOROM", c"Corrupted infoROM"),
    (15, "GPU_IS_LOST", c"GPU is lost"),
    (16, "RESET_REQUIRED", c"GPU requires reset"),
    (
        17,
        "OPERATING_SYSTEM",
        c"GPU access blocked by the operating system",
    ),
    (
        18,
        "LIB_RM_VERSION_MISMATCH",
        c"Driver/library version mismatch",
    ),
    (19, "IN_USE", c"In use by another client"),
    (20, "MEMORY", c"Insufficient Memory"),
    (21, "NO_DATA", c"No data"),
    (
        22,
        "VGPU_ECC_NOT_SUPPORTED",
        c"The requested vgpu operation is not available on target device, because ECC is enabled",
    ),
    (23, "INSUFFICIENT_RESOURCES", c"Insufficient Resources"),
    (24, "FREQ_NOT_SUPPORTED", c"Frequency not supported"),
    (
        25,
        "ARGUMENT_VERSION_MISMATCH",
        c"Argument version mismatch",
    ),
    (26, "DEPRECATED", c"Deprecated"),
    (27, "NOT_READY", c"Not Ready"),
    (28, "GPU_NOT_FOUND", c"GPU not found"),
    (29, "INVALID_STATE", c"Invalid state"),
    (30, "RESET_TYPE_NOT_SUPPORTED", c"Reset type not supported"),
    (999, "UNKNOWN", c"Unknown Error"),
];

/// The return code for a scenario error name: `"NO_PERMISSION"` or
/// `"NVML_ERROR_NO_PERMISSION"` (case-insensitive).
pub fn return_code(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let suffix = upper.strip_prefix("NVML_ERROR_").unwrap_or(&upper);
    RETURN_CODES
        .iter()
        .find(|(_, n, _)| *n == suffix)
        .map(|(code, _, _)| *code)
}

/// The `nvmlErrorString` text for a return code.
pub fn error_text(code: u32) -> &'static CStr {
    RETURN_CODES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map_or(c"Unknown Error", |(_, _, text)| text)
}

/// The field ID for an `NVML_FI_DEV_*` name the fake serves.
pub fn field_id(name: &str) -> Option<u32> {
    FIELDS.iter().find(|(_, n)| *n == name).map(|(id, _)| *id)
}

/// The field name for a served field ID.
pub fn field_name(id: u32) -> Option<&'static str> {
    FIELDS.iter().find(|(i, _)| *i == id).map(|(_, n)| *n)
}

/// The served GPM metric with this ID.
pub fn gpm_metric(id: u32) -> Option<&'static GpmMetric> {
    GPM_METRICS.iter().find(|m| m.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every `extern "C" fn nvml…` definition in the FFI sources, with the
    /// `entry::` name its body first uses.
    fn defined_exports() -> Vec<(String, String)> {
        let sources = [
            include_str!("ffi/system.rs"),
            include_str!("ffi/device.rs"),
            include_str!("ffi/health.rs"),
            include_str!("ffi/processes.rs"),
            include_str!("ffi/mig.rs"),
            include_str!("ffi/instances.rs"),
            include_str!("ffi/events.rs"),
            include_str!("ffi/gpm.rs"),
        ];
        let ident = |s: &str| -> String {
            s.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        };
        let mut out = Vec::new();
        for src in sources {
            let mut rest = src;
            while let Some(at) = rest.find("extern \"C\" fn nvml") {
                rest = &rest[at + "extern \"C\" fn ".len()..];
                let name = ident(rest);
                // The name the call is counted, faulted and delayed under.
                let body = &rest[rest.find('{').unwrap_or(0)..];
                let used = body
                    .find("entry::")
                    .map(|at| ident(&body[at + "entry::".len()..]))
                    .unwrap_or_default();
                out.push((name, used));
            }
        }
        out
    }

    #[test]
    fn the_table_lists_every_export_once() {
        let defined: BTreeSet<String> = defined_exports().into_iter().map(|(n, _)| n).collect();
        let listed: BTreeSet<String> = EXPORTED.iter().map(|n| n.to_string()).collect();
        assert_eq!(listed.len(), EXPORTED.len(), "a name is listed twice");
        assert_eq!(defined, listed, "entry_points! and the definitions differ");
    }

    #[test]
    fn each_export_reports_under_its_own_name() {
        for (name, used) in defined_exports() {
            assert_eq!(name, used, "{name} counts/faults under entry::{used}");
        }
    }

    #[test]
    fn return_codes_parse() {
        assert_eq!(return_code("NO_PERMISSION"), Some(4));
        assert_eq!(return_code("nvml_error_gpu_is_lost"), Some(15));
        assert_eq!(return_code("UNKNOWN"), Some(999));
        assert_eq!(return_code("NOPE"), None);
        assert_eq!(error_text(3), c"Not Supported");
        assert_eq!(error_text(12345), c"Unknown Error");
    }

    #[test]
    fn field_table_matches_bindings() {
        use nvml_wrapper_sys::bindings::field_id as b;
        assert_eq!(
            field_id("NVML_FI_DEV_MEMORY_TEMP"),
            Some(b::NVML_FI_DEV_MEMORY_TEMP)
        );
        assert_eq!(
            field_id("NVML_FI_DEV_REMAPPED_FAILURE"),
            Some(b::NVML_FI_DEV_REMAPPED_FAILURE)
        );
        assert_eq!(
            field_id("NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_L11"),
            Some(b::NVML_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_L11)
        );
        assert_eq!(
            field_id("NVML_FI_DEV_POWER_INSTANT"),
            Some(b::NVML_FI_DEV_POWER_INSTANT)
        );
        assert_eq!(
            field_id("NVML_FI_DEV_PCIE_COUNT_RX_BYTES"),
            Some(b::NVML_FI_DEV_PCIE_COUNT_RX_BYTES)
        );
        assert_eq!(
            field_id("NVML_FI_DEV_NVLINK_THROUGHPUT_RAW_RX"),
            Some(b::NVML_FI_DEV_NVLINK_THROUGHPUT_RAW_RX)
        );
        assert_eq!(
            gpm_metric(
                nvml_wrapper_sys::bindings::nvmlGpmMetricId_t_NVML_GPM_METRIC_PCIE_RX_PER_SEC
            )
            .map(|m| m.name),
            Some("NVML_GPM_METRIC_PCIE_RX_PER_SEC")
        );
    }
}
