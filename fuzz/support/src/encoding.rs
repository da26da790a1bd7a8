//! The exposition target: arbitrary host names, UUIDs, model names,
//! process identities, help text, job names, user label names and values go
//! through Algalon's encoders; the output must parse strictly in both
//! formats and give back every value exactly.
//!
//! An input is text in three sections separated by U+001D; each section's
//! fields are separated by U+001E (so values may hold anything else,
//! newlines, quotes, backslashes and NULs included):
//!
//! 1. host name, help text, driver version, job name, progress unit;
//! 2. per GPU (up to 4), six fields: UUID, PCI bus id, model name, process
//!    name, Slurm job id, pod UID (an empty process field is left out);
//! 3. user labels of the job (up to 8), as name, value pairs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use algalon_core::collectors::{CollectorConfig, Metric, MetricType};
use algalon_core::jobs::{
    EnergyScope, EnergySource, GpuReport, JobId, JobReport, SERIES_IDENTITY_LABELS,
    sanitize_label_name,
};
use algalon_core::procinfo::ProcessIdentity;
use algalon_core::{
    Encoder, Field, Format, GpuSample, ProcessKind, ProcessSample, Snapshot, Value,
};
use serde_json::json;

use crate::exposition::{self, Family, Flavor, Sample};

/// Separates the input's sections.
pub const SECTION: char = '\u{1d}';
/// Separates the fields of a section.
pub const FIELD: char = '\u{1e}';

/// One decoded input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Input {
    /// `Hostname` label.
    pub hostname: String,
    /// Help text of the two DCGM families.
    pub help: String,
    /// `DCGM_FI_DRIVER_VERSION` label and `algalon_build{driver_version}`.
    pub driver_version: String,
    /// `job_name` of the job report.
    pub job_name: String,
    /// `unit` of the job's progress count.
    pub unit: String,
    /// The GPUs.
    pub gpus: Vec<GpuInput>,
    /// The job's user labels, as given (names not yet sanitized).
    pub user_labels: BTreeMap<String, String>,
}

/// One GPU of an input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuInput {
    /// `UUID` label.
    pub uuid: String,
    /// `pci_bus_id` label.
    pub pci_bus_id: String,
    /// `modelName` label.
    pub name: String,
    /// `process_name` label (absent when empty).
    pub process_name: Option<String>,
    /// `slurm_job_id` label (absent when empty).
    pub slurm_job_id: Option<String>,
    /// `pod_uid` label (absent when empty).
    pub pod_uid: Option<String>,
}

impl Input {
    /// Decodes fuzz bytes (invalid UTF-8 is replaced, not rejected).
    pub fn decode(data: &[u8]) -> Input {
        let text = String::from_utf8_lossy(data);
        let mut sections = text.split(SECTION);
        let fields = |s: Option<&str>| -> Vec<String> {
            s.map(|s| s.split(FIELD).map(str::to_owned).collect())
                .unwrap_or_default()
        };
        let globals = fields(sections.next());
        let gpu_fields = fields(sections.next());
        let label_fields = fields(sections.next());
        let global = |i: usize| globals.get(i).cloned().unwrap_or_default();
        let opt = |s: &String| (!s.is_empty()).then(|| s.clone());
        Input {
            hostname: global(0),
            help: global(1),
            driver_version: global(2),
            job_name: global(3),
            unit: global(4),
            gpus: gpu_fields
                .chunks(6)
                .take(4)
                .map(|c| {
                    let f = |i: usize| c.get(i).cloned().unwrap_or_default();
                    GpuInput {
                        uuid: f(0),
                        pci_bus_id: f(1),
                        name: f(2),
                        process_name: opt(&f(3)),
                        slurm_job_id: opt(&f(4)),
                        pod_uid: opt(&f(5)),
                    }
                })
                .collect(),
            user_labels: label_fields
                .chunks(2)
                .take(8)
                .map(|c| (c[0].clone(), c.get(1).cloned().unwrap_or_default()))
                .collect(),
        }
    }

