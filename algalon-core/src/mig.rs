//! MIG instances of a GPU in MIG mode, as one sample sees them.
//!
//! Instances live under their parent GPU ([`crate::GpuSample::mig`]), so the
//! snapshot stays indexed by GPU: an instance is found by its parent's NVML
//! index and its GPU instance id (or its `MIG-` UUID).

use serde::Serialize;

use crate::catalog::Field;
use crate::snapshot::Value;

/// One MIG device (a GPU instance with its compute instance) of a GPU.
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
    #[serde(serialize_with = "crate::snapshot::serialize_values")]
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

    /// The `GPU_I_ID` label value: the GPU instance id, or empty when NVML
    /// did not give it.
    pub fn gpu_instance_label(&self) -> String {
        self.gpu_instance_id
            .map(|i| i.to_string())
            .unwrap_or_default()
    }
}

/// The profile part of a MIG device's NVML name
/// (`NVIDIA H100 80GB HBM3 MIG 1g.10gb` → `1g.10gb`).
pub fn profile_from_name(name: &str) -> &str {
    name.rsplit_once("MIG ").map_or(name, |(_, p)| p.trim())
}

#[cfg(test)]
mod tests {
    #[test]
    fn profile_from_name() {
        assert_eq!(
            super::profile_from_name("NVIDIA H100 80GB HBM3 MIG 1g.10gb"),
            "1g.10gb"
        );
        assert_eq!(
            super::profile_from_name("NVIDIA A100-SXM4-40GB MIG 3g.20gb"),
            "3g.20gb"
        );
        assert_eq!(super::profile_from_name("MIG 1g.10gb+me"), "1g.10gb+me");
    }
}
