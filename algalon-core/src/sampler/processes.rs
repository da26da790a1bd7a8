//! The processes on one GPU: NVML's compute and graphics lists, their
//! utilization, and who they are (from `/proc`).

use nvml_wrapper::Device;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;

use super::slot::Slot;
use crate::nvml_error::{GpuErrors, NvmlFailure, Verdict, verdict};
use crate::procinfo::{self, ProcessIdentity};
use crate::snapshot::{ProcessKind, ProcessSample};

/// The GPU's processes. `Err` names the call that failed: then no process
/// list is reported this sample (a partial one would read as "gone").
pub(super) fn read_processes(
    device: &Device<'_>,
    slot: &mut Slot,
    proc_root: &std::path::Path,
    errors: &mut GpuErrors,
) -> Result<Vec<ProcessSample>, NvmlFailure> {
    let mut out: Vec<ProcessSample> = Vec::new();
    for (kind, call) in [
        (
            ProcessKind::Compute,
            "nvmlDeviceGetComputeRunningProcesses_v3",
        ),
        (
            ProcessKind::Graphics,
            "nvmlDeviceGetGraphicsRunningProcesses_v3",
        ),
    ] {
        let list = match kind {
            ProcessKind::Compute => device.running_compute_processes(),
            ProcessKind::Graphics => device.running_graphics_processes(),
        };
        let list = match list {
            Ok(l) => {
                errors.answered(call);
                l
            }
            Err(NvmlError::NotSupported | NvmlError::FunctionNotFound) => continue,
            Err(e) => return Err(NvmlFailure::new(call, e)),
        };
        for p in list {
            if out.iter().any(|o| o.pid == p.pid) {
                continue;
            }
            out.push(ProcessSample {
                pid: p.pid,
                identity: ProcessIdentity::default(),
                kind,
                used_memory_bytes: match p.used_gpu_memory {
                    UsedGpuMemory::Used(b) => Some(b),
                    UsedGpuMemory::Unavailable => None,
                },
                sm_util: None,
                mem_util: None,
            });
        }
    }
    if !out.is_empty() {
        match device.process_utilization_stats(slot.last_process_ts) {
            Ok(samples) => {
                errors.answered("nvmlDeviceGetProcessUtilization");
                for s in samples {
                    slot.last_process_ts = slot.last_process_ts.max(s.timestamp);
                    if let Some(p) = out.iter_mut().find(|p| p.pid == s.pid) {
                        p.sm_util = Some(s.sm_util);
                        p.mem_util = Some(s.mem_util);
                    }
                }
            }
            Err(e) => {
                let call = "nvmlDeviceGetProcessUtilization";
                match verdict(&e) {
                    Verdict::Lost | Verdict::DriverGone => return Err(NvmlFailure::new(call, e)),
                    Verdict::Failed => errors.fail(call, &e),
                    Verdict::Unsupported | Verdict::Absent => {}
                }
                log::debug!("GPU {}: process utilization unavailable: {e}", slot.index);
            }
        }
    }
    out.sort_by_key(|p| p.pid);
    // Keep identities only for live processes: the cache never outgrows the
    // process list.
    let mut known = std::mem::take(&mut slot.identities);
    for p in &mut out {
        let identity = known
            .remove(&p.pid)
            .unwrap_or_else(|| procinfo::identify(proc_root, p.pid));
        p.identity = identity.clone();
        slot.identities.insert(p.pid, identity);
    }
    Ok(out)
}
