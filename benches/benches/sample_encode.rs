//! Sample + encode of the 8×H100 scenario through the fake NVML, and encode
//! alone; then a sample's time against GPU count with every NVML call slowed
//! to 1 ms, GPUs read in parallel (the default) and one at a time. Run with
//! `make bench` (builds the fake NVML first).
//!
//! The fake's own calls are cheap (no driver, no ioctl), so "sample" here is an
//! upper bound on Algalon's own work per sample: on real GPUs the time inside
//! NVML comes on top and is measured by `benches/compare/`. The `scaling`
//! group adds that time back as a fixed 1 ms per device call
//! (`ALGALON_FAKE_NVML_LATENCY_MS`), as on a busy real driver.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use algalon_core::devices::InstanceSet;
use algalon_core::{CollectorConfig, Encoder, Format, Sampler, SamplerOptions};
use criterion::{Criterion, criterion_group, criterion_main};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches/ is in the workspace")
        .to_owned()
}

fn fake_nvml() -> PathBuf {
    let lib = std::env::var_os("ALGALON_TEST_NVML_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/fake-nvml/libnvidia-ml.so.1"));
    assert!(
        lib.exists(),
        "{} missing: run `make fake-nvml`",
        lib.display()
    );
    lib
}

fn sampler(config: &CollectorConfig) -> Sampler {
    let root = workspace();
    let lib = fake_nvml();
    // SAFETY: set before any thread is started; the bench is single-threaded here.
    unsafe {
        std::env::set_var(
            "ALGALON_FAKE_NVML_SCENARIO",
            root.join("testing/scenarios/h100x8.json"),
        );
        std::env::set_var("ALGALON_FAKE_NVML_FROZEN_TIME", "30");
    }
    Sampler::new(SamplerOptions {
        nvml_lib: Some(lib),
        hostname: Some("bench-host".into()),
        xid_events: false,
        ..SamplerOptions::default().with_collectors(config)
    })
    .expect("sampler on the fake NVML")
}

fn benches(c: &mut Criterion) {
    let config = CollectorConfig::default();
    let mut s = sampler(&config);
    s.sample();
    let snap = Arc::new(s.sample());
    assert_eq!(snap.gpus.len(), 8);
    let encoder = Encoder::new(config);
    let text = encoder.encode(&snap, Format::PrometheusText);
    eprintln!(
        "8 GPUs, default field set: {} series lines, {} bytes",
        text.lines().filter(|l| !l.starts_with('#')).count(),
        text.len()
    );

    let mut group = c.benchmark_group("h100x8");
    group.bench_function("encode_text", |b| {
        b.iter(|| encoder.encode(&snap, Format::PrometheusText))
    });
    group.bench_function("encode_openmetrics", |b| {
        b.iter(|| encoder.encode(&snap, Format::OpenMetrics))
    });
    group.bench_function("sample", |b| b.iter(|| s.sample()));
    group.bench_function("sample_and_encode", |b| {
        b.iter(|| encoder.encode(&Arc::new(s.sample()), Format::PrometheusText))
    });
    group.finish();
}

/// `testing/scenarios/scaling.json` with `count` GPUs, written under target/.
fn scaling_scenario(count: usize) -> PathBuf {
    let root = workspace();
    let text = std::fs::read_to_string(root.join("testing/scenarios/scaling.json"))
        .expect("testing/scenarios/scaling.json");
    let mut spec: serde_json::Value = serde_json::from_str(&text).expect("scaling.json is JSON");
    spec["gpus"][0]["count"] = serde_json::json!(count);
    let dir = root.join("target/tmp");
    std::fs::create_dir_all(&dir).expect("target/tmp");
    let path = dir.join(format!("bench-scaling-{count}.json"));
    std::fs::write(&path, spec.to_string()).expect("write scenario");
    path
}

/// A sample of 1, 8 and 64 H100s with every NVML device call taking 1 ms:
/// in parallel (one worker per GPU) the time stays near one GPU's; one at a
/// time it grows with the count.
fn scaling(c: &mut Criterion) {
    // `benches/scripts/own-work.py` counts instructions of the h100x8 group
    // only; the samplers set up here would add theirs.
    if std::env::var_os("ALGALON_BENCH_NO_SCALING").is_some() {
        return;
    }
    let mut group = c.benchmark_group("scaling_1ms");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    for gpus in [1usize, 8, 64] {
        for parallel in [true, false] {
            // SAFETY: set before the sampler (and its threads) start; the
            // previous sampler's threads are gone (dropped below).
            unsafe {
                std::env::set_var("ALGALON_FAKE_NVML_SCENARIO", scaling_scenario(gpus));
                std::env::set_var("ALGALON_FAKE_NVML_FROZEN_TIME", "30");
                std::env::set_var("ALGALON_FAKE_NVML_LATENCY_MS", "1");
            }
            let mut s = Sampler::new(SamplerOptions {
                nvml_lib: Some(fake_nvml()),
                hostname: Some("bench-host".into()),
                xid_events: false,
                parallel,
                ..SamplerOptions::default()
            })
            .expect("sampler on the fake NVML");
            s.sample();
            let mode = if parallel { "parallel" } else { "serial" };
            group.bench_function(format!("{gpus}gpus/{mode}"), |b| b.iter(|| s.sample()));
            drop(s);
        }
    }
    group.finish();
    // SAFETY: as above; no sampler is running.
    unsafe { std::env::remove_var("ALGALON_FAKE_NVML_LATENCY_MS") };
}

/// A sample (and its encoding) of the MIG scenario at t = 35 s (GPU 0:
/// 7 x 1g.10gb, GPUs 1 and 2: two instances each, GPUs 3-7 whole) with
/// whole GPUs only (`-d g`) and with every MIG instance (`-d g+i`): the
/// cost of enumerating and reading the instances.
fn mig(c: &mut Criterion) {
    if std::env::var_os("ALGALON_BENCH_NO_SCALING").is_some() {
        return;
    }
    let root = workspace();
    let config = CollectorConfig::default();
    let encoder = Encoder::new(config.clone());
    let mut group = c.benchmark_group("h100_mig");
    for (name, instances) in [("g", InstanceSet::None), ("g+i", InstanceSet::All)] {
        // SAFETY: set before the sampler (and its threads) start; the
        // previous sampler's threads are gone (dropped below).
        unsafe {
            std::env::set_var(
                "ALGALON_FAKE_NVML_SCENARIO",
                root.join("testing/scenarios/h100-mig.json"),
            );
            std::env::set_var("ALGALON_FAKE_NVML_FROZEN_TIME", "35");
        }
        let mut s = Sampler::new(SamplerOptions {
            nvml_lib: Some(fake_nvml()),
            hostname: Some("bench-host".into()),
            xid_events: false,
            processes: true,
            instances,
            ..SamplerOptions::default().with_collectors(&config)
        })
        .expect("sampler on the fake NVML");
        s.sample();
        group.bench_function(format!("{name}/sample"), |b| b.iter(|| s.sample()));
        let snap = Arc::new(s.sample());
        let text = encoder.encode(&snap, Format::PrometheusText);
        eprintln!(
            "h100-mig, -d {name}: {} series lines, {} bytes",
            text.lines().filter(|l| !l.starts_with('#')).count(),
            text.len()
        );
        group.bench_function(format!("{name}/encode_text"), |b| {
            b.iter(|| encoder.encode(&snap, Format::PrometheusText))
        });
        drop(s);
    }
    group.finish();
}

criterion_group!(sample_encode, benches, scaling, mig);
criterion_main!(sample_encode);
