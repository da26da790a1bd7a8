//! # algalon-ffi
//!
//! The C ABI of Algalon: `libalgalon.so` / `libalgalon.a` and
//! `include/algalon.h` (generated from this crate by cbindgen; regenerate
//! with `make header`). C and C++ programs read GPU snapshots, run job
//! windows and get the Prometheus text without touching NVML.
//!
//! ```c
//! algalon_sampler *sampler = NULL;
//! if (algalon_sampler_new(NULL, &sampler) != ALGALON_RESULT_OK) { /* algalon_last_error */ }
//! algalon_snapshot *snap = NULL;
//! algalon_sampler_sample(sampler, &snap);
//! size_t n = 0;
//! algalon_snapshot_gpu_count(snap, &n);
//! for (size_t i = 0; i < n; i++) {
//!     algalon_gpu_sample gpu;
//!     algalon_snapshot_gpu(snap, i, &gpu);
//!     if (gpu.has_power) printf("GPU %u: %.0f W\n", gpu.index, gpu.power_w);
//! }
//! algalon_snapshot_free(snap);
//! algalon_sampler_free(sampler);
//! ```
//!
//! ## Conventions (modelled on rustls-ffi)
//!
//! * Opaque handles with `algalon_<type>_new` / `algalon_<type>_free` pairs;
//!   functions are named `algalon_<type>_<verb>`. Every constructor's doc
//!   says who frees what it returns. `_free` accepts NULL and does nothing.
//! * Every fallible function returns an [`algalon_result`]; the codes are
//!   explicit and never reused. Every body runs inside a panic boundary: a
//!   Rust panic becomes `ALGALON_RESULT_PANIC`, never an abort across the
//!   boundary.
//! * Every pointer argument is checked: NULL gives
//!   `ALGALON_RESULT_NULL_PARAMETER` (the exceptions, NULL `opts` and the
//!   `_free` functions, are documented).
//! * Out-params are written only on success — the one exception is `*out_n`
//!   of the string protocol below, which also carries the size needed.
//! * Strings come back through `(char *buf, size_t len, size_t *out_n)`: on
//!   success the string and a NUL are written to `buf` and `*out_n` is the
//!   string's length without the NUL (as `strlen`). When `len` is too small
//!   the function writes nothing to `buf`, sets `*out_n` to the buffer size
//!   needed **including** the NUL and returns
//!   `ALGALON_RESULT_INSUFFICIENT_SIZE`; `buf = NULL, len = 0` asks for the
//!   size. So `malloc(*out_n)` and call again.
//! * When a call fails, the reason (one line, naming the function) is kept in
//!   a thread-local for `algalon_last_error`; calls that succeed leave it
//!   unchanged, like `errno`.
//! * A reading NVML cannot give is never reported as 0: every optional
//!   reading in a struct has its own `has_*` flag.

#![deny(missing_docs)]
#![allow(non_camel_case_types)]

mod error;
mod job;
mod options;
mod sampler;
mod snapshot;
mod util;

use std::ffi::c_char;

pub use error::{algalon_last_error, algalon_result, algalon_result_message};
pub use job::{
    algalon_energy_source, algalon_job, algalon_job_add_count, algalon_job_add_pid,
    algalon_job_begin, algalon_job_end, algalon_job_free, algalon_job_gpu, algalon_job_gpu_report,
    algalon_job_report, algalon_job_report_json, algalon_job_table,
};
pub use options::{
    algalon_options, algalon_options_free, algalon_options_new,
    algalon_options_set_collectors_file, algalon_options_set_devices, algalon_options_set_hostname,
    algalon_options_set_interval_ms, algalon_options_set_nvml_lib, algalon_options_set_processes,
    algalon_options_set_visible_devices, algalon_options_set_xid_events,
};
pub use sampler::{
    algalon_sampler, algalon_sampler_free, algalon_sampler_latest, algalon_sampler_new,
    algalon_sampler_sample,
};
pub use snapshot::{
    ALGALON_NAME_SIZE, ALGALON_PCI_BUS_ID_SIZE, ALGALON_UUID_SIZE, algalon_gpu_sample,
    algalon_snapshot, algalon_snapshot_driver_version, algalon_snapshot_encode,
    algalon_snapshot_free, algalon_snapshot_gpu, algalon_snapshot_gpu_count,
    algalon_snapshot_gpu_down_reason, algalon_snapshot_gpu_field, algalon_snapshot_seq,
    algalon_snapshot_taken_at,
};

/// Major version of the library this header belongs to (Cargo's version;
/// a test keeps the two equal).
pub const ALGALON_VERSION_MAJOR: u32 = 0;
/// Minor version of the library this header belongs to.
pub const ALGALON_VERSION_MINOR: u32 = 1;
/// Patch version of the library this header belongs to.
pub const ALGALON_VERSION_PATCH: u32 = 0;

static VERSION_C: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The version of the loaded library, `"MAJOR.MINOR.PATCH"` (equal to the
/// header's `ALGALON_VERSION` when header and library match).
///
/// Ownership: a static NUL-terminated string; do not free it.
/// Thread safety: may be called from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn algalon_version() -> *const c_char {
    error::boundary_value(VERSION_C.as_ptr().cast(), || VERSION_C.as_ptr().cast())
}
