//! The job report: one type for every face, with its JSON schema.
//!
//! A [`JobReport`] is what a window ([`crate::jobs`]) saw: per GPU
//! ([`GpuReport`]) energy and where it came from ([`EnergySource`]),
//! utilization, memory, power, temperature, samples, the job's own
//! processes' memory, and — filled in by a [`JobSession`](crate::jobs::JobSession)
//! — each GPU's CUDA index in the measuring process and why it was down, if
//! it was. The Python classes are views over it, the C library copies from
//! it and hands it out as JSON.
//!
//! # JSON
//!
//! [`JobReport::to_json`] writes schema [`SCHEMA`] and
//! [`JobReport::from_json`] reads every schema in [`SCHEMAS_READ`]:
//!
//! ```json
//! {"schema": 4, "id": "5b0f6c1e-8d1a-4c52-9a43-3f1c2b7e9d10", "name": "finetune", "labels": {"team": "nlp"},
//!  "hostname": "w1", "running": false, "interrupted": false, "error": null,
//!  "started_at": 1700000000.0, "ended_at": 1700000060.0, "duration_s": 60.0,
//!  "energy_j": 18750.0, "energy_estimate_j": null, "counts": {"tokens": 1000.0}, "energy_per": {"tokens": 18.75},
//!  "slowest_sample_s": 0.004, "notes": [],
//!  "gpus": [{"cuda_index": 0, "nvml_index": 0, "uuid": "GPU-…", "name": "…",
//!            "energy_j": 18750.0, "energy_source": "counter", "energy_scope": "gpu",
//!            "energy_estimate_j": null, "energy_note": null,
//!            "util_mean": 85.0, "util_max": 85.0, "memory_peak_bytes": 41943040000,
//!            "power_mean_w": 312.5, "power_max_w": 312.5, "temperature_max_c": 63.0,
//!            "samples": 2, "process_memory_peak_bytes": null, "down_reason": null, "mig": null}]}
//! ```
//!
//! A job on a MIG device has a `gpus` entry naming the parent GPU with
//! `"energy_scope": "parent_gpu"` (energy and power are the whole GPU's,
//! shared by its instances), `energy_estimate_j` (that energy × the
//! instance's compute slices / the GPU's: an estimate) and `mig`:
//!
//! ```json
//! {"uuid": "MIG-…", "profile": "3g.40gb", "gpu_instance_id": 2, "compute_instance_id": 0,
//!  "slices": 3, "parent_slices": 7, "memory_total_bytes": 42412802048,
//!  "sm_active_mean": 0.6, "sm_occupancy_mean": 0.4, "tensor_active_mean": 0.5,
//!  "dram_active_mean": 0.3, "pids": [6201, 7001], "destroyed_at": null}
//! ```
//!
//! Its `memory_peak_bytes` is the instance's framebuffer; `util_*` are
//! absent (NVML has no whole-GPU utilization in MIG mode). The top-level
//! `energy_j` counts whole GPUs only; `energy_estimate_j` adds the MIG
//! devices' estimates (null when the job has none).
//!
//! `gpus` are written in CUDA order (then GPUs the process does not see, by
//! NVML index) and kept in NVML index order in memory. Schema 2 added
//! `interrupted` and `error` (schema 1 documents read as not interrupted);
//! schema 3 made `id` the job's globally unique id, a string (the numeric
//! ids of schemas 1 and 2, a per-process counter, read as their decimal text),
//! and added `slowest_sample_s` (the longest sample, s) and `notes` (caveats
//! on the whole report: sampling behind its interval, no GPU measured);
//! schema 4 added MIG devices: `energy_scope`, `energy_estimate_j` and `mig`
//! per GPU and `energy_estimate_j` on the job (older documents read as
//! whole GPUs, `energy_scope` `gpu`);
//! `energy_per` is derived and ignored on reading. Floats read back exactly
//! (`serde_json`'s `float_roundtrip`), so a report equals itself after a
//! round trip.

use std::collections::BTreeMap;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

