//! NVIDIA's three collectors CSVs load unchanged, every row accounted for.

mod common;

use algalon_core::collectors::CollectorConfig;
use algalon_core::{Field, MetricType};

/// The data rows of a CSV: (line, first column).
fn rows(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| {
            (
                i + 1,
                l.split(',').next().unwrap_or_default().trim().to_owned(),
            )
        })
        .collect()
}

/// Loads `path` and checks that each data row is exported (as a metric or
/// a label) or skipped with a reason, once.
fn load(path: &std::path::Path) -> CollectorConfig {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let config = CollectorConfig::from_path(path)
        .unwrap_or_else(|e| panic!("{} must load unchanged: {e}", path.display()));
    let exported = config.metrics.len() + config.labels.len();
    assert_eq!(
        exported + config.skipped.len(),
        rows(&text).len(),
        "{}: every row is exported or skipped",
        path.display()
    );
    for s in &config.skipped {
        assert!(!s.reason.is_empty(), "{s:?}");
        assert!(rows(&text).contains(&(s.line, s.name.clone())), "{s:?}");
    }
    config
}

#[test]
fn nvidias_default_and_dcp_csvs_load_unchanged() {
    let compat = common::workspace().join("../shared/compat");
    for file in ["default-counters.csv", "dcp-metrics-included.csv"] {
        let config = load(&compat.join(file));
        assert!(
            config.metrics.len() >= 20,
            "{file}: {}",
            config.metrics.len()
        );
        assert_eq!(config.labels, [Field::DriverVersion], "{file}");
        let skipped: Vec<_> = config.skipped.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(skipped, ["DCGM_FI_DEV_VGPU_LICENSE_STATUS"], "{file}");
        assert!(config.names.is_empty(), "{file}: {:?}", config.names);
    }
}

#[test]
fn nvidias_1x_compatibility_csv_loads_unchanged() {
    let path =
        common::workspace().join("testing/upstream/dcgm-exporter/1.x-compatibility-metrics.csv");
    let config = load(&path);
    // Every row names a field by its dcgm-exporter 1.x name.
    let fields: Vec<_> = config.metrics.iter().map(|m| m.field).collect();
    assert_eq!(
        fields,
        [
            Field::SmClock,
            Field::MemClock,
            Field::MemoryTemp,
            Field::GpuTemp,
            Field::PowerUsage,
            Field::TotalEnergyConsumption,
            Field::ProfPcieTxBytes,
            Field::ProfPcieRxBytes,
            Field::PcieReplayCounter,
            Field::GpuUtil,
            Field::MemCopyUtil,
            Field::EncUtil,
            Field::DecUtil,
            Field::XidErrors,
            Field::FbFree,
            Field::FbUsed,
            Field::NvlinkBandwidthTotal,
            Field::ProfGrEngineActive,
            Field::ProfPipeTensorActive,
            Field::ProfDramActive,
        ]
    );
    assert_eq!(config.series_name(Field::SmClock), "dcgm_sm_clock");
    assert_eq!(config.series_name(Field::GpuUtil), "dcgm_gpu_utilization");
    assert_eq!(
        config.series_name(Field::ProfPcieTxBytes),
        "dcgm_fi_prof_pcie_tx_bytes"
    );
    for m in &config.metrics {
        assert!(
            config.series_name(m.field).starts_with("dcgm_"),
            "{:?} keeps the file's name",
            m.field
        );
    }
    // The file lists the PCIe byte counters twice; the first rows win.
    let tx = &config.metrics[6];
    assert_eq!(tx.metric_type, MetricType::Counter);
    assert_eq!(
        tx.help,
        "Total number of bytes transmitted through PCIe TX via NVML."
    );
    let again: Vec<_> = config
        .skipped
        .iter()
        .map(|s| (s.name.as_str(), s.line))
        .collect();
    assert_eq!(
        again,
        [
            ("dcgm_fi_prof_pcie_tx_bytes", 65),
            ("dcgm_fi_prof_pcie_rx_bytes", 66)
        ]
    );
    assert!(
        config.skipped[0]
            .reason
            .starts_with("line 18 already names this field")
    );
}
