//! `/health` and shutdown against a stalling or lost NVML.

mod common;

use std::time::{Duration, Instant};

use common::{Exporter, wait_for};

#[test]
fn health_turns_503_when_nvml_stalls_while_metrics_stay_fast() {
    // stall.json: every NVML call takes 3 s from t = 3 s. With a 100 ms
    // interval and a 1 s staleness limit, /health must notice.
    let mut exporter =
        Exporter::start("stall.json", &["-c", "100", "--health-stale-after", "1000"]);
    let ok = exporter.get("/health");
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert!(ok.text().starts_with("ok: 2 of 2 GPUs up"), "{}", ok.text());

    // Every GPU hangs: first the sample that waits for them (2 s, the core's
    // GPU timeout) goes stale, then both GPUs are reported down as hung.
    let stale = wait_for(Duration::from_secs(15), "/health to report 503", || {
        let r = exporter.get("/health");
        (r.status == 503).then_some(r)
    });
    let text = stale.text();
    assert!(
        (text.starts_with("stale: the last sample finished") && text.contains("NVML may be hung"))
            || (text.starts_with("every GPU is down") && text.contains("no answer for")),
        "{text}"
    );

    // A scrape never waits on the hung NVML: it gets the last body at once.
    let started = Instant::now();
    let text = exporter.metrics();
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "scrape took {:?}",
        started.elapsed()
    );
    assert!(common::value(&text, "algalon_gpu_up", &[r#"gpu="1""#]).is_some());

    // Shutting down does not hang on the in-flight NVML call either.
    exporter.signal("TERM");
    let status = exporter.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}");
}

#[test]
fn health_turns_503_when_every_gpu_is_lost() {
    // all-lost.json: the only GPU falls off the bus at t = 0.5 s.
    let exporter = Exporter::start("all-lost.json", &["-c", "100"]);
    let r = wait_for(Duration::from_secs(10), "/health to report 503", || {
        let r = exporter.get("/health");
        (r.status == 503).then_some(r)
    });
    assert!(
        r.text().starts_with("every GPU is down: GPU 0:"),
        "{}",
        r.text()
    );
    // Metrics are still served, with the GPU marked down.
    let text = exporter.metrics();
    assert_eq!(
        common::value(&text, "algalon_gpu_up", &[r#"gpu="0""#]),
        Some(0.0),
        "{text}"
    );
}

#[test]
fn sigterm_and_sigint_shut_down_gracefully() {
    for signal in ["TERM", "INT"] {
        let mut exporter = Exporter::start("steps.json", &["-c", "100"]);
        assert_eq!(exporter.get("/health").status, 200);
        exporter.signal(signal);
        let status = exporter.wait_exit(Duration::from_secs(10));
        assert!(status.success(), "SIG{signal}: {status}");
        exporter.wait_log("stopped", Duration::from_secs(1));
        assert!(
            std::net::TcpStream::connect_timeout(&exporter.addr, Duration::from_secs(1)).is_err(),
            "the port is closed after shutdown"
        );
    }
}

#[test]
fn healthcheck_mode_reports_the_exit_status() {
    let exporter = Exporter::start("steps.json", &["-c", "1000"]);
    let url = format!("http://{}/health", exporter.addr);
    let ok = std::process::Command::new(common::BIN)
        .args(["--healthcheck", &url])
        .output()
        .expect("run --healthcheck");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("200 ok:"));
    let missing = std::process::Command::new(common::BIN)
        .args(["--healthcheck", &format!("http://{}/nope", exporter.addr)])
        .output()
        .expect("run --healthcheck");
    assert!(!missing.status.success());
}