    /// The collectors config: GPU utilization (gauge) and energy (counter),
    /// both with the input's help text, and the driver version label.
    pub fn config(&self) -> CollectorConfig {
        CollectorConfig {
            source: "fuzz".into(),
            metrics: vec![
                Metric {
                    field: Field::GpuUtil,
                    metric_type: MetricType::Gauge,
                    help: self.help.clone(),
                },
                Metric {
                    field: Field::TotalEnergyConsumption,
                    metric_type: MetricType::Counter,
                    help: self.help.clone(),
                },
            ],
            labels: vec![Field::DriverVersion],
            skipped: Vec::new(),
            names: Default::default(),
            exp: Vec::new(),
        }
    }

    /// A snapshot of the input's GPUs, each with one process.
    pub fn snapshot(&self) -> Snapshot {
        let gpus = self
            .gpus
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let i = i as u32;
                let mut s = GpuSample::new(i, g.uuid.clone(), g.pci_bus_id.clone(), g.name.clone());
                s.minor_number = Some(i);
                s.set(Field::GpuUtil, Some(Value::Int(u64::from(i) * 10)));
                s.set(Field::TotalEnergyConsumption, Some(Value::Int(1000)));
                s.labels
                    .insert(Field::DriverVersion, self.driver_version.clone());
                s.processes.push(ProcessSample {
                    pid: 100 + i,
                    identity: ProcessIdentity {
                        name: g.process_name.clone(),
                        slurm_job_id: g.slurm_job_id.clone(),
                        pod_uid: g.pod_uid.clone(),
                    },
                    kind: ProcessKind::Compute,
                    used_memory_bytes: Some(1 << 20),
                    sm_util: None,
                    mem_util: None,
                });
                s
            })
            .collect();
        Snapshot {
            hostname: self.hostname.clone(),
            driver_version: Some(self.driver_version.clone()),
            nvml_version: None,
            cuda_driver_version: None,
            taken_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            duration: Duration::from_millis(5),
            seq: 1,
            gpus,
            errors: Vec::new(),
        }
    }

    /// One running job over the input's GPUs, with its user labels.
    pub fn job_reports(&self) -> Vec<(JobReport, bool)> {
        let gpus: Vec<GpuReport> = self
            .gpus
            .iter()
            .enumerate()
            .map(|(i, g)| GpuReport {
                cuda_index: None,
                index: i as u32,
                uuid: g.uuid.clone(),
                name: g.name.clone(),
                energy_j: Some(1.5),
                energy_source: Some(EnergySource::Counter),
                energy_scope: EnergyScope::Gpu,
                energy_estimate_j: None,
                energy_note: None,
                util_mean: Some(50.0),
                util_max: Some(90.0),
                memory_peak_bytes: Some(1 << 30),
                power_mean_w: Some(300.0),
                power_max_w: Some(400.0),
                temperature_max_c: Some(70.0),
                samples: 10,
                process_memory_peak_bytes: None,
                down_reason: None,
                mig: None,
            })
            .collect();
        let report = JobReport {
            id: JobId::from(JOB_ID),
            name: self.job_name.clone(),
            labels: self.user_labels.clone(),
            hostname: String::new(),
            running: true,
            started_at: 1_700_000_000.0,
            ended_at: 1_700_000_010.0,
            duration_s: 10.0,
            energy_j: (!gpus.is_empty()).then_some(1.5 * gpus.len() as f64),
            energy_estimate_j: None,
            gpus,
            counts: BTreeMap::from([(self.unit.clone(), 3.0)]),
            interrupted: None,
            slowest_sample_s: None,
            notes: Vec::new(),
        };
        vec![(report, true)]
    }

    /// The labels every job series but `algalon_job_info` starts with:
    /// `job_id`, `job_name` and the identity labels the job has.
    pub fn expected_series_identity(&self) -> Vec<(String, String)> {
        let mut labels = vec![
            ("job_id".to_owned(), JOB_ID.to_owned()),
            ("job_name".to_owned(), self.job_name.clone()),
        ];
        for k in SERIES_IDENTITY_LABELS {
            if let Some(v) = self.user_labels.get(*k) {
                labels.push(((*k).to_owned(), v.clone()));
            }
        }
        labels
    }

    /// The `algalon_job_info` labels the job must carry, in order.
    pub fn expected_job_labels(&self) -> Vec<(String, String)> {
        let mut labels = vec![
            ("job_id".to_owned(), JOB_ID.to_owned()),
            ("job_name".to_owned(), self.job_name.clone()),
        ];
        for (k, v) in &self.user_labels {
            let key = sanitize_label_name(k);
            if !labels.iter().any(|(existing, _)| *existing == key) {
                labels.push((key, v.clone()));
            }
        }
        labels
    }

    /// The expected values as JSON, for the Python round-trip test.
    pub fn expected_json(&self) -> serde_json::Value {
        json!({
            "hostname": self.hostname,
            "help": self.help,
            "driver_version": self.driver_version,
            "job_name": self.job_name,
            "unit": self.unit,
            "gpus": self.gpus.iter().map(|g| json!({
                "uuid": g.uuid,
                "pci_bus_id": g.pci_bus_id,
                "name": g.name,
                "process_name": g.process_name,
                "slurm_job_id": g.slurm_job_id,
                "pod_uid": g.pod_uid,
            })).collect::<Vec<_>>(),
            "job_labels": self.expected_job_labels()
                .into_iter()
                .collect::<BTreeMap<_, _>>(),
        })
    }
}

