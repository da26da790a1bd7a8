//! `Report` and `GpuReport`: views over the core's [`JobReport`] and
//! [`CoreGpu`]. Every getter reads the core value; the JSON form (schema,
//! reading old schemas) is the core's, so a report written here reads back
//! in the C library or any Rust program, and the other way round.

use std::collections::BTreeMap;

use algalon_core::jobs::{GpuReport as CoreGpu, JobReport, MigReport as CoreMig};
use algalon_core::{Format, encode_jobs};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

/// What one window saw on a MIG device (`GpuReport.mig`): the instance's
/// own readings.
#[pyclass(module = "algalon", frozen, eq)]
#[derive(Debug, Clone, PartialEq)]
pub struct MigReport {
    inner: CoreMig,
}

#[pymethods]
impl MigReport {
    /// The MIG device's `MIG-…` UUID.
    #[getter]
    fn uuid(&self) -> &str {
        &self.inner.uuid
    }

    /// Its profile (`1g.10gb`, `3g.40gb`, …).
    #[getter]
    fn profile(&self) -> &str {
        &self.inner.profile
    }

    /// GPU instance id (dcgm-exporter's `GPU_I_ID`).
    #[getter]
    fn gpu_instance_id(&self) -> Option<u32> {
        self.inner.gpu_instance_id
    }

    /// Compute instance id.
    #[getter]
    fn compute_instance_id(&self) -> Option<u32> {
        self.inner.compute_instance_id
    }

    /// Compute slices of the instance (3 for `3g.40gb`).
    #[getter]
    fn slices(&self) -> Option<u32> {
        self.inner.slices
    }

    /// Compute slices of the whole parent GPU (7 on an A100 or H100).
    #[getter]
    fn parent_slices(&self) -> Option<u32> {
        self.inner.parent_slices
    }

    /// `slices / parent_slices`: what `GpuReport.energy_estimate_j` apportions by.
    #[getter]
    fn share(&self) -> Option<f64> {
        self.inner.share()
    }

    /// The instance's framebuffer size, bytes.
    #[getter]
    fn memory_total_bytes(&self) -> Option<u64> {
        self.inner.memory_total_bytes
    }

    /// Mean `DCGM_FI_PROF_SM_ACTIVE` of the instance (0-1), where the GPU has GPM.
    #[getter]
    fn sm_active_mean(&self) -> Option<f64> {
        self.inner.sm_active_mean
    }

    /// Mean `DCGM_FI_PROF_SM_OCCUPANCY` of the instance (0-1).
    #[getter]
    fn sm_occupancy_mean(&self) -> Option<f64> {
        self.inner.sm_occupancy_mean
    }

    /// Mean `DCGM_FI_PROF_PIPE_TENSOR_ACTIVE` of the instance (0-1).
    #[getter]
    fn tensor_active_mean(&self) -> Option<f64> {
        self.inner.tensor_active_mean
    }

    /// Mean `DCGM_FI_PROF_DRAM_ACTIVE` of the instance (0-1).
    #[getter]
    fn dram_active_mean(&self) -> Option<f64> {
        self.inner.dram_active_mean
    }

    /// PIDs of every process NVML listed on the instance during the window.
    #[getter]
    fn pids(&self) -> Vec<u32> {
        self.inner.pids.clone()
    }

    /// Unix time from which the instance no longer existed, if it was
    /// destroyed during the window.
    #[getter]
    fn destroyed_at(&self) -> Option<f64> {
        self.inner.destroyed_at
    }

    /// Pickling and `copy`: the MIG report as JSON, read back by the core.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let text = serde_json::to_string(&self.inner)
            .map_err(|e| PyValueError::new_err(format!("cannot write the MIG report: {e}")))?;
        let cls = py.get_type::<MigReport>();
        (cls.getattr("_from_json")?, (text,)).into_pyobject(py)
    }

    #[staticmethod]
    fn _from_json(text: &str) -> PyResult<MigReport> {
        serde_json::from_str(text)
            .map(|inner| MigReport { inner })
            .map_err(|e| PyValueError::new_err(format!("not an algalon MIG report: {e}")))
    }

    fn __repr__(&self) -> String {
        let m = &self.inner;
        let gi = m
            .gpu_instance_id
            .map_or_else(|| "?".to_owned(), |i| i.to_string());
        format!("<MigReport {} GI {gi} {}>", m.profile, m.uuid)
    }
}

