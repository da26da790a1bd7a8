//! `--check-config`: the collectors CSV and the web config checked offline
//! (no NVML, no socket), what would be exported printed, errors with file
//! and line, and the exit status a CI job can act on.

mod common;

use std::process::{Command, Stdio};

fn check(args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(common::BIN);
    for var in algalon_exporter::compat::all_variables() {
        cmd.env_remove(var);
    }
    // No NVML anywhere: the check must not need it.
    let out = cmd
        .arg("--check-config")
        .args(["--nvml-lib", "/nonexistent/libnvidia-ml.so.1"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run algalon-exporter");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_valid_configuration_prints_what_would_be_exported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("collectors.csv");
    std::fs::write(
        &csv,
        "# two fields and a label\n\
         DCGM_FI_DEV_GPU_UTIL, gauge, GPU utilization (in %).\n\
         DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION, counter, Energy since boot (in mJ).\n\
         DCGM_FI_DRIVER_VERSION, label, Driver Version\n\
         DCGM_EXP_XID_ERRORS_COUNT, gauge, XIDs in the window\n",
    )
    .expect("write");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    std::fs::write(dir.path().join("s.crt"), certified.cert.pem()).expect("write");
    std::fs::write(
        dir.path().join("s.key"),
        certified.signing_key.serialize_pem(),
    )
    .expect("write");
    let hash = bcrypt::hash("s3cret", 4).expect("bcrypt");
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: s.crt\n  key_file: s.key\n  min_version: TLS10\n\
             basic_auth_users:\n  prometheus: {hash}\n"
        ),
    )
    .expect("write");
    let (code, out, err) = check(&[
        "-x",
        "60000",
        "-f",
        csv.to_str().expect("utf-8"),
        "--web-config-file",
        web.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.is_empty(), "{err}");
    assert!(
        out.contains(&format!(
            "collectors {}: 2 metrics exported, 1 label",
            csv.display()
        )),
        "{out}"
    );
    let row = |name: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} in {out}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        row("DCGM_FI_DEV_GPU_UTIL"),
        "DCGM_FI_DEV_GPU_UTIL gauge GPU utilization (in %)."
    );
    assert_eq!(
        row("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"),
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter Energy since boot (in mJ)."
    );
    assert!(out.contains("label DCGM_FI_DRIVER_VERSION"), "{out}");
    assert!(
        out.contains("DCGM_EXP_XID_ERRORS_COUNT  per xid in the last 60000 ms"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "web config {}: serving https, basic auth for prometheus",
            web.display()
        )),
        "{out}"
    );
    assert!(
        out.contains("warning: ") && out.contains("TLS 1.2"),
        "{out}"
    );
    assert!(out.trim_end().ends_with("configuration ok"), "{out}");
    assert!(!out.contains(&hash), "no secret in the report");

    // No -f: dcgm-exporter's default file, as the exporter would serve it.
    let (code, out, _) = check(&[]);
    assert_eq!(code, 0);
    assert!(out.contains("<built-in default-counters.csv>"), "{out}");
    assert!(out.contains("DCGM_FI_DEV_GPU_UTIL"), "{out}");
}

#[test]
fn every_error_is_reported_with_file_and_line_and_the_exit_is_non_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("collectors.csv");
    std::fs::write(
        &csv,
        "DCGM_FI_DEV_GPU_UTIL, gauge, ok\nDCGM_FI_DEV_GPU_UTILL, gauge, typo\n",
    )
    .expect("write");
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "basic_auth_users: {}\ntls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  \
         curve_preferences: [CurveP999]\n",
    )
    .expect("write");
    let (code, out, err) = check(&[
        "-x",
        "60000",
        "-f",
        csv.to_str().expect("utf-8"),
        "--web-config-file",
        web.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "one line per file: {err}");
    assert!(lines[0].contains(&format!("{}:2:", csv.display())), "{err}");
    assert!(lines[0].contains("DCGM_FI_DEV_GPU_UTILL"), "{err}");
    assert!(lines[1].contains(&format!("{}:", web.display())), "{err}");
    assert!(out.trim_end().ends_with("configuration invalid"), "{out}");

    // An empty collectors file is an error too.
    std::fs::write(&csv, "# nothing\n").expect("write");
    let (code, _, err) = check(&["-f", csv.to_str().expect("utf-8")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&csv.display().to_string()), "{err}");
}