/// The four texts of one input: snapshot and jobs, each in both formats.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Snapshot, Prometheus text.
    pub snapshot_text: String,
    /// Snapshot, OpenMetrics.
    pub snapshot_openmetrics: String,
    /// Jobs, Prometheus text.
    pub jobs_text: String,
    /// Jobs, OpenMetrics.
    pub jobs_openmetrics: String,
}

/// Encodes `input` the way the exporter and the job faces do.
pub fn render(input: &Input) -> Rendered {
    let encoder = Encoder::new(input.config());
    let snapshot = Arc::new(input.snapshot());
    let reports = input.job_reports();
    Rendered {
        snapshot_text: encoder.encode(&snapshot, Format::PrometheusText),
        snapshot_openmetrics: encoder.encode(&snapshot, Format::OpenMetrics),
        jobs_text: algalon_core::encode_jobs(&reports, Format::PrometheusText),
        jobs_openmetrics: algalon_core::encode_jobs(&reports, Format::OpenMetrics),
    }
}

/// Renders `data` and checks all four texts; panics with what is wrong.
pub fn check_exposition(data: &[u8]) {
    let input = Input::decode(data);
    let out = render(&input);
    for (text, flavor, what) in [
        (&out.snapshot_text, Flavor::Text, "snapshot, text format"),
        (
            &out.snapshot_openmetrics,
            Flavor::OpenMetrics,
            "snapshot, OpenMetrics",
        ),
        (&out.jobs_text, Flavor::Text, "jobs, text format"),
        (
            &out.jobs_openmetrics,
            Flavor::OpenMetrics,
            "jobs, OpenMetrics",
        ),
    ] {
        let families = exposition::parse(text, flavor)
            .unwrap_or_else(|e| panic!("{what}: not valid exposition: {e}\n{text}"));
        let result = if what.starts_with("snapshot") {
            verify_snapshot(&input, &families, flavor)
        } else {
            verify_jobs(&input, &families, flavor)
        };
        if let Err(e) = result {
            panic!("{what}: {e}\n{text}");
        }
    }
}

fn family<'a>(families: &'a [Family], name: &str) -> Result<&'a Family, String> {
    families
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| format!("family {name} is missing"))
}

/// The fixed job id of the encoded report.
const JOB_ID: &str = "7d3c1f0e-2b4a-4c6d-8e9f-0a1b2c3d4e5f";

fn expect_labels(sample: &Sample, expected: &[(&str, Option<&str>)]) -> Result<(), String> {
    let want: Vec<(String, String)> = expected
        .iter()
        .filter_map(|(k, v)| Some(((*k).to_owned(), (*v)?.to_owned())))
        .collect();
    if sample.labels != want {
        return Err(format!(
            "{}: labels {:?}, expected {:?}",
            sample.name, sample.labels, want
        ));
    }
    Ok(())
}

