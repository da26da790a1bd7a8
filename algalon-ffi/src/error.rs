//! Result codes, the thread-local last error and the panic boundary.

use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};

use algalon_core::Error as CoreError;

use crate::util::write_str;

/// Builds a `#[repr(u32)]` result enum and everything derived from it from
/// one table, as rustls-ffi's `u32_enum_builder!` did. Each row is
///
/// ```text
/// /// doc comment (goes into the C header)
/// Variant = code => "one-line description" [from core::Error pattern],
/// ```
///
/// and gives the variant with its explicit code, its arm in
/// [`algalon_result::description`], its place in [`algalon_result::all`]
/// and [`algalon_result::from_u32`], and — with `from` — the core errors
/// it stands for in [`algalon_result::from_core`]. A repeated code is a
/// compile error (E0081); so is a `from` row after the catch-all `_`
/// (unreachable pattern, under `-D warnings`).
///
/// cbindgen reads the enum after macro expansion (`[parse.expand]` in
/// `cbindgen.toml`), so the header shows a plain C enum.
macro_rules! result_table {
    (
        $(#[$enum_meta:meta])*
        pub enum $name:ident {
            $(
                $(#[$meta:meta])*
                $variant:ident = $code:literal => $description:literal $(from $core:pat)?,
            )*
        }
    ) => {
        $(#[$enum_meta])*
        #[repr(u32)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $(
                $(#[$meta])*
                $variant = $code,
            )*
        }

        impl $name {
            /// Every code, in order.
            pub fn all() -> &'static [$name] {
                &[$($name::$variant),*]
            }

            /// The code for a raw value from C, if it is one.
            pub fn from_u32(code: u32) -> Option<$name> {
                match code {
                    $($code => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// A fixed one-line description of the code.
            pub fn description(self) -> &'static str {
                match self {
                    $($name::$variant => $description,)*
                }
            }

            /// The code a core error is reported with.
            pub fn from_core(error: &algalon_core::Error) -> $name {
                match error {
                    $($($core => $name::$variant,)?)*
                }
            }
        }
    };
}

result_table! {
    /// What a call did. Codes are explicit and never reused: a code that is
    /// retired stays unassigned. Codes 1–99 are about the call itself, 100–199
    /// mirror the core's errors (`algalon_last_error` gives the details).
    ///
    /// In C this is a `uint32_t`; compare against the `ALGALON_RESULT_*` names.
    pub enum algalon_result {
        /// Success.
        Ok = 0 => "success",
        /// A required pointer argument was NULL.
        NullParameter = 1 => "a required pointer argument was NULL",
        /// A string did not fit the buffer; `*out_n` holds the size needed
        /// (including the NUL). Nothing was written to the buffer.
        InsufficientSize = 2
            => "the buffer is too small: *out_n holds the size needed, including the NUL",
        /// Algalon panicked (a bug: please report it with `algalon_last_error`).
        /// The handle involved is still safe to free.
        Panic = 3
            => "Algalon panicked (a bug): see algalon_last_error and please report it",
        /// An argument was out of its domain (not UTF-8, empty, …).
        InvalidArgument = 4 => "an argument is invalid",
        /// An index was not below the count (`algalon_snapshot_gpu_count`, …).
        OutOfRange = 5 => "an index is out of range",
        /// The reading or value asked for is absent: NVML cannot give it on this
        /// GPU, the GPU is down, or the sampler does not read it. Never a 0.
        NotAvailable = 6 => "the reading is not available (never reported as 0)",
        /// `algalon_job_end` was called on a job that had already ended.
        AlreadyEnded = 7 => "the job has already ended",
        /// A field name is not in Algalon's catalog.
        UnknownField = 8 => "no such field in Algalon's catalog",
        /// The NVML library could not be loaded (no NVIDIA driver installed, or
        /// a wrong `ALGALON_NVML_LIB` / `algalon_options_set_nvml_lib` path).
        NvmlNotFound = 100
            => "the NVIDIA Management Library (libnvidia-ml.so.1) could not be loaded"
            from CoreError::NvmlNotFound { .. },
        /// NVML loaded but failed to initialise (driver not loaded, no
        /// permission, library/driver version mismatch).
        NvmlInit = 101 => "NVML failed to initialise" from CoreError::NvmlInit { .. },
        /// An NVML call the sampler cannot do without failed.
        NvmlCall = 102 => "an NVML call failed" from CoreError::Nvml { .. },
        /// A collectors CSV file could not be read.
        CollectorsIo = 103
            => "the collectors file could not be read" from CoreError::CollectorsIo { .. },
        /// A collectors CSV row is malformed or names an unknown field.
        CollectorsParse = 104
            => "the collectors file is invalid" from CoreError::CollectorsParse { .. },
        /// A device selector (index or UUID) matched no GPU.
        NoSuchDevice = 105
            => "no GPU matches the device selector" from CoreError::NoSuchDevice { .. },
        /// The background sampling thread could not be started.
        Thread = 106 => "the sampling thread could not be started" from CoreError::Thread(_),
        /// An unusable sampling interval was given.
        InvalidInterval = 107
            => "the sampling interval is invalid" from CoreError::InvalidInterval(_),
        /// A core error this version of the C library has no code for yet.
        CoreError = 199
            => "an Algalon error without a specific code: see algalon_last_error" from _,
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
        let code = algalon_result::from_core(&e);
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