/// Version of the JSON document [`JobReport::to_json`] writes.
pub const SCHEMA: u32 = 4;
/// Schema versions [`JobReport::from_json`] reads.
pub const SCHEMAS_READ: [u32; 4] = [1, 2, 3, 4];

/// Identifies an open window within its [`JobTracker`](crate::jobs::JobTracker):
/// a handle, counted from 1 in each tracker. What identifies the job
/// everywhere else (series, JSON) is its [`JobId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WindowId(pub u64);

/// A job's globally unique id: a random (version 4) UUID in its hyphenated
/// lower-case form, drawn when the window opens. It is the `job_id` label
/// of every job series, so runs, ranks and hosts that push or are scraped
/// into one database never share a series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    /// A new random id.
    pub fn random() -> JobId {
        JobId(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    /// The id as text (the `job_id` label value).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for JobId {
    /// An id given as text (a report read back, a test's fixed id).
    fn from(text: &str) -> JobId {
        JobId(text.to_owned())
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A JSON `id`: text (schema 3) or the per-process number of schemas 1 and 2.
#[derive(Deserialize)]
#[serde(untagged)]
enum IdDoc {
    Text(String),
    Number(u64),
}

/// Where a GPU's energy figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnergySource {
    /// The difference of NVML's total-energy counter (millijoule resolution).
    Counter,
    /// Power samples integrated over time (trapezoids between samples).
    Integrated,
}

impl EnergySource {
    /// `"counter"` or `"integrated"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EnergySource::Counter => "counter",
            EnergySource::Integrated => "integrated",
        }
    }
}

/// Whose energy and power a [`GpuReport`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnergyScope {
    /// The measured device is a whole GPU: its energy is the job's device's own.
    #[default]
    Gpu,
    /// The measured device is a MIG instance: energy and power are its
    /// parent GPU's, shared by every instance of that GPU (NVML measures
    /// no energy per instance). [`GpuReport::energy_estimate_j`] is the
    /// instance's share.
    ParentGpu,
}

impl EnergyScope {
    /// `"gpu"` or `"parent_gpu"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EnergyScope::Gpu => "gpu",
            EnergyScope::ParentGpu => "parent_gpu",
        }
    }
}

/// What a window saw on a MIG device (a GPU instance with its compute
/// instance) the job ran on: the instance's own readings. The
/// [`GpuReport`] holding it names the parent GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigReport {
    /// The MIG device's `MIG-…` UUID.
    pub uuid: String,
    /// Its profile (`1g.10gb`, `3g.40gb`, …; dcgm-exporter's `GPU_I_PROFILE`).
    pub profile: String,
    /// GPU instance id (dcgm-exporter's `GPU_I_ID`), when NVML gave it.
    pub gpu_instance_id: Option<u32>,
    /// Compute instance id, when NVML gave it.
    pub compute_instance_id: Option<u32>,
    /// Compute slices of the instance (3 for `3g.40gb`), when known.
    pub slices: Option<u32>,
    /// Compute slices of the whole parent GPU (7 on an A100 or H100).
    pub parent_slices: Option<u32>,
    /// The instance's framebuffer size, bytes (its share of the GPU's memory).
    pub memory_total_bytes: Option<u64>,
    /// Mean `DCGM_FI_PROF_SM_ACTIVE` of the instance (0-1), where the GPU
    /// offers GPM (Hopper and newer).
    pub sm_active_mean: Option<f64>,
    /// Mean `DCGM_FI_PROF_SM_OCCUPANCY` of the instance (0-1).
    pub sm_occupancy_mean: Option<f64>,
    /// Mean `DCGM_FI_PROF_PIPE_TENSOR_ACTIVE` of the instance (0-1).
    pub tensor_active_mean: Option<f64>,
    /// Mean `DCGM_FI_PROF_DRAM_ACTIVE` of the instance (0-1).
    pub dram_active_mean: Option<f64>,
    /// Every process NVML listed on the instance during the window (the
    /// job's own and others'), by PID, ascending.
    pub pids: Vec<u32>,
    /// Unix time of the first sample in which the instance no longer
    /// existed (destroyed, or MIG turned off), when that happened during
    /// the window: its readings stop there.
    pub destroyed_at: Option<f64>,
}

