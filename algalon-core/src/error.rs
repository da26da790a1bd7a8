//! The one error type of `algalon-core`.

use std::path::PathBuf;

use nvml_wrapper::error::NvmlError;

/// Result alias used across `algalon-core`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `algalon-core`.
///
/// Each message says what failed, with what input, and what to do about it, so
/// a face (exporter, Python, C) can show it to a person unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The NVML library could not be loaded from any of the places tried.
    #[error(
        "cannot load the NVIDIA Management Library (NVML): tried {tried}: {reason}. \
         Install the NVIDIA driver (it ships libnvidia-ml.so.1), or point \
         ALGALON_NVML_LIB / --nvml-lib at the library"
    )]
    NvmlNotFound {
        /// The paths or sonames that were tried, in order.
        tried: String,
        /// What the dynamic loader said for the last attempt.
        reason: String,
    },

    /// NVML loaded but refused to initialise (no driver, no permission, …).
    #[error("NVML at {library} failed to initialise: {source}. {hint}")]
    NvmlInit {
        /// The library that was loaded.
        library: String,
        /// NVML's own error.
        #[source]
        source: NvmlError,
        /// What to do about it.
        hint: &'static str,
    },

    /// An NVML call that the sampler cannot do without failed.
    #[error("NVML call {call} failed: {source}")]
    Nvml {
        /// The NVML function (C name) that failed.
        call: &'static str,
        /// NVML's own error.
        #[source]
        source: NvmlError,
    },

    /// A collectors CSV could not be read at all.
    #[error("cannot read collectors file {path}: {source}")]
    CollectorsIo {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A collectors CSV has rows that are malformed or name something
    /// unknown (every such row is listed), or no row at all. Displayed as
    /// `file:line: message` per row, joined by `; `; [`Error::lines`] gives
    /// one line each.
    #[error("{}", collectors_rows(file, rows).join("; "))]
    CollectorsParse {
        /// The file (or `<built-in>` / `<string>`).
        file: String,
        /// What is wrong, row by row, in file order.
        rows: Vec<RowError>,
    },

    /// A device selector (index or UUID) matched no GPU.
    #[error("no GPU matches {selector}: this host has {available}")]
    NoSuchDevice {
        /// The selector as given, quoted, with any qualification.
        selector: String,
        /// The GPUs that do exist, for the message.
        available: String,
    },

    /// A MIG instance selector (`-d …i:LIST`) matched no instance.
    #[error(
        "no MIG instance matches {selector}: {available}; `-d …+i:LIST` takes GPU instance ids \
         (the GPU_I_ID label), `-d g+i` reads every instance"
    )]
    NoSuchInstance {
        /// The selector as given.
        selector: String,
        /// The MIG instances that do exist, for the message.
        available: String,
    },

    /// The background sampler thread could not be started.
    #[error("cannot start the sampling thread: {0}")]
    Thread(#[from] std::io::Error),

    /// An interval of zero (or otherwise unusable) was asked for.
    #[error("invalid sampling interval {0:?}: use at least 1 ms")]
    InvalidInterval(std::time::Duration),
}

impl Error {
    /// The message as lines to show a person: one per bad row of a
    /// collectors file, else the message itself.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Error::CollectorsParse { file, rows } => collectors_rows(file, rows),
            other => vec![other.to_string()],
        }
    }
}

fn collectors_rows(file: &str, rows: &[RowError]) -> Vec<String> {
    rows.iter()
        .map(|r| match r.line {
            Some(line) => format!("{file}:{line}: {}", r.message),
            None => format!("{file}: {}", r.message),
        })
        .collect()
}

/// One bad row of a collectors file (or, with no line, the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line, or `None` when the problem is the whole file.
    pub line: Option<usize>,
    /// What is wrong and how to fix it.
    pub message: String,
}
