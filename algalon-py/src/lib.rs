//! # algalon-py
//!
//! The Python face of Algalon: `pip install ./algalon-py` gives the
//! `algalon` package, whose native part is this crate (`algalon._algalon`).
//! It is a thin layer over [`algalon_core`]: a [`algalon_core::BackgroundSampler`]
//! feeding a [`algalon_core::jobs::JobTracker`], exposed as `Monitor`, `Job`
//! and `Report`.
//!
//! ```python
//! import algalon
//!
//! mon = algalon.Monitor(interval=0.1)      # GPUs visible to this process
//! with mon.job("finetune", labels={"team": "nlp"}) as job:
//!     train()
//!     job.count(samples=50_000)
//! print(job.report)                         # per-GPU energy, utilization, memory
//! ```
//!
//! Python-side pieces (the decorator and the push client) live in
//! `python/algalon/`; the stubs in `python/algalon/_algalon.pyi` are checked
//! against this module with `mypy.stubtest`.

#![deny(missing_docs)]

mod devices;
mod errors;
mod exit;
mod monitor;
mod report;
mod server;

use std::path::PathBuf;

use pyo3::prelude::*;

pub use devices::Gpu;
pub use errors::PyAlgalonError;
pub use monitor::{Job, MetricsServer, Monitor};
pub use report::{GpuReport, MigReport, Report};

/// The GPUs this process may use (`CUDA_VISIBLE_DEVICES` applied), in CUDA
/// order, as read now. Opens NVML for the call; raises
/// `NvmlUnavailableError` when it cannot, `DeviceNotFoundError` when
/// `CUDA_VISIBLE_DEVICES` names a GPU that does not exist.
#[pyfunction]
#[pyo3(signature = (nvml_lib=None))]
fn gpus(py: Python<'_>, nvml_lib: Option<PathBuf>) -> PyResult<Vec<Gpu>> {
    let result = crate::exit::release(py, move || {
        let (_sampler, snap, visible) = devices::probe(nvml_lib)?;
        let measurable = visible.measurable();
        Ok::<_, algalon_core::Error>(devices::gpus_in_cuda_order(
            &snap,
            &visible,
            Some(&measurable),
        ))
    });
    result.map_err(errors::py_err)
}

/// Per-job GPU usage (energy, utilization, memory) for Python programs.
#[pymodule]
#[pyo3(name = "_algalon")]
fn algalon_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(gpus, m)?)?;
    m.add_function(wrap_pyfunction!(exit::_at_exit, m)?)?;
    m.add_class::<Monitor>()?;
    m.add_class::<Job>()?;
    m.add_class::<Report>()?;
    m.add_class::<GpuReport>()?;
    m.add_class::<MigReport>()?;
    m.add_class::<Gpu>()?;
    m.add_class::<MetricsServer>()?;
    m.add("AlgalonError", py.get_type::<errors::AlgalonError>())?;
    m.add(
        "NvmlUnavailableError",
        py.get_type::<errors::NvmlUnavailableError>(),
    )?;
    m.add(
        "NvmlNotFoundError",
        py.get_type::<errors::NvmlNotFoundError>(),
    )?;
    m.add("NvmlInitError", py.get_type::<errors::NvmlInitError>())?;
    m.add("NvmlError", py.get_type::<errors::NvmlError>())?;
    m.add(
        "DeviceNotFoundError",
        py.get_type::<errors::DeviceNotFoundError>(),
    )?;
    m.add(
        "GpuNotFoundError",
        py.get_type::<errors::DeviceNotFoundError>(),
    )?;
    m.add("ConfigError", py.get_type::<errors::ConfigError>())?;
    m.add("PushError", py.get_type::<errors::PushError>())?;
    Ok(())
}
