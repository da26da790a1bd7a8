//! The JSON of `/api/v1/gpus`: a snapshot under dcgm-exporter's key names
//! where it has one (`gpu`, `UUID`, `pci_bus_id`, `device`, `modelName`,
//! `Hostname`, the `DCGM_FI_*` field names), plain numbers and strings
//! elsewhere (`duration_seconds`, not Rust's `{"secs":…,"nanos":…}`).
//!
//! A view over the core's [`Snapshot`], written here because the key names
//! are this face's promise; the core's own serde form stays the core's.

use std::collections::BTreeMap;

use algalon_core::{CallError, DownReason, Field, GpuSample, ProcessSample, Snapshot, Value};
use serde::Serialize;

/// `/api/v1/gpus` without the history.
#[derive(Debug, Serialize)]
pub struct SnapshotView<'a> {
    /// dcgm-exporter's `Hostname` label.
    #[serde(rename = "Hostname")]
    hostname: &'a str,
    driver_version: Option<&'a str>,
    nvml_version: Option<&'a str>,
    /// As NVML gives it (12040 is CUDA 12.4).
    cuda_driver_version: Option<i32>,
    /// Unix seconds at which the sample started.
    taken_at: f64,
    /// How long the sample took.
    duration_seconds: f64,
    seq: u64,
    gpus: Vec<GpuView<'a>>,
    errors: &'a [CallError],
}

/// One GPU, keyed as dcgm-exporter labels it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GpuView<'a> {
    /// The NVML index (dcgm-exporter's `gpu` label).
    gpu: u32,
    #[serde(rename = "UUID")]
    uuid: &'a str,
    #[serde(rename = "pci_bus_id")]
    pci_bus_id: &'a str,
    /// `nvidiaN`, from the minor number.
    device: Option<String>,
    model_name: &'a str,
    up: bool,
    #[serde(rename = "down_reason")]
    down_reason: Option<DownView>,
    /// Label fields (e.g. `DCGM_FI_DRIVER_VERSION`), by DCGM name.
    labels: BTreeMap<&'static str, &'a str>,
    processes: &'a [ProcessSample],
    #[serde(rename = "xid_counts")]
    xid_counts: &'a BTreeMap<u64, u64>,
    /// Readings by DCGM field name; a reading NVML could not give is absent.
    values: BTreeMap<&'static str, Value>,
}

#[derive(Debug, Serialize)]
struct DownView {
    call: &'static str,
    error: String,
}

/// The text of an NVML error as users should read it. nvml-wrapper's
/// message for `GpuLost` misspells "inaccessible"; the fix is applied where
/// the text leaves the exporter.
pub fn nvml_text(text: &str) -> String {
    text.replace("inacessible", "inaccessible")
}

/// Why a GPU is down, as one line: `nvmlX failed: …`.
pub fn down_text(reason: &DownReason) -> String {
    format!("{} failed: {}", reason.call, nvml_text(&reason.error))
}

impl<'a> SnapshotView<'a> {
    /// The view of `snapshot`.
    pub fn new(snapshot: &'a Snapshot) -> Self {
        SnapshotView {
            hostname: &snapshot.hostname,
            driver_version: snapshot.driver_version.as_deref(),
            nvml_version: snapshot.nvml_version.as_deref(),
            cuda_driver_version: snapshot.cuda_driver_version,
            taken_at: algalon_core::unix_seconds(snapshot.taken_at),
            duration_seconds: snapshot.duration.as_secs_f64(),
            seq: snapshot.seq,
            gpus: snapshot.gpus.iter().map(GpuView::new).collect(),
            errors: &snapshot.errors,
        }
    }
}

impl<'a> GpuView<'a> {
    fn new(gpu: &'a GpuSample) -> Self {
        GpuView {
            gpu: gpu.index,
            uuid: &gpu.uuid,
            pci_bus_id: &gpu.pci_bus_id,
            device: gpu.minor_number.map(|n| format!("nvidia{n}")),
            model_name: &gpu.name,
            up: gpu.up,
            down_reason: gpu.down_reason.as_ref().map(|r| DownView {
                call: r.call,
                error: nvml_text(&r.error),
            }),
            labels: gpu
                .labels
                .iter()
                .map(|(f, v)| (f.name(), v.as_str()))
                .collect(),
            processes: &gpu.processes,
            xid_counts: &gpu.xid_counts,
            values: Field::all()
                .filter_map(|f| Some((f.name(), gpu.get(f)?)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn dcgm_key_names_and_plain_numbers() {
        let mut gpu = GpuSample::new(
            3,
            "GPU-abc".into(),
            "00000000:8D:00.0".into(),
            "NVIDIA H100 80GB HBM3".into(),
        );
        gpu.minor_number = Some(3);
        gpu.set(Field::GpuUtil, Some(Value::Int(85)));
        gpu.labels.insert(Field::DriverVersion, "550.54.15".into());
        gpu.up = false;
        gpu.down_reason = Some(DownReason {
            call: "nvmlDeviceGetPowerUsage",
            error: "device fell off the bus or has otherwise become inacessible".into(),
        });
        let snapshot = Snapshot {
            hostname: "w1".into(),
            driver_version: Some("550.54.15".into()),
            nvml_version: None,
            cuda_driver_version: Some(12040),
            taken_at: UNIX_EPOCH + Duration::from_secs(7),
            duration: Duration::from_millis(1500),
            seq: 2,
            gpus: vec![gpu],
            errors: Vec::new(),
        };
        let v = serde_json::to_value(SnapshotView::new(&snapshot)).expect("serialises");
        assert_eq!(v["Hostname"], "w1");
        assert_eq!(v["duration_seconds"], 1.5);
        assert_eq!(v["taken_at"], 7.0);
        let g = &v["gpus"][0];
        assert_eq!(g["gpu"], 3);
        assert_eq!(g["UUID"], "GPU-abc");
        assert_eq!(g["modelName"], "NVIDIA H100 80GB HBM3");
        assert_eq!(g["pci_bus_id"], "00000000:8D:00.0");
        assert_eq!(g["device"], "nvidia3");
        assert_eq!(g["values"]["DCGM_FI_DEV_GPU_UTIL"], 85);
        assert_eq!(g["labels"]["DCGM_FI_DRIVER_VERSION"], "550.54.15");
        assert_eq!(
            g["down_reason"]["error"],
            "device fell off the bus or has otherwise become inaccessible"
        );
        let text = v.to_string();
        for debug in ["secs", "nanos", "index", "\"uuid\"", "DriverVersion"] {
            assert!(!text.contains(debug), "{debug} in {text}");
        }
    }
}
