//! The exporter's own series at the end of `/metrics`: build revision,
//! requests by handler and code, auth failures, reload outcome and the
//! process metrics Go exporters carry; valid for the official parser and
//! promtool, and inside the one gzip member.

mod common;

use std::io::Read as _;
use std::time::Duration;

use common::{Exporter, value, wait_for};

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[test]
fn requests_auth_failures_reloads_and_process_series() {
    let dir = tempfile::tempdir().expect("tempdir");
    let web = dir.path().join("web.yml");
    let hash = bcrypt::hash("s3cret", 4).expect("bcrypt");
    let good = format!("basic_auth_users:\n  prometheus: {hash}\n");
    std::fs::write(&web, &good).expect("write");
    let exporter = Exporter::start(
        "steps.json",
        &[
            "-c",
            "500",
            "--web-config-file",
            web.to_str().expect("utf-8"),
        ],
    );
    let ok = basic("prometheus", "s3cret");
    let auth = [("Authorization", ok.as_str())];
    let scrape = || exporter.get_with("/metrics", &auth).text();

    assert_eq!(exporter.get("/metrics").status, 401);
    let wrong = basic("prometheus", "nope");
    assert_eq!(
        exporter
            .get_with("/metrics", &[("Authorization", wrong.as_str())])
            .status,
        401
    );
    assert_eq!(exporter.get_with("/no-such-page", &auth).status, 404);
    assert_eq!(exporter.get("/health").status, 200);
    scrape();
    let text = scrape();
    let count = |labels: &[&str]| value(&text, "algalon_http_requests_total", labels);
    assert_eq!(
        count(&[r#"handler="/metrics""#, r#"code="401""#]),
        Some(2.0),
        "{text}"
    );
    // The scrape being answered is counted once it is done.
    assert_eq!(
        count(&[r#"handler="/metrics""#, r#"code="200""#]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        count(&[r#"handler="other""#, r#"code="404""#]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        count(&[r#"handler="/health""#, r#"code="200""#]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "algalon_http_auth_failures_total", &[]),
        Some(2.0)
    );
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        let v = value(&text, name, &[]).unwrap_or_else(|| panic!("{name} in {text}"));
        assert!(v > 0.0, "{name} = {v}");
    }
    let rss = value(&text, "process_resident_memory_bytes", &[]).expect("rss");
    assert!(rss > 1e6 && rss < 4e9, "a plausible RSS: {rss}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let started = value(&text, "process_start_time_seconds", &[]).expect("start");
    assert!(
        (now - started).abs() < 120.0,
        "started {started}, now {now}"
    );

    // The build info names the revision.
    let build = text
        .lines()
        .find(|l| l.starts_with("algalon_build_info{"))
        .expect("build info");
    let revision = build
        .split("revision=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a revision label");
    assert!(
        revision == "unknown"
            || (revision.len() >= 7 && revision.chars().all(|c| c.is_ascii_hexdigit())),
        "{build}"
    );

    // Reloads, as Prometheus reports its own.
    assert_eq!(
        value(&text, "algalon_config_last_reload_successful", &[]),
        Some(1.0)
    );
    let loaded_at = value(
        &text,
        "algalon_config_last_reload_success_timestamp_seconds",
        &[],
    )
    .expect("ts");
    std::fs::write(&web, "basic_auth_users:\n  prometheus: not-a-hash\n").expect("write");
    let before = exporter.log().len();
    exporter.signal("HUP");
    exporter.wait_log_after(before, "web config reload failed", Duration::from_secs(15));
    let text = scrape();
    assert_eq!(
        value(&text, "algalon_config_last_reload_successful", &[]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "algalon_config_last_reload_success_timestamp_seconds",
            &[]
        ),
        Some(loaded_at)
    );
    std::thread::sleep(Duration::from_millis(50));
    std::fs::write(&web, &good).expect("write");
    let before = exporter.log().len();
    exporter.signal("HUP");
    exporter.wait_log_after(before, "web config reloaded", Duration::from_secs(15));
    let text = scrape();
    assert_eq!(
        value(&text, "algalon_config_last_reload_successful", &[]),
        Some(1.0)
    );
    let reloaded_at = value(
        &text,
        "algalon_config_last_reload_success_timestamp_seconds",
        &[],
    )
    .expect("ts");
    assert!(reloaded_at > loaded_at, "{reloaded_at} > {loaded_at}");
}

#[test]
fn own_series_parse_in_both_formats_and_gzip_is_one_member() {
    let exporter = Exporter::start("h100x8.json", &["-c", "1000"]);
    wait_for(Duration::from_secs(10), "a first sample", || {
        exporter
            .metrics()
            .contains("DCGM_FI_DEV_GPU_UTIL{")
            .then_some(())
    });
    let om = "application/openmetrics-text; version=1.0.0";
    for (accept, script) in [
        (
            "text/plain",
            "from prometheus_client.parser import text_string_to_metric_families as p",
        ),
        (
            om,
            "from prometheus_client.openmetrics.parser import text_string_to_metric_families as p",
        ),
    ] {
        let r = exporter.get_with(
            "/metrics",
            &[("Accept", accept), ("Accept-Encoding", "gzip")],
        );
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        // One member: a reader that stops after the first one sees it all.
        let mut text = String::new();
        flate2::read::GzDecoder::new(&r.body[..])
            .read_to_string(&mut text)
            .expect("valid gzip");
        assert!(text.contains("DCGM_FI_DEV_GPU_UTIL{"), "{accept}");
        assert!(text.contains("algalon_http_requests_total"), "{accept}");
        assert!(text.contains("\nprocess_open_fds "), "{accept}");
        if accept == om {
            assert!(text.ends_with("# EOF\n"), "one EOF, at the end");
            assert_eq!(text.matches("# EOF").count(), 1);
        }
        let python = format!(
            "import sys\n{script}\nnames = {{f.name for f in p(sys.stdin.read())}}\n\
             assert 'algalon_http_requests' in names, names\n\
             assert 'process_cpu_seconds' in names, names\n\
             assert names & {{'algalon_build', 'algalon_build_info'}}, names\nprint(len(names))\n"
        );
        let mut child = std::process::Command::new("python3")
            .args(["-c", &python])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), text.as_bytes())
            .expect("feed");
        let out = child.wait_with_output().expect("python3 output");
        assert!(
            out.status.success(),
            "prometheus_client rejects the {accept} body: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
