//! `algalon_options`: how a sampler opens NVML and what it reads.

use std::ffi::{OsStr, c_char};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use algalon_core::CollectorConfig;

use crate::error::{Fail, algalon_result, boundary};
use crate::util::{arg_mut, arg_out, arg_str};

/// Options for `algalon_sampler_new`.
///
/// Ownership: created by `algalon_options_new`, freed by the caller with
/// `algalon_options_free`; `algalon_sampler_new` copies what it needs, so
/// the options may be freed (or reused) right after it returns.
///
/// Thread safety: none; set options from one thread at a time.
#[derive(Debug, Clone)]
pub struct algalon_options {
    pub(crate) nvml_lib: Option<PathBuf>,
    pub(crate) devices: Option<Vec<String>>,
    pub(crate) collectors: Option<CollectorConfig>,
    pub(crate) interval_ms: u64,
    pub(crate) processes: bool,
    pub(crate) xid_events: bool,
    pub(crate) hostname: Option<String>,
    /// `CUDA_VISIBLE_DEVICES` to apply instead of the environment's
    /// (`Some(None)`: as if unset).
    pub(crate) visible_devices: Option<Option<String>>,
}

impl Default for algalon_options {
    fn default() -> Self {
        algalon_options {
            nvml_lib: None,
            devices: None,
            collectors: None,
            interval_ms: 0,
            processes: false,
            xid_events: true,
            hostname: None,
            visible_devices: None,
        }
    }
}

/// Creates options with the defaults: the system's NVML (or
/// `$ALGALON_NVML_LIB`), every GPU, dcgm-exporter's default field set, no
/// background thread, no per-process readings, XID events on, the machine's
/// host name.
///
/// Ownership: on success `*out` is a new handle the caller frees with
/// `algalon_options_free`.
///
/// # Safety
///
/// `out` must be valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_options_new(out: *mut *mut algalon_options) -> algalon_result {
    boundary("algalon_options_new", || {
        let out = arg_out(out, "out")?;
        let handle = Box::into_raw(Box::new(algalon_options::default()));
        // SAFETY: checked non-NULL; valid by the caller's contract.
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// Frees options made by `algalon_options_new`. NULL does nothing.
///
/// # Safety
///
/// `opts` must be NULL or a handle from `algalon_options_new` not freed yet;
/// it must not be used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_options_free(opts: *mut algalon_options) {
    crate::error::boundary_value((), || {
        if !opts.is_null() {
            // SAFETY: a live handle from algalon_options_new, by contract.
            drop(unsafe { Box::from_raw(opts) });
        }
    })
}

/// Loads NVML from `path` instead of the system's `libnvidia-ml.so.1` (or
/// `$ALGALON_NVML_LIB`). The path is used as given (it need not be UTF-8).
/// The library is loaded by `algalon_sampler_new`, which fails with
/// `ALGALON_RESULT_NVML_NOT_FOUND` when it cannot.
///
/// # Safety
///
/// `opts` must be a live options handle; `path` a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_options_set_nvml_lib(
    opts: *mut algalon_options,
    path: *const c_char,
) -> algalon_result {
    boundary("algalon_options_set_nvml_lib", || {
        // SAFETY: the caller's contract.
        let opts = unsafe { arg_mut(opts, "opts") }?;
        if path.is_null() {
            return Err(Fail::null("path"));
        }
        // SAFETY: non-NULL and NUL-terminated by contract.
        let bytes = unsafe { std::ffi::CStr::from_ptr(path) }.to_bytes();
        if bytes.is_empty() {
            return Err(Fail::new(
                algalon_result::InvalidArgument,
                "argument `path` is empty: give the path of libnvidia-ml.so.1",
            ));
        }
        opts.nvml_lib = Some(PathBuf::from(OsStr::from_bytes(bytes)));
        Ok(())
    })
}

/// Samples only these GPUs: a comma-separated list of NVML indices, UUIDs
/// (a unique UUID prefix is enough, in any case) or CUDA indices (`cuda:0`,
/// the first device `CUDA_VISIBLE_DEVICES` leaves this process), e.g.
/// `"0,2"` or `"GPU-5e4b"` — the grammar of the exporter's `-d` and of
/// `CUDA_VISIBLE_DEVICES` entries. A list that does not parse (an empty
/// entry, `"0,,1"`) is `ALGALON_RESULT_INVALID_ARGUMENT` now; one that
/// matches no GPU is `ALGALON_RESULT_NO_SUCH_DEVICE` from
/// `algalon_sampler_new`.
///
/// # Safety
///
/// `opts` must be a live options handle; `devices` a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_options_set_devices(
    opts: *mut algalon_options,
    devices: *const c_char,
) -> algalon_result {
    boundary("algalon_options_set_devices", || {
        // SAFETY: the caller's contract.
        let opts = unsafe { arg_mut(opts, "opts") }?;
        // SAFETY: the caller's contract.
        let devices = unsafe { arg_str(devices, "devices") }?;
        let list = algalon_core::devices::parse_list(devices).map_err(|e| {
            Fail::new(
                algalon_result::InvalidArgument,
                format!("argument `devices` ({devices:?}) is not a device list: {e}"),
            )
        })?;
        let list: Vec<String> = list.iter().map(ToString::to_string).collect();
        opts.devices = Some(list);
        Ok(())
    })
}

