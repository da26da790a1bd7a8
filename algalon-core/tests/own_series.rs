//! Algalon's own `algalon_*` series: the job series against golden files
//! (regenerate with `UPDATE_GOLDEN=1` / `make golden`, checked by promtool),
//! and every family as written against its row in `algalon_core::series`
//! (type, help, label names).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use algalon_core::encode_jobs;
use algalon_core::jobs::{EnergyScope, EnergySource, GpuReport, JobId, JobReport, MigReport};
use algalon_core::procinfo::ProcessIdentity;
use algalon_core::series::{SERIES, SeriesKind};
use algalon_core::{
    CallError, Encoder, Field, Format, GpuSample, ProcessKind, ProcessSample, Snapshot, Value,
};

const H100: &str = "GPU-11111111-2222-3333-4444-555555555550";
const T4: &str = "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeee1";

fn gpu_report(index: u32, uuid: &str) -> GpuReport {
    GpuReport {
        cuda_index: None,
        index,
        uuid: uuid.to_owned(),
        name: "NVIDIA H100 80GB HBM3".to_owned(),
        energy_j: Some(5230.25),
        energy_source: Some(EnergySource::Counter),
        energy_scope: EnergyScope::Gpu,
        energy_estimate_j: None,
        energy_note: None,
        util_mean: Some(87.5),
        util_max: Some(100.0),
        memory_peak_bytes: Some(42 << 30),
        power_mean_w: Some(512.75),
        power_max_w: Some(699.0),
        temperature_max_c: Some(71.0),
        samples: 41,
        process_memory_peak_bytes: Some(40 << 30),
        down_reason: None,
        mig: None,
    }
}

