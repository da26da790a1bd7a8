//! The MIG GPU-instance profiles of the GPU models the fake can partition,
//! as the driver reports them (`nvidia-smi mig -lgip` / `-lgipp` on the real
//! boards): profile enum index, profile ID, slices, placements, engines and
//! memory. A scenario names profiles by these names; everything else a
//! client can ask about a MIG device comes from here.

/// One GPU-instance profile of one GPU model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuInstanceProfile {
    /// `NVML_GPU_INSTANCE_PROFILE_*`: what `nvmlDeviceGetGpuInstanceProfileInfo` takes.
    pub index: u32,
    /// The profile ID (`info.id`, `nvmlGpuInstanceInfo_t.profileId`,
    /// `nvidia-smi mig -cgi <ID>`).
    pub id: u32,
    /// The profile name without NVML's `"MIG "` prefix, e.g. `"1g.10gb"`.
    pub name: &'static str,
    /// Compute (GPU) slices: the `Ng` of the name.
    pub slices: u32,
    /// Memory slices a placement occupies.
    pub placement_size: u32,
    /// Allowed placement starts (memory slice index).
    pub placements: &'static [u32],
    /// How many instances of this profile fit on an empty GPU.
    pub instance_count: u32,
    /// Streaming multiprocessors.
    pub multiprocessors: u32,
    /// Copy engines.
    pub copy_engines: u32,
    /// Video decoders (NVDEC).
    pub decoders: u32,
    /// Video encoders (NVENC).
    pub encoders: u32,
    /// JPEG decoders.
    pub jpegs: u32,
    /// Optical-flow accelerators.
    pub ofas: u32,
    /// Frame-buffer memory, MiB (`memorySizeMB`; also what a MIG device of
    /// this profile reports as total memory).
    pub memory_mib: u64,
}

/// A GPU model that supports MIG, identified by its NVML name.
#[derive(Debug, Clone, Copy)]
pub struct MigModel {
    /// `nvmlDeviceGetName` of the parent GPU.
    pub gpu_name: &'static str,
    /// Compute slices of the whole GPU.
    pub compute_slices: u32,
    /// Memory slices of the whole GPU.
    pub memory_slices: u32,
    /// Its GPU-instance profiles.
    pub profiles: &'static [GpuInstanceProfile],
}

impl MigModel {
    /// The profile called `name` (`"1g.10gb"`; a leading `"MIG "` is accepted).
    pub fn profile(&self, name: &str) -> Option<&'static GpuInstanceProfile> {
        let name = name.strip_prefix("MIG ").unwrap_or(name);
        self.profiles.iter().find(|p| p.name == name)
    }

    /// The profile with this `NVML_GPU_INSTANCE_PROFILE_*` index.
    pub fn by_index(&self, index: u32) -> Option<&'static GpuInstanceProfile> {
        self.profiles.iter().find(|p| p.index == index)
    }

    /// The profile with this profile ID.
    pub fn by_id(&self, id: u32) -> Option<&'static GpuInstanceProfile> {
        self.profiles.iter().find(|p| p.id == id)
    }

    /// Profile names, for error messages.
    pub fn names(&self) -> String {
        let names: Vec<&str> = self.profiles.iter().map(|p| p.name).collect();
        names.join(", ")
    }
}

/// `NVML_GPU_INSTANCE_PROFILE_COUNT` in the current `nvml.h`: profile
/// indices from here on are `NVML_ERROR_INVALID_ARGUMENT`, the end of a
/// client's enumeration.
pub const GPU_INSTANCE_PROFILE_COUNT: u32 = 0x12;

/// `NVML_COMPUTE_INSTANCE_PROFILE_COUNT`.
pub const COMPUTE_INSTANCE_PROFILE_COUNT: u32 = 0x9;

