//! The `Gpu` view and the `gpus=` argument; which GPUs a process may use is
//! the core's [`algalon_core::devices::Visible`].
//!
//! CUDA numbers the devices a process sees from 0 in the order of
//! `CUDA_VISIBLE_DEVICES`; NVML numbers every device of the host. Everything
//! the Python API calls an index is CUDA's.

use std::path::PathBuf;

use algalon_core::devices::{HostGpu, Selector, Visible, parse_entry};
use algalon_core::{GpuSample, Result, Sampler, SamplerOptions, Snapshot};
use pyo3::prelude::*;

/// One entry of `gpus=[...]` as Python gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuSelector {
    /// An int: a CUDA index (into the devices this process sees).
    Cuda(i64),
    /// A str, parsed by the core's device grammar: `cuda:N`, a `GPU-` UUID
    /// or unique prefix (a bare number is refused as ambiguous).
    Text(String),
}

impl GpuSelector {
    /// The core selector, or why the text names no device.
    pub fn to_core(&self) -> std::result::Result<Selector, String> {
        match self {
            GpuSelector::Cuda(i) => u32::try_from(*i)
                .map(Selector::Cuda)
                .map_err(|_| format!("gpus entry {i}: a CUDA index is 0 or more")),
            GpuSelector::Text(s) => parse_entry(s).map_err(|e| format!("gpus entry {s:?}: {e}")),
        }
    }
}

/// The core selectors of `gpus=`; an entry that names no device in any
/// form is a `ConfigError` saying which and what is accepted.
pub fn selectors(gpus: &GpuSelectors) -> PyResult<Vec<Selector>> {
    gpus.0
        .iter()
        .map(|g| g.to_core().map_err(crate::errors::ConfigError::new_err))
        .collect()
}

impl<'a, 'py> FromPyObject<'a, 'py> for GpuSelector {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if ob.is_instance_of::<pyo3::types::PyBool>() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "a GPU is a CUDA index (int), \"cuda:N\" or a UUID (str), not bool",
            ));
        }
        if let Ok(i) = ob.extract::<i64>() {
            return Ok(GpuSelector::Cuda(i));
        }
        if let Ok(s) = ob.extract::<String>() {
            return Ok(GpuSelector::Text(s));
        }
        Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "a GPU is a CUDA index (int), \"cuda:N\" or a UUID (str), not {}",
            ob.get_type().name()?
        )))
    }
}

/// `gpus=`: one selector or a sequence of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuSelectors(pub Vec<GpuSelector>);

impl<'a, 'py> FromPyObject<'a, 'py> for GpuSelectors {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if ob.is_instance_of::<pyo3::types::PyString>() || ob.is_instance_of::<pyo3::types::PyInt>()
        {
            return Ok(GpuSelectors(vec![ob.extract()?]));
        }
        let Ok(items) = ob.try_iter() else {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "gpus must be a CUDA index (int), \"cuda:N\", a UUID (str) or a list of them, not {}",
                ob.get_type().name()?
            )));
        };
        let mut out = Vec::new();
        for item in items {
            out.push(item?.extract()?);
        }
        Ok(GpuSelectors(out))
    }
}

/// Options for the per-job sampler: only the fields job accounting needs
/// (the core always adds them), per-process memory on, no XID listener.
pub fn sampler_options(nvml_lib: Option<PathBuf>, devices: Option<Vec<String>>) -> SamplerOptions {
    SamplerOptions {
        nvml_lib,
        fields: Vec::new(),
        devices,
        processes: true,
        xid_events: false,
        ..SamplerOptions::default()
    }
}

/// The host's GPUs in a snapshot, for resolving selectors.
pub fn host_gpus(snap: &Snapshot) -> Vec<HostGpu> {
    snap.gpus
        .iter()
        .map(|g| HostGpu::new(g.index, g.uuid.clone()))
        .collect()
}

