//! # algalon-core
//!
//! Algalon's core: samples every NVIDIA GPU through NVML into an ID-indexed
//! [`Snapshot`] and encodes it as Prometheus metrics under dcgm-exporter's
//! names and labels, so existing dashboards and alerts work unchanged.
//!
//! ```no_run
//! use std::sync::Arc;
//! use algalon_core::{CollectorConfig, Encoder, Format, Sampler, SamplerOptions};
//!
//! # fn main() -> algalon_core::Result<()> {
//! // dcgm-exporter's default field set, every GPU, the system's NVML
//! // (or $ALGALON_NVML_LIB).
//! let config = CollectorConfig::default();
//! let mut sampler = Sampler::new(SamplerOptions::default().with_collectors(&config))?;
//! let snapshot = Arc::new(sampler.sample());
//! for gpu in &snapshot.gpus {
//!     println!(
//!         "GPU {}: {:?}% util, {:?} W",
//!         gpu.index,
//!         gpu.gpu_util(),
//!         gpu.power_w()
//!     );
//! }
//! let text = Encoder::new(config).encode(&snapshot, Format::PrometheusText);
//! assert!(text.contains("DCGM_FI_DEV_GPU_UTIL{gpu=\"0\""));
//! # Ok(())
//! # }
//! ```
//!
//! Nothing here is async and nothing here serves HTTP: the exporter, the
//! Python package and the C library are thin faces over these types.
//!
//! * [`catalog`]: every exportable field, declared once; [`series`]: every
//!   `algalon_*` series Algalon writes itself.
//! * [`collectors`]: dcgm-exporter's collectors CSV.
//! * [`dcgm_fields`]: every DCGM field name a CSV may use; [`xid_text`]:
//!   dcgm-exporter's XID texts.
//! * [`Sampler`] / [`BackgroundSampler`]: the only NVML callers.
//! * [`Encoder`]: Prometheus text / OpenMetrics, every series Algalon
//!   writes; [`labels`]: label-name rules.
//! * [`jobs`]: job windows and sessions; [`report`]: the job report and
//!   its JSON schema.
//! * [`devices`]: the one device-selector grammar (`-d`,
//!   `CUDA_VISIBLE_DEVICES`, `gpus=`, the C options).

#![deny(unsafe_code)]
#![deny(missing_docs)]

mod background;
pub mod catalog;
pub mod collectors;
pub mod dcgm_fields;
pub mod devices;
mod encoder;
mod error;
pub mod jobs;
pub mod labels;
mod nvml_error;
pub mod procinfo;
pub mod proctree;
pub mod report;
mod sampler;
pub mod series;
mod snapshot;
pub mod windows;
mod xid;
pub mod xid_text;

pub use background::BackgroundSampler;
pub use catalog::{CATALOG, Field, FieldDef, Kind};
pub use collectors::{CollectorConfig, DEFAULT_COUNTERS_CSV, Metric, MetricType};
pub use encoder::{
    Encoder, Extras, Format, HostLabel, LabelSet, LabelStyle, WindowCounts, encode_job_process,
    encode_jobs,
};
pub use error::{Error, Result};
pub use nvml_error::error_name;
pub use sampler::{
    CORE_FIELDS, DEFAULT_GPU_TIMEOUT, NVML_LIB_ENV, SERIAL_ENV, SampleProgress, Sampler,
    SamplerOptions,
};
pub use snapshot::{
    CallError, DownReason, GpuSample, MigInstance, ProcessKind, ProcessSample, Snapshot, Value,
    unix_seconds,
};
