//! The metric catalog: every field Algalon can export, declared once.
//!
//! Each row names the DCGM field (byte for byte as dcgm-exporter exports it),
//! its natural Prometheus type, DCGM's unit, a help text and how the sampler
//! reads it from NVML. The collectors-CSV loader, the sampler, the encoder and
//! the README's metric list all read this one table.
//!
//! Values are kept in DCGM's units (MHz, °C, W, mJ, MiB, %, ns), as existing
//! dcgm-exporter dashboards and alerts expect them.

use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, InfoRom, MemoryError, PcieUtilCounter, PerformancePolicy, RetirementCause,
};
use nvml_wrapper::enums::gpm::GpmMetricId;

use nvml_wrapper_sys_fields as fi;
use serde::Serialize;

/// NVML field-value ids used by the catalog (`nvmlDeviceGetFieldValues`).
///
/// Kept here rather than taken from `nvml-wrapper-sys` so the core does not
/// depend on raw bindings for a handful of stable numbers.
mod nvml_wrapper_sys_fields {
    pub const MEMORY_TEMP: u32 = 82;
    pub const NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL: u32 = 38;
    pub const NVLINK_CRC_DATA_ERROR_COUNT_TOTAL: u32 = 45;
    pub const NVLINK_REPLAY_ERROR_COUNT_TOTAL: u32 = 52;
    pub const NVLINK_RECOVERY_ERROR_COUNT_TOTAL: u32 = 59;
    pub const NVLINK_BANDWIDTH_C0_TOTAL: u32 = 66;
    pub const REMAPPED_COR: u32 = 142;
    pub const REMAPPED_UNC: u32 = 143;
    pub const REMAPPED_PENDING: u32 = 144;
    pub const REMAPPED_FAILURE: u32 = 145;
    pub const ECC_CURRENT: u32 = 1;
    pub const ECC_PENDING: u32 = 2;
    pub const POWER_INSTANT: u32 = 186;
    pub const POWER_LIMIT_MIN: u32 = 187;
    pub const POWER_LIMIT_MAX: u32 = 188;
    pub const POWER_LIMIT_DEFAULT: u32 = 189;
    pub const PCIE_COUNT_TX_BYTES: u32 = 197;
    pub const PCIE_COUNT_RX_BYTES: u32 = 198;
    /// `NVML_FI_DEV_NVLINK_BANDWIDTH_C0_L0` … `_L5`; links 6 … 11 are 120 … 125.
    pub const NVLINK_BANDWIDTH_C0_L0: u32 = 60;
    pub const NVLINK_BANDWIDTH_C0_L6: u32 = 120;
}

/// The Prometheus type a field naturally has (the CSV may say otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A monotonically increasing total.
    Counter,
    /// A static string, exported as a label on every series of the GPU.
    Label,
}

/// Which part of `nvmlDeviceGetMemoryInfo_v2` a field reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemoryPart {
    Free,
    Used,
    Reserved,
    Total,
    /// DCGM's `Used / (Total - Reserved)`, 0.0 … 1.0.
    UsedRatio,
}

/// Where a label-type field's text comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LabelSource {
    DriverVersion,
    NvmlVersion,
    Brand,
    Serial,
    InfoRom(InfoRom),
    InfoRomImage,
    Vbios,
}

/// How the sampler reads a field from NVML. Readings that share one NVML call
/// (memory info, utilization, field values, GPM) are fetched once per sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Source {
    Clock(Clock),
    MaxClock(Clock),
    GpuTemp,
    PowerUsage,
    TotalEnergy,
    PcieReplay,
    GpuUtil,
    MemCopyUtil,
    EncUtil,
    DecUtil,
    LastXid,
    Violation(PerformancePolicy),
    Memory(MemoryPart),
    Ecc(MemoryError, EccCounter),
    RetiredPages(RetirementCause),
    RetiredPending,
    /// `nvmlDeviceGetFieldValues` with this field id.
    FieldValue(u32),
    /// `nvmlDeviceGetFieldValues` with this field id, times a factor (NVML's
    /// mW into DCGM's W).
    FieldValueScaled(u32, f64),
    PersistenceMode,
    MigMode,
    /// NVML GPM metric, between two samples one interval apart; `scale`
    /// converts NVML's unit (percent) into DCGM's (ratio).
    Gpm(GpmMetricId, f64),
    FanSpeed,
    PState,
    PowerLimit,
    EnforcedPowerLimit,
    ThrottleReasons,
    PcieThroughput(PcieUtilCounter),
    PcieLinkGen,
    PcieLinkWidth,
    Label(LabelSource),
}

