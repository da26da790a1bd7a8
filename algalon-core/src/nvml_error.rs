//! The NVML error taxonomy: how one failed call affects a reading, its
//! stable name (a label value), its text as users read it, the counts the
//! snapshot reports (by GPU, call and error), and the once-per-change log
//! of a GPU's calls that keep failing.
//!
//! Below both NVML callers (the sampler and the XID listener), so that
//! neither imports the other.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

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

/// NVML failures by GPU (its NVML index; `None` for a host-level call such
/// as `nvmlSystemGetDriverVersion` or the XID event set's wait), call and
/// error name.
pub(crate) type ErrorCounts = BTreeMap<(Option<u32>, &'static str, &'static str), u64>;

/// Counts one failure of `call` (on `gpu`, `None` for a host-level call).
pub(crate) fn count_error(
    errors: &mut ErrorCounts,
    gpu: Option<u32>,
    call: &'static str,
    e: &NvmlError,
) {
    *errors.entry((gpu, call, error_name(e))).or_default() += 1;
}

/// Adds the counts of `more` to `errors`.
pub(crate) fn merge_counts(errors: &mut ErrorCounts, more: ErrorCounts) {
    for (key, n) in more {
        *errors.entry(key).or_default() += n;
    }
}

/// NVML's error text as users should read it, in every face (API, `/health`,
/// logs, reports): nvml-wrapper's message for `GpuLost` misspells
/// "inaccessible", so it is corrected here, where the core renders it.
pub fn error_text(e: &NvmlError) -> String {
    e.to_string().replace("inacessible", "inaccessible")
}

/// The failures and answers of one GPU's calls during one sample, read by
/// that GPU's worker: counted for `algalon_nvml_errors_total{gpu,call,error}`
/// and fed to the GPU's [`FailureLog`].
#[derive(Debug)]
pub(crate) struct GpuErrors {
    gpu: u32,
    /// This sample's failures, by GPU, call and error.
    pub(crate) counts: ErrorCounts,
    /// Calls that failed this sample: error name and text of the last failure.
    failed: BTreeMap<&'static str, (&'static str, String)>,
    /// Calls that answered this sample.
    answered: Vec<&'static str>,
}

impl GpuErrors {
    pub(crate) fn new(gpu: u32) -> Self {
        GpuErrors {
            gpu,
            counts: BTreeMap::new(),
            failed: BTreeMap::new(),
            answered: Vec::new(),
        }
    }

    /// `call` failed with `e` (a real failure, not "not supported"): counted
    /// and remembered for the log.
    pub(crate) fn fail(&mut self, call: &'static str, e: &NvmlError) {
        count_error(&mut self.counts, Some(self.gpu), call, e);
        self.failed.insert(call, (error_name(e), error_text(e)));
    }

    /// `call` answered.
    pub(crate) fn answered(&mut self, call: &'static str) {
        if !self.answered.contains(&call) {
            self.answered.push(call);
        }
    }
}

/// A call of one GPU that keeps failing.
#[derive(Debug)]
struct Failing {
    error: &'static str,
    since: Instant,
    failures: u64,
}

/// Which of one GPU's calls are failing, so that a persistent failure
/// (`NoPermission`, `Unknown`, …) is logged once when it starts, again only
/// when it changes to another error, and once when the call answers again —
/// never at every sample. "Not supported" is not a failure (logged once as
/// "not available" by the sampler) and never reaches this log.
#[derive(Debug, Default)]
pub(crate) struct FailureLog {
    failing: HashMap<&'static str, Failing>,
}

impl FailureLog {
    /// Logs what changed with this sample's `errors` of GPU `gpu` (`uuid`).
    pub(crate) fn update(&mut self, errors: &GpuErrors, uuid: &str) {
        let gpu = errors.gpu;
        let now = Instant::now();
        for (&call, (error, text)) in &errors.failed {
            match self.failing.get_mut(call) {
                Some(f) if f.error == *error => f.failures += 1,
                previous => {
                    let change = match previous {
                        Some(f) => format!(" (it failed with {} before)", f.error),
                        None => String::new(),
                    };
                    log::warn!(
                        gpu, uuid, call, error = *error;
                        "GPU {gpu} ({uuid}): {call} fails: {text}{change}; the readings it \
                         gives are left out and counted in algalon_nvml_errors_total until \
                         it answers again"
                    );
                    self.failing.insert(
                        call,
                        Failing {
                            error,
                            since: now,
                            failures: 1,
                        },
                    );
                }
            }
        }
        for &call in &errors.answered {
            if errors.failed.contains_key(call) {
                continue;
            }
            if let Some(f) = self.failing.remove(call) {
                let seconds = now.saturating_duration_since(f.since).as_secs_f64();
                log::info!(
                    gpu, uuid, call, error = f.error, seconds;
                    "GPU {gpu} ({uuid}): {call} answers again after {} with {} over {seconds:.1} s",
                    plural(f.failures, "failure", "failures"),
                    f.error,
                );
            }
        }
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
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
