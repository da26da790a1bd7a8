//! Jobs on MIG devices: resolving the process's view against the host's
//! MIG devices, and what the sampler must read to measure one (its parent
//! GPU, with instances and the per-instance GPM fields).

use crate::SamplerOptions;
use crate::catalog::Field;
use crate::devices::{
    HostGpu, HostMig, InstanceSet, Selector, Visible, parse_cuda_visible_devices,
};
use crate::error::Result;
use crate::snapshot::Snapshot;

pub(super) fn host_gpus(snap: &Snapshot) -> Vec<HostGpu> {
    snap.gpus
        .iter()
        .map(|g| HostGpu::new(g.index, g.uuid.clone()))
        .collect()
}

pub(super) fn host_instances(snap: &Snapshot) -> Vec<HostMig> {
    snap.gpus
        .iter()
        .flat_map(|g| {
            g.mig.iter().map(|m| HostMig {
                parent: g.index,
                parent_uuid: g.uuid.clone(),
                uuid: m.uuid.clone(),
                profile: m.profile.clone(),
                gpu_instance_id: m.gpu_instance_id,
                compute_instance_id: m.compute_instance_id,
            })
        })
        .collect()
}

/// The GPM profiling fields a job on a MIG device reports per instance
/// (the readings of the exporter's MIG series, `nvmlGpmMigSampleGet`).
pub(crate) const MIG_JOB_FIELDS: &[Field] = &[
    Field::ProfSmActive,
    Field::ProfSmOccupancy,
    Field::ProfPipeTensorActive,
    Field::ProfDramActive,
];

/// Whether resolving the process's view needs the host's MIG devices: the
/// variable or a selector names one.
pub(super) fn names_mig(env: Option<&str>, chosen: &[Selector]) -> bool {
    let is_mig = |s: &Selector| matches!(s, Selector::Mig(_));
    env.is_some_and(|v| parse_cuda_visible_devices(v).entries.iter().any(is_mig))
        || chosen.iter().any(is_mig)
}

/// `opts` reading the MIG instances of its GPUs and their GPM fields.
pub(super) fn with_instances(mut opts: SamplerOptions) -> SamplerOptions {
    opts.instances = InstanceSet::All;
    for &f in MIG_JOB_FIELDS {
        if !opts.fields.contains(&f) {
            opts.fields.push(f);
        }
    }
    opts
}

/// The process's view: with the host's MIG devices when `mig` (so `MIG-…`
/// entries resolve, or fail naming those there are).
pub(super) fn view(snap: &Snapshot, mig: bool, env: Option<String>) -> Result<Visible> {
    if mig {
        Visible::with_instances(host_gpus(snap), host_instances(snap), env)
    } else {
        Visible::new(host_gpus(snap), env)
    }
}

/// The GPUs (`GPU-…` UUIDs, each once) the measured devices are on.
pub(super) fn parents(visible: &Visible, measured: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for uuid in measured {
        if let Some(gpu) = visible.gpu_of(uuid)
            && !out.contains(&gpu)
        {
            out.push(gpu);
        }
    }
    out
}
