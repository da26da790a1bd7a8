//! Scenario files: types, loading, validation and evaluation.
//!
//! This module is pure Rust (no FFI, no global state), so other crates' tests
//! can load the same scenario the fake library serves and compute the values
//! it will report:
//!
//! ```
//! use nvidia_ml::scenario::Scenario;
//!
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/h100x8.json");
//! let scenario = Scenario::load(path).unwrap();
//! let gpu = &scenario.devices()[3];
//! let t = 75.0;
//! let power_mw = gpu.power_mw(t).unwrap();
//! let energy_mj = gpu.energy_mj(t).unwrap();
//! assert_eq!(gpu.spec.name, "NVIDIA H100 80GB HBM3");
//! assert!(power_mw > 0 && energy_mj > 0);
//! ```
//!
//! The JSON format is documented in `testing/README.md`. Every optional key
//! that is absent (or `null`) makes the NVML calls that would report it answer
//! `NVML_ERROR_NOT_SUPPORTED`: the fake never invents a reading.

mod mig;
pub mod mig_profiles;
mod validate;
mod value;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::names;

pub use mig::{Mig, MigChange, MigConfig, MigDevice, MigInstance, MigTimeline};
pub use value::{Sine, Value};

const MIB: u64 = 1024 * 1024;

/// What can go wrong loading a scenario. The text names the file and, for
/// JSON errors, the line and column.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {}: {source}", path.display())]
    Io {
        /// The scenario path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid scenario JSON (syntax, unknown field, wrong type).
    #[error("{location}:{line}:{column}: {message}")]
    Parse {
        /// The scenario path, or `<inline>`.
        location: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde's message.
        message: String,
    },
    /// The JSON parses but describes something impossible.
    #[error("{location}: invalid scenario at {at}: {message}")]
    Invalid {
        /// The scenario path, or `<inline>`.
        location: String,
        /// A JSON path such as `gpus[2].memory.used_mib`.
        at: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// A whole scenario: the node's driver, its GPUs and injected faults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Free text for humans; ignored.
    #[serde(default)]
    pub description: Option<String>,
    /// `nvmlSystemGetDriverVersion`; must be below 580.82 (field IDs are
    /// served in the v12 numbering).
    pub driver_version: String,
    /// `nvmlSystemGetNVMLVersion`.
    pub nvml_version: String,
    /// `nvmlSystemGetCudaDriverVersion(_v2)`, e.g. 12040.
    pub cuda_driver_version: i32,
    /// GPU entries; an entry with `count` stands for several identical GPUs.
    #[serde(default)]
    pub gpus: Vec<GpuSpec>,
    /// Injected error codes.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Injected delays.
    #[serde(default)]
    pub latency: Vec<Latency>,
    #[serde(skip)]
    devices: Vec<Device>,
}

/// One `gpus[]` entry. See `testing/README.md` for the NVML call each key
/// feeds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)] // each key is documented in testing/README.md
pub struct GpuSpec {
    /// This entry stands for `count` identical GPUs (default 1).
    #[serde(default)]
    pub count: Option<u32>,
    pub name: String,
    pub uuid: String,
    pub pci_bus_id: String,
    #[serde(default)]
    pub pci_device_id: Option<HexU32>,
    #[serde(default)]
    pub pci_subsystem_id: Option<HexU32>,
    #[serde(default)]
    pub minor_number: Option<u32>,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub vbios_version: Option<String>,
    #[serde(default)]
    pub board_part_number: Option<String>,
    #[serde(default)]
    pub inforom: Option<Inforom>,
    #[serde(default)]
    pub brand: Option<Brand>,
    #[serde(default)]
    pub architecture: Option<Architecture>,
    #[serde(default)]
    pub cuda_compute_capability: Option<[i32; 2]>,
    #[serde(default)]
    pub persistence_mode: Option<bool>,
    #[serde(default)]
    pub display_active: Option<bool>,
    #[serde(default)]
    pub display_mode: Option<bool>,
    #[serde(default)]
    pub compute_mode: Option<ComputeMode>,
    pub memory: Memory,
    #[serde(default)]
    pub bar1: Option<Bar1>,
    #[serde(default)]
    pub power_limit_w: Option<f64>,
    #[serde(default)]
    pub power_default_limit_w: Option<f64>,
    #[serde(default)]
    pub power_limit_constraints_w: Option<[f64; 2]>,
    #[serde(default)]
    pub max_clocks: Option<Clocks>,
    #[serde(default)]
    pub clocks: Option<Clocks>,
    #[serde(default)]
    pub app_clocks: Option<Clocks>,
    #[serde(default)]
    pub utilization: Option<Utilization>,
    #[serde(default)]
    pub temperature_c: Option<Value>,
    #[serde(default)]
    pub memory_temperature_c: Option<Value>,
    #[serde(default)]
    pub temperature_thresholds_c: Option<Thresholds>,
    #[serde(default)]
    pub power_w: Option<Value>,
    #[serde(default)]
    pub energy_counter: bool,
    #[serde(default)]
    pub energy_offset_mj: u64,
    #[serde(default)]
    pub fan_percent: Option<Value>,
    #[serde(default)]
    pub num_fans: Option<u32>,
    #[serde(default)]
    pub pstate: Option<Value>,
    #[serde(default)]
    pub pcie: Option<Pcie>,
    #[serde(default)]
    pub ecc: Option<Ecc>,
    #[serde(default)]
    pub retired_pages: Option<RetiredPages>,
    #[serde(default)]
    pub remapped_rows: Option<RemappedRows>,
    #[serde(default)]
    pub violations_ns: Option<Violations>,
    #[serde(default)]
    pub throttle_reasons: Option<Value>,
    #[serde(default)]
    pub supported_throttle_reasons: Option<u64>,
    #[serde(default)]
    pub nvlink: Option<NvLink>,
    #[serde(default)]
    pub processes: Vec<ProcessSpec>,
    #[serde(default)]
    pub mig: Option<Mig>,
    #[serde(default)]
    pub gpm: Option<Gpm>,
    #[serde(default)]
    pub unsupported: Vec<String>,
    #[serde(default)]
    pub xid_events: Vec<XidEvent>,
    #[serde(default)]
    pub lost_after_s: Option<f64>,
}

/// A `u32` written in JSON as a number or a hex string (`"0x233010DE"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HexU32(pub u32);

impl<'de> Deserialize<'de> for HexU32 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HexVisitor;
        impl Visitor<'_> for HexVisitor {
            type Value = HexU32;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a 32-bit number or a hex string like "0x233010DE""#)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HexU32, E> {
                u32::try_from(v)
                    .map(HexU32)
                    .map_err(|_| E::custom(format!("{v} does not fit in 32 bits")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HexU32, E> {
                let digits = v
                    .strip_prefix("0x")
                    .or_else(|| v.strip_prefix("0X"))
                    .ok_or_else(|| E::custom(format!("{v:?} must start with 0x")))?;
                u32::from_str_radix(digits, 16)
                    .map(HexU32)
                    .map_err(|e| E::custom(format!("{v:?} is not a 32-bit hex number: {e}")))
            }
        }
        deserializer.deserialize_any(HexVisitor)
    }
}

