//! The report's JSON across faces: a report the Python package wrote
//! (`tests/data/report-python.json`, kept in Python's exact shape by
//! `algalon-py/tests/test_faces.py`) reads into the core's `JobReport` with
//! every field, and writes back to the same document.

use algalon_core::jobs::{EnergySource, JobReport};

const PYTHON: &str = include_str!("data/report-python.json");

#[test]
fn a_python_report_reads_into_the_core_type() {
    let r = JobReport::from_json(PYTHON).expect("Python's JSON is the core's schema");
    assert_eq!(r.name, "from-python");
    assert_eq!(r.labels["team"], "nlp");
    assert_eq!(r.labels["run"], "7");
    assert_eq!(r.interrupted.as_deref(), Some("KeyboardInterrupt"));
    assert!(!r.running);
    assert_eq!(r.counts["tokens"], 8192.0);
    // In memory by NVML index; the document lists CUDA order (T4 first).
    assert_eq!(r.gpus.iter().map(|g| g.index).collect::<Vec<_>>(), [0, 1]);
    let (h100, t4) = (&r.gpus[0], &r.gpus[1]);
    assert_eq!((h100.cuda_index, t4.cuda_index), (Some(1), Some(0)));
    assert_eq!(h100.energy_source, Some(EnergySource::Counter));
    assert_eq!(t4.energy_source, Some(EnergySource::Integrated));
    assert!(
        t4.energy_note
            .as_deref()
            .is_some_and(|n| n.contains("no energy counter"))
    );
    assert_eq!(h100.process_memory_peak_bytes.map(|b| b > 0), Some(true));
    assert_eq!(t4.power_mean_w, Some(27.25));
    assert!(
        r.table()
            .starts_with("(interrupted by KeyboardInterrupt) job \"from-python\"")
    );

    // Written back, the document is the same (floats exactly).
    let again: serde_json::Value = serde_json::from_str(&r.to_json_pretty(2)).expect("json");
    let original: serde_json::Value = serde_json::from_str(PYTHON).expect("json");
    assert_eq!(again, original);
    assert_eq!(JobReport::from_json(&r.to_json()).expect("round trip"), r);
}
