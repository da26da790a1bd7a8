//! The Python exception hierarchy and the one place core errors map to it.
//!
//! ```text
//! AlgalonError
//! ├── NvmlUnavailableError      NVML cannot be used at all
//! │   ├── NvmlNotFoundError     no libnvidia-ml.so.1 (no driver, or not in the search path)
//! │   └── NvmlInitError         the library loaded but nvmlInit failed
//! ├── NvmlError                 an NVML call the sampler needs failed
//! ├── DeviceNotFoundError       a GPU id (CUDA_VISIBLE_DEVICES, gpus=[...]) matches no GPU
//! │                             (also exported as GpuNotFoundError)
//! ├── ConfigError               an unusable setting (interval, collectors file)
//! └── PushError                 a report could not be pushed to VictoriaMetrics
//! ```

use algalon_core::Error;
use pyo3::PyErr;
use pyo3::create_exception;
use pyo3::exceptions::PyException;

create_exception!(
    algalon,
    AlgalonError,
    PyException,
    "Base class of every error Algalon raises."
);
create_exception!(
    algalon,
    NvmlUnavailableError,
    AlgalonError,
    "NVML (the NVIDIA Management Library) cannot be used on this machine."
);
create_exception!(
    algalon,
    NvmlNotFoundError,
    NvmlUnavailableError,
    "libnvidia-ml.so.1 could not be loaded (no NVIDIA driver, or not in the library path)."
);
create_exception!(
    algalon,
    NvmlInitError,
    NvmlUnavailableError,
    "NVML loaded but refused to initialise (driver not running, no permission)."
);
create_exception!(
    algalon,
    NvmlError,
    AlgalonError,
    "An NVML call that Algalon cannot do without failed."
);
create_exception!(
    algalon,
    DeviceNotFoundError,
    AlgalonError,
    "A GPU id (in CUDA_VISIBLE_DEVICES or gpus=[...]) matches no GPU of this host."
);
create_exception!(
    algalon,
    ConfigError,
    AlgalonError,
    "A setting Algalon cannot use (sampling interval, collectors file)."
);
create_exception!(
    algalon,
    PushError,
    AlgalonError,
    "A report could not be pushed to VictoriaMetrics; the report itself is kept."
);

/// A core error on its way to Python (a newtype, since neither
/// `algalon_core::Error` nor `PyErr` is this crate's).
#[derive(Debug)]
pub struct PyAlgalonError(pub Error);

impl From<Error> for PyAlgalonError {
    fn from(e: Error) -> Self {
        PyAlgalonError(e)
    }
}

impl From<PyAlgalonError> for PyErr {
    /// Every variant of the core's error enum, in one place. The core's
    /// messages are one line and say what to do, so they pass unchanged.
    fn from(PyAlgalonError(e): PyAlgalonError) -> PyErr {
        let message = e.to_string();
        match e {
            Error::NvmlNotFound { .. } => NvmlNotFoundError::new_err(message),
            Error::NvmlInit { .. } => NvmlInitError::new_err(message),
            Error::Nvml { .. } => NvmlError::new_err(message),
            Error::NoSuchDevice { .. } => DeviceNotFoundError::new_err(message),
            Error::CollectorsIo { .. }
            | Error::CollectorsParse { .. }
            | Error::InvalidInterval(_) => ConfigError::new_err(message),
            Error::Thread(_) => AlgalonError::new_err(message),
            // The enum is #[non_exhaustive]: a variant added later is still
            // an AlgalonError with its message until it gets its own class.
            _ => AlgalonError::new_err(message),
        }
    }
}

/// Shorthand: a core error as a `PyErr`.
pub fn py_err(e: Error) -> PyErr {
    PyAlgalonError(e).into()
}
