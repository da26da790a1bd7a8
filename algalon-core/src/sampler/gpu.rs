//! Per-GPU reads: identity and labels, every catalog source, GPM, and
//! marking a GPU down. Everything here runs on the GPU's own worker thread
//! (`worker.rs`), so no two calls on one GPU ever overlap.

use std::collections::{BTreeMap, HashMap};

use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::enums::device::SampleValue;
use nvml_wrapper::enums::gpm::GpmMetricId;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::{MemoryInfo, Utilization};
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper::{Device, GpmSample, Nvml};

use super::host::System;
use super::mig::{MigMemory, Reads, read_instances};
use super::processes::read_processes;
use super::progress::{GpuProgress, Stage};
use super::slot::{Slot, slot_sample};
use crate::catalog::{Field, Kind, LabelSource, MemoryPart, Source};
use crate::devices::InstanceSet;
use crate::nvml_error::{GpuErrors, NvmlFailure, Verdict, clone_error, error_text, verdict};
use crate::snapshot::{DownReason, GpuSample, Value};
use crate::xid::XidListener;

/// Everything `sample_gpu` reads but does not change.
pub(super) struct Ctx<'a, 'n> {
    pub(super) nvml: &'n Nvml,
    pub(super) fields: &'a [Field],
    pub(super) field_value_ids: &'a [FieldId],
    pub(super) gpm_ids: &'a [GpmMetricId],
    pub(super) system: &'a System,
    pub(super) processes: bool,
    /// Which MIG instances to read (`sampler/mig.rs`).
    pub(super) instances: &'a InstanceSet,
    pub(super) proc_root: &'a std::path::Path,
    /// Where this GPU's worker is, for a hang to be named.
    pub(super) progress: &'a GpuProgress,
}

/// Field values of one `nvmlDeviceGetFieldValues` call, by field id.
type FieldValues = HashMap<u32, Result<Value, NvmlError>>;
/// GPM metrics of one interval; `None` on the first interval.
type GpmValues = Option<HashMap<GpmMetricId, Result<f64, NvmlError>>>;

/// Per-GPU, per-sample cache of readings that several fields share.
#[derive(Default)]
struct Shared {
    memory: Option<Result<MemoryInfo, NvmlError>>,
    utilization: Option<Result<Utilization, NvmlError>>,
    field_values: Option<Result<FieldValues, NvmlError>>,
    gpm: Option<Result<GpmValues, NvmlFailure>>,
}

/// The NVML function whose failure left `source` out: GPM readings come
/// from two calls, the others from the catalog's one.
fn failed_call(source: Source, shared: &Shared) -> &'static str {
    match (source, &shared.gpm) {
        (Source::Gpm(..), Some(Err(failure))) => failure.call,
        _ => source.call_name(),
    }
}

/// Samples one GPU. Returns the sample and whether NVML itself is gone.
pub(super) fn sample_gpu<'n>(
    ctx: &Ctx<'_, 'n>,
    slot: &mut Slot,
    gpm_prev: &mut Option<GpmSample<'n>>,
    mig: &mut MigMemory<'n>,
    errors: &mut GpuErrors,
    newly_unsupported: &mut BTreeMap<Field, Vec<u32>>,
) -> (GpuSample, bool) {
    ctx.progress.at(Stage::Handle);
    let device = match ctx.nvml.device_by_index(slot.index) {
        Ok(d) => d,
        Err(e) => {
            let mut gpu = slot_sample(slot);
            let gone = mark_down(
                &mut gpu,
                slot,
                gpm_prev,
                "nvmlDeviceGetHandleByIndex_v2",
                &e,
            );
            return (gpu, gone);
        }
    };
    if !slot.identified {
        ctx.progress.at(Stage::Identify);
        if let Err(failure) = identify(ctx, &device, slot, errors) {
            let mut gpu = slot_sample(slot);
            let gone = mark_down(&mut gpu, slot, gpm_prev, failure.call, &failure.error);
            return (gpu, gone);
        }
        ctx.progress.identified(slot_sample(slot));
    }
    let mut gpu = slot_sample(slot);
    let mut shared = Shared::default();
    for &field in ctx.fields {
        let def = field.def();
        if def.kind == Kind::Label || slot.unsupported.contains(&field) {
            continue;
        }
        if field == Field::XidErrors {
            continue; // from the XID listener, see `attach_xids`
        }
        ctx.progress.at(Stage::Field(field));
        match read(ctx, &device, def.source, &mut shared, gpm_prev) {
            Ok(value) => {
                errors.answered(def.source.call_name());
                if let Source::Gpm(..) = def.source {
                    errors.answered("nvmlGpmSampleGet");
                }
                gpu.set(field, value);
            }
            Err(e) => match verdict(&e) {
                Verdict::Unsupported => {
                    log::debug!(
                        "GPU {} ({}): {} is not available ({}: {e}); series left out",
                        slot.index,
                        slot.name,
                        def.name,
                        def.source.call_name()
                    );
                    slot.unsupported.insert(field);
                    newly_unsupported.entry(field).or_default().push(slot.index);
                }
                Verdict::Absent => {}
                Verdict::Failed => errors.fail(failed_call(def.source, &shared), &e),
                Verdict::Lost | Verdict::DriverGone => {
                    let call = failed_call(def.source, &shared);
                    let gone = mark_down(&mut gpu, slot, gpm_prev, call, &e);
                    return (gpu, gone);
                }
            },
        }
    }
    if ctx.processes {
        ctx.progress.at(Stage::Processes);
        match read_processes(&device, slot, ctx.proc_root, errors) {
            Ok(list) => gpu.processes = list,
            Err(failure) => match failure.verdict() {
                Verdict::Lost | Verdict::DriverGone => {
                    let gone = mark_down(&mut gpu, slot, gpm_prev, failure.call, &failure.error);
                    return (gpu, gone);
                }
                Verdict::Failed => errors.fail(failure.call, &failure.error),
                Verdict::Unsupported | Verdict::Absent => {}
            },
        }
    }
    let reads = Reads {
        nvml: ctx.nvml,
        fields: ctx.fields,
        gpm_ids: ctx.gpm_ids,
    };
    gpu.mig = read_instances(&reads, &device, ctx.instances, mig, errors);
    (gpu, false)
}

