//! Loading the NVML library: an explicit path, `$ALGALON_NVML_LIB`, or the
//! system's sonames, with a hint for each way initialisation fails.

use std::ffi::OsStr;

use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;

use crate::error::{Error, Result};

/// Environment variable naming the NVML library to load.
pub const NVML_LIB_ENV: &str = "ALGALON_NVML_LIB";

/// Sonames tried, in order, when no library is named.
const SYSTEM_LIBRARIES: &[&str] = &["libnvidia-ml.so.1", "libnvidia-ml.so"];

/// Loads NVML from `explicit`, else `$ALGALON_NVML_LIB`, else the system.
pub(super) fn open_nvml(explicit: Option<&OsStr>) -> Result<(Nvml, String)> {
    let env = std::env::var_os(NVML_LIB_ENV).filter(|v| !v.is_empty());
    let candidates: Vec<&OsStr> = match (explicit, env.as_deref()) {
        (Some(p), _) => vec![p],
        (None, Some(p)) => vec![p],
        (None, None) => SYSTEM_LIBRARIES.iter().map(OsStr::new).collect(),
    };
    let mut last_reason = String::new();
    for candidate in &candidates {
        let shown = candidate.to_string_lossy().into_owned();
        match Nvml::builder().lib_path(candidate).init() {
            Ok(nvml) => return Ok((nvml, shown)),
            Err(NvmlError::LibloadingError(e)) => last_reason = e.to_string(),
            Err(NvmlError::FailedToLoadSymbol(e)) => {
                last_reason = format!("{shown} is not an NVML library ({e})");
            }
            Err(source) => {
                let hint = match source {
                    NvmlError::DriverNotLoaded => {
                        "The NVIDIA kernel driver is not loaded: check that `nvidia-smi` works \
                         on this host (modprobe nvidia), or run where the GPUs are"
                    }
                    NvmlError::NoPermission => {
                        "This user cannot open /dev/nvidia*: run as root or as a member of \
                         the group owning the device nodes"
                    }
                    NvmlError::LibRmVersionMismatch => {
                        "The NVML library and the kernel driver are different versions: \
                         reload the driver or reboot after the driver upgrade"
                    }
                    _ => "Check that `nvidia-smi` works on this host",
                };
                return Err(Error::NvmlInit {
                    library: shown,
                    source,
                    hint,
                });
            }
        }
    }
    Err(Error::NvmlNotFound {
        tried: candidates
            .iter()
            .map(|c| c.to_string_lossy())
            .collect::<Vec<_>>()
            .join(", "),
        reason: last_reason,
    })
}