impl Source {
    /// The NVML C function behind this source, for logs and error counts.
    pub(crate) fn call_name(self) -> &'static str {
        match self {
            Source::Clock(_) => "nvmlDeviceGetClockInfo",
            Source::MaxClock(_) => "nvmlDeviceGetMaxClockInfo",
            Source::GpuTemp => "nvmlDeviceGetTemperature",
            Source::PowerUsage => "nvmlDeviceGetPowerUsage",
            Source::TotalEnergy => "nvmlDeviceGetTotalEnergyConsumption",
            Source::PcieReplay => "nvmlDeviceGetPcieReplayCounter",
            Source::GpuUtil | Source::MemCopyUtil => "nvmlDeviceGetUtilizationRates",
            Source::EncUtil => "nvmlDeviceGetEncoderUtilization",
            Source::DecUtil => "nvmlDeviceGetDecoderUtilization",
            Source::LastXid => "nvmlDeviceRegisterEvents",
            Source::Violation(_) => "nvmlDeviceGetViolationStatus",
            Source::Memory(_) => "nvmlDeviceGetMemoryInfo_v2",
            Source::Ecc(..) => "nvmlDeviceGetTotalEccErrors",
            Source::RetiredPages(_) => "nvmlDeviceGetRetiredPages_v2",
            Source::RetiredPending => "nvmlDeviceGetRetiredPagesPendingStatus",
            Source::FieldValue(_) | Source::FieldValueScaled(..) => "nvmlDeviceGetFieldValues",
            Source::PersistenceMode => "nvmlDeviceGetPersistenceMode",
            Source::MigMode => "nvmlDeviceGetMigMode",
            Source::Gpm(..) => "nvmlGpmMetricsGet",
            Source::FanSpeed => "nvmlDeviceGetFanSpeed_v2",
            Source::PState => "nvmlDeviceGetPerformanceState",
            Source::PowerLimit => "nvmlDeviceGetPowerManagementLimit",
            Source::EnforcedPowerLimit => "nvmlDeviceGetEnforcedPowerLimit",
            Source::ThrottleReasons => "nvmlDeviceGetCurrentClocksThrottleReasons",
            Source::PcieThroughput(_) => "nvmlDeviceGetPcieThroughput",
            Source::PcieLinkGen => "nvmlDeviceGetCurrPcieLinkGeneration",
            Source::PcieLinkWidth => "nvmlDeviceGetCurrPcieLinkWidth",
            Source::Label(LabelSource::DriverVersion) => "nvmlSystemGetDriverVersion",
            Source::Label(LabelSource::NvmlVersion) => "nvmlSystemGetNVMLVersion",
            Source::Label(LabelSource::Brand) => "nvmlDeviceGetBrand",
            Source::Label(LabelSource::Serial) => "nvmlDeviceGetSerial",
            Source::Label(LabelSource::InfoRom(_)) => "nvmlDeviceGetInforomVersion",
            Source::Label(LabelSource::InfoRomImage) => "nvmlDeviceGetInforomImageVersion",
            Source::Label(LabelSource::Vbios) => "nvmlDeviceGetVbiosVersion",
        }
    }
}

/// One row of the catalog.
#[derive(Debug)]
pub struct FieldDef {
    /// The field's identity.
    pub field: Field,
    /// The exported series name, identical to DCGM's field name.
    pub name: &'static str,
    /// The field's natural Prometheus type.
    pub kind: Kind,
    /// DCGM's unit, for documentation (`MHz`, `C`, `W`, `mJ`, `MiB`, `%`, …).
    pub unit: &'static str,
    /// Help text used when the collectors CSV gives none.
    pub help: &'static str,
    pub(crate) source: Source,
}

