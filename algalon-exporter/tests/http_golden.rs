//! The binary's own `/metrics` over HTTP, byte for byte, against a golden
//! file (node_exporter's end-to-end test is the model): the real exporter on
//! a free loopback port, the fake NVML with the `h100x8` scenario frozen at
//! t = 30 s, process sampling on. Regenerate with `UPDATE_GOLDEN=1`
//! (`make golden`) after an intended output change, and review the diff.
//!
//! Only what truly varies between runs is normalised: the sample's duration,
//! its wall-clock timestamp and the sample count (the exporter keeps
//! sampling while the test reads), and the machine's host name.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Exporter, command, fake_nvml, scenario, value, wait_for};

/// Series whose value changes from scrape to scrape.
const VARYING: &[&str] = &[
    "algalon_sample_duration_seconds",
    "algalon_sample_timestamp_seconds",
    "algalon_samples_total",
];

fn start() -> Exporter {
    let mut cmd = command(&scenario("h100x8.json"));
    cmd.env("ALGALON_FAKE_NVML_FROZEN_TIME", "30")
        .arg("--nvml-lib")
        .arg(fake_nvml())
        .args(["-a", "127.0.0.1:0", "-c", "200", "--processes"])
        // The scenario's PIDs are made up: they must not pick up the name
        // or cgroup of whatever process has that PID on this machine.
        .args(["--proc-root", "/dev/null/no-proc"]);
    Exporter::spawn(cmd)
}

/// The host name the exporter reports (`gethostname`, as the kernel has it).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("/proc/sys/kernel/hostname")
        .trim()
        .to_owned()
}

fn normalise(body: &str, hostname: &str) -> String {
    let host_label = format!("Hostname=\"{hostname}\"");
    let mut out = String::with_capacity(body.len());
    for line in body.lines() {
        match VARYING.iter().find(|v| line.starts_with(&format!("{v} "))) {
            Some(name) => out.push_str(&format!("{name} <varies>")),
            None => out.push_str(&line.replace(&host_label, "Hostname=\"<host>\"")),
        }
        out.push('\n');
    }
    out
}

fn check_golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("golden dir")).expect("create tests/golden");
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `UPDATE_GOLDEN=1 cargo test -p algalon-exporter --test http_golden`",
            path.display()
        )
    });
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
            "{} differs from GET /metrics ({} vs {} lines); first differences:\n{}\n\
             If the change is intended, run `make golden` and review the diff.",
            path.display(),
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

#[test]
fn metrics_over_http_match_the_golden_files() {
    let exporter = start();
    let host = hostname();
    // GPM ratios need two samples one interval apart: wait for the second.
    wait_for(Duration::from_secs(20), "a second sample", || {
        let text = exporter.metrics();
        (value(&text, "algalon_samples_total", &[]).unwrap_or(0.0) >= 2.0).then_some(())
    });

    let text = exporter.get("/metrics");
    assert_eq!(text.status, 200);
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let body = normalise(&text.text(), &host);
    assert!(
        body.contains("Hostname=\"<host>\""),
        "the host name was not found to normalise:\n{body}"
    );
    check_golden("metrics.prom", &body);

    let om = exporter.get_with(
        "/metrics",
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
    );
    assert_eq!(om.status, 200);
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    check_golden("metrics.openmetrics", &normalise(&om.text(), &host));

    // What is normalised really is all that varies: a later scrape, several
    // samples on, normalises to the same bytes.
    let seq = |t: &str| value(t, "algalon_samples_total", &[]).unwrap_or(0.0);
    let first_seq = seq(&text.text());
    let later = wait_for(Duration::from_secs(20), "two more samples", || {
        let t = exporter.metrics();
        (seq(&t) >= first_seq + 2.0).then_some(t)
    });
    assert_eq!(
        normalise(&later, &host),
        body,
        "/metrics changed between samples of a frozen scenario"
    );
}
