//! MIG GPU instances and compute instances: profile information (the
//! profile *name* a client shows), the instances of a GPU, their info, and
//! the MIG device behind them. Each MIG device of a scenario is one GPU
//! instance with one compute instance spanning it; their handles follow the
//! device's life (stale once it is destroyed, as NVML documents).

use std::ffi::c_uint;

use nvml_wrapper_sys::bindings::{
    nvmlComputeInstance_t, nvmlComputeInstanceInfo_t, nvmlComputeInstancePlacement_t,
    nvmlComputeInstanceProfileInfo_t, nvmlComputeInstanceProfileInfo_v2_t,
    nvmlComputeInstanceProfileInfo_v3_t, nvmlDevice_t, nvmlGpuInstance_t, nvmlGpuInstanceInfo_t,
    nvmlGpuInstancePlacement_t, nvmlGpuInstanceProfileInfo_t, nvmlGpuInstanceProfileInfo_v2_t,
    nvmlGpuInstanceProfileInfo_v3_t, nvmlReturn_t,
};

use super::{Cx, Ret, c_array, device_call, gate, guard, mig_device, non_null, put, supported};
use crate::names::entry;
use crate::scenario::mig_profiles::{
    COMPUTE_INSTANCE_PROFILE_COUNT, GPU_INSTANCE_PROFILE_COUNT, GpuInstanceProfile, MigModel,
};
use crate::scenario::{Device, MigConfig, MigDevice};
use crate::state::{self, DeviceId, InstanceId, rc};

const fn version<T>(v: u32) -> c_uint {
    (size_of::<T>() as c_uint) | (v << 24)
}

/// `nvmlGpuInstanceProfileInfo_v2` / `_v3`.
const GI_PROFILE_V2: c_uint = version::<nvmlGpuInstanceProfileInfo_v2_t>(2);
const GI_PROFILE_V3: c_uint = version::<nvmlGpuInstanceProfileInfo_v3_t>(3);
/// `nvmlComputeInstanceProfileInfo_v2` / `_v3`.
const CI_PROFILE_V2: c_uint = version::<nvmlComputeInstanceProfileInfo_v2_t>(2);
const CI_PROFILE_V3: c_uint = version::<nvmlComputeInstanceProfileInfo_v3_t>(3);

/// NVML's profile name: `"MIG 1g.10gb"`.
fn nvml_name(profile: &GpuInstanceProfile) -> [std::ffi::c_char; 96] {
    c_array(&format!("MIG {}", profile.name))
}

/// A GPU-instance profile struct of any version from profile `p`: the
/// fields every version shares, plus the version's own (`version`, `name`,
/// `isP2pSupported`, `capabilities`).
macro_rules! gi_profile_info {
    ($ty:ident, $p:expr, { $($field:ident: $value:expr),* $(,)? }) => {
        $ty {
            id: $p.id,
            sliceCount: $p.slices,
            instanceCount: $p.instance_count,
            multiprocessorCount: $p.multiprocessors,
            copyEngineCount: $p.copy_engines,
            decoderCount: $p.decoders,
            encoderCount: $p.encoders,
            jpegCount: $p.jpegs,
            ofaCount: $p.ofas,
            memorySizeMB: $p.memory_mib,
            $($field: $value),*
        }
    };
}

/// The same for compute-instance profile structs: the compute instance
/// spanning MIG device `$mig`'s GPU instance, sharing its engines.
macro_rules! ci_profile_info {
    ($ty:ident, $mig:expr, { $($field:ident: $value:expr),* $(,)? }) => {
        $ty {
            id: $mig.compute_profile_index(),
            sliceCount: $mig.profile.slices,
            instanceCount: 1,
            multiprocessorCount: $mig.profile.multiprocessors,
            sharedCopyEngineCount: $mig.profile.copy_engines,
            sharedDecoderCount: $mig.profile.decoders,
            sharedEncoderCount: $mig.profile.encoders,
            sharedJpegCount: $mig.profile.jpegs,
            sharedOfaCount: $mig.profile.ofas,
            $($field: $value),*
        }
    };
}

/// The GPU's model table and the configuration now, for calls NVML serves
/// only while MIG is enabled (`NVML_ERROR_NOT_SUPPORTED` otherwise).
fn enabled<'a>(cx: &Cx<'a>) -> Result<(&'static MigModel, &'a MigConfig), u32> {
    let timeline = supported(cx.dev.mig.as_ref())?;
    let config = timeline.at(cx.t);
    let model = supported(timeline.model)?;
    if !config.enabled {
        return Err(rc::NOT_SUPPORTED);
    }
    Ok((model, config))
}

