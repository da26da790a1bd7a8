//! Every start-up error is exactly one line on stderr and a non-zero exit.

mod common;

use std::path::Path;

use common::{command, fake_nvml, run_to_failure, scenario};

/// Runs the exporter with `args` (after `--nvml-lib <fake>` unless
/// `nvml` is false) and returns its single stderr line.
fn one_line_error(args: &[&str], nvml: bool) -> String {
    let mut cmd = command(&scenario("steps.json"));
    if nvml {
        cmd.arg("--nvml-lib").arg(fake_nvml());
    }
    cmd.args(args);
    let (status, lines) = run_to_failure(cmd);
    assert!(!status.success(), "{args:?} must fail");
    assert_eq!(status.code(), Some(1), "{args:?}: {status}");
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: exactly one stderr line, got {lines:#?}"
    );
    let line = lines.into_iter().next().expect("one line");
    assert!(line.starts_with("algalon-exporter: "), "{line}");
    line
}

#[test]
fn no_nvml() {
    let line = one_line_error(
        &[
            "--nvml-lib",
            "/nonexistent/libnvidia-ml.so.1",
            "-a",
            "127.0.0.1:0",
        ],
        false,
    );
    assert!(
        line.contains("cannot load the NVIDIA Management Library"),
        "{line}"
    );
    assert!(
        line.contains("/nonexistent/libnvidia-ml.so.1"),
        "says what was tried: {line}"
    );
    assert!(line.contains("--nvml-lib"), "hints at the flag: {line}");
    assert!(line.contains("Install the NVIDIA driver"), "{line}");
}

#[test]
fn port_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let line = one_line_error(&["-a", &addr], true);
    assert!(line.contains(&format!("cannot listen on {addr}")), "{line}");
    assert!(line.contains("-a/--address"), "{line}");
}

#[test]
fn bad_address() {
    let line = one_line_error(&["-a", "127.0.0.1:notaport"], true);
    assert!(line.contains("invalid --address"), "{line}");
}

#[test]
fn malformed_collectors_csv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("bad.csv");
    std::fs::write(
        &csv,
        "# comment\nDCGM_FI_DEV_GPU_UTIL, gauge, ok\nDCGM_FI_DEV_GPU_UTILL, gauge, typo\n",
    )
    .expect("write");
    let line = one_line_error(
        &["-a", "127.0.0.1:0", "-f", csv.to_str().expect("utf-8")],
        true,
    );
    assert!(
        line.contains(&format!("{}:3:", csv.display())),
        "file:line: {line}"
    );
    assert!(line.contains("DCGM_FI_DEV_GPU_UTILL"), "{line}");
}

#[test]
fn unreadable_collectors_csv() {
    let line = one_line_error(
        &["-a", "127.0.0.1:0", "-f", "/nonexistent/collectors.csv"],
        true,
    );
    assert!(line.contains("/nonexistent/collectors.csv"), "{line}");
}

#[test]
fn malformed_web_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: a.crt\n  key_fil: a.key\n",
    )
    .expect("write");
    let line = web_error(&web);
    assert!(
        line.contains(&format!("web config {}:3:", web.display())),
        "{line}"
    );
    assert!(line.contains("key_fil"), "{line}");

    std::fs::write(&web, "basic_auth_users:\n  alice: not-a-bcrypt-hash\n").expect("write");
    let line = web_error(&web);
    assert!(
        line.contains(":2: basic_auth_users.alice: not a bcrypt hash"),
        "{line}"
    );

    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
    )
    .expect("write");
    let line = web_error(&web);
    assert!(
        line.contains(&dir.path().join("missing.crt").display().to_string()),
        "{line}"
    );

    let line = web_error(&dir.path().join("absent.yml"));
    assert!(line.contains("cannot read"), "{line}");
}

fn web_error(web: &Path) -> String {
    one_line_error(
        &[
            "-a",
            "127.0.0.1:0",
            "--web-config-file",
            web.to_str().expect("utf-8"),
        ],
        true,
    )
}

#[test]
fn unknown_device() {
    let line = one_line_error(&["-a", "127.0.0.1:0", "-d", "7"], true);
    assert!(line.contains("no GPU matches \"7\""), "{line}");
    assert!(
        line.contains("GPU-00000000-aaaa"),
        "lists what exists: {line}"
    );
}

#[test]
fn version_prints_commit_and_nvml() {
    let out = command(&scenario("steps.json"))
        .stdout(std::process::Stdio::piped())
        .arg("--nvml-lib")
        .arg(fake_nvml())
        .arg("--version")
        .output()
        .expect("run --version");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!(
            "algalon-exporter {} (git ",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    assert!(text.contains("NVML 12.550.54.15"), "{text}");
}
