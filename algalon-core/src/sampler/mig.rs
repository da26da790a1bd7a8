//! A GPU's MIG instances: enumerated again on every sample, so instances
//! created or destroyed while the sampler runs appear (or stop) within one
//! interval, with no stale series and no error storm (a handle that went
//! stale between two calls is the device being destroyed, not a failure).
//!
//! NVML calls: `nvmlDeviceGetMigMode`, `nvmlDeviceGetMaxMigDeviceCount`,
//! `nvmlDeviceGetMigDeviceHandleByIndex`, and on each MIG handle
//! `nvmlDeviceGetUUID`, `nvmlDeviceGetName` (whose `… MIG 1g.10gb` suffix is
//! the profile), `nvmlDeviceGetGpuInstanceId` and
//! `nvmlDeviceGetComputeInstanceId` (once per MIG UUID: they do not change
//! for an instance's life; see `mig_ids`), `nvmlDeviceGetMemoryInfo` and
//! `nvmlDeviceGetComputeRunningProcesses`; on the parent
//! `nvmlGpmMigSampleGet` and `nvmlGpmMetricsGet`. Where the id calls fail
//! (a driver without them), the ids come from the instance's processes,
//! which carry them: such an instance gets series once a process has run in
//! it (two idle instances of one profile would otherwise write the same
//! label set).

use std::collections::{HashMap, HashSet};

use nvml_wrapper::enums::gpm::GpmMetricId;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, GpmSample, Nvml};

use crate::catalog::{Field, MemoryPart, Source};
use crate::devices::InstanceSet;
use crate::error::{Error, Result};
use crate::nvml_error::{GpuErrors, Verdict, verdict};
use crate::snapshot::MigInstance;
use crate::snapshot::Value;

/// What reading a GPU's instances needs (from the worker's plan).
pub(super) struct Reads<'a, 'n> {
    pub(super) nvml: &'n Nvml,
    pub(super) fields: &'a [Field],
    pub(super) gpm_ids: &'a [GpmMetricId],
}

/// What a GPU's worker keeps about its MIG instances between samples.
#[derive(Default)]
pub(super) struct MigMemory<'n> {
    /// The previous GPM sample of each instance, by MIG UUID.
    gpm_prev: HashMap<String, GpmSample<'n>>,
    /// GPU and compute instance ids, by MIG UUID: from NVML's id calls, or
    /// learnt from processes where those fail.
    ids: HashMap<String, (u32, u32)>,
    /// Instances whose GPM reads are not supported, by MIG UUID.
    gpm_unsupported: HashSet<String>,
}

impl MigMemory<'_> {
    fn forget_all(&mut self) {
        self.gpm_prev.clear();
        self.ids.clear();
        self.gpm_unsupported.clear();
    }
}

/// Counts `e` as a failure of `call` unless it is "not supported" or the
/// device vanishing under the call (a destroyed instance's stale handle).
fn note(errors: &mut GpuErrors, call: &'static str, e: &NvmlError) {
    let vanished = matches!(e, NvmlError::InvalidArg | NvmlError::NotFound);
    if !vanished && matches!(verdict(e), Verdict::Failed) {
        errors.fail(call, e);
    }
}

