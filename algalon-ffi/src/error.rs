//! Result codes, the thread-local last error and the panic boundary.

use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::util::write_str;

/// What a call did. Codes are explicit and never reused: a code that is
/// retired stays unassigned. Codes 1–99 are about the call itself, 100–199
/// mirror the core's errors (`algalon_last_error` gives the details).
///
/// In C this is a `uint32_t`; compare against the `ALGALON_RESULT_*` names.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum algalon_result {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullParameter = 1,
    /// A string did not fit the buffer; `*out_n` holds the size needed
    /// (including the NUL). Nothing was written to the buffer.
    InsufficientSize = 2,
    /// Algalon panicked (a bug: please report it with `algalon_last_error`).
    /// The handle involved is still safe to free.
    Panic = 3,
    /// An argument was out of its domain (not UTF-8, empty, …).
    InvalidArgument = 4,
    /// An index was not below the count (`algalon_snapshot_gpu_count`, …).
    OutOfRange = 5,
    /// The reading or value asked for is absent: NVML cannot give it on this
    /// GPU, the GPU is down, or the sampler does not read it. Never a 0.
    NotAvailable = 6,
    /// `algalon_job_end` was called on a job that had already ended.
    AlreadyEnded = 7,
    /// A field name is not in Algalon's catalog.
    UnknownField = 8,
    /// The NVML library could not be loaded (no NVIDIA driver installed, or
    /// a wrong `ALGALON_NVML_LIB` / `algalon_options_set_nvml_lib` path).
    NvmlNotFound = 100,
    /// NVML loaded but failed to initialise (driver not loaded, no
    /// permission, library/driver version mismatch).
    NvmlInit = 101,
    /// An NVML call the sampler cannot do without failed.
    NvmlCall = 102,
    /// A collectors CSV file could not be read.
    CollectorsIo = 103,
    /// A collectors CSV row is malformed or names an unknown field.
    CollectorsParse = 104,
    /// A device selector (index or UUID) matched no GPU.
    NoSuchDevice = 105,
    /// The background sampling thread could not be started.
    Thread = 106,
    /// An unusable sampling interval was given.
    InvalidInterval = 107,
    /// A core error this version of the C library has no code for yet.
    CoreError = 199,
}

/// Every code, in order.
static ALL_RESULTS: &[algalon_result] = &[
    algalon_result::Ok,
    algalon_result::NullParameter,
    algalon_result::InsufficientSize,
    algalon_result::Panic,
    algalon_result::InvalidArgument,
    algalon_result::OutOfRange,
    algalon_result::NotAvailable,
    algalon_result::AlreadyEnded,
    algalon_result::UnknownField,
    algalon_result::NvmlNotFound,
    algalon_result::NvmlInit,
    algalon_result::NvmlCall,
    algalon_result::CollectorsIo,
    algalon_result::CollectorsParse,
    algalon_result::NoSuchDevice,
    algalon_result::Thread,
    algalon_result::InvalidInterval,
    algalon_result::CoreError,
];

impl algalon_result {
    /// Every code, for tests and `algalon_result_message`.
    pub fn all() -> &'static [algalon_result] {
        ALL_RESULTS
    }

    /// The code for a raw value from C, if it is one.
    pub fn from_u32(code: u32) -> Option<algalon_result> {
        ALL_RESULTS.iter().copied().find(|r| *r as u32 == code)
    }

    /// A fixed one-line description of the code.
    pub fn description(self) -> &'static str {
        use algalon_result as R;
        match self {
            R::Ok => "success",
            R::NullParameter => "a required pointer argument was NULL",
            R::InsufficientSize => {
                "the buffer is too small: *out_n holds the size needed, including the NUL"
            }
            R::Panic => "Algalon panicked (a bug): see algalon_last_error and please report it",
            R::InvalidArgument => "an argument is invalid",
            R::OutOfRange => "an index is out of range",
            R::NotAvailable => "the reading is not available (never reported as 0)",
            R::AlreadyEnded => "the job has already ended",
            R::UnknownField => "no such field in Algalon's catalog",
            R::NvmlNotFound => {
                "the NVIDIA Management Library (libnvidia-ml.so.1) could not be loaded"
            }
            R::NvmlInit => "NVML failed to initialise",
            R::NvmlCall => "an NVML call failed",
            R::CollectorsIo => "the collectors file could not be read",
            R::CollectorsParse => "the collectors file is invalid",
            R::NoSuchDevice => "no GPU matches the device selector",
            R::Thread => "the sampling thread could not be started",
            R::InvalidInterval => "the sampling interval is invalid",
            R::CoreError => "an Algalon error without a specific code: see algalon_last_error",
        }
    }
}

/// Why a call failed: a code and a one-line message for `algalon_last_error`.
#[derive(Debug)]
pub(crate) struct Fail {
    pub(crate) code: algalon_result,
    pub(crate) message: String,
}