/// Four jobs covering every job family and every optional label: one
/// finished on two GPUs with progress and labels (one needing
/// sanitizing), one interrupted with integrated energy and readings missing,
/// one still running with no GPU readings at all, one on a MIG device.
fn reports() -> Vec<(JobReport, bool)> {
    let mut t4 = gpu_report(1, T4);
    t4.name = "Tesla T4".to_owned();
    t4.energy_source = Some(EnergySource::Integrated);
    t4.energy_j = Some(301.5);
    t4.process_memory_peak_bytes = None;
    let finetune = JobReport {
        id: JobId::from("0b8e3f52-2c4d-4e6f-8a1b-3c5d7e9f1a2b"),
        name: "finetune".to_owned(),
        labels: [
            ("team", "nlp"),
            ("slurm_job_id", "4242"),
            ("slurm_step_id", "0"),
            ("slurm_procid", "1"),
            ("slurm_array_job_id", "4240"),
            ("slurm_array_task_id", "2"),
            ("torchelastic_run_id", "run-9"),
            ("rank", "1"),
            ("local_rank", "1"),
            ("k8s_namespace", "ml"),
            ("k8s_pod", "trainer-0"),
            ("my-label.x", "quote \" and back\\slash"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        hostname: String::new(),
        running: false,
        started_at: 1_700_000_000.0,
        ended_at: 1_700_000_010.5,
        duration_s: 10.5,
        gpus: vec![gpu_report(0, H100), t4],
        energy_j: Some(5531.75),
        energy_estimate_j: None,
        counts: [("samples".to_owned(), 1000.0), ("tokens".to_owned(), 2.5e6)]
            .into_iter()
            .collect(),
        interrupted: None,
        slowest_sample_s: Some(0.004),
        notes: Vec::new(),
    };
    let mut lost = gpu_report(0, H100);
    lost.energy_j = None;
    lost.energy_source = None;
    lost.energy_note = Some("one sample: energy cannot be measured".to_owned());
    lost.util_mean = None;
    lost.util_max = None;
    lost.power_mean_w = None;
    let eval = JobReport {
        id: JobId::from("1c9f4a63-3d5e-4f70-9b2c-4d6e8f0a2b3c"),
        name: "eval".to_owned(),
        labels: BTreeMap::new(),
        hostname: String::new(),
        running: false,
        started_at: 1_700_000_011.0,
        ended_at: 1_700_000_011.0,
        duration_s: 0.0,
        gpus: vec![lost],
        energy_j: None,
        energy_estimate_j: None,
        counts: BTreeMap::new(),
        interrupted: Some("KeyboardInterrupt".to_owned()),
        slowest_sample_s: None,
        notes: Vec::new(),
    };
    let serve = JobReport {
        id: JobId::from("2da05b74-4e6f-4081-ac3d-5e7f9a1b3c4d"),
        name: "serve".to_owned(),
        labels: [("rank", "3"), ("local_rank", "1"), ("world_size", "4")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        hostname: String::new(),
        running: true,
        started_at: 1_700_000_012.0,
        ended_at: 1_700_000_013.0,
        duration_s: 1.0,
        gpus: Vec::new(),
        energy_j: None,
        energy_estimate_j: None,
        counts: BTreeMap::new(),
        interrupted: None,
        slowest_sample_s: Some(1.0),
        notes: vec!["sampling fell behind".to_owned()],
    };
    // A job on a MIG device: the instance's memory and activity, the
    // parent's shared energy in its own family, and the estimate.
    let mut slice = gpu_report(0, H100);
    slice.util_mean = None;
    slice.util_max = None;
    slice.memory_peak_bytes = Some(30 << 30);
    slice.process_memory_peak_bytes = Some(2 << 30);
    slice.energy_scope = EnergyScope::ParentGpu;
    slice.energy_estimate_j = Some(5230.25 * 3.0 / 7.0);
    slice.mig = Some(MigReport {
        uuid: "MIG-9d27f4a1-3c8e-5b06-a2d4-6e1f0c7b5901".to_owned(),
        profile: "3g.40gb".to_owned(),
        gpu_instance_id: Some(2),
        compute_instance_id: Some(0),
        slices: Some(3),
        parent_slices: Some(7),
        memory_total_bytes: Some(40448 << 20),
        sm_active_mean: Some(0.6),
        sm_occupancy_mean: Some(0.375),
        tensor_active_mean: Some(0.5),
        dram_active_mean: Some(0.25),
        pids: vec![6201, 7001],
        destroyed_at: None,
    });
    let inference = JobReport {
        id: JobId::from("3eb16c85-5f70-4192-bd4e-6f80ab2c4d5e"),
        name: "inference".to_owned(),
        // Every identity label, as the finetune job has them.
        labels: finetune.labels.clone(),
        hostname: String::new(),
        running: false,
        started_at: 1_700_000_020.0,
        ended_at: 1_700_000_030.0,
        duration_s: 10.0,
        energy_j: None,
        energy_estimate_j: slice.energy_estimate_j,
        gpus: vec![slice],
        counts: BTreeMap::new(),
        interrupted: None,
        slowest_sample_s: Some(0.01),
        notes: Vec::new(),
    };
    vec![
        (finetune, false),
        (eval, false),
        (serve, true),
        (inference, false),
    ]
}

/// A hand-made snapshot with every sampler family present: a GPU up with
/// processes (a Slurm one, a pod's) and XIDs, a GPU down, NVML errors.
fn snapshot() -> Arc<Snapshot> {
    let mut up = GpuSample::new(0, H100.into(), "00000000:18:00.0".into(), "H100".into());
    up.minor_number = Some(0);
    up.set(Field::GpuUtil, Some(Value::Int(85)));
    up.xid_counts = [(13, 2), (79, 1)].into_iter().collect();
    up.processes = vec![
        ProcessSample {
            pid: 4242,
            identity: ProcessIdentity {
                name: Some("python3".into()),
                slurm_job_id: Some("77".into()),
                pod_uid: None,
            },
            kind: ProcessKind::Compute,
            used_memory_bytes: Some(1 << 30),
            sm_util: Some(50),
            mem_util: Some(25),
        },
        ProcessSample {
            pid: 4343,
            identity: ProcessIdentity {
                pod_uid: Some("0b9e6a6c-9d1e-4c55-8f0e-5a3c2b1d0e9f".into()),
                ..ProcessIdentity::default()
            },
            kind: ProcessKind::Graphics,
            used_memory_bytes: Some(512 << 20),
            sm_util: Some(3),
            mem_util: Some(1),
        },
    ];
    let mut down = GpuSample::new(1, T4.into(), "00000000:3B:00.0".into(), "T4".into());
    down.up = false;
    Arc::new(Snapshot {
        hostname: "w1".into(),
        driver_version: Some("550.54.15".into()),
        nvml_version: Some("12.550.54.15".into()),
        cuda_driver_version: Some(12040),
        taken_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        duration: Duration::from_millis(12),
        seq: 7,
        gpus: vec![up, down],
        errors: vec![
            CallError {
                gpu: Some(1),
                call: "nvmlDeviceGetPowerUsage",
                error: "Timeout",
                count: 3,
            },
            // A host-level call: no `gpu` label.
            CallError {
                gpu: None,
                call: "nvmlSystemGetDriverVersion",
                error: "Unknown",
                count: 1,
            },
        ],
    })
}

fn promtool_check(text: &str) {
    let (code, report) = common::promtool(text);
    assert!(
        code == Some(0),
        "promtool rejected the job series: {report}"
    );
}

#[test]
fn job_series_match_their_golden_files() {
    let reports = reports();
    let text = encode_jobs(&reports, Format::PrometheusText);
    common::check_golden("jobs.prom", &text);
    promtool_check(&text);
    common::check_golden(
        "jobs.openmetrics",
        &encode_jobs(&reports, Format::OpenMetrics),
    );
    // No job, no series at all (not even a HELP line).
    assert_eq!(encode_jobs(&[], Format::PrometheusText), "");
}

/// One family as written: its `# TYPE`, `# HELP` and the label names of
/// each of its samples.
#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: String,
    samples: Vec<BTreeSet<String>>,
}

/// The label names of `name{a="x",b="y\"z"} 1`.
fn label_names(labels: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = labels;
    while let Some(eq) = rest.find("=\"") {
        names.insert(rest[..eq].trim_start_matches(',').to_owned());
        let mut escaped = false;
        let value_len = rest[eq + 2..]
            .char_indices()
            .find(|&(_, c)| {
                let end = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                end
            })
            .map(|(i, _)| i)
            .expect("closed label value");
        rest = &rest[eq + 2 + value_len + 1..];
    }
    names
}

/// The `algalon_*` families of an exposition, by the name in `# TYPE`.
fn families(text: &str) -> BTreeMap<String, Family> {
    let mut out: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            out.entry(name.to_owned()).or_default().kind = kind.to_owned();
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            out.entry(name.to_owned()).or_default().help = help.to_owned();
        } else if !line.starts_with('#') && line.starts_with("algalon_") {
            let name_end = line.find(['{', ' ']).expect("sample");
            let name = &line[..name_end];
            let labels = match line[name_end..].strip_prefix('{') {
                Some(rest) => label_names(&rest[..rest.rfind('}').expect("closing brace")]),
                None => BTreeSet::new(),
            };
            // OpenMetrics names the family without the sample suffix.
            let family = out
                .keys()
                .filter(|f| name.starts_with(f.as_str()))
                .max_by_key(|f| f.len())
                .cloned()
                .unwrap_or_else(|| panic!("sample {name} before its TYPE"));
            out.get_mut(&family).expect("family").samples.push(labels);
        }
    }
    out.retain(|name, _| name.starts_with("algalon_"));
    out
}

