//! Series of MIG instances, as dcgm-exporter writes them for `-d g+i`: the
//! parent GPU's identity labels with `GPU_I_PROFILE` and `GPU_I_ID` after
//! `modelName` (its template's order), then the collectors' label fields.

use std::borrow::Cow;

use super::render::{Labels, RenderedLabels};
use crate::snapshot::{GpuSample, MigInstance};

/// `base` (a GPU's identity labels) with the instance's two labels after
/// `modelName`.
pub(super) fn instance_base<'a>(base: &Labels<'a>, instance: &'a MigInstance) -> Labels<'a> {
    let at = base
        .iter()
        .position(|(k, _)| *k == "modelName")
        .map_or(base.len(), |p| p + 1);
    let mut labels = base.clone();
    labels.insert(at, ("GPU_I_PROFILE", Cow::Borrowed(&instance.profile)));
    labels.insert(
        at + 1,
        ("GPU_I_ID", Cow::Owned(instance.gpu_instance_label())),
    );
    labels
}

/// The instances of `gpu` that get series: those whose GPU instance id is
/// known. Without it two instances of one profile would write the same
/// label set (see `sampler/mig.rs` for when the id is unknown).
pub(super) fn with_series(gpu: &GpuSample) -> impl Iterator<Item = &MigInstance> {
    gpu.mig.iter().filter(|m| m.gpu_instance_id.is_some())
}

/// Rendered label sets of the instances of every GPU that get series
/// ([`with_series`]), by GPU position.
pub(super) fn rendered<'a>(
    gpus: &'a [GpuSample],
    base: &[Labels<'a>],
    fields: &[Labels<'a>],
) -> Vec<Vec<RenderedLabels>> {
    gpus.iter()
        .zip(base.iter().zip(fields))
        .map(|(gpu, (b, f))| {
            with_series(gpu)
                .map(|m| RenderedLabels::new(&[&instance_base(b, m)[..], &f[..]].concat()))
                .collect()
        })
        .collect()
}

/// The instance of `gpu` that process `pid` runs in.
pub(super) fn instance_of(gpu: &GpuSample, pid: u32) -> Option<&MigInstance> {
    gpu.mig.iter().find(|m| m.pids.contains(&pid))
}
