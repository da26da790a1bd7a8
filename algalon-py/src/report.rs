//! `Report` and `GpuReport`: a window's result as Python objects, its JSON
//! form (written and read back, so a report that failed to push is never
//! lost) and its Prometheus exposition (served and pushed).

use std::collections::BTreeMap;

use algalon_core::Format;
use algalon_core::jobs::{EnergySource, GpuReport as CoreGpu, JobReport, WindowId, encode_reports};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde::{Deserialize, Serialize};

/// Version of the JSON document `Report.to_json` writes. Schema 2 added
/// `interrupted` and `error`; `from_json` still reads schema 1 documents
/// (as not interrupted).
const SCHEMA: u32 = 2;
/// Schema versions `Report.from_json` reads.
const SCHEMAS_READ: [u32; 2] = [1, 2];

/// Facts the face adds to a core report: CUDA indices, lost GPUs, host.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// UUID → CUDA index, for the GPUs this process can see.
    pub cuda: BTreeMap<String, u32>,
    /// UUID → why the GPU was down during the window, when it was.
    pub down: BTreeMap<String, String>,
    /// Host the window was measured on.
    pub hostname: String,
    /// Whether the window is still open.
    pub running: bool,
}

/// What one window saw on one GPU.
#[pyclass(module = "algalon", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct GpuReport {
    /// CUDA index in the measuring process (`cuda:N`); `None` when the GPU
    /// was chosen by UUID outside `CUDA_VISIBLE_DEVICES`.
    pub cuda_index: Option<u32>,
    /// NVML index (`nvidia-smi`, the dashboards' `gpu` label).
    pub nvml_index: u32,
    /// `GPU-…` UUID.
    pub uuid: String,
    /// Model name.
    pub name: String,
    /// Energy used during the window, J; `None` when it cannot be measured
    /// (`energy_note` says why) — never a made-up 0.
    pub energy_j: Option<f64>,
    /// `"counter"` (NVML's total-energy counter) or `"integrated"` (power
    /// samples integrated over time, on GPUs without a counter).
    pub energy_source: Option<String>,
    /// Why energy is missing or less exact than usual.
    pub energy_note: Option<String>,
    /// Mean GPU utilization, %.
    pub util_mean: Option<f64>,
    /// Highest GPU utilization, %.
    pub util_max: Option<f64>,
    /// Highest memory used on the GPU (by anyone), bytes.
    pub memory_peak_bytes: Option<u64>,
    /// Mean power draw, W.
    pub power_mean_w: Option<f64>,
    /// Highest power draw, W.
    pub power_max_w: Option<f64>,
    /// Highest temperature, °C.
    pub temperature_max_c: Option<f64>,
    /// Samples taken while the GPU was up.
    pub samples: u64,
    /// Highest memory used by the job's own processes (this process and its
    /// children, plus any `pids=` given), bytes.
    pub process_memory_peak_bytes: Option<u64>,
    /// Why the GPU was down during part of the window (lost, failing); its
    /// readings then stop there.
    pub down_reason: Option<String>,
}

#[pymethods]
impl GpuReport {
    fn __repr__(&self) -> String {
        let cuda = self
            .cuda_index
            .map_or_else(String::new, |i| format!("cuda:{i} = "));
        let energy = match (self.energy_j, &self.energy_source) {
            (Some(e), Some(s)) => format!("{e:.1} J ({s})"),
            (Some(e), None) => format!("{e:.1} J"),
            _ => "energy unknown".to_owned(),
        };
        format!(
            "<GpuReport {cuda}GPU {} {} {:?}: {energy}, {} samples>",
            self.nvml_index, self.uuid, self.name, self.samples
        )
    }
}

/// A finished (or still running) job or window.
#[pyclass(module = "algalon", frozen)]
#[derive(Debug, Clone)]
pub struct Report {
    pub(crate) inner: JobReport,
    pub(crate) extras: Extras,
}

impl Report {
    /// Wraps a core report.
    pub fn new(inner: JobReport, extras: Extras) -> Report {
        Report { inner, extras }
    }

    fn gpu_report(&self, g: &CoreGpu) -> GpuReport {
        let down_reason = self.extras.down.get(&g.uuid).cloned();
        let energy_note = match (&g.energy_note, &down_reason) {
            (note, None) => note.clone(),
            (None, Some(why)) => Some(format!(
                "the GPU was down during the window ({why}); energy covers only the time it was up"
            )),
            (Some(note), Some(why)) => Some(format!(
                "{note}; the GPU was down during the window ({why})"
            )),
        };
        GpuReport {
            cuda_index: self.extras.cuda.get(&g.uuid).copied(),
            nvml_index: g.index,
            uuid: g.uuid.clone(),
            name: g.name.clone(),
            energy_j: g.energy_j,
            energy_source: g.energy_source.map(|s| s.as_str().to_owned()),
            energy_note,
            util_mean: g.util_mean,
            util_max: g.util_max,
            memory_peak_bytes: g.memory_peak_bytes,
            power_mean_w: g.power_mean_w,
            power_max_w: g.power_max_w,
            temperature_max_c: g.temperature_max_c,
            samples: g.samples,
            process_memory_peak_bytes: g.process_memory_peak_bytes,
            down_reason,
        }
    }