/// The MIG instances of `device` that `wanted` selects; empty when the GPU
/// is not in MIG mode (or does not support it).
pub(super) fn read_instances<'n>(
    ctx: &Reads<'_, 'n>,
    device: &Device<'n>,
    wanted: &InstanceSet,
    memory: &mut MigMemory<'n>,
    errors: &mut GpuErrors,
) -> Vec<MigInstance> {
    if *wanted == InstanceSet::None {
        return Vec::new();
    }
    let enabled = match device.mig_mode() {
        Ok(mode) => mode.current == 1,
        Err(e) => {
            note(errors, "nvmlDeviceGetMigMode", &e);
            false
        }
    };
    if !enabled {
        memory.forget_all();
        return Vec::new();
    }
    let max = match device.mig_device_count() {
        Ok(n) => n,
        Err(e) => {
            note(errors, "nvmlDeviceGetMaxMigDeviceCount", &e);
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for i in 0..max {
        let mig = match device.mig_device_by_index(i) {
            Ok(d) => d,
            Err(e) => {
                note(errors, "nvmlDeviceGetMigDeviceHandleByIndex", &e);
                continue;
            }
        };
        if let Some(instance) = read_instance(ctx, device, &mig, memory, errors)
            && match wanted {
                InstanceSet::None => false,
                InstanceSet::All => true,
                InstanceSet::List(ids) => {
                    instance.gpu_instance_id.is_some_and(|id| ids.contains(&id))
                }
            }
        {
            out.push(instance);
        }
    }
    let seen: HashSet<&str> = out.iter().map(|m| m.uuid.as_str()).collect();
    memory
        .gpm_prev
        .retain(|uuid, _| seen.contains(uuid.as_str()));
    memory
        .gpm_unsupported
        .retain(|uuid| seen.contains(uuid.as_str()));
    // Ids are kept for every instance that still exists, selected or not.
    out
}

fn read_instance<'n>(
    ctx: &Reads<'_, 'n>,
    parent: &Device<'n>,
    mig: &Device<'n>,
    memory: &mut MigMemory<'n>,
    errors: &mut GpuErrors,
) -> Option<MigInstance> {
    let uuid = mig
        .uuid()
        .map_err(|e| note(errors, "nvmlDeviceGetUUID", &e))
        .ok()?;
    let name = mig
        .name()
        .map_err(|e| note(errors, "nvmlDeviceGetName", &e))
        .ok()?;
    let mut instance = MigInstance::new(uuid, profile_from_name(&name).to_owned());
    if !memory.ids.contains_key(&instance.uuid) {
        match super::mig_ids::instance_ids(mig) {
            Ok(ids) => {
                memory.ids.insert(instance.uuid.clone(), ids);
            }
            Err(e) => note(errors, "nvmlDeviceGetGpuInstanceId", &e),
        }
    }
    match mig.running_compute_processes() {
        Ok(list) => {
            for p in &list {
                instance.pids.push(p.pid);
                if let (Some(gi), Some(ci)) = (p.gpu_instance_id, p.compute_instance_id) {
                    memory.ids.entry(instance.uuid.clone()).or_insert((gi, ci));
                }
            }
        }
        Err(e) => note(errors, "nvmlDeviceGetComputeRunningProcesses_v3", &e),
    }
    if let Some(&(gi, ci)) = memory.ids.get(&instance.uuid) {
        instance.gpu_instance_id = Some(gi);
        instance.compute_instance_id = Some(ci);
    }
    read_memory(ctx, mig, &mut instance, errors);
    read_gpm(ctx, parent, &mut instance, memory, errors);
    Some(instance)
}

fn read_memory(
    ctx: &Reads<'_, '_>,
    mig: &Device<'_>,
    instance: &mut MigInstance,
    errors: &mut GpuErrors,
) {
    let parts: Vec<(Field, MemoryPart)> = ctx
        .fields
        .iter()
        .filter_map(|&f| match f.def().source {
            Source::Memory(part) => Some((f, part)),
            _ => None,
        })
        .collect();
    if parts.is_empty() {
        return;
    }
    let m = match mig.memory_info() {
        Ok(m) => m,
        Err(e) => {
            note(errors, "nvmlDeviceGetMemoryInfo_v2", &e);
            return;
        }
    };
    for (field, part) in parts {
        let value = match part {
            MemoryPart::Free => Value::Int(m.free >> 20),
            MemoryPart::Used => Value::Int(m.used >> 20),
            MemoryPart::Reserved => Value::Int(m.reserved >> 20),
            MemoryPart::Total => Value::Int(m.total >> 20),
            MemoryPart::UsedRatio => {
                let usable = m.total.saturating_sub(m.reserved);
                if usable == 0 {
                    continue;
                }
                Value::Float(m.used as f64 / usable as f64)
            }
        };
        instance.set(field, Some(value));
    }
}

/// GPM profiling of one GPU instance: this interval's `nvmlGpmMigSampleGet`
/// against the previous one. Nothing on the instance's first interval.
fn read_gpm<'n>(
    ctx: &Reads<'_, 'n>,
    parent: &Device<'n>,
    instance: &mut MigInstance,
    memory: &mut MigMemory<'n>,
    errors: &mut GpuErrors,
) {
    let Some(gi) = instance.gpu_instance_id else {
        return;
    };
    if ctx.gpm_ids.is_empty() || memory.gpm_unsupported.contains(&instance.uuid) {
        return;
    }
    let sample = match parent.gpm_mig_sample(gi) {
        Ok(s) => s,
        Err(e) => {
            if matches!(verdict(&e), Verdict::Unsupported) {
                memory.gpm_unsupported.insert(instance.uuid.clone());
            }
            note(errors, "nvmlGpmMigSampleGet", &e);
            return;
        }
    };
    let Some(before) = memory.gpm_prev.insert(instance.uuid.clone(), sample) else {
        return;
    };
    let after = &memory.gpm_prev[&instance.uuid];
    let results = match nvml_wrapper::gpm::gpm_metrics_get(ctx.nvml, &before, after, ctx.gpm_ids) {
        Ok(r) => r,
        Err(e) => {
            note(errors, "nvmlGpmMetricsGet", &e);
            return;
        }
    };
    let by_metric: HashMap<_, _> = ctx.gpm_ids.iter().copied().zip(results).collect();
    for &field in ctx.fields {
        if let Source::Gpm(metric, scale) = field.def().source
            && let Some(Ok(m)) = by_metric.get(&metric)
        {
            instance.set(field, Some(Value::Float(m.value * scale)));
        }
    }
}