macro_rules! catalog {
    ($( $variant:ident => $name:literal, $kind:ident, $unit:literal, $source:expr, $help:literal; )*) => {
        /// A field Algalon can read and export. See [`CATALOG`] for names, units and help.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[non_exhaustive]
        pub enum Field {
            $( #[doc = $help] $variant, )*
        }

        /// Every field, in [`Field`] order: `CATALOG[f as usize].field == f`.
        pub static CATALOG: &[FieldDef] = &[
            $( FieldDef {
                field: Field::$variant,
                name: $name,
                kind: Kind::$kind,
                unit: $unit,
                help: $help,
                source: $source,
            }, )*
        ];
    };
}

use Source as S;

/// NVML GPM reports PCIe and NVLink traffic in MiB/s; DCGM's fields are bytes/s.
const MIB: f64 = 1024.0 * 1024.0;

catalog! {
    // Clocks
    SmClock => "DCGM_FI_DEV_SM_CLOCK", Gauge, "MHz", S::Clock(Clock::SM), "SM clock frequency (in MHz).";
    MemClock => "DCGM_FI_DEV_MEM_CLOCK", Gauge, "MHz", S::Clock(Clock::Memory), "Memory clock frequency (in MHz).";
    MaxSmClock => "DCGM_FI_DEV_MAX_SM_CLOCK", Gauge, "MHz", S::MaxClock(Clock::SM), "Maximum supported SM clock (in MHz).";
    MaxMemClock => "DCGM_FI_DEV_MAX_MEM_CLOCK", Gauge, "MHz", S::MaxClock(Clock::Memory), "Maximum supported memory clock (in MHz).";
    VideoClock => "DCGM_FI_DEV_VIDEO_CLOCK", Gauge, "MHz", S::Clock(Clock::Video), "Video encoder/decoder clock frequency (in MHz).";
    MaxVideoClock => "DCGM_FI_DEV_MAX_VIDEO_CLOCK", Gauge, "MHz", S::MaxClock(Clock::Video), "Maximum supported video encoder/decoder clock (in MHz).";
    // Temperature
    MemoryTemp => "DCGM_FI_DEV_MEMORY_TEMP", Gauge, "C", S::FieldValue(fi::MEMORY_TEMP), "Memory temperature (in C).";
    GpuTemp => "DCGM_FI_DEV_GPU_TEMP", Gauge, "C", S::GpuTemp, "GPU temperature (in C).";
    // Power
    PowerUsage => "DCGM_FI_DEV_POWER_USAGE", Gauge, "W", S::PowerUsage, "Power draw (in W).";
    TotalEnergyConsumption => "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", Counter, "mJ", S::TotalEnergy, "Total energy consumption since boot (in mJ).";
    PowerMgmtLimit => "DCGM_FI_DEV_POWER_MGMT_LIMIT", Gauge, "W", S::PowerLimit, "Power management limit (in W).";
    EnforcedPowerLimit => "DCGM_FI_DEV_ENFORCED_POWER_LIMIT", Gauge, "W", S::EnforcedPowerLimit, "Effective power limit that the driver enforces (in W).";
    PowerMgmtLimitMin => "DCGM_FI_DEV_POWER_MGMT_LIMIT_MIN", Gauge, "W", S::FieldValueScaled(fi::POWER_LIMIT_MIN, 0.001), "Minimum power management limit (in W).";
    PowerMgmtLimitMax => "DCGM_FI_DEV_POWER_MGMT_LIMIT_MAX", Gauge, "W", S::FieldValueScaled(fi::POWER_LIMIT_MAX, 0.001), "Maximum power management limit (in W).";
    PowerMgmtLimitDef => "DCGM_FI_DEV_POWER_MGMT_LIMIT_DEF", Gauge, "W", S::FieldValueScaled(fi::POWER_LIMIT_DEFAULT, 0.001), "Default power management limit (in W).";
    PowerUsageInstant => "DCGM_FI_DEV_POWER_USAGE_INSTANT", Gauge, "W", S::FieldValueScaled(fi::POWER_INSTANT, 0.001), "Current instantaneous power usage of the device (in W).";
    // PCIe
    PcieReplayCounter => "DCGM_FI_DEV_PCIE_REPLAY_COUNTER", Counter, "", S::PcieReplay, "Total number of PCIe retries.";
    PcieTxThroughput => "DCGM_FI_DEV_PCIE_TX_THROUGHPUT", Gauge, "KB/s", S::PcieThroughput(PcieUtilCounter::Send), "PCIe TX throughput (in KB/s).";
    PcieRxThroughput => "DCGM_FI_DEV_PCIE_RX_THROUGHPUT", Gauge, "KB/s", S::PcieThroughput(PcieUtilCounter::Receive), "PCIe RX throughput (in KB/s).";
    PcieLinkGen => "DCGM_FI_DEV_PCIE_LINK_GEN", Gauge, "", S::PcieLinkGen, "Current PCIe link generation.";
    PcieLinkWidth => "DCGM_FI_DEV_PCIE_LINK_WIDTH", Gauge, "", S::PcieLinkWidth, "Current PCIe link width (lanes).";
    PcieTxBytesTotal => "DCGM_FI_PROF_PCIE_TX_BYTES_TOTAL", Counter, "B", S::FieldValue(fi::PCIE_COUNT_TX_BYTES), "Cumulative counter of PCIe TX traffic in bytes.";
    PcieRxBytesTotal => "DCGM_FI_PROF_PCIE_RX_BYTES_TOTAL", Counter, "B", S::FieldValue(fi::PCIE_COUNT_RX_BYTES), "Cumulative counter of PCIe RX traffic in bytes.";
    // Utilization
    GpuUtil => "DCGM_FI_DEV_GPU_UTIL", Gauge, "%", S::GpuUtil, "GPU utilization (in %).";
    MemCopyUtil => "DCGM_FI_DEV_MEM_COPY_UTIL", Gauge, "%", S::MemCopyUtil, "Memory utilization (in %).";
    EncUtil => "DCGM_FI_DEV_ENC_UTIL", Gauge, "%", S::EncUtil, "Encoder utilization (in %).";
    DecUtil => "DCGM_FI_DEV_DEC_UTIL", Gauge, "%", S::DecUtil, "Decoder utilization (in %).";
    FanSpeed => "DCGM_FI_DEV_FAN_SPEED", Gauge, "%", S::FanSpeed, "Fan speed (in % of maximum).";
    PState => "DCGM_FI_DEV_PSTATE", Gauge, "", S::PState, "Performance state (P-state) 0-15; 0 is the highest.";
    // Errors and violations
    XidErrors => "DCGM_FI_DEV_XID_ERRORS", Gauge, "", S::LastXid, "Value of the last XID error encountered.";
    ClockThrottleReasons => "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", Gauge, "", S::ThrottleReasons, "Current clock throttle reasons (bitmask of nvmlClocksEventReason).";
    PowerViolation => "DCGM_FI_DEV_POWER_VIOLATION", Counter, "ns", S::Violation(PerformancePolicy::Power), "Throttling duration due to power constraints (in ns).";
    ThermalViolation => "DCGM_FI_DEV_THERMAL_VIOLATION", Counter, "ns", S::Violation(PerformancePolicy::Thermal), "Throttling duration due to thermal constraints (in ns).";
    SyncBoostViolation => "DCGM_FI_DEV_SYNC_BOOST_VIOLATION", Counter, "ns", S::Violation(PerformancePolicy::SyncBoost), "Throttling duration due to sync-boost constraints (in ns).";
    BoardLimitViolation => "DCGM_FI_DEV_BOARD_LIMIT_VIOLATION", Counter, "ns", S::Violation(PerformancePolicy::BoardLimit), "Throttling duration due to board limit constraints (in ns).";
    LowUtilViolation => "DCGM_FI_DEV_LOW_UTIL_VIOLATION", Counter, "ns", S::Violation(PerformancePolicy::LowUtilization), "Throttling duration due to low utilization (in ns).";
    ReliabilityViolation => "DCGM_FI_DEV_RELIABILITY_VIOLATION", Counter, "ns", S::Violation(PerformancePolicy::Reliability), "Throttling duration due to reliability constraints (in ns).";
    // Memory usage
    FbTotal => "DCGM_FI_DEV_FB_TOTAL", Gauge, "MiB", S::Memory(MemoryPart::Total), "Framebuffer memory total (in MiB).";
    FbFree => "DCGM_FI_DEV_FB_FREE", Gauge, "MiB", S::Memory(MemoryPart::Free), "Framebuffer memory free (in MiB).";
    FbUsed => "DCGM_FI_DEV_FB_USED", Gauge, "MiB", S::Memory(MemoryPart::Used), "Framebuffer memory used (in MiB).";
    FbReserved => "DCGM_FI_DEV_FB_RESERVED", Gauge, "MiB", S::Memory(MemoryPart::Reserved), "Framebuffer memory reserved (in MiB).";
    FbUsedPercent => "DCGM_FI_DEV_FB_USED_PERCENT", Gauge, "ratio", S::Memory(MemoryPart::UsedRatio), "Ratio of framebuffer used: Used/(Total - Reserved) from 0.0 to 1.0.";
    // Modes
    PersistenceMode => "DCGM_FI_DEV_PERSISTENCE_MODE", Gauge, "", S::PersistenceMode, "Persistence mode (1 enabled; 0 disabled).";
    MigMode => "DCGM_FI_DEV_MIG_MODE", Gauge, "", S::MigMode, "MIG mode (1 enabled; 0 disabled).";
    // ECC
    EccCurrent => "DCGM_FI_DEV_ECC_CURRENT", Gauge, "", S::FieldValue(fi::ECC_CURRENT), "Current ECC mode (1 enabled; 0 disabled).";
    EccPending => "DCGM_FI_DEV_ECC_PENDING", Gauge, "", S::FieldValue(fi::ECC_PENDING), "Pending ECC mode after the next reboot (1 enabled; 0 disabled).";
    EccSbeVolTotal => "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", Counter, "", S::Ecc(MemoryError::Corrected, EccCounter::Volatile), "Total number of single-bit volatile ECC errors.";
    EccDbeVolTotal => "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", Counter, "", S::Ecc(MemoryError::Uncorrected, EccCounter::Volatile), "Total number of double-bit volatile ECC errors.";
    EccSbeAggTotal => "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", Counter, "", S::Ecc(MemoryError::Corrected, EccCounter::Aggregate), "Total number of single-bit persistent ECC errors.";
    EccDbeAggTotal => "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", Counter, "", S::Ecc(MemoryError::Uncorrected, EccCounter::Aggregate), "Total number of double-bit persistent ECC errors.";
    // Retired pages
    RetiredSbe => "DCGM_FI_DEV_RETIRED_SBE", Counter, "", S::RetiredPages(RetirementCause::MultipleSingleBitEccErrors), "Total number of retired pages due to single-bit errors.";
    RetiredDbe => "DCGM_FI_DEV_RETIRED_DBE", Counter, "", S::RetiredPages(RetirementCause::DoubleBitEccError), "Total number of retired pages due to double-bit errors.";
    RetiredPending => "DCGM_FI_DEV_RETIRED_PENDING", Counter, "", S::RetiredPending, "Total number of pages pending retirement.";
    // NVLink
    NvlinkCrcFlitErrorCountTotal => "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", Counter, "", S::FieldValue(fi::NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL), "Total number of NVLink flow-control CRC errors.";
    NvlinkCrcDataErrorCountTotal => "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL", Counter, "", S::FieldValue(fi::NVLINK_CRC_DATA_ERROR_COUNT_TOTAL), "Total number of NVLink data CRC errors.";
    NvlinkReplayErrorCountTotal => "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL", Counter, "", S::FieldValue(fi::NVLINK_REPLAY_ERROR_COUNT_TOTAL), "Total number of NVLink retries.";
    NvlinkRecoveryErrorCountTotal => "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL", Counter, "", S::FieldValue(fi::NVLINK_RECOVERY_ERROR_COUNT_TOTAL), "Total number of NVLink recovery errors.";
    NvlinkBandwidthTotal => "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", Counter, "", S::FieldValue(fi::NVLINK_BANDWIDTH_C0_TOTAL), "Total number of NVLink bandwidth counters for all lanes.";
    NvlinkBandwidthL0 => "DCGM_FI_DEV_NVLINK_BANDWIDTH_L0", Counter, "", S::FieldValue(fi::NVLINK_BANDWIDTH_C0_L0), "NVLink bandwidth counter of link 0 (counter set 0).";
    NvlinkBandwidthL1 => "DCGM_FI_DEV_NVLINK_BANDWIDTH_L1", Counter, "", S::FieldValue(fi::NVLINK_BANDWIDTH_C0_L0 + 1), "NVLink bandwidth counter of link 1 (counter set 0).";
    NvlinkBandwidthL2 => "DCGM_FI_DEV_NVLINK_BANDWIDTH_L2", Counter, "", S::FieldValue(fi::NVLINK_BANDWIDTH_C0_L0 + 2), "NVLink bandwidth counter of link 2 (counter set 0).";
    NvlinkBandwidthL3 => "DCGM_FI_DEV_NVLINK_BANDWIDTH_L3", Counter, "", S::FieldValue(fi::NVLINK_BANDWIDTH_C0_L0 + 3), "NVLink bandwidth counter of link 3 (counter set 0).";
    NvlinkBandwidthL4 => "DCGM_FI_DEV_NVLINK_BANDWIDTH_L4", Counter, "", S::FieldValue(fi::NVLINK_BANDWIDTH_C0_L0 + 4), "NVLink bandwidth counter of link 4 (counter set 0).";
    NvlinkBandwidthL5 => "DCGM_FI_DEV_NVLINK_BANDWIDTH_L5", Counter, "", S::FieldValue(fi::NVLINK_BANDWIDTH_C0_L0 + 5), "NVLink bandwidth counter of link 5 (counter set 0).";
    NvlinkBandwidthL6 => "DCGM_FI_DEV_NVLINK_BANDWIDTH_L6", Counter, "", S::FieldValue(fi::NVLINK_BANDWIDTH_C0_L6), "NVLink bandwidth counter of link 6 (counter set 0).";
    NvlinkBandwidthL7 => "DCGM_FI_DEV_NVLINK_BANDWIDTH_L7", Counter, "", S::FieldValue(fi::NVLINK_BANDWIDTH_C0_L6 + 1), "NVLink bandwidth counter of link 7 (counter set 0).";
    NvlinkBandwidthL8 => "DCGM_FI_DEV_NVLINK_BANDWIDTH_L8", Counter, "", S::FieldValue(fi::NVLINK_BANDWIDTH_C0_L6 + 2), "NVLink bandwidth counter of link 8 (counter set 0).";
    NvlinkBandwidthL9 => "DCGM_FI_DEV_NVLINK_BANDWIDTH_L9", Counter, "", S::FieldValue(fi::NVLINK_BANDWIDTH_C0_L6 + 3), "NVLink bandwidth counter of link 9 (counter set 0).";
    NvlinkBandwidthL10 => "DCGM_FI_DEV_NVLINK_BANDWIDTH_L10", Counter, "", S::FieldValue(fi::NVLINK_BANDWIDTH_C0_L6 + 4), "NVLink bandwidth counter of link 10 (counter set 0).";
    NvlinkBandwidthL11 => "DCGM_FI_DEV_NVLINK_BANDWIDTH_L11", Counter, "", S::FieldValue(fi::NVLINK_BANDWIDTH_C0_L6 + 5), "NVLink bandwidth counter of link 11 (counter set 0).";
    // Remapped rows
    UncorrectableRemappedRows => "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", Counter, "", S::FieldValue(fi::REMAPPED_UNC), "Number of remapped rows for uncorrectable errors";
    CorrectableRemappedRows => "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", Counter, "", S::FieldValue(fi::REMAPPED_COR), "Number of remapped rows for correctable errors";
    RowRemapPending => "DCGM_FI_DEV_ROW_REMAP_PENDING", Gauge, "", S::FieldValue(fi::REMAPPED_PENDING), "Whether a row remapping is pending (1) or not (0)";
    RowRemapFailure => "DCGM_FI_DEV_ROW_REMAP_FAILURE", Gauge, "", S::FieldValue(fi::REMAPPED_FAILURE), "Whether remapping of rows has failed";
    // Static configuration, exported as labels
    DriverVersion => "DCGM_FI_DRIVER_VERSION", Label, "", S::Label(LabelSource::DriverVersion), "Driver Version";
    NvmlVersion => "DCGM_FI_NVML_VERSION", Label, "", S::Label(LabelSource::NvmlVersion), "NVML Version";
    Brand => "DCGM_FI_DEV_BRAND", Label, "", S::Label(LabelSource::Brand), "Device Brand";
    Serial => "DCGM_FI_DEV_SERIAL", Label, "", S::Label(LabelSource::Serial), "Device Serial Number";
    OemInforomVer => "DCGM_FI_DEV_OEM_INFOROM_VER", Label, "", S::Label(LabelSource::InfoRom(InfoRom::OEM)), "OEM inforom version";
    EccInforomVer => "DCGM_FI_DEV_ECC_INFOROM_VER", Label, "", S::Label(LabelSource::InfoRom(InfoRom::ECC)), "ECC inforom version";
    PowerInforomVer => "DCGM_FI_DEV_POWER_INFOROM_VER", Label, "", S::Label(LabelSource::InfoRom(InfoRom::Power)), "Power management object inforom version";
    InforomImageVer => "DCGM_FI_DEV_INFOROM_IMAGE_VER", Label, "", S::Label(LabelSource::InfoRomImage), "Inforom image version";
    VbiosVersion => "DCGM_FI_DEV_VBIOS_VERSION", Label, "", S::Label(LabelSource::Vbios), "VBIOS version of the device";
    // Datacenter profiling, from NVML GPM (Hopper and newer)
    ProfGrEngineActive => "DCGM_FI_PROF_GR_ENGINE_ACTIVE", Gauge, "ratio", S::Gpm(GpmMetricId::GraphicsUtil, 0.01), "Ratio of time the graphics engine is active.";
    ProfSmActive => "DCGM_FI_PROF_SM_ACTIVE", Gauge, "ratio", S::Gpm(GpmMetricId::SmUtil, 0.01), "The ratio of cycles an SM has at least 1 warp assigned.";
    ProfSmOccupancy => "DCGM_FI_PROF_SM_OCCUPANCY", Gauge, "ratio", S::Gpm(GpmMetricId::SmOccupancy, 0.01), "The ratio of number of warps resident on an SM.";
    ProfPipeTensorActive => "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", Gauge, "ratio", S::Gpm(GpmMetricId::AnyTensorUtil, 0.01), "Ratio of cycles the tensor (HMMA) pipe is active.";
    ProfPipeIntActive => "DCGM_FI_PROF_PIPE_INT_ACTIVE", Gauge, "ratio", S::Gpm(GpmMetricId::IntegerUtil, 0.01), "Ratio of cycles the integer pipe is active.";
    ProfPipeTensorDfmaActive => "DCGM_FI_PROF_PIPE_TENSOR_DFMA_ACTIVE", Gauge, "ratio", S::Gpm(GpmMetricId::DfmaTensorUtil, 0.01), "Ratio of cycles the tensor (DFMA) pipe is active.";
    ProfPipeTensorHmmaActive => "DCGM_FI_PROF_PIPE_TENSOR_HMMA_ACTIVE", Gauge, "ratio", S::Gpm(GpmMetricId::HmmaTensorUtil, 0.01), "Ratio of cycles the tensor (HMMA) pipe is active.";
    ProfPipeTensorImmaActive => "DCGM_FI_PROF_PIPE_TENSOR_IMMA_ACTIVE", Gauge, "ratio", S::Gpm(GpmMetricId::ImmaTensorUtil, 0.01), "Ratio of cycles the tensor (IMMA) pipe is active.";
    ProfDramActive => "DCGM_FI_PROF_DRAM_ACTIVE", Gauge, "ratio", S::Gpm(GpmMetricId::DramBwUtil, 0.01), "Ratio of cycles the device memory interface is active sending or receiving data.";
    ProfPipeFp64Active => "DCGM_FI_PROF_PIPE_FP64_ACTIVE", Gauge, "ratio", S::Gpm(GpmMetricId::Fp64Util, 0.01), "Ratio of cycles the fp64 pipes are active.";
    ProfPipeFp32Active => "DCGM_FI_PROF_PIPE_FP32_ACTIVE", Gauge, "ratio", S::Gpm(GpmMetricId::Fp32Util, 0.01), "Ratio of cycles the fp32 pipes are active.";
    ProfPipeFp16Active => "DCGM_FI_PROF_PIPE_FP16_ACTIVE", Gauge, "ratio", S::Gpm(GpmMetricId::Fp16Util, 0.01), "Ratio of cycles the fp16 pipes are active.";
    ProfPcieTxBytes => "DCGM_FI_PROF_PCIE_TX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::PcieTxPerSec, MIB), "The rate of data transmitted over the PCIe bus - including both protocol headers and data payloads - in bytes per second.";
    ProfPcieRxBytes => "DCGM_FI_PROF_PCIE_RX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::PcieRxPerSec, MIB), "The rate of data received over the PCIe bus - including both protocol headers and data payloads - in bytes per second.";
    ProfNvlinkTxBytes => "DCGM_FI_PROF_NVLINK_TX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkTotalTxPerSec, MIB), "The rate of data transmitted over NVLink - including both protocol headers and data payloads - in bytes per second.";
    ProfNvlinkRxBytes => "DCGM_FI_PROF_NVLINK_RX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkTotalRxPerSec, MIB), "The rate of data received over NVLink - including both protocol headers and data payloads - in bytes per second.";
    ProfNvlinkL0TxBytes => "DCGM_FI_PROF_NVLINK_L0_TX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL0TxPerSec, MIB), "The rate of data transmitted over NVLink link 0 in bytes per second.";
    ProfNvlinkL0RxBytes => "DCGM_FI_PROF_NVLINK_L0_RX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL0RxPerSec, MIB), "The rate of data received over NVLink link 0 in bytes per second.";
    ProfNvlinkL1TxBytes => "DCGM_FI_PROF_NVLINK_L1_TX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL1TxPerSec, MIB), "The rate of data transmitted over NVLink link 1 in bytes per second.";
    ProfNvlinkL1RxBytes => "DCGM_FI_PROF_NVLINK_L1_RX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL1RxPerSec, MIB), "The rate of data received over NVLink link 1 in bytes per second.";
    ProfNvlinkL2TxBytes => "DCGM_FI_PROF_NVLINK_L2_TX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL2TxPerSec, MIB), "The rate of data transmitted over NVLink link 2 in bytes per second.";
    ProfNvlinkL2RxBytes => "DCGM_FI_PROF_NVLINK_L2_RX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL2RxPerSec, MIB), "The rate of data received over NVLink link 2 in bytes per second.";
    ProfNvlinkL3TxBytes => "DCGM_FI_PROF_NVLINK_L3_TX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL3TxPerSec, MIB), "The rate of data transmitted over NVLink link 3 in bytes per second.";
    ProfNvlinkL3RxBytes => "DCGM_FI_PROF_NVLINK_L3_RX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL3RxPerSec, MIB), "The rate of data received over NVLink link 3 in bytes per second.";
    ProfNvlinkL4TxBytes => "DCGM_FI_PROF_NVLINK_L4_TX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL4TxPerSec, MIB), "The rate of data transmitted over NVLink link 4 in bytes per second.";
    ProfNvlinkL4RxBytes => "DCGM_FI_PROF_NVLINK_L4_RX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL4RxPerSec, MIB), "The rate of data received over NVLink link 4 in bytes per second.";
    ProfNvlinkL5TxBytes => "DCGM_FI_PROF_NVLINK_L5_TX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL5TxPerSec, MIB), "The rate of data transmitted over NVLink link 5 in bytes per second.";
    ProfNvlinkL5RxBytes => "DCGM_FI_PROF_NVLINK_L5_RX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL5RxPerSec, MIB), "The rate of data received over NVLink link 5 in bytes per second.";
    ProfNvlinkL6TxBytes => "DCGM_FI_PROF_NVLINK_L6_TX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL6TxPerSec, MIB), "The rate of data transmitted over NVLink link 6 in bytes per second.";
    ProfNvlinkL6RxBytes => "DCGM_FI_PROF_NVLINK_L6_RX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL6RxPerSec, MIB), "The rate of data received over NVLink link 6 in bytes per second.";
    ProfNvlinkL7TxBytes => "DCGM_FI_PROF_NVLINK_L7_TX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL7TxPerSec, MIB), "The rate of data transmitted over NVLink link 7 in bytes per second.";
    ProfNvlinkL7RxBytes => "DCGM_FI_PROF_NVLINK_L7_RX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL7RxPerSec, MIB), "The rate of data received over NVLink link 7 in bytes per second.";
    ProfNvlinkL8TxBytes => "DCGM_FI_PROF_NVLINK_L8_TX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL8TxPerSec, MIB), "The rate of data transmitted over NVLink link 8 in bytes per second.";
    ProfNvlinkL8RxBytes => "DCGM_FI_PROF_NVLINK_L8_RX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL8RxPerSec, MIB), "The rate of data received over NVLink link 8 in bytes per second.";
    ProfNvlinkL9TxBytes => "DCGM_FI_PROF_NVLINK_L9_TX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL9TxPerSec, MIB), "The rate of data transmitted over NVLink link 9 in bytes per second.";
    ProfNvlinkL9RxBytes => "DCGM_FI_PROF_NVLINK_L9_RX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL9RxPerSec, MIB), "The rate of data received over NVLink link 9 in bytes per second.";
    ProfNvlinkL10TxBytes => "DCGM_FI_PROF_NVLINK_L10_TX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL10TxPerSec, MIB), "The rate of data transmitted over NVLink link 10 in bytes per second.";
    ProfNvlinkL10RxBytes => "DCGM_FI_PROF_NVLINK_L10_RX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL10RxPerSec, MIB), "The rate of data received over NVLink link 10 in bytes per second.";
    ProfNvlinkL11TxBytes => "DCGM_FI_PROF_NVLINK_L11_TX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL11TxPerSec, MIB), "The rate of data transmitted over NVLink link 11 in bytes per second.";
    ProfNvlinkL11RxBytes => "DCGM_FI_PROF_NVLINK_L11_RX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL11RxPerSec, MIB), "The rate of data received over NVLink link 11 in bytes per second.";
    ProfNvlinkL12TxBytes => "DCGM_FI_PROF_NVLINK_L12_TX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL12TxPerSec, MIB), "The rate of data transmitted over NVLink link 12 in bytes per second.";
    ProfNvlinkL12RxBytes => "DCGM_FI_PROF_NVLINK_L12_RX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL12RxPerSec, MIB), "The rate of data received over NVLink link 12 in bytes per second.";
    ProfNvlinkL13TxBytes => "DCGM_FI_PROF_NVLINK_L13_TX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL13TxPerSec, MIB), "The rate of data transmitted over NVLink link 13 in bytes per second.";
    ProfNvlinkL13RxBytes => "DCGM_FI_PROF_NVLINK_L13_RX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL13RxPerSec, MIB), "The rate of data received over NVLink link 13 in bytes per second.";
    ProfNvlinkL14TxBytes => "DCGM_FI_PROF_NVLINK_L14_TX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL14TxPerSec, MIB), "The rate of data transmitted over NVLink link 14 in bytes per second.";
    ProfNvlinkL14RxBytes => "DCGM_FI_PROF_NVLINK_L14_RX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL14RxPerSec, MIB), "The rate of data received over NVLink link 14 in bytes per second.";
    ProfNvlinkL15TxBytes => "DCGM_FI_PROF_NVLINK_L15_TX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL15TxPerSec, MIB), "The rate of data transmitted over NVLink link 15 in bytes per second.";
    ProfNvlinkL15RxBytes => "DCGM_FI_PROF_NVLINK_L15_RX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL15RxPerSec, MIB), "The rate of data received over NVLink link 15 in bytes per second.";
    ProfNvlinkL16TxBytes => "DCGM_FI_PROF_NVLINK_L16_TX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL16TxPerSec, MIB), "The rate of data transmitted over NVLink link 16 in bytes per second.";
    ProfNvlinkL16RxBytes => "DCGM_FI_PROF_NVLINK_L16_RX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL16RxPerSec, MIB), "The rate of data received over NVLink link 16 in bytes per second.";
    ProfNvlinkL17TxBytes => "DCGM_FI_PROF_NVLINK_L17_TX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL17TxPerSec, MIB), "The rate of data transmitted over NVLink link 17 in bytes per second.";
    ProfNvlinkL17RxBytes => "DCGM_FI_PROF_NVLINK_L17_RX_BYTES", Gauge, "B/s", S::Gpm(GpmMetricId::NvlinkL17RxPerSec, MIB), "The rate of data received over NVLink link 17 in bytes per second.";
}

/// DCGM fields Algalon cannot provide, with a note more precise than the
/// kind of field gives ([`crate::dcgm_fields::unprovided_reason`]). A CSV
/// naming one — or any other DCGM field without a catalog row — loads; the
/// field is skipped with one log line, as dcgm-exporter skips fields a GPU
/// does not support.
pub static UNAVAILABLE: &[(&str, &str)] = &[
    (
        "DCGM_FI_DEV_VGPU_LICENSE_STATUS",
        "vGPU licensing is only reported inside vGPU guests by DCGM's host engine",
    ),
    (
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_L12",
        "NVML has per-link bandwidth counters for links 0-11 only",
    ),
    (
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_L13",
        "NVML has per-link bandwidth counters for links 0-11 only",
    ),
    (
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_L14",
        "NVML has per-link bandwidth counters for links 0-11 only",
    ),
    (
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_L15",
        "NVML has per-link bandwidth counters for links 0-11 only",
    ),
    (
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_L16",
        "NVML has per-link bandwidth counters for links 0-11 only",
    ),
    (
        "DCGM_FI_DEV_NVLINK_BANDWIDTH_L17",
        "NVML has per-link bandwidth counters for links 0-11 only",
    ),
    ("DCGM_FI_DEV_COUNT", "a host-level DCGM field"),
    (
        "DCGM_FI_CUDA_DRIVER_VERSION",
        "exported as the cuda_driver_version label of algalon_build_info",
    ),
    (
        "DCGM_FI_PROCESS_NAME",
        "per-process series are algalon_process_* (exporter --processes)",
    ),
];

/// dcgm-exporter's own synthetic fields (`DCGM_EXP_*`) Algalon does not
/// serve, known so that CSVs enabling them load with a clear note rather
/// than an "unknown field" error. The two windowed counts it serves are
/// [`ExpKind`].
pub static DCGM_EXP_FIELDS: &[(&str, &str)] = &[
    (
        "DCGM_EXP_GPU_HEALTH_STATUS",
        "DCGM health checks have no NVML equivalent; see algalon_gpu_up",
    ),
    (
        "DCGM_EXP_P2P_STATUS",
        "P2P status has no NVML equivalent read by Algalon yet",
    ),
];

/// dcgm-exporter's windowed count series (its `DCGM_EXP_*` collectors that
/// Algalon serves too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ExpKind {
    /// `DCGM_EXP_XID_ERRORS_COUNT{xid=…}`: XIDs per GPU in the last
    /// `--xid-count-window-size` milliseconds.
    XidErrorsCount,
    /// `DCGM_EXP_CLOCK_EVENTS_COUNT{clock_event=…}`: per GPU, how many samples
    /// of the last `--clock-events-count-window-size` milliseconds showed each
    /// clock-event reason.
    ClockEventsCount,
}