fn no_reserved_label_names(families: &[Family]) -> Result<(), String> {
    for s in families.iter().flat_map(|f| &f.samples) {
        if let Some((k, _)) = s.labels.iter().find(|(k, _)| k.starts_with("__")) {
            return Err(format!(
                "{}: label name {k:?} is reserved (starts with \"__\")",
                s.name
            ));
        }
    }
    Ok(())
}

fn verify_snapshot(input: &Input, families: &[Family], flavor: Flavor) -> Result<(), String> {
    no_reserved_label_names(families)?;
    let gpu_labels = |i: usize, g: &GpuInput| -> Vec<(&'static str, Option<String>)> {
        vec![
            ("gpu", Some(i.to_string())),
            ("UUID", Some(g.uuid.clone())),
            ("pci_bus_id", Some(g.pci_bus_id.clone())),
            ("device", Some(format!("nvidia{i}"))),
            ("modelName", Some(g.name.clone())),
            ("Hostname", Some(input.hostname.clone())),
        ]
    };
    // DCGM counters keep DCGM's names: `untyped` / `unknown`, no suffix.
    for name in [
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    ] {
        if input.gpus.is_empty() {
            continue;
        }
        let fam = family(families, name)?;
        if fam.help.as_deref() != Some(input.help.as_str()) {
            return Err(format!(
                "{name}: help {:?}, expected {:?}",
                fam.help, input.help
            ));
        }
        if fam.samples.len() != input.gpus.len() {
            return Err(format!(
                "{name}: {} samples for {} GPUs",
                fam.samples.len(),
                input.gpus.len()
            ));
        }
        for (i, (s, g)) in fam.samples.iter().zip(&input.gpus).enumerate() {
            let mut want = gpu_labels(i, g);
            want.push(("DCGM_FI_DRIVER_VERSION", Some(input.driver_version.clone())));
            let want: Vec<(&str, Option<&str>)> =
                want.iter().map(|(k, v)| (*k, v.as_deref())).collect();
            expect_labels(s, &want)?;
        }
    }
    if !input.gpus.is_empty() {
        let fam = family(families, "algalon_process_gpu_memory_bytes")?;
        if fam.samples.len() != input.gpus.len() {
            return Err("one process per GPU expected".into());
        }
        for (i, (s, g)) in fam.samples.iter().zip(&input.gpus).enumerate() {
            let mut want = gpu_labels(i, g);
            want.push(("pid", Some((100 + i).to_string())));
            want.push(("process_name", g.process_name.clone()));
            want.push(("slurm_job_id", g.slurm_job_id.clone()));
            want.push(("pod_uid", g.pod_uid.clone()));
            let want: Vec<(&str, Option<&str>)> =
                want.iter().map(|(k, v)| (*k, v.as_deref())).collect();
            expect_labels(s, &want)?;
        }
    }
    let build = match flavor {
        Flavor::Text => "algalon_build_info",
        Flavor::OpenMetrics => "algalon_build",
    };
    let build = family(families, build)?;
    let driver = build
        .samples
        .first()
        .and_then(|s| s.label("driver_version"));
    if driver != Some(input.driver_version.as_str()) {
        return Err(format!(
            "algalon_build: driver_version {driver:?}, expected {:?}",
            input.driver_version
        ));
    }
    Ok(())
}

fn verify_jobs(input: &Input, families: &[Family], flavor: Flavor) -> Result<(), String> {
    no_reserved_label_names(families)?;
    let (info, progress, energy) = match flavor {
        Flavor::Text => (
            "algalon_job_info",
            "algalon_job_progress_total",
            "algalon_job_gpu_energy_joules_total",
        ),
        Flavor::OpenMetrics => (
            "algalon_job",
            "algalon_job_progress",
            "algalon_job_gpu_energy_joules",
        ),
    };
    let info = family(families, info)?;
    let [sample] = info.samples.as_slice() else {
        return Err(format!(
            "{} job info samples, expected 1",
            info.samples.len()
        ));
    };
    let want = input.expected_job_labels();
    if sample.labels != want {
        return Err(format!(
            "job info labels {:?}, expected {want:?}",
            sample.labels
        ));
    }
    let progress = family(families, progress)?;
    let unit = progress.samples.first().and_then(|s| s.label("unit"));
    if unit != Some(input.unit.as_str()) {
        return Err(format!("progress unit {unit:?}, expected {:?}", input.unit));
    }
    if !input.gpus.is_empty() {
        let energy = family(families, energy)?;
        let identity = input.expected_series_identity();
        for (i, (s, g)) in energy.samples.iter().zip(&input.gpus).enumerate() {
            let index = i.to_string();
            let mut want: Vec<(&str, Option<&str>)> = identity
                .iter()
                .map(|(k, v)| (k.as_str(), Some(v.as_str())))
                .collect();
            want.extend([
                ("gpu", Some(index.as_str())),
                ("UUID", Some(g.uuid.as_str())),
                ("source", Some("counter")),
            ]);
            expect_labels(s, &want)?;
        }
    }
    Ok(())
}

