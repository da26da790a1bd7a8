//! `/metrics`, `/api/v1/gpus` and `/` against the fake NVML.

mod common;

use std::io::Read as _;
use std::time::Duration;

use common::{Exporter, value, wait_for};

const UTIL: &str = "DCGM_FI_DEV_GPU_UTIL";

#[test]
fn metrics_are_served_before_and_after_the_first_interval() {
    let exporter = Exporter::start("steps.json", &["-c", "1500"]);
    // Before the first interval has passed: the synchronous first sample.
    let first = exporter.metrics();
    assert_eq!(
        value(&first, "algalon_samples_total", &[]),
        Some(1.0),
        "{first}"
    );
    assert!(
        first.contains(r#"DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-00000000-aaaa-4bbb-8ccc-dddddddddd00",pci_bus_id="00000000:01:00.0",device="nvidia0",modelName="NVIDIA A100-SXM4-40GB",Hostname=""#),
        "dcgm-exporter's labels, in its order:\n{first}"
    );
    assert_eq!(value(&first, "algalon_gpu_up", &[r#"gpu="1""#]), Some(1.0));
    // After it: a new sample, same series.
    let later = wait_for(Duration::from_secs(10), "a second sample", || {
        let text = exporter.metrics();
        (value(&text, "algalon_samples_total", &[]).unwrap_or(0.0) >= 2.0).then_some(text)
    });
    assert!(value(&later, UTIL, &[r#"gpu="0""#]).is_some(), "{later}");
    assert!(
        value(&later, "DCGM_FI_DEV_FB_USED", &[r#"gpu="1""#]).is_some(),
        "{later}"
    );
}

#[test]
fn series_follow_the_scenario() {
    // steps.json: GPU 0 utilization 10 % until t = 3 s, then 90 %;
    // GPU 1 power 150 W, then 300 W.
    let exporter = Exporter::start("steps.json", &["-c", "100"]);
    let text = exporter.metrics();
    assert_eq!(value(&text, UTIL, &[r#"gpu="0""#]), Some(10.0), "{text}");
    assert_eq!(
        value(&text, "DCGM_FI_DEV_POWER_USAGE", &[r#"gpu="1""#]),
        Some(150.0)
    );
    assert_eq!(value(&text, UTIL, &[r#"gpu="1""#]), Some(50.0));
    let text = wait_for(Duration::from_secs(10), "utilization to step to 90", || {
        let text = exporter.metrics();
        (value(&text, UTIL, &[r#"gpu="0""#]) == Some(90.0)).then_some(text)
    });
    wait_for(Duration::from_secs(5), "power to step to 300", || {
        let t = exporter.metrics();
        (value(&t, "DCGM_FI_DEV_POWER_USAGE", &[r#"gpu="1""#]) == Some(300.0)).then_some(())
    });
    assert_eq!(
        value(&text, UTIL, &[r#"gpu="1""#]),
        Some(50.0),
        "GPU 1 unchanged"
    );
}

#[test]
fn a_lost_gpu_is_down_while_the_others_keep_reporting() {
    // lost.json: GPU 1 falls off the bus at t = 1 s.
    let exporter = Exporter::start("lost.json", &["-c", "100"]);
    let text = wait_for(Duration::from_secs(10), "GPU 1 to be reported down", || {
        let text = exporter.metrics();
        (value(&text, "algalon_gpu_up", &[r#"gpu="1""#]) == Some(0.0)).then_some(text)
    });
    assert_eq!(
        value(&text, "algalon_gpu_up", &[r#"gpu="0""#]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "algalon_gpu_up", &[r#"gpu="2""#]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value(&text, UTIL, &[r#"gpu="0""#]), Some(30.0), "{text}");
    assert_eq!(value(&text, UTIL, &[r#"gpu="2""#]), Some(50.0), "{text}");
    assert_eq!(
        value(&text, UTIL, &[r#"gpu="1""#]),
        None,
        "a lost GPU's readings are absent, not 0"
    );
    // The identity labels of the lost GPU stay, so alerts can name it.
    assert!(
        text.contains(r#"algalon_gpu_up{gpu="1",UUID="GPU-00000001-aaaa-4bbb-8ccc-dddddddddd01""#)
    );
    let health = exporter.get("/health");
    assert_eq!(
        health.status,
        200,
        "some GPUs are still up: {}",
        health.text()
    );
    assert!(health.text().contains("GPU 1"), "{}", health.text());
    exporter.wait_log("GPUs down: GPU 1", Duration::from_secs(5));
}

#[test]
fn openmetrics_when_the_accept_header_asks() {
    let exporter = Exporter::start("steps.json", &["-c", "1000"]);
    let r = exporter.get_with(
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        )],
    );
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{:?}",
        r.headers
    );
    let text = r.text();
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    assert!(value(&text, UTIL, &[r#"gpu="0""#]).is_some());
    let plain = exporter.get("/metrics");
    assert!(
        plain
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        plain.headers
    );
    assert!(!plain.text().contains("# EOF"));
}

#[test]
fn gzip_when_accepted() {
    let exporter = Exporter::start("h100x8.json", &["-c", "1000"]);
    let r = exporter.get_with("/metrics", &[("Accept-Encoding", "gzip, deflate")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(
        r.header("vary")
            .is_some_and(|v| v.contains("Accept-Encoding"))
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_string(&mut text)
        .expect("a valid gzip body");
    assert!(value(&text, UTIL, &[r#"gpu="7""#]).is_some(), "{text}");
    let plain = exporter.get("/metrics");
    assert!(r.body.len() * 3 < plain.body.len(), "gzip shrinks the body");
    assert_eq!(plain.header("content-encoding"), None);
    let refused = exporter.get_with("/metrics", &[("Accept-Encoding", "gzip;q=0")]);
    assert_eq!(refused.header("content-encoding"), None);
    // OpenMetrics and gzip together.
    let both = exporter.get_with(
        "/metrics",
        &[
            ("Accept", "application/openmetrics-text"),
            ("Accept-Encoding", "gzip"),
        ],
    );
    let mut om = String::new();
    flate2::read::GzDecoder::new(&both.body[..])
        .read_to_string(&mut om)
        .expect("a valid gzip body");
    assert!(om.ends_with("# EOF\n"));
}

#[test]
fn per_process_metrics_only_with_the_flag() {
    // h100x8.json: pid 4242 + i trains on GPU i.
    let with = Exporter::start("h100x8.json", &["-c", "1000", "--processes"]);
    let text = with.metrics();
    let mem = value(
        &text,
        "algalon_process_gpu_memory_bytes",
        &[r#"gpu="3""#, r#"pid="4245""#],
    );
    assert!(mem.is_some_and(|b| b > 1e9), "{text}");
    drop(with);
    let without = Exporter::start("h100x8.json", &["-c", "1000"]);
    assert!(!without.metrics().contains("algalon_process_"));
}

#[test]
fn devices_and_no_hostname_select_what_is_exported() {
    let exporter = Exporter::start("h100x8.json", &["-c", "1000", "-d", "g:2,5", "-n"]);
    let text = exporter.metrics();
    assert!(value(&text, UTIL, &[r#"gpu="2""#]).is_some(), "{text}");
    assert!(value(&text, UTIL, &[r#"gpu="5""#]).is_some(), "{text}");
    assert!(value(&text, UTIL, &[r#"gpu="0""#]).is_none(), "{text}");
    assert!(!text.contains("Hostname="), "--no-hostname drops the label");
}

#[test]
fn gpus_api_and_page() {
    let exporter = Exporter::start("steps.json", &["-c", "1000"]);
    let r = exporter.get("/api/v1/gpus");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
    let gpus = json["gpus"].as_array().expect("gpus array");
    assert_eq!(gpus.len(), 2);
    assert_eq!(gpus[1]["gpu"], 1);
    assert_eq!(gpus[0]["values"]["DCGM_FI_DEV_GPU_UTIL"], 10);
    assert_eq!(json["driver_version"], "550.54.15");
    // dcgm-exporter's label names, and plain numbers instead of Rust's
    // Debug shapes.
    for key in ["UUID", "modelName", "pci_bus_id", "device"] {
        assert!(gpus[0][key].is_string(), "{key} in {}", gpus[0]);
    }
    assert!(json["Hostname"].is_string(), "{json}");
    assert!(json["duration_seconds"].is_f64(), "{json}");
    assert_eq!(
        json["history"]["gpus"][0]["UUID"], gpus[0]["UUID"],
        "the history is keyed like the GPUs"
    );
    let text = r.text();
    for debug in ["\"secs\"", "\"nanos\"", "\"index\"", "\"uuid\""] {
        assert!(!text.contains(debug), "{debug} in {text}");
    }

    let page = exporter.get("/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .is_some_and(|c| c.starts_with("text/html"))
    );
    let html = page.text();
    assert!(
        html.contains("\"GPU \" + gpu.gpu"),
        "cards are titled GPU 0, GPU 1, …"
    );
    assert!(html.contains("api/v1/gpus"));
    for external in [
        "src=\"http",
        "href=\"http",
        "src=\"//",
        "href=\"//",
        "@import",
        "url(",
    ] {
        assert!(
            !html.contains(external),
            "the page loads nothing external ({external})"
        );
    }

    assert_eq!(exporter.get("/nope").status, 404);
    let mut tcp = std::net::TcpStream::connect(exporter.addr).expect("connect");
    std::io::Write::write_all(
        &mut tcp,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .expect("send");
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).expect("read");
    assert_eq!(common::parse_response(&raw).status, 405);
}

/// `promtool check metrics` on a live scrape. dcgm-exporter's own names
/// carry two findings Algalon keeps on purpose, for dashboard
/// compatibility: the camelCase `modelName` label and the
/// `DCGM_FI_DEV_PCIE_REPLAY_COUNTER` name; anything else fails.
#[test]
fn promtool_accepts_a_live_scrape() {
    let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file());
    let Some(promtool) = promtool else {
        if std::env::var_os("ALGALON_REQUIRE_PROMTOOL").is_some() {
            panic!("promtool is not installed (apt-get install prometheus)");
        }
        eprintln!("SKIPPED: promtool is not installed (apt-get install prometheus)");
        return;
    };
    let exporter = Exporter::start("h100x8.json", &["-c", "1000", "--processes"]);
    // promtool 2.x parses the Prometheus text format only.
    {
        let accept = "text/plain";
        let body = exporter.get_with("/metrics", &[("Accept", accept)]).body;
        let mut child = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run promtool");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), &body).expect("feed");
        let out = child.wait_with_output().expect("promtool output");
        let findings = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let unexpected: Vec<&str> = findings
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter(|l| !l.ends_with("label names should be written in 'snake_case' not 'camelCase'"))
            .filter(|l| {
                *l != "DCGM_FI_DEV_PCIE_REPLAY_COUNTER metric name should not include type 'counter'"
            })
            .collect();
        assert!(
            unexpected.is_empty(),
            "promtool ({accept}):\n{}",
            unexpected.join("\n")
        );
        // 0: clean; 3: lint findings only (all of them known, above).
        assert!(
            matches!(out.status.code(), Some(0 | 3)),
            "promtool failed ({accept}, {}):\n{findings}",
            out.status
        );
    }
}
