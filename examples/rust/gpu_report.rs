//! Prints one line per GPU, then the Prometheus text of one sample.
//!
//! ```sh
//! make fake-nvml
//! ALGALON_NVML_LIB=target/fake-nvml/libnvidia-ml.so.1 \
//! ALGALON_FAKE_NVML_SCENARIO=testing/scenarios/h100x8.json \
//!     cargo run -p algalon-examples --example gpu_report
//! ```
//!
//! On a machine with NVIDIA GPUs, drop both variables.

use std::sync::Arc;

use algalon_core::{CollectorConfig, Encoder, Format, Sampler, SamplerOptions};

fn main() {
    let config = CollectorConfig::default();
    let mut sampler = match Sampler::new(SamplerOptions::default().with_collectors(&config)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gpu_report: {e}");
            std::process::exit(1);
        }
    };
    let snapshot = Arc::new(sampler.sample());
    for gpu in &snapshot.gpus {
        if !gpu.up {
            let reason = gpu.down_reason.as_ref().map(ToString::to_string);
            println!("GPU {}: down ({})", gpu.index, reason.unwrap_or_default());
            continue;
        }
        let gib =
            |b: Option<u64>| b.map_or("?".into(), |b| format!("{:.1}", b as f64 / 1073741824.0));
        let num = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.0}"));
        println!(
            "GPU {}: {}% util, {}/{} GiB, {} C, {} W  ({})",
            gpu.index,
            num(gpu.gpu_util()),
            gib(gpu.memory_used_bytes()),
            gib(gpu.memory_total_bytes()),
            num(gpu.temperature_c()),
            num(gpu.power_w()),
            gpu.name,
        );
    }
    println!();
    print!(
        "{}",
        Encoder::new(config).encode(&snapshot, Format::PrometheusText)
    );
}