    /// Per GPU, CUDA order first (cuda:0, cuda:1, …), then GPUs this process
    /// does not see, by NVML index.
    fn gpu_reports(&self) -> Vec<GpuReport> {
        let mut gpus: Vec<GpuReport> = self.inner.gpus.iter().map(|g| self.gpu_report(g)).collect();
        gpus.sort_by_key(|g| (g.cuda_index.is_none(), g.cuda_index, g.nvml_index));
        gpus
    }

    /// The Prometheus text exposition of this report alone; with a time, every
    /// sample carries it (milliseconds), as pushes need.
    pub fn exposition(&self, timestamp_ms: Option<i64>) -> String {
        let text = encode_reports(
            &[(self.inner.clone(), self.extras.running)],
            Format::PrometheusText,
        );
        match timestamp_ms {
            None => text,
            Some(ms) => with_timestamps(&text, ms),
        }
    }

    fn document(&self) -> ReportDoc {
        let r = &self.inner;
        ReportDoc {
            schema: SCHEMA,
            id: r.id.0,
            name: r.name.clone(),
            labels: r.labels.clone(),
            hostname: self.extras.hostname.clone(),
            running: self.extras.running,
            interrupted: r.interrupted.is_some(),
            error: r.interrupted.clone(),
            started_at: r.started_at,
            ended_at: r.ended_at,
            duration_s: r.duration_s,
            energy_j: r.energy_j,
            counts: r.counts.clone(),
            energy_per: r
                .counts
                .keys()
                .filter_map(|k| Some((k.clone(), r.energy_per(k)?)))
                .collect(),
            gpus: self
                .gpu_reports()
                .into_iter()
                .map(|g| {
                    let core = r.gpus.iter().find(|c| c.uuid == g.uuid);
                    GpuDoc {
                        cuda_index: g.cuda_index,
                        nvml_index: g.nvml_index,
                        uuid: g.uuid,
                        name: g.name,
                        energy_j: g.energy_j,
                        energy_source: g.energy_source,
                        // The core's note; the lost-GPU part is `down_reason`.
                        energy_note: core.and_then(|c| c.energy_note.clone()),
                        util_mean: g.util_mean,
                        util_max: g.util_max,
                        memory_peak_bytes: g.memory_peak_bytes,
                        power_mean_w: g.power_mean_w,
                        power_max_w: g.power_max_w,
                        temperature_max_c: g.temperature_max_c,
                        samples: g.samples,
                        process_memory_peak_bytes: g.process_memory_peak_bytes,
                        down_reason: g.down_reason,
                    }
                })
                .collect(),
        }
    }

    fn from_document(doc: ReportDoc) -> PyResult<Report> {
        if !SCHEMAS_READ.contains(&doc.schema) {
            return Err(PyValueError::new_err(format!(
                "report schema {} is not supported (this algalon reads schemas 1 to {SCHEMA}): upgrade algalon to read it",
                doc.schema
            )));
        }
        let error = match (doc.interrupted, doc.error) {
            (false, None) => None,
            (true, error) => Some(error.unwrap_or_else(|| "unknown".to_owned())),
            (false, Some(e)) => {
                return Err(PyValueError::new_err(format!(
                    "report says error {e:?} but interrupted false: an error always interrupts the job"
                )));
            }
        };
        let mut extras = Extras {
            hostname: doc.hostname,
            running: doc.running,
            ..Extras::default()
        };
        let mut gpus = Vec::with_capacity(doc.gpus.len());
        for g in doc.gpus {
            if let Some(i) = g.cuda_index {
                extras.cuda.insert(g.uuid.clone(), i);
            }
            if let Some(why) = g.down_reason {
                extras.down.insert(g.uuid.clone(), why);
            }
            let energy_source = match g.energy_source.as_deref() {
                None => None,
                Some("counter") => Some(EnergySource::Counter),
                Some("integrated") => Some(EnergySource::Integrated),
                Some(other) => {
                    return Err(PyValueError::new_err(format!(
                        "GPU {}: energy_source {other:?} is neither \"counter\" nor \"integrated\"",
                        g.uuid
                    )));
                }
            };
            gpus.push(CoreGpu {
                index: g.nvml_index,
                uuid: g.uuid,
                name: g.name,
                energy_j: g.energy_j,
                energy_source,
                energy_note: g.energy_note,
                util_mean: g.util_mean,
                util_max: g.util_max,
                memory_peak_bytes: g.memory_peak_bytes,
                power_mean_w: g.power_mean_w,
                power_max_w: g.power_max_w,
                temperature_max_c: g.temperature_max_c,
                samples: g.samples,
                process_memory_peak_bytes: g.process_memory_peak_bytes,
            });
        }
        gpus.sort_by_key(|g| g.index);
        let inner = JobReport {
            id: WindowId(doc.id),
            name: doc.name,
            labels: doc.labels,
            started_at: doc.started_at,
            ended_at: doc.ended_at,
            duration_s: doc.duration_s,
            gpus,
            energy_j: doc.energy_j,
            counts: doc.counts,
            interrupted: error,
        };
        Ok(Report { inner, extras })
    }
}

