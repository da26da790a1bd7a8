//! What one sample of every GPU looks like.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::catalog::{Field, Kind};
use crate::procinfo::ProcessIdentity;

/// One reading, in DCGM's unit for its field.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// An integer reading (counters, MiB, MHz, %).
    Int(u64),
    /// A fractional reading (W, ratios).
    Float(f64),
}

impl Value {
    /// The reading as `f64` (exact for integers below 2^53).
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Int(v) => v as f64,
            Value::Float(v) => v,
        }
    }
}

/// Why a GPU is marked down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DownReason {
    /// The NVML call that failed.
    pub call: &'static str,
    /// NVML's error text.
    pub error: String,
}

impl std::fmt::Display for DownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.call, self.error)
    }
}

/// A process using a GPU, as NVML reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessSample {
    /// Process id (in the namespace NVML sees, normally the host's).
    pub pid: u32,
    /// Name and job of the process, from `/proc` (see [`crate::procinfo`]).
    #[serde(flatten)]
    pub identity: ProcessIdentity,
    /// `compute` or `graphics`.
    pub kind: ProcessKind,
    /// GPU memory used by the process, in bytes; `None` when NVML cannot say.
    pub used_memory_bytes: Option<u64>,
    /// SM utilization of the process over the last interval (%), where NVML gives it.
    pub sm_util: Option<u32>,
    /// Memory-controller utilization of the process over the last interval (%).
    pub mem_util: Option<u32>,
}

/// Which NVML process list a process came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessKind {
    /// A CUDA / compute context.
    Compute,
    /// A graphics context.
    Graphics,
}

/// Every reading of one GPU at one instant.
#[derive(Debug, Clone, Serialize)]
pub struct GpuSample {
    /// NVML index (`gpu` label): "GPU 0", "GPU 1", …
    pub index: u32,
    /// `GPU-…` UUID; empty only when NVML could not give it at all.
    pub uuid: String,
    /// PCI bus id in NVML's `00000000:18:00.0` form.
    pub pci_bus_id: String,
    /// Marketing name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Minor number of `/dev/nvidiaN` (`device="nvidiaN"`), when known.
    pub minor_number: Option<u32>,
    /// False when the GPU is lost or failing; its readings are then absent.
    pub up: bool,
    /// Why the GPU is down, when it is.
    pub down_reason: Option<DownReason>,
    /// Label-type fields (driver version, serial, …) that could be read.
    pub labels: BTreeMap<Field, String>,
    /// Processes on the GPU, when process sampling is enabled.
    pub processes: Vec<ProcessSample>,
    /// Counts of each XID seen since the sampler started.
    pub xid_counts: BTreeMap<u64, u64>,
    /// The GPU's MIG instances, when the sampler reads them
    /// ([`crate::SamplerOptions::instances`]) and the GPU is in MIG mode;
    /// in NVML's order (ascending GPU instance id).
    pub mig: Vec<MigInstance>,
    #[serde(serialize_with = "serialize_values")]
    values: Box<[Option<Value>]>,
}

fn serialize_values<S: serde::Serializer>(
    values: &[Option<Value>],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(None)?;
    for (field, value) in Field::all().zip(values) {
        if let Some(v) = value {
            map.serialize_entry(field.name(), v)?;
        }
    }
    map.end()
}

impl GpuSample {
    /// A GPU with identity but no readings yet.
    pub fn new(index: u32, uuid: String, pci_bus_id: String, name: String) -> Self {
        GpuSample {
            index,
            uuid,
            pci_bus_id,
            name,
            minor_number: None,
            up: true,
            down_reason: None,
            labels: BTreeMap::new(),
            processes: Vec::new(),
            xid_counts: BTreeMap::new(),
            mig: Vec::new(),
            values: vec![None; Field::COUNT].into_boxed_slice(),
        }
    }

    /// The reading of `field`, or `None` when NVML could not give it.
    pub fn get(&self, field: Field) -> Option<Value> {
        self.values[field as usize]
    }

    /// The reading of `field` as `f64`.
    pub fn get_f64(&self, field: Field) -> Option<f64> {
        self.get(field).map(Value::as_f64)
    }

    /// Sets (or clears) a reading.
    pub fn set(&mut self, field: Field, value: Option<Value>) {
        debug_assert!(field.def().kind != Kind::Label, "{field:?} is a label");
        self.values[field as usize] = value;
    }

    /// Clears every reading (used when the GPU goes down mid-sample).
    pub(crate) fn clear_values(&mut self) {
        self.values.iter_mut().for_each(|v| *v = None);
        self.processes.clear();
        self.mig.clear();
    }

    /// GPU utilization in percent.
    pub fn gpu_util(&self) -> Option<f64> {
        self.get_f64(Field::GpuUtil)
    }

    /// Framebuffer memory used, in bytes.
    pub fn memory_used_bytes(&self) -> Option<u64> {
        self.get(Field::FbUsed).map(mib_to_bytes)
    }

    /// Framebuffer memory total, in bytes.
    pub fn memory_total_bytes(&self) -> Option<u64> {
        self.get(Field::FbTotal).map(mib_to_bytes)
    }

    /// Power draw in watts.
    pub fn power_w(&self) -> Option<f64> {
        self.get_f64(Field::PowerUsage)
    }

    /// GPU temperature in °C.
    pub fn temperature_c(&self) -> Option<f64> {
        self.get_f64(Field::GpuTemp)
    }