/// `nvmlDeviceGetInforomImageVersion` / `nvmlDeviceGetInforomVersion`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inforom {
    /// Image version, e.g. `"G520.0200.00.05"`.
    #[serde(default)]
    pub image: Option<String>,
    /// OEM object version.
    #[serde(default)]
    pub oem: Option<String>,
    /// ECC object version.
    #[serde(default)]
    pub ecc: Option<String>,
    /// Power object version.
    #[serde(default)]
    pub power: Option<String>,
}

/// `nvmlDeviceGetBrand`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Brand {
    Unknown,
    Quadro,
    Tesla,
    Nvs,
    Grid,
    Geforce,
    Titan,
    NvidiaVapps,
    NvidiaVpc,
    NvidiaVcs,
    NvidiaVws,
    NvidiaCloudGaming,
    QuadroRtx,
    NvidiaRtx,
    Nvidia,
    GeforceRtx,
    TitanRtx,
}

impl Brand {
    /// The `nvmlBrandType_t` value.
    pub fn nvml(self) -> u32 {
        match self {
            Brand::Unknown => 0,
            Brand::Quadro => 1,
            Brand::Tesla => 2,
            Brand::Nvs => 3,
            Brand::Grid => 4,
            Brand::Geforce => 5,
            Brand::Titan => 6,
            Brand::NvidiaVapps => 7,
            Brand::NvidiaVpc => 8,
            Brand::NvidiaVcs => 9,
            Brand::NvidiaVws => 10,
            Brand::NvidiaCloudGaming => 11,
            Brand::QuadroRtx => 12,
            Brand::NvidiaRtx => 13,
            Brand::Nvidia => 14,
            Brand::GeforceRtx => 15,
            Brand::TitanRtx => 16,
        }
    }
}

