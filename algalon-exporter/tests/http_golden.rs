//! The binary's own `/metrics` over HTTP, byte for byte, against a golden
//! file (node_exporter's end-to-end test is the model): the real exporter on
//! a free loopback port, the fake NVML with the `h100x8` scenario frozen at
//! t = 30 s, process sampling on. Regenerate with `UPDATE_GOLDEN=1`
//! (`make golden`) after an intended output change, and review the diff.
//!
//! Only what truly varies between runs is normalised: the sample's duration,
//! its wall-clock timestamp and the sample count (the exporter keeps
//! sampling while the test reads), the last reload time, the samples of the
//! request counters, the sample-latency histogram and the `process_*`
//! families (their HELP and TYPE lines are still compared), the build's git
//! revision and the machine's host name.

mod common;

use std::time::Duration;

use common::{Exporter, command, fake_nvml, scenario, value, wait_for};

/// Series whose value changes from scrape to scrape.
const VARYING: &[&str] = &[
    "algalon_sample_duration_seconds",
    "algalon_sample_timestamp_seconds",
    "algalon_samples_total",
    "algalon_config_last_reload_success_timestamp_seconds",
];

/// Families whose samples (values and label sets) change from scrape to
/// scrape: the exporter's request counters, the sample-duration histogram
/// and the process's own figures. Their HELP and TYPE lines are compared.
const VARYING_FAMILIES: &[&str] = &[
    "algalon_http_requests_total",
    "algalon_sample_latency_seconds",
    "process_",
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
    let mut last_family: Option<&str> = None;
    for line in body.lines() {
        if !line.starts_with('#')
            && let Some(family) = VARYING_FAMILIES.iter().find(|f| line.starts_with(*f))
        {
            if last_family != Some(family) {
                out.push_str(&format!("{family}… <varies>\n"));
                last_family = Some(family);
            }
            continue;
        }
        last_family = None;
        match VARYING.iter().find(|v| line.starts_with(&format!("{v} "))) {
            Some(name) => out.push_str(&format!("{name} <varies>")),
            None => out.push_str(&revision_normalised(
                &line.replace(&host_label, "Hostname=\"<host>\""),
            )),
        }
        out.push('\n');
    }
    out
}

/// `revision="<commit>"` on `algalon_build_info`: the commit being tested.
fn revision_normalised(line: &str) -> String {
    match line.find("revision=\"") {
        Some(at) => {
            let value = at + "revision=\"".len();
            let end = line[value..].find('"').map_or(line.len(), |e| value + e);
            format!("{}<revision>{}", &line[..value], &line[end..])
        }
        None => line.to_owned(),
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
    common::check_golden("http_golden", "metrics.prom", &body);

    let om = exporter.get_with(
        "/metrics",
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
    );
    assert_eq!(om.status, 200);
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    common::check_golden(
        "http_golden",
        "metrics.openmetrics",
        &normalise(&om.text(), &host),
    );

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
