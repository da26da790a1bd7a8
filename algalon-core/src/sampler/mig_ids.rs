//! A MIG device's GPU and compute instance ids, straight from NVML.
//!
//! nvml-wrapper 0.13 loads `nvmlDeviceGetGpuInstanceId` and
//! `nvmlDeviceGetComputeInstanceId` but has no safe wrapper for them, so
//! this module — the only `unsafe` in the crate — calls them through the
//! library table nvml-wrapper already holds. A driver whose library lacks
//! either symbol answers `NotSupported` here instead of the panic the
//! bindings' own accessors would raise.

#![allow(unsafe_code)]

use std::os::raw::c_uint;

use nvml_wrapper::Device;
use nvml_wrapper::error::{NvmlError, nvml_try};

/// `(gpu instance id, compute instance id)` of the MIG device `mig`.
pub(crate) fn instance_ids(mig: &Device<'_>) -> Result<(u32, u32), NvmlError> {
    let lib = mig.nvml().lib();
    let (Ok(gpu_instance), Ok(compute_instance)) = (
        lib.nvmlDeviceGetGpuInstanceId.as_ref(),
        lib.nvmlDeviceGetComputeInstanceId.as_ref(),
    ) else {
        return Err(NvmlError::NotSupported);
    };
    let (mut gi, mut ci): (c_uint, c_uint) = (0, 0);
    // SAFETY: `mig.handle()` is a device handle NVML gave out and the
    // `Device` borrows the `Nvml` that keeps the library initialised for
    // as long as it lives; each call writes one `unsigned int` through a
    // pointer to a live local. A handle gone stale (the instance destroyed
    // since it was enumerated) is an error code from NVML, not UB.
    unsafe {
        nvml_try(gpu_instance(mig.handle(), &mut gi))?;
        nvml_try(compute_instance(mig.handle(), &mut ci))?;
    }
    Ok((gi, ci))
}