impl MigReport {
    /// The instance's share of its parent GPU: slices / parent slices.
    pub fn share(&self) -> Option<f64> {
        match (self.slices, self.parent_slices) {
            (Some(n), Some(total)) if total > 0 && n <= total => {
                Some(f64::from(n) / f64::from(total))
            }
            _ => None,
        }
    }
}

/// What one window saw on one GPU, or on one MIG device of a GPU
/// ([`mig`](Self::mig) set: identity, energy and power are then the
/// parent GPU's, memory and activity the instance's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuReport {
    /// CUDA index in the measuring process (`cuda:N`); `None` when the GPU
    /// was chosen outside `CUDA_VISIBLE_DEVICES`, or outside a session.
    #[serde(default)]
    pub cuda_index: Option<u32>,
    /// NVML index.
    #[serde(rename = "nvml_index")]
    pub index: u32,
    /// GPU UUID.
    pub uuid: String,
    /// Model name.
    pub name: String,
    /// Energy used during the window, in joules; `None` when it could not
    /// be measured (see `energy_note`) — never a made-up 0.
    pub energy_j: Option<f64>,
    /// How `energy_j` was obtained.
    pub energy_source: Option<EnergySource>,
    /// Whose energy and power these are: the device's own (`gpu`) or, for a
    /// MIG device, its parent GPU's, shared by its instances
    /// (`parent_gpu`). Schemas before 4: `gpu`.
    #[serde(default)]
    pub energy_scope: EnergyScope,
    /// For a MIG device: the parent GPU's `energy_j` apportioned by the
    /// instance's share of its compute slices ([`MigReport::share`]) — an
    /// estimate, not a measurement; `None` for a whole GPU, or when the
    /// energy or the slices are unknown.
    #[serde(default)]
    pub energy_estimate_j: Option<f64>,
    /// Why energy is missing or less exact than usual, when it is (the
    /// window's own reason; [`note`](Self::note) adds a lost GPU's).
    pub energy_note: Option<String>,
    /// Mean GPU utilization over the samples, %.
    pub util_mean: Option<f64>,
    /// Highest GPU utilization seen, %.
    pub util_max: Option<f64>,
    /// Highest framebuffer memory used, bytes.
    pub memory_peak_bytes: Option<u64>,
    /// Mean power draw, W: `energy_j ÷ duration` when the energy comes from
    /// the GPU's counter (exact over the window), else the mean of the power
    /// samples; `None` when power could not be read.
    pub power_mean_w: Option<f64>,
    /// Highest power draw, W.
    pub power_max_w: Option<f64>,
    /// Highest GPU temperature, °C.
    pub temperature_max_c: Option<f64>,
    /// Samples of this GPU in the window (with the GPU up).
    pub samples: u64,
    /// Highest GPU memory used by the window's own processes, bytes; `None`
    /// when the window tracks no processes or NVML gave no per-process memory.
    pub process_memory_peak_bytes: Option<u64>,
    /// Why the GPU was down during part of the window (lost, failing), as
    /// first seen; its readings stop there.
    #[serde(default)]
    pub down_reason: Option<String>,
    /// The MIG device measured, when the job ran on one (its `GPU-…`
    /// parent is this report's GPU).
    #[serde(default)]
    pub mig: Option<MigReport>,
}

impl GpuReport {
    /// The energy note with a lost GPU's reason merged in: what a person
    /// reading the report should know about `energy_j`.
    pub fn note(&self) -> Option<String> {
        let mut note = match (&self.energy_note, &self.down_reason) {
            (note, None) => note.clone(),
            (None, Some(why)) => Some(format!(
                "the GPU was down during the window ({why}); energy covers only the time it was up"
            )),
            (Some(note), Some(why)) => Some(format!(
                "{note}; the GPU was down during the window ({why})"
            )),
        };
        if let Some(m) = &self.mig
            && m.destroyed_at.is_some()
        {
            let gone = format!(
                "the MIG device {} was destroyed during the window; its readings and energy stop there",
                m.uuid
            );
            note = Some(note.map_or_else(|| gone.clone(), |n| format!("{n}; {gone}")));
        }
        note
    }