/// Checks, when the sampler starts, that every GPU instance id of `wanted`
/// names an instance of one of the GPUs `indices`: an id that does not is
/// one error listing the instances there are. An instance whose id NVML
/// does not give (a driver without the id calls, and no process has run in
/// it) could be the one named, so while there is one the check lets the list
/// through with a warning.
pub(super) fn check_instances(nvml: &Nvml, indices: &[u32], wanted: &InstanceSet) -> Result<()> {
    let InstanceSet::List(ids) = wanted else {
        return Ok(());
    };
    let mut found: Vec<(u32, Option<u32>, String, String)> = Vec::new();
    for &index in indices {
        let Ok(device) = nvml.device_by_index(index) else {
            continue;
        };
        if !device.mig_mode().is_ok_and(|m| m.current == 1) {
            continue;
        }
        for i in 0..device.mig_device_count().unwrap_or(0) {
            let Ok(mig) = device.mig_device_by_index(i) else {
                continue;
            };
            let (Ok(uuid), Ok(name)) = (mig.uuid(), mig.name()) else {
                continue;
            };
            let gi = super::mig_ids::instance_ids(&mig)
                .ok()
                .map(|(gi, _)| gi)
                .or_else(|| {
                    mig.running_compute_processes()
                        .ok()
                        .and_then(|list| list.iter().find_map(|p| p.gpu_instance_id))
                });
            found.push((index, gi, profile_from_name(&name).to_owned(), uuid));
        }
    }
    let missing: Vec<u32> = ids
        .iter()
        .copied()
        .filter(|id| !found.iter().any(|(_, gi, _, _)| *gi == Some(*id)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let listed = |(gpu, gi, profile, uuid): &(u32, Option<u32>, String, String)| match gi {
        Some(gi) => format!("GPU {gpu} GI {gi} ({profile}, {uuid})"),
        None => format!("GPU {gpu} GI ? ({profile}, {uuid}, no process yet)"),
    };
    let available = if found.is_empty() {
        format!(
            "no GPU among {} is in MIG mode",
            indices
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        format!(
            "the MIG instances are {}",
            found.iter().map(listed).collect::<Vec<_>>().join("; ")
        )
    };
    let selector = format!(
        "GPU instance id {}",
        missing
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    if found.iter().any(|(_, gi, _, _)| gi.is_none()) {
        log::warn!(
            "-d names {selector}, which no MIG instance is known to have ({available}); \
             instances whose id is not known yet are read once a process runs in them"
        );
        return Ok(());
    }
    Err(Error::NoSuchInstance {
        selector,
        available,
    })
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