/// `nvmlDeviceGetArchitecture`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Architecture {
    Kepler,
    Maxwell,
    Pascal,
    Volta,
    Turing,
    Ampere,
    Ada,
    Hopper,
    Blackwell,
}

impl Architecture {
    /// The `NVML_DEVICE_ARCH_*` value.
    pub fn nvml(self) -> u32 {
        match self {
            Architecture::Kepler => 2,
            Architecture::Maxwell => 3,
            Architecture::Pascal => 4,
            Architecture::Volta => 5,
            Architecture::Turing => 6,
            Architecture::Ampere => 7,
            Architecture::Ada => 8,
            Architecture::Hopper => 9,
            Architecture::Blackwell => 10,
        }
    }
}

/// `nvmlDeviceGetComputeMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum ComputeMode {
    Default,
    ExclusiveThread,
    Prohibited,
    ExclusiveProcess,
}

impl ComputeMode {
    /// The `nvmlComputeMode_t` value.
    pub fn nvml(self) -> u32 {
        match self {
            ComputeMode::Default => 0,
            ComputeMode::ExclusiveThread => 1,
            ComputeMode::Prohibited => 2,
            ComputeMode::ExclusiveProcess => 3,
        }
    }
}

/// Frame-buffer memory, in MiB.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// Total memory.
    pub total_mib: u64,
    /// Memory reserved by the driver (v2 API only; v1 folds it into used).
    #[serde(default)]
    pub reserved_mib: u64,
    /// Memory allocated by processes.
    pub used_mib: Value,
}

/// BAR1 memory, in MiB.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bar1 {
    /// BAR1 size.
    pub total_mib: u64,
    /// BAR1 in use.
    pub used_mib: Value,
}

/// Clock frequencies in MHz (current, max, or application clocks).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clocks {
    /// SM clock.
    pub sm_mhz: Value,
    /// Memory clock.
    pub mem_mhz: Value,
    /// Graphics clock; defaults to the SM clock (one domain on real GPUs).
    #[serde(default)]
    pub graphics_mhz: Option<Value>,
    /// Video clock; absent → not supported.
    #[serde(default)]
    pub video_mhz: Option<Value>,
}

impl Clocks {
    /// The clock for an `nvmlClockType_t`; `None` when that domain is absent
    /// or the type is unknown.
    pub fn by_type(&self, clock_type: u32) -> Option<&Value> {
        match clock_type {
            0 => Some(self.graphics_mhz.as_ref().unwrap_or(&self.sm_mhz)),
            1 => Some(&self.sm_mhz),
            2 => Some(&self.mem_mhz),
            3 => self.video_mhz.as_ref(),
            _ => None,
        }
    }
}

/// Utilization percentages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Utilization {
    /// GPU (kernel) utilization.
    pub gpu: Value,
    /// Memory controller utilization.
    pub memory: Value,
    /// Encoder utilization; absent → not supported.
    #[serde(default)]
    pub encoder: Option<Value>,
    /// Decoder utilization; absent → not supported.
    #[serde(default)]
    pub decoder: Option<Value>,
}

/// `nvmlDeviceGetTemperatureThreshold`, °C.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// `NVML_TEMPERATURE_THRESHOLD_SHUTDOWN`.
    #[serde(default)]
    pub shutdown: Option<u32>,
    /// `NVML_TEMPERATURE_THRESHOLD_SLOWDOWN`.
    #[serde(default)]
    pub slowdown: Option<u32>,
    /// `NVML_TEMPERATURE_THRESHOLD_MEM_MAX`.
    #[serde(default)]
    pub mem_max: Option<u32>,
    /// `NVML_TEMPERATURE_THRESHOLD_GPU_MAX`.
    #[serde(default)]
    pub gpu_max: Option<u32>,
}