/// Appends ` <ms>` to every sample line of a text exposition.
fn with_timestamps(text: &str, ms: i64) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for line in text.lines() {
        out.push_str(line);
        if !line.is_empty() && !line.starts_with('#') {
            out.push(' ');
            out.push_str(&ms.to_string());
        }
        out.push('\n');
    }
    out
}

/// The JSON document of a report (`Report.to_json` / `Report.from_json`).
#[derive(Debug, Serialize, Deserialize)]
struct ReportDoc {
    schema: u32,
    id: u64,
    name: String,
    labels: BTreeMap<String, String>,
    hostname: String,
    running: bool,
    /// Schema 2: the job's `with` block was left by an exception.
    #[serde(default)]
    interrupted: bool,
    /// Schema 2: that exception's type name.
    #[serde(default)]
    error: Option<String>,
    started_at: f64,
    ended_at: f64,
    duration_s: f64,
    energy_j: Option<f64>,
    counts: BTreeMap<String, f64>,
    #[serde(default)]
    energy_per: BTreeMap<String, f64>,
    gpus: Vec<GpuDoc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct GpuDoc {
    cuda_index: Option<u32>,
    nvml_index: u32,
    uuid: String,
    name: String,
    energy_j: Option<f64>,
    energy_source: Option<String>,
    energy_note: Option<String>,
    util_mean: Option<f64>,
    util_max: Option<f64>,
    memory_peak_bytes: Option<u64>,
    power_mean_w: Option<f64>,
    power_max_w: Option<f64>,
    temperature_max_c: Option<f64>,
    samples: u64,
    process_memory_peak_bytes: Option<u64>,
    down_reason: Option<String>,
}

#[pymethods]
impl Report {
    /// Id of the window in its Monitor (the `job_id` label of its series).
    #[getter]
    fn id(&self) -> u64 {
        self.inner.id.0
    }

    /// The job or window name.
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }

    /// Identity from the environment (Slurm, torchrun, Kubernetes) merged
    /// with the user's labels.
    #[getter]
    fn labels(&self) -> BTreeMap<String, String> {
        self.inner.labels.clone()
    }

    /// Host the job ran on.
    #[getter]
    fn hostname(&self) -> &str {
        &self.extras.hostname
    }

    /// True for a report of a window that is still open.
    #[getter]
    fn running(&self) -> bool {
        self.extras.running
    }

    /// True when the job's `with` block was left by an exception
    /// (`KeyboardInterrupt`, an error in the training code, …): the report
    /// covers the job up to that moment.
    #[getter]
    fn interrupted(&self) -> bool {
        self.inner.interrupted.is_some()
    }

    /// The type name of the exception that interrupted the job
    /// (`"KeyboardInterrupt"`, `"torch.OutOfMemoryError"`, …), or
    /// `"dropped"` for a job whose `Job` was collected while it ran; `None`
    /// when it was not interrupted.
    #[getter]
    fn error(&self) -> Option<String> {
        self.inner.interrupted.clone()
    }

    /// Unix time of the first sample, s.
    #[getter]
    fn started_at(&self) -> f64 {
        self.inner.started_at
    }

    /// Unix time of the last sample, s.
    #[getter]
    fn ended_at(&self) -> f64 {
        self.inner.ended_at
    }

    /// Time between the first and the last sample, s.
    #[getter]
    fn duration_s(&self) -> f64 {
        self.inner.duration_s
    }

    /// Energy of all GPUs together, J; `None` when no GPU's is known.
    #[getter]
    fn energy_j(&self) -> Option<f64> {
        self.inner.energy_j
    }

    /// Progress the job counted (`samples`, `tokens`, …).
    #[getter]
    fn counts(&self) -> BTreeMap<String, f64> {
        self.inner.counts.clone()
    }

    /// Per GPU, in CUDA order (`gpus[0]` is `cuda:0`).
    #[getter]
    fn gpus(&self) -> Vec<GpuReport> {
        self.gpu_reports()
    }