/// Reads and exports the fields of a dcgm-exporter collectors CSV (e.g.
/// `default-counters.csv`) instead of the default set. The file is read
/// now: `ALGALON_RESULT_COLLECTORS_IO` / `_PARSE` say why it cannot be used,
/// and the options are unchanged then.
///
/// # Safety
///
/// `opts` must be a live options handle; `path` a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_options_set_collectors_file(
    opts: *mut algalon_options,
    path: *const c_char,
) -> algalon_result {
    boundary("algalon_options_set_collectors_file", || {
        // SAFETY: the caller's contract.
        let opts = unsafe { arg_mut(opts, "opts") }?;
        if path.is_null() {
            return Err(Fail::null("path"));
        }
        // SAFETY: non-NULL and NUL-terminated by contract.
        let bytes = unsafe { std::ffi::CStr::from_ptr(path) }.to_bytes();
        let config = CollectorConfig::from_path(OsStr::from_bytes(bytes))?;
        opts.collectors = Some(config);
        Ok(())
    })
}

/// Samples on a background thread every `interval_ms` milliseconds (0, the
/// default: no thread, samples are taken only by `algalon_sampler_sample`).
/// With a thread, `algalon_sampler_latest` never waits on NVML and open
/// jobs see every background sample too.
///
/// # Safety
///
/// `opts` must be a live options handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_options_set_interval_ms(
    opts: *mut algalon_options,
    interval_ms: u64,
) -> algalon_result {
    boundary("algalon_options_set_interval_ms", || {
        // SAFETY: the caller's contract.
        let opts = unsafe { arg_mut(opts, "opts") }?;
        opts.interval_ms = interval_ms;
        Ok(())
    })
}

/// Reads the processes on each GPU (off by default).
///
/// # Safety
///
/// `opts` must be a live options handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_options_set_processes(
    opts: *mut algalon_options,
    enabled: bool,
) -> algalon_result {
    boundary("algalon_options_set_processes", || {
        // SAFETY: the caller's contract.
        let opts = unsafe { arg_mut(opts, "opts") }?;
        opts.processes = enabled;
        Ok(())
    })
}

/// Listens for XID events (on by default; the listener is a thread).
///
/// # Safety
///
/// `opts` must be a live options handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_options_set_xid_events(
    opts: *mut algalon_options,
    enabled: bool,
) -> algalon_result {
    boundary("algalon_options_set_xid_events", || {
        // SAFETY: the caller's contract.
        let opts = unsafe { arg_mut(opts, "opts") }?;
        opts.xid_events = enabled;
        Ok(())
    })
}

/// Reports `hostname` (the `Hostname` label) instead of the machine's name.
///
/// # Safety
///
/// `opts` must be a live options handle; `hostname` a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_options_set_hostname(
    opts: *mut algalon_options,
    hostname: *const c_char,
) -> algalon_result {
    boundary("algalon_options_set_hostname", || {
        // SAFETY: the caller's contract.
        let opts = unsafe { arg_mut(opts, "opts") }?;
        // SAFETY: the caller's contract.
        let hostname = unsafe { arg_str(hostname, "hostname") }?;
        opts.hostname = Some(hostname.to_owned());
        Ok(())
    })
}

/// Applies `value` as `CUDA_VISIBLE_DEVICES` instead of the environment's
/// (NULL: as if it were unset — every GPU visible). It decides which of the
/// sampler's GPUs jobs measure and their CUDA indices (`cuda:0` is the first
/// entry); the sampler and its snapshots still read every selected GPU.
/// Parsed as CUDA does: the first invalid entry ends the list (`"1,,2"` is
/// GPU 1). Checked by `algalon_sampler_new` (`ALGALON_RESULT_NO_SUCH_DEVICE`
/// for an entry that matches no GPU).
///
/// # Safety
///
/// `opts` must be a live options handle; `value` NULL or a NUL-terminated
/// string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn algalon_options_set_visible_devices(
    opts: *mut algalon_options,
    value: *const c_char,
) -> algalon_result {
    boundary("algalon_options_set_visible_devices", || {
        // SAFETY: the caller's contract.
        let opts = unsafe { arg_mut(opts, "opts") }?;
        let value = if value.is_null() {
            None
        } else {
            // SAFETY: non-NULL and NUL-terminated by the caller's contract.
            Some(unsafe { arg_str(value, "value") }?.to_owned())
        };
        opts.visible_devices = Some(value);
        Ok(())
    })
}
