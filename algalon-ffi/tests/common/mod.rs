//! Helpers shared by the algalon-ffi tests: the fake NVML, scenarios, and
//! small safe wrappers over the extern functions.
#![allow(dead_code)]

use std::ffi::{CString, c_char};
use std::path::PathBuf;
use std::ptr;
use std::sync::{Mutex, MutexGuard};

use algalon::*;

#[path = "../../../testing/fake-nvml/locate.rs"]
mod locate;
pub use locate::{fake_nvml, workspace};

/// The H100 (85 %, 40000/81559 MiB, 63 C, 312.5 W, energy counter) + T4
/// (no energy counter, 27.25 W) scenario of the core's tests.
pub fn constant_scenario() -> PathBuf {
    workspace().join("algalon-core/tests/scenarios/constant.json")
}

static NVML_LOCK: Mutex<()> = Mutex::new(());

/// Serializes the tests of one binary that load the fake NVML: it reads its
/// scenario from the environment, which this sets (to `constant.json`).
pub fn nvml_lock() -> MutexGuard<'static, ()> {
    let guard = NVML_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: every test of the binary that reads or writes the environment
    // holds NVML_LOCK, so no other thread touches it concurrently.
    unsafe { std::env::set_var("ALGALON_FAKE_NVML_SCENARIO", constant_scenario()) };
    guard
}

pub fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL in test strings")
}

/// The calling thread's last error.
pub fn last_error() -> String {
    let mut buf = vec![0 as c_char; 4096];
    let mut n = 0usize;
    // SAFETY: buf is valid for its length, n for a write.
    let r = unsafe { algalon_last_error(buf.as_mut_ptr(), buf.len(), &mut n) };
    assert_eq!(r, algalon_result::Ok);
    let bytes: Vec<u8> = buf[..n].iter().map(|&c| c as u8).collect();
    String::from_utf8(bytes).expect("utf-8")
}

/// Reads a string by the (buf, len, out_n) protocol: size probe, then copy.
pub fn read_string(
    mut call: impl FnMut(*mut c_char, usize, *mut usize) -> algalon_result,
) -> Result<String, algalon_result> {
    let mut n = 0usize;
    match call(ptr::null_mut(), 0, &mut n) {
        algalon_result::InsufficientSize => {}
        other => return Err(other),
    }
    let mut buf = vec![0 as c_char; n];
    let mut written = 0usize;
    match call(buf.as_mut_ptr(), buf.len(), &mut written) {
        algalon_result::Ok => {}
        other => return Err(other),
    }
    assert_eq!(written + 1, n, "the size probe includes the NUL");
    assert_eq!(buf[written], 0, "NUL-terminated");
    let bytes: Vec<u8> = buf[..written].iter().map(|&c| c as u8).collect();
    Ok(String::from_utf8(bytes).expect("utf-8"))
}

/// Options with the fake NVML, no XID thread, freed on drop.
pub struct Options(pub *mut algalon_options);

impl Options {
    pub fn fake() -> Options {
        let mut p = ptr::null_mut();
        // SAFETY: p is valid for a write.
        assert_eq!(unsafe { algalon_options_new(&mut p) }, algalon_result::Ok);
        let lib = cstr(fake_nvml().to_str().expect("utf-8 path"));
        // SAFETY: live handle, NUL-terminated string.
        unsafe {
            assert_eq!(
                algalon_options_set_nvml_lib(p, lib.as_ptr()),
                algalon_result::Ok
            );
            assert_eq!(algalon_options_set_xid_events(p, false), algalon_result::Ok);
        }
        Options(p)
    }
}

impl Drop for Options {
    fn drop(&mut self) {
        // SAFETY: our handle, freed once.
        unsafe { algalon_options_free(self.0) };
    }
}

/// A sampler freed on drop.
pub struct Sampler(pub *mut algalon_sampler);

// SAFETY: algalon_sampler is documented (and asserted in the crate) to be
// usable from many threads at once.
unsafe impl Send for Sampler {}
unsafe impl Sync for Sampler {}

impl Sampler {
    pub fn new(opts: &Options) -> Result<Sampler, algalon_result> {
        let mut p = ptr::null_mut();
        // SAFETY: live options, p valid for a write.
        match unsafe { algalon_sampler_new(opts.0, &mut p) } {
            algalon_result::Ok => Ok(Sampler(p)),
            r => {
                assert!(p.is_null(), "out written on failure");
                Err(r)
            }
        }
    }

    pub fn sample(&self) -> Snapshot {
        let mut p = ptr::null_mut();
        // SAFETY: live sampler, p valid for a write.
        assert_eq!(
            unsafe { algalon_sampler_sample(self.0, &mut p) },
            algalon_result::Ok
        );
        Snapshot(p)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        // SAFETY: our handle, freed once.
        unsafe { algalon_sampler_free(self.0) };
    }
}

/// A snapshot freed on drop.
pub struct Snapshot(pub *mut algalon_snapshot);

impl Snapshot {
    pub fn gpu_count(&self) -> usize {
        let mut n = usize::MAX;
        // SAFETY: live snapshot.
        assert_eq!(
            unsafe { algalon_snapshot_gpu_count(self.0, &mut n) },
            algalon_result::Ok
        );
        n
    }

    pub fn gpu(&self, i: usize) -> Result<algalon_gpu_sample, algalon_result> {
        let mut out = std::mem::MaybeUninit::<algalon_gpu_sample>::uninit();
        // SAFETY: live snapshot; out valid for a write.
        match unsafe { algalon_snapshot_gpu(self.0, i, out.as_mut_ptr()) } {
            // SAFETY: written on success.
            algalon_result::Ok => Ok(unsafe { out.assume_init() }),
            r => Err(r),
        }
    }

    pub fn seq(&self) -> u64 {
        let mut seq = 0;
        // SAFETY: live snapshot.
        assert_eq!(
            unsafe { algalon_snapshot_seq(self.0, &mut seq) },
            algalon_result::Ok
        );
        seq
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        // SAFETY: our handle, freed once.
        unsafe { algalon_snapshot_free(self.0) };
    }
}

/// A fixed-size C string field as a Rust string.
pub fn field_str(chars: &[c_char]) -> String {
    let end = chars.iter().position(|&c| c == 0).expect("NUL-terminated");
    chars[..end].iter().map(|&c| c as u8 as char).collect()
}
