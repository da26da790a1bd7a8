//! The exposition, checked two ways: golden files (regenerate with
//! `UPDATE_GOLDEN=1` / `make golden`) and promtool. The Python tests parse the
//! same golden files with the official `prometheus_client` parser.

mod common;

use std::sync::Arc;

use algalon_core::{CATALOG, CollectorConfig, Encoder, Format, Sampler, SamplerOptions, Snapshot};
use common::{options, scenario, with_scenario};

/// Lines whose values change from run to run, masked before comparing.
const VARYING: &[&str] = &[
    "algalon_sample_duration_seconds",
    "algalon_sample_timestamp_seconds",
];

fn mask(text: &str) -> String {
    text.lines()
        .map(
            |line| match VARYING.iter().find(|v| line.starts_with(&format!("{v} "))) {
                Some(name) => format!("{name} <varies>"),
                None => line.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn check_golden(name: &str, actual: &str) {
    common::check_golden(name, &mask(actual));
}

/// Two samples (so GPM ratios are present) of a frozen scenario.
fn snapshot(name: &str, t: f64, opts: SamplerOptions) -> Arc<Snapshot> {
    with_scenario(&scenario(name), Some(t), || {
        let mut s = Sampler::new(opts).expect("sampler");
        s.sample();
        Arc::new(s.sample())
    })
}

fn promtool_check(text: &str) -> String {
    let (code, report) = common::promtool(text);
    // promtool exits 1 on parse errors and 3 on lint findings only.
    assert!(
        code == Some(0) || code == Some(3),
        "promtool rejected the exposition: {report}"
    );
    report
}

/// The only lints promtool may raise are about names Algalon must keep
/// because dashboards query them: dcgm-exporter's camelCase label
/// `modelName` and DCGM's field `DCGM_FI_DEV_PCIE_REPLAY_COUNTER`.
const KNOWN_LINTS: &[&str] = &[
    "label names should be written in 'snake_case' not 'camelCase'",
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER metric name should not include type 'counter'",
];

fn assert_only_known_lints(report: &str) {
    let unexpected: Vec<&str> = report
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !KNOWN_LINTS.iter().any(|k| l.contains(k)))
        .collect();
    assert!(
        unexpected.is_empty(),
        "unexpected promtool findings:\n{}",
        unexpected.join("\n")
    );
}

#[test]
fn h100x8_default_counters_match_golden_and_pass_promtool() {
    let config = CollectorConfig::default();
    let snap = snapshot("h100x8", 30.0, options().with_collectors(&config));
    let text = Encoder::new(config.clone()).encode(&snap, Format::PrometheusText);
    check_golden("h100x8.prom", &text);
    assert_only_known_lints(&promtool_check(&text));

    for name in [
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
        "algalon_gpu_up",
    ] {
        for gpu in 0..8 {
            assert!(
                text.contains(&format!("{name}{{gpu=\"{gpu}\",UUID=\"GPU-")),
                "{name} for GPU {gpu}"
            );
        }
    }
    assert!(text.contains("# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION untyped\n"));
    assert!(!text.contains("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION_total"));
    assert!(text.contains(",Hostname=\"test-host\",DCGM_FI_DRIVER_VERSION=\"550.54.15\"} "));

    let om = Encoder::new(config).encode(&snap, Format::OpenMetrics);
    check_golden("h100x8.openmetrics", &om);
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION unknown\n"));
}

#[test]
fn every_catalog_field_on_mixed_gpus_matches_golden_and_passes_promtool() {
    let csv: String = CATALOG
        .iter()
        .map(|d| {
            let kind = match d.kind {
                algalon_core::Kind::Gauge => "gauge",
                algalon_core::Kind::Counter => "counter",
                algalon_core::Kind::Label => "label",
            };
            format!("{}, {kind}, {}\n", d.name, d.help)
        })
        .collect();
    let config = CollectorConfig::parse(&csv, "<every field>").expect("catalog CSV parses");
    let opts = SamplerOptions {
        processes: true,
        ..options().with_collectors(&config)
    };
    let snap = snapshot("mixed", 12.0, opts);
    let text = Encoder::new(config).encode(&snap, Format::PrometheusText);
    check_golden("mixed-all-fields.prom", &text);
    assert_only_known_lints(&promtool_check(&text));
}

#[test]
fn no_hostname_drops_the_label() {
    let snap = snapshot("constant", 1.0, options());
    let text = Encoder::default()
        .without_hostname()
        .encode(&snap, Format::PrometheusText);
    assert!(!text.contains("Hostname="));
    assert!(text.contains("DCGM_FI_DEV_GPU_TEMP{gpu=\"0\""));
}

#[test]
fn label_values_and_help_are_escaped() {
    let mut snap = (*snapshot("constant", 1.0, options())).clone();
    snap.hostname = "evil\"host\\with\nnewline".into();
    snap.gpus[0].name = "GPU \"quoted\"".into();
    let config = CollectorConfig::parse(
        "DCGM_FI_DEV_GPU_TEMP, gauge, \"Temp with \\ backslash\"\n",
        "<escape>",
    )
    .expect("parses");
    let text = Encoder::new(config).encode(&Arc::new(snap), Format::PrometheusText);
    assert!(
        text.contains(r#"Hostname="evil\"host\\with\nnewline""#),
        "{text}"
    );
    assert!(text.contains(r#"modelName="GPU \"quoted\"""#), "{text}");
    assert!(
        text.contains("# HELP DCGM_FI_DEV_GPU_TEMP Temp with \\\\ backslash\n"),
        "{text}"
    );
    promtool_check(&text);
}

#[test]
fn a_lost_gpu_reports_up_zero_and_nothing_else() {
    let snap = snapshot("faulty", 5.0, options());
    let text = Encoder::default().encode(&snap, Format::PrometheusText);
    let lost = snap.gpus.iter().find(|g| !g.up).expect("one GPU lost");
    let up_line = format!("algalon_gpu_up{{gpu=\"{}\",", lost.index);
    let line = text
        .lines()
        .find(|l| l.starts_with(&up_line))
        .expect("algalon_gpu_up for the lost GPU");
    assert!(line.ends_with(" 0"), "{line}");
    let prefix = format!("{{gpu=\"{}\",", lost.index);
    let dcgm_series = text
        .lines()
        .filter(|l| l.starts_with("DCGM_FI_") && l.contains(&prefix))
        .count();
    assert_eq!(dcgm_series, 0, "no invented values for a lost GPU");
    let up_ones = text
        .lines()
        .filter(|l| l.starts_with("algalon_gpu_up{") && l.ends_with(" 1"))
        .count();
    assert_eq!(up_ones, snap.gpus.len() - 1);
    // Counted under the GPU that failed (faulty.json: GPU 1 denies power).
    assert!(
        text.contains(
            "algalon_nvml_errors_total{gpu=\"1\",call=\"nvmlDeviceGetPowerUsage\",error=\"NoPermission\"}"
        ),
        "{text}"
    );
}

#[test]
fn built_in_defaults_are_nvidias_file_verbatim() {
    let compat = common::workspace().join("../shared/compat");
    let reference =
        std::fs::read_to_string(compat.join("default-counters.csv")).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the reference files live in ../shared/compat)",
                compat.display()
            )
        });
    assert_eq!(algalon_core::DEFAULT_COUNTERS_CSV, reference);
    for file in ["default-counters.csv", "dcp-metrics-included.csv"] {
        let config = CollectorConfig::from_path(compat.join(file))
            .unwrap_or_else(|e| panic!("{file} must load unchanged: {e}"));
        assert!(
            config.metrics.len() >= 20,
            "{file}: {} metrics",
            config.metrics.len()
        );
    }
}