    /// The device's label in a table: `0` for a GPU, `0/GI 7` for a MIG
    /// device.
    pub fn device_label(&self) -> String {
        match &self.mig {
            None => self.index.to_string(),
            Some(m) => match m.gpu_instance_id {
                Some(gi) => format!("{}/GI {gi}", self.index),
                None => format!("{}/{}", self.index, m.profile),
            },
        }
    }

    /// Sort key of CUDA order: visible GPUs by CUDA index, then the others
    /// by NVML index.
    pub fn cuda_order(&self) -> (bool, Option<u32>, u32) {
        (self.cuda_index.is_none(), self.cuda_index, self.index)
    }
}

/// A finished (or still running) window.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "ReportDoc")]
pub struct JobReport {
    /// The job's globally unique id (the `job_id` label of its series).
    pub id: JobId,
    /// The name given at `begin`.
    pub name: String,
    /// Environment identity merged with user labels.
    pub labels: BTreeMap<String, String>,
    /// Host the window was measured on (empty outside a session).
    pub hostname: String,
    /// Whether the window is still open (a report so far).
    pub running: bool,
    /// Unix time of the first sample, seconds.
    pub started_at: f64,
    /// Unix time of the last sample, seconds.
    pub ended_at: f64,
    /// `ended_at - started_at`, seconds.
    pub duration_s: f64,
    /// Per GPU, in NVML index order ([`gpus_in_cuda_order`](Self::gpus_in_cuda_order)
    /// for CUDA's).
    pub gpus: Vec<GpuReport>,
    /// Sum of the energy of the whole GPUs measured, J (a MIG device's
    /// parent energy is shared and not counted here); `None` when no such
    /// GPU's energy is known.
    pub energy_j: Option<f64>,
    /// When the job ran on MIG devices: `energy_j` plus each MIG device's
    /// [`GpuReport::energy_estimate_j`] (but for one whose GPU the job also
    /// measures whole, already counted) — an estimate; `None` otherwise.
    pub energy_estimate_j: Option<f64>,
    /// Progress counts given by the job (`samples`, `tokens`, …).
    pub counts: BTreeMap<String, f64>,
    /// What cut the job short, as its face names it — an exception's type
    /// (`KeyboardInterrupt`), `dropped` for a job abandoned while running —
    /// or `None` for a job that ran to its end (or still runs). Set by
    /// [`JobTracker::mark_interrupted`](crate::jobs::JobTracker::mark_interrupted)
    /// or [`JobTracker::end_interrupted`](crate::jobs::JobTracker::end_interrupted);
    /// exported as `algalon_job_interrupted`.
    pub interrupted: Option<String>,
    /// Longest time one sample of the window took, s (a slow GPU or NVML
    /// call); `None` when unknown (a report of schema 1 or 2).
    pub slowest_sample_s: Option<f64>,
    /// What a reader should know about the whole report, one sentence
    /// each: sampling that could not keep its interval (so the job's
    /// boundaries are late by up to [`slowest_sample_s`](Self::slowest_sample_s)),
    /// no GPU measured at all. Per-GPU caveats are in [`GpuReport::note`].
    pub notes: Vec<String>,
}

impl JobReport {
    /// Energy per unit of a count (`energy_per("tokens")` = J/token).
    pub fn energy_per(&self, count: &str) -> Option<f64> {
        let n = *self.counts.get(count)?;
        (n > 0.0).then_some(self.energy_j? / n)
    }

    /// The GPUs in CUDA order: `cuda:0`, `cuda:1`, …, then GPUs the
    /// measuring process does not see, by NVML index.
    pub fn gpus_in_cuda_order(&self) -> Vec<&GpuReport> {
        let mut gpus: Vec<&GpuReport> = self.gpus.iter().collect();
        gpus.sort_by_key(|g| g.cuda_order());
        gpus
    }