/// PCIe link and traffic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pcie {
    /// Transmit throughput, KiB/s (`nvmlDeviceGetPcieThroughput`).
    #[serde(default)]
    pub tx_kib_s: Option<Value>,
    /// Receive throughput, KiB/s.
    #[serde(default)]
    pub rx_kib_s: Option<Value>,
    /// Replay counter.
    #[serde(default)]
    pub replay_counter: Option<Value>,
    /// Current link generation.
    pub link_gen: u32,
    /// Current link width.
    pub link_width: u32,
    /// Max link generation (default: `link_gen`).
    #[serde(default)]
    pub max_link_gen: Option<u32>,
    /// Max link width (default: `link_width`).
    #[serde(default)]
    pub max_link_width: Option<u32>,
}

/// ECC error counts (mode is enabled when this block is present).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ecc {
    /// ECC mode (current and pending); default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Corrected, since boot.
    pub sbe_volatile: Value,
    /// Uncorrected, since boot.
    pub dbe_volatile: Value,
    /// Corrected, lifetime.
    pub sbe_aggregate: Value,
    /// Uncorrected, lifetime.
    pub dbe_aggregate: Value,
}

fn yes() -> bool {
    true
}

/// Retired pages (pre-Ampere page retirement).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetiredPages {
    /// Pages retired for multiple single-bit errors.
    pub sbe: u32,
    /// Pages retired for a double-bit error.
    pub dbe: u32,
    /// Retirement pending a reboot.
    #[serde(default)]
    pub pending: bool,
}

/// Row remapping (Ampere and later).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemappedRows {
    /// Rows remapped for correctable errors.
    pub correctable: u32,
    /// Rows remapped for uncorrectable errors.
    pub uncorrectable: u32,
    /// A remapping is pending a reset.
    #[serde(default)]
    pub pending: bool,
    /// A remapping failed.
    #[serde(default)]
    pub failure: bool,
}

/// Cumulative clock-violation time per policy, in ns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Violations {
    #[serde(default)]
    pub power: Option<Value>,
    #[serde(default)]
    pub thermal: Option<Value>,
    #[serde(default)]
    pub sync_boost: Option<Value>,
    #[serde(default)]
    pub board_limit: Option<Value>,
    #[serde(default)]
    pub low_util: Option<Value>,
    #[serde(default)]
    pub reliability: Option<Value>,
}

impl Violations {
    /// The counter for an `nvmlPerfPolicyType_t`.
    pub fn by_policy(&self, policy: u32) -> Option<&Value> {
        match policy {
            0 => self.power.as_ref(),
            1 => self.thermal.as_ref(),
            2 => self.sync_boost.as_ref(),
            3 => self.board_limit.as_ref(),
            4 => self.low_util.as_ref(),
            5 => self.reliability.as_ref(),
            _ => None,
        }
    }
}

/// NVLink links and counters (totals over all links; per-link queries get an
/// even share, remainder to the lowest links).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct NvLink {
    /// Number of links (at most 18).
    pub links: u32,
    /// Links reported active (default: all).
    #[serde(default)]
    pub active_links: Option<u32>,
    #[serde(default)]
    pub bandwidth_total: Option<Value>,
    #[serde(default)]
    pub crc_flit_errors: Option<Value>,
    #[serde(default)]
    pub crc_data_errors: Option<Value>,
    #[serde(default)]
    pub replay_errors: Option<Value>,
    #[serde(default)]
    pub recovery_errors: Option<Value>,
    /// Transmit rate, KiB/s; its integral feeds the throughput fields.
    #[serde(default)]
    pub tx_kib_s: Option<Value>,
    /// Receive rate, KiB/s.
    #[serde(default)]
    pub rx_kib_s: Option<Value>,
}

impl NvLink {
    /// Links reported active.
    pub fn active(&self) -> u32 {
        self.active_links.unwrap_or(self.links)
    }

    /// Link `link`'s share of a total counted over all links.
    pub fn share(&self, total: u64, link: u32) -> u64 {
        let links = u64::from(self.links.max(1));
        total / links + u64::from(u64::from(link) < total % links)
    }
}

/// The kind of GPU context a process holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ProcessKind {
    /// Listed by the compute-process calls.
    #[serde(rename = "compute")]
    Compute,
    /// Listed by the graphics-process calls.
    #[serde(rename = "graphics")]
    Graphics,
    /// Listed by both.
    #[serde(rename = "compute+graphics")]
    ComputeGraphics,
}