/// The profile at `NVML_GPU_INSTANCE_PROFILE_*` index `profile`.
fn profile_by_index(cx: &Cx<'_>, profile: c_uint) -> Result<&'static GpuInstanceProfile, u32> {
    if profile >= GPU_INSTANCE_PROFILE_COUNT {
        return Err(rc::INVALID_ARGUMENT);
    }
    let (model, _) = enabled(cx)?;
    supported(model.by_index(profile))
}

/// Writes a v2 or v3 GPU-instance profile struct, as `info->version` asks.
///
/// # Safety
///
/// `info` must be NULL or valid for the struct its `version` names.
unsafe fn put_gi_profile_v(
    info: *mut nvmlGpuInstanceProfileInfo_v2_t,
    find: impl FnOnce() -> Result<&'static GpuInstanceProfile, u32>,
) -> Ret {
    let out = non_null(info)?;
    // SAFETY: non-null and valid per NVML's contract.
    let version = unsafe { (*out).version };
    if version != GI_PROFILE_V2 && version != GI_PROFILE_V3 {
        return Err(rc::ARGUMENT_VERSION_MISMATCH);
    }
    let p = find()?;
    if version == GI_PROFILE_V3 {
        let value = gi_profile_info!(nvmlGpuInstanceProfileInfo_v3_t, p, {
            version: version,
            name: nvml_name(p),
            capabilities: 0,
        });
        // SAFETY: the caller's version says the struct is a v3.
        unsafe { put(out.cast::<nvmlGpuInstanceProfileInfo_v3_t>(), value) };
    } else {
        let value = gi_profile_info!(nvmlGpuInstanceProfileInfo_v2_t, p, {
            version: version,
            isP2pSupported: 0,
            name: nvml_name(p),
        });
        unsafe { put(out, value) };
    }
    Ok(())
}

/// `nvmlDeviceGetGpuInstanceProfileInfo` (v1 struct, no name): the GPU
/// model's profile at `NVML_GPU_INSTANCE_PROFILE_*` index `profile`.
/// `NVML_ERROR_INVALID_ARGUMENT` from `NVML_GPU_INSTANCE_PROFILE_COUNT` on
/// (where a client's enumeration stops), not supported for an index the
/// model lacks or while MIG is disabled.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetGpuInstanceProfileInfo(
    device: nvmlDevice_t,
    profile: c_uint,
    info: *mut nvmlGpuInstanceProfileInfo_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetGpuInstanceProfileInfo, device, |cx| {
        let out = non_null(info)?;
        let p = profile_by_index(cx, profile)?;
        let value = gi_profile_info!(nvmlGpuInstanceProfileInfo_t, p, { isP2pSupported: 0 });
        unsafe { put(out, value) };
        Ok(())
    })
}

/// `nvmlDeviceGetGpuInstanceProfileInfoV`: as the v1 call into a
/// `nvmlGpuInstanceProfileInfo_v2`/`_v3` struct, with the profile `name`
/// (`"MIG 1g.10gb"`); any other `version` is
/// `NVML_ERROR_ARGUMENT_VERSION_MISMATCH`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetGpuInstanceProfileInfoV(
    device: nvmlDevice_t,
    profile: c_uint,
    info: *mut nvmlGpuInstanceProfileInfo_v2_t,
) -> nvmlReturn_t {
    device_call(
        entry::nvmlDeviceGetGpuInstanceProfileInfoV,
        device,
        |cx| unsafe { put_gi_profile_v(info, || profile_by_index(cx, profile)) },
    )
}

/// `nvmlDeviceGetGpuInstanceProfileInfoByIdV`: as `…InfoV`, by profile ID
/// (`nvmlGpuInstanceInfo_t.profileId`); an ID the model lacks is
/// `NVML_ERROR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetGpuInstanceProfileInfoByIdV(
    device: nvmlDevice_t,
    profileId: c_uint,
    info: *mut nvmlGpuInstanceProfileInfo_v2_t,
) -> nvmlReturn_t {
    device_call(
        entry::nvmlDeviceGetGpuInstanceProfileInfoByIdV,
        device,
        |cx| unsafe {
            put_gi_profile_v(info, || {
                let (model, _) = enabled(cx)?;
                model.by_id(profileId).ok_or(rc::INVALID_ARGUMENT)
            })
        },
    )
}