#[test]
fn every_own_series_is_written_as_its_table_row_says() {
    let encoder = Encoder::default().with_build_label("revision", "0123abc");
    let snapshot = snapshot();
    let reports = reports();
    for format in [Format::PrometheusText, Format::OpenMetrics] {
        let text = encoder.encode(&snapshot, format) + &encode_jobs(&reports, format);
        let mut written = families(&text);
        if format == Format::OpenMetrics {
            assert!(text.ends_with("# EOF\n"));
        }
        for def in SERIES {
            // The text format names a family by its exposed name and has no
            // info type; OpenMetrics keeps the family name and the type.
            let (name, kind) = match format {
                Format::PrometheusText => (
                    def.exposed_name(),
                    match def.kind {
                        SeriesKind::Info => "gauge",
                        k => k.as_str(),
                    },
                ),
                Format::OpenMetrics => (def.name.to_owned(), def.kind.as_str()),
            };
            let family = written
                .remove(&name)
                .unwrap_or_else(|| panic!("{format:?}: {name} is not written"));
            assert_eq!(family.kind, kind, "{format:?}: TYPE of {name}");
            let help = match format {
                Format::PrometheusText => def.help.to_owned(),
                Format::OpenMetrics => def.help.replace('"', "\\\""),
            };
            assert_eq!(family.help, help, "{format:?}: HELP of {name}");
            assert!(
                !family.samples.is_empty(),
                "{format:?}: {name} has no sample"
            );
            let allowed: BTreeSet<&str> = def.label_names().map(|(l, _)| l).collect();
            let required: BTreeSet<&str> = def
                .label_names()
                .filter(|(_, optional)| !optional)
                .map(|(l, _)| l)
                .collect();
            let mut optional_seen = BTreeSet::new();
            for labels in &family.samples {
                for label in &required {
                    assert!(labels.contains(*label), "{format:?}: {name} lacks {label}");
                }
                for label in labels {
                    if !def.user_labels {
                        assert!(
                            allowed.contains(label.as_str()),
                            "{format:?}: {name} carries {label}, not in its table row"
                        );
                    }
                    if !required.contains(label.as_str()) {
                        optional_seen.insert(label.clone());
                    }
                }
            }
            // Every optional label of the row shows up in this scenario, so
            // a label the encoder stopped writing is noticed.
            for (label, optional) in def.label_names() {
                if optional {
                    assert!(
                        optional_seen.contains(label),
                        "{format:?}: {name} never carries its optional label {label}"
                    );
                }
            }
        }
        assert!(
            written.is_empty(),
            "{format:?}: algalon_* families written but not in the series table: {:?}",
            written.keys().collect::<Vec<_>>()
        );
    }
}