/// Opens NVML, samples every GPU once and resolves this process's view.
pub fn probe(nvml_lib: Option<PathBuf>) -> Result<(Sampler, Snapshot, Visible)> {
    let mut sampler = Sampler::new(sampler_options(nvml_lib, None))?;
    let snap = sampler.sample();
    let visible = Visible::from_env(host_gpus(&snap))?;
    Ok((sampler, snap, visible))
}

/// One GPU at one instant.
#[pyclass(module = "algalon", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct Gpu {
    /// Index in CUDA's numbering for this process (`cuda:N`); `None` when
    /// the GPU is not visible to this process.
    pub cuda_index: Option<u32>,
    /// Index in NVML's numbering (`nvidia-smi`, the `gpu` label of dashboards).
    pub nvml_index: u32,
    /// `GPU-…` UUID.
    pub uuid: String,
    /// Model name.
    pub name: String,
    /// PCI bus id, `00000000:18:00.0`.
    pub pci_bus_id: String,
    /// False when the GPU is lost or failing.
    pub up: bool,
    /// GPU utilization, %.
    pub utilization: Option<f64>,
    /// Framebuffer memory used, bytes.
    pub memory_used_bytes: Option<u64>,
    /// Framebuffer memory total, bytes.
    pub memory_total_bytes: Option<u64>,
    /// Power draw, W.
    pub power_w: Option<f64>,
    /// Temperature, °C.
    pub temperature_c: Option<f64>,
    /// NVML's total-energy counter (since driver load), J; `None` on GPUs
    /// without one.
    pub energy_j: Option<f64>,
    /// PIDs with a context on the GPU.
    pub pids: Vec<u32>,
}

impl Gpu {
    /// The view of one sampled GPU.
    pub fn from_sample(g: &GpuSample, cuda_index: Option<u32>) -> Gpu {
        Gpu {
            cuda_index,
            nvml_index: g.index,
            uuid: g.uuid.clone(),
            name: g.name.clone(),
            pci_bus_id: g.pci_bus_id.clone(),
            up: g.up,
            utilization: g.gpu_util(),
            memory_used_bytes: g.memory_used_bytes(),
            memory_total_bytes: g.memory_total_bytes(),
            power_w: g.power_w(),
            temperature_c: g.temperature_c(),
            energy_j: g.energy_mj().map(|mj| mj as f64 / 1000.0),
            pids: g.processes.iter().map(|p| p.pid).collect(),
        }
    }
}

#[pymethods]
impl Gpu {
    fn __repr__(&self) -> String {
        let cuda = self
            .cuda_index
            .map_or_else(|| "not visible".to_owned(), |i| format!("cuda:{i}"));
        let opt = |v: Option<f64>, unit: &str| {
            v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}{unit}"))
        };
        format!(
            "<Gpu {cuda} = GPU {} {} {:?}{}: util {}, power {}, {}>",
            self.nvml_index,
            self.uuid,
            self.name,
            if self.up { "" } else { " DOWN" },
            opt(self.utilization, "%"),
            opt(self.power_w, " W"),
            opt(self.temperature_c, " C"),
        )
    }
}

/// GPUs of a snapshot in CUDA order (the visible ones), then the others
/// that were sampled (chosen by UUID outside `CUDA_VISIBLE_DEVICES`).
pub fn gpus_in_cuda_order(snap: &Snapshot, visible: &Visible, only: Option<&[String]>) -> Vec<Gpu> {
    let wanted = |u: &String| only.is_none_or(|o| o.contains(u));
    let mut out: Vec<Gpu> = visible
        .cuda
        .iter()
        .filter(|u| wanted(u))
        .filter_map(|u| snap.gpu_by_uuid(u))
        .map(|g| Gpu::from_sample(g, visible.cuda_index(&g.uuid)))
        .collect();
    for g in &snap.gpus {
        if wanted(&g.uuid) && visible.cuda_index(&g.uuid).is_none() {
            out.push(Gpu::from_sample(g, None));
        }
    }
    out
}