/// What one window saw on one GPU.
#[pyclass(module = "algalon", frozen, eq)]
#[derive(Debug, Clone, PartialEq)]
pub struct GpuReport {
    inner: CoreGpu,
}

impl GpuReport {
    /// The view of one core GPU report.
    pub fn new(inner: CoreGpu) -> GpuReport {
        GpuReport { inner }
    }
}

#[pymethods]
impl GpuReport {
    /// CUDA index in the measuring process (`cuda:N`); `None` when the GPU
    /// was chosen by UUID outside `CUDA_VISIBLE_DEVICES`.
    #[getter]
    fn cuda_index(&self) -> Option<u32> {
        self.inner.cuda_index
    }

    /// NVML index (`nvidia-smi`, the dashboards' `gpu` label).
    #[getter]
    fn nvml_index(&self) -> u32 {
        self.inner.index
    }

    /// `GPU-…` UUID.
    #[getter]
    fn uuid(&self) -> &str {
        &self.inner.uuid
    }

    /// Model name.
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }

    /// Energy used during the window, J; `None` when it cannot be measured.
    #[getter]
    fn energy_j(&self) -> Option<f64> {
        self.inner.energy_j
    }

    /// `"counter"` or `"integrated"`.
    #[getter]
    fn energy_source(&self) -> Option<&'static str> {
        self.inner.energy_source.map(|s| s.as_str())
    }

    /// Why energy is missing or less exact than usual (a lost GPU included).
    #[getter]
    fn energy_note(&self) -> Option<String> {
        self.inner.note()
    }

    /// Whose energy and power these are: `"gpu"` (this GPU's own) or
    /// `"parent_gpu"` (a MIG device's parent GPU as a whole, shared by its
    /// instances).
    #[getter]
    fn energy_scope(&self) -> &'static str {
        self.inner.energy_scope.as_str()
    }

    /// For a MIG device: `energy_j` × the instance's share of the GPU's
    /// compute slices, J — an estimate; `None` for a whole GPU.
    #[getter]
    fn energy_estimate_j(&self) -> Option<f64> {
        self.inner.energy_estimate_j
    }

    /// The MIG device measured (`None` for a whole GPU).
    #[getter]
    fn mig(&self) -> Option<MigReport> {
        self.inner.mig.clone().map(|inner| MigReport { inner })
    }

    /// Mean GPU utilization, %.
    #[getter]
    fn util_mean(&self) -> Option<f64> {
        self.inner.util_mean
    }

    /// Highest GPU utilization, %.
    #[getter]
    fn util_max(&self) -> Option<f64> {
        self.inner.util_max
    }

    /// Highest memory used on the GPU (by anyone), bytes.
    #[getter]
    fn memory_peak_bytes(&self) -> Option<u64> {
        self.inner.memory_peak_bytes
    }

    /// Mean power draw, W.
    #[getter]
    fn power_mean_w(&self) -> Option<f64> {
        self.inner.power_mean_w
    }

    /// Highest power draw, W.
    #[getter]
    fn power_max_w(&self) -> Option<f64> {
        self.inner.power_max_w
    }

    /// Highest temperature, °C.
    #[getter]
    fn temperature_max_c(&self) -> Option<f64> {
        self.inner.temperature_max_c
    }

    /// Samples taken while the GPU was up.
    #[getter]
    fn samples(&self) -> u64 {
        self.inner.samples
    }

    /// Highest memory used by the job's own processes, bytes.
    #[getter]
    fn process_memory_peak_bytes(&self) -> Option<u64> {
        self.inner.process_memory_peak_bytes
    }

    /// Why the GPU was down during part of the window.
    #[getter]
    fn down_reason(&self) -> Option<&str> {
        self.inner.down_reason.as_deref()
    }

    /// Pickling and `copy`: the GPU report as JSON, read back by the core.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let text = serde_json::to_string(&self.inner)
            .map_err(|e| PyValueError::new_err(format!("cannot write the GPU report: {e}")))?;
        let cls = py.get_type::<GpuReport>();
        (cls.getattr("_from_json")?, (text,)).into_pyobject(py)
    }

    #[staticmethod]
    fn _from_json(text: &str) -> PyResult<GpuReport> {
        serde_json::from_str(text)
            .map(GpuReport::new)
            .map_err(|e| PyValueError::new_err(format!("not an algalon GPU report: {e}")))
    }

    fn __repr__(&self) -> String {
        let g = &self.inner;
        let cuda = g
            .cuda_index
            .map_or_else(String::new, |i| format!("cuda:{i} = "));
        let energy = match (g.energy_j, g.energy_source) {
            (Some(e), Some(s)) => format!("{e:.1} J ({})", s.as_str()),
            (Some(e), None) => format!("{e:.1} J"),
            _ => "energy unknown".to_owned(),
        };
        let mig = g
            .mig
            .as_ref()
            .map_or_else(String::new, |m| format!(" MIG {} {}", m.profile, m.uuid));
        let energy = match (g.mig.is_some(), g.energy_estimate_j) {
            (false, _) => energy,
            (true, Some(e)) => format!("parent GPU {energy}, estimate {e:.1} J"),
            (true, None) => format!("parent GPU {energy}"),
        };
        format!(
            "<GpuReport {cuda}GPU {} {} {:?}{mig}: {energy}, {} samples>",
            g.index, g.uuid, g.name, g.samples
        )
    }
}