/// A process using a GPU.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    /// OS process id.
    pub pid: u32,
    /// `nvmlSystemGetProcessName`.
    pub name: String,
    /// Context kind.
    #[serde(rename = "type")]
    pub kind: ProcessKind,
    /// GPU memory used, MiB; absent → `NVML_VALUE_NOT_AVAILABLE` (as on WDDM).
    #[serde(default)]
    pub used_mib: Option<Value>,
    /// SM utilization for `nvmlDeviceGetProcessUtilization`.
    #[serde(default)]
    pub sm_util: Option<Value>,
    /// Memory utilization for `nvmlDeviceGetProcessUtilization`.
    #[serde(default)]
    pub mem_util: Option<Value>,
    /// Appears at this time.
    #[serde(default)]
    pub start_s: f64,
    /// Disappears at this time (never when absent).
    #[serde(default)]
    pub end_s: Option<f64>,
    /// MIG GPU instance the process runs in.
    #[serde(default)]
    pub gpu_instance_id: Option<u32>,
    /// MIG compute instance the process runs in.
    #[serde(default)]
    pub compute_instance_id: Option<u32>,
}

impl ProcessSpec {
    /// Whether the process exists at `t` (`start_s <= t < end_s`).
    pub fn running_at(&self, t: f64) -> bool {
        self.start_s <= t && self.end_s.is_none_or(|end| t < end)
    }

    /// `usedGpuMemory` in bytes at `t`; `u64::MAX` (NVML_VALUE_NOT_AVAILABLE)
    /// when the scenario leaves it out.
    pub fn used_bytes(&self, t: f64) -> u64 {
        self.used_mib
            .as_ref()
            .map_or(u64::MAX, |v| v.u64_at(t).saturating_mul(MIB))
    }
}

/// GPU Performance Monitoring metrics (percent, or bytes/s for PCIe).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Gpm {
    /// `nvmlGpmQueryDeviceSupport` (default true).
    #[serde(default = "yes")]
    pub supported: bool,
    #[serde(default)]
    pub gr_engine_active: Option<Value>,
    #[serde(default)]
    pub sm_active: Option<Value>,
    #[serde(default)]
    pub sm_occupancy: Option<Value>,
    #[serde(default)]
    pub tensor_active: Option<Value>,
    /// Integer pipe activity (%).
    #[serde(default)]
    pub int_active: Option<Value>,
    /// DFMA (FP64) tensor pipe activity (%).
    #[serde(default)]
    pub dfma_tensor_active: Option<Value>,
    /// HMMA (FP16/BF16) tensor pipe activity (%).
    #[serde(default)]
    pub hmma_tensor_active: Option<Value>,
    /// IMMA (integer) tensor pipe activity (%).
    #[serde(default)]
    pub imma_tensor_active: Option<Value>,
    #[serde(default)]
    pub dram_active: Option<Value>,
    #[serde(default)]
    pub fp64_active: Option<Value>,
    #[serde(default)]
    pub fp32_active: Option<Value>,
    #[serde(default)]
    pub fp16_active: Option<Value>,
    #[serde(default)]
    pub pcie_tx_bytes_s: Option<Value>,
    #[serde(default)]
    pub pcie_rx_bytes_s: Option<Value>,
    /// NVLink traffic over all links, bytes/s (GPM reports MiB/s).
    #[serde(default)]
    pub nvlink_tx_bytes_s: Option<Value>,
    #[serde(default)]
    pub nvlink_rx_bytes_s: Option<Value>,
}

impl Gpm {
    /// The scenario value behind an `NVML_GPM_METRIC_*` id, and the factor
    /// that converts it to GPM's unit (PCIe and NVLink bytes/s → MiB/s).
    pub fn metric(&self, id: u32) -> Option<(&Value, f64)> {
        fn pct(v: &Option<Value>) -> Option<(&Value, f64)> {
            v.as_ref().map(|v| (v, 1.0))
        }
        match id {
            1 => pct(&self.gr_engine_active),
            2 => pct(&self.sm_active),
            3 => pct(&self.sm_occupancy),
            4 => pct(&self.int_active),
            5 => pct(&self.tensor_active),
            6 => pct(&self.dfma_tensor_active),
            7 => pct(&self.hmma_tensor_active),
            9 => pct(&self.imma_tensor_active),
            10 => pct(&self.dram_active),
            11 => pct(&self.fp64_active),
            12 => pct(&self.fp32_active),
            13 => pct(&self.fp16_active),
            20 => self.pcie_tx_bytes_s.as_ref().map(|v| (v, 1.0 / MIB as f64)),
            21 => self.pcie_rx_bytes_s.as_ref().map(|v| (v, 1.0 / MIB as f64)),
            60 => self
                .nvlink_rx_bytes_s
                .as_ref()
                .map(|v| (v, 1.0 / MIB as f64)),
            61 => self
                .nvlink_tx_bytes_s
                .as_ref()
                .map(|v| (v, 1.0 / MIB as f64)),
            _ => None,
        }
    }