/// `nvmlDeviceGetGpuInstancePossiblePlacements_v2`: every placement of
/// profile ID `profileId`, MIG enabled or not; with `placements` NULL only
/// the count.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetGpuInstancePossiblePlacements_v2(
    device: nvmlDevice_t,
    profileId: c_uint,
    placements: *mut nvmlGpuInstancePlacement_t,
    count: *mut c_uint,
) -> nvmlReturn_t {
    let call = entry::nvmlDeviceGetGpuInstancePossiblePlacements_v2;
    device_call(call, device, |cx| {
        let count = non_null(count)?;
        let model = supported(supported(cx.dev.mig.as_ref())?.model)?;
        let p = supported(model.by_id(profileId))?;
        let n = c_uint::try_from(p.placements.len()).map_err(|_| rc::UNKNOWN)?;
        if !placements.is_null() {
            for (i, &start) in p.placements.iter().enumerate() {
                let value = nvmlGpuInstancePlacement_t {
                    start,
                    size: p.placement_size,
                };
                // SAFETY: the caller's array holds every placement (NVML's
                // contract: "large enough").
                unsafe { put(placements.add(i), value) };
            }
        }
        unsafe { put(count, n) };
        Ok(())
    })
}

/// How many more instances of `p` fit beside the devices of `config`.
fn remaining(model: &MigModel, config: &MigConfig, p: &GpuInstanceProfile) -> u32 {
    let mask = |prof: &GpuInstanceProfile, start: u32| ((1u32 << prof.placement_size) - 1) << start;
    let mut used = config
        .devices
        .iter()
        .fold(0, |m, d| m | mask(d.profile, d.placement_start));
    let mut compute: u32 = config.devices.iter().map(|d| d.profile.slices).sum();
    let mut count = config
        .devices
        .iter()
        .filter(|d| d.profile.id == p.id)
        .count() as u32;
    let mut more = 0;
    for &start in p.placements {
        let m = mask(p, start);
        if used & m == 0 && compute + p.slices <= model.compute_slices && count < p.instance_count {
            used |= m;
            compute += p.slices;
            count += 1;
            more += 1;
        }
    }
    more
}

/// `nvmlDeviceGetGpuInstanceRemainingCapacity`: how many more GPU instances
/// of profile ID `profileId` could be created now.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetGpuInstanceRemainingCapacity(
    device: nvmlDevice_t,
    profileId: c_uint,
    count: *mut c_uint,
) -> nvmlReturn_t {
    let call = entry::nvmlDeviceGetGpuInstanceRemainingCapacity;
    device_call(call, device, |cx| {
        let out = non_null(count)?;
        let (model, config) = enabled(cx)?;
        let p = supported(model.by_id(profileId))?;
        unsafe { put(out, remaining(model, config, p)) };
        Ok(())
    })
}

fn instance_id(dev: &Device, d: &MigDevice) -> Result<InstanceId, u32> {
    Ok(InstanceId {
        gpu: dev.index,
        slot: u32::try_from(d.slot).map_err(|_| rc::UNKNOWN)?,
    })
}

/// `nvmlDeviceGetGpuInstances`: the GPU instances of profile ID `profileId`
/// now, into the caller's array (sized for the profile's `instanceCount`).
/// Not supported while MIG is disabled; an ID the model lacks is
/// `NVML_ERROR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetGpuInstances(
    device: nvmlDevice_t,
    profileId: c_uint,
    gpuInstances: *mut nvmlGpuInstance_t,
    count: *mut c_uint,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetGpuInstances, device, |cx| {
        let (out, count) = (non_null(gpuInstances)?, non_null(count)?);
        let (model, config) = enabled(cx)?;
        model.by_id(profileId).ok_or(rc::INVALID_ARGUMENT)?;
        let mut n: c_uint = 0;
        for d in config.devices.iter().filter(|d| d.profile.id == profileId) {
            let handle = state::gpu_instance(instance_id(cx.dev, d)?);
            // SAFETY: the caller's array holds the profile's instanceCount
            // entries, and a configuration never has more.
            unsafe { put(out.add(n as usize), handle) };
            n += 1;
        }
        unsafe { put(count, n) };
        Ok(())
    })
}

/// `nvmlDeviceGetGpuInstanceById`: the GPU instance with id `id` now;
/// `NVML_ERROR_NOT_FOUND` when there is none, not supported while MIG is
/// disabled.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetGpuInstanceById(
    device: nvmlDevice_t,
    id: c_uint,
    gpuInstance: *mut nvmlGpuInstance_t,
) -> nvmlReturn_t {
    device_call(entry::nvmlDeviceGetGpuInstanceById, device, |cx| {
        let out = non_null(gpuInstance)?;
        let (_, config) = enabled(cx)?;
        let d = config
            .devices
            .iter()
            .find(|d| d.spec.gpu_instance_id == id)
            .ok_or(rc::NOT_FOUND)?;
        let handle = state::gpu_instance(instance_id(cx.dev, d)?);
        unsafe { put(out, handle) };
        Ok(())
    })
}