/// A finished (or still running) job or window.
#[pyclass(module = "algalon", frozen, eq)]
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub(crate) inner: JobReport,
}

impl Report {
    /// Wraps a core report.
    pub fn new(inner: JobReport) -> Report {
        Report { inner }
    }

    /// The Prometheus text exposition of this report alone; with a time, every
    /// sample carries it (milliseconds), as pushes need.
    pub fn exposition(&self, timestamp_ms: Option<i64>) -> String {
        let text = encode_jobs(
            &[(self.inner.clone(), self.inner.running)],
            Format::PrometheusText,
        );
        match timestamp_ms {
            None => text,
            Some(ms) => with_timestamps(&text, ms),
        }
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

#[pymethods]
impl Report {
    /// The job's globally unique id, a UUID (the `job_id` label of its series).
    #[getter]
    fn id(&self) -> &str {
        self.inner.id.as_str()
    }

    /// Longest time one sample of the job took, s; `None` when unknown.
    #[getter]
    fn slowest_sample_s(&self) -> Option<f64> {
        self.inner.slowest_sample_s
    }

    /// Caveats on the whole report: sampling that fell behind its interval,
    /// no GPU measured.
    #[getter]
    fn notes(&self) -> Vec<String> {
        self.inner.notes.clone()
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
        &self.inner.hostname
    }

    /// True for a report of a window that is still open.
    #[getter]
    fn running(&self) -> bool {
        self.inner.running
    }

    /// True when the job's `with` block was left by an exception.
    #[getter]
    fn interrupted(&self) -> bool {
        self.inner.interrupted.is_some()
    }

    /// The type name of the exception that interrupted the job, `"dropped"`
    /// for a job whose `Job` was collected while it ran, else `None`.
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

    /// Energy of the whole GPUs together, J (a MIG device's parent energy
    /// is shared and left out: see `energy_estimate_j`); `None` when no
    /// such GPU's is known.
    #[getter]
    fn energy_j(&self) -> Option<f64> {
        self.inner.energy_j
    }

    /// When the job ran on MIG devices: `energy_j` (whole GPUs) plus each
    /// MIG device's `energy_estimate_j` — an estimate; `None` otherwise.
    #[getter]
    fn energy_estimate_j(&self) -> Option<f64> {
        self.inner.energy_estimate_j
    }

    /// Progress the job counted (`samples`, `tokens`, …).
    #[getter]
    fn counts(&self) -> BTreeMap<String, f64> {
        self.inner.counts.clone()
    }

    /// Per GPU, in CUDA order (`gpus[0]` is `cuda:0`).
    #[getter]
    fn gpus(&self) -> Vec<GpuReport> {
        self.inner
            .gpus_in_cuda_order()
            .into_iter()
            .map(|g| GpuReport::new(g.clone()))
            .collect()
    }

    /// Joules per unit of a count; `None` when the count is absent or zero
    /// or the energy unknown.
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
        py.import("json")?
            .call_method1("loads", (self.inner.to_json(),))
    }

    /// The report as JSON; `Report.from_json` reads it back.
    #[pyo3(signature = (indent=None))]
    fn to_json(&self, indent: Option<usize>) -> String {
        match indent {
            None => self.inner.to_json(),
            Some(n) => self.inner.to_json_pretty(n),
        }
    }

    /// Reads a report written by `to_json` — by this package, the C
    /// library's `algalon_job_report_json` or any Rust program.
    #[staticmethod]
    fn from_json(text: &str) -> PyResult<Report> {
        JobReport::from_json(text)
            .map(Report::new)
            .map_err(|e| PyValueError::new_err(format!("not an algalon report: {e}")))
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

    /// Pushes the report to VictoriaMetrics (or vmagent).
    #[pyo3(signature = (url, *, timeout=10.0, retries=1))]
    fn push(&self, py: Python<'_>, url: &str, timeout: f64, retries: u32) -> PyResult<()> {
        let stamp = if self.inner.running {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        } else {
            self.inner.ended_at
        };
        let body = self.exposition(Some((stamp * 1000.0).round() as i64));
        let extra = BTreeMap::from([("Hostname".to_owned(), self.inner.hostname.clone())]);
        py.import("algalon._push")?
            .call_method1("push", (body, url, extra, timeout, retries))?;
        Ok(())
    }

    /// Pickling and `copy`: the report's JSON, read back by `from_json`.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let cls = py.get_type::<Report>();
        (cls.getattr("from_json")?, (self.inner.to_json(),)).into_pyobject(py)
    }

    fn __str__(&self) -> String {
        // The core's table starts with `(interrupted by …)` when it was.
        let mut out = self.inner.table();
        if self.inner.running {
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
        for g in self.inner.gpus_in_cuda_order() {
            let cuda = g
                .cuda_index
                .map_or_else(|| "not visible to CUDA".to_owned(), |i| format!("cuda:{i}"));
            out.push_str(&format!(
                "  GPU {} = {cuda}, {} ({})\n",
                g.index, g.uuid, g.name
            ));
            if let Some(why) = &g.down_reason {
                out.push_str(&format!("       down during the window: {why}\n"));
            }
        }
        out
    }

    /// One line: name, state, duration, energy, GPUs (`str()` gives the table).
    fn __repr__(&self) -> String {
        let r = &self.inner;
        let state = match (&r.interrupted, r.running) {
            (Some(why), _) => format!(" interrupted by {why}"),
            (None, true) => " running".to_owned(),
            (None, false) => String::new(),
        };
        let energy = r
            .energy_j
            .map_or_else(|| "energy unknown".to_owned(), |e| format!("{e:.1} J"));
        let gpus: Vec<String> = r
            .gpus_in_cuda_order()
            .iter()
            .map(|g| match g.cuda_index {
                Some(i) => format!("cuda:{i}"),
                None => format!("GPU {}", g.index),
            })
            .collect();
        let gpus = if gpus.is_empty() {
            "no GPU".to_owned()
        } else {
            gpus.join(",")
        };
        format!(
            "<Report {:?}{state}: {:.1} s, {energy}, {gpus}>",
            r.name, r.duration_s
        )
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