/// XID history is not a reading: it stays on a GPU that went down (XID 79 is
/// how a GPU falling off the bus announces itself), while the last-XID gauge,
/// like every DCGM field, is reported only for a GPU that is up.
pub(super) fn attach_xids(gpu: &mut GpuSample, xid: Option<&XidListener>, fields: &[Field]) {
    let Some(record) = xid.and_then(|x| x.record(gpu.index)) else {
        return;
    };
    if gpu.up && fields.contains(&Field::XidErrors) {
        gpu.set(Field::XidErrors, Some(Value::Int(record.last.unwrap_or(0))));
    }
    gpu.xid_counts = record.counts;
}

/// Marks a GPU down after `call` failed with `e`: its readings go, its GPM
/// baseline goes (a ratio must not span the outage), and its identity is
/// read again when it answers (a reset or replaced board). Returns whether
/// NVML itself is gone, not just this GPU.
fn mark_down<'n>(
    gpu: &mut GpuSample,
    slot: &mut Slot,
    gpm_prev: &mut Option<GpmSample<'n>>,
    call: &'static str,
    e: &NvmlError,
) -> bool {
    *gpm_prev = None;
    slot.identified = false;
    slot.was_down = true;
    gpu.clear_values();
    gpu.up = false;
    gpu.down_reason = Some(DownReason {
        call,
        error: error_text(e),
    });
    matches!(verdict(e), Verdict::DriverGone)
}

/// Sorts out one identification call: the value; `None` when NVML cannot
/// give it, for good (not supported) or for now (counted, and `retry` set
/// so that the GPU is identified again next sample); or the error that takes
/// the GPU down (lost, driver gone).
fn settle<T>(
    call: &'static str,
    result: Result<T, NvmlError>,
    errors: &mut GpuErrors,
    retry: &mut bool,
) -> Result<Option<T>, NvmlFailure> {
    match result {
        Ok(v) => {
            errors.answered(call);
            Ok(Some(v))
        }
        Err(e) => match verdict(&e) {
            Verdict::Lost | Verdict::DriverGone => Err(NvmlFailure::new(call, e)),
            Verdict::Unsupported => Ok(None),
            Verdict::Absent => {
                *retry = true;
                Ok(None)
            }
            Verdict::Failed => {
                log::debug!("{call} failed: {e}; reading it again next sample");
                errors.fail(call, &e);
                *retry = true;
                Ok(None)
            }
        },
    }
}

