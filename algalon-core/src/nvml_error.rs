//! The NVML error taxonomy: how one failed call affects a reading, its
//! stable name (a label value), and the counts the snapshot reports.
//!
//! Below both NVML callers (the sampler and the XID listener), so that
//! neither imports the other.

use std::collections::BTreeMap;

use nvml_wrapper::error::NvmlError;

/// One NVML call that failed: which function, and NVML's error.
#[derive(Debug)]
pub(crate) struct NvmlFailure {
    /// The NVML function, e.g. `nvmlDeviceGetUUID`.
    pub call: &'static str,
    /// What NVML answered.
    pub error: NvmlError,
}

impl NvmlFailure {
    pub(crate) fn new(call: &'static str, error: NvmlError) -> Self {
        NvmlFailure { call, error }
    }

    /// How this failure affects the reading.
    pub(crate) fn verdict(&self) -> Verdict {
        verdict(&self.error)
    }
}

/// NVML failures by call and error name.
pub(crate) type ErrorCounts = BTreeMap<(&'static str, &'static str), u64>;

/// Counts one failure of `call` in `errors`.
pub(crate) fn count_error(errors: &mut ErrorCounts, call: &'static str, e: &NvmlError) {
    *errors.entry((call, error_name(e))).or_default() += 1;
}

/// How one NVML error affects a reading.
pub(crate) enum Verdict {
    /// The GPU cannot give this reading at all: remember, log once.
    Unsupported,
    /// The GPU is gone: mark it down.
    Lost,
    /// NVML itself is gone: mark down and re-initialise.
    DriverGone,
    /// Nothing to report this time (no data yet).
    Absent,
    /// A real failure: leave the reading out and count it.
    Failed,
}

pub(crate) fn verdict(e: &NvmlError) -> Verdict {
    match e {
        NvmlError::NotSupported
        | NvmlError::FunctionNotFound
        | NvmlError::FailedToLoadSymbol(_) => Verdict::Unsupported,
        NvmlError::GpuLost | NvmlError::ResetRequired => Verdict::Lost,
        NvmlError::DriverNotLoaded | NvmlError::Uninitialized | NvmlError::LibRmVersionMismatch => {
            Verdict::DriverGone
        }
        NvmlError::NoData | NvmlError::NotFound => Verdict::Absent,
        _ => Verdict::Failed,
    }
}

/// A short, stable name for an NVML error (used as a label value).
pub fn error_name(e: &NvmlError) -> &'static str {
    match e {
        NvmlError::Uninitialized => "Uninitialized",
        NvmlError::InvalidArg => "InvalidArg",
        NvmlError::NotSupported => "NotSupported",
        NvmlError::NoPermission => "NoPermission",
        NvmlError::NotFound => "NotFound",
        NvmlError::InsufficientSize(_) => "InsufficientSize",
        NvmlError::InsufficientPower => "InsufficientPower",
        NvmlError::DriverNotLoaded => "DriverNotLoaded",
        NvmlError::Timeout => "Timeout",
        NvmlError::IrqIssue => "IrqIssue",
        NvmlError::LibraryNotFound => "LibraryNotFound",
        NvmlError::FunctionNotFound | NvmlError::FailedToLoadSymbol(_) => "FunctionNotFound",
        NvmlError::CorruptedInfoROM => "CorruptedInfoROM",
        NvmlError::GpuLost => "GpuLost",
        NvmlError::ResetRequired => "ResetRequired",
        NvmlError::OperatingSystem => "OperatingSystem",
        NvmlError::LibRmVersionMismatch => "LibRmVersionMismatch",
        NvmlError::InUse => "InUse",
        NvmlError::InsufficientMemory => "InsufficientMemory",
        NvmlError::NoData => "NoData",
        NvmlError::Unknown => "Unknown",
        _ => "Other",
    }
}

/// `NvmlError` is not `Clone`; cached shared results hand out equivalents.
pub(crate) fn clone_error(e: &NvmlError) -> NvmlError {
    match e {
        NvmlError::Uninitialized => NvmlError::Uninitialized,
        NvmlError::InvalidArg => NvmlError::InvalidArg,
        NvmlError::NotSupported => NvmlError::NotSupported,
        NvmlError::NoPermission => NvmlError::NoPermission,
        NvmlError::NotFound => NvmlError::NotFound,
        NvmlError::InsufficientSize(s) => NvmlError::InsufficientSize(*s),
        NvmlError::DriverNotLoaded => NvmlError::DriverNotLoaded,
        NvmlError::Timeout => NvmlError::Timeout,
        NvmlError::FunctionNotFound => NvmlError::FunctionNotFound,
        NvmlError::FailedToLoadSymbol(s) => NvmlError::FailedToLoadSymbol(s.clone()),
        NvmlError::GpuLost => NvmlError::GpuLost,
        NvmlError::ResetRequired => NvmlError::ResetRequired,
        NvmlError::LibRmVersionMismatch => NvmlError::LibRmVersionMismatch,
        NvmlError::NoData => NvmlError::NoData,
        NvmlError::InsufficientMemory => NvmlError::InsufficientMemory,
        NvmlError::OperatingSystem => NvmlError::OperatingSystem,
        _ => NvmlError::Unknown,
    }
}