    /// The report as JSON (schema [`SCHEMA`]), on one line.
    pub fn to_json(&self) -> String {
        // Non-finite floats are written as null: this cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The report as JSON, indented by `indent` spaces.
    pub fn to_json_pretty(&self, indent: usize) -> String {
        let pad = vec![b' '; indent];
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(&pad);
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        match self.serialize(&mut ser) {
            Ok(()) => String::from_utf8_lossy(&out).into_owned(),
            Err(_) => self.to_json(),
        }
    }

    /// Reads a report written by [`to_json`](Self::to_json) (any schema in
    /// [`SCHEMAS_READ`]). The error says what is wrong and where.
    pub fn from_json(text: &str) -> Result<JobReport, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// A readable, fixed-width table: one line per GPU and a total; an
    /// interrupted job's starts with `(interrupted by <reason>)`.
    pub fn table(&self) -> String {
        let opt = |v: Option<f64>, digits: usize| {
            v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
        };
        let mut out = self
            .interrupted
            .as_ref()
            .map_or_else(String::new, |why| format!("(interrupted by {why}) "));
        out.push_str(&format!(
            "job {:?}: {:.1} s on {} GPU(s)\n",
            self.name,
            self.duration_s,
            self.gpus.len()
        ));
        out.push_str(
            "  GPU  energy J      source      util mean/max %  mem peak GiB  power mean/max W  temp max C  samples\n",
        );
        for g in &self.gpus {
            out.push_str(&format!(
                "  {:<4} {:<12} {:<11} {:>6}/{:<8} {:>12} {:>8}/{:<8} {:>10} {:>8}\n",
                g.device_label(),
                opt(g.energy_j, 1),
                g.energy_source.map_or("-", EnergySource::as_str),
                opt(g.util_mean, 1),
                opt(g.util_max, 0),
                opt(g.memory_peak_bytes.map(|b| b as f64 / 1073741824.0), 2),
                opt(g.power_mean_w, 1),
                opt(g.power_max_w, 1),
                opt(g.temperature_max_c, 0),
                g.samples,
            ));
            if let Some(m) = &g.mig {
                out.push_str(&format!(
                    "       MIG {} {}: energy and power are GPU {}'s, shared by its instances; estimate {} J ({} of {} slices)\n",
                    m.profile,
                    m.uuid,
                    g.index,
                    opt(g.energy_estimate_j, 1),
                    m.slices.map_or_else(|| "?".to_owned(), |n| n.to_string()),
                    m.parent_slices.map_or_else(|| "?".to_owned(), |n| n.to_string()),
                ));
            }
            if let Some(note) = &g.energy_note {
                out.push_str(&format!("       note: {note}\n"));
            }
        }
        for note in &self.notes {
            out.push_str(&format!("  note: {note}\n"));
        }
        out.push_str(&format!("  total energy: {} J", opt(self.energy_j, 1)));
        if let Some(estimate) = self.energy_estimate_j {
            out.push_str(&format!(
                " (with MIG devices' shares, estimated: {estimate:.1} J)"
            ));
        }
        for (k, n) in &self.counts {
            if let Some(per) = self.energy_per(k) {
                out.push_str(&format!(", {per:.4} J per {k} ({n} {k})"));
            }
        }
        out.push('\n');
        out
    }
}

impl Serialize for JobReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let energy_per: BTreeMap<&String, f64> = self
            .counts
            .keys()
            .filter_map(|k| Some((k, self.energy_per(k)?)))
            .collect();
        let mut doc = serializer.serialize_struct("JobReport", 18)?;
        doc.serialize_field("schema", &SCHEMA)?;
        doc.serialize_field("id", &self.id)?;
        doc.serialize_field("name", &self.name)?;
        doc.serialize_field("labels", &self.labels)?;
        doc.serialize_field("hostname", &self.hostname)?;
        doc.serialize_field("running", &self.running)?;
        doc.serialize_field("interrupted", &self.interrupted.is_some())?;
        doc.serialize_field("error", &self.interrupted)?;
        doc.serialize_field("started_at", &self.started_at)?;
        doc.serialize_field("ended_at", &self.ended_at)?;
        doc.serialize_field("duration_s", &self.duration_s)?;
        doc.serialize_field("energy_j", &self.energy_j)?;
        doc.serialize_field("energy_estimate_j", &self.energy_estimate_j)?;
        doc.serialize_field("counts", &self.counts)?;
        doc.serialize_field("energy_per", &energy_per)?;
        doc.serialize_field("slowest_sample_s", &self.slowest_sample_s)?;
        doc.serialize_field("notes", &self.notes)?;
        doc.serialize_field("gpus", &self.gpus_in_cuda_order())?;
        doc.end()
    }
}