/// What a GPU- or compute-instance call's body sees.
struct InstanceCx<'a> {
    dev: &'a Device,
    mig: &'a MigDevice,
    id: InstanceId,
}

/// Runs a call on a GPU- or compute-instance handle: the parent GPU's
/// latency, loss, faults and `unsupported` apply; a handle this library
/// never issued is `NVML_ERROR_INVALID_ARGUMENT`, and so is one whose
/// instance has been destroyed (unless the scenario's `stale_handle_error`
/// says otherwise).
fn instance_call(
    call: &'static str,
    lookup: impl FnOnce() -> Option<InstanceId>,
    body: impl FnOnce(&InstanceCx<'_>) -> Ret,
) -> nvmlReturn_t {
    guard(call, || {
        let session = state::session()?;
        let id = lookup().ok_or(rc::INVALID_ARGUMENT)?;
        let dev = session.device(id.gpu).ok_or(rc::INVALID_ARGUMENT)?;
        let t = gate(&session, call, dev)?;
        let mig = mig_device(dev, id.slot, t)?;
        body(&InstanceCx { dev, mig, id })
    })
}

fn parent(dev: &Device) -> nvmlDevice_t {
    state::handle(DeviceId {
        gpu: dev.index,
        mig: None,
    })
}

/// `nvmlGpuInstanceGetInfo`: parent GPU handle, GPU instance id, profile ID
/// and placement.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlGpuInstanceGetInfo(
    gpuInstance: nvmlGpuInstance_t,
    info: *mut nvmlGpuInstanceInfo_t,
) -> nvmlReturn_t {
    instance_call(
        entry::nvmlGpuInstanceGetInfo,
        || state::lookup_gpu_instance(gpuInstance),
        |ix| {
            let out = non_null(info)?;
            let value = nvmlGpuInstanceInfo_t {
                device: parent(ix.dev),
                id: ix.mig.spec.gpu_instance_id,
                profileId: ix.mig.profile.id,
                placement: nvmlGpuInstancePlacement_t {
                    start: ix.mig.placement_start,
                    size: ix.mig.profile.placement_size,
                },
            };
            unsafe { put(out, value) };
            Ok(())
        },
    )
}

/// The compute-instance profile at `NVML_COMPUTE_INSTANCE_PROFILE_*` index
/// `profile` of this GPU instance: only the one spanning it is modelled.
fn ci_profile(mig: &MigDevice, profile: c_uint, eng_profile: c_uint) -> Result<(), u32> {
    if profile >= COMPUTE_INSTANCE_PROFILE_COUNT || eng_profile != 0 {
        return Err(rc::INVALID_ARGUMENT);
    }
    if profile != mig.compute_profile_index() {
        return Err(rc::NOT_SUPPORTED);
    }
    Ok(())
}

/// `nvmlGpuInstanceGetComputeInstanceProfileInfo` (v1 struct): the compute
/// instance profile spanning the GPU instance (the one
/// `nvidia-smi mig -cgi … -C` creates); other profile indices are not
/// supported, indices from `NVML_COMPUTE_INSTANCE_PROFILE_COUNT` on and
/// engine profiles other than `SHARED` are `NVML_ERROR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlGpuInstanceGetComputeInstanceProfileInfo(
    gpuInstance: nvmlGpuInstance_t,
    profile: c_uint,
    engProfile: c_uint,
    info: *mut nvmlComputeInstanceProfileInfo_t,
) -> nvmlReturn_t {
    instance_call(
        entry::nvmlGpuInstanceGetComputeInstanceProfileInfo,
        || state::lookup_gpu_instance(gpuInstance),
        |ix| {
            let out = non_null(info)?;
            ci_profile(ix.mig, profile, engProfile)?;
            unsafe {
                put(
                    out,
                    ci_profile_info!(nvmlComputeInstanceProfileInfo_t, ix.mig, {}),
                )
            };
            Ok(())
        },
    )
}