    /// A per-link NVLink metric (`NVML_GPM_METRIC_NVLINK_L<n>_RX/TX_PER_SEC`,
    /// ids 62 … 97) on a GPU with `links` links: an even share of the
    /// total, none past the last link.
    pub fn link_metric(&self, id: u32, links: u32) -> Option<(&Value, f64)> {
        if !(62..=97).contains(&id) || (id - 62) / 2 >= links {
            return None;
        }
        let total = if id.is_multiple_of(2) {
            self.nvlink_rx_bytes_s.as_ref()
        } else {
            self.nvlink_tx_bytes_s.as_ref()
        };
        total.map(|v| (v, 1.0 / MIB as f64 / f64::from(links)))
    }
}

/// A critical XID error delivered through the event-set calls.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XidEvent {
    /// When it happens.
    pub at_s: f64,
    /// The XID (`eventData`).
    pub xid: u64,
}

/// An NVML return code written as a name (`"NO_PERMISSION"`,
/// `"NVML_ERROR_NO_PERMISSION"`) or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub u32);

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CodeVisitor;
        impl Visitor<'_> for CodeVisitor {
            type Value = ErrorCode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"an NVML error name such as "NO_PERMISSION", or its number"#)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ErrorCode, E> {
                match u32::try_from(v) {
                    Ok(code) if code != 0 => Ok(ErrorCode(code)),
                    _ => Err(E::custom(format!("{v} is not an NVML error code"))),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ErrorCode, E> {
                match names::return_code(v) {
                    Some(code) if code != 0 => Ok(ErrorCode(code)),
                    _ => Err(E::custom(format!(
                        "unknown NVML error {v:?}; use a suffix of NVML_ERROR_ such as \
                         \"NOT_SUPPORTED\", \"NO_PERMISSION\", \"GPU_IS_LOST\", \"UNKNOWN\""
                    ))),
                }
            }
        }
        deserializer.deserialize_any(CodeVisitor)
    }
}

/// Makes `call` return `error` while `from_s <= t < until_s`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// An exported NVML function name, or `"*"` for every call except
    /// init/shutdown/`nvmlErrorString`.
    pub call: String,
    /// Only this GPU index (all GPUs and system calls when absent).
    #[serde(default)]
    pub gpu: Option<u32>,
    /// The code to return.
    pub error: ErrorCode,
    /// Start of the window.
    #[serde(default)]
    pub from_s: f64,
    /// End of the window (open when absent).
    #[serde(default)]
    pub until_s: Option<f64>,
}

/// Makes `call` sleep `ms` before answering while `from_s <= t < until_s`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    /// An exported NVML function name, or `"*"`.
    pub call: String,
    /// Only this GPU index (all when absent).
    #[serde(default)]
    pub gpu: Option<u32>,
    /// Delay in milliseconds.
    pub ms: f64,
    /// Start of the window.
    #[serde(default)]
    pub from_s: f64,
    /// End of the window (open when absent).
    #[serde(default)]
    pub until_s: Option<f64>,
}

fn window(from: f64, until: Option<f64>, t: f64) -> bool {
    from <= t && until.is_none_or(|u| t < u)
}

fn call_matches(pattern: &str, call: &str, wildcard_ok: bool) -> bool {
    pattern == call || (wildcard_ok && pattern == "*")
}

fn gpu_matches(pattern: Option<u32>, gpu: Option<u32>) -> bool {
    pattern.is_none() || pattern == gpu
}