/// Reads the static identity and label fields of a GPU. A GPU whose UUID
/// NVML cannot give is not reported (its series would carry `UUID=""`).
fn identify(
    ctx: &Ctx<'_, '_>,
    device: &Device<'_>,
    slot: &mut Slot,
    errors: &mut GpuErrors,
) -> Result<(), NvmlFailure> {
    let mut retry = false;
    slot.uuid = device
        .uuid()
        .map_err(|e| NvmlFailure::new("nvmlDeviceGetUUID", e))?;
    if let Some(name) = settle("nvmlDeviceGetName", device.name(), errors, &mut retry)? {
        slot.name = name;
    }
    if let Some(pci) = settle(
        "nvmlDeviceGetPciInfo_v3",
        device.pci_info(),
        errors,
        &mut retry,
    )? {
        slot.pci_bus_id = pci.bus_id;
    }
    let minor = device.minor_number();
    if let Some(minor) = settle("nvmlDeviceGetMinorNumber", minor, errors, &mut retry)? {
        slot.minor_number = Some(minor);
    }
    for &field in ctx.fields {
        let Source::Label(label) = field.def().source else {
            continue;
        };
        let call = field.def().source.call_name();
        let text = match label {
            LabelSource::DriverVersion => ctx
                .system
                .driver_version
                .clone()
                .ok_or(NvmlError::NotSupported),
            LabelSource::NvmlVersion => ctx
                .system
                .nvml_version
                .clone()
                .ok_or(NvmlError::NotSupported),
            LabelSource::Brand => device.brand().map(|b| format!("{b:?}")),
            LabelSource::Serial => device.serial(),
            LabelSource::InfoRom(object) => device.info_rom_version(object),
            LabelSource::InfoRomImage => device.info_rom_image_version(),
            LabelSource::Vbios => device.vbios_version(),
        };
        match settle(call, text, errors, &mut retry)? {
            Some(t) => {
                slot.labels.insert(field, t);
            }
            None => {
                slot.labels.remove(&field);
                log::info!("GPU {}: label {} not available", slot.index, field.name());
            }
        }
    }
    slot.identified = !retry;
    Ok(())
}

/// Reads one source. `Ok(None)`: nothing to report yet (first GPM interval).
fn read<'n>(
    ctx: &Ctx<'_, 'n>,
    device: &Device<'n>,
    source: Source,
    shared: &mut Shared,
    gpm_prev: &mut Option<GpmSample<'n>>,
) -> Result<Option<Value>, NvmlError> {
    let int = |v: u32| Ok(Some(Value::Int(u64::from(v))));
    match source {
        Source::Clock(c) => int(device.clock_info(c)?),
        Source::MaxClock(c) => int(device.max_clock_info(c)?),
        Source::GpuTemp => int(device.temperature(TemperatureSensor::Gpu)?),
        Source::PowerUsage => Ok(Some(Value::Float(
            f64::from(device.power_usage()?) / 1000.0,
        ))),
        Source::TotalEnergy => Ok(Some(Value::Int(device.total_energy_consumption()?))),
        Source::PcieReplay => int(device.pcie_replay_counter()?),
        Source::GpuUtil | Source::MemCopyUtil => {
            let u = shared
                .utilization
                .get_or_insert_with(|| device.utilization_rates())
                .as_ref()
                .map_err(clone_error)?;
            int(if source == Source::GpuUtil {
                u.gpu
            } else {
                u.memory
            })
        }
        Source::EncUtil => int(device.encoder_utilization()?.utilization),
        Source::DecUtil => int(device.decoder_utilization()?.utilization),
        Source::LastXid => Ok(None),
        Source::Violation(policy) => Ok(Some(Value::Int(
            device.violation_status(policy)?.violation_time,
        ))),
        Source::Memory(part) => {
            let m = shared
                .memory
                .get_or_insert_with(|| device.memory_info())
                .as_ref()
                .map_err(clone_error)?;
            let bytes = match part {
                MemoryPart::Free => m.free,
                MemoryPart::Used => m.used,
                MemoryPart::Reserved => m.reserved,
                MemoryPart::Total => m.total,
                MemoryPart::UsedRatio => {
                    // DCGM's DCGM_FI_DEV_FB_USED_PERCENT: Used / (Total - Reserved).
                    let usable = m.total.saturating_sub(m.reserved);
                    return Ok((usable > 0).then(|| Value::Float(m.used as f64 / usable as f64)));
                }
            };
            Ok(Some(Value::Int(bytes >> 20)))
        }
        Source::Ecc(error, counter) => {
            Ok(Some(Value::Int(device.total_ecc_errors(error, counter)?)))
        }
        Source::RetiredPages(cause) => {
            Ok(Some(Value::Int(device.retired_pages(cause)?.len() as u64)))
        }
        Source::RetiredPending => Ok(Some(Value::Int(u64::from(
            device.are_pages_pending_retired()?,
        )))),
        Source::FieldValue(id) | Source::FieldValueScaled(id, _) => {
            let values = shared
                .field_values
                .get_or_insert_with(|| read_field_values(device, ctx.field_value_ids))
                .as_ref()
                .map_err(clone_error)?;
            match (values.get(&id), source) {
                (Some(Ok(v)), Source::FieldValueScaled(_, scale)) => {
                    Ok(Some(Value::Float(v.as_f64() * scale)))
                }
                (Some(Ok(v)), _) => Ok(Some(*v)),
                // An entry NVML calls an invalid argument is a link (or
                // scope) this GPU does not have: the field is not there.
                (Some(Err(NvmlError::InvalidArg)), _) => Err(NvmlError::NotSupported),
                (Some(Err(e)), _) => Err(clone_error(e)),
                (None, _) => Err(NvmlError::NotSupported),
            }
        }
        Source::PersistenceMode => Ok(Some(Value::Int(u64::from(device.is_in_persistent_mode()?)))),
        Source::MigMode => int(device.mig_mode()?.current),
        Source::Gpm(metric, scale) => {
            let results = shared
                .gpm
                .get_or_insert_with(|| read_gpm(ctx, device, gpm_prev))
                .as_ref()
                .map_err(|failure| clone_error(&failure.error))?;
            let Some(results) = results else {
                return Ok(None);
            };
            match results.get(&metric) {
                Some(Ok(v)) => Ok(Some(Value::Float(v * scale))),
                Some(Err(e)) => Err(clone_error(e)),
                None => Err(NvmlError::NotSupported),
            }
        }
        // A fanless board (every datacenter GPU) answers fan 0 as an invalid
        // argument, not "not supported" (an H200 on driver 580 does): with no
        // fans the field is simply not there.
        Source::FanSpeed => match device.fan_speed(0) {
            Err(NvmlError::InvalidArg) if device.num_fans().is_ok_and(|n| n == 0) => {
                Err(NvmlError::NotSupported)
            }
            speed => int(speed?),
        },
        Source::PState => int(device.performance_state()?.as_c()),
        Source::PowerLimit => Ok(Some(Value::Float(
            f64::from(device.power_management_limit()?) / 1000.0,
        ))),
        Source::EnforcedPowerLimit => Ok(Some(Value::Float(
            f64::from(device.enforced_power_limit()?) / 1000.0,
        ))),
        Source::ThrottleReasons => Ok(Some(Value::Int(device.current_throttle_reasons()?.bits()))),
        Source::PcieThroughput(counter) => int(device.pcie_throughput(counter)?),
        Source::PcieLinkGen => int(device.current_pcie_link_gen()?),
        Source::PcieLinkWidth => int(device.current_pcie_link_width()?),
        Source::Label(_) => Ok(None),
    }
}