    /// NVML's total-energy counter, in millijoules since driver load.
    pub fn energy_mj(&self) -> Option<u64> {
        match self.get(Field::TotalEnergyConsumption)? {
            Value::Int(v) => Some(v),
            Value::Float(v) => Some(v as u64),
        }
    }
}

/// One MIG device (a GPU instance with its compute instance) of a GPU in
/// MIG mode, under its parent ([`GpuSample::mig`]): the snapshot stays
/// indexed by GPU; an instance is found by its parent's NVML index and its
/// GPU instance id (or `MIG-` UUID).
#[derive(Debug, Clone, Serialize)]
pub struct MigInstance {
    /// The MIG device's `MIG-…` UUID.
    pub uuid: String,
    /// The profile, as `nvidia-smi` and dcgm-exporter's `GPU_I_PROFILE`
    /// write it: `1g.10gb`, `3g.40gb`, …
    pub profile: String,
    /// The GPU instance id (dcgm-exporter's `GPU_I_ID`), when known. NVML
    /// gives it per process on the instance (see `sampler/mig.rs`); it is
    /// kept for as long as the instance exists.
    pub gpu_instance_id: Option<u32>,
    /// The compute instance id, when known (as `gpu_instance_id`).
    pub compute_instance_id: Option<u32>,
    /// PIDs of the processes NVML lists on this instance.
    pub pids: Vec<u32>,
    /// Compute slices of the instance (`nvmlDeviceGetAttributes_v2`'s
    /// `computeInstanceSliceCount`: 3 for a `3g.40gb` device), when known.
    pub slices: Option<u32>,
    /// Compute slices of the whole parent GPU (the largest GPU-instance
    /// profile's slice count: 7 on an A100 or H100), when known.
    pub parent_slices: Option<u32>,
    #[serde(serialize_with = "serialize_values")]
    values: Box<[Option<Value>]>,
}

impl MigInstance {
    /// An instance with identity but no readings yet.
    pub fn new(uuid: String, profile: String) -> Self {
        MigInstance {
            uuid,
            profile,
            gpu_instance_id: None,
            compute_instance_id: None,
            pids: Vec::new(),
            slices: None,
            parent_slices: None,
            values: vec![None; Field::COUNT].into_boxed_slice(),
        }
    }

    /// The instance's reading of `field` (framebuffer and GPM profiling
    /// fields); whole-GPU readings stay on the parent.
    pub fn get(&self, field: Field) -> Option<Value> {
        self.values[field as usize]
    }

    /// Sets (or clears) a reading.
    pub fn set(&mut self, field: Field, value: Option<Value>) {
        self.values[field as usize] = value;
    }

    /// The instance's framebuffer memory used, in bytes.
    pub fn memory_used_bytes(&self) -> Option<u64> {
        self.get(Field::FbUsed).map(mib_to_bytes)
    }

    /// The instance's framebuffer size, in bytes.
    pub fn memory_total_bytes(&self) -> Option<u64> {
        self.get(Field::FbTotal).map(mib_to_bytes)
    }

    /// The `GPU_I_ID` label value: the GPU instance id, or empty when NVML
    /// did not give it.
    pub fn gpu_instance_label(&self) -> String {
        self.gpu_instance_id
            .map(|i| i.to_string())
            .unwrap_or_default()
    }
}

/// A framebuffer reading (NVML's MiB, as DCGM writes it) in bytes.
fn mib_to_bytes(v: Value) -> u64 {
    (v.as_f64() as u64) << 20
}

/// One sample of every selected GPU, taken together.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Host name the sample was taken on (the `Hostname` label).
    pub hostname: String,
    /// NVIDIA driver version, e.g. `550.54.15`.
    pub driver_version: Option<String>,
    /// NVML library version, e.g. `12.550.54.15`.
    pub nvml_version: Option<String>,
    /// CUDA driver API version as NVML encodes it (`12040` = 12.4).
    pub cuda_driver_version: Option<i32>,
    /// Wall-clock time the sample started.
    #[serde(serialize_with = "serialize_unix_seconds")]
    pub taken_at: SystemTime,
    /// How long the whole sample took (NVML calls included).
    pub duration: Duration,
    /// Sequence number: 1 for the first sample of a sampler, then +1.
    pub seq: u64,
    /// The GPUs, in NVML index order.
    pub gpus: Vec<GpuSample>,
    /// NVML failures (other than "not supported") since the sampler
    /// started, one entry per GPU, call and error.
    pub errors: Vec<CallError>,
}

/// How often one NVML call failed with one error, on one GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallError {
    /// The GPU's NVML index; `None` for a host-level call (system facts,
    /// the XID event set).
    pub gpu: Option<u32>,
    /// The NVML function (C name).
    pub call: &'static str,
    /// The error, as a short stable name (`NoPermission`, `Unknown`, …).
    pub error: &'static str,
    /// How many times since the sampler started.
    pub count: u64,
}

fn serialize_unix_seconds<S: serde::Serializer>(
    t: &SystemTime,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(unix_seconds(*t))
}

/// Seconds since the Unix epoch as `f64` (0 for times before it).
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Snapshot {
    /// The GPU with this NVML index, if it was sampled.
    pub fn gpu(&self, index: u32) -> Option<&GpuSample> {
        self.gpus.iter().find(|g| g.index == index)
    }

    /// The GPU with this UUID, if it was sampled.
    pub fn gpu_by_uuid(&self, uuid: &str) -> Option<&GpuSample> {
        self.gpus.iter().find(|g| g.uuid == uuid)
    }
}
