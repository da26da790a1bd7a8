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

/// Compares `actual` with `tests/golden/<name>`, or writes it there when
/// `UPDATE_GOLDEN` is set (`make golden`).
pub fn check_golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `make golden`", path.display()));
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (e, a))| e != a)
            .take(10)
            .map(|(i, (e, a))| format!("line {}:\n  golden: {e}\n  actual: {a}", i + 1))
            .collect();
        panic!(
            "{} differs from the output ({} vs {} lines); first differences:\n{}\n\
             If the change is intended, run `make golden` and review the diff.",
            path.display(),
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

/// `promtool check metrics` over `text`: its exit code (0 clean, 3 lint
/// findings only, 1 rejected) and what it printed.
pub fn promtool(text: &str) -> (Option<i32>, String) {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (make deps)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), report)
}
