//! Job windows over real samples of the fake NVML.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use algalon_core::encode_jobs;
use algalon_core::jobs::{EnergySource, JobTracker, WindowSpec};
use algalon_core::{BackgroundSampler, Format};
use common::{options, sampler, scenario, with_scenario};

const H100: &str = "GPU-11111111-2222-3333-4444-555555555550";
const T4: &str = "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeee1";

fn within(actual: f64, expected: f64, rel: f64) -> bool {
    (actual - expected).abs() <= expected.abs() * rel
}

#[test]
fn windows_measure_energy_utilization_and_memory() {
    with_scenario(&scenario("constant"), None, || {
        let tracker = Arc::new(JobTracker::new());
        let feed = Arc::clone(&tracker);
        let opts = algalon_core::SamplerOptions {
            processes: true,
            ..options()
        };
        let bg = BackgroundSampler::spawn(sampler(opts), Duration::from_millis(50), move |s| {
            feed.observe(s)
        })
        .expect("spawn");

        let outer = tracker.begin(WindowSpec {
            name: "finetune".into(),
            labels: [("team".to_owned(), "nlp".to_owned())].into(),
            gpus: None,
            pids: Some(vec![4242]),
            ..WindowSpec::default()
        });
        bg.sample_now();
        std::thread::sleep(Duration::from_millis(300));
        let inner = tracker.begin(WindowSpec {
            name: "epoch-1".into(),
            gpus: Some(vec![T4.to_owned()]),
            ..WindowSpec::default()
        });
        bg.sample_now();
        std::thread::sleep(Duration::from_millis(300));
        assert!(tracker.count(outer, "samples", 1000.0));
        bg.sample_now();
        let inner_report = tracker.end(inner).expect("inner open");
        std::thread::sleep(Duration::from_millis(200));
        bg.sample_now();
        let report = tracker.end(outer).expect("outer open");
        assert!(tracker.end(outer).is_none(), "ended once");

        assert_eq!(report.name, "finetune");
        assert_eq!(report.labels.get("team").map(String::as_str), Some("nlp"));
        assert!(report.duration_s >= 0.75, "{}", report.duration_s);
        let [h100, t4] = report.gpus.as_slice() else {
            panic!("{:?}", report.gpus)
        };
        assert_eq!((h100.uuid.as_str(), t4.uuid.as_str()), (H100, T4));

        // H100: energy from the counter = 312.5 W × duration.
        assert_eq!(h100.energy_source, Some(EnergySource::Counter));
        let e = h100.energy_j.expect("energy");
        assert!(
            within(e, 312.5 * report.duration_s, 0.05),
            "{e} J over {} s",
            report.duration_s
        );
        assert_eq!(h100.util_mean, Some(85.0));
        assert_eq!(h100.util_max, Some(85.0));
        assert_eq!(h100.memory_peak_bytes, Some(40000 << 20));
        // With the counter, mean power is energy over the window's duration.
        let p = h100.power_mean_w.expect("power");
        assert!(within(p, e / report.duration_s, 1e-12), "{p} W");
        assert!(within(p, 312.5, 0.05), "{p} W");
        assert_eq!(h100.temperature_max_c, Some(63.0));
        assert_eq!(h100.process_memory_peak_bytes, Some(30000 << 20));
        assert!(h100.samples >= 4, "{}", h100.samples);

        // T4 has no energy counter: integrated power, and the report says so.
        assert_eq!(t4.energy_source, Some(EnergySource::Integrated));
        let note = t4.energy_note.as_deref().expect("a note");
        assert!(note.contains("no energy counter"), "{note}");
        let e = t4.energy_j.expect("integrated energy");
        assert!(within(e, 27.25 * report.duration_s, 1e-6), "{e}");
        assert_eq!(
            t4.process_memory_peak_bytes, None,
            "no process of the job on the T4"
        );

        let total = report.energy_j.expect("total");
        assert!(within(total, h100.energy_j.unwrap_or(0.0) + e, 1e-9));
        let per = report.energy_per("samples").expect("J per sample");
        assert!(within(per, total / 1000.0, 1e-9));

        // The nested window covers only the T4 and its own time span.
        assert_eq!(inner_report.gpus.len(), 1);
        assert_eq!(inner_report.gpus[0].uuid, T4);
        assert!(inner_report.duration_s < report.duration_s);

        let table = report.table();
        assert!(table.contains("job \"finetune\""), "{table}");
        assert!(table.contains("integrated"), "{table}");
        assert!(table.contains("J per samples"), "{table}");

        // Every job has its own random id, the job_id label of its series.
        assert_ne!(report.id, inner_report.id);
        let (id, inner_id) = (report.id.as_str(), inner_report.id.as_str());
        let text = encode_jobs(&tracker.reports(), Format::PrometheusText);
        assert!(
            text.contains(&format!(
                "algalon_job_info{{job_id=\"{id}\",job_name=\"finetune\",team=\"nlp\"}} 1"
            )),
            "{text}"
        );
        assert!(text.contains(&format!("algalon_job_gpu_energy_joules_total{{job_id=\"{id}\",job_name=\"finetune\",gpu=\"0\",UUID=\"{H100}\",source=\"counter\"}}")), "{text}");
        assert!(
            text.contains(&format!(
                "algalon_job_running{{job_id=\"{inner_id}\",job_name=\"epoch-1\"}} 0"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "algalon_job_progress_total{{job_id=\"{id}\",job_name=\"finetune\",unit=\"samples\"}} 1000"
            )),
            "{text}"
        );
        bg.stop();
    });
}