impl ExpKind {
    /// Both kinds.
    pub const ALL: [ExpKind; 2] = [ExpKind::XidErrorsCount, ExpKind::ClockEventsCount];

    /// dcgm-exporter's series name.
    pub fn name(self) -> &'static str {
        match self {
            ExpKind::XidErrorsCount => "DCGM_EXP_XID_ERRORS_COUNT",
            ExpKind::ClockEventsCount => "DCGM_EXP_CLOCK_EVENTS_COUNT",
        }
    }

    /// The label naming what is counted: `xid` or `clock_event`.
    pub fn value_label(self) -> &'static str {
        match self {
            ExpKind::XidErrorsCount => "xid",
            ExpKind::ClockEventsCount => "clock_event",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<ExpKind> {
        ExpKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl Field {
    /// This field's catalog row.
    pub fn def(self) -> &'static FieldDef {
        &CATALOG[self as usize]
    }

    /// The exported series name (DCGM's field name).
    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// The NVML C function this field is read with, as NVML failures are
    /// counted (`algalon_nvml_errors_total{call=…}`).
    pub fn nvml_call(self) -> &'static str {
        self.def().source.call_name()
    }

    /// Looks a field up by its DCGM name (exact, case-sensitive).
    pub fn from_name(name: &str) -> Option<Field> {
        CATALOG.iter().find(|d| d.name == name).map(|d| d.field)
    }

    /// Every field, in catalog order.
    pub fn all() -> impl Iterator<Item = Field> {
        CATALOG.iter().map(|d| d.field)
    }

    /// Number of fields in the catalog.
    pub const COUNT: usize = Field::ProfNvlinkL17RxBytes as usize + 1;
}

