//! Log lines as a log shipper reads them: JSON with the values it filters on
//! as fields of their own, no Rust Debug shapes, counts in good English.

mod common;

use std::time::Duration;

use common::Exporter;
use serde_json::Value;

fn json_lines(exporter: &Exporter) -> Vec<Value> {
    exporter
        .log()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn json_logs_carry_gpu_uuid_call_and_error_as_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let web = dir.path().join("web.yml");
    let hash = bcrypt::hash("s3cret", 4).expect("bcrypt");
    std::fs::write(&web, format!("basic_auth_users:\n  prometheus: {hash}\n")).expect("write");
    let exporter = Exporter::start(
        "all-lost.json",
        &[
            "-c",
            "200",
            "--log-format",
            "json",
            "--web-config-file",
            web.to_str().expect("utf-8"),
        ],
    );
    // The GPU falls off the bus at 0.5 s.
    exporter.wait_log("GPU 0 is down", Duration::from_secs(10));
    let lines = json_lines(&exporter);
    for line in &lines {
        for key in ["timestamp", "level", "message"] {
            assert!(line[key].is_string(), "{key} at the top level: {line}");
        }
        assert!(line.get("fields").is_none(), "fields are flattened: {line}");
        assert!(
            line.as_object()
                .is_some_and(|o| o.keys().all(|k| !k.starts_with("log."))),
            "no tracing-log bookkeeping: {line}"
        );
    }
    let find = |needle: &str| {
        lines
            .iter()
            .find(|l| l["message"].as_str().is_some_and(|m| m.contains(needle)))
            .unwrap_or_else(|| panic!("no line with {needle:?} in {lines:#?}"))
    };

    let down = find("GPU 0 is down");
    assert_eq!(down["level"], "WARN");
    assert_eq!(down["gpu"], 0);
    assert_eq!(down["uuid"], "GPU-00000000-aaaa-4bbb-8ccc-dddddddddd00");
    assert!(
        down["call"].as_str().is_some_and(|c| c.starts_with("nvml")),
        "{down}"
    );
    let error = down["error"].as_str().expect("error field");
    assert!(error.contains("inaccessible"), "{error}");

    let started = find("algalon-exporter ");
    assert!(
        started["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("sampling 1 GPU")),
        "one GPU, singular: {started}"
    );
    assert_eq!(started["gpus"], 1);
    assert!(started["revision"].is_string(), "{started}");

    let auth = find("basic auth on");
    assert_eq!(auth["users"], "prometheus");

    let all = exporter.log().join("\n");
    for debug in ["BasicAuth", "{ ", "secs:", "nanos", "inacessible", "1 GPUs"] {
        assert!(!all.contains(debug), "{debug:?} in the log:\n{all}");
    }
}

#[test]
fn a_failed_reload_names_file_and_error_as_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("collectors.csv");
    std::fs::write(&csv, "DCGM_FI_DEV_GPU_UTIL, gauge, util\n").expect("write");
    let exporter = Exporter::start(
        "steps.json",
        &[
            "-c",
            "500",
            "--log-format",
            "json",
            "-f",
            csv.to_str().expect("utf-8"),
        ],
    );
    std::fs::write(
        &csv,
        "DCGM_FI_DEV_GPU_UTIL, gauge, util\nDCGM_FI_NOPE, gauge, x\n",
    )
    .expect("write");
    let before = exporter.log().len();
    exporter.signal("HUP");
    exporter.wait_log_after(before, "collectors reload failed", Duration::from_secs(15));
    let lines = json_lines(&exporter);
    let failed = lines
        .iter()
        .find(|l| l["message"] == "collectors reload failed; the previous collectors keep serving")
        .expect("the failure line");
    assert_eq!(failed["level"], "ERROR");
    assert_eq!(failed["file"], csv.display().to_string());
    let error = failed["error"].as_str().expect("error field");
    assert!(error.contains(":2:"), "file and line in {error}");
    assert!(error.contains("DCGM_FI_NOPE"), "{error}");
}

#[test]
fn an_nvml_hang_is_logged_once_when_it_starts_and_once_when_it_ends() {
    // hang-once.json: GPU 0's power reading takes 3 s once, at t = 1 s.
    // The sampler waits 2 s for it (the core's GPU timeout), reports GPU 0
    // down and goes on reading GPU 1; the core logs the hang and its end.
    let exporter = Exporter::start("hang-once.json", &["-c", "100", "--log-format", "json"]);
    exporter.wait_log("NVML answers again", Duration::from_secs(20));
    let lines = json_lines(&exporter);
    let hung: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("NVML hangs"))
        })
        .collect();
    assert_eq!(hung.len(), 1, "once at the start: {lines:#?}");
    assert_eq!(hung[0]["level"], "WARN");
    assert_eq!(hung[0]["gpu"], 0);
    assert_eq!(hung[0]["uuid"], "GPU-00000000-aaaa-4bbb-8ccc-dddddddddd00");
    let back: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("NVML answers again"))
        })
        .collect();
    assert_eq!(back.len(), 1, "once at the end: {lines:#?}");
    assert_eq!(back[0]["gpu"], 0);
    // The core's record carries `seconds` (a field the log bridge does not
    // map, so it follows the message as `seconds=…`).
    let seconds = back[0]["seconds"].as_f64().unwrap_or_else(|| {
        let message = back[0]["message"].as_str().unwrap_or_default();
        let (_, value) = message
            .rsplit_once("seconds=")
            .unwrap_or_else(|| panic!("seconds in {message}"));
        value.trim().parse().expect("seconds as a number")
    });
    assert!(
        (2.5..10.0).contains(&seconds),
        "the hang lasted about 3 s: {seconds}"
    );

    // The sample that waited for the hung GPU stays visible after the fact
    // in the histogram (it waited the 2 s GPU timeout, not the whole hang).
    let text = exporter.metrics();
    let le = |bound: &str| {
        common::value(
            &text,
            "algalon_sample_latency_seconds_bucket",
            &[&format!("le=\"{bound}\"")],
        )
        .expect("bucket")
    };
    assert!(le("+Inf") - le("1") >= 1.0, "one sample over 1 s:\n{text}");
    assert!(
        le("+Inf") - le("2.5") < 1.0,
        "no sample waited for the whole 3 s hang:\n{text}"
    );
}
