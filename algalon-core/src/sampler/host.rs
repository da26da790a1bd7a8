//! Host-level facts: driver, NVML and CUDA driver versions.

use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;

use crate::nvml_error::{ErrorCounts, Verdict, count_error, verdict};

/// Host-level facts, read at NVML initialisation and again while one that
/// NVML could not give for now is missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct System {
    pub(super) driver_version: Option<String>,
    pub(super) nvml_version: Option<String>,
    pub(super) cuda_driver_version: Option<i32>,
    /// A fact failed for a reason that may pass: read them again.
    pub(super) retry: bool,
}

pub(super) fn read_system(nvml: &Nvml, errors: &mut ErrorCounts) -> System {
    let mut retry = false;
    let driver_version = system_fact(
        "nvmlSystemGetDriverVersion",
        nvml.sys_driver_version(),
        errors,
        &mut retry,
    );
    let nvml_version = system_fact(
        "nvmlSystemGetNVMLVersion",
        nvml.sys_nvml_version(),
        errors,
        &mut retry,
    );
    let cuda_driver_version = system_fact(
        "nvmlSystemGetCudaDriverVersion_v2",
        nvml.sys_cuda_driver_version(),
        errors,
        &mut retry,
    );
    System {
        driver_version,
        nvml_version,
        cuda_driver_version,
        retry,
    }
}

/// One host fact: `None` when NVML cannot give it; a failure other than
/// "not supported" is counted and sets `retry`.
fn system_fact<T>(
    call: &'static str,
    result: Result<T, NvmlError>,
    errors: &mut ErrorCounts,
    retry: &mut bool,
) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            if !matches!(verdict(&e), Verdict::Unsupported) {
                log::debug!("{call} failed: {e}; reading it again next sample");
                count_error(errors, None, call, &e);
                *retry = true;
            }
            None
        }
    }
}