fn read_field_values(device: &Device<'_>, ids: &[FieldId]) -> Result<FieldValues, NvmlError> {
    let samples = device.field_values_for(ids)?;
    Ok(ids
        .iter()
        .zip(samples)
        .map(|(id, sample)| {
            let value = sample.and_then(|s| s.value).and_then(|v| match v {
                SampleValue::F64(f) => Ok(Value::Float(f)),
                SampleValue::U32(u) => Ok(Value::Int(u64::from(u))),
                SampleValue::U64(u) => Ok(Value::Int(u)),
                SampleValue::I64(i) => u64::try_from(i)
                    .map(Value::Int)
                    .map_err(|_| NvmlError::NoData),
            });
            (id.0, value)
        })
        .collect())
}

/// Takes this interval's GPM sample; with the previous one, computes the
/// metrics. `Ok(None)` on the first interval.
fn read_gpm<'n>(
    ctx: &Ctx<'_, 'n>,
    device: &Device<'n>,
    prev: &mut Option<GpmSample<'n>>,
) -> Result<GpmValues, NvmlFailure> {
    // Allocating and taking the sample are one nvml-wrapper call; a failure
    // of either is counted under the second.
    let sample = device
        .gpm_sample()
        .map_err(|e| NvmlFailure::new("nvmlGpmSampleGet", e))?;
    let Some(before) = prev.replace(sample) else {
        return Ok(None);
    };
    let after = prev.as_ref().expect("just stored");
    let results = nvml_wrapper::gpm::gpm_metrics_get(ctx.nvml, &before, after, ctx.gpm_ids)
        .map_err(|e| NvmlFailure::new("nvmlGpmMetricsGet", e))?;
    Ok(Some(
        ctx.gpm_ids
            .iter()
            .copied()
            .zip(results)
            .map(|(id, r)| (id, r.map(|m| m.value)))
            .collect(),
    ))
}