/// The JSON document as read (every schema in [`SCHEMAS_READ`]).
#[derive(Deserialize)]
struct ReportDoc {
    schema: u32,
    id: IdDoc,
    name: String,
    labels: BTreeMap<String, String>,
    hostname: String,
    running: bool,
    /// Schema 2: the job was cut short.
    #[serde(default)]
    interrupted: bool,
    /// Schema 2: by what.
    #[serde(default)]
    error: Option<String>,
    started_at: f64,
    ended_at: f64,
    duration_s: f64,
    energy_j: Option<f64>,
    /// Schema 4.
    #[serde(default)]
    energy_estimate_j: Option<f64>,
    counts: BTreeMap<String, f64>,
    /// Schema 3.
    #[serde(default)]
    slowest_sample_s: Option<f64>,
    /// Schema 3.
    #[serde(default)]
    notes: Vec<String>,
    gpus: Vec<GpuReport>,
}

impl TryFrom<ReportDoc> for JobReport {
    type Error = String;

    fn try_from(doc: ReportDoc) -> Result<JobReport, String> {
        if !SCHEMAS_READ.contains(&doc.schema) {
            return Err(format!(
                "report schema {} is not supported (this algalon reads schemas {} to {SCHEMA}): upgrade algalon to read it",
                doc.schema, SCHEMAS_READ[0]
            ));
        }
        let interrupted = match (doc.interrupted, doc.error) {
            (false, None) => None,
            (true, error) => Some(error.unwrap_or_else(|| "unknown".to_owned())),
            (false, Some(e)) => {
                return Err(format!(
                    "report says error {e:?} but interrupted false: an error always interrupts the job"
                ));
            }
        };
        let mut gpus = doc.gpus;
        gpus.sort_by_key(|g| g.index);
        Ok(JobReport {
            id: match doc.id {
                IdDoc::Text(text) => JobId(text),
                IdDoc::Number(n) => JobId(n.to_string()),
            },
            name: doc.name,
            labels: doc.labels,
            hostname: doc.hostname,
            running: doc.running,
            started_at: doc.started_at,
            ended_at: doc.ended_at,
            duration_s: doc.duration_s,
            gpus,
            energy_j: doc.energy_j,
            energy_estimate_j: doc.energy_estimate_j,
            counts: doc.counts,
            interrupted,
            slowest_sample_s: doc.slowest_sample_s,
            notes: doc.notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(index: u32, cuda: Option<u32>) -> GpuReport {
        GpuReport {
            cuda_index: cuda,
            index,
            uuid: format!("GPU-{index}"),
            name: "X".into(),
            energy_j: Some(0.1 + f64::from(index)),
            energy_source: Some(EnergySource::Counter),
            energy_scope: EnergyScope::Gpu,
            energy_estimate_j: None,
            energy_note: None,
            util_mean: Some(1.0 / 3.0),
            util_max: Some(85.0),
            memory_peak_bytes: Some(1 << 40),
            power_mean_w: None,
            power_max_w: None,
            temperature_max_c: Some(63.0),
            samples: 2,
            process_memory_peak_bytes: None,
            down_reason: None,
            mig: None,
        }
    }

    fn report() -> JobReport {
        JobReport {
            id: JobId::from("3f0c9a52-6d1e-4b7a-8c2d-1e5f7a9b0c3d"),
            name: "train".into(),
            labels: BTreeMap::from([("team".to_owned(), "nlp".to_owned())]),
            hostname: "w1".into(),
            running: false,
            started_at: 1_700_000_000.123_456_7,
            ended_at: 1_700_000_060.987_654_3,
            duration_s: 60.864_197_6,
            gpus: vec![gpu(0, Some(1)), gpu(1, Some(0)), gpu(2, None)],
            energy_j: Some(3.3),
            energy_estimate_j: None,
            counts: BTreeMap::from([("tokens".to_owned(), 3.0)]),
            interrupted: Some("KeyboardInterrupt".into()),
            slowest_sample_s: Some(1.25),
            notes: vec!["sampling fell behind".into()],
        }
    }

    #[test]
    fn job_ids_are_random_uuids() {
        let (a, b) = (JobId::random(), JobId::random());
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(a.as_str()).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(
            a.as_str(),
            parsed.hyphenated().to_string(),
            "lower-case, hyphenated"
        );
    }

    #[test]
    fn json_round_trip_is_exact_and_written_in_cuda_order() {
        let r = report();
        let text = r.to_json();
        let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(doc["schema"], 4);
        assert_eq!(doc["id"], "3f0c9a52-6d1e-4b7a-8c2d-1e5f7a9b0c3d");
        assert_eq!(doc["interrupted"], true);
        assert_eq!(doc["error"], "KeyboardInterrupt");
        assert_eq!(doc["gpus"][0]["nvml_index"], 1);
        assert_eq!(doc["gpus"][2]["cuda_index"], serde_json::Value::Null);
        assert_eq!(doc["gpus"][0]["energy_source"], "counter");
        assert!((doc["energy_per"]["tokens"].as_f64().expect("per") - 1.1).abs() < 1e-12);
        let back = JobReport::from_json(&text).expect("reads");
        assert_eq!(back, r);
        assert_eq!(back.gpus[0].index, 0, "NVML order in memory");
        assert_eq!(
            JobReport::from_json(&r.to_json_pretty(2)).expect("pretty"),
            r
        );
    }

    #[test]
    fn documents_that_cannot_be_read_say_why() {
        let doc: serde_json::Value = serde_json::from_str(&report().to_json()).expect("json");
        let with = |k: &str, v: serde_json::Value| {
            let mut d = doc.clone();
            d[k] = v;
            JobReport::from_json(&d.to_string())
                .expect_err(k)
                .to_string()
        };
        let err = with("schema", 5.into());
        assert!(
            err.contains("schema 5 is not supported") && err.contains("upgrade algalon"),
            "{err}"
        );
        assert!(with("interrupted", false.into()).contains("interrupted false"));
        let mut bad = doc.clone();
        bad["gpus"][0]["energy_source"] = "guessed".into();
        let err = JobReport::from_json(&bad.to_string())
            .expect_err("source")
            .to_string();
        assert!(err.contains("guessed"), "{err}");
        // Schema 1: no interruption fields.
        let mut old = doc.clone();
        old["schema"] = 1.into();
        let obj = old.as_object_mut().expect("object");
        obj.remove("interrupted");
        obj.remove("error");
        obj.insert("id".to_owned(), 7.into());
        let v1 = JobReport::from_json(&old.to_string()).expect("v1");
        assert_eq!(v1.interrupted, None);
        assert_eq!(
            v1.id.as_str(),
            "7",
            "a per-process number reads as its text"
        );
    }

    #[test]
    fn notes_merge_a_lost_gpu() {
        let mut g = gpu(0, None);
        assert_eq!(g.note(), None);
        g.down_reason = Some("GPU lost".into());
        assert!(
            g.note()
                .expect("note")
                .contains("down during the window (GPU lost)")
        );
        g.energy_note = Some("no counter".into());
        assert_eq!(
            g.note().as_deref(),
            Some("no counter; the GPU was down during the window (GPU lost)")
        );
    }
}