    /// Joules per unit of a count (`energy_per("tokens")`); `None` when the
    /// count is absent or zero or the energy unknown.
    fn energy_per(&self, unit: &str) -> Option<f64> {
        self.inner.energy_per(unit)
    }

    /// Joules per counted sample (`job.count(samples=…)`).
    #[getter]
    fn energy_per_sample(&self) -> Option<f64> {
        self.inner.energy_per("samples")
    }

    /// Joules per counted token (`job.count(tokens=…)`).
    #[getter]
    fn energy_per_token(&self) -> Option<f64> {
        self.inner.energy_per("tokens")
    }

    /// The report as plain data (what `to_json` writes).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let text = self.to_json(None)?;
        py.import("json")?.call_method1("loads", (text,))
    }

    /// The report as JSON; `Report.from_json` reads it back.
    #[pyo3(signature = (indent=None))]
    fn to_json(&self, indent: Option<usize>) -> PyResult<String> {
        let doc = self.document();
        let result = match indent {
            None => serde_json::to_string(&doc),
            Some(n) => {
                let pad = vec![b' '; n];
                let mut out = Vec::new();
                let fmt = serde_json::ser::PrettyFormatter::with_indent(&pad);
                let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
                doc.serialize(&mut ser)
                    .map(|()| String::from_utf8_lossy(&out).into_owned())
            }
        };
        // Non-finite floats serialize as null, so this cannot fail in practice.
        result.map_err(|e| PyValueError::new_err(format!("cannot write the report as JSON: {e}")))
    }

    /// Reads a report written by `to_json` (for example one whose push
    /// failed, to push it again).
    #[staticmethod]
    fn from_json(text: &str) -> PyResult<Report> {
        let doc: ReportDoc = serde_json::from_str(text)
            .map_err(|e| PyValueError::new_err(format!("not an algalon report: {e}")))?;
        Report::from_document(doc)
    }

    /// Reads a report from the dict `to_dict` returns.
    #[staticmethod]
    fn from_dict(py: Python<'_>, data: &Bound<'_, PyDict>) -> PyResult<Report> {
        let text: String = py
            .import("json")?
            .call_method1("dumps", (data,))?
            .extract()?;
        Report::from_json(&text)
    }

    /// This report's series in the Prometheus text format (the same encoder
    /// `Monitor.serve` uses); with `timestamp_ms`, every sample carries it.
    #[pyo3(signature = (timestamp_ms=None))]
    fn to_prometheus(&self, timestamp_ms: Option<i64>) -> String {
        self.exposition(timestamp_ms)
    }

    /// Pushes the report to VictoriaMetrics (or vmagent):
    /// `POST {url}/api/v1/import/prometheus` with the job's series stamped
    /// with its end time and `Hostname` added to every series. Retries
    /// connection failures and 5xx answers `retries` times, then raises
    /// `PushError`; the report stays usable (`to_json`, push again).
    #[pyo3(signature = (url, *, timeout=10.0, retries=1))]
    fn push(&self, py: Python<'_>, url: &str, timeout: f64, retries: u32) -> PyResult<()> {
        let stamp = if self.extras.running {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        } else {
            self.inner.ended_at
        };
        let body = self.exposition(Some((stamp * 1000.0).round() as i64));
        let extra = BTreeMap::from([("Hostname".to_owned(), self.extras.hostname.clone())]);
        py.import("algalon._push")?
            .call_method1("push", (body, url, extra, timeout, retries))?;
        Ok(())
    }

    fn __str__(&self) -> String {
        // The core's table starts with `(interrupted by …)` when it was.
        let mut out = self.inner.table();
        if self.extras.running {
            out.insert_str(0, "(running) ");
        }
        if !self.inner.labels.is_empty() {
            let labels: Vec<String> = self
                .inner
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push_str(&format!("  labels: {}\n", labels.join(", ")));
        }
        for g in self.gpu_reports() {
            let cuda = g
                .cuda_index
                .map_or_else(|| "not visible to CUDA".to_owned(), |i| format!("cuda:{i}"));
            out.push_str(&format!(
                "  GPU {} = {cuda}, {} ({})\n",
                g.nvml_index, g.uuid, g.name
            ));
            if let Some(why) = &g.down_reason {
                out.push_str(&format!("       down during the window: {why}\n"));
            }
        }
        out
    }

    fn __repr__(&self) -> String {
        self.__str__()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_go_on_sample_lines_only() {
        let text = "# HELP a x\n# TYPE a gauge\na{b=\"c d\"} 1\n\n";
        assert_eq!(
            with_timestamps(text, 1700000000123),
            "# HELP a x\n# TYPE a gauge\na{b=\"c d\"} 1 1700000000123\n\n"
        );
    }
}