/// The `NVML_COMPUTE_INSTANCE_PROFILE_*` index of a compute instance with
/// `slices` compute slices (`None` for a count NVML has no profile for).
pub fn compute_profile_index(slices: u32) -> Option<u32> {
    match slices {
        1 => Some(0),
        2 => Some(1),
        3 => Some(2),
        4 => Some(3),
        7 => Some(4),
        8 => Some(5),
        6 => Some(6),
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
const fn p(
    index: u32,
    id: u32,
    name: &'static str,
    slices: u32,
    placement_size: u32,
    placements: &'static [u32],
    instance_count: u32,
    engines: [u32; 6],
    memory_mib: u64,
) -> GpuInstanceProfile {
    let [
        multiprocessors,
        copy_engines,
        decoders,
        encoders,
        jpegs,
        ofas,
    ] = engines;
    GpuInstanceProfile {
        index,
        id,
        name,
        slices,
        placement_size,
        placements,
        instance_count,
        multiprocessors,
        copy_engines,
        decoders,
        encoders,
        jpegs,
        ofas,
        memory_mib,
    }
}

const SINGLES: &[u32] = &[0, 1, 2, 3, 4, 5, 6];
const PAIRS: &[u32] = &[0, 2, 4, 6];
const TRIPLE_PAIRS: &[u32] = &[0, 2, 4];
const HALVES: &[u32] = &[0, 4];
const WHOLE: &[u32] = &[0];

// Engines: [SMs, copy engines, NVDEC, NVENC, JPEG, OFA].

/// H100 SXM5 80GB (`nvidia-smi mig -lgip` on driver 535+: memory 9.75 /
/// 19.62 / 39.50 / 79.25 GiB).
const H100_80GB: &[GpuInstanceProfile] = &[
    p(
        0,
        19,
        "1g.10gb",
        1,
        1,
        SINGLES,
        7,
        [16, 1, 1, 0, 1, 0],
        9984,
    ),
    p(
        7,
        20,
        "1g.10gb+me",
        1,
        1,
        SINGLES,
        1,
        [16, 1, 1, 0, 1, 1],
        9984,
    ),
    p(9, 15, "1g.20gb", 1, 2, PAIRS, 4, [26, 1, 1, 0, 1, 0], 20096),
    p(
        1,
        14,
        "2g.20gb",
        2,
        2,
        TRIPLE_PAIRS,
        3,
        [32, 2, 2, 0, 2, 0],
        20096,
    ),
    p(2, 9, "3g.40gb", 3, 4, HALVES, 2, [60, 3, 3, 0, 3, 0], 40448),
    p(3, 5, "4g.40gb", 4, 4, WHOLE, 1, [64, 4, 4, 0, 4, 0], 40448),
    p(4, 0, "7g.80gb", 7, 8, WHOLE, 1, [132, 8, 7, 0, 7, 1], 81152),
];

/// A100 SXM4 40GB (MIG user guide: memory 4.75 / 9.62 / 19.50 / 39.25 GiB).
const A100_40GB: &[GpuInstanceProfile] = &[
    p(0, 19, "1g.5gb", 1, 1, SINGLES, 7, [14, 1, 0, 0, 0, 0], 4864),
    p(
        7,
        20,
        "1g.5gb+me",
        1,
        1,
        SINGLES,
        1,
        [14, 1, 1, 0, 1, 1],
        4864,
    ),
    p(9, 15, "1g.10gb", 1, 2, PAIRS, 4, [14, 1, 1, 0, 0, 0], 9856),
    p(
        1,
        14,
        "2g.10gb",
        2,
        2,
        TRIPLE_PAIRS,
        3,
        [28, 2, 1, 0, 0, 0],
        9856,
    ),
    p(2, 9, "3g.20gb", 3, 4, HALVES, 2, [42, 3, 2, 0, 0, 0], 19968),
    p(3, 5, "4g.20gb", 4, 4, WHOLE, 1, [56, 4, 2, 0, 0, 0], 19968),
    p(4, 0, "7g.40gb", 7, 8, WHOLE, 1, [98, 7, 5, 0, 1, 1], 40192),
];

/// Every model the fake can partition.
pub const MODELS: &[MigModel] = &[
    MigModel {
        gpu_name: "NVIDIA H100 80GB HBM3",
        compute_slices: 7,
        memory_slices: 8,
        profiles: H100_80GB,
    },
    MigModel {
        gpu_name: "NVIDIA A100-SXM4-40GB",
        compute_slices: 7,
        memory_slices: 8,
        profiles: A100_40GB,
    },
];

/// The model table for a GPU called `gpu_name`.
pub fn model(gpu_name: &str) -> Option<&'static MigModel> {
    MODELS.iter().find(|m| m.gpu_name == gpu_name)
}

/// The names of every model, for error messages.
pub fn model_names() -> String {
    let names: Vec<&str> = MODELS.iter().map(|m| m.gpu_name).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use nvml_wrapper_sys::bindings as b;

    #[test]
    fn profile_indices_are_nvml_enums() {
        let h100 = model("NVIDIA H100 80GB HBM3").expect("h100");
        assert_eq!(
            h100.profile("1g.10gb").map(|p| p.index),
            Some(b::NVML_GPU_INSTANCE_PROFILE_1_SLICE)
        );
        assert_eq!(
            h100.profile("MIG 1g.20gb").map(|p| p.index),
            Some(b::NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2)
        );
        assert_eq!(
            h100.profile("1g.10gb+me").map(|p| p.index),
            Some(b::NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1)
        );
        assert_eq!(
            h100.profile("7g.80gb").map(|p| p.index),
            Some(b::NVML_GPU_INSTANCE_PROFILE_7_SLICE)
        );
        assert_eq!(h100.by_id(9).map(|p| p.name), Some("3g.40gb"));
        assert!(h100.profile("3g.20gb").is_none());
    }

    #[test]
    fn every_profile_fits_its_gpu() {
        for m in MODELS {
            let mut ids = std::collections::HashSet::new();
            for p in m.profiles {
                assert!(ids.insert(p.id), "{} {}: duplicate id", m.gpu_name, p.name);
                assert!(p.index < GPU_INSTANCE_PROFILE_COUNT);
                assert!(compute_profile_index(p.slices).is_some());
                assert!(p.slices <= m.compute_slices);
                for start in p.placements {
                    assert!(start + p.placement_size <= m.memory_slices, "{}", p.name);
                }
                assert!(p.instance_count as usize <= p.placements.len());
                assert!(p.name.starts_with(&format!("{}g.", p.slices)));
            }
        }
    }
}
