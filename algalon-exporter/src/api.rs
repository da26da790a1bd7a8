//! The JSON of `/api/v1/gpus`: a snapshot under dcgm-exporter's key names
//! where it has one (`gpu`, `UUID`, `pci_bus_id`, `device`, `modelName`,
//! `Hostname`, the `DCGM_FI_*` field names), plain numbers and strings
//! elsewhere (`duration_seconds`, not Rust's `{"secs":…,"nanos":…}`).
//!
//! A view over the core's [`Snapshot`], written here because the key names
//! are this face's promise; the core's own serde form stays the core's.

use std::collections::BTreeMap;

use algalon_core::collectors::{ExpKind, Skipped};
use algalon_core::{
    CallError, CollectorConfig, DownReason, Field, GpuSample, MetricType, ProcessSample, Snapshot,
    Value,
};
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

/// `/api/v1/fields`: what the collectors CSV asks for and what is served —
/// each exported field with its NVML source and the GPUs whose last sample
/// had no reading of it, dcgm-exporter's own series, and every row that is
/// not exported with the reason (a DCGM field NVML cannot give, a second
/// row for a field).
#[derive(Debug, Serialize)]
pub struct FieldsView<'a> {
    /// The collectors file (`<built-in default-counters.csv>` by default).
    source: &'a str,
    exported: Vec<ExportedView<'a>>,
    dcgm_exporter_series: Vec<ExpView>,
    not_exported: &'a [Skipped],
}

#[derive(Debug, Serialize)]
struct ExportedView<'a> {
    /// The series (or label) name, as the CSV row spells it.
    name: &'a str,
    /// The catalog's DCGM name of the field.
    field: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    /// The NVML function it is read with.
    nvml: &'static str,
    /// Indices of the GPUs that are up but whose last sample has no reading
    /// (NVML does not support the field there, or the call failed: see
    /// `algalon_nvml_errors_total`).
    unread_on: Vec<u32>,
}

#[derive(Debug, Serialize)]
struct ExpView {
    name: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    /// The counting window (`window_size_in_ms` label).
    window_ms: u64,
}

fn type_name(t: MetricType) -> &'static str {
    match t {
        MetricType::Gauge => "gauge",
        MetricType::Counter => "counter",
    }
}

impl<'a> FieldsView<'a> {
    /// The view of `config`, with readings checked against `snapshot` (the
    /// last sample, if any) and the windows of dcgm-exporter's count series.
    pub fn new(
        config: &'a CollectorConfig,
        snapshot: Option<&Snapshot>,
        windows_ms: (u64, u64),
    ) -> Self {
        let unread = |field: Field, label: bool| -> Vec<u32> {
            snapshot.map_or_else(Vec::new, |s| {
                s.gpus
                    .iter()
                    .filter(|g| g.up)
                    .filter(|g| {
                        if label {
                            !g.labels.contains_key(&field)
                        } else {
                            g.get(field).is_none()
                        }
                    })
                    .map(|g| g.index)
                    .collect()
            })
        };
        let mut exported: Vec<ExportedView<'a>> = config
            .metrics
            .iter()
            .map(|m| ExportedView {
                name: config.series_name(m.field),
                field: m.field.name(),
                kind: type_name(m.metric_type),
                nvml: m.field.nvml_call(),
                unread_on: unread(m.field, false),
            })
            .collect();
        exported.extend(config.labels.iter().map(|f| ExportedView {
            name: config.series_name(*f),
            field: f.name(),
            kind: "label",
            nvml: f.nvml_call(),
            unread_on: unread(*f, true),
        }));
        FieldsView {
            source: &config.source,
            exported,
            dcgm_exporter_series: config
                .exp
                .iter()
                .map(|e| ExpView {
                    name: e.kind.name(),
                    kind: type_name(e.metric_type),
                    window_ms: match e.kind {
                        ExpKind::XidErrorsCount => windows_ms.0,
                        ExpKind::ClockEventsCount => windows_ms.1,
                    },
                })
                .collect(),
            not_exported: &config.skipped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn fields_name_what_is_served_and_what_is_not() {
        let config = CollectorConfig::parse(
            "DCGM_FI_DEV_GPU_UTIL, gauge, util\n\
             dcgm_sm_clock, gauge, clock\n\
             DCGM_FI_DRIVER_VERSION, label, driver\n\
             DCGM_FI_DEV_NVSWITCH_LINK_CRC_ERRORS, counter, switch\n\
             DCGM_EXP_XID_ERRORS_COUNT, gauge, xids\n",
            "f.csv",
        )
        .expect("parses");
        let mut gpu = GpuSample::new(0, "GPU-a".into(), "00000000:18:00.0".into(), "H100".into());
        gpu.set(Field::GpuUtil, Some(Value::Int(5)));
        let mut down = GpuSample::new(1, "GPU-b".into(), "00000000:19:00.0".into(), "H100".into());
        down.up = false;
        let snapshot = Snapshot {
            hostname: "w1".into(),
            driver_version: None,
            nvml_version: None,
            cuda_driver_version: None,
            taken_at: UNIX_EPOCH,
            duration: Duration::ZERO,
            seq: 1,
            gpus: vec![gpu, down],
            errors: Vec::new(),
        };
        let v = serde_json::to_value(FieldsView::new(&config, Some(&snapshot), (300_000, 5000)))
            .expect("serialises");
        assert_eq!(v["source"], "f.csv");
        let exported = &v["exported"];
        assert_eq!(exported[0]["name"], "DCGM_FI_DEV_GPU_UTIL");
        assert_eq!(exported[0]["nvml"], "nvmlDeviceGetUtilizationRates");
        assert_eq!(exported[0]["unread_on"], serde_json::json!([]));
        assert_eq!(exported[1]["name"], "dcgm_sm_clock");
        assert_eq!(exported[1]["field"], "DCGM_FI_DEV_SM_CLOCK");
        assert_eq!(
            exported[1]["unread_on"],
            serde_json::json!([0]),
            "GPU 1 is down"
        );
        assert_eq!(exported[2]["type"], "label");
        assert_eq!(v["dcgm_exporter_series"][0]["window_ms"], 300_000);
        let skipped = &v["not_exported"][0];
        assert_eq!(skipped["name"], "DCGM_FI_DEV_NVSWITCH_LINK_CRC_ERRORS");
        assert_eq!(skipped["line"], 4);
        assert!(
            skipped["reason"]
                .as_str()
                .is_some_and(|r| r.contains("NVSwitch")),
            "{skipped}"
        );
    }

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