/// A PCI address `domain:bus:device.function`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciAddress {
    /// Domain (up to 32 bits).
    pub domain: u32,
    /// Bus.
    pub bus: u8,
    /// Device.
    pub device: u8,
    /// Function.
    pub function: u8,
}

impl PciAddress {
    /// Parses `"00000000:18:00.0"`, `"0000:18:00.0"` or `"18:00.0"`
    /// (hex, any case).
    pub fn parse(s: &str) -> Option<Self> {
        let (rest, function) = s.rsplit_once('.')?;
        let mut parts: Vec<&str> = rest.split(':').collect();
        let domain = if parts.len() == 3 {
            let d = parts.remove(0);
            (d.len() <= 8).then_some(())?;
            u32::from_str_radix(d, 16).ok()?
        } else {
            0
        };
        let [bus, device] = parts[..] else {
            return None;
        };
        let hex8 = |s: &str| {
            (!s.is_empty() && s.len() <= 2)
                .then(|| u8::from_str_radix(s, 16).ok())
                .flatten()
        };
        Some(PciAddress {
            domain,
            bus: hex8(bus)?,
            device: hex8(device)?,
            function: hex8(function)?,
        })
    }

    /// NVML's `busId`: `"%08X:%02X:%02X.%X"`.
    pub fn bus_id(&self) -> String {
        format!(
            "{:08X}:{:02X}:{:02X}.{:X}",
            self.domain, self.bus, self.device, self.function
        )
    }