#[test]
fn a_window_with_one_sample_says_energy_cannot_be_measured() {
    with_scenario(&scenario("constant"), None, || {
        let tracker = Arc::new(JobTracker::new());
        let feed = Arc::clone(&tracker);
        let bg =
            BackgroundSampler::spawn(sampler(options()), Duration::from_secs(3600), move |s| {
                feed.observe(s)
            })
            .expect("spawn");
        let id = tracker.begin(WindowSpec {
            name: "blink".into(),
            ..WindowSpec::default()
        });
        bg.sample_now();
        let report = tracker.end(id).expect("open");
        for g in &report.gpus {
            assert_eq!(g.energy_j, None, "never a made-up 0 J");
            let note = g.energy_note.as_deref().unwrap_or_default();
            assert!(note.contains("fewer than two samples"), "{note}");
        }
        assert_eq!(report.energy_j, None);
    });
}

/// An exception name a user could really produce (a class defined with
/// `type()` takes any string) holding every character the formats escape.
const HOSTILE: &str = "mod.Odd\"Name\\ with\nnewline, {braces}=\u{e9}";

/// `algalon_job_interrupted` samples as (job_id, value, exception label),
/// read back by the official `prometheus_client` parser of `format`.
fn parsed_interruptions(text: &str, format: Format) -> Vec<(String, f64, Option<String>)> {
    let parser = match format {
        Format::PrometheusText => "prometheus_client.parser",
        Format::OpenMetrics => "prometheus_client.openmetrics.parser",
    };
    let script = format!(
        "import json, sys\n\
         from {parser} import text_string_to_metric_families as parse\n\
         fams = {{f.name: f for f in parse(sys.stdin.read())}}\n\
         print(json.dumps([[s.labels['job_id'], s.value, s.labels.get('exception')]\n\
             for s in fams['algalon_job_interrupted'].samples]))\n"
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with prometheus_client is installed (make deps)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to python3");
    let out = child.wait_with_output().expect("python3 runs");
    assert!(
        out.status.success(),
        "prometheus_client rejected the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script prints JSON")
}

#[test]
fn interrupted_windows_are_reported_encoded_and_parsed_back() {
    let tracker = JobTracker::new();
    let spec = |name: &str| WindowSpec {
        name: name.into(),
        ..WindowSpec::default()
    };
    let clean = tracker.begin(spec("clean"));
    let marked = tracker.begin(spec("marked"));
    let hostile = tracker.begin(spec("hostile"));
    let running = tracker.begin(spec("running"));

    // Marking shows on the open window at once, and the first mark stands.
    assert!(tracker.mark_interrupted(marked, "KeyboardInterrupt"));
    assert!(tracker.mark_interrupted(marked, "SystemExit"));
    let peeked = tracker.peek(marked).expect("open");
    assert_eq!(peeked.interrupted.as_deref(), Some("KeyboardInterrupt"));
    assert!(
        peeked
            .table()
            .starts_with("(interrupted by KeyboardInterrupt) job \"marked\""),
        "{}",
        peeked.table()
    );
    assert_eq!(
        tracker.end(marked).expect("open").interrupted.as_deref(),
        Some("KeyboardInterrupt")
    );

    // Ending as interrupted in one step; a clean end is not interrupted.
    let report = tracker.end_interrupted(hostile, HOSTILE).expect("open");
    assert_eq!(report.interrupted.as_deref(), Some(HOSTILE));
    let report = tracker.end(clean).expect("open");
    assert_eq!(report.interrupted, None);
    assert!(
        report.table().starts_with("job \"clean\""),
        "{}",
        report.table()
    );

    // Windows that are not open cannot be marked or ended again.
    assert!(!tracker.mark_interrupted(clean, "late"));
    assert!(tracker.end_interrupted(clean, "late").is_none());
    assert_eq!(
        tracker.reports()[2].0.interrupted,
        None,
        "a late mark changes nothing"
    );

    // The report's JSON schema (4, shared with Python's Report.to_json):
    // `interrupted` is a flag and `error` what cut the job short.
    let json = serde_json::to_value(&tracker.reports()[1].0).expect("serializes");
    assert_eq!(json["error"], serde_json::json!(HOSTILE));
    assert_eq!(json["interrupted"], serde_json::json!(true));
    let json = serde_json::to_value(&tracker.reports()[2].0).expect("serializes");
    assert_eq!(json["error"], serde_json::Value::Null);
    assert_eq!(json["interrupted"], serde_json::json!(false));

    let reports = tracker.reports();
    let id = |name: &str| {
        reports
            .iter()
            .find(|(r, _)| r.name == name)
            .map(|(r, _)| r.id.as_str().to_owned())
            .expect(name)
    };
    let text = encode_jobs(&reports, Format::PrometheusText);
    assert!(
        text.contains("# TYPE algalon_job_interrupted gauge\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "algalon_job_interrupted{{job_id=\"{}\",job_name=\"clean\"}} 0\n",
            id("clean")
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "algalon_job_interrupted{{job_id=\"{}\",job_name=\"marked\",exception=\"KeyboardInterrupt\"}} 1\n",
            id("marked")
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "algalon_job_interrupted{{job_id=\"{}\",job_name=\"running\"}} 0\n",
            id("running")
        )),
        "{text}"
    );
    let expected = vec![
        (id("marked"), 1.0, Some("KeyboardInterrupt".to_owned())),
        (id("hostile"), 1.0, Some(HOSTILE.to_owned())),
        (id("clean"), 0.0, None),
        (id("running"), 0.0, None),
    ];
    for format in [Format::PrometheusText, Format::OpenMetrics] {
        let text = encode_jobs(&reports, format);
        assert_eq!(
            parsed_interruptions(&text, format),
            expected,
            "{format:?}:\n{text}"
        );
    }
    assert_eq!(encode_jobs(&[], Format::PrometheusText), "");
    tracker.end(running);
}
