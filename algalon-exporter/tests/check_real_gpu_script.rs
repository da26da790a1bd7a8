//! `scripts/check-real-gpu.sh` against the fake NVML and a stand-in
//! `nvidia-smi`, so its parsing, tolerances and verdicts are tested without
//! a GPU. (On a GPU machine it runs against the real ones.)

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A stand-in `nvidia-smi` answering for `constant.json`; `temp1` is GPU 1's
/// temperature (41 matches the scenario).
fn stub_smi(dir: &Path, temp1: u32) -> PathBuf {
    let path = dir.join("nvidia-smi");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\n\
             if [ \"$1\" = -L ]; then echo 'GPU 0: stub'; exit 0; fi\n\
             echo '0, GPU-00000000-aaaa-4bbb-8ccc-dddddddddd00, NVIDIA A100-SXM4-40GB, 00000000:01:00.0, 40960, 1000, 40, 100.00, 90'\n\
             echo '1, GPU-00000001-aaaa-4bbb-8ccc-dddddddddd01, NVIDIA A100-SXM4-40GB, 0000:02:00.0, 40960, 2000, {temp1}, 290.50, 55'\n"
        ),
    )
    .expect("write stub");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn run(temp1: u32) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let smi = stub_smi(dir.path(), temp1);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/check-real-gpu.sh");
    Command::new("bash")
        .arg(script)
        .env("NVIDIA_SMI", smi)
        .env("ALGALON_EXPORTER_BIN", common::BIN)
        .env("ALGALON_NVML_LIB", common::fake_nvml())
        .env(
            "ALGALON_FAKE_NVML_SCENARIO",
            common::scenario("constant.json"),
        )
        .env("CHECK_INTERVAL_MS", "100")
        .output()
        .expect("run check-real-gpu.sh")
}

#[test]
fn matching_readings_pass() {
    let out = run(41);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("VERDICT: PASS"), "{text}");
    // The domain is normalised (0000:02:00.0 vs 00000000:02:00.0); 290.5 W
    // is within 15 % of 300 W; 55 % within 15 points of 50 %.
    assert!(!text.contains("FAIL"), "{text}");
}

#[test]
fn a_reading_out_of_tolerance_fails() {
    let out = run(50);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("VERDICT: FAIL (1 checks failed)"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("1    temperature") && l.ends_with("FAIL")),
        "{text}"
    );
}