/// Builds an input from its parts (the inverse of [`Input::decode`] for
/// inputs without separator characters in their values).
pub fn encode_input(input: &Input) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let globals = [
        input.hostname.clone(),
        input.help.clone(),
        input.driver_version.clone(),
        input.job_name.clone(),
        input.unit.clone(),
    ]
    .join(&FIELD.to_string());
    let gpus: Vec<String> = input
        .gpus
        .iter()
        .flat_map(|g| {
            [
                g.uuid.clone(),
                g.pci_bus_id.clone(),
                g.name.clone(),
                opt(&g.process_name),
                opt(&g.slurm_job_id),
                opt(&g.pod_uid),
            ]
        })
        .collect();
    let labels: Vec<String> = input
        .user_labels
        .iter()
        .flat_map(|(k, v)| [k.clone(), v.clone()])
        .collect();
    [
        globals,
        gpus.join(&FIELD.to_string()),
        labels.join(&FIELD.to_string()),
    ]
    .join(&SECTION.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_inverts_encode_input() {
        let input = Input {
            hostname: "w1".into(),
            help: "GPU utilization (in %).".into(),
            driver_version: "550.54.15".into(),
            job_name: "finetune".into(),
            unit: "tokens".into(),
            gpus: vec![GpuInput {
                uuid: "GPU-1".into(),
                pci_bus_id: "00000000:18:00.0".into(),
                name: "NVIDIA H100 80GB HBM3".into(),
                process_name: Some("python3".into()),
                slurm_job_id: None,
                pod_uid: Some("1f0e8c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b".into()),
            }],
            user_labels: BTreeMap::from([("team".into(), "ml".into())]),
        };
        assert_eq!(Input::decode(encode_input(&input).as_bytes()), input);
        check_exposition(encode_input(&input).as_bytes());
    }

    #[test]
    fn hostile_values_round_trip() {
        let nasty = "a \"quoted\" \\ back\\slash\nnew line \\n \u{0} é 🚀 }{=,";
        let input = Input {
            hostname: nasty.into(),
            driver_version: nasty.into(),
            job_name: nasty.into(),
            unit: nasty.into(),
            gpus: vec![GpuInput {
                uuid: nasty.into(),
                pci_bus_id: nasty.into(),
                name: nasty.into(),
                process_name: Some(nasty.into()),
                slurm_job_id: Some(nasty.into()),
                pod_uid: Some(nasty.into()),
            }],
            user_labels: BTreeMap::from([
                ("0 bad-name".into(), nasty.into()),
                ("job_id".into(), "shadow".into()),
                ("ok".into(), nasty.into()),
            ]),
            ..Input::default()
        };
        check_exposition(encode_input(&input).as_bytes());
    }

    #[test]
    fn help_text_with_every_special_character_round_trips() {
        let input = Input {
            help: "say \"hi\" \\ to\nthe GPU \\n".into(),
            gpus: vec![GpuInput::default()],
            ..Input::default()
        };
        check_exposition(encode_input(&input).as_bytes());
    }

    #[test]
    fn reserved_user_label_names_are_not_exported() {
        let input = Input {
            user_labels: BTreeMap::from([("__name__".into(), "evil".into())]),
            ..Input::default()
        };
        check_exposition(encode_input(&input).as_bytes());
    }
}