    /// NVML's `busIdLegacy`: `"%04X:%02X:%02X.%X"`.
    pub fn bus_id_legacy(&self) -> String {
        format!(
            "{:04X}:{:02X}:{:02X}.{:X}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

/// One GPU after `count` expansion: what `nvmlDeviceGetHandleByIndex(index)`
/// reaches.
#[derive(Debug, Clone)]
pub struct Device {
    /// NVML index.
    pub index: u32,
    /// The entry with the derived identity (uuid, pci_bus_id,
    /// minor_number, serial, MIG uuids) filled in and `count` cleared.
    pub spec: GpuSpec,
    /// Parsed `spec.pci_bus_id`.
    pub pci: PciAddress,
    /// MIG states over time (`None` without a `mig` block: not MIG-capable).
    pub mig: Option<MigTimeline>,
}

/// Memory figures in bytes, as the v1 and v2 NVML calls report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryReading {
    /// Total.
    pub total: u64,
    /// Reserved by the driver (v2).
    pub reserved: u64,
    /// Used by allocations (v2).
    pub used: u64,
    /// `total - reserved - used` (v2).
    pub free: u64,
    /// v1 `used`: allocations plus reserved.
    pub used_v1: u64,
    /// v1 `free`: `total - used_v1`.
    pub free_v1: u64,
}

impl MemoryReading {
    fn new(total_mib: u64, reserved_mib: u64, used_mib: u64) -> Self {
        let total = total_mib * MIB;
        let reserved = (reserved_mib * MIB).min(total);
        let used = (used_mib * MIB).min(total - reserved);
        MemoryReading {
            total,
            reserved,
            used,
            free: total - reserved - used,
            used_v1: used + reserved,
            free_v1: total - used - reserved,
        }
    }
}

impl Device {
    /// Whether the GPU has fallen off the bus at `t`.
    pub fn is_lost(&self, t: f64) -> bool {
        self.spec.lost_after_s.is_some_and(|at| t >= at)
    }

    /// Frame-buffer memory at `t`.
    pub fn memory(&self, t: f64) -> MemoryReading {
        let m = &self.spec.memory;
        MemoryReading::new(m.total_mib, m.reserved_mib, m.used_mib.u64_at(t))
    }

    /// MIG device `slot` (see [`MigDevice::slot`]) if it exists at `t`.
    pub fn mig_device(&self, slot: usize, t: f64) -> Option<&MigDevice> {
        self.mig.as_ref()?.device(slot, t)
    }

    /// The MIG devices at `t`, in NVML index order (none while MIG is
    /// disabled or without a `mig` block).
    pub fn mig_devices_at(&self, t: f64) -> &[MigDevice] {
        self.mig.as_ref().map_or(&[], |m| &m.at(t).devices)
    }

    /// `nvmlDeviceGetPowerUsage` at `t`, in mW.
    pub fn power_mw(&self, t: f64) -> Option<u32> {
        self.spec
            .power_w
            .as_ref()
            .map(|p| (p.at(t) * 1000.0).round() as u32)
    }

    /// `nvmlDeviceGetTotalEnergyConsumption` at `t`, in mJ:
    /// `energy_offset_mj + ∫0..t power dt`, exact for every value kind.
    pub fn energy_mj(&self, t: f64) -> Option<u64> {
        if !self.spec.energy_counter {
            return None;
        }
        let joules = self.spec.power_w.as_ref()?.integral(0.0, t);
        Some(self.spec.energy_offset_mj + (joules * 1000.0).round() as u64)
    }

    /// Processes on this GPU at `t`.
    pub fn processes_at(&self, t: f64) -> impl Iterator<Item = &ProcessSpec> {
        self.spec.processes.iter().filter(move |p| p.running_at(t))
    }

    /// Whether the scenario lists `what` (a function, field or GPM metric
    /// name) in `unsupported`.
    pub fn unsupported(&self, what: &str) -> bool {
        self.spec.unsupported.iter().any(|u| u == what)
    }
}

impl Scenario {
    /// Reads, parses and validates a scenario file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ScenarioError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates scenario JSON; errors name `<inline>`.
    pub fn from_json_str(json: &str) -> Result<Self, ScenarioError> {
        Self::parse(json, "<inline>")
    }

    fn parse(json: &str, location: &str) -> Result<Self, ScenarioError> {
        let mut scenario: Scenario =
            serde_json::from_str(json).map_err(|e| ScenarioError::Parse {
                location: location.to_string(),
                line: e.line(),
                column: e.column(),
                message: strip_position(&e.to_string()),
            })?;
        scenario.devices = validate::expand_and_check(&scenario).map_err(|(at, message)| {
            ScenarioError::Invalid {
                location: location.to_string(),
                at,
                message,
            }
        })?;
        Ok(scenario)
    }

    /// The GPUs, after `count` expansion, in NVML index order.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// When GPU `gpu` is off the bus, as `(from, until)` windows: its
    /// `lost_after_s` (for good) and every `"*"` `GPU_IS_LOST` fault window
    /// that covers it. Event registrations do not survive a loss (see
    /// `ffi/events.rs`).
    pub fn losses(&self, gpu: u32) -> Vec<(f64, Option<f64>)> {
        let lost = names::return_code("GPU_IS_LOST");
        let windows = self
            .faults
            .iter()
            .filter(|f| f.call == "*" && gpu_matches(f.gpu, Some(gpu)) && Some(f.error.0) == lost)
            .map(|f| (f.from_s, f.until_s));
        self.devices
            .get(gpu as usize)
            .and_then(|d| d.spec.lost_after_s)
            .map(|at| (at, None))
            .into_iter()
            .chain(windows)
            .collect()
    }

    /// The error a fault injects into `call` on `gpu` (`None` for system
    /// calls) at `t`, if any. The `"*"` wildcard never matches init calls.
    pub fn fault(&self, call: &str, gpu: Option<u32>, t: f64) -> Option<u32> {
        let wildcard_ok = !names::INIT_CALLS.contains(&call);
        self.faults
            .iter()
            .find(|f| {
                call_matches(&f.call, call, wildcard_ok)
                    && gpu_matches(f.gpu, gpu)
                    && window(f.from_s, f.until_s, t)
            })
            .map(|f| f.error.0)
    }

    /// The delay injected into `call` on `gpu` at `t`: the sum of every
    /// matching `latency` entry. As for faults, `"*"` never matches init
    /// calls: only an entry naming one delays it.
    pub fn latency(&self, call: &str, gpu: Option<u32>, t: f64) -> Duration {
        let wildcard_ok = !names::INIT_CALLS.contains(&call);
        let ms: f64 = self
            .latency
            .iter()
            .filter(|l| {
                call_matches(&l.call, call, wildcard_ok)
                    && gpu_matches(l.gpu, gpu)
                    && window(l.from_s, l.until_s, t)
            })
            .map(|l| l.ms)
            .sum();
        Duration::from_secs_f64(ms.max(0.0) / 1000.0)
    }
}

/// serde_json appends " at line L column C"; the error already carries both.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) if message[at..].contains(" column ") => message[..at].to_string(),
        _ => message.to_string(),
    }
}

#[cfg(test)]
mod tests;