impl Fail {
    pub(crate) fn new(code: algalon_result, message: impl Into<String>) -> Fail {
        Fail {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn null(arg: &str) -> Fail {
        Fail::new(
            algalon_result::NullParameter,
            format!("argument `{arg}` is NULL"),
        )
    }
}

impl From<algalon_core::Error> for Fail {
    fn from(e: algalon_core::Error) -> Fail {
        use algalon_core::Error as E;
        use algalon_result as R;
        let code = match &e {
            E::NvmlNotFound { .. } => R::NvmlNotFound,
            E::NvmlInit { .. } => R::NvmlInit,
            E::Nvml { .. } => R::NvmlCall,
            E::CollectorsIo { .. } => R::CollectorsIo,
            E::CollectorsParse { .. } => R::CollectorsParse,
            E::NoSuchDevice { .. } => R::NoSuchDevice,
            E::Thread(_) => R::Thread,
            E::InvalidInterval(_) => R::InvalidInterval,
            _ => R::CoreError,
        };
        // The core's Display is one line already; keep it one line even if a
        // wrapped OS or NVML message carries a newline.
        let message = e.to_string().replace(['\n', '\r'], " ");
        Fail { code, message }
    }
}

pub(crate) type FfiResult<T = ()> = Result<T, Fail>;

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

pub(crate) fn set_last_error(message: String) {
    LAST_ERROR.with(|e| *e.borrow_mut() = message);
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Runs the body of the exported function `func`: a failure is recorded
/// as the thread's last error (prefixed with `func`), a panic becomes
/// `ALGALON_RESULT_PANIC`.
pub(crate) fn boundary(func: &str, body: impl FnOnce() -> FfiResult) -> algalon_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => algalon_result::Ok,
        Ok(Err(fail)) => {
            set_last_error(format!("{func}: {}", fail.message));
            fail.code
        }
        Err(payload) => {
            set_last_error(format!(
                "{func}: panicked: {} (a bug in Algalon: please report it)",
                panic_message(&*payload)
            ));
            algalon_result::Panic
        }
    }
}

/// Like [`boundary`] but leaves the last error alone: for the functions that
/// read it (`algalon_last_error`, `algalon_result_message`), so asking for
/// the size never overwrites the message being asked for.
fn boundary_quiet(body: impl FnOnce() -> FfiResult) -> algalon_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => algalon_result::Ok,
        Ok(Err(fail)) => fail.code,
        Err(_) => algalon_result::Panic,
    }
}

/// The panic boundary of functions that return a value rather than a
/// result (`algalon_version`, the `_free` functions): on panic, `fallback`.
pub(crate) fn boundary_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// Copies the calling thread's last error message into `buf`, by the string
/// protocol: on success `*out_n` is its length; when `len` is too small,
/// nothing is written to `buf`, `*out_n` is the size needed including the
/// NUL, and the result is `ALGALON_RESULT_INSUFFICIENT_SIZE`.
///
/// The message is one line naming the function that failed and why (for a
/// core error, the core's own text: what failed, with what input, what to
/// do). It is set by every call that fails on this thread and left
/// unchanged by calls that succeed, so read it right after the failing
/// call. Before any failure it is the empty string. This function (and
/// `algalon_result_message`) never changes it, even when it fails itself.
///
/// Thread safety: any thread; each thread has its own last error.
///
/// # Safety
///
/// `buf` must be valid for `len` bytes of writes (it may be NULL when `len`
/// is 0); `out_n` must be valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_last_error(
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> algalon_result {
    boundary_quiet(|| {
        let message = LAST_ERROR.with(|e| e.borrow().clone());
        // SAFETY: the caller's contract above.
        unsafe { write_str(&message, buf, len, out_n) }
    })
}

/// Copies a fixed, one-line description of `result` (an `algalon_result`
/// value) into `buf`, by the string protocol (see `algalon_last_error`).
/// An unknown code gives `"unknown algalon_result code N"`. Does not change
/// the thread's last error.
///
/// Thread safety: any thread.
///
/// # Safety
///
/// `buf` must be valid for `len` bytes of writes (it may be NULL when `len`
/// is 0); `out_n` must be valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_result_message(
    result: u32,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> algalon_result {
    boundary_quiet(|| {
        let text = match algalon_result::from_u32(result) {
            Some(r) => r.description().to_owned(),
            None => format!("unknown algalon_result code {result}"),
        };
        // SAFETY: the caller's contract above.
        unsafe { write_str(&text, buf, len, out_n) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_error() -> String {
        LAST_ERROR.with(|e| e.borrow().clone())
    }

    #[test]
    fn panics_become_a_result_and_a_message() {
        let r = boundary("algalon_test_fn", || panic!("boom {}", 42));
        assert_eq!(r, algalon_result::Panic);
        let msg = last_error();
        assert!(
            msg.starts_with("algalon_test_fn: panicked: boom 42"),
            "{msg}"
        );
        assert_eq!(boundary_quiet(|| panic!("x")), algalon_result::Panic);
        assert_eq!(boundary_value(7, || panic!("y")), 7);
    }

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for r in algalon_result::all() {
            assert!(seen.insert(*r as u32), "{r:?} reuses a code");
            assert_eq!(algalon_result::from_u32(*r as u32), Some(*r));
            assert!(!r.description().contains('\n'));
        }
        assert_eq!(algalon_result::from_u32(9999), None);
    }

    #[test]
    fn core_errors_keep_their_message() {
        let fail = Fail::from(algalon_core::Error::InvalidInterval(
            std::time::Duration::ZERO,
        ));
        assert_eq!(fail.code, algalon_result::InvalidInterval);
        assert!(
            fail.message.contains("use at least 1 ms"),
            "{}",
            fail.message
        );
    }
}
