//! Sample + encode of the 8×H100 scenario through the fake NVML, and encode
//! alone. Run with `make bench` (builds the fake NVML first).
//!
//! The fake's own calls are cheap (no driver, no ioctl), so "sample" here is an
//! upper bound on Algalon's own work per sample: on real GPUs the time inside
//! NVML comes on top and is measured by `benches/compare/`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use algalon_core::{CollectorConfig, Encoder, Format, Sampler, SamplerOptions};
use criterion::{Criterion, criterion_group, criterion_main};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches/ is in the workspace")
        .to_owned()
}

fn sampler(config: &CollectorConfig) -> Sampler {
    let root = workspace();
    let lib = std::env::var_os("ALGALON_TEST_NVML_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/fake-nvml/libnvidia-ml.so.1"));
    assert!(
        lib.exists(),
        "{} missing: run `make fake-nvml`",
        lib.display()
    );
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

criterion_group!(sample_encode, benches);
criterion_main!(sample_encode);
