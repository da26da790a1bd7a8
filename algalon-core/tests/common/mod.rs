//! Shared helpers for tests that run the core against the fake NVML.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use algalon_core::{Sampler, SamplerOptions};

/// The fake NVML reads its scenario from the environment at initialisation,
/// so tests that use it take this lock and run one at a time.
static NVML_LOCK: Mutex<()> = Mutex::new(());

#[path = "../../../testing/fake-nvml/locate.rs"]
mod locate;
pub use locate::{fake_nvml, workspace};

/// A scenario shipped in `testing/scenarios/` or, failing that, one of this
/// crate's `tests/scenarios/`.
pub fn scenario(name: &str) -> PathBuf {
    let shipped = workspace()
        .join("testing/scenarios")
        .join(format!("{name}.json"));
    if shipped.exists() {
        return shipped;
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(format!("{name}.json"));
    assert!(local.exists(), "no scenario named {name}");
    local
}

/// Runs `f` with the fake NVML set up for `scenario` (a path), its clock
/// frozen at `frozen_time` seconds when given.
pub fn with_scenario<T>(scenario: &Path, frozen_time: Option<f64>, f: impl FnOnce() -> T) -> T {
    let _guard = NVML_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // SAFETY: every test of this binary that touches the environment holds
    // NVML_LOCK, so no other thread reads or writes it concurrently.
    unsafe {
        std::env::set_var("ALGALON_FAKE_NVML_SCENARIO", scenario);
        match frozen_time {
            Some(t) => std::env::set_var("ALGALON_FAKE_NVML_FROZEN_TIME", t.to_string()),
            None => std::env::remove_var("ALGALON_FAKE_NVML_FROZEN_TIME"),
        }
        std::env::remove_var("ALGALON_NVML_LIB");
    }
    f()
}

/// Options that load the fake NVML and read the default field set plus
/// everything else the catalog has.
pub fn options() -> SamplerOptions {
    SamplerOptions {
        nvml_lib: Some(fake_nvml()),
        hostname: Some("test-host".into()),
        // The scenarios' PIDs are made up: they must not pick up the name
        // or cgroup of whatever process has that PID on the test machine.
        proc_root: "/dev/null/no-proc".into(),
        ..SamplerOptions::default()
    }
}

pub fn sampler(options: SamplerOptions) -> Sampler {
    Sampler::new(options).unwrap_or_else(|e| panic!("sampler on the fake NVML: {e}"))
}

/// Polls `cond` every 20 ms for up to `secs` seconds.
pub fn eventually(secs: f64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    cond()
}