/// The catalog as a Markdown table (README.md embeds it; a test keeps the
/// two in step). `default` marks the fields of dcgm-exporter's default set.
pub fn markdown_table(default: &[Field]) -> String {
    let mut out = String::from(
        "| series | type | unit | default | NVML source | help |\n|---|---|---|---|---|---|\n",
    );
    for def in CATALOG {
        let kind = match def.kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Label => "label",
        };
        out.push_str(&format!(
            "| `{}` | {kind} | {} | {} | `{}` | {} |\n",
            def.name,
            def.unit,
            if default.contains(&def.field) {
                "yes"
            } else {
                ""
            },
            def.source.call_name(),
            def.help.replace('|', "\\|"),
        ));
    }
    out
}

/// The known field name (the catalog's, any DCGM name, dcgm-exporter's
/// `DCGM_EXP_*`) closest to `name` by edit distance, for "did you mean"
/// hints in error messages.
pub fn closest_name(name: &str) -> Option<&'static str> {
    let limit = name.len().max(4) / 2;
    let mut best: Option<(usize, &'static str)> = None;
    let candidates = CATALOG
        .iter()
        .map(|d| d.name)
        .chain(crate::dcgm_fields::names().map(|n| n.name))
        .chain(DCGM_EXP_FIELDS.iter().map(|(n, _)| *n))
        .chain(ExpKind::ALL.iter().map(|k| k.name()));
    for candidate in candidates {
        // The distance is at least the difference in length: skip names that
        // cannot beat the best so far (ties keep the earlier, catalog, name).
        let bound = best.map_or(limit, |(d, _)| d.saturating_sub(1));
        if name.len().abs_diff(candidate.len()) > bound {
            continue;
        }
        let d = edit_distance(name, candidate);
        if d <= bound {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a = a.as_bytes();
    let b = b.as_bytes();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(!ca.eq_ignore_ascii_case(cb));
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_indexed_by_field() {
        assert_eq!(CATALOG.len(), Field::COUNT);
        for (i, def) in CATALOG.iter().enumerate() {
            assert_eq!(def.field as usize, i, "{} is out of order", def.name);
        }
    }

    #[test]
    fn names_are_unique_and_dcgm_shaped() {
        let mut seen = std::collections::HashSet::new();
        for def in CATALOG {
            assert!(seen.insert(def.name), "{} declared twice", def.name);
            assert!(def.name.starts_with("DCGM_FI_"), "{}", def.name);
            assert!(!def.name.ends_with("_total"), "{}", def.name);
        }
        for (name, _) in UNAVAILABLE.iter().chain(DCGM_EXP_FIELDS) {
            assert!(
                Field::from_name(name).is_none(),
                "{name} is both available and not"
            );
        }
    }

    #[test]
    fn every_name_is_a_dcgm_field() {
        use crate::dcgm_fields::lookup;
        let mut ids = std::collections::HashSet::new();
        for def in CATALOG {
            let known = lookup(def.name).unwrap_or_else(|| panic!("{} is no DCGM field", def.name));
            assert!(
                ids.insert(known.id),
                "{} shares id {} with another row",
                def.name,
                known.id
            );
        }
        for (name, _) in UNAVAILABLE {
            let known = lookup(name).unwrap_or_else(|| panic!("{name} is no DCGM field"));
            assert!(!ids.contains(&known.id), "{name} is both available and not");
        }
        for (name, _) in DCGM_EXP_FIELDS {
            assert!(
                lookup(name).is_none(),
                "{name} is dcgm-exporter's, not DCGM's"
            );
        }
    }

    #[test]
    fn closest_name_suggests_typo_fixes() {
        assert_eq!(
            closest_name("DCGM_FI_DEV_GPU_UTILL"),
            Some("DCGM_FI_DEV_GPU_UTIL")
        );
        assert_eq!(
            closest_name("DCGM_FI_DEV_SM_CLOK"),
            Some("DCGM_FI_DEV_SM_CLOCK")
        );
        assert_eq!(closest_name("completely different"), None);
        assert_eq!(
            closest_name("DCGM_FI_DEV_CLOCK_EVENT_REASONS"),
            Some("DCGM_FI_DEV_CLOCKS_EVENT_REASONS")
        );
        assert_eq!(closest_name("dcgm_sm_clok"), Some("dcgm_sm_clock"));
    }
}