/// `nvmlGpuInstanceGetComputeInstanceProfileInfoV`: as the v1 call into a
/// `nvmlComputeInstanceProfileInfo_v2`/`_v3` struct, with the name (that of
/// the GPU instance profile, as for a compute instance spanning it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlGpuInstanceGetComputeInstanceProfileInfoV(
    gpuInstance: nvmlGpuInstance_t,
    profile: c_uint,
    engProfile: c_uint,
    info: *mut nvmlComputeInstanceProfileInfo_v2_t,
) -> nvmlReturn_t {
    instance_call(
        entry::nvmlGpuInstanceGetComputeInstanceProfileInfoV,
        || state::lookup_gpu_instance(gpuInstance),
        |ix| {
            let out = non_null(info)?;
            // SAFETY: non-null and valid per NVML's contract.
            let version = unsafe { (*out).version };
            if version != CI_PROFILE_V2 && version != CI_PROFILE_V3 {
                return Err(rc::ARGUMENT_VERSION_MISMATCH);
            }
            ci_profile(ix.mig, profile, engProfile)?;
            let name = nvml_name(ix.mig.profile);
            if version == CI_PROFILE_V3 {
                let value = ci_profile_info!(nvmlComputeInstanceProfileInfo_v3_t, ix.mig, {
                    version: version,
                    name: name,
                    capabilities: 0,
                });
                // SAFETY: the caller's version says the struct is a v3.
                unsafe { put(out.cast::<nvmlComputeInstanceProfileInfo_v3_t>(), value) };
            } else {
                let value = ci_profile_info!(nvmlComputeInstanceProfileInfo_v2_t, ix.mig, {
                    version: version,
                    name: name,
                });
                unsafe { put(out, value) };
            }
            Ok(())
        },
    )
}

/// `nvmlGpuInstanceGetComputeInstances`: the GPU instance's compute
/// instances of compute profile `profileId` (its one compute instance, or
/// none).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlGpuInstanceGetComputeInstances(
    gpuInstance: nvmlGpuInstance_t,
    profileId: c_uint,
    computeInstances: *mut nvmlComputeInstance_t,
    count: *mut c_uint,
) -> nvmlReturn_t {
    instance_call(
        entry::nvmlGpuInstanceGetComputeInstances,
        || state::lookup_gpu_instance(gpuInstance),
        |ix| {
            let (out, count) = (non_null(computeInstances)?, non_null(count)?);
            if profileId >= COMPUTE_INSTANCE_PROFILE_COUNT {
                return Err(rc::INVALID_ARGUMENT);
            }
            let n = if profileId == ix.mig.compute_profile_index() {
                unsafe { put(out, state::compute_instance(ix.id)) };
                1
            } else {
                0
            };
            unsafe { put(count, n) };
            Ok(())
        },
    )
}

/// `nvmlGpuInstanceGetComputeInstanceById`: the compute instance with id
/// `id`; `NVML_ERROR_NOT_FOUND` for any other id.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlGpuInstanceGetComputeInstanceById(
    gpuInstance: nvmlGpuInstance_t,
    id: c_uint,
    computeInstance: *mut nvmlComputeInstance_t,
) -> nvmlReturn_t {
    instance_call(
        entry::nvmlGpuInstanceGetComputeInstanceById,
        || state::lookup_gpu_instance(gpuInstance),
        |ix| {
            let out = non_null(computeInstance)?;
            if id != ix.mig.spec.compute_instance_id {
                return Err(rc::NOT_FOUND);
            }
            unsafe { put(out, state::compute_instance(ix.id)) };
            Ok(())
        },
    )
}

/// `nvmlComputeInstanceGetInfo_v2`: parent GPU and GPU-instance handles,
/// compute instance id, compute profile and placement (the whole GPU
/// instance).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlComputeInstanceGetInfo_v2(
    computeInstance: nvmlComputeInstance_t,
    info: *mut nvmlComputeInstanceInfo_t,
) -> nvmlReturn_t {
    instance_call(
        entry::nvmlComputeInstanceGetInfo_v2,
        || state::lookup_compute_instance(computeInstance),
        |ix| {
            let out = non_null(info)?;
            let value = nvmlComputeInstanceInfo_t {
                device: parent(ix.dev),
                gpuInstance: state::gpu_instance(ix.id),
                id: ix.mig.spec.compute_instance_id,
                profileId: ix.mig.compute_profile_index(),
                placement: nvmlComputeInstancePlacement_t {
                    start: 0,
                    size: ix.mig.profile.slices,
                },
            };
            unsafe { put(out, value) };
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_versions_match_nvml_h() {
        // pynvml's constants, from the same nvml.h macros.
        assert_eq!(GI_PROFILE_V2, 0x0200_0098);
        assert_eq!(CI_PROFILE_V2, 0x0200_0088);
        assert_eq!(GI_PROFILE_V3 >> 24, 3);
        assert_eq!(CI_PROFILE_V3 >> 24, 3);
    }
}
